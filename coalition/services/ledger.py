"""Posting points transactions to the ledger (SPEC §6).

Every posting follows one path: find the partner, answer a replay from the
idempotency key, check the clock window, attribute the settlement period,
then let the type's handler *decide* (domain functions, which raise before
anything is written) and *write* (the transaction row, then lots or
allocations). The caller's unit of work commits it all or nothing.
"""

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select, text

from coalition.db import models
from coalition.domain import earning, lots, money
from coalition.domain import rates as rates_domain
from coalition.domain.errors import (
    Forbidden,
    IdempotencyConflict,
    InsufficientPoints,
    Invalid,
    NoRate,
)
from coalition.services import catalog, members, partners, periods, rates

FUTURE_TOLERANCE = timedelta(minutes=5)


def posting_partner(principal, request: dict) -> str:
    """A partner key posts for its own partner; an operator names one."""
    named = request.get("partner_id")
    if principal.role == "partner":
        if named not in (None, principal.partner_id):
            raise Forbidden("a partner key posts only its own partner's transactions")
        return principal.partner_id
    if named is None:
        raise Invalid("partner_id is required", reason="missing_partner")
    return named


def request_hash(body: dict) -> str:
    """A digest of the request's meaning: "350.0" and "350.00" are the same body."""

    def canonical(value):
        if isinstance(value, Decimal):
            return money.plain(value)
        if isinstance(value, datetime):
            return value.astimezone(UTC).isoformat()
        return value

    normal = {key: canonical(value) for key, value in body.items() if value is not None}
    return hashlib.sha256(json.dumps(normal, sort_keys=True).encode()).hexdigest()


def lock_for_posting(session, partner_id: str, external_id: str) -> None:
    """Serialise posts of one idempotency key, and hold the calendar lock shared.

    A retry that arrives while the original is still in flight waits here until
    the original commits, then finds it and answers as a replay, instead of
    racing it to the member's lots (SPEC §6: "under concurrent retries too").
    The calendar lock keeps a close from reading the ledger until this posting
    has committed (:mod:`coalition.services.periods`); the first posting of a
    transaction takes both in one round trip. SQLite serialises writers anyway.
    """
    if session.bind.dialect.name != "postgresql":
        return
    key = f"{partner_id}\x1f{external_id}"
    if periods.calendar_held(session):
        session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key}
        )
        return
    session.execute(
        text(
            "SELECT pg_advisory_xact_lock(hashtextextended(:key, 0)),"
            " pg_advisory_xact_lock_shared(:calendar)"
        ),
        {"key": key, "calendar": periods.CALENDAR_LOCK},
    )
    periods.calendar_taken(session)


def find(session, partner_id: str, external_id: str) -> models.Transaction | None:
    """The transaction of this idempotency key: a bare index probe first, as most posts are new."""
    query = select(models.Transaction.id).where(
        models.Transaction.partner_id == partner_id,
        models.Transaction.external_id == external_id,
    )
    found = session.connection().execute(query).scalar()
    return None if found is None else session.get(models.Transaction, found)


@dataclass
class Posting:
    """What a posting wrote: the transaction, and its lot or its allocations."""

    transaction: models.Transaction
    created: bool = True
    lot: models.Lot | None = None
    allocations: list[models.Allocation] = field(default_factory=list)


def post(session, principal, request: dict, now: datetime) -> Posting:
    """Post one transaction; a replay answers the original, ``created`` False."""
    partner_id = posting_partner(principal, request)
    digest = request_hash({**request, "partner_id": partner_id})
    lock_for_posting(session, partner_id, request["external_id"])
    existing = find(session, partner_id, request["external_id"])
    if existing is not None:
        if existing.request_hash != digest:
            raise IdempotencyConflict(
                f"external_id {request['external_id']!r} was posted with a different body"
            )
        return Posting(existing, created=False)
    partner = partners.active(session, partner_id)
    config = catalog.current(session).settings
    occurred_at = request["occurred_at"]
    if occurred_at > now + FUTURE_TOLERANCE:
        raise Invalid("occurred_at is in the future", reason="occurred_in_future")
    if occurred_at < now - timedelta(days=config.max_backdate_days):
        raise Invalid(
            f"occurred_at is more than {config.max_backdate_days} days ago", reason="too_old"
        )
    period, late = periods.attribute(session, occurred_at)
    transaction = models.Transaction(
        partner_id=partner_id,
        external_id=request["external_id"],
        type=request["type"],
        member_id=request.get("member_id"),
        occurred_at=occurred_at,
        recorded_at=now,
        reason=request.get("reason"),
        category=request.get("category"),
        shortfall_points=0,
        rate_ids="[]",
        period_id=period.id,
        late=late,
        request_hash=digest,
    )
    posting = Posting(transaction)
    HANDLERS[request["type"]](session, posting, partner, config, request)
    session.flush()
    return posting


