"""Indexes that answer a member's balance from the indexes alone.

A balance sums the member's lots (their points, and the live ones'
remaining points by the dates they become available and expire) and the
points of their burns. A member's lots, earned over months, lie on as many
heap pages as there are lots, and so do their transactions: hundreds of
pages read for one lookup, and a few milliseconds once the ledger outgrows
PostgreSQL's buffers. A covering index of the lots by member (``INCLUDE``
the columns a balance reads) and a partial index of each member's burns
with their points let PostgreSQL answer from the indexes, reading the heap
only for pages changed since autovacuum last passed. SQLite, whose
indexes cannot include columns, gets the partial index only.

The upgrade is one transaction, run while instances of the release before
keep posting. Building an index takes a SHARE lock: postings wait for it,
reads do not. The transactions' index is built first, as a posting's write
locks transactions before lots, so no posting can hold lots while waiting
for the migration. The old index of lots by member is kept: dropping it
would take an exclusive lock on lots, which a posting that has read its
member's lots and waits to write would hold up while waiting in turn for
this transaction: a deadlock. It costs each lot written one more index
entry (see docs/performance-log.md).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

BURNS = sa.text("type IN ('burn', 'burn_reversal')")


def upgrade() -> None:
    op.create_index(
        "ix_transactions_member_burns",
        "transactions",
        ["member_id"],
        postgresql_include=["points"],
        postgresql_where=BURNS,
        sqlite_where=BURNS,
    )
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            "ix_lots_member_balance",
            "lots",
            ["member_id", "expires_at"],
            postgresql_include=["remaining", "available_at", "points"],
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_lots_member_balance", "lots")
    op.drop_index("ix_transactions_member_burns", "transactions")
