"""Index the transactions of a period by id: what a listing by period pages through.

``GET /api/v1/transactions?period_id=…`` pages in id order. The index by
period and type (0001) holds a period's rows in type order, so PostgreSQL
walked the primary key instead, past every transaction of the earlier
periods: 0.3–0.9 s at 4 million (docs/performance-log.md), in proportion to the
ledger's age. Indexed by period and id, a page is a range of the index; with
the type beside them, the reads of a period's transactions of some types
(the KPIs, a late rate's re-pricing) find them in the same index, which
takes the old one's place, so a posting still writes one entry to it.

Building the new index takes a SHARE lock on transactions: postings wait
for it (about 4 s at 4 million transactions), reads do not. The old one is
dropped after it, which locks the table against reads too, from then until
the upgrade commits: a moment, when this is the last migration applied.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_transactions_period_id", "transactions", ["period_id", "id", "type"])
    op.drop_index("ix_transactions_period", "transactions")


def downgrade() -> None:
    op.create_index("ix_transactions_period", "transactions", ["period_id", "type"])
    op.drop_index("ix_transactions_period_id", "transactions")
