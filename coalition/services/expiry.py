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

from sqlalchemy import case, func, select

from coalition.db import models, rows
from coalition.domain import lots as lots_domain
from coalition.services import ledger, members, periods
from coalition.services.book import Book

BATCH = 500
# The id sits beside partners' own under the issuer, so postings may not take its form.
EXTERNAL_ID = re.compile(r"expiry-[0-9]+-[0-9]+")


def external_id(lot_id: int, sequence: int) -> str:
    """An expiry transaction's external_id, of the form :data:`EXTERNAL_ID`: ``sequence``
    counts the lot's expiries (points put back into an expired lot expire again)."""
    return f"expiry-{lot_id}-{sequence}"


def expire_due(session, now: datetime, limit: int = BATCH, due_by: datetime | None = None) -> int:
    """Expire up to ``limit`` lots due by ``due_by`` (default: ``now``); returns how
    many were expired. Their expiry transactions are recorded at ``now``, dated
    when the points expired (see :func:`_history`).

    The expiry transactions and their allocations are written set-based,
    through the same book as postings, with the period totals they add.
    The calendar is locked before the members, in the order postings and
    closes take them.
    """
    due_by = now if due_by is None else due_by
    L = models.Lot
    due = session.execute(
        select(L.id, L.member_id)
        .where(L.remaining > 0, L.expires_at <= due_by)
        .order_by(L.member_id, L.id)
        .limit(limit)
    ).all()
    if not due:
        return 0
    periods.lock_calendar(session)
    members.lock(session, {member_id for _, member_id in due})
    query = select(L.__table__).where(L.id.in_([lot_id for lot_id, _ in due]))
    held = {row["id"]: rows.Lot(**row) for row in session.connection().execute(query).mappings()}
    expired = lots_domain.expired([members.lot_value(row) for row in held.values()], due_by)
    history = _history(session, list(held))
    wanted = {"transactions": len(expired), "lots": 0, "allocations": len(expired)}
    book = Book.of_lots(session, list(held.values()), wanted)
    for lot in expired:
        expiries, put_back_at = history.get(lot.id, (0, None))
        at = lot.expires_at if put_back_at is None else max(lot.expires_at, put_back_at)
        _expire(book, held[lot.id], expiries + 1, at, now)
    book.write()
    return len(expired)


def _history(session, lot_ids: list[int]) -> dict[int, tuple[int, datetime | None]]:
    """Per lot: how many expiries it has had, and when a burn reversal last put points back.

    Points put back after the lot expired were spent, not expired, until then:
    they expire at the reversal, in its period, not in the one the lot expired in.
    """
    A, T = models.Allocation, models.Transaction
    query = (
        select(
            A.lot_id,
            func.count(case((A.type == "expiry", A.id))),
            func.max(case((A.type == "burn_reversal", T.occurred_at))),
        )
        .join(T, T.id == A.transaction_id)
        .where(A.lot_id.in_(lot_ids), A.type.in_(("expiry", "burn_reversal")))
        .group_by(A.lot_id)
    )
    return {
        lot_id: (expiries, put_back_at) for lot_id, expiries, put_back_at in session.execute(query)
    }


def _expire(book: Book, lot: rows.Lot, sequence: int, at: datetime, now: datetime) -> None:
    """Record an expiry transaction, dated ``at``, taking what remains in ``lot``."""
    period, late = periods.attribute(book.session, at)
    transaction = rows.Transaction(
        partner_id=lot.issuer_id,
        external_id=external_id(lot.id, sequence),
        type="expiry",
        member_id=lot.member_id,
        occurred_at=at,
        recorded_at=now,
        points=-lot.remaining,
        period_id=period.id,
        late=late,
        request_hash="",
    )
    book.add_transaction(transaction)
    book.move(ledger.allocation_row(transaction, lot, -lot.remaining))


def expire_all(database, now: datetime) -> int:
    """Expire every due lot, one batch per unit of work."""
    total = 0
    while count := database.run(expire_due, now):
        total += count
    return total


def expire_before(session, end: datetime, now: datetime) -> int:
    """Expire, in the caller's transaction, every lot due by ``end``: a close runs
    this under its calendar lock, so the points that expired in the periods it
    closes are those periods' breakage, not a late item of a later one."""
    total = 0
    while count := expire_due(session, now, due_by=end):
        total += count
    return total
