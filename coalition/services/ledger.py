"""Posting points transactions to the ledger (SPEC §6).

Postings are made a chunk at a time: one for a single POST, a few dozen
for a batch or an import. The chunk's :class:`~coalition.services.book.Book`
locks and reads what it can touch; then each posting in turn finds its
partner, answers a replay from its idempotency key, checks the clock window,
attributes the settlement period, and lets its type's handler *decide*
(domain functions, which raise before anything changes) and *record* the
new rows in the book. A refused posting leaves nothing; the book writes the
rest at once, and the caller's unit of work commits it all or nothing.
"""

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from coalition import auth
from coalition.db import rows
from coalition.domain import earning, lots, money, periods
from coalition.domain.errors import (
    CoalitionError,
    Forbidden,
    IdempotencyConflict,
    InsufficientPoints,
    Invalid,
    NoRate,
)
from coalition.services import calendar, catalog, partners
from coalition.services.book import Book


def posting_partner(principal, request: dict) -> str:
    """A partner key posts for its own partner; an operator names one."""
    named = request.get("partner_id")
    if principal.role == "partner":
        if named not in (None, principal.partner_id):
            raise Forbidden("a partner key posts only its own partner's transactions")
        return principal.partner_id
    if named is None:
        raise Invalid("partner_id is required", reason="missing_partner", field="partner_id")
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


@dataclass
class Posting:
    """A posted transaction with its lot or its allocations; ``created`` False for a replay."""

    transaction: rows.Transaction
    created: bool = True
    lot: rows.Lot | None = None
    allocations: list[rows.Allocation] = field(default_factory=list)


def post(session, principal, request: dict, now: datetime) -> Posting:
    """Post one transaction; a refusal raises its domain error."""
    (outcome,) = post_chunk(session, principal, [request], now)
    if isinstance(outcome, CoalitionError):
        raise outcome
    return outcome


def post_chunk(session, principal, requests: list, now: datetime) -> list:
    """Post each request in order; the outcome of each is a Posting or the error that refused it.

    A request may already be the error that refused it (it failed validation
    upstream): it is its own outcome, so outcomes line up with the requests.

    ``now`` is when they were asked for: their ``occurred_at`` is held to it (SPEC §5).
    They are recorded once their locks are held, though, never before ``now``: one that
    waited for a close and then lands late in the next period is recorded after that
    close, as the close is dated once it holds the calendar lock. On PostgreSQL both
    are read on the database's clock, ``now`` moved by how far it ran ahead of this
    process's as the locks were granted, so that no wait, for them or after them (a
    member's lock behind another burn), moves the window: instances whose clocks differ
    hold postings to one window, and date them in the order of their locks
    (:func:`calendar.dated_once_locked`).
    """
    items = [_with_partner(principal, request) for request in requests]
    book = Book.open(session, [item for item in items if not isinstance(item, Exception)])
    auth.check_unrevoked(catalog.current(session), principal)  # read after the locks
    if book.clock_offset is not None:
        now += book.clock_offset
    asked = _Asked(now, calendar.dated_once_locked(now, book.granted_at), principal.key_id)
    outcomes = [
        item if isinstance(item, Exception) else _outcome(book, *item, asked) for item in items
    ]
    book.write()
    return outcomes


@dataclass(frozen=True)
class _Asked:
    """What a chunk's postings share: when they were asked for (``now``), when they are
    recorded, and the API key that asked, which each transaction names so that what a
    key posted can be told from what the partner's other keys did (a key leaked)."""

    now: datetime
    recorded_at: datetime
    key_id: str | None


def _with_partner(principal, request) -> tuple[str, dict] | Exception:
    """``(partner_id, request)``, or why the request cannot be posted at all."""
    if isinstance(request, Exception):
        return request
    try:
        return posting_partner(principal, request), request
    except CoalitionError as error:
        return error


def _outcome(book: Book, partner_id: str, request: dict, asked: _Asked):
    """The request's Posting, or the error that refused it: one refusal spoils no other."""
    try:
        return _post(book, partner_id, request, asked)
    except CoalitionError as error:
        return error


def _post(book: Book, partner_id: str, request: dict, asked: _Asked) -> Posting:
    digest = request_hash({**request, "partner_id": partner_id})
    existing = book.transactions.get((partner_id, request["external_id"]))
    if existing is not None:
        if existing.request_hash != digest:
            raise _conflict(existing, request)
        return _replay(book, existing)
    partner = partners.active(book.session, partner_id)
    _check_partner_currency(request, partner)
    config = catalog.current(book.session).settings
    occurred_at = request["occurred_at"]
    periods.check_occurred_at(occurred_at, asked.now, config.max_backdate_days)
    period, late = calendar.attribute(book.session, occurred_at)
    transaction = rows.Transaction(
        partner_id=partner_id,
        external_id=request["external_id"],
        type=request["type"],
        member_id=request.get("member_id"),
        occurred_at=occurred_at,
        recorded_at=asked.recorded_at,
        reason=request.get("reason"),
        category=request.get("category"),
        period_id=period.id,
        late=late,
        request_hash=digest,
        key_id=asked.key_id,
    )
    return HANDLERS[request["type"]](book, transaction, partner, config, request)


