"""Indexes of the rates by partner and when each was added, and by when each begins and
ends: what a settlement asks to re-price what was posted before a rate added late.

A settlement re-prices the postings made before a redemption or fee rate
that applies to them was added (:mod:`coalition.domain.repricing`). It asks
the ``rates`` table, for each of the period's postings up to the last such a
rate can reach, whether a rate of the kind, its partner's or every
partner's, added after it applies to it (``kind, partner_id,
last_transaction_id``), and where the stretch it is dated in begins: the
last instant at or before it at which a rate of the kind begins or ends
(``kind, effective_from`` and ``kind, effective_to``; PostgreSQL reads
those instants once a statement, and searches them as an array). The
rates used to be sent with the query, four values each, and past about
6,500 of them PostgreSQL refused it (65,535 values at most); a coalition
adds one each time it adds such a rate while it has postings.

The rates table is small and rarely written: building the indexes is quick,
and a rate added while they are built waits for them. They are made if not
there, as 0024 makes its own: a database stamped back to an older revision
by hand upgrades through it again.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07
"""

from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_rates_added_after": ["kind", "partner_id", "last_transaction_id"],
    "ix_rates_begin": ["kind", "effective_from"],
    "ix_rates_end": ["kind", "effective_to"],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "rates", columns, if_not_exists=True)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, "rates")
