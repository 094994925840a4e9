"""What a chunk of postings, or a batch of expiries, locks and reads of the ledger,
set-based, as plain rows; and the fresh ids its new rows take.

:class:`coalition.services.book.Book`, :mod:`coalition.services.expiry` and
an import's lanes (:func:`members_of`) decide what they need and in which
order; these statements fetch it, one round trip each, whatever the chunk's
size. The posting path's statements are built once, at import: building
one, and working out its cache key, costs more than running it, and they
run on every posting.
"""

import functools
from collections import defaultdict
from collections.abc import Collection, Sequence
from datetime import UTC, datetime

from sqlalchemy import String, bindparam, case, func, or_, select, text, true, union_all
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import aliased

from coalition.db import aggregates, locks, models, on_postgresql, rows, written
from coalition.db.lists import among, among_pairs, pairs

ID_TABLES = ("transactions", "lots", "allocations")
# the types of the partial index of allocations by lot (ix_allocations_lot_history)
PUT_BACK_OR_EXPIRED = written("put_back_or_expired", ("burn_reversal", "expiry"))


def _id_draws(tables=ID_TABLES) -> str:
    """SQL (PostgreSQL): per table, an array of fresh ids from its sequence, as many as
    its bound parameter of that name."""
    return ", ".join(
        f"ARRAY(SELECT nextval((SELECT pg_get_serial_sequence('{table}', 'id')::regclass))"
        f" FROM generate_series(1, :{table}))"
        for table in tables
    )


def draw_ids(connection, counts: dict[str, int]) -> dict[str, list[int]]:
    """Fresh ids of these tables (PostgreSQL), ``counts`` of each, in one round trip."""
    row = connection.execute(text(f"SELECT {_id_draws(tuple(counts))}"), counts).one()
    return dict(zip(counts, row, strict=True))


def lock_chunk(
    session, keys: list[str], ahead: dict[str, int] | None
) -> tuple[datetime, dict | None]:
    """The calendar lock, shared, and the idempotency keys' locks, in the order given;
    in the same round trip, when they were all granted, by the database's clock, and
    ``ahead`` fresh ids per table if asked (PostgreSQL)."""
    row = session.execute(
        _lock_statement(bool(ahead)), {"calendar": locks.CALENDAR, "keys": keys, **(ahead or {})}
    ).one()
    _, _, granted, *fresh = row
    drawn = dict(zip(ID_TABLES, fresh, strict=True)) if ahead else None
    return granted.astimezone(UTC), drawn


@functools.cache
def _lock_statement(draw: bool):
    # PostgreSQL evaluates the select list in order and a subquery when first read,
    # so the calendar lock is held before any id is drawn (:mod:`coalition.db.horizon`),
    # and the clock is read once every lock is granted.
    draws = f", {_id_draws()}" if draw else ""
    return text(
        "SELECT pg_advisory_xact_lock_shared(:calendar),"
        " (SELECT count(pg_advisory_xact_lock(hashtextextended(key, 0)))"
        f"  FROM unnest(CAST(:keys AS text[])) AS key), clock_timestamp(){draws}"
    )


# with_for_update(key_share=True) is FOR NO KEY UPDATE on PostgreSQL
LOCK_MEMBERS = (
    select(models.Member.id)
    .where(among(models.Member.id, "ids"))
    .order_by(models.Member.id)
    .with_for_update(key_share=True)
)


def lock_members(session, member_ids: set[str]) -> set[str]:
    """Lock these members for this transaction, in id order; returns those that exist.

    The lock that serialises everything touching one member's lots: a burn, a
    reversal and the expiry job each lock the member rows first (a chunk's or a
    batch's members at once, in id order, so two units of work never lock them
    crosswise), then read the lots: two burns of one member therefore run one
    after the other and can never spend the same points.

    The lock is PostgreSQL's ``FOR NO KEY UPDATE``, not ``FOR UPDATE``: it
    excludes the same lock, so burns of one member still queue, but not the
    ``KEY SHARE`` lock a foreign key check takes on the member when another
    unit of work inserts a row naming them. With ``FOR UPDATE``, two batches,
    each burning for a member the other earns for, would wait on each other:
    a deadlock, retried, at the cost of both.
    """
    if not member_ids:
        return set()
    found = session.connection().execute(LOCK_MEMBERS, {"ids": sorted(member_ids)})
    return set(found.scalars())


