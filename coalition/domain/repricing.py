"""Settling what was posted before a rate that applies to it was added (SPEC §5, §7).

A settlement values a burn at the redemption rate in force at its
``occurred_at``, and charges the fee on points issued at the fee rate in
force at theirs: the rates as they stand when the settlement is computed.
A posting records the rates in force when it was posted, and the period
totals add points up at those (:mod:`coalition.domain.totals`). The two
differ only where the operator added a rate, dated back, after postings it
applies to; the settlement then moves those postings' points from the rate
recorded to the rate in force, and a burn reversal follows its burn, a
return its earn.

A rate's **window** is what it can re-price: postings it applies to (dated
from its ``effective_from`` and before its ``effective_to``, of its partner
when it is one partner's) that were posted before it was added, whose ids
are at most its ``last_transaction_id``. A posting is dated at most
:data:`~coalition.domain.periods.FUTURE_TOLERANCE` after it was posted, so a
rate dated later than that after it was added, or added before anything was
posted, has an empty window, and a settlement usually re-prices nothing.
Every other rate keeps its window for good, so a coalition's windows add up
over its life: the settlement asks them of the ``rates`` table where they are
kept (:mod:`coalition.db.repricing_sums`), never as a list it sends. It may
read more than the windows hold, never less: a posting whose recorded rate is
still the one in force moves nothing.

A **stretch** runs from an instant at which a rate of the kind begins or
ends to the next: the same rates are in force all through it, so its first
instant speaks for all of it.
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from coalition.domain.periods import FUTURE_TOLERANCE, Period
from coalition.domain.settlement import IssuedPoints, RedeemedPoints


@dataclass(frozen=True)
class Reach:
    """What the rates of a kind added late can re-price among a period's own postings:
    those dated from ``since`` whose ids are at most ``last_transaction_id``, of the
    ``partners`` whose rates' windows are in the period (of any partner, None, where a
    coalition-wide rate's window is)."""

    since: datetime
    last_transaction_id: int
    partners: frozenset[str] | None = None


def reach(candidates, kind: str, period: Period) -> Reach | None:
    """What the rates of ``kind`` can re-price of the period's postings and of the originals
    of its reversals, all dated before its end: None when no rate's window reaches before
    it. Its own postings are dated in it (:mod:`coalition.db.repricing_sums`), so of them
    only those dated from the first instant of it a window holds (its end when none
    does), up to the highest ``last_transaction_id`` of the rates, of the partners whose
    rates' windows are in it: a rate dated back an hour asks about that hour's postings,
    not the month's, a partner's rate about that partner's, nor does a rate added late
    in an earlier period."""
    windows = [
        (
            rate.effective_from,
            min(rate.created_at + FUTURE_TOLERANCE, period.end, rate.effective_to or period.end),
            rate.last_transaction_id,
            rate.partner_id,
        )
        for rate in candidates
        if rate.kind == kind and rate.last_transaction_id
    ]
    reaching = [window for window in windows if window[0] < window[1]]
    if not reaching:
        return None
    inside = [window for window in reaching if window[1] > period.start]
    partners = {partner for *_, partner in inside}
    return Reach(
        min((max(begins, period.start) for begins, *_ in inside), default=period.end),
        max(last for _, _, last, _ in reaching),
        None if None in partners else frozenset(partners),
    )


def redeemed(in_force, recorded) -> list[RedeemedPoints]:
    """Corrections to the points redeemed by pair and rate.

    ``in_force(redeemer, at)`` is the redemption rate in force (SPEC §7's v(t)).
    ``recorded`` holds ``(issuer, redeemer, rate recorded, stretch, points)``:
    points redeemed (burn reversals negative) in the windows, by the stretch
    (its first instant) their burn is dated in. Unlike a fee, a redemption rate is
    never missing now where one was recorded (a burn without one is refused, and a
    rate added later only adds to those in force): ``current is None`` only guards
    the arithmetic.
    """
    corrections = []
    for issuer, redeemer, was, stretch, points in recorded:
        rate = in_force(redeemer, stretch)
        current = rate and rate.value
        if current is not None and current != was:
            corrections += [
                RedeemedPoints(issuer, redeemer, was, -points),
                RedeemedPoints(issuer, redeemer, current, points),
            ]
    return corrections


def issued(in_force, recorded) -> list[IssuedPoints]:
    """Corrections to the points that bear a fee, by partner and fee rate.

    ``in_force(issuer, at)`` is the fee rate in force (none for the operator).
    ``recorded`` holds ``(issuer, fee rate recorded or None, stretch, points)``:
    points issued (returns' recoveries negative) in the windows, by the stretch
    (its first instant) their earn or bonus is dated in.
    """
    corrections = []
    for issuer, was, stretch, points in recorded:
        rate = in_force(issuer, stretch)
        current: Decimal | None = rate and rate.value
        if current != was:
            if was is not None:
                corrections.append(IssuedPoints(issuer, was, -points))
            if current is not None:
                corrections.append(IssuedPoints(issuer, current, points))
    return corrections
