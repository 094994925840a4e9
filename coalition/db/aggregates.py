"""Settlement aggregates: one GROUP BY each over the period's rows (SPEC §7).

PostgreSQL sums BIGINT columns as NUMERIC, so every sum of points is turned
back into an int here, where it leaves SQL.

These return sums only; the money arithmetic happens in
:mod:`coalition.domain.settlement`, exactly, in Decimal. Grouping by rate
keeps the result small (partners × partners × distinct rates) however many
millions of allocations the period holds.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, case, exists, func, select, true, type_coerce

from coalition.db.models import Allocation, Lot, Member, Transaction
from coalition.db.types import UTCDateTime
from coalition.domain import lots as lots_domain
from coalition.domain.settlement import IssuedPoints, RedeemedPoints


def redeemed_points(session, period_id: str) -> list[RedeemedPoints]:
    """Burn allocations (positive) and burn reversals (negative) by pair and rate."""
    query = (
        select(
            Allocation.issuer_id,
            Allocation.redeemer_id,
            Allocation.value_rate,
            func.sum(-Allocation.points),
        )
        .where(Allocation.period_id == period_id, Allocation.type.in_(("burn", "burn_reversal")))
        .group_by(Allocation.issuer_id, Allocation.redeemer_id, Allocation.value_rate)
    )
    return [
        RedeemedPoints(issuer, redeemer, rate, int(points))
        for issuer, redeemer, rate, points in session.execute(query)
    ]


@dataclass(frozen=True)
class PeriodActivity:
    """Per partner: points issued, recovered by returns, shortfalls, expired, late items;
    and the points that bear an issuance fee, by partner and fee rate."""

    partners: dict[str, dict[str, int]]
    issued: list[IssuedPoints]


ACTIVITY_FIELDS = (
    "points_issued",
    "points_reversed",
    "shortfall_points",
    "points_expired",
    "late_count",
)


def period_activity(session, period_id: str) -> PeriodActivity:
    """One pass over the period's transactions, grouped by partner and fee rate.

    Fees are due on points issued less points recovered by returns, at the fee
    rate each earn recorded (a return carries its original's), so grouping by
    fee rate gives the fee base too; the groups are few however many rows.
    """

    def total(types):
        return func.sum(case((Transaction.type.in_(types), Transaction.points), else_=0))

    query = (
        select(
            Transaction.partner_id,
            Transaction.fee_rate,
            total(("earn", "bonus")),
            -total(("earn_reversal",)),
            func.sum(Transaction.shortfall_points),
            -total(("expiry",)),
            func.sum(case((Transaction.late, 1), else_=0)),
            total(("earn", "bonus", "earn_reversal")),
        )
        .where(Transaction.period_id == period_id)
        .group_by(Transaction.partner_id, Transaction.fee_rate)
    )
    partners: dict[str, dict[str, int]] = {}
    issued = []
    for partner_id, fee_rate, *sums in session.execute(query):
        *facts, fee_base = map(int, sums)
        into = partners.setdefault(partner_id, dict.fromkeys(ACTIVITY_FIELDS, 0))
        for field, value in zip(ACTIVITY_FIELDS, facts, strict=True):
            into[field] += value
        if fee_rate is not None:
            issued.append(IssuedPoints(partner_id, fee_rate, fee_base))
    return PeriodActivity(partners, issued)


def liability_points(session, end: datetime) -> dict[str, int]:
    """Per issuer: points in lots earned before ``end`` and not expired at it, as of ``end``.

    A lot held at ``end`` what it holds now less what transactions dated from
    ``end`` on moved since; those are few (the close runs soon after the
    period), so this reads the live lots once and only the recent movements.
    """
    live = (Lot.earned_at < end) & (Lot.expires_at > end)
    now = (
        select(Lot.issuer_id, func.sum(Lot.remaining))
        .where(live, Lot.remaining > 0)  # empty lots add nothing; ix_lots_live_expiry skips them
        .group_by(Lot.issuer_id)
    )
    since = (
        select(Lot.issuer_id, -func.sum(Allocation.points))
        .select_from(Transaction)
        .join(Allocation, Allocation.transaction_id == Transaction.id)
        .join(Lot, Lot.id == Allocation.lot_id)
        .where(Transaction.occurred_at >= end, live)
        .group_by(Lot.issuer_id)
    )
    totals = defaultdict(int)
    for query in (now, since):
        for issuer_id, points in session.execute(query):
            totals[issuer_id] += int(points)
    return dict(totals)


def late_items(session, period_id: str) -> list[Transaction]:
    """The period's late transactions (a partial index keeps this off the period's other rows)."""
    query = (
        select(Transaction)
        .where(Transaction.period_id == period_id, Transaction.late)
        .order_by(Transaction.id)
    )
    return list(session.scalars(query))


def first_occurrence(session) -> datetime | None:
    return session.scalar(select(func.min(Transaction.occurred_at)))


@dataclass(frozen=True)
class MemberBalance:
    """A member's balance (the domain rule's figures) and lifetime totals."""

    current: lots_domain.Balance
    earned: int
    burned: int


def _member_balance_query():
    """The statement behind :func:`member_balance`, built once: it runs on every lookup."""
    L, T, M = Lot, Transaction, Member
    member = bindparam("member_id")
    at, horizon = bindparam("at", type_=UTCDateTime()), bindparam("horizon", type_=UTCDateTime())
    spendable = L.available_at <= at
    totals = select(
        exists().where(M.id == member).label("known"),
        select(func.coalesce(func.sum(L.points), 0))
        .where(L.member_id == member)
        .scalar_subquery()
        .label("earned"),
        select(func.coalesce(func.sum(T.points), 0))
        .where(T.member_id == member, T.type.in_(("burn", "burn_reversal")))
        .scalar_subquery()
        .label("burned"),
    ).subquery("totals")
    live = (
        select(
            type_coerce(case((L.expires_at <= horizon, L.expires_at)), UTCDateTime()).label(
                "expiring_on"
            ),
            case((spendable, L.remaining), else_=0).label("available"),
            case((spendable, 0), else_=L.remaining).label("pending"),
        )
        .where(L.member_id == member, L.remaining > 0, L.expires_at > at)
        .subquery("live")
    )
    by_date = (
        select(
            live.c.expiring_on,
            func.sum(live.c.available).label("available"),
            func.sum(live.c.pending).label("pending"),
        )
        .group_by(live.c.expiring_on)
        .subquery("by_date")
    )
    return select(totals, by_date).select_from(totals.outerjoin(by_date, true()))


MEMBER_BALANCE = _member_balance_query()


def member_balance(connection, member_id: str, at: datetime) -> MemberBalance | None:
    """:func:`coalition.domain.lots.balance` of the member's lots, summed by the database,
    with the lifetime totals, in one statement; None when there is no such member.

    A member may hold hundreds of lots; this returns one row per date on which
    points expire within the horizon, plus one for the rest, instead of every
    lot. One statement sees one snapshot, so it needs no transaction around it
    (:meth:`coalition.db.Database.read`). ``tests/integration/test_member_balance.py``
    holds it to the domain rule.
    """
    result = connection.execute(
        MEMBER_BALANCE,
        {"member_id": member_id, "at": at, "horizon": at + lots_domain.EXPIRING_HORIZON},
    ).all()
    first = result[0]
    if not first.known:
        return None
    rows = [
        (row.expiring_on, int(row.available), int(row.pending))
        for row in result
        if row.available is not None  # the outer join's empty row: no live lots
    ]
    return MemberBalance(
        current=lots_domain.Balance(
            available=sum(available for _, available, _ in rows),
            pending=sum(pending for _, _, pending in rows),
            expiring=sorted(
                (
                    (available + pending, when)
                    for when, available, pending in rows
                    if when is not None
                ),
                key=lambda item: item[1],
            ),
        ),
        earned=int(first.earned),
        burned=-int(first.burned),
    )
