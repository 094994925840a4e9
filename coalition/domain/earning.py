"""Points for a purchase (SPEC §6, ``earn``).

``floor(amount × earn × promo) + threshold``: the product is exact in
Decimal and floored once, so a member is never credited a fraction of a
point and never loses one to an intermediate rounding.
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from coalition.domain import money, rates
from coalition.domain.errors import Invalid, NoRate


@dataclass(frozen=True)
class Earning:
    """Points a purchase earns and the rate versions that decided it."""

    points: int
    rate_ids: tuple[int, ...]


def points_for_purchase(
    all_rates, partner_id: str, category: str | None, amount: Decimal, at: datetime
) -> Earning:
    earn = rates.in_force(all_rates, "earn", at, partner_id=partner_id, category=category)
    if earn is None:
        raise NoRate(f"no earn rate for partner {partner_id} at {at.isoformat()}")
    promo = rates.in_force(all_rates, "promo", at, partner_id=partner_id, category=category)
    threshold = rates.threshold_reached(all_rates, at, partner_id, amount)
    multiplier = promo.value if promo else Decimal(1)
    threshold_points = int(threshold.value) if threshold else 0
    points = money.floor_points(amount * earn.value * multiplier) + threshold_points
    if points > money.MAX_POINTS:
        raise Invalid(f"a purchase may earn at most {money.MAX_POINTS} points", field="amount")
    if points <= 0:
        raise Invalid(
            f"a purchase of {amount} earns 0 points", reason="zero_points", field="amount"
        )
    used = (earn, promo, threshold)
    return Earning(points, tuple(rate.id for rate in used if rate is not None))
