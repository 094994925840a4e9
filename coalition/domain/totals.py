"""What ledger rows add to their period's settlement totals (SPEC §7).

A close needs two kinds of sum per period: points **redeemed**, by issuer,
redeemer and redemption rate (burn allocations, less burn reversals); and
each partner's **activity**, by the fee rate its earns recorded. Rows are
duck-typed: anything with the ledger columns' attributes will do.
"""

from collections import defaultdict
from decimal import Decimal

ACTIVITY_FIELDS = (
    "points_issued",
    "points_reversed",
    "shortfall_points",
    "points_expired",
    "late_count",
)
NOTHING = (0,) * len(ACTIVITY_FIELDS)
REDEEMING = ("burn", "burn_reversal")

RedeemedKey = tuple[str, str, str, Decimal]  # period, issuer, redeemer, value rate
ActivityKey = tuple[str, str, Decimal | None]  # period, partner, fee rate


def activity(transaction) -> tuple[int, ...]:
    """One transaction's addition to its partner's activity, in ACTIVITY_FIELDS order.

    Points issued are earns and bonuses; returns (earn reversals) recover
    points, and the fee is due on what is issued less what is recovered, at
    the fee rate the return carries over from its earn.
    """
    kind, points = transaction.type, transaction.points
    return (
        points if kind in ("earn", "bonus") else 0,
        -points if kind == "earn_reversal" else 0,
        transaction.shortfall_points,
        -points if kind == "expiry" else 0,
        1 if transaction.late else 0,
    )


def added(
    transactions, allocations
) -> tuple[dict[RedeemedKey, int], dict[ActivityKey, tuple[int, ...]]]:
    """What these new rows add: redeemed points by key, and activity by key
    (keys to which they add nothing are left out)."""
    redeemed: dict[RedeemedKey, int] = defaultdict(int)
    for row in allocations:
        if row.type in REDEEMING:
            redeemed[(row.period_id, row.issuer_id, row.redeemer_id, row.value_rate)] -= row.points
    by_partner: dict[ActivityKey, tuple[int, ...]] = {}
    for row in transactions:
        facts = activity(row)
        if any(facts):  # a burn adds nothing here
            key = (row.period_id, row.partner_id, row.fee_rate)
            earlier = by_partner.get(key, NOTHING)
            by_partner[key] = tuple(map(sum, zip(earlier, facts, strict=True)))
    return dict(redeemed), by_partner


def fee_base(facts: dict[str, int]) -> int:
    """Points that bear the issuance fee: issued less recovered by returns."""
    return facts["points_issued"] - facts["points_reversed"]
