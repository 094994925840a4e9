"""Programme KPIs: what a loyalty manager tracks, per partner and coalition-wide, per period.

The database hands over counts and sums for one *scope* (one partner, or the
whole coalition) in one settlement period; this module turns them into the
measures, exactly, in Decimal, with one half-even rounding per figure.

A period's KPIs count the transactions that **belong** to it (SPEC §7: the
period containing ``occurred_at`` while it is open, else the earliest open
period, marked late) — the same rows its settlement counts. So a closed
period's KPIs never change, and its points figures match its statements:
a statement's ``points_redeemed`` (spent at the partner) is the KPIs'
``points_redeemed_here``, since the KPIs' ``points_redeemed`` is the scope's
own points spent anywhere, which the redemption rate needs.

Definitions (each measure's formula is on the function that computes it):

* **active members** — distinct members with at least one earn or burn.
* **new members** — members whose first lot ever (their first earn or bonus:
  of the earliest period they have a lot in, then by ``occurred_at``, then the
  lot posted first) belongs to the period; per partner, those whose first lot
  that partner issued. Every member is new exactly once, and a late earn
  backdated before a member's first lot does not make them new again in a
  later period.
* **purchases** — earn transactions (a purchase reported with its amount);
  **purchasers** — distinct members with a purchase.
* **purchase frequency** — purchases ÷ purchasers.
* **average purchase** — Σ purchase amounts ÷ purchases; split into *with
  points*: purchases by members who also spent points (burned) in the period
  (at the same partner; coalition-wide: anywhere), and *without points*: the
  other purchases.
* **earn share / burn share** — of the card presentations at a till (earns
  and burns), the share where points were earned and where they were spent.
* **redemption rate** — points redeemed ÷ points issued net of returns;
  **breakage rate** — points expired ÷ points issued net of returns (both are
  flows of the same period; per partner they count the partner's own points,
  wherever they were spent; none when no points stayed issued).
* **points outstanding** (liability points) and their **value** (liability)
  — as in the settlement: points still available or pending at the period's
  end, at the coalition-wide redemption rate.

Money figures of a partner are in its currency; coalition-wide ones are in
the base currency, each partner's sum converted at the fx rate in force at
the period's end and rounded once after adding up.
"""

from dataclasses import dataclass, field
from decimal import Decimal

from coalition.domain import money, settlement, totals

FREQUENCY_PLACES = Decimal("0.01")


@dataclass(frozen=True)
class Purchases:
    """Purchases (earns) of one scope in one period, split by whether the buyer spent points.

    Attributes:
        count: purchases by members who did not spend points.
        amount: their amounts added up, in the scope's currency, unrounded.
        count_with_points: purchases by members who also spent points.
        amount_with_points: their amounts added up.
    """

    count: int = 0
    amount: Decimal = Decimal(0)
    count_with_points: int = 0
    amount_with_points: Decimal = Decimal(0)

    @property
    def total_count(self) -> int:
        return self.count + self.count_with_points

    @property
    def total_amount(self) -> Decimal:
        return self.amount + self.amount_with_points

    def __add__(self, other: "Purchases") -> "Purchases":
        return Purchases(
            self.count + other.count,
            self.amount + other.amount,
            self.count_with_points + other.count_with_points,
            self.amount_with_points + other.amount_with_points,
        )

    def converted(self, fx_rate: Decimal) -> "Purchases":
        """The same purchases valued in the base currency (fx: base per unit), unrounded."""
        return Purchases(
            self.count,
            self.amount * fx_rate,
            self.count_with_points,
            self.amount_with_points * fx_rate,
        )


@dataclass(frozen=True)
class Activity:
    """Counts and sums of one scope (a partner or the coalition) in one period.

    Attributes:
        active_members: distinct members with an earn or a burn.
        new_members: members whose first lot belongs to the period (and scope).
        purchasers: distinct members with an earn.
        redemptions: burn transactions.
        purchases: earn counts and amounts.
        amounts_known: False when the amounts could not be valued (an fx rate is
            missing): the money figures are then None, the counts still shown.
        points_issued: points of earns and bonuses (as the settlement counts them).
        points_reversed: points recovered from the scope's lots by returns.
        points_redeemed: the scope's points spent anywhere, less burn reversals.
        points_redeemed_here: points spent at the scope, less burn reversals.
        points_expired: the scope's points removed by expiry.
        liability_points: the scope's points outstanding at the period's end.
    """

    active_members: int = 0
    new_members: int = 0
    purchasers: int = 0
    redemptions: int = 0
    purchases: Purchases = field(default_factory=Purchases)
    amounts_known: bool = True
    points_issued: int = 0
    points_reversed: int = 0
    points_redeemed: int = 0
    points_redeemed_here: int = 0
    points_expired: int = 0
    liability_points: int = 0


