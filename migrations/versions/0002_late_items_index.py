"""A partial index on late transactions, so a close finds its late items at once.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_transactions_late",
        "transactions",
        ["period_id", "id"],
        postgresql_where=sa.text("late"),
        sqlite_where=sa.text("late"),
    )


def downgrade() -> None:
    op.drop_index("ix_transactions_late", "transactions")
