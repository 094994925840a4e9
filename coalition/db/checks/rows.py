"""What a row repeats of another and the rules that wrote it: an earn against its
lot, an allocation against its transaction and lot, a burn against its lots' dates,
a reversal against its original, an amount against its partner's currency.
"""

from datetime import datetime

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import aliased

from coalition.db.models import Allocation, Lot, Partner, Transaction
from coalition.domain import lots


def problems(connection):
    """What does not add up here, a line each."""
    yield from _issued(connection)
    yield from _allocations(connection)
    yield from _reversals(connection)
    yield from _overclaimed(connection)
    yield from _currencies(connection)


def _issued(connection):
    """An earn or a bonus issues its points as one lot, its partner's, for its member, from
    its ``occurred_at`` (SPEC §6), and only they have lots: then the ledger's points are
    what the lots hold, and the lots' issuers those the transactions name."""
    pairs = {
        "points": (Transaction.points, Lot.points),
        "partner": (Transaction.partner_id, Lot.issuer_id),
        "member": (Transaction.member_id, Lot.member_id),
        "date": (Transaction.occurred_at, Lot.earned_at),
    }
    issuing = Transaction.type.in_(lots.ISSUING)
    rows = connection.execute(
        select(
            Transaction.id, Transaction.type, Lot.id, *(x for pair in pairs.values() for x in pair)
        )
        .outerjoin(Lot, Lot.transaction_id == Transaction.id)
        .where(
            or_(
                and_(issuing, Lot.id.is_(None)),
                and_(~issuing, Lot.id.is_not(None)),
                *(mine != its for mine, its in pairs.values()),
            )
        )
        .order_by(Transaction.id)
    )
    for transaction, kind, lot, *values in rows:
        if lot is None:
            yield f"transaction {transaction} ({kind}) has no lot"
        elif kind not in lots.ISSUING:
            yield f"lot {lot} is of transaction {transaction} ({kind}), which issues none"
        else:
            differing = [
                f"{name} {_shown(mine)} and {_shown(its)}"
                for name, mine, its in zip(pairs, values[::2], values[1::2], strict=True)
                if mine != its
            ]
            yield (
                f"transaction {transaction} ({kind}) and its lot {lot} differ:"
                f" {', '.join(differing)}"
            )


def _allocations(connection):
    """What an allocation names beside its points is its transaction's (type, period,
    partner: the redeemer) and its lot's (issuer), which the period totals count by; a
    burn spends a lot available and not expired at its date, an expiry takes what is
    left once the lot expired (SPEC §6), a return takes from its earn's lot alone, and a
    burn reversal puts back what an allocation of its burn took from that lot."""
    A, T, L = Allocation, Transaction, Lot
    reversed_, earns_lot = aliased(Allocation), aliased(Lot)
    copies = {
        "type": (A.type, T.type),
        "period_id": (A.period_id, T.period_id),
        "redeemer_id": (A.redeemer_id, T.partner_id),
        "issuer_id": (A.issuer_id, L.issuer_id),
    }
    rules = {
        "pending": and_(A.type == "burn", T.occurred_at < L.available_at),
        "expired": and_(A.type == "burn", T.occurred_at >= L.expires_at),
        "early": and_(A.type == "expiry", T.occurred_at < L.expires_at),
        "other_lot": and_(
            A.type == "earn_reversal", or_(earns_lot.id.is_(None), earns_lot.id != A.lot_id)
        ),
        "other_burn": and_(
            A.type == "burn_reversal",
            or_(
                reversed_.id.is_(None),
                reversed_.transaction_id != T.original_id,
                reversed_.lot_id != A.lot_id,
            ),
        ),
    }
    rows = connection.execute(
        select(
            A.id.label("allocation"),
            A.transaction_id.label("transaction"),
            A.lot_id.label("lot"),
            A.points,
            A.reverses_id,
            T.type,
            T.occurred_at,
            L.available_at,
            L.expires_at,
            *(mine.label(f"kept_{field}") for field, (mine, _) in copies.items()),
            *(its.label(f"its_{field}") for field, (_, its) in copies.items()),
            *(rule.label(name) for name, rule in rules.items()),
        )
        .join(T, T.id == A.transaction_id)
        .join(L, L.id == A.lot_id)
        .outerjoin(earns_lot, earns_lot.transaction_id == T.original_id)
        .outerjoin(reversed_, reversed_.id == A.reverses_id)
        .where(or_(*(mine != its for mine, its in copies.values()), *rules.values()))
        .order_by(A.id)
    )
    for row in rows.mappings():
        yield from _allocation_problems(row, tuple(copies))


