"""An open period keeps its KPI counts when counting them takes seconds.

Counting a period's members, visits and purchases groups its earns and
burns by member: 17 s for a month of 3 million transactions, 100 s for 15
million. A closed period's counts are kept on the period (0006); an open
one's change with every posting, so :mod:`coalition.services.kpis` counts
them on each request while that is quick, and once a count takes seconds
keeps it here, with when it was counted, for the scheduler to refresh.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from coalition.db.types import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "open_period_counts",
        sa.Column("period_id", sa.String(16), primary_key=True),
        sa.Column("counted_at", UTCDateTime(), nullable=False),
        sa.Column("activity", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("open_period_counts")
