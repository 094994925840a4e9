"""What ledger rows add to their period's settlement totals (SPEC §7).

A close needs two kinds of sum per period: points **redeemed**, by issuer,
redeemer and redemption rate (burn allocations, less burn reversals); and
each partner's **activity**, by the fee rate its earns recorded. Rows are
duck-typed: anything with the ledger columns' attributes will do.
"""

from collections import defaultdict
from decimal import Decimal
from typing import NamedTuple

from coalition.domain import lots


class PartnerActivity(NamedTuple):
    """A partner's activity in a period (or what one transaction adds to it), as its
    settlement entry reports it: points issued (earns and bonuses), recovered by its
    returns, shortfalls of those returns, expired from its lots, and late items."""

    points_issued: int = 0
    points_reversed: int = 0
    shortfall_points: int = 0
    points_expired: int = 0
    late_count: int = 0

    def plus(self, other: "PartnerActivity") -> "PartnerActivity":
        return PartnerActivity(*map(sum, zip(self, other, strict=True)))

    @property
    def fee_base(self) -> int:
        """Points that bear the issuance fee: those that stayed issued."""
        return net_issued(self.points_issued, self.points_reversed)


def net_issued(points_issued: int, points_reversed: int) -> int:
    """Points issued that stayed issued: earns and bonuses less what returns recovered.
    The issuer's fee is due on these, and the KPIs' redemption and breakage rates are
    shares of them."""
    return points_issued - points_reversed


ACTIVITY_FIELDS = PartnerActivity._fields  # the partner_totals counters, in this order
REDEEMING = ("burn", "burn_reversal")
RETURN = "earn_reversal"  # a return: what it takes back is no longer earned

RedeemedKey = tuple[str, str, str, Decimal]  # period, issuer, redeemer, value rate
ActivityKey = tuple[str, str, Decimal | None]  # period, partner, fee rate


def activity(transaction) -> PartnerActivity:
    """One transaction's addition to its partner's activity.

    Points issued are earns and bonuses; returns (earn reversals) recover
    points, and the fee is due on what is issued less what is recovered, at
    the fee rate the return carries over from its earn.
    """
    kind, points = transaction.type, transaction.points
    return PartnerActivity(
        points if kind in lots.ISSUING else 0,
        -points if kind == RETURN else 0,
        transaction.shortfall_points,
        -points if kind == "expiry" else 0,
        1 if transaction.late else 0,
    )


def added(
    transactions, allocations
) -> tuple[dict[RedeemedKey, int], dict[ActivityKey, PartnerActivity]]:
    """What these new rows add: redeemed points by key, and activity by key
    (keys to which they add nothing are left out)."""
    redeemed: dict[RedeemedKey, int] = defaultdict(int)
    for row in allocations:
        if row.type in REDEEMING:
            redeemed[(row.period_id, row.issuer_id, row.redeemer_id, row.value_rate)] -= row.points
    by_partner: dict[ActivityKey, PartnerActivity] = {}
    for row in transactions:
        row_activity = activity(row)
        if any(row_activity):  # a burn adds nothing here, unless it is late
            key = (row.period_id, row.partner_id, row.fee_rate)
            by_partner[key] = by_partner.get(key, PartnerActivity()).plus(row_activity)
    return dict(redeemed), by_partner