# (partner_id, external_id) among a list of pairs: an expanded IN, on SQLite with each
# side's values too, without which it scans every transaction (:func:`~coalition.db.lists.among`
# takes single values)
UNDER_KEYS = among_pairs(models.Transaction.partner_id, models.Transaction.external_id, "keys")
# the catalog's generation rides along: settings is one row, joined to what was posted
POSTED = select(models.Settings.generation, models.Transaction.__table__).select_from(
    models.Settings.__table__.outerjoin(models.Transaction.__table__, UNDER_KEYS)
)
ALLOCATIONS = (
    select(models.Allocation.__table__)
    .where(among(models.Allocation.transaction_id, "ids"))
    .order_by(models.Allocation.id)
)
# what burn reversals put back into the allocations of these burns: asked of the burns'
# ids, not of their allocations' (one a lot: a list of 250,001 passed SQLite's limit)
_REVERSED = aliased(models.Allocation, name="reversed")
RESTORED = (
    select(models.Allocation.reverses_id, models.Allocation.points)
    .join(_REVERSED, _REVERSED.id == models.Allocation.reverses_id)
    .where(among(_REVERSED.transaction_id, "ids"))
)
POSTED_BY = select(
    models.Transaction.partner_id, models.Transaction.external_id, models.Transaction.member_id
).where(UNDER_KEYS)
EARN_REVERSALS = select(
    models.Transaction.original_id,
    models.Transaction.points,
    models.Transaction.shortfall_points,
    models.Transaction.amount,
).where(among(models.Transaction.original_id, "ids"))


#: The order a burn spends lots in, as SQL: :func:`coalition.domain.lots.spending_place`.
SPENDING_ORDER = (models.Lot.expires_at, models.Lot.earned_at, models.Lot.id)
# The lots a burn may spend from first: those of each member that hold points and expire
# after the chunk's earliest burn, the first ``first`` of each in SPENDING_ORDER, read by
# one of the two statements below, as suits each database
_SPENDABLE_FIRST = (aggregates.HOLDS_POINTS, models.Lot.expires_at > bindparam("spendable_after"))
# SQLite: each member's lots numbered by a window, read by ix_lots_member (joined back to
# lots by id, the numbered few read every lot); it numbers every live lot of the member
_NUMBERED = (
    select(
        models.Lot.__table__,
        func.row_number()
        .over(partition_by=models.Lot.member_id, order_by=SPENDING_ORDER)
        .label("place"),
    )
    .where(among(models.Lot.member_id, "first_of"), *_SPENDABLE_FIRST)
    .subquery()
)
NUMBERED_FIRST_LOTS = select(
    *(_NUMBERED.c[column.key] for column in models.Lot.__table__.columns)
).where(_NUMBERED.c.place <= bindparam("first"))
# PostgreSQL: per member, an ordered read with a limit, which stops after about ``first``
# lots of ix_lots_member (sorting only those that share an expiry) where the window read
# every live lot of the member (20,000 rows for 50 at a heavy one: 18.7 ms against 0.1)
_SPENDER = (
    func.unnest(bindparam("first_of", type_=ARRAY(String())))
    .table_valued("member_id")
    .render_derived(name="spender")
)
_FIRST_OF_ONE = (
    select(models.Lot.__table__)
    .where(models.Lot.member_id == _SPENDER.c.member_id, *_SPENDABLE_FIRST)
    .order_by(*SPENDING_ORDER)
    .limit(bindparam("first"))
    .lateral()
)
ORDERED_FIRST_LOTS = select(_FIRST_OF_ONE).select_from(_SPENDER.join(_FIRST_OF_ONE, true()))


# The lots these transactions' allocations moved, found by the transactions: a burn from
# 250,001 lots made as many allocations, and their lots sent as a list passed SQLite's
# limit of values a statement takes (SQLITE_MAX_VARIABLE_NUMBER), so its reversal failed.
MOVED_LOTS = (
    select(models.Lot.__table__)
    .join(models.Allocation, models.Allocation.lot_id == models.Lot.id)
    .where(among(models.Allocation.transaction_id, "moved_by"))
)


@functools.cache
def _lots_statement(
    of_members: bool, of_transactions: bool, by_id: bool, moved: bool, first: bool, postgresql: bool
):
    conditions = [
        condition
        for wanted, condition in (
            (of_members, among(models.Lot.member_id, "members") & (models.Lot.remaining > 0)),
            (of_transactions, among(models.Lot.transaction_id, "transactions")),
            (by_id, among(models.Lot.id, "ids")),
        )
        if wanted
    ]
    named = select(models.Lot.__table__).where(or_(*conditions)) if conditions else None
    # branches of their own: an IN of the first lots, or of a join, ORed with the rest
    # reads every lot
    first_lots = ORDERED_FIRST_LOTS if postgresql else NUMBERED_FIRST_LOTS
    branches = [
        branch
        for wanted, branch in ((conditions, named), (moved, MOVED_LOTS), (first, first_lots))
        if wanted
    ]
    return branches[0] if len(branches) == 1 else union_all(*branches)


def posted(session, keys: set[tuple[str, str]]) -> tuple[int, list[rows.Transaction]]:
    """The catalog's generation, and the transactions posted under these keys."""
    result = session.connection().execute(POSTED, pairs("keys", keys))
    found = [dict(row) for row in result.mappings()]
    (generation,) = {row.pop("generation") for row in found}  # settings is one row
    return generation, [rows.Transaction(**row) for row in found if row["id"] is not None]


