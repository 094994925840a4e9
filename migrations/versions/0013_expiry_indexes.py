"""An index of the allocations that put points back into a lot or expired them,
by lot: what the expiry reads of each lot it expires.

Expiring a lot asks how many expiries it has had and what burn reversals
put back after it expired (``coalition.services.expiry``). With no index on
``allocations.lot_id`` that read scanned every allocation of the ledger for
each batch of 500 lots: 0.15 s at 2.9 million allocations, growing with the
ledger, once per batch, under the members' locks. Burn reversals and
expiries are a small part of the allocations, so the index is partial: a
burn, most of what is written, adds no entry to it.

Building it takes a SHARE lock on allocations, the only table it touches:
postings wait for it, reads do not, and no posting can hold another table
this transaction waits for.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

PUT_BACK_OR_EXPIRED = sa.text("type IN ('burn_reversal', 'expiry')")


def upgrade() -> None:
    op.create_index(
        "ix_allocations_lot_history",
        "allocations",
        ["lot_id"],
        postgresql_where=PUT_BACK_OR_EXPIRED,
        sqlite_where=PUT_BACK_OR_EXPIRED,
    )


def downgrade() -> None:
    op.drop_index("ix_allocations_lot_history", "allocations")
