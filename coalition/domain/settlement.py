"""Settlement arithmetic over a period's aggregates (SPEC §7).

The database hands over sums (points per issuer, redeemer and rate; points
per partner and fee rate); everything that involves money happens here, in
Decimal, with one half-even rounding per line:

* a **pair line** I → R is Σ points × redemption rate over the period's burn
  allocations (burn reversals negative), rounded once after summing; I = R is
  own redemption and carries no money;
* ``receivable`` and ``payable`` are sums of already rounded pair lines, so
  Σ(receivable − payable) over all partners is exactly zero;
* ``fees`` = Σ points issued × fee rate, summed by rate into fee lines, rounded
  once per partner;
* ``net = receivable − payable − fees``, converted into the partner's
  currency at the fx rate with one more rounding, in that currency.
"""

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from coalition.domain import money
from coalition.domain.errors import CoalitionError
from coalition.domain.totals import PartnerActivity


class Unbalanced(CoalitionError):
    """Σ(receivable − payable) ≠ 0: the books do not balance; nothing is closed."""

    reason = "unbalanced"


class RedeemedPoints(NamedTuple):
    """Points of one issuer redeemed at one redeemer at one redemption rate.

    A tuple, as :class:`PairLine` and :class:`Counterparty` are: a coalition whose
    thousand partners all trade has a million of each a period, and a frozen dataclass
    costs several times a tuple to build.
    """

    issuer_id: str
    redeemer_id: str
    rate: Decimal
    points: int


@dataclass(frozen=True)
class IssuedPoints:
    """Points a partner issued (less recovered by returns) at one fee rate."""

    partner_id: str
    rate: Decimal
    points: int


@dataclass(frozen=True)
class FeeLine:
    """A partner's points issued (net of returns) at one fee rate: one term of its fees,
    shown on its statement so the rounded total can be recomputed by hand."""

    rate: Decimal
    points: int

    @property
    def exact(self) -> Decimal:
        """The term before the one rounding of the partner's fees."""
        return self.points * self.rate


class PairLine(NamedTuple):
    """What issuer I owes redeemer R for the period, in the base currency."""

    issuer_id: str
    redeemer_id: str
    points: int
    value: Decimal

    @property
    def own(self) -> bool:
        return self.issuer_id == self.redeemer_id


class Counterparty(NamedTuple):
    """What passed between one partner and another over a period, as its statement
    lists it (SPEC §7): their points redeemed at it (in, receivable) and its points
    redeemed at them (out, payable)."""

    partner_id: str
    points_in: int
    value_in: Decimal
    points_out: int
    value_out: Decimal

    @property
    def net(self) -> Decimal:
        return self.value_in - self.value_out


@dataclass(frozen=True)
class Position:
    """One partner's obligations in the base currency; net > 0: the operator pays it."""

    partner_id: str
    receivable: Decimal
    payable: Decimal
    fees: Decimal

    @property
    def net(self) -> Decimal:
        return self.receivable - self.payable - self.fees


@dataclass(frozen=True)
class Netting:
    """What clearing saved: gross of all pair lines against what is actually paid."""

    gross: Decimal
    bilateral_net: Decimal
    multilateral_net: Decimal
    payments_gross: int
    payments_net: int

    @property
    def netting_ratio(self) -> Decimal | None:
        """1 − multilateral net ÷ gross (SPEC §7); None when nothing was redeemed."""
        return money.ratio(self.gross - self.multilateral_net, self.gross)

    @property
    def payments_saved(self) -> int:
        return self.payments_gross - self.payments_net


def pair_lines(redeemed: list[RedeemedPoints], base_currency: str) -> list[PairLine]:
    """One line per issuer and redeemer, its value rounded once (SPEC §7). Points a
    partner issued and redeemed itself are worth 0: they move no money between partners."""
    points: dict[tuple[str, str], int] = {}
    value: dict[tuple[str, str], Decimal] = {}
    for issuer, redeemer, rate, count in redeemed:
        pair = (issuer, redeemer)
        points[pair] = points.get(pair, 0) + count
        value[pair] = value.get(pair, 0) + count * rate
    zero = money.zero(base_currency)
    return [
        PairLine(
            issuer,
            redeemer,
            points[issuer, redeemer],
            zero
            if issuer == redeemer
            else money.round_half_even(value[issuer, redeemer], base_currency),
        )
        for issuer, redeemer in sorted(points)
    ]


def fee_lines(issued: list[IssuedPoints]) -> dict[str, list[FeeLine]]:
    """Each partner's points bearing a fee, summed by fee rate (lowest rate first); a rate
    whose points net to zero (all returned) is left out, and so is a rate of zero, which
    charges nothing. A rate is kept by its value alone ("0.001", however it was written or
    stored), so the product carries no idle zeros."""
    points = defaultdict(int)
    for item in issued:
        points[item.partner_id, item.rate.normalize()] += item.points
    lines = defaultdict(list)
    for (partner, rate), total in sorted(points.items()):
        if total and rate:
            lines[partner].append(FeeLine(rate, total))
    return dict(lines)


