"""The ledger's sums: each lot's points against its allocations, each movement's
against its allocations, and the period totals a close reads instead of the
ledger's rows (:mod:`coalition.db.period_totals`) against the rows they count.
"""

from sqlalchemy import case, func, select

from coalition.db.models import Allocation, Lot, PairTotal, PartnerTotal, Transaction
from coalition.db.period_totals import PAIR_KEY
from coalition.domain import lots
from coalition.domain.money import plain
from coalition.domain.totals import ACTIVITY_FIELDS, REDEEMING

# every type but those that create a lot moves points by its allocations alone
MOVED = tuple(kind for kind in lots.TYPES if kind not in lots.ISSUING)


def problems(connection):
    """What does not add up here, a line each."""
    yield from _lots(connection)
    yield from _movements(connection)
    yield from _redeemed_totals(connection)
    yield from _activity_totals(connection)


def _lots(connection):
    moved = _allocated(Allocation.lot_id)
    rows = connection.execute(
        select(Lot.id, Lot.remaining, Lot.points + func.coalesce(moved.c.points, 0))
        .outerjoin(moved, moved.c.key == Lot.id)
        .where(Lot.remaining != Lot.points + func.coalesce(moved.c.points, 0))
        .order_by(Lot.id)
    )
    for lot, remaining, expected in rows:
        yield f"lot {lot} holds {remaining} points; its points and allocations make {expected}"


def _movements(connection):
    moved = _allocated(Allocation.transaction_id)
    rows = connection.execute(
        select(Transaction.id, Transaction.type, Transaction.points, moved.c.points)
        .outerjoin(moved, moved.c.key == Transaction.id)
        .where(Transaction.type.in_(MOVED))
        .where(Transaction.points != func.coalesce(moved.c.points, 0))
        .order_by(Transaction.id)
    )
    for transaction, kind, points, allocated in rows:
        yield (
            f"transaction {transaction} ({kind}) moves {points} points;"
            f" its allocations move {allocated or 0}"
        )


def _redeemed_totals(connection):
    ledger = _grouped(
        connection,
        [getattr(Allocation, name) for name in PAIR_KEY],
        [func.sum(-Allocation.points)],
        Allocation.type.in_(REDEEMING),
    )
    kept = _grouped(
        connection, [getattr(PairTotal, name) for name in PAIR_KEY], [func.sum(PairTotal.points)]
    )
    for (period, issuer, redeemer, rate), _, found, expected in _differing(
        kept, ledger, ["points"]
    ):
        yield (
            f"{period}: points of {issuer} redeemed at {redeemer} at {plain(rate)} are kept as"
            f" {found}; the ledger makes {expected}"
        )


def _activity_totals(connection):
    def points_of(*types, sign=1):
        return func.sum(case((Transaction.type.in_(types), sign * Transaction.points), else_=0))

    ledger = _grouped(
        connection,
        (Transaction.period_id, Transaction.partner_id, Transaction.fee_rate),
        [
            points_of(*lots.ISSUING),
            points_of("earn_reversal", sign=-1),
            func.sum(Transaction.shortfall_points),
            points_of("expiry", sign=-1),
            func.sum(case((Transaction.late, 1), else_=0)),
        ],
    )
    kept = _grouped(
        connection,
        (PartnerTotal.period_id, PartnerTotal.partner_id, PartnerTotal.fee_rate),
        [func.sum(getattr(PartnerTotal, field)) for field in ACTIVITY_FIELDS],
    )
    for (period, partner, fee_rate), field, found, expected in _differing(
        kept, ledger, ACTIVITY_FIELDS
    ):
        yield (
            f"{period}: {field} of {partner} at {_fee(fee_rate)} is kept as {found};"
            f" the ledger makes {expected}"
        )


def _allocated(key):
    return (
        select(key.label("key"), func.sum(Allocation.points).label("points"))
        .group_by(key)
        .subquery()
    )


def _differing(kept: dict, ledger: dict, fields):
    """``(key, field, kept, ledger)`` for each counter kept apart from what the ledger makes."""
    zeros = (0,) * len(fields)
    for key in sorted(kept.keys() | ledger.keys(), key=str):
        both = zip(fields, kept.get(key, zeros), ledger.get(key, zeros), strict=True)
        for field, found, expected in both:
            if found != expected:
                yield key, field, found, expected


def _fee(rate) -> str:
    return "no fee rate" if rate is None else f"fee rate {plain(rate)}"


def _grouped(connection, keys, sums, where=True) -> dict[tuple, tuple[int, ...]]:
    """Sums by key, without the keys whose sums are all 0 (a burn adds no activity).

    Rows whose keys are equal in Python are added up: SQLite keeps a rate as the
    text it was written with, so its GROUP BY parts 0.01 from 0.010, which are
    one rate (and one key) here.
    """
    rows = connection.execute(select(*keys, *sums).where(where).group_by(*keys))
    found: dict[tuple, tuple[int, ...]] = {}
    for row in rows:
        key, values = tuple(row[: len(keys)]), tuple(int(x or 0) for x in row[len(keys) :])
        before = found.get(key, (0,) * len(values))
        found[key] = tuple(map(sum, zip(before, values, strict=True)))
    return {key: values for key, values in found.items() if any(values)}
