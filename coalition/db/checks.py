"""Whether a database holds a ledger that adds up: ``coalition db check``.

PostgreSQL refuses at commit lots and allocations that do not add up
(migration 0017); SQLite does not, and neither checks what is kept beside the
ledger: the period totals a close reads instead of the ledger's rows
(:mod:`coalition.db.period_totals`) and each final statement's SHA-256; nor what
a row copies from another (an allocation its transaction's period, a lot its
earn's points), nor when things were recorded against the closes that settled
them (a close dated before a posting it settled, a late posting recorded while
its period was open, a rate added after a close into the period it closed). A
restore that mixed two backups, SQL typed by hand or a bug could break any of
them unseen, and a close would then issue wrong statements. Each check reads
the ledger's own rows whole, so it is a command for the operator after a
restore, a copy or an incident, not something a request does.
"""

import hashlib
import json
from datetime import datetime

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import aliased

from coalition.db.models import (
    Allocation,
    Lot,
    PairTotal,
    Partner,
    PartnerTotal,
    Period,
    Rate,
    Statement,
    Transaction,
)
from coalition.db.period_totals import PAIR_KEY
from coalition.domain import lots
from coalition.domain.money import plain
from coalition.domain.totals import ACTIVITY_FIELDS, REDEEMING

# every type but those that create a lot moves points by its allocations alone
MOVED = tuple(kind for kind in lots.TYPES if kind not in lots.ISSUING)


def problems(connection) -> list[str]:
    """What does not add up, a line each; none for a sound database."""
    return [
        *_lots(connection),
        *_issued(connection),
        *_movements(connection),
        *_allocations(connection),
        *_reversals(connection),
        *_redeemed_totals(connection),
        *_activity_totals(connection),
        *_currencies(connection),
        *_closes(connection),
        *_recorded_after_the_close(connection),
        *_late(connection),
        *_rates_in_closed_periods(connection),
        *_statements(connection),
    ]


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
        transaction = f"transaction {row['transaction']} ({row['type']})"
        for field in copies:
            if row[f"kept_{field}"] != row[f"its_{field}"]:
                owner = "lot" if field == "issuer_id" else "transaction"
                yield (
                    f"allocation {row['allocation']} of {transaction} names {field}"
                    f" {row[f'kept_{field}']}; its {owner} names {row[f'its_{field}']}"
                )
        moved = f"{transaction} dated {_instant(row['occurred_at'])}"
        taken = f"{-row['points']} points of lot {row['lot']}"
        if row["pending"]:
            yield f"{moved} spent {taken}, available only from {_instant(row['available_at'])}"
        if row["expired"]:
            yield f"{moved} spent {taken}, expired at {_instant(row['expires_at'])}"
        if row["early"]:
            yield f"{moved} took {taken}, which expires only at {_instant(row['expires_at'])}"
        if row["other_lot"]:
            yield f"{transaction} took {taken}, not of its earn's lot"
        if row["other_burn"]:
            yield (
                f"{transaction} put {row['points']} points back into lot {row['lot']} for"
                f" allocation {row['reverses_id']}, not one of its burn's from that lot"
            )


def _reversals(connection):
    """A reversal names an original of the type it reverses, posted by its partner for its
    member, no later than itself, and reversals in total take back no more points than
    their original moved: a burn's, or an earn's taken and short (SPEC §6; decisions.md,
    "Returns in pieces"). Amounts, which SQLite keeps as text, are not summed here."""
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
            original.id,
            original.type,
            original.partner_id,
            original.member_id,
            original.occurred_at,
            reversible,
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
    for (
        transaction,
        kind,
        partner,
        member,
        at,
        of,
        of_kind,
        of_partner,
        of_member,
        of_at,
        fits,
    ) in rows:
        reverses = f"transaction {transaction} ({kind})"
        if of is None:
            yield f"{reverses} names no original"
        elif not fits:
            yield f"{reverses} reverses transaction {of} ({of_kind}), which it cannot"
        elif (partner, member) != (of_partner, of_member):
            yield (
                f"{reverses} of {partner} for {member} reverses transaction {of} of"
                f" {of_partner} for {of_member}"
            )
        else:
            yield (
                f"{reverses} dated {_instant(at)} reverses transaction {of}, dated after it at"
                f" {_instant(of_at)}"
            )
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


def _shown(value) -> str:
    return _instant(value) if isinstance(value, datetime) else str(value)


