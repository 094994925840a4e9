"""A rate's value keeps the decimals the operator wrote.

``NUMERIC(30,12)`` padded every rate to twelve decimals, so an fx rate
written ``"0.0110"`` read back as ``0.011000000000``, and was printed
``"0.011"``. PostgreSQL's ``NUMERIC`` without a scale keeps the value's own
(the API's pattern still allows at most 12 decimals); values already stored
lose the padding. SQLite stores the text as written already.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE rates ALTER COLUMN value TYPE NUMERIC USING trim_scale(value)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE rates ALTER COLUMN value TYPE NUMERIC(30, 12)")