#: What a posting keeps of the fields its type takes as they were sent, so a retry can be
#: held to them (a burn's points kept negative). A reversal keeps its member and original
#: by id and its points as taken, so a retry of one is told only that its body differs.
_KEPT_AS_SENT = {
    "earn": ("type", "member_id", "occurred_at", "amount", "currency", "category"),
    "bonus": ("type", "member_id", "occurred_at", "points", "reason"),
    "burn": ("type", "member_id", "occurred_at", "points"),
}


def _conflict(existing: rows.Transaction, request: dict) -> IdempotencyConflict:
    """The refusal of a retry with another body, naming what changed where the row can tell:
    the fingerprint says only that the bodies differ, and a till's developer needs to know where.
    """
    changed = [
        name
        for name in _KEPT_AS_SENT.get(existing.type, ())
        if request.get(name)
        != (abs(existing.points) if name == "points" else getattr(existing, name))
    ]
    message = f"external_id {request['external_id']!r} was posted with a different body"
    return IdempotencyConflict(f"{message}; changed: {', '.join(changed)}" if changed else message)


def _replay(book: Book, transaction: rows.Transaction) -> Posting:
    return Posting(
        transaction, False, book.lot_of(transaction.id), book.allocations.get(transaction.id, [])
    )


def _issue(book, transaction, partner, config, points: int, used: tuple[int, ...]) -> Posting:
    """Record an earn or bonus and the lot it creates, with the issuer's fee rate."""
    at = transaction.occurred_at
    fee = catalog.current(book.session).fee_rate(partner.id, at)
    transaction.points = points
    transaction.rate_ids = used + ((fee.id,) if fee else ())
    transaction.fee_rate = fee.value if fee else None
    book.add_member(transaction.member_id, transaction.recorded_at)
    book.add_transaction(transaction)
    lot = rows.Lot(
        transaction_id=transaction.id,
        member_id=transaction.member_id,
        issuer_id=partner.id,
        points=points,
        remaining=points,
        earned_at=at,
        available_at=at + timedelta(days=partner.hold_days),
        expires_at=at + timedelta(days=config.points_ttl_days),
    )
    book.add_lot(lot)
    return Posting(transaction, lot=lot)


def _check_partner_currency(request, partner) -> None:
    """A currency named in any posting must be the partner's (SPEC §6), also where
    the type carries no amount: a till sending the wrong one is misconfigured."""
    currency = request.get("currency")
    if currency is not None and currency != partner.currency:
        raise Invalid(
            f"partner {partner.id!r} transacts in {partner.currency}, not {currency}",
            reason="wrong_currency",
            field="currency",
        )


def _amount_of(request, partner) -> Decimal:
    """The posted amount, refused if it has more decimals than the partner's currency (SPEC §3)."""
    money.check_places(request["amount"], partner.currency)
    return request["amount"]


def _earn(book, transaction, partner, config, request) -> Posting:
    amount = _amount_of(request, partner)
    at = transaction.occurred_at
    candidates = catalog.current(book.session).rates_for_purchase(
        partner.id, transaction.category, at
    )
    earned = earning.points_for_purchase(candidates, partner.id, transaction.category, amount, at)
    transaction.amount, transaction.currency = amount, partner.currency
    return _issue(book, transaction, partner, config, earned.points, earned.rate_ids)


def _bonus(book, transaction, partner, config, request) -> Posting:
    return _issue(book, transaction, partner, config, request["points"], ())


def _burn(book, transaction, partner, config, request) -> Posting:
    at = transaction.occurred_at
    if transaction.member_id not in book.members:
        raise InsufficientPoints(f"member {transaction.member_id!r} has no points")
    redemption = catalog.current(book.session).redemption_rate(partner.id, at)
    if redemption is None:
        raise NoRate(f"no redemption rate for partner {partner.id!r} at {at.isoformat()}")
    taken = _spent(book, transaction.member_id, request["points"], at)
    book.ids.reserve("allocations", len(taken))
    transaction.points = -request["points"]
    transaction.rate_ids = (redemption.id,)
    book.add_transaction(transaction)
    posting = Posting(transaction)
    for allocation in taken:
        posting.allocations.append(
            book.move(
                transaction,
                book.lots[allocation.lot_id],
                -allocation.points,
                redemption.value,
            )
        )
    return posting


def _spent(book, member_id: str, points: int, at: datetime) -> list[lots.Allocation]:
    """The allocations of a burn: from the member's first live lots, if they hold enough
    at ``at``; else from all of them, which also says why a refused burn is refused."""
    try:
        return lots.allocate([rows.as_lot(lot) for lot in book.live_lots(member_id)], points, at)
    except InsufficientPoints:
        if not book.read_every_live_lot(member_id):
            raise
    return lots.allocate([rows.as_lot(lot) for lot in book.live_lots(member_id)], points, at)


