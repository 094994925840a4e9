"""KPI aggregates: set-based GROUP BYs over the transactions of one period.

Each read answers for one period, grouped by partner, in one query: a
period's own counting time decides whether its counts are kept
(:mod:`coalition.services.kpi_counts`), and a chart of twelve periods reads
most of them back. The points figures that the
settlement already counts (issued, reversed, expired, redeemed, liability)
are not counted here: they come from the settlement's own period totals
(:mod:`coalition.db.period_totals`) and liability (:mod:`coalition.db.aggregates`),
so KPIs and statements never disagree.

Money is summed exactly: PostgreSQL sums NUMERIC; SQLite stores amounts as
text (see :mod:`coalition.db.types`), and its own ``SUM`` would go through
float, so there the sum is an aggregate function ``exact_sum`` that adds the
texts as Decimal inside SQLite's GROUP BY.

Where the counts are kept once counted is :mod:`coalition.db.kept_counts`.
"""

from decimal import Decimal

from sqlalchemy import String, case, func, literal, select, union_all
from sqlalchemy.orm import aliased

from coalition.db import on_postgresql
from coalition.db.models import Lot, Transaction
from coalition.domain.kpis import Purchases
from coalition.domain.lots import ISSUING

COALITION_WIDE = None  # the partner key of coalition-wide rows (not the partner "coalition")


class _ExactSum:
    """SQLite aggregate: the exact Decimal sum of decimal texts, returned as text."""

    def __init__(self):
        self.total = Decimal(0)

    def step(self, value):
        if value is not None:
            self.total += Decimal(value)

    def finalize(self):
        return str(self.total)


def _exact_sum(session, column):
    if on_postgresql(session):
        return func.sum(column)
    connection = session.connection().connection.driver_connection
    connection.create_aggregate("exact_sum", 1, _ExactSum)
    return func.exact_sum(column)


def member_activity(session, period_id: str) -> dict[str | None, dict[str, int]]:
    """Per partner, and per None for the coalition: members and visits.

    ``active_members`` (distinct members with an earn or burn), ``purchasers``
    (distinct members with an earn) and ``redemptions`` (burns); purchases
    are counted with their amounts by :func:`purchases`. Distinct counts do
    not add up across partners, so the coalition's are counted apart.

    One statement groups the period's visits by (partner, member)
    once and counts both scopes from those groups: a ``count(DISTINCT …)``
    sorts its input anew for each figure, four sorts of every visit where
    this makes one grouping (docs/performance-log.md has the timings).
    """
    T = Transaction
    visitors = (
        select(
            T.partner_id,
            T.member_id,
            func.max(case((T.type == "earn", 1), else_=0)).label("purchased"),
            func.count(_when(T.type == "burn", T.id)).label("redemptions"),
        )
        .where(T.period_id == period_id, T.type.in_(("earn", "burn")))
        .group_by(T.partner_id, T.member_id)
        .cte("visitors")
    )
    by_member = (
        select(
            visitors.c.member_id,
            func.max(visitors.c.purchased).label("purchased"),
            func.sum(visitors.c.redemptions).label("redemptions"),
        )
        .group_by(visitors.c.member_id)
        .subquery("by_member")
    )
    by_partner = select(visitors.c.partner_id, *_counts(visitors)).group_by(visitors.c.partner_id)
    coalition_wide = select(literal(COALITION_WIDE, String), *_counts(by_member))
    fields = ("active_members", "purchasers", "redemptions")
    return {
        partner_id: dict(zip(fields, map(int, counts), strict=True))
        for partner_id, *counts in session.execute(union_all(by_partner, coalition_wide))
        if counts[0]  # a period without visits: the coalition's row counts none, sums NULL
    }


def _counts(rows) -> tuple:
    """Active members, purchasers and redemptions over rows of one member each."""
    return func.count(), func.sum(rows.c.purchased), func.sum(rows.c.redemptions)


