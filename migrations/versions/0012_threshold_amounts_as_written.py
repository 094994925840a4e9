"""A threshold's ``min_amount`` keeps the decimals the operator wrote, as a rate's value
does since 0007.

``NUMERIC(24,4)`` padded it to four decimals on PostgreSQL, so ``"12.5"``
read back as ``12.5000`` in ``GET /rates`` where SQLite's text kept
``12.5``. The API already holds it to its currency's decimals; amounts
already stored lose the padding.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE rates ALTER COLUMN min_amount TYPE NUMERIC USING trim_scale(min_amount)"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE rates ALTER COLUMN min_amount TYPE NUMERIC(24, 4)")