def fees(lines: dict[str, list[FeeLine]], base_currency: str) -> dict[str, Decimal]:
    """Each partner's fees: the sum of its fee lines, rounded once."""
    return {
        partner: money.round_half_even(sum(line.exact for line in terms), base_currency)
        for partner, terms in lines.items()
    }


def positions(
    partner_ids: list[str],
    lines: list[PairLine],
    fee_totals: dict[str, Decimal],
    base_currency: str,
) -> dict[str, Position]:
    """Every partner's receivable, payable and fees; refuses to balance a broken book."""
    zero = money.zero(base_currency)
    receivable, payable = defaultdict(lambda: zero), defaultdict(lambda: zero)
    for line in lines:
        if not line.own:
            receivable[line.redeemer_id] += line.value
            payable[line.issuer_id] += line.value
    result = {
        partner: Position(
            partner, receivable[partner], payable[partner], fee_totals.get(partner, zero)
        )
        for partner in partner_ids
    }
    imbalance = sum((p.receivable - p.payable for p in result.values()), zero)
    if imbalance or (set(receivable) | set(payable)) - set(partner_ids):
        raise Unbalanced(
            f"Σ(receivable − payable) is {imbalance}, not 0; the period was not closed"
        )
    return result


def lines_by_partner(lines: list[PairLine]) -> dict[str, list[PairLine]]:
    """Each partner's pair lines, as issuer or redeemer (own redemption once), in one pass:
    what a settlement reads per partner, so that a coalition of P partners and L pair
    lines costs O(L) and not O(P × L) (400 partners trade some 90,000 pair lines)."""
    by_partner: dict[str, list[PairLine]] = defaultdict(list)
    for line in lines:
        by_partner[line.issuer_id].append(line)
        if not line.own:
            by_partner[line.redeemer_id].append(line)
    return by_partner


def counterparties(
    lines: list[PairLine], partner_id: str, base_currency: str
) -> list[Counterparty]:
    """The partner's counterparties, by id, from the period's pair lines, or only the
    partner's own (:func:`lines_by_partner`); own redemption is not a counterparty: it
    moves no money."""
    zero = money.zero(base_currency)
    sides: dict[str, list] = {}  # the other partner: points and value in, then out
    for issuer, redeemer, points, value in lines:
        if issuer == redeemer:
            continue
        if redeemer == partner_id:
            other, at = issuer, 0
        elif issuer == partner_id:
            other, at = redeemer, 2
        else:
            continue
        side = sides.get(other)
        if side is None:  # a list made only when needed: a close makes a million of them
            side = sides[other] = [0, zero, 0, zero]
        side[at] += points
        side[at + 1] += value
    return [Counterparty(other, *sides[other]) for other in sorted(sides)]


def liability_value(points: int, point_value: Decimal | None, base_currency: str) -> Decimal | None:
    """Outstanding points × the coalition-wide redemption rate, rounded once.

    Without a rate the value is unknown (None), unless there are no points: none
    are worth zero at any rate, so a partner with nothing outstanding reads as such.
    """
    if point_value is None:
        return money.zero(base_currency) if points == 0 else None
    return money.round_half_even(points * point_value, base_currency)


def took_part(
    partner_id: str, position: Position, activity: PartnerActivity, lines: list[PairLine]
) -> bool:
    """Whether a partner took part in the period: money on its position, a pair line of
    its own, or any points it issued, took back by a return (or fell short of), lost to
    expiry, or posted late (``activity``). Only such a partner needs an fx rate to
    close: a partner that took no part nets 0, which is 0 in any currency, and a
    coalition is not kept from closing by a partner that joined after the period, or
    sat it out."""
    return (
        any((position.receivable, position.payable, position.fees))
        or any(activity)
        or any(partner_id in (line.issuer_id, line.redeemer_id) for line in lines)
    )


def convert(amount: Decimal, fx_rate: Decimal | None, currency: str) -> Decimal | None:
    """Base-currency amount in the partner's currency; fx_rate is base per unit of it.

    Without a rate the amount is unknown (None), unless it is 0: nothing is 0 in any
    currency, so a partner that nets 0 needs no fx rate to close.
    """
    if fx_rate is None:
        return money.zero(currency) if amount == 0 else None
    return money.round_half_even(amount / fx_rate, currency)


def netting(
    lines: list[PairLine], positions_by_partner: dict[str, Position], base_currency: str
) -> Netting:
    """What clearing saves: every payment between partners made gross, netted per pair,
    and netted through the clearing house (one payment per partner whose net is not 0)."""
    zero = money.zero(base_currency)
    paying = [line for line in lines if not line.own and line.value]
    by_pair = defaultdict(Decimal)
    for issuer, redeemer, _, value in paying:
        if issuer < redeemer:
            by_pair[issuer, redeemer] += value
        else:
            by_pair[redeemer, issuer] -= value
    return Netting(
        gross=sum((abs(line.value) for line in paying), zero),
        bilateral_net=sum((abs(value) for value in by_pair.values()), zero),
        multilateral_net=sum((abs(p.net) for p in positions_by_partner.values()), zero),
        payments_gross=len(paying),
        payments_net=sum(1 for p in positions_by_partner.values() if p.net),
    )