def _fee_rate(candidates, partner, at) -> rates_domain.Rate | None:
    if partner.id == partners.OPERATOR_PARTNER:
        return None
    return rates_domain.in_force(candidates, "fee", at, partner_id=partner.id)


def _issue(session, posting, partner, config, points: int, used: list, candidates) -> None:
    """Write an earn or bonus and the lot it creates, with the issuer's fee rate."""
    transaction = posting.transaction
    fee = _fee_rate(candidates, partner, transaction.occurred_at)
    used = used + ([fee.id] if fee else [])
    transaction.points = points
    transaction.rate_ids = json.dumps(used)
    transaction.fee_rate = fee.value if fee else None
    members.ensure(session, transaction.member_id)
    session.add(transaction)
    session.flush()
    at = transaction.occurred_at
    posting.lot = models.Lot(
        transaction_id=transaction.id,
        member_id=transaction.member_id,
        issuer_id=partner.id,
        points=points,
        remaining=points,
        earned_at=at,
        available_at=at + timedelta(days=partner.hold_days),
        expires_at=at + timedelta(days=config.points_ttl_days),
    )
    session.add(posting.lot)


def _amount_in_partner_currency(request, partner) -> Decimal:
    currency = request.get("currency") or partner.currency
    if currency != partner.currency:
        raise Invalid(
            f"partner {partner.id!r} transacts in {partner.currency}, not {currency}",
            reason="wrong_currency",
        )
    money.check_places(request["amount"], currency)
    return request["amount"]


def _earn(session, posting, partner, config, request) -> None:
    transaction = posting.transaction
    amount = _amount_in_partner_currency(request, partner)
    candidates = rates.candidates(session, ("earn", "promo", "threshold", "fee"), partner.id)
    earned = earning.points_for_purchase(
        candidates, partner.id, transaction.category, amount, transaction.occurred_at
    )
    transaction.amount, transaction.currency = amount, partner.currency
    _issue(session, posting, partner, config, earned.points, list(earned.rate_ids), candidates)


def _bonus(session, posting, partner, config, request) -> None:
    fees = rates.candidates(session, ("fee",), partner.id)
    _issue(session, posting, partner, config, request["points"], [], fees)


def _burn(session, posting, partner, config, request) -> None:
    transaction = posting.transaction
    at = transaction.occurred_at
    if not members.lock(session, transaction.member_id):
        raise InsufficientPoints(f"member {transaction.member_id!r} has no points")
    redemption = rates_domain.in_force(
        rates.candidates(session, ("redemption",), partner.id),
        "redemption",
        at,
        partner_id=partner.id,
    )
    if redemption is None:
        raise NoRate(f"no redemption rate for partner {partner.id!r} at {at.isoformat()}")
    rows = {row.id: row for row in members.live_lots(session, transaction.member_id)}
    taken = lots.allocate([members.lot_value(row) for row in rows.values()], request["points"], at)
    transaction.points = -request["points"]
    transaction.rate_ids = json.dumps([redemption.id])
    session.add(transaction)
    session.flush()
    for allocation in taken:
        rows[allocation.lot_id].remaining -= allocation.points
        posting.allocations.append(
            record_allocation(
                session, transaction, rows[allocation.lot_id], -allocation.points, redemption.value
            )
        )


