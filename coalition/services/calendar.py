"""The settlement calendar as stored: closed periods, attribution, the close lock, and
the periods listed (closed, then open up to the ledger's reach).

Posting a transaction holds the calendar lock shared and closing a period
holds it exclusively (PostgreSQL advisory locks), so a transaction either
commits before a close reads the ledger or sees that period as closed and
lands, late, in the next one. A change that postings depend on (the
calendar, the base currency, a partner's currency, a new rate) holds it
exclusively, so it cannot miss a posting in flight, nor a rate slip into a
period a close is closing; so does a partner's suspension, so that none of
its postings is recorded after it. SQLite serialises writers anyway, with the
file's write lock, which the calendar lock takes there.
"""

from datetime import UTC, datetime

from sqlalchemy import select, text
from sqlalchemy.orm import defer

from coalition.db import aggregates, locks, models, on_postgresql
from coalition.domain import periods
from coalition.domain.errors import Invalid
from coalition.services import catalog


def lock_calendar(session, exclusive: bool = False) -> datetime | None:
    """Take the calendar lock for this transaction, before any write to reference data:
    such a write locks the settings row (its generation, :mod:`catalog`), which a close
    locks after the calendar, so the other order could deadlock with a close. On SQLite
    the lock is the file's, which a unit of work that writes takes as it begins (``BEGIN
    IMMEDIATE``): begun here, so that what is dated once locked (a close) is dated after
    the postings that held the file before it. When it was granted, by the database's
    clock, on PostgreSQL (:func:`dated_once_locked`); None on SQLite."""
    if not on_postgresql(session):
        session.connection()
        return None
    granted_at = locks.hold(session, locks.CALENDAR, shared=not exclusive)
    catalog.forget(session)  # what was read before the lock may predate a close
    return granted_at


def dated_once_locked(now: datetime, granted_at: datetime | None) -> datetime:
    """When a unit of work that holds the calendar lock is dated, so that a posting or an
    expiry that waited for a close is dated after that close, and one that committed
    before it, before: on PostgreSQL, when the lock was granted by the database's clock
    (``granted_at``), the one clock every instance shares; on SQLite (one host) this
    process's clock, never before ``now``, when it was asked for.

    Instances on several hosts each dated by their own clock, the order of their dates
    was not that of their locks: a posting by one whose clock ran ahead read as recorded
    after the close, by another, that settled it, and a late one by an instance behind
    as recorded before the close it came after (docs/decisions.md, "Dated by the
    database's clock")."""
    return granted_at if granted_at is not None else max(now, datetime.now(UTC))


def database_now(session) -> datetime | None:
    """Now by the database's clock, on PostgreSQL (:func:`dated_once_locked`); None on
    SQLite, whose units of work are dated by this process's clock."""
    if not on_postgresql(session):
        return None
    return session.execute(text("SELECT clock_timestamp()")).scalar_one().astimezone(UTC)


def last_closed(session) -> periods.Period | None:
    """The latest closed period: its bounds, as every posting needs them."""
    return catalog.current(session).last_closed


def is_closed(session, period_id: str) -> bool:
    """Whether the period is closed, asked of its id alone: its row holds the settlement,
    which where a thousand partners all trade is 93 MB."""
    query = select(models.Period.id).where(models.Period.id == period_id)
    return session.scalar(query) is not None


def attribute(session, occurred_at: datetime) -> tuple[periods.Period, bool]:
    """The period a transaction lands in, and its ``late`` flag (SPEC §7)."""
    reference = catalog.current(session)
    return reference.calendar.attribute(occurred_at, reference.last_closed)


def containing_id(session, at: datetime) -> str | None:
    """The id of the calendar's period containing ``at``; None for an instant so near the
    edge of datetime's range that its period's bounds cannot be written."""
    try:
        return catalog.current(session).calendar.containing(at).id
    except (OverflowError, ValueError):
        return None


def parse(session, period_id: str, location: str = "path") -> periods.Period:
    """The period ``period_id`` names; one that is none is refused naming the parameter
    where the request gave it, in its path or its query (SPEC §10: ``errors``)."""
    try:
        return catalog.current(session).calendar.parse(period_id)
    except Invalid as error:
        raise Invalid(error.message, field="period_id", location=location) from None


def list_periods(session, now: datetime) -> list[periods.ListedPeriod]:
    """Closed periods, then the open ones: from the one after the last closed (before
    any close, the earliest transaction's or now's, whichever is earlier) up to the
    period of now, or of the latest transaction if later: a posting may be dated a few
    minutes ahead (SPEC §5), so in a period's last minutes the next one can already
    hold transactions."""
    calendar = catalog.current(session).calendar
    closed = select(models.Period).options(defer(models.Period.settlement))  # partners² pair lines
    rows = session.scalars(closed.order_by(models.Period.start))
    listed = [periods.ListedPeriod(row.start, row.end, row.id, row.closed_at) for row in rows]
    earliest, latest = aggregates.occurrences(session)
    of_now = calendar.containing(now)
    first = first_open(calendar, last_closed(session), of_now, earliest)
    reached = calendar.containing(ledger_reach(now, latest))
    for period in calendar.between(first, reached):
        listed.append(periods.ListedPeriod(period.start, period.end, period.id))
    return listed


def first_open(
    calendar: periods.Calendar, latest_closed, no_later_than, earliest: datetime | None
) -> periods.Period:
    """The first period a close or a listing starts at: after the last closed one, or
    the earliest transaction's (``no_later_than`` if that is earlier, or nothing is
    posted)."""
    if latest_closed is not None:
        return calendar.following(latest_closed)
    if earliest is None:
        return no_later_than
    return min(calendar.containing(earliest), no_later_than)


def ledger_reach(now: datetime, latest: datetime | None) -> datetime:
    """How far the ledger reaches: now, or its latest transaction if dated later (a
    posting may run 5 minutes ahead, SPEC §5). No period after it is listed or drafted."""
    return max(now, latest or now)
