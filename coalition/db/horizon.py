"""How far transaction ids are settled: a page in id order must not pass a posting in flight.

PostgreSQL draws a posting's ids as its unit of work begins, and units commit
in any order, so a committed id can sit above one still being written. A
keyset page that showed the higher one, with a cursor past it, would never
show the other: a partner reading its transactions page by page while
postings go on would lose some for good.

Every unit of work that draws transaction ids holds the calendar lock
(:data:`coalition.db.locks.CALENDAR`; postings and the expiry job shared, a
close exclusively) from before the draw until it commits. Taking it
exclusively waits for those in flight, and the highest id committed then
bounds every id still to come, since later draws are higher (the sequences
hand out ids one at a time, ``CACHE 1``, PostgreSQL's default). While the
page waits, new postings queue behind it.

The wait runs on a second connection, beside the page's own open
transaction; a lock some other session queues behind that transaction (an
``ALTER TABLE``) would hold up a posting the wait is waiting for, unseen by
PostgreSQL's deadlock detector. So the wait gives up after :data:`WAIT`,
and the page is answered 503, to be asked again.

What is settled stays settled, so each process remembers the highest settled
id it has seen, and a page within it takes no lock, until a connection of
its engine is found broken: a failover to an asynchronous standby loses what
the primary had not sent it, and the promoted server draws those ids again,
so a page over them, taken for settled, would pass the postings in flight
under them (after a restart of the server, it costs one wait); and a wait
begun before a broken connection was found keeps nothing of what it read,
which may be the old primary's. A database emptied or restored under running
processes needs :func:`forget` (the test suite calls it between tests) or a
restart. SQLite lets one writer in at a time, so its ids commit in order.
"""

import threading
import weakref

from sqlalchemy import event, text
from sqlalchemy.engine import Engine

from coalition.db import aggregates, locks, on_postgresql

WAIT = "10s"  # at most, for the postings in flight (a close of millions of rows takes seconds)

# engine → the highest id known settled, and how many times a broken connection of
# it was found; both changed under _changing. A race can only leave the id lower
# than it could be, which costs a wait, never a page.
_settled = weakref.WeakKeyDictionary()
_breaks = weakref.WeakKeyDictionary()
_changing = threading.Lock()


def bound(session, last_id: int) -> int | None:
    """None if every id up to ``last_id`` is known settled; else, once the postings in
    flight have committed, the highest settled id: the page is read again up to it."""
    engine = session.bind
    if not on_postgresql(engine) or last_id <= _settled.get(engine, 0):
        return None
    breaks = _breaks.get(engine, 0)
    with engine.connect() as connection, connection.begin():
        connection.execute(text(f"SET LOCAL lock_timeout = '{WAIT}'"))
        locks.hold(connection, locks.CALENDAR)  # past WAIT, the database is Busy: 503
        settled = aggregates.largest_id(connection, "transactions")
    with _changing:
        if _breaks.get(engine, 0) == breaks:
            _settled[engine] = max(settled, _settled.get(engine, 0))
    return settled


@event.listens_for(Engine, "handle_error")
def _on_error(context) -> None:
    """Forget what the engine knew settled once one of its connections is found broken:
    the server it reaches next may be a standby promoted without the last ids."""
    if context.is_disconnect and context.engine is not None:
        with _changing:
            _breaks[context.engine] = _breaks.get(context.engine, 0) + 1
            _settled.pop(context.engine, None)


def forget() -> None:
    """Forget what is known settled: the ids of an emptied or restored database start again."""
    _settled.clear()
