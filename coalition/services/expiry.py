"""Expiry: remove what remains in lots past ``expires_at`` (SPEC §6, ``expiry``).

Balances already ignore expired points; this job writes them down as
``expiry`` transactions so that breakage is on the ledger and in settlement.
It is idempotent: each lot is re-read under its member's lock and expired
only if it still holds points, so two instances racing expire a lot once.
Closing a period expires what fell due in it first (:func:`expire_before`),
so a statement's breakage does not depend on when the job last ran.
"""

import re
from datetime import datetime

from coalition.db import ledger_reads, rows
from coalition.domain import lots as lots_domain
from coalition.services import calendar
from coalition.services.book import Book

BATCH = 500
# The id sits beside partners' own under the issuer, so postings may not take its form.
EXTERNAL_ID = re.compile(r"expiry-[0-9]+-[0-9]+")


def external_id(lot_id: int, sequence: int) -> str:
    """An expiry transaction's external_id, of the form :data:`EXTERNAL_ID`: ``sequence``
    counts the lot's expiries (points put back into an expired lot expire again)."""
    return f"expiry-{lot_id}-{sequence}"


def expire_due(
    session,
    now: datetime,
    limit: int = BATCH,
    due_by: datetime | None = None,
    recorded_at: datetime | None = None,
) -> int:
    """Expire up to ``limit`` lots due by ``due_by`` (default: ``now``); returns how
    many were expired. Their expiry transactions are dated when the points expired
    (:func:`coalition.domain.lots.expiries`) and recorded at ``recorded_at``: a
    close's own time, or by default when the batch holds its locks, never before
    ``now``. Recorded at the job's start, a batch that waited for a close read as
    recorded before that close, and before the reversal whose points it expired.

    The expiry transactions and their allocations are written set-based,
    through the same book as postings, with the period totals they add.
    The calendar is locked before the members, in the order postings and
    closes take them.

    The lots due first go first, read in that order from the index of live
    lots by expiry, which a lot leaves once it is expired: each batch reads
    only its own lots, however many were expired before it. (Taken in
    member order, each batch would read past every lot the batches before it
    had emptied: time in the square of a year's lots.)
    """
    due_by = now if due_by is None else due_by
    calendar.lock_calendar(session)
    held, expired = _locked_due(session, due_by, limit)
    if not expired:
        return 0
    # once the members' locks are held too: a burn reversal that put back points it
    # expires may have committed after the calendar lock was granted (shared with postings)
    recorded_at = recorded_at or calendar.dated_once_locked(now, calendar.database_now(session))
    earlier, put_back = ledger_reads.expiry_history(session, [lot.id for lot in expired])
    plans = {lot.id: lots_domain.expiries(lot, put_back.get(lot.id, {})) for lot in expired}
    count = sum(len(plan) for plan in plans.values())
    book = Book.of_lots(
        session, list(held.values()), {"transactions": count, "lots": 0, "allocations": count}
    )
    for lot_id, plan in plans.items():
        for sequence, (at, points) in enumerate(plan, start=earlier[lot_id] + 1):
            _expire(book, held[lot_id], sequence, at, points, recorded_at)
    book.write()
    return len(expired)


def _locked_due(session, due_by: datetime, limit: int) -> tuple[dict, list]:
    """The lots read as due, held under their members' locks, and those of them still due
    once locked. The caller locks the calendar before they are read, so that a close, which
    expires what fell due in the periods it closes, is over by then. Another run, or a
    backdated burn, may still empty the lots read before their members' locks are
    granted: the next due are read then, so that a batch that expires none means that
    none is due, which ends the job's run. (Emptied, they have left the index the next
    read takes; the read is not repeated otherwise.)"""
    while due := ledger_reads.lots_due(session, due_by, limit):
        ledger_reads.lock_members(session, {member_id for _, member_id in due})
        held = ledger_reads.lots(session, lot_ids=[lot_id for lot_id, _ in due])
        lots = [rows.as_lot(row) for row in held.values()]
        expired = lots_domain.expired(lots, due_by)
        if expired or any(lot.remaining > 0 for lot in lots):
            return held, expired
    return {}, []


def _expire(
    book: Book, lot: rows.Lot, sequence: int, at: datetime, points: int, recorded_at: datetime
) -> None:
    """Record an expiry transaction, dated ``at``, taking ``points`` from ``lot``."""
    period, late = calendar.attribute(book.session, at)
    transaction = rows.Transaction(
        partner_id=lot.issuer_id,
        external_id=external_id(lot.id, sequence),
        type="expiry",
        member_id=lot.member_id,
        occurred_at=at,
        recorded_at=recorded_at,
        points=-points,
        period_id=period.id,
        late=late,
        request_hash="",
    )
    book.add_transaction(transaction)
    book.move(transaction, lot, -points)


def expire_all(database, now: datetime) -> int:
    """Expire every due lot, one batch per unit of work."""
    total = 0
    while count := database.run(expire_due, now):
        total += count
    return total


def expire_before(session, end: datetime, now: datetime) -> None:
    """Expire, in the caller's transaction, every lot due by ``end``: a close runs
    this under its calendar lock, so the points that expired in the periods it
    closes are those periods' breakage, not a late item of a later one."""
    while expire_due(session, now, due_by=end, recorded_at=now):
        pass
