"""A rate remembers how far the ledger reached when it was added.

A rate added with an ``effective_from`` in the past (allowed while that
instant's period is open) applies at settlement to what was posted before
it too (SPEC §7: the rate in force at the burn's ``occurred_at``). The
transactions priced without it are those with an id up to the ledger's last
when it was added (:mod:`coalition.services.rates` adds it under the
exclusive calendar lock, so no posting is in flight). Rates added before
this revision re-price nothing: 0.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rates") as batch:
        batch.add_column(
            sa.Column("last_transaction_id", sa.BigInteger, nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("rates") as batch:
        batch.drop_column("last_transaction_id")