def _allocation_problems(row, copied: tuple[str, ...]):
    """What one allocation read by :func:`_allocations` breaks, a line each: each of the
    ``copied`` fields it names otherwise than its transaction or lot, and each rule."""
    transaction = f"transaction {row['transaction']} ({row['type']})"
    for field in copied:
        if row[f"kept_{field}"] != row[f"its_{field}"]:
            owner = "lot" if field == "issuer_id" else "transaction"
            yield (
                f"allocation {row['allocation']} of {transaction} names {field}"
                f" {row[f'kept_{field}']}; its {owner} names {row[f'its_{field}']}"
            )
    moved = f"{transaction} dated {row['occurred_at'].isoformat()}"
    taken = f"{-row['points']} points of lot {row['lot']}"
    if row["pending"]:
        yield f"{moved} spent {taken}, available only from {row['available_at'].isoformat()}"
    if row["expired"]:
        yield f"{moved} spent {taken}, expired at {row['expires_at'].isoformat()}"
    if row["early"]:
        yield f"{moved} took {taken}, which expires only at {row['expires_at'].isoformat()}"
    if row["other_lot"]:
        yield f"{transaction} took {taken}, not of its earn's lot"
    if row["other_burn"]:
        yield (
            f"{transaction} put {row['points']} points back into lot {row['lot']} for"
            f" allocation {row['reverses_id']}, not one of its burn's from that lot"
        )


def _reversals(connection):
    """A reversal names an original of the type it reverses, posted by its partner for its
    member, no later than itself (SPEC §6)."""
    T, original = Transaction, aliased(Transaction)
    reversible = or_(
        *(and_(T.type == kind, original.type.in_(types)) for kind, types in lots.REVERSES.items())
    )
    rows = connection.execute(
        select(
            T.id,
            T.type,
            T.partner_id,
            T.member_id,
            T.occurred_at,
            original.id.label("of"),
            original.type.label("of_type"),
            original.partner_id.label("of_partner"),
            original.member_id.label("of_member"),
            original.occurred_at.label("of_at"),
            reversible.label("fits"),
        )
        .outerjoin(original, original.id == T.original_id)
        .where(T.type.in_(lots.REVERSES))
        .where(
            or_(
                original.id.is_(None),
                ~reversible,
                original.partner_id != T.partner_id,
                original.member_id != T.member_id,
                T.occurred_at < original.occurred_at,
            )
        )
        .order_by(T.id)
    )
    for row in rows.mappings():
        reverses = f"transaction {row['id']} ({row['type']})"
        if row["of"] is None:
            yield f"{reverses} names no original"
        elif not row["fits"]:
            yield f"{reverses} reverses transaction {row['of']} ({row['of_type']}), which it cannot"
        elif (row["partner_id"], row["member_id"]) != (row["of_partner"], row["of_member"]):
            yield (
                f"{reverses} of {row['partner_id']} for {row['member_id']} reverses transaction"
                f" {row['of']} of {row['of_partner']} for {row['of_member']}"
            )
        else:
            yield (
                f"{reverses} dated {row['occurred_at'].isoformat()} reverses transaction"
                f" {row['of']}, dated after it at {row['of_at'].isoformat()}"
            )


def _overclaimed(connection):
    """Reversals in total take back no more points than their original moved: a burn's,
    or an earn's taken and short (SPEC §6; decisions.md, "Returns in pieces"). Amounts,
    which SQLite keeps as text, are not summed here."""
    T = Transaction
    claimed = (
        select(
            T.original_id.label("id"),
            func.sum(
                case((T.type == "earn_reversal", T.shortfall_points - T.points), else_=T.points)
            ).label("points"),
        )
        .where(T.type.in_(lots.REVERSES))
        .group_by(T.original_id)
        .subquery()
    )
    rows = connection.execute(
        select(T.id, T.type, func.abs(T.points), claimed.c.points)
        .join(claimed, claimed.c.id == T.id)
        .where(claimed.c.points > func.abs(T.points))
        .order_by(T.id)
    )
    for transaction, kind, points, reversed_points in rows:
        yield (
            f"transaction {transaction} ({kind}) moved {points} points; its reversals claim"
            f" {reversed_points}"
        )


def _currencies(connection):
    """An amount is in its partner's currency (SPEC §6), which is fixed from its first
    transaction on (decisions.md): an earn's, or a return's by amount."""
    rows = connection.execute(
        select(Transaction.id, Transaction.type, Transaction.currency, Partner.id, Partner.currency)
        .join(Partner, Partner.id == Transaction.partner_id)
        .where(Transaction.currency != Partner.currency)
        .order_by(Transaction.id)
    )
    for transaction, kind, currency, partner, partners in rows:
        yield f"transaction {transaction} ({kind}) is in {currency}; {partner}'s currency is {partners}"


def _shown(value) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)
