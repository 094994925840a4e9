"""Recording against the closes (docs/reconciling.md): a period closed once it ended
and after those before it, a transaction of a closed period recorded by its
``closed_at``, a late one after the closes before the period it lands in, and no
rate added after a close into the period it closed.
"""

from sqlalchemy import and_, func, select
from sqlalchemy.orm import aliased

from coalition.db.aggregates import LATE
from coalition.db.models import Period, Rate, Transaction


def problems(connection):
    """What does not add up here, a line each."""
    yield from _closes(connection)
    yield from _recorded_after_the_close(connection)
    yield from _late(connection)
    yield from _rates_in_closed_periods(connection)


def _closes(connection):
    """A period closes once it has ended, and after every period before it, which it closes
    first (SPEC §7); for each period closed after a later one, the first such is named."""
    rows = connection.execute(
        select(Period.id, Period.end, Period.closed_at)
        .where(Period.closed_at < Period.end)
        .order_by(Period.id)
    )
    for period, end, closed_at in rows:
        yield f"{period} was closed at {closed_at.isoformat()}, before it ended at {end.isoformat()}"
    later = aliased(Period)
    first = (
        select(Period.id.label("id"), func.min(later.id).label("later_id"))
        .join(later, and_(later.id > Period.id, later.closed_at < Period.closed_at))
        .group_by(Period.id)
        .subquery()
    )
    rows = connection.execute(
        select(Period.id, Period.closed_at, later.id, later.closed_at)
        .join(first, first.c.id == Period.id)
        .join(later, later.id == first.c.later_id)
        .order_by(Period.id)
    )
    for period, closed_at, after, after_closed_at in rows:
        yield (
            f"{period} was closed at {closed_at.isoformat()}, after {after}, which follows it, at"
            f" {after_closed_at.isoformat()}"
        )


def _recorded_after_the_close(connection):
    """A close settles what was recorded before it: a transaction of a closed period, late
    or not, was recorded by its ``closed_at`` (the expiries a close writes, at it)."""
    rows = connection.execute(
        select(
            Transaction.id, Transaction.type, Period.id, Transaction.recorded_at, Period.closed_at
        )
        .join(Period, Period.id == Transaction.period_id)
        .where(Transaction.recorded_at > Period.closed_at)
        .order_by(Transaction.id)
    )
    for transaction, kind, period, recorded_at, closed_at in rows:
        yield (
            f"transaction {transaction} ({kind}) of {period} was recorded at"
            f" {recorded_at.isoformat()}, after {period} was closed at {closed_at.isoformat()}"
        )


def _late(connection):
    """A late transaction was recorded once the period its ``occurred_at`` falls in was
    closed, and lands in the earliest period open then (SPEC §7): every period before the
    one it is in was closed before it was recorded. The first period still open then is
    named, and whether the transaction is dated in it, by the bounds its close stored.
    Only periods before the one it is in are read: the zone's rules may since have given
    that one bounds that hold its ``occurred_at`` (a midnight moved earlier), and one
    dated where they moved a closed period's end later falls in none.

    Read one by one against every close before its period, each late transaction went
    through half the calendar: 300,000 in 999 daily periods took 15 s on PostgreSQL and
    57 s on SQLite. So the latest close before each period they landed in is read first,
    once a period, and only those recorded by then are read against each close. A sound
    ledger has none, and the check ends there: PostgreSQL took 3 s to compile (JIT) the
    whole statement, planned for rows it then never met."""
    dated_in = and_(Period.start <= Transaction.occurred_at, Transaction.occurred_at < Period.end)
    landed_in = select(Transaction.period_id.label("id")).where(LATE).distinct().subquery()
    latest_close = (
        select(landed_in.c.id, func.max(Period.closed_at).label("closed_at"))
        .join(Period, Period.id < landed_in.c.id)
        .group_by(landed_in.c.id)
        .subquery()
    )
    recorded_by_then = (
        select(Transaction.id)
        .join(latest_close, latest_close.c.id == Transaction.period_id)
        .where(LATE, Transaction.recorded_at <= latest_close.c.closed_at)
    )
    if not connection.execute(select(recorded_by_then.exists())).scalar_one():
        return
    first_open = (
        select(Transaction.id.label("id"), func.min(Period.id).label("period_id"))
        .join(Period, Period.id < Transaction.period_id)
        .where(Transaction.id.in_(recorded_by_then), Transaction.recorded_at <= Period.closed_at)
        .group_by(Transaction.id)
        .subquery()
    )
    rows = connection.execute(
        select(
            Transaction.id,
            Transaction.type,
            Transaction.period_id,
            Transaction.recorded_at,
            Period.id,
            Period.closed_at,
            dated_in,
        )
        .join(first_open, first_open.c.id == Transaction.id)
        .join(Period, Period.id == first_open.c.period_id)
        .order_by(Transaction.id)
    )
    for transaction, kind, landed, recorded_at, period, closed_at, dated in rows:
        yield (
            f"transaction {transaction} ({kind}) is late in {landed}, but was recorded at"
            f" {recorded_at.isoformat()}, before {period}{' (where it is dated)' if dated else ''}"
            f" was closed at {closed_at.isoformat()}"
        )


def _rates_in_closed_periods(connection):
    """No rate starts in a period closed before it was added (SPEC §5: 409): the period's
    statements were issued without it. The last such period is named."""
    latest = (
        select(Rate.id.label("id"), func.max(Period.id).label("period_id"))
        .join(Period, and_(Period.closed_at < Rate.created_at, Rate.effective_from < Period.end))
        .group_by(Rate.id)
        .subquery()
    )
    rows = connection.execute(
        select(
            Rate.id, Rate.kind, Rate.effective_from, Rate.created_at, Period.id, Period.closed_at
        )
        .join(latest, latest.c.id == Rate.id)
        .join(Period, Period.id == latest.c.period_id)
        .order_by(Rate.id)
    )
    for rate, kind, effective_from, created_at, period, closed_at in rows:
        yield (
            f"rate {rate} ({kind}) is in force from {effective_from.isoformat()}, before {period}"
            f" ended, but was added at {created_at.isoformat()}, after {period} was closed at"
            f" {closed_at.isoformat()}"
        )
