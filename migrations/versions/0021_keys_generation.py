"""A second stamp on the settings row, moved only when API keys change.

Every change to reference data stamps ``generation`` and has each process
read its catalog again; rate versions are then read only as they are added
(0020), but the keys were read whole each time: 0.2–0.36 s a process at
50,000 keys (a key a till), after every rate, close or kept KPI count. A
change to keys now stamps ``keys_generation`` too, and a process whose copy
carries the same keeps its keys (:mod:`coalition.services.catalog`). An
upgrade stamps both.

Adding a column with a constant default changes only the catalog on
PostgreSQL, and the settings row is one row: instant.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # run again, it adds nothing: the upgrade's lock tests stamp a live service's
        # database back to an earlier revision
        op.execute(
            "ALTER TABLE settings ADD COLUMN IF NOT EXISTS keys_generation bigint NOT NULL DEFAULT 0"
        )
    else:
        with op.batch_alter_table("settings") as batch:
            batch.add_column(
                sa.Column("keys_generation", sa.BigInteger, nullable=False, server_default="0")
            )


def downgrade() -> None:
    with op.batch_alter_table("settings") as batch:
        batch.drop_column("keys_generation")
