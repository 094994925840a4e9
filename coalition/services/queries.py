"""Read models: transactions as the API shows them, listings, balances, history.

Isolation (SPEC §4) is decided by two rules of the key's: a listing is
filtered by :meth:`~coalition.auth.Principal.listed_partner` (asking for
another partner's is 403), and one record by id is shown only if
:meth:`~coalition.auth.Principal.may_see` (otherwise 404, as if it did not
exist). Balances are no partner's.
"""

from datetime import datetime

from sqlalchemy import bindparam, select

from coalition.db import aggregates, horizon, models, written
from coalition.db.lists import among
from coalition.domain import money
from coalition.domain.errors import Invalid, NotFound
from coalition.services import calendar, pages

DEFAULT_REASONS = {
    "earn": "purchase",
    "bonus": "bonus",
    "burn": "redemption",
    "earn_reversal": "return",
    "burn_reversal": "redemption reversed",
    "expiry": "expiry",
}


def _of_the_page(transaction_id):
    """The transaction is one of the page's ``ids``, and so between its ``first`` and
    ``last``: the span adds no row, but it tells PostgreSQL how few of the table's rows
    the page can name. Planned for the 1,000 ids alone, a page's read of its lots was
    a scan of every lot of the ledger's history (performance-log.md)."""
    return among(transaction_id, "ids") & transaction_id.between(
        bindparam("first"), bindparam("last")
    )


# a page's allocations and the lots its earns and bonuses made: the columns shown
_MOVED = (
    select(
        models.Allocation.transaction_id,
        models.Allocation.lot_id,
        models.Allocation.issuer_id,
        models.Allocation.points,
    )
    .where(_of_the_page(models.Allocation.transaction_id))
    .order_by(models.Allocation.id)
)
_OWN_LOTS = select(
    models.Lot.transaction_id, models.Lot.id, models.Lot.available_at, models.Lot.expires_at
).where(_of_the_page(models.Lot.transaction_id))


def transaction_views(session, transactions: list) -> list[dict]:
    """The API representation of transactions (rows of the table, or ORM objects), with
    their lots and allocations, read as columns: ORM objects for a page of 1,000 took as
    long again (performance-log.md)."""
    ids = [transaction.id for transaction in transactions]
    page = {"ids": ids, "first": min(ids, default=0), "last": max(ids, default=0)}
    allocations: dict[int, list[dict]] = {transaction_id: [] for transaction_id in ids}
    for row in session.execute(_MOVED, page):
        allocations[row.transaction_id].append(_allocation_view(row))
    lots = {row.transaction_id: row for row in session.execute(_OWN_LOTS, page)}
    return [
        _view(transaction, allocations[transaction.id], lots.get(transaction.id))
        for transaction in transactions
    ]


def posting_view(posting) -> dict:
    """The API representation of a posting, from the rows the ledger's book holds."""
    allocations = [_allocation_view(row) for row in posting.allocations]
    return _view(posting.transaction, allocations, posting.lot)


def _allocation_view(row) -> dict:
    """An allocation as responses show it, from the book's row or a read of its columns."""
    return {"lot_id": row.lot_id, "issuer_id": row.issuer_id, "points": abs(row.points)}


def _view(transaction, allocations: list[dict], lot) -> dict:
    """A transaction as the API shows it, from any object with its columns as attributes:
    a listing's rows, an ORM object read by id, the book's row of a posting."""
    amount = transaction.amount  # stored to NUMERIC's four places: shown at the currency's
    if amount is not None:
        amount = money.text(money.round_half_even(amount, transaction.currency))
    return {
        "id": transaction.id,
        "external_id": transaction.external_id,
        "type": transaction.type,
        "partner_id": transaction.partner_id,
        "member_id": transaction.member_id,
        "occurred_at": transaction.occurred_at,
        "recorded_at": transaction.recorded_at,
        "amount": amount,
        "currency": transaction.currency,
        "category": transaction.category,
        "reason": transaction.reason,
        "points": transaction.points,
        "shortfall_points": transaction.shortfall_points,
        "original_id": transaction.original_id,
        "rate_ids": list(transaction.rate_ids),
        "period_id": transaction.period_id,
        "late": transaction.late,
        "key_id": transaction.key_id,
        "allocations": allocations,
        "lot_id": lot.id if lot else None,
        "available_at": lot.available_at if lot else None,
        "expires_at": lot.expires_at if lot else None,
    }


def get_transaction(session, principal, transaction_id: int) -> dict:
    transaction = session.get(models.Transaction, transaction_id)
    if transaction is None or not principal.may_see(transaction.partner_id):
        raise NotFound(f"no transaction {transaction_id}")
    return transaction_views(session, [transaction])[0]


def keyset_page(session, query, paging: pages.Paging):
    """One page of ``query``'s transactions (rows of the table's columns), and the cursor
    of the next page.

    A page never passes a posting still in flight (:mod:`coalition.db.horizon`): in
    either order, every id below the highest it shows has settled.
    """
    T = models.Transaction
    query = pages.keyset(query, T.id, paging)
    found = session.execute(query).all()
    shown = found[: paging.limit]
    settled = horizon.bound(session, max(row.id for row in shown)) if shown else None
    if settled is not None:
        found = session.execute(query.where(T.id <= settled)).all()
    return pages.split_page(found, paging.limit)


