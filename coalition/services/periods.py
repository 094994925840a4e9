"""The settlement calendar as stored: closed periods, attribution, the close lock.

Posting a transaction holds the calendar lock shared and closing a period
holds it exclusively (PostgreSQL advisory locks), so a transaction either
commits before a close reads the ledger or sees that period as closed and
lands, late, in the next one. A change that postings depend on (the
calendar, the base currency, a partner's currency, a new rate) holds it
exclusively, so it cannot miss a posting in flight, nor a rate slip into a
period a close is closing. SQLite serialises writers anyway.
"""

from datetime import datetime

from coalition.db import locks
from coalition.domain import periods
from coalition.domain.errors import Invalid
from coalition.services import catalog


def lock_calendar(session, exclusive: bool = False) -> None:
    """Take the calendar lock for this transaction, before any write to reference data:
    such a write locks the settings row (its generation, :mod:`catalog`), which a close
    locks after the calendar, so the other order could deadlock with a close."""
    if session.bind.dialect.name != "postgresql":
        return
    locks.hold(session, locks.CALENDAR, shared=not exclusive)
    catalog.forget(session)  # what was read before the lock may predate a close


def last_closed(session) -> periods.Period | None:
    """The latest closed period: its bounds, as every posting needs them."""
    return catalog.current(session).last_closed


def attribute(session, occurred_at: datetime) -> tuple[periods.Period, bool]:
    """The period a transaction lands in, and its ``late`` flag (SPEC §7)."""
    reference = catalog.current(session)
    config = reference.settings
    return periods.attribute(occurred_at, config.period, config.timezone, reference.last_closed)


def parse(session, period_id: str) -> periods.Period:
    config = catalog.current(session).settings
    return periods.parse(period_id, config.period, config.timezone)


def parse_query(session, period_id: str) -> periods.Period:
    """The period a query's ``period_id`` names; one that is none names the field (SPEC §10)."""
    try:
        return parse(session, period_id)
    except Invalid as error:
        raise Invalid(error.message, field="period_id", location="query") from None
