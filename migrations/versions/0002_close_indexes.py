"""Indexes a close needs: late transactions, and transactions by when they occurred.

The first finds a period's late items at once; the second finds the movements
dated after a period's end, from which its outstanding liability is derived.

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
    op.create_index("ix_transactions_occurred", "transactions", ["occurred_at"])


def downgrade() -> None:
    op.drop_index("ix_transactions_occurred", "transactions")
    op.drop_index("ix_transactions_late", "transactions")
