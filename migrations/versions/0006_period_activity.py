"""A closed period keeps its KPI counts once they have been counted.

Counting a period's members, visits and purchases groups its earns and
burns by member: seconds for a period of millions of transactions. A closed
period's transactions never change (a late posting lands in the next open
period), so :mod:`coalition.services.kpis` counts them on the first request
after the close and keeps them here; open periods are counted on each request.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("periods") as batch:
        batch.add_column(sa.Column("activity", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("periods") as batch:
        batch.drop_column("activity")