def list_transactions(session, principal, filters: dict, paging: pages.Paging):
    """A page of transactions by the listing's filters; a key bound to a partner lists
    that partner's alone, whatever it asked for (403 for another's)."""
    partner_id = principal.listed_partner(filters.get("partner_id"))
    T = models.Transaction
    query = select(T.__table__)
    if partner_id is not None:
        query = query.where(T.partner_id == partner_id)
    if filters.get("external_id") is not None and partner_id is None:
        # an id is unique within its partner; across partners it is no lookup but a scan
        raise Invalid(
            "external_id is a partner's own id: give partner_id with it",
            field="partner_id",
            location="query",
        )
    for field in ("external_id", "member_id"):
        if filters.get(field) is not None:
            query = query.where(getattr(T, field) == filters[field])
    if filters.get("type") is not None:
        # the API allows only the types; the rarer ones have a partial index (migration 0015)
        query = query.where(T.type == written("type", filters["type"]))
    if filters.get("period_id") is not None:
        query = _in_period(query, calendar.parse(session, filters["period_id"], location="query"))
    query = pages.within(query, T.occurred_at, filters)
    if filters.get("from") is not None:
        query = _from_its_period(session, query, filters["from"])
    page, next_cursor = keyset_page(session, query, paging)
    return {"items": transaction_views(session, page), "next_cursor": next_cursor}


def _in_period(query, period):
    """``query`` for the transactions of ``period``, bounded by its lowest and highest id.

    A page in id order is a range of the index by period and id; but whichever index
    the planner reads it by (the primary key, a partner's or a member's), the bounds
    start it at the period's first transaction and stop it at its last, not at the
    ledger's first or newest: raise ``random_page_cost`` to 8 and PostgreSQL walked the
    primary key past every earlier period (performance-log.md).
    """
    T = models.Transaction
    return query.where(
        T.period_id == period.id,
        T.id.between(aggregates.first_id(period.id), aggregates.last_id(period.id)),
    )


def _from_its_period(session, query, since: datetime):
    """``query`` for transactions dated from ``since``, bounded below by the lowest id of
    the period containing it and those after.

    A transaction lands in the period of its ``occurred_at``, or later if that one is
    closed (SPEC §7), so every one dated from ``since`` is at or above the bound. A page
    in id order then starts there, not at the ledger's first transaction: what it reads
    follows the periods since ``since``, not the ledger's age (docs/performance-log.md).
    """
    period_id = calendar.containing_id(session, since)
    if period_id is None:
        return query
    return query.where(models.Transaction.id >= aggregates.lowest_id_from(period_id))


def balance(session, member_id: str, now: datetime) -> tuple[dict | None, int]:
    """SPEC §6: available, pending, expiring within 90 days, lifetime figures, in one read
    (None for an unknown member), and the catalog's generation it read beside them."""
    found, generation = aggregates.member_balance(session.connection(), member_id, now)
    if found is None:
        return None, generation
    return {
        "member_id": member_id,
        "available": found.current.available,
        "pending": found.current.pending,
        "expiring": [item._asdict() for item in found.current.expiring],
        "lifetime_earned": found.earned,
        "lifetime_burned": found.burned,
        "as_of": now,
    }, generation


def history(session, principal, member_id: str, paging: pages.Paging) -> dict:
    """Every points movement of a member; a bound key sees only its partner's."""
    if session.get(models.Member, member_id) is None:
        raise NotFound(f"no member {member_id!r}")
    T = models.Transaction
    query = select(T.__table__).where(T.member_id == member_id)
    own = principal.own_partner()
    if own is not None:
        query = query.where(T.partner_id == own)
    page, next_cursor = keyset_page(session, query, paging)
    views = transaction_views(session, page)
    items = [
        {
            "transaction_id": view["id"],
            "external_id": view["external_id"],
            "type": view["type"],
            "partner_id": view["partner_id"],
            "occurred_at": view["occurred_at"],
            "points": view["points"],
            "shortfall_points": view["shortfall_points"],
            "reason": view["reason"] or DEFAULT_REASONS[view["type"]],
            "lots": lots_moved(view),
            "available_at": view["available_at"],
            "expires_at": view["expires_at"],
        }
        for view in views
    ]
    return {"member_id": member_id, "items": items, "next_cursor": next_cursor}


def lots_moved(view: dict) -> list[dict]:
    """The lots a transaction as the API shows it moved points into or out of, each with the
    points moved, unsigned as allocations are shown: its own lot (an earn, a bonus), or
    the lots its allocations took from or put back to; none for a return whose lot was
    spent."""
    if view["lot_id"] is not None:
        return [
            {"lot_id": view["lot_id"], "issuer_id": view["partner_id"], "points": view["points"]}
        ]
    return view["allocations"]