def purchase_frequency(purchases: int, purchasers: int) -> Decimal | None:
    """Purchases per purchasing member in the period: purchases ÷ purchasers, to 2 places."""
    return money.ratio(purchases, purchasers, FREQUENCY_PLACES)


def average(amount: Decimal, count: int, currency: str) -> Decimal | None:
    """Σ amounts ÷ count, rounded once, half-even, to the currency's minor unit; None for
    no purchase."""
    if not count:
        return None
    return money.round_half_even(amount / count, currency)


def earn_share(earns: int, burns: int) -> Decimal | None:
    """Of the earns and burns at a till, the share where points were earned:
    earns ÷ (earns + burns)."""
    return money.ratio(earns, earns + burns)


def burn_share(earns: int, burns: int) -> Decimal | None:
    """Of the earns and burns at a till, the share where points were spent:
    burns ÷ (earns + burns)."""
    return money.ratio(burns, earns + burns)


def redemption_rate(
    points_redeemed: int, points_issued: int, points_reversed: int
) -> Decimal | None:
    """Points redeemed ÷ points issued net of returns, in the same period."""
    return _of_net_issued(points_redeemed, points_issued, points_reversed)


def breakage_rate(points_expired: int, points_issued: int, points_reversed: int) -> Decimal | None:
    """Points expired ÷ points issued net of returns, in the same period."""
    return _of_net_issued(points_expired, points_issued, points_reversed)


def _of_net_issued(points: int, points_issued: int, points_reversed: int) -> Decimal | None:
    """``points`` as a share of the points that stayed issued; None when none did (returns
    of earlier periods' points can exceed what the period issued, and a share of a negative
    number of points means nothing)."""
    issued = totals.net_issued(points_issued, points_reversed)
    return money.ratio(points, issued) if issued > 0 else None


def figures(
    activity: Activity, currency: str, point_value: Decimal | None, base_currency: str
) -> dict:
    """The KPIs of one scope as the API shows them: counts as ints, money and ratios as strings.

    ``currency`` is the currency the scope's purchase amounts are in (the
    partner's, or the base currency for the coalition); liability is always in
    the base currency, as in the settlement.
    """
    purchases = activity.purchases
    earns = purchases.total_count

    def amount(value: Decimal | None) -> str | None:
        return money.text(value) if activity.amounts_known else None

    return {
        "currency": currency,
        "active_members": activity.active_members,
        "new_members": activity.new_members,
        "purchases": earns,
        "purchasers": activity.purchasers,
        "purchase_frequency": money.text(purchase_frequency(earns, activity.purchasers)),
        "sales": amount(money.round_half_even(purchases.total_amount, currency)),
        "average_purchase": amount(average(purchases.total_amount, earns, currency)),
        "purchases_with_points": purchases.count_with_points,
        "average_purchase_with_points": amount(
            average(purchases.amount_with_points, purchases.count_with_points, currency)
        ),
        "average_purchase_without_points": amount(
            average(purchases.amount, purchases.count, currency)
        ),
        "redemptions": activity.redemptions,
        "earn_share": money.text(earn_share(earns, activity.redemptions)),
        "burn_share": money.text(burn_share(earns, activity.redemptions)),
        "points_issued": activity.points_issued,
        "points_reversed": activity.points_reversed,
        "points_redeemed": activity.points_redeemed,
        "points_redeemed_here": activity.points_redeemed_here,
        "points_expired": activity.points_expired,
        "redemption_rate": money.text(
            redemption_rate(
                activity.points_redeemed, activity.points_issued, activity.points_reversed
            )
        ),
        "breakage_rate": money.text(
            breakage_rate(activity.points_expired, activity.points_issued, activity.points_reversed)
        ),
        "liability_points": activity.liability_points,
        "liability": money.text(
            settlement.liability_value(activity.liability_points, point_value, base_currency)
        ),
    }
