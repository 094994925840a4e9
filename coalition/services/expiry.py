"""Expiry: remove what remains in lots past ``expires_at`` (SPEC §6, ``expiry``).

Balances already ignore expired points; this job writes them down as
``expiry`` transactions so that breakage is on the ledger and in settlement.
It is idempotent: each lot is re-read under its member's lock and expired
only if it still holds points, so two instances racing expire a lot once.
"""

from dataclasses import asdict
from datetime import datetime

from sqlalchemy import func, select

from coalition.db import models, rows, totals
from coalition.domain import lots as lots_domain
from coalition.services import ledger, members, periods

BATCH = 500


def expire_due(session, now: datetime, limit: int = BATCH) -> int:
    """Expire up to ``limit`` due lots; returns how many were expired."""
    due = session.execute(
        select(models.Lot.id, models.Lot.member_id)
        .where(models.Lot.remaining > 0, models.Lot.expires_at <= now)
        .order_by(models.Lot.member_id, models.Lot.id)
        .limit(limit)
    ).all()
    if not due:
        return 0
    for member_id in sorted({member_id for _, member_id in due}):
        members.lock(session, member_id)
    held = {
        row.id: row
        for row in session.scalars(
            select(models.Lot)
            .where(models.Lot.id.in_([lot_id for lot_id, _ in due]))
            .execution_options(populate_existing=True)
        )
    }
    expired = lots_domain.expired([members.lot_value(row) for row in held.values()], now)
    earlier = dict(
        session.execute(
            select(models.Allocation.lot_id, func.count())
            .where(models.Allocation.type == "expiry", models.Allocation.lot_id.in_(held))
            .group_by(models.Allocation.lot_id)
        ).all()
    )
    periods.lock_calendar(session)
    written = [
        _write_expiry(session, held[lot.id], earlier.get(lot.id, 0) + 1, now) for lot in expired
    ]
    totals.add(session.connection(), [row for row, _ in written], [row for _, row in written])
    return len(expired)


def _write_expiry(
    session, lot: models.Lot, sequence: int, now: datetime
) -> tuple[models.Transaction, rows.Allocation]:
    period, late = periods.attribute(session, lot.expires_at)
    transaction = models.Transaction(
        partner_id=lot.issuer_id,
        external_id=f"expiry-{lot.id}-{sequence}",
        type="expiry",
        member_id=lot.member_id,
        occurred_at=lot.expires_at,
        recorded_at=now,
        points=-lot.remaining,
        shortfall_points=0,
        rate_ids="[]",
        period_id=period.id,
        late=late,
        request_hash="",
    )
    session.add(transaction)
    session.flush()
    allocation = ledger.allocation_row(transaction, lot, -lot.remaining)
    session.add(models.Allocation(**asdict(allocation)))
    lot.remaining = 0
    return transaction, allocation


def expire_all(database, now: datetime) -> int:
    """Expire every due lot, one batch per unit of work."""
    total = 0
    while count := database.run(expire_due, now):
        total += count
    return total
