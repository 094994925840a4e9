"""An index of the transactions of the rarer types by type and id: what a listing
filtered by one of them pages through.

``GET /api/v1/transactions?type=burn_reversal`` pages in id order. With no
index that starts with the type, PostgreSQL walked the primary key and read
past every other transaction before the first match: 0.8–1.8 s at 3.8
million transactions, in proportion to the ledger (docs/performance-log.md).
Earns and burns, most of what is written, are most of every page of the
ledger anyway, so the index is partial: they add no entry to it. SQLite,
which would not match a query's one type to the index's list, does without.

Building it takes a SHARE lock on transactions, the only table it touches:
postings wait for it, reads do not.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

RARER = sa.text("type IN ('bonus', 'earn_reversal', 'burn_reversal', 'expiry')")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            "ix_transactions_rarer_types", "transactions", ["type", "id"], postgresql_where=RARER
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_transactions_rarer_types", "transactions")