def _original(book, transaction, request) -> rows.Transaction:
    """The transaction a reversal refers to, posted by the same partner."""
    types = lots.REVERSES[transaction.type]
    original = book.transactions.get((transaction.partner_id, request["original_external_id"]))
    if original is None or original.type not in types:
        raise Invalid(
            f"no {' or '.join(types)} of partner {transaction.partner_id} with external_id"
            f" {request['original_external_id']!r}",
            reason="unknown_original",
            field="original_external_id",
        )
    if transaction.member_id not in (None, original.member_id):
        raise Invalid(
            "member_id differs from the original transaction's",
            reason="wrong_member",
            field="member_id",
        )
    if transaction.occurred_at < original.occurred_at:
        raise Invalid(
            "a reversal cannot occur before its original",
            reason="before_original",
            field="occurred_at",
        )
    transaction.member_id = original.member_id
    transaction.original_id = original.id
    return original


def _earn_reversal(book, transaction, partner, config, request) -> Posting:
    original = _original(book, transaction, request)
    lot = book.lot_of(original.id)
    earlier = book.earn_reversals.get(original.id, [])
    amount = None
    if request.get("amount") is not None:
        amount = _amount_of(request, partner)
    purchase = original.amount
    returned = sum((row.amount or Decimal(0) for row in earlier), Decimal(0))
    if purchase is not None:  # quoted by a refusal: in the currency's places, not NUMERIC's four
        purchase = money.round_half_even(purchase, original.currency)
        returned = money.round_half_even(returned, original.currency)
    decision = lots.reverse_earn(
        rows.as_lot(lot),
        at=transaction.occurred_at,
        original_amount=purchase,
        reversed_points=sum(_cancelled(row) for row in earlier),
        reversed_amount=returned,
        amount=amount,
        points=request.get("points"),
    )
    if amount is not None:
        transaction.amount, transaction.currency = amount, partner.currency
    transaction.points = -decision.taken
    transaction.shortfall_points = decision.shortfall
    transaction.fee_rate = original.fee_rate
    transaction.rate_ids = _earned_with_fee_now(book, original, partner.id)
    book.add_transaction(transaction)
    posting = Posting(transaction)
    if decision.taken:
        posting.allocations.append(book.move(transaction, lot, -decision.taken))
    return posting


def _earned_with_fee_now(book, original, issuer_id: str) -> tuple[int, ...]:
    """A return's rates: those its earn's points were earned at, and the fee rate in force
    now at the earn's date, which the fee it gives back is valued at (SPEC §7: a rate
    added late re-prices it, docs/decisions.md), not the one the earn was posted with."""
    reference = catalog.current(book.session)
    fee = reference.fee_rate(issuer_id, original.occurred_at)
    fee_ids = {rate.id for rate in reference.rates_of(("fee",), issuer_id)}
    earned_at = tuple(rate_id for rate_id in original.rate_ids if rate_id not in fee_ids)
    return earned_at + ((fee.id,) if fee else ())


def _cancelled(earlier_return) -> int:
    """The points an earlier return cancelled of its earn: those it took back (its points,
    negative) and those the lot no longer held (its shortfall); a settlement's
    ``points_reversed`` counts only the first."""
    return earlier_return.shortfall_points - earlier_return.points


def _burn_reversal(book, transaction, partner, config, request) -> Posting:
    original = _original(book, transaction, request)
    burned = {row.id: row for row in book.allocations.get(original.id, [])}
    decisions = lots.restore(
        [
            lots.BurnAllocation(
                row.id, row.lot_id, row.issuer_id, -row.points, book.restored.get(row.id, 0)
            )
            for row in burned.values()
        ],
        request.get("points"),
    )
    transaction.points = sum(points for _, points in decisions)
    # valued at the burn's rate as it stands now (SPEC §7), which a rate added late may
    # have changed; the burn's own rate still covers its date, so there always is one
    redemption = catalog.current(book.session).redemption_rate(partner.id, original.occurred_at)
    transaction.rate_ids = (redemption.id,)
    book.add_transaction(transaction)
    book.ids.reserve("allocations", len(decisions))
    posting = Posting(transaction)
    for allocation, points in decisions:
        row = burned[allocation.id]
        posting.allocations.append(
            book.move(transaction, book.lots[row.lot_id], points, row.value_rate, row.id)
        )
    return posting


# Each decides one type, called alike: (book, transaction, partner, config, request).
# Only the types that issue points read ``config`` (for the lot's dates).
HANDLERS = {
    "earn": _earn,
    "bonus": _bonus,
    "burn": _burn,
    "earn_reversal": _earn_reversal,
    "burn_reversal": _burn_reversal,
}