def members_of(session, keys: set[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The member of each transaction already posted under these (partner, external_id):
    an import puts a reversal in the lane of its original's member."""
    if not keys:
        return {}
    found = session.connection().execute(POSTED_BY, pairs("keys", keys))
    return {(partner, external): member for partner, external, member in found}


def allocations(session, transaction_ids: list[int]) -> dict[int, list[rows.Allocation]]:
    """The allocations of these transactions, by transaction, in the order they were made."""
    found = defaultdict(list)
    if transaction_ids:
        result = session.connection().execute(ALLOCATIONS, {"ids": transaction_ids})
        for row in result.mappings():
            found[row["transaction_id"]].append(rows.Allocation(**row))
    return dict(found)


def lots(
    session,
    member_ids: Collection[str] = frozenset(),
    transaction_ids: Sequence[int] = (),
    lot_ids: Sequence[int] = (),
    first: tuple[Collection[str], datetime, int] | None = None,
    moved_by: Sequence[int] = (),
) -> dict[int, rows.Lot]:
    """The members' live lots, the lots of these transactions, these lots, and the lots
    the allocations of the transactions ``moved_by`` moved, by id; and, with ``first`` =
    ``(members, after, count)``, the first ``count`` lots of each of those members, in
    :data:`SPENDING_ORDER`, of those that hold points and expire after ``after``.
    """
    if not (member_ids or transaction_ids or lot_ids or moved_by or first):
        return {}
    query = _lots_statement(
        bool(member_ids),
        bool(transaction_ids),
        bool(lot_ids),
        bool(moved_by),
        bool(first),
        on_postgresql(session),
    )
    first_of, spendable_after, count = first or ((), None, 0)
    found = session.connection().execute(
        query,
        {
            "members": sorted(member_ids),
            "transactions": list(transaction_ids),
            "ids": list(lot_ids),
            "moved_by": list(moved_by),
            "first_of": sorted(first_of),
            "spendable_after": spendable_after,
            "first": count,
        },
    )
    return {row["id"]: rows.Lot(**row) for row in found.mappings()}


def restored(session, burn_ids: list[int]) -> dict[int, int]:
    """Points burn reversals have put back into the allocations of these burns, by the
    allocation they reversed."""
    if not burn_ids:
        return {}
    put_back = defaultdict(int)
    for allocation_id, points in session.connection().execute(RESTORED, {"ids": burn_ids}):
        put_back[allocation_id] += points
    return dict(put_back)


def earn_reversals(session, original_ids: list[int]) -> dict[int, list]:
    """Earn reversals already posted against these originals: their points,
    shortfall and amount, which is all a further reversal needs of them."""
    if not original_ids:
        return {}
    found = defaultdict(list)
    for row in session.connection().execute(EARN_REVERSALS, {"ids": original_ids}):
        found[row.original_id].append(row)
    return dict(found)


def lots_due(session, due_by: datetime, limit: int) -> list[tuple[int, str]]:
    """Up to ``limit`` lots holding points that expire by ``due_by``, as (id, member),
    those due first first: read in that order from the index of live lots by expiry,
    which a lot leaves once expired, so each batch reads only its own lots."""
    L = models.Lot
    return session.execute(
        select(L.id, L.member_id)
        .where(aggregates.HOLDS_POINTS, L.expires_at <= due_by)
        .order_by(L.expires_at, L.id)
        .limit(limit)
    ).all()


def expiry_history(
    session, lot_ids: list[int]
) -> tuple[dict[int, int], dict[int, dict[datetime, int]]]:
    """Per lot: how many expiries it has had; and, by instant after the lot expired,
    the points burn reversals put back then that no expiry has taken yet.

    An expiry of points put back is dated at their reversal, so reversals and
    expiries meet by instant: what is left at an instant is still to expire
    (:func:`coalition.domain.lots.expiries`).
    """
    A, T, L = models.Allocation, models.Transaction, models.Lot
    query = (
        select(
            A.lot_id,
            T.occurred_at,
            T.occurred_at > L.expires_at,
            func.count(case((A.type == "expiry", A.id))),
            func.sum(A.points),
        )
        .join(T, T.id == A.transaction_id)
        .join(L, L.id == A.lot_id)
        .where(among(A.lot_id, "lots"), A.type.in_(PUT_BACK_OR_EXPIRED))
        .group_by(A.lot_id, L.expires_at, T.occurred_at)
    )
    expiries: dict[int, int] = defaultdict(int)
    put_back: dict[int, dict[datetime, int]] = {}
    for lot_id, at, after_expiry, expired, points in session.execute(query, {"lots": lot_ids}):
        expiries[lot_id] += expired
        if after_expiry:
            put_back.setdefault(lot_id, {})[at] = int(points)
    return expiries, put_back
