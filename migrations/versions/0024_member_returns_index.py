"""An index of each member's returns with their points: a balance's lifetime earned is
now what the member was issued less what returns took back.

The balance read (``aggregates.member_balance``) sums a member's lots and burns
from the indexes alone (0009). Its lifetime earned now subtracts the points of
the member's returns too, so they get a partial index of their own, as the
burns have: a few entries (returns are rare), covering the points PostgreSQL
sums. SQLite, whose indexes cannot include columns, gets the partial index.

Building it takes a SHARE lock on transactions, the only table it touches:
postings wait for the one read of the table it makes, reads do not. It is
made if not there, as 0019 adds its column: a database stamped back to an
older revision by hand upgrades through it again.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

RETURNS = sa.text("type = 'earn_reversal'")


def upgrade() -> None:
    op.create_index(
        "ix_transactions_member_returns",
        "transactions",
        ["member_id"],
        postgresql_include=["points"],
        postgresql_where=RETURNS,
        sqlite_where=RETURNS,
        if_not_exists=True,
    )


def downgrade() -> None:
    op.drop_index("ix_transactions_member_returns", "transactions")
