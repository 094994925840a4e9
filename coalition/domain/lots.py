"""The points ledger over lot values (SPEC §6).

Every earn or bonus creates a *lot*; every burn takes points from lots as
*allocations*. These functions decide which lot gives or takes how many
points; the service layer applies the decision to the database under a lock
on the member. Nothing here mutates: decisions are returned as values.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from coalition.domain import money
from coalition.domain.errors import InsufficientPoints, Invalid

#: The transaction types a partner posts, and the one only the expiry job writes.
POSTABLE = ("earn", "bonus", "burn", "earn_reversal", "burn_reversal")
TYPES = POSTABLE + ("expiry",)
ISSUING = ("earn", "bonus")  # the types that create a lot
REVERSES = {"earn_reversal": ISSUING, "burn_reversal": ("burn",)}  # what each reversal takes back
#: The fields a posting of each type must carry, and those it must not (SPEC §6), besides
#: the external_id, type and occurred_at of every one; an earn_reversal also gives one of
#: amount (a part of the purchase returned) or points, never both.
TYPE_FIELDS = {
    "earn": ({"member_id", "amount", "currency"}, {"points", "reason", "original_external_id"}),
    "bonus": ({"member_id", "points", "reason"}, {"amount", "category", "original_external_id"}),
    "burn": ({"member_id", "points"}, {"amount", "category", "reason", "original_external_id"}),
    "earn_reversal": ({"original_external_id"}, {"category", "reason"}),
    "burn_reversal": ({"original_external_id"}, {"amount", "category", "reason"}),
}


@dataclass(frozen=True)
class Lot:
    """Points a member received in one earn or bonus.

    Attributes:
        issuer_id: the partner that issued the points and pays when they are
            redeemed elsewhere.
        points: what the lot was created with.
        remaining: what is still in it.
        earned_at: the ``occurred_at`` of the earn or bonus.
        available_at: from when it may be spent (``earned_at + hold_days``).
        expires_at: from when it may no longer be spent.
    """

    id: int
    issuer_id: str
    points: int
    remaining: int
    earned_at: datetime
    available_at: datetime
    expires_at: datetime

    def spendable_at(self, at: datetime) -> bool:
        return self.available_at <= at < self.expires_at

    def pending_at(self, at: datetime) -> bool:
        """On hold at ``at``, and spendable before it expires: a hold that outlasts the
        lot (a partner's ``hold_days`` at least ``points_ttl_days``) never ends."""
        return at < self.available_at < self.expires_at


@dataclass(frozen=True)
class Allocation:
    """Points moved between one lot and one transaction (always positive here)."""

    lot_id: int
    issuer_id: str
    points: int


def spending_place(lot) -> tuple:
    """Where a lot comes in the order burns spend lots: the one expiring first, then the
    oldest, then the lowest id."""
    return lot.expires_at, lot.earned_at, lot.id


def allocate(lots: list[Lot], points: int, at: datetime) -> list[Allocation]:
    """Spend ``points`` from the lots spendable at ``at``.

    The lot expiring first goes first, then the oldest, then the lowest id,
    so members lose as few points to expiry as possible.
    """
    spendable = sorted(
        (lot for lot in lots if lot.remaining > 0 and lot.spendable_at(at)), key=spending_place
    )
    available = sum(lot.remaining for lot in spendable)
    if available < points:
        raise InsufficientPoints(_short_of(points, available, lots, at))
    allocations, wanted = [], points
    for lot in spendable:
        if wanted == 0:
            break
        taken = min(lot.remaining, wanted)
        allocations.append(Allocation(lot.id, lot.issuer_id, taken))
        wanted -= taken
    return allocations


def _short_of(points: int, available: int, lots: list[Lot], at: datetime) -> str:
    """Why a burn is refused, with the points still on hold: a cashier can tell the
    member when they can spend them, where "only 0 are available" tells nothing. A lot
    earned after a backdated burn's date was no points of the member's at that date."""
    said = f"burn of {_points(points)} but only {available} {_is_or_are(available)} available"
    pending = [
        lot for lot in lots if lot.remaining > 0 and lot.earned_at <= at and lot.pending_at(at)
    ]
    if not pending:
        return said
    first = min(lot.available_at for lot in pending)
    held = sum(lot.remaining for lot in pending)
    when = "spendable" if held == 1 else "the first of them spendable"
    return f"{said}; {held} more {_is_or_are(held)} pending, {when} from {first.isoformat()}"


def _points(count: int) -> str:
    return f"{count} point" if count == 1 else f"{count} points"


def _returnable(left: int) -> str:
    """What a refused return may still take back, in points whichever way earlier returns
    were made: by points they returned no amount, so the amount left would say too much."""
    return f"{_points(left)} can still be returned" if left else "nothing is left to return"


def _is_or_are(count: int) -> str:
    return "is" if count == 1 else "are"


@dataclass(frozen=True)
class BurnAllocation:
    """An allocation of a burn, with what reversals already put back."""

    id: int
    lot_id: int
    issuer_id: str
    points: int
    restored: int

    @property
    def restorable(self) -> int:
        return self.points - self.restored


def restore(burn: list[BurnAllocation], points: int | None) -> list[tuple[BurnAllocation, int]]:
    """Decide which burn allocations a burn reversal puts points back into.

    The newest allocation is undone first, so a partial reversal returns the
    points that expire last (the burn took them last). ``points=None`` means
    everything not yet reversed.
    """
    restorable = sum(allocation.restorable for allocation in burn)
    if restorable == 0:
        raise Invalid(
            "the burn is reversed in full already: no points are left to put back",
            reason="over_reversal",
        )
    wanted = restorable if points is None else points
    if wanted <= 0 or wanted > restorable:
        raise Invalid(
            f"burn reversal of {_points(wanted)} but {restorable} can still be reversed",
            reason="over_reversal",
        )
    decisions = []
    for allocation in sorted(burn, key=lambda a: a.id, reverse=True):
        if wanted == 0:
            break
        back = min(allocation.restorable, wanted)
        if back:
            decisions.append((allocation, back))
            wanted -= back
    return decisions


@dataclass(frozen=True)
class EarnReversal:
    """What a return takes back from the original lot.

    Attributes:
        points: points the return cancels (counted against the original).
        taken: points actually removed from the lot.
        shortfall: points the lot no longer held; the issuer bears them.
    """

    points: int
    taken: int

    @property
    def shortfall(self) -> int:
        return self.points - self.taken


def reverse_earn(
    lot: Lot,
    *,
    at: datetime,
    original_amount: Decimal | None,
    reversed_points: int,
    reversed_amount: Decimal,
    amount: Decimal | None = None,
    points: int | None = None,
) -> EarnReversal:
    """Points a return takes back; refused (``over_reversal``) beyond what was earned and
    not yet returned.

    By amount the points are ``floor(original points × amount / original
    amount)`` for each return on its own, as SPEC §6 writes it: a purchase
    returned in pieces may give back a point or so less than one whole return
    would, which only the issuer posting the pieces bears (it may return by
    ``points`` instead). Reversals in total never exceed the original points
    nor the original amount.

    The lot holds nothing for a return dated ``at`` or after its expiry: its
    points are breakage then, whether or not the expiry job has removed them
    yet, so the whole return is a shortfall either way.

    ``reversed_points`` counts the points earlier returns cancelled, their
    shortfalls included (a settlement's ``points_reversed`` counts only what
    was taken from lots).
    """
    if amount is not None:
        if original_amount is None:
            raise Invalid("a bonus can only be reversed by points", field="amount")
        if reversed_amount + amount > original_amount:
            raise Invalid(
                f"returns would total {reversed_amount + amount}, more than the purchase "
                f"amount {original_amount}: {_returnable(lot.points - reversed_points)}",
                reason="over_reversal",
            )
        points = money.floor_points(lot.points * amount / original_amount)
    if reversed_points + points > lot.points:
        raise Invalid(
            f"returns would total {reversed_points + points} points, more than the "
            f"{lot.points} earned: {_returnable(lot.points - reversed_points)}",
            reason="over_reversal",
        )
    held = lot.remaining if at < lot.expires_at else 0
    return EarnReversal(points, min(points, held))


def expired(lots: list[Lot], at: datetime) -> list[Lot]:
    """Lots past their expiry that still hold points (the expiry job removes them)."""
    return [lot for lot in lots if lot.remaining > 0 and lot.expires_at <= at]


def expiries(lot: Lot, put_back: dict[datetime, int]) -> list[tuple[datetime, int]]:
    """When the points left in an expired lot expired: ``(instant, points)``, earliest first.

    ``put_back`` holds, by the instant of the burn reversal, points reversals put
    back into the lot after it expired and no expiry has taken yet. Those were
    spent, not expired, until they came back, so they expire then, in that
    reversal's period; the rest expired with the lot, at ``expires_at``. Should
    the lot hold less than was put back (a burn dated before the expiry, posted
    after, took some), the earliest put back count as gone first.
    """
    due = sorted((at, points) for at, points in put_back.items() if points > 0)
    missing = max(sum(points for _, points in due) - lot.remaining, 0)
    later = []
    for at, points in due:
        gone = min(points, missing)
        missing -= gone
        if points > gone:
            later.append((at, points - gone))
    at_expiry = lot.remaining - sum(points for _, points in later)
    return ([(lot.expires_at, at_expiry)] if at_expiry > 0 else []) + later


class Expiring(NamedTuple):
    """Points of a member's that expire at one instant."""

    points: int
    expires_at: datetime


@dataclass(frozen=True)
class Balance:
    """What a member holds at one instant; expired points never count."""

    available: int
    pending: int
    expiring: list[Expiring]


EXPIRING_HORIZON = timedelta(days=90)


def balance(lots: list[Lot], at: datetime) -> Balance:
    """Available and pending points, and what of them expires within 90 days by date.

    Points whose hold outlasts their lot are in none of these: they can never be spent.
    This is the rule; the endpoint reads the same figures summed by the database
    (:func:`coalition.db.aggregates.member_balance`, one statement instead of every lot),
    and tests/integration/test_member_balance.py holds the two equal: change both.
    """
    live = [
        lot for lot in lots if lot.remaining > 0 and (lot.spendable_at(at) or lot.pending_at(at))
    ]
    expiring: dict[datetime, int] = {}
    for lot in live:
        if lot.expires_at <= at + EXPIRING_HORIZON:
            expiring[lot.expires_at] = expiring.get(lot.expires_at, 0) + lot.remaining
    return Balance(
        available=sum(lot.remaining for lot in live if lot.spendable_at(at)),
        pending=sum(lot.remaining for lot in live if lot.pending_at(at)),
        expiring=[Expiring(points, when) for when, points in sorted(expiring.items())],
    )
