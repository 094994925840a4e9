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

A rate's **window** bounds what it can re-price: postings dated from its
``effective_from`` (and before its ``effective_to``), posted before it was
added: their ids are at most its ``last_transaction_id``, and they were
dated at most :data:`~coalition.domain.periods.FUTURE_TOLERANCE` after it
was added. Rates that were in force before anything was posted have no
window, so a settlement usually re-prices nothing.
"""

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from coalition.domain import rates
from coalition.domain.periods import FUTURE_TOLERANCE
from coalition.domain.settlement import IssuedPoints, RedeemedPoints


@dataclass(frozen=True)
class Window:
    """Postings dated in ``[start, end)`` with an id up to ``last_transaction_id``, of
    ``partner_id`` when the rate is one partner's (its burns, or its issues)."""

    start: datetime
    end: datetime
    last_transaction_id: int
    partner_id: str | None = None


def windows(candidates, kind: str, before: datetime) -> list[Window]:
    """The windows of the rates of ``kind``, cut at ``before`` (a period's end: what
    is dated later is no posting of that period, nor the original of one)."""
    found = []
    for rate in candidates:
        if rate.kind != kind or not rate.last_transaction_id:
            continue
        end = min(rate.created_at + FUTURE_TOLERANCE, before, rate.effective_to or before)
        if rate.effective_from < end:
            found.append(
                Window(rate.effective_from, end, rate.last_transaction_id, rate.partner_id)
            )
    return found


def within(windows: list[Window], start: datetime, end: datetime) -> list[Window]:
    """The parts of the windows inside ``[start, end)``: where a period's own postings can
    be in them. (A period's late postings cannot: they were posted after the period they
    are dated in closed, so after any rate dated in it was added.)"""
    cut = [replace(w, start=max(w.start, start), end=min(w.end, end)) for w in windows]
    return [window for window in cut if window.start < window.end]


def stretches(candidates, kind: str, windows: list[Window]) -> list[datetime]:
    """Where the stretches of the windows begin: the earliest window's start, then every
    instant inside them at which a rate of ``kind`` begins or ends (each other window's
    start among them, as its rate's ``effective_from``). Within a stretch the same rates
    are in force, so the first instant of one speaks for all of it."""
    low, high = min(w.start for w in windows), max(w.end for w in windows)
    edges = {low}
    for rate in candidates:
        if rate.kind == kind:
            edges |= {
                edge
                for edge in (rate.effective_from, rate.effective_to)
                if edge and low < edge < high
            }
    return sorted(edges)


def redeemed(candidates, starts: list[datetime], recorded) -> list[RedeemedPoints]:
    """Corrections to the points redeemed by pair and rate.

    ``recorded`` holds ``(issuer, redeemer, rate recorded, stretch, points)``:
    points redeemed (burn reversals negative) in the windows, by the stretch
    their burn is dated in. Unlike a fee, a redemption rate is never missing now where
    one was recorded (a burn without one is refused, and a rate added later only adds
    to those in force): ``current is None`` only guards the arithmetic.
    """
    corrections = []
    for issuer, redeemer, was, stretch, points in recorded:
        rate = rates.redemption_rate(candidates, redeemer, starts[stretch])
        current = rate and rate.value
        if current is not None and current != was:
            corrections += [
                RedeemedPoints(issuer, redeemer, was, -points),
                RedeemedPoints(issuer, redeemer, current, points),
            ]
    return corrections


def issued(candidates, starts: list[datetime], recorded) -> list[IssuedPoints]:
    """Corrections to the points that bear a fee, by partner and fee rate.

    ``recorded`` holds ``(issuer, fee rate recorded or None, stretch, points)``:
    points issued (returns' recoveries negative) in the windows, by the stretch
    their earn or bonus is dated in.
    """
    corrections = []
    for issuer, was, stretch, points in recorded:
        rate = rates.fee_rate(candidates, issuer, starts[stretch])
        current: Decimal | None = rate and rate.value
        if current != was:
            if was is not None:
                corrections.append(IssuedPoints(issuer, was, -points))
            if current is not None:
                corrections.append(IssuedPoints(issuer, current, points))
    return corrections
