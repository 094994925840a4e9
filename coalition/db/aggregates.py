"""Sums the database computes over the ledger: liability at a period's end, late
items, a member's balance (SPEC §6, §7); and the bounds it is read within: the
first and last dates of the ledger, the lowest id from a period on.

PostgreSQL sums BIGINT columns as NUMERIC, so every sum of points is turned
back into an int here, where it leaves SQL. The money arithmetic happens in
:mod:`coalition.domain.settlement`, exactly, in Decimal. What a close sums
over the period's own rows is kept as they are written, in
:mod:`coalition.db.period_totals`.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, case, exists, func, literal_column, select, true, type_coerce
from sqlalchemy.orm import aliased

from coalition.db import written
from coalition.db.models import Allocation, Base, Lot, Member, Settings, Transaction
from coalition.db.types import UTCDateTime
from coalition.domain import lots as lots_domain
from coalition.domain import totals as totals_domain

# the live lots' partial index (ix_lots_live_expiry) is WHERE remaining > 0
HOLDS_POINTS = Lot.remaining > written("empty", 0)
# the late transactions' (ix_transactions_late) is WHERE late, written in as it is there:
# SQLite reads a partial index only for a term its condition is, and SQLAlchemy writes a
# boolean column there as late = 1, so SQLite read every transaction of the period instead
LATE = literal_column("transactions.late")
# a lot whose hold outlasts it is neither available nor pending, ever (domain.lots.Lot.pending_at)
SPENDABLE_SOMETIME = Lot.available_at < Lot.expires_at
# LIMIT 1 written in: a generic plan takes a LIMIT sent as a parameter for a tenth of the
# rows, and costed so, a listing from a time's probes of each period passed the cost at
# which PostgreSQL compiles a statement (JIT), 0.1–0.4 s a page (performance-log.md)
ONE_ROW = literal_column("1")


def lowest_id_from(period_id: str):
    """The lowest id among the transactions of ``period_id`` and every later period, as a
    scalar subquery (NULL while they have none).

    The periods that hold transactions are found one from the next, and each one's
    lowest id read, from the index of transactions by period and id (period ids sort
    as their periods do): a few probes of it per period, however large the ledger.
    """
    T = aliased(Transaction)
    first = select(func.min(T.period_id).label("period_id")).where(T.period_id >= period_id)
    held = first.cte("held", recursive=True)
    following = select(func.min(T.period_id)).where(T.period_id > held.c.period_id)
    held = held.union_all(select(following.scalar_subquery()).where(held.c.period_id.is_not(None)))
    return select(func.min(first_id(held.c.period_id))).select_from(held).scalar_subquery()


def first_id(period_id):
    """The lowest id of the transactions of ``period_id`` (a value or a column), as a
    scalar subquery; of the next period that holds any, when it holds none (NULL when
    no later one does).

    Read as the first entry of the index by period and id from ``period_id`` on: in
    order of period, then id, the rows are in no other index's order, so that entry
    is the one plan. Asked as the period's lowest id (``WHERE period_id = … ORDER BY
    id``), the planner could walk the primary key instead, from the ledger's first
    transaction up to the period's, and did once ``random_page_cost`` was 8 or more
    (performance-log.md).
    """
    T = aliased(Transaction)
    return (
        select(T.id)
        .where(T.period_id >= period_id)
        .order_by(T.period_id, T.id)
        .limit(ONE_ROW)
        .scalar_subquery()
    )


def last_id(period_id):
    """The highest id of the transactions of ``period_id``, as :func:`first_id` reads
    the lowest; of the period before that holds any, when it holds none."""
    T = aliased(Transaction)
    return (
        select(T.id)
        .where(T.period_id <= period_id)
        .order_by(T.period_id.desc(), T.id.desc())
        .limit(ONE_ROW)
        .scalar_subquery()
    )


def liability_points(session, period_id: str, end: datetime) -> dict[str, int]:
    """Per issuer: points in lots earned before ``end``, the end of the open period
    ``period_id``, and not expired at its last instant, as of ``end``; not those of a
    lot whose hold outlasts it, which no member can ever spend.

    A lot that expires at ``end`` itself could be spent until then: it is the
    period's liability and the next period's breakage (its expiry is dated
    ``end``), so the points pass from one figure to the other between two
    statements instead of vanishing from both.

    A lot held at ``end`` what it holds now less what transactions dated from
    ``end`` on moved since; those are few (the close runs soon after the
    period), so this reads the live lots once and only the recent movements.
    Each of those is in a period after this one (the period is open, and so
    is every later one), which bounds the allocations read to the open
    periods' by their index: joined from the transactions alone, the planner
    may read every allocation of the ledger to find them.
    """
    return liabilities_points(session, {period_id: end})[period_id]


def liabilities_points(session, ends: dict[str, datetime]) -> dict[str, dict[str, int]]:
    """:func:`liability_points` of several open periods, by period id (``ends``: each
    one's end), from one read of the live lots and one of the movements since the first
    end, each summed for every period at once: a KPI chart spans every open period, four
    and more of a daily calendar, and a read per period read the live lots once for each,
    and the movements since an end once more for each earlier period
    (docs/performance-log.md)."""
    first, last = min(ends.values()), max(ends.values())
    live_at_an_end = (Lot.earned_at < last) & (Lot.expires_at >= first) & SPENDABLE_SOMETIME
    live_at_each_end = [_live(end) for end in ends.values()]
    # empty lots add nothing; ix_lots_live_expiry skips them
    now = select(Lot.issuer_id, *_sums(live_at_each_end, Lot.remaining)).where(
        live_at_an_end, HOLDS_POINTS
    )
    moved_since = [
        (Transaction.occurred_at >= end) & (Allocation.period_id > period_id) & _live(end)
        for period_id, end in ends.items()
    ]
    since = (
        select(Lot.issuer_id, *_sums(moved_since, -Allocation.points))
        .select_from(Transaction)
        .join(Allocation, Allocation.transaction_id == Transaction.id)
        .join(Lot, Lot.id == Allocation.lot_id)
        .where(Transaction.occurred_at >= first, Allocation.period_id > min(ends), live_at_an_end)
    )
    totals = {period_id: defaultdict(int) for period_id in ends}
    for query in (now, since):
        for issuer_id, *sums in session.execute(query.group_by(Lot.issuer_id)):
            for period_id, points in zip(ends, sums, strict=True):
                if points:  # an issuer none of whose lots was live at this end has no entry
                    totals[period_id][issuer_id] += int(points)
    return {period_id: dict(by_issuer) for period_id, by_issuer in totals.items()}


def _sums(conditions: list, value) -> list:
    """A sum of ``value`` over the rows where each condition holds (0 where none does).
    A single condition is its query's own filter, so its rows are summed as they are:
    a CASE on every row made a day's draft on SQLite half as slow again."""
    if len(conditions) == 1:
        return [func.sum(value)]
    return [func.sum(case((condition, value), else_=0)) for condition in conditions]


def _live(end: datetime):
    """A lot earned before ``end`` and not expired at its last instant."""
    return (Lot.earned_at < end) & (Lot.expires_at >= end)


def late_items(session, period_id: str) -> list[Transaction]:
    """The period's late transactions (a partial index keeps this off the period's other
    rows: on SQLite, once it has statistics)."""
    query = (
        select(Transaction).where(Transaction.period_id == period_id, LATE).order_by(Transaction.id)
    )
    return list(session.scalars(query))


def largest_id(connection, table: str) -> int:
    """A table's largest id, 0 while it is empty (a session or a connection): of
    ``transactions``, the ledger's last transaction."""
    return connection.scalar(select(func.max(Base.metadata.tables[table].c.id))) or 0


def occurrences(session) -> tuple[datetime | None, datetime | None]:
    """The first and the last ``occurred_at`` of the ledger, None for both while it is
    empty: one statement, two probes of the index on ``occurred_at``. Each is a query of
    its own: SQLite probes an index for a lone ``min`` or ``max`` only, and read both
    from one select by scanning the whole index (78 ms a request at 577,000
    transactions, on every KPIs, draft and periods request)."""
    first, last = session.execute(
        select(
            select(func.min(Transaction.occurred_at)).scalar_subquery(),
            select(func.max(Transaction.occurred_at)).scalar_subquery(),
        )
    ).one()
    return first, last


@dataclass(frozen=True)
class MemberBalance:
    """A member's balance (the domain rule's figures) and lifetime totals: points earned
    and given as bonuses less what returns took back, and points burned less what burn
    reversals put back (decisions.md, "Lifetime earned and burned")."""

    current: lots_domain.Balance
    earned: int
    burned: int


# the burns' partial index (migration 0009) is WHERE type IN ('burn', 'burn_reversal'),
# the returns' (0024) WHERE type = 'earn_reversal', asked as it is written: SQLite reads
# a partial index only for a term its condition is, and not for IN ('earn_reversal')
REDEEMING = written("redeeming", totals_domain.REDEEMING)
RETURNING = written("returning", totals_domain.RETURN)


def _member_balance_query():
    """The statement behind :func:`member_balance`, built once: it runs on every lookup."""
    L, T, M = Lot, Transaction, Member
    member = bindparam("member_id")
    at, horizon = bindparam("at", type_=UTCDateTime()), bindparam("horizon", type_=UTCDateTime())
    spendable = L.available_at <= at
    totals = select(
        select(Settings.generation).scalar_subquery().label("generation"),
        exists().where(M.id == member).label("known"),
        select(func.coalesce(func.sum(L.points), 0))
        .where(L.member_id == member)
        .scalar_subquery()
        .label("earned"),
        select(func.coalesce(func.sum(T.points), 0))
        .where(T.member_id == member, T.type == RETURNING)
        .scalar_subquery()
        .label("returned"),
        select(func.coalesce(func.sum(T.points), 0))
        .where(T.member_id == member, T.type.in_(REDEEMING))
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
        .where(L.member_id == member, L.remaining > 0, L.expires_at > at, SPENDABLE_SOMETIME)
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


def member_balance(connection, member_id: str, at: datetime) -> tuple[MemberBalance | None, int]:
    """:func:`coalition.domain.lots.balance` of the member's lots, summed by the database,
    with the lifetime totals, in one statement; None when there is no such member.
    Beside it, the catalog's generation, read by the same statement so that the
    lookup's authentication needs no read of its own (:mod:`coalition.services.catalog`).

    A member may hold hundreds of lots; the statement answers one row per date on
    which points expire within the horizon, plus one for the rest, instead of every
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
        return None, first.generation
    rows = [
        (row.expiring_on, int(row.available), int(row.pending))
        for row in result
        if row.available is not None  # the outer join's empty row: no live lots
    ]
    balance = MemberBalance(
        current=lots_domain.Balance(
            available=sum(available for _, available, _ in rows),
            pending=sum(pending for _, _, pending in rows),
            expiring=sorted(
                (
                    lots_domain.Expiring(available + pending, when)
                    for when, available, pending in rows
                    if when is not None
                ),
                key=lambda item: item.expires_at,
            ),
        ),
        earned=totals_domain.net_issued(int(first.earned), -int(first.returned)),
        burned=-int(first.burned),
    )
    return balance, first.generation