def _when(condition, value):
    """``value`` where ``condition`` holds, else NULL (which COUNT skips)."""
    return case((condition, value), else_=None)


def purchases(session, period_id: str) -> dict[str, dict[str, Purchases]]:
    """Per partner: earn counts and exact amount sums, split by whether the buyer burned.

    The result maps a partner to ``{"here": Purchases, "anywhere":
    Purchases}``: *here* splits a partner's purchases by whether the member
    burned points at that same partner in the period (the partner's own
    figure); *anywhere* by whether the member burned anywhere in the
    coalition (summed, after conversion, into the coalition-wide figure).
    Amounts are in the partner's currency.

    Whether a buyer burned is read from the period's visits themselves, in
    windows by member and partner and by member (one sort of the visits, by
    member then partner), not joined from its burns: the open
    period is the newest, often missing from the table's statistics until
    ANALYZE next runs, and taken for one row the join was a nested loop
    that compared every earn with every burn (79 million rows, 14 s, for a
    month of 18,000; docs/performance-log.md).
    """
    T = Transaction
    burned = func.max(case((T.type == "burn", 1), else_=0))
    visits = (
        select(
            T.partner_id,
            T.type,
            T.amount,
            burned.over(partition_by=(T.member_id, T.partner_id)).label("here"),
            burned.over(partition_by=T.member_id).label("anywhere"),
        )
        .where(T.period_id == period_id, T.type.in_(("earn", "burn")))
        .subquery("visits")
    )
    query = (
        select(
            visits.c.partner_id,
            visits.c.here,
            visits.c.anywhere,
            func.count(),
            _exact_sum(session, visits.c.amount),
        )
        .where(visits.c.type == "earn")
        .group_by(visits.c.partner_id, visits.c.here, visits.c.anywhere)
    )
    split = {}
    for partner_id, here, anywhere, count, amount in session.execute(query):
        entry = split.setdefault(partner_id, {"here": Purchases(), "anywhere": Purchases()})
        for scope, burned_there in (("here", here), ("anywhere", anywhere)):
            part = (
                Purchases(count_with_points=int(count), amount_with_points=Decimal(amount))
                if burned_there
                else Purchases(count=int(count), amount=Decimal(amount))
            )
            entry[scope] = entry[scope] + part
    return split


def new_members(session, period_id: str) -> dict[str, int]:
    """Per issuer: members whose first lot it is, the first of the earliest
    period the member has a lot in (then by ``occurred_at``, then id).

    Each member has exactly one first lot, so these add up to the
    coalition-wide count. Ranking by period first keeps a closed period's
    count final: an earn backdated before a member's first lot but posted
    late lands in an open period, and cannot take the member from the
    period that counted them. (Period ids of one calendar sort as their
    periods do, and the calendar is fixed once the ledger has started.)

    So a member is new in the period when they have a lot in it and none in
    an earlier one: the period's own lots are ranked, and each of their
    members is asked for one earlier lot, which a returning member's oldest
    lot, read first from the index of lots by member, usually answers. The
    count reads about the period's lots, not the whole history of everyone
    active in it (docs/performance-log.md).
    """
    earned_in = Transaction.period_id == period_id
    first = func.row_number().over(partition_by=Lot.member_id, order_by=(Lot.earned_at, Lot.id))
    firsts = (
        select(Lot.member_id, Lot.issuer_id, first.label("n"))
        .join(Transaction, Transaction.id == Lot.transaction_id)
        .where(earned_in, Transaction.type.in_(ISSUING))
        .subquery()
    )
    before, its = aliased(Lot), aliased(Transaction)
    earlier = (
        select(before.id)
        .join(its, its.id == before.transaction_id)
        .where(before.member_id == firsts.c.member_id, its.period_id < period_id)
        .exists()
    )
    query = (
        select(firsts.c.issuer_id, func.count())
        .where(firsts.c.n == 1, ~earlier)
        .group_by(firsts.c.issuer_id)
    )
    return {issuer_id: int(count) for issuer_id, count in session.execute(query)}