def record_allocation(
    session,
    transaction,
    lot,
    points: int,
    value_rate: Decimal | None = None,
    reverses_id: int | None = None,
) -> models.Allocation:
    """Record a signed change to a lot made by ``transaction`` (posted by the redeemer).

    Burns and burn reversals carry the redemption rate, so that settlement
    values pair lines with one GROUP BY over these rows.
    """
    allocation = models.Allocation(
        transaction_id=transaction.id,
        type=transaction.type,
        lot_id=lot.id,
        issuer_id=lot.issuer_id,
        redeemer_id=transaction.partner_id,
        points=points,
        value_rate=value_rate,
        reverses_id=reverses_id,
        period_id=transaction.period_id,
    )
    session.add(allocation)
    return allocation


def _original(session, transaction, request, types: tuple[str, ...]) -> models.Transaction:
    """The transaction a reversal refers to, posted by the same partner."""
    original = find(session, transaction.partner_id, request["original_external_id"])
    if original is None or original.type not in types:
        raise Invalid(
            f"no {' or '.join(types)} with external_id {request['original_external_id']!r}",
            reason="unknown_original",
        )
    if transaction.member_id not in (None, original.member_id):
        raise Invalid("member_id differs from the original transaction's", reason="wrong_member")
    if transaction.occurred_at < original.occurred_at:
        raise Invalid("a reversal cannot occur before its original", reason="before_original")
    transaction.member_id = original.member_id
    transaction.original_id = original.id
    members.lock(session, original.member_id)
    return original


def _earn_reversal(session, posting, partner, config, request) -> None:
    transaction = posting.transaction
    original = _original(session, transaction, request, ("earn", "bonus"))
    lot = session.scalars(
        select(models.Lot)
        .where(models.Lot.transaction_id == original.id)
        .execution_options(populate_existing=True)
    ).one()
    earlier = session.execute(
        select(
            models.Transaction.points,
            models.Transaction.shortfall_points,
            models.Transaction.amount,
        ).where(models.Transaction.original_id == original.id)
    ).all()
    amount = None
    if request.get("amount") is not None:
        amount = _amount_in_partner_currency(request, partner)
        transaction.amount, transaction.currency = amount, partner.currency
    decision = lots.reverse_earn(
        members.lot_value(lot),
        original_amount=original.amount,
        reversed_points=sum(shortfall - points for points, shortfall, _ in earlier),
        reversed_amount=sum((row_amount or Decimal(0) for _, _, row_amount in earlier), Decimal(0)),
        amount=amount,
        points=request.get("points"),
    )
    transaction.points = -decision.taken
    transaction.shortfall_points = decision.shortfall
    transaction.fee_rate = original.fee_rate
    transaction.rate_ids = original.rate_ids
    session.add(transaction)
    session.flush()
    if decision.taken:
        lot.remaining -= decision.taken
        posting.allocations.append(record_allocation(session, transaction, lot, -decision.taken))


def _burn_reversal(session, posting, partner, config, request) -> None:
    transaction = posting.transaction
    original = _original(session, transaction, request, ("burn",))
    burned = {
        row.id: row
        for row in session.scalars(
            select(models.Allocation).where(models.Allocation.transaction_id == original.id)
        )
    }
    restored = {allocation_id: 0 for allocation_id in burned}
    for allocation_id, points in session.execute(
        select(models.Allocation.reverses_id, models.Allocation.points).where(
            models.Allocation.reverses_id.in_(burned)
        )
    ):
        restored[allocation_id] += points
    decisions = lots.restore(
        [
            lots.BurnAllocation(row.id, row.lot_id, row.issuer_id, -row.points, restored[row.id])
            for row in burned.values()
        ],
        request.get("points"),
    )
    transaction.points = sum(points for _, points in decisions)
    transaction.rate_ids = original.rate_ids
    session.add(transaction)
    session.flush()
    lot_rows = {
        row.id: row
        for row in session.scalars(
            select(models.Lot)
            .where(models.Lot.id.in_([allocation.lot_id for allocation, _ in decisions]))
            .execution_options(populate_existing=True)
        )
    }
    for allocation, points in decisions:
        lot = lot_rows[allocation.lot_id]
        lot.remaining += points
        posting.allocations.append(
            record_allocation(
                session, transaction, lot, points, burned[allocation.id].value_rate, allocation.id
            )
        )


HANDLERS = {
    "earn": _earn,
    "bonus": _bonus,
    "burn": _burn,
    "earn_reversal": _earn_reversal,
    "burn_reversal": _burn_reversal,
}