def _allocated(key):
    return (
        select(key.label("key"), func.sum(Allocation.points).label("points"))
        .group_by(key)
        .subquery()
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


def _closes(connection):
    """A period closes once it has ended, and after every period before it, which it closes
    first (SPEC §7); for each period closed after a later one, the first such is named."""
    rows = connection.execute(
        select(Period.id, Period.end, Period.closed_at)
        .where(Period.closed_at < Period.end)
        .order_by(Period.id)
    )
    for period, end, closed_at in rows:
        yield f"{period} was closed at {_instant(closed_at)}, before it ended at {_instant(end)}"
    later = aliased(Period)
    first = (
        select(Period.id.label("id"), func.min(later.id).label("later_id"))
        .join(later, and_(later.id > Period.id, later.closed_at < Period.closed_at))
        .group_by(Period.id)
        .subquery()
    )
    rows = connection.execute(
        select(Period.id, Period.closed_at, later.id, later.closed_at)
        .join(first, first.c.id == Period.id)
        .join(later, later.id == first.c.later_id)
        .order_by(Period.id)
    )
    for period, closed_at, after, after_closed_at in rows:
        yield (
            f"{period} was closed at {_instant(closed_at)}, after {after}, which follows it, at"
            f" {_instant(after_closed_at)}"
        )


def _recorded_after_the_close(connection):
    """A close settles what was recorded before it: a transaction of a closed period, late
    or not, was recorded by its ``closed_at`` (the expiries a close writes, at it)."""
    rows = connection.execute(
        select(
            Transaction.id, Transaction.type, Period.id, Transaction.recorded_at, Period.closed_at
        )
        .join(Period, Period.id == Transaction.period_id)
        .where(Transaction.recorded_at > Period.closed_at)
        .order_by(Transaction.id)
    )
    for transaction, kind, period, recorded_at, closed_at in rows:
        yield (
            f"transaction {transaction} ({kind}) of {period} was recorded at"
            f" {_instant(recorded_at)}, after {period} was closed at {_instant(closed_at)}"
        )


def _late(connection):
    """A late transaction was recorded once the period its ``occurred_at`` falls in was
    closed, and lands in the earliest period open then (SPEC §7): every period before the
    one it is in was closed before it was recorded. The first period still open then is
    named, and whether the transaction is dated in it, by the bounds its close stored.
    Only periods before the one it is in are read: the zone's rules may since have given
    that one bounds that hold its ``occurred_at`` (a midnight moved earlier), and one
    dated where they moved a closed period's end later falls in none."""
    dated_in = and_(Period.start <= Transaction.occurred_at, Transaction.occurred_at < Period.end)
    first_open = (
        select(Transaction.id.label("id"), func.min(Period.id).label("period_id"))
        .join(Period, Period.id < Transaction.period_id)
        .where(Transaction.late, Transaction.recorded_at <= Period.closed_at)
        .group_by(Transaction.id)
        .subquery()
    )
    rows = connection.execute(
        select(
            Transaction.id,
            Transaction.type,
            Transaction.period_id,
            Transaction.recorded_at,
            Period.id,
            Period.closed_at,
            dated_in,
        )
        .join(first_open, first_open.c.id == Transaction.id)
        .join(Period, Period.id == first_open.c.period_id)
        .order_by(Transaction.id)
    )
    for transaction, kind, landed, recorded_at, period, closed_at, dated in rows:
        yield (
            f"transaction {transaction} ({kind}) is late in {landed}, but was recorded at"
            f" {_instant(recorded_at)}, before {period}{' (where it is dated)' if dated else ''}"
            f" was closed at {_instant(closed_at)}"
        )


def _rates_in_closed_periods(connection):
    """No rate starts in a period closed before it was added (SPEC §5: 409): the period's
    statements were issued without it. The last such period is named."""
    latest = (
        select(Rate.id.label("id"), func.max(Period.id).label("period_id"))
        .join(Period, and_(Period.closed_at < Rate.created_at, Rate.effective_from < Period.end))
        .group_by(Rate.id)
        .subquery()
    )
    rows = connection.execute(
        select(
            Rate.id, Rate.kind, Rate.effective_from, Rate.created_at, Period.id, Period.closed_at
        )
        .join(latest, latest.c.id == Rate.id)
        .join(Period, Period.id == latest.c.period_id)
        .order_by(Rate.id)
    )
    for rate, kind, effective_from, created_at, period, closed_at in rows:
        yield (
            f"rate {rate} ({kind}) is in force from {_instant(effective_from)}, before {period}"
            f" ended, but was added at {_instant(created_at)}, after {period} was closed at"
            f" {_instant(closed_at)}"
        )


def _instant(at) -> str:
    return at.isoformat()


def _statements(connection):
    """Each final statement against its SHA-256, and against the id it is read by: its
    JSON holds its id, hashed with it (:mod:`coalition.services.statements`; not one
    issued by a release before 2026-12-06), and a row renumbered since (a restore, SQL
    typed by hand) would answer ``/statements/{id}`` naming another id than asked for."""
    rows = connection.execute(
        select(Statement.id, Statement.number, Statement.sha256, Statement.body).order_by(
            Statement.id
        )
    )
    for statement_id, number, sha256, body in rows:
        if hashlib.sha256(body.encode()).hexdigest() != sha256:
            yield f"statement {number}: its SHA-256 is not that of its JSON"
        named = json.loads(body).get("id", statement_id)  # an earlier release's has none
        if named != statement_id:
            yield f"statement {number}: its JSON names id {named}; it is stored as {statement_id}"
