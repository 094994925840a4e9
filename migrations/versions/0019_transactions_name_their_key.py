"""Each transaction names the API key that posted it.

A key leaked, or a till posting what it should not, is reviewed by what that
key posted: the record of changes already names the key of each change to
what the operator configures, and a posting now names its key the same way.
A transaction posted by no key (``coalition import``, the expiry job,
``coalition demo``) has none, as do those posted before this migration.

A nullable column with no default: PostgreSQL adds it to the catalog alone,
however large the ledger, holding the table's lock for that instant (postings
in flight finish first); SQLite likewise. Nothing indexes it: a review reads
one partner's postings of a time, whose listing has its indexes.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # run again on PostgreSQL, it adds nothing: an upgrade of a ledger stamped back to an
    # earlier revision under a live service (the upgrade's lock tests) re-runs it, where
    # the service's postings need the column throughout (SQLite has no such clause)
    postgresql = op.get_bind().dialect.name == "postgresql"
    op.add_column(
        "transactions",
        sa.Column("key_id", sa.String(32), nullable=True),
        if_not_exists=postgresql or None,
    )


def downgrade() -> None:
    op.drop_column("transactions", "key_id")
