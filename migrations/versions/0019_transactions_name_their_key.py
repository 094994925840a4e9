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
    if op.get_bind().dialect.name == "postgresql":
        # run again, it adds nothing: the upgrade's lock tests stamp a live service's
        # ledger back to an earlier revision, and its postings need the column throughout
        op.execute("ALTER TABLE transactions ADD COLUMN IF NOT EXISTS key_id varchar(32)")
    else:
        op.add_column("transactions", sa.Column("key_id", sa.String(32), nullable=True))


def downgrade() -> None:
    op.drop_column("transactions", "key_id")
