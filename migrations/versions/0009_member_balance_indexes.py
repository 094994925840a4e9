"""Indexes that answer a member's balance from the indexes alone.

A balance sums the member's lots (their points, and the live ones'
remaining points by the dates they become available and expire) and the
points of their burns. A member's lots, earned over months, lie on as many
heap pages as there are lots, and so do their transactions: hundreds of
pages read for one lookup, and a few milliseconds once the ledger outgrows
PostgreSQL's buffers. The lots' index by member now carries the columns a
balance reads (``INCLUDE``, PostgreSQL's covering index), and a partial
index holds each member's burns with their points, so both are read as
index-only scans. SQLite keeps the plain index by member and gets the
partial one.

Built before the old index is dropped, so lookups are never without one;
``CREATE INDEX`` holds off writes to the table while it builds (about a
second per million lots on the benchmark's machine).

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
        "ix_lots_member_balance",
        "lots",
        ["member_id", "expires_at"],
        postgresql_include=["remaining", "available_at", "points"],
    )
    op.drop_index("ix_lots_member", "lots")
    op.create_index(
        "ix_transactions_member_burns",
        "transactions",
        ["member_id"],
        postgresql_include=["points"],
        postgresql_where=BURNS,
        sqlite_where=BURNS,
    )


def downgrade() -> None:
    op.drop_index("ix_transactions_member_burns", "transactions")
    op.create_index("ix_lots_member", "lots", ["member_id", "expires_at"])
    op.drop_index("ix_lots_member_balance", "lots")
