"""Period totals: the sums a close needs, kept as the ledger is written.

Summing a period at close means reading every one of its rows: millions of
burn allocations, and about three transactions for each. Instead, every
unit of work that writes ledger rows (:meth:`coalition.services.book.Book.write`,
for postings and the expiry job alike) adds what they contribute (:mod:`coalition.domain.totals`) to
counters here, in the same transaction, so they commit or roll back
together; a close, which holds the calendar lock that keeps posting out,
then reads a few hundred rows.

Each key has up to :data:`STRIPES` counter rows. A unit of work adds to one
stripe chosen at random, so concurrent postings of one partner seldom wait
on each other's row lock; readers sum the stripes. Rows are added in key
order, so two units of work never deadlock on them.
``tests/integration/test_ledger_state_machine.py`` holds the counters to a
GROUP BY over the ledger after every step.
"""

import random
from dataclasses import dataclass

from sqlalchemy import func, literal, select, union_all

from coalition.db.models import PairTotal, PartnerTotal
from coalition.db.writes import Accumulate, Writes
from coalition.domain import totals
from coalition.domain.settlement import IssuedPoints, RedeemedPoints

STRIPES = 16
PAIR_KEY = ("period_id", "issuer_id", "redeemer_id", "value_rate")
ADD_POINTS = Accumulate(
    key=tuple(column.name for column in PairTotal.__table__.primary_key), fields=("points",)
)
# the unique index treats a missing fee rate as one value (migration 0004)
ADD_ACTIVITY = Accumulate(
    key=("period_id", "partner_id", "coalesce(fee_rate, -1)", "stripe"),
    fields=totals.ACTIVITY_FIELDS,
)


def add(writes: Writes, transactions, allocations) -> None:
    """Add what these new ledger rows contribute to their periods' totals."""
    redeemed, activity = totals.added(transactions, allocations)
    stripe = random.randrange(STRIPES)
    pairs = sorted(redeemed.items())
    writes.insert(
        PairTotal.__table__,
        {
            **{field: [key[index] for key, _ in pairs] for index, field in enumerate(PAIR_KEY)},
            "stripe": [stripe] * len(pairs),
            "points": [points for _, points in pairs],
        },
        ADD_POINTS,
    )
    partners = sorted(activity.items(), key=_activity_order)
    writes.insert(
        PartnerTotal.__table__,
        {
            "period_id": [period for (period, _, _), _ in partners],
            "partner_id": [partner for (_, partner, _), _ in partners],
            "fee_rate": [rate for (_, _, rate), _ in partners],
            "stripe": [stripe] * len(partners),
            **{
                field: [getattr(partner_activity, field) for _, partner_activity in partners]
                for field in totals.ACTIVITY_FIELDS
            },
        },
        ADD_ACTIVITY,
    )


def _activity_order(item):
    (period, partner, rate), _ = item
    return period, partner, rate is not None, rate or 0


def redeemed_points(session, period_id: str) -> list[RedeemedPoints]:
    """Points redeemed in the period (burn reversals netted) by pair and rate."""
    T = PairTotal
    query = (
        select(T.issuer_id, T.redeemer_id, T.value_rate, func.sum(T.points))
        .where(T.period_id == period_id)
        .group_by(T.issuer_id, T.redeemer_id, T.value_rate)
    )
    return [
        RedeemedPoints(issuer, redeemer, rate, int(points))
        for issuer, redeemer, rate, points in session.execute(query)
    ]


@dataclass(frozen=True)
class RedeemedByPartner:
    """A period's points redeemed (burn reversals netted), by the partner that issued
    them (its points spent anywhere) and by the partner they were spent at."""

    by_issuer: dict[str, int]
    by_redeemer: dict[str, int]


def redeemed_by_partner(session, period_id: str) -> RedeemedByPartner:
    """The period's redeemed points summed by issuer and by redeemer, a row a partner: what
    the KPIs show of them. Its pairs, thousands a month among 400 partners (up to a row a
    pair, rate and stripe), are summed where they are kept, not read row by row."""
    T = PairTotal
    sides = {
        side: select(literal(side), partner, func.sum(T.points))
        .where(T.period_id == period_id)
        .group_by(partner)
        for side, partner in (("issuer", T.issuer_id), ("redeemer", T.redeemer_id))
    }
    sums = {side: {} for side in sides}
    for side, partner_id, points in session.execute(union_all(*sides.values())):
        sums[side][partner_id] = int(points)
    return RedeemedByPartner(by_issuer=sums["issuer"], by_redeemer=sums["redeemer"])


@dataclass(frozen=True)
class PeriodActivity:
    """Per partner: points issued, recovered by returns, shortfalls, expired, late items;
    and the points that bear an issuance fee, by partner and fee rate."""

    partners: dict[str, totals.PartnerActivity]
    issued: list[IssuedPoints]


def period_activity(session, period_id: str) -> PeriodActivity:
    T = PartnerTotal
    query = (
        select(
            T.partner_id,
            T.fee_rate,
            *(func.sum(getattr(T, field)) for field in totals.ACTIVITY_FIELDS),
        )
        .where(T.period_id == period_id)
        .group_by(T.partner_id, T.fee_rate)
    )
    partners: dict[str, totals.PartnerActivity] = {}
    issued = []
    for partner_id, fee_rate, *sums in session.execute(query):
        activity = totals.PartnerActivity(*map(int, sums))
        partners[partner_id] = partners.get(partner_id, totals.PartnerActivity()).plus(activity)
        if fee_rate is not None:
            issued.append(IssuedPoints(partner_id, fee_rate, activity.fee_base))
    return PeriodActivity(partners, issued)
