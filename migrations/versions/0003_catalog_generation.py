"""A generation stamp on the settings row, for the per-process catalog cache.

Every change to settings, partners, rates, API keys or the closed periods
writes a fresh random value here in the same transaction
(:mod:`coalition.services.catalog`), so a process that has cached that
reference data knows, with one indexed read, whether its copy is current.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("settings") as batch:
        batch.add_column(sa.Column("generation", sa.BigInteger, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("settings") as batch:
        batch.drop_column("generation")
