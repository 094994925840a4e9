"""A closed period's KPI counts move from the period's row to a table of their own.

The counts were kept in ``periods.activity`` (0006), beside the settlement
stored at close. SQLite writes a row whole: keeping the counts of a period
where a thousand partners all trade wrote its 93 MB settlement again (0.9 s,
docs/performance-log.md). They are now kept in ``closed_period_counts``, a
row a period, as an open period's are in ``open_period_counts`` (0010). The
counts kept are moved, so a KPI request after the upgrade reads them back.

Dropping the column is instant on PostgreSQL (the catalog alone). SQLite
writes the periods table again without it, settlements and all: about the
time of reading them once. The append-only triggers of ``periods`` (0014)
name the columns they guard, not this one, and stay. Run again on a schema
stamped back to an earlier revision by hand, it moves nothing, as 0024 and
0025 make their indexes only if not there.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "closed_period_counts",
        sa.Column("period_id", sa.String(16), sa.ForeignKey("periods.id"), primary_key=True),
        sa.Column("activity", sa.Text, nullable=False),
        if_not_exists=True,
    )
    if "activity" in _columns_of_periods():  # moved already: stamped back by hand, run again
        op.execute(
            "INSERT INTO closed_period_counts (period_id, activity)"
            " SELECT id, activity FROM periods WHERE activity IS NOT NULL"
        )
        op.drop_column("periods", "activity")


def downgrade() -> None:
    op.add_column("periods", sa.Column("activity", sa.Text, nullable=True))
    op.execute(
        "UPDATE periods SET activity = (SELECT activity FROM closed_period_counts"
        " WHERE closed_period_counts.period_id = periods.id)"
    )
    op.drop_table("closed_period_counts")


def _columns_of_periods() -> set[str]:
    return {column["name"] for column in sa.inspect(op.get_bind()).get_columns("periods")}
