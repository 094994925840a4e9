"""Where a period's KPI counts are kept once counted: on a closed period's own row
(``Period.kpi_counts``, the column ``periods.activity``), or beside an open period
(``open_period_counts``).

:mod:`coalition.services.kpi_counts` decides what to count and when; this
reads and writes the kept JSON. The one upsert is worded as each dialect
words it.
"""

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from coalition.db import on_postgresql
from coalition.db.models import OpenPeriodCounts, Period


def committed_of_closed(session, period_id: str) -> str | None:
    """A closed period's kept counts as committed, read again, not as loaded before: the
    column alone. The rows listing the periods are not kept by the session, and the row
    loaded whole again would bring its settlement (where a thousand partners all trade,
    93 MB)."""
    return session.scalar(select(Period.kpi_counts).where(Period.id == period_id))


def closed_in_order(session) -> list[tuple[str, str | None]]:
    """Every closed period's id and kept counts, oldest first."""
    return session.execute(select(Period.id, Period.kpi_counts).order_by(Period.start)).all()


def keep_closed(session, period_id: str, counts: str) -> None:
    session.execute(update(Period).where(Period.id == period_id).values(kpi_counts=counts))


def of_open(session, period_ids: list[str]) -> list[OpenPeriodCounts]:
    """The counts kept beside these open periods."""
    if not period_ids:
        return []
    query = select(OpenPeriodCounts).where(OpenPeriodCounts.period_id.in_(period_ids))
    return session.scalars(query).all()


def open_counted_before(session, cutoff: datetime) -> list[str]:
    """The open periods whose kept counts were counted at or before ``cutoff``, by id
    (a handful of rows: only periods slow to count have any)."""
    query = select(OpenPeriodCounts.period_id).where(OpenPeriodCounts.counted_at <= cutoff)
    return session.scalars(query.order_by(OpenPeriodCounts.period_id)).all()


def drop_open(session, period_id: str) -> None:
    session.execute(delete(OpenPeriodCounts).where(OpenPeriodCounts.period_id == period_id))


def drop_open_of_closed(session) -> None:
    """Drop the counts kept beside periods since closed: they are not their counts any more."""
    closed = select(Period.id)
    session.execute(delete(OpenPeriodCounts).where(OpenPeriodCounts.period_id.in_(closed)))


def keep_open(session, period_id: str, counted_at: datetime, counts: str) -> None:
    """Keep an open period's counts, in place of those kept before unless they are newer:
    two requests may count it at once, and the one that counted first may commit last."""
    insert = postgresql.insert if on_postgresql(session) else sqlite.insert
    statement = insert(OpenPeriodCounts).values(
        period_id=period_id, counted_at=counted_at, kpi_counts=counts
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[OpenPeriodCounts.period_id],
            # set_ and excluded name the table's columns: kpi_counts is kept in "activity"
            set_={
                "counted_at": statement.excluded.counted_at,
                "activity": statement.excluded.activity,
            },
            where=OpenPeriodCounts.counted_at < statement.excluded.counted_at,
        )
    )
