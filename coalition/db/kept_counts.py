"""Where a period's KPI counts are kept once counted: beside a closed period
(``closed_period_counts``) or an open one (``open_period_counts``), a row a period.

Two tables, not one with a flag: a closed period's counts are final, kept
once and never dropped, while an open period's carry when they were counted,
are counted anew and dropped when quick to count or once the period closes.
In one table every read and write of either kind would have to say which it
means, and an open period's count that commits after its close would have
to be kept from overwriting the final one.

:mod:`coalition.services.kpi_counts` decides what to count and when; this
reads and writes the kept JSON. The upserts are worded as each dialect
words them.
"""

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite

from coalition.db import on_postgresql
from coalition.db.models import ClosedPeriodCounts, OpenPeriodCounts, Period


def committed_of_closed(session, period_id: str) -> str | None:
    """A closed period's kept counts as committed, read again, not as loaded before."""
    query = select(ClosedPeriodCounts.kpi_counts).where(ClosedPeriodCounts.period_id == period_id)
    return session.scalar(query)


def closed_in_order(session) -> list[tuple[str, str | None]]:
    """Every closed period's id and kept counts, oldest first."""
    kept = ClosedPeriodCounts.period_id == Period.id
    query = select(Period.id, ClosedPeriodCounts.kpi_counts).outerjoin(ClosedPeriodCounts, kept)
    return session.execute(query.order_by(Period.start)).all()


def keep_closed(session, period_id: str, counts: str) -> None:
    """Keep a closed period's counts, in place of any kept by another version of the
    counting; two requests that count it at once keep the same counts."""
    insert = _insert_of(session)
    statement = insert(ClosedPeriodCounts).values(period_id=period_id, kpi_counts=counts)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[ClosedPeriodCounts.period_id],
            # set_ and excluded name the table's columns: kpi_counts is kept in "activity"
            set_={"activity": statement.excluded.activity},
        )
    )


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


def drop_open(session, period_ids: list[str]) -> None:
    """Drop the counts kept beside these open periods: they are counted live again."""
    session.execute(delete(OpenPeriodCounts).where(OpenPeriodCounts.period_id.in_(period_ids)))


def drop_open_of_closed(session) -> None:
    """Drop the counts kept beside periods since closed: they are not their counts any more."""
    closed = select(Period.id)
    session.execute(delete(OpenPeriodCounts).where(OpenPeriodCounts.period_id.in_(closed)))


def keep_open(session, period_id: str, counted_at: datetime, counts: str) -> None:
    """Keep an open period's counts, in place of those kept before unless they are newer:
    two requests may count it at once, and the one that counted first may commit last."""
    insert = _insert_of(session)
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


def _insert_of(session):
    """The dialect's INSERT, which words an upsert (ON CONFLICT)."""
    return postgresql.insert if on_postgresql(session) else sqlite.insert
