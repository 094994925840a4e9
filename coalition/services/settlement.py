"""Settling a period: live drafts, closing, and the immutable statements (SPEC §7).

A draft is computed from the ledger on every request. Closing computes the
same figures once more under the exclusive calendar lock, stores them with
one statement per partner (canonical JSON and its SHA-256), and from then on
every read returns the stored bytes: later transactions land, late, in the
next open period and never touch a closed statement.
"""

import hashlib
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from coalition.db import aggregates, models, totals
from coalition.db import repricing as recorded
from coalition.domain import money, periods, repricing
from coalition.domain import settlement as arithmetic
from coalition.domain.errors import Conflict, Forbidden, NoRate, NotFound
from coalition.services import expiry, queries, rates
from coalition.services import partners as partner_service
from coalition.services import periods as period_service
from coalition.services import settings as settings_service

LAST_INSTANT = timedelta(microseconds=1)


def canonical(document: dict) -> str:
    """The one serialisation that is stored, hashed and served."""
    return json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def compute(session, period: periods.Period, status: str) -> dict:
    """The settlement of ``period`` as SPEC §7 shapes it, from one pass of aggregates."""
    config = settings_service.load(session)
    base = config.base_currency
    at_end = period.end - LAST_INSTANT
    everyone = partner_service.all_partners(session)
    redeemed = totals.redeemed_points(session, period.id)
    redeemed += _repriced(session, period, "redemption", recorded.redeemed, repricing.redeemed)
    lines = arithmetic.pair_lines(redeemed, base)
    activity = totals.period_activity(session, period.id)
    issued = activity.issued + _repriced(session, period, "fee", recorded.issued, repricing.issued)
    fee_lines = arithmetic.fee_lines(issued)
    fee_totals = arithmetic.fees(fee_lines, base)
    positions = arithmetic.positions([partner.id for partner in everyone], lines, fee_totals, base)
    liability = aggregates.liability_points(session, period.end)
    point_value = rates.point_value(session, at_end)
    entries = [
        _partner_entry(
            partner,
            positions[partner.id],
            fee_lines.get(partner.id, []),
            activity.partners.get(partner.id, {}),
            lines,
            rates.fx_rate(session, partner.currency, base, at_end),
            liability.get(partner.id, 0),
            point_value,
            base,
        )
        for partner in everyone
    ]
    netting = arithmetic.netting(lines, positions, base)
    return {
        "period_id": period.id,
        "status": status,
        "start": period.start.isoformat(),
        "end": period.end.isoformat(),
        "base_currency": base,
        "partners": entries,
        "pair_lines": [
            {
                "issuer_id": line.issuer_id,
                "redeemer_id": line.redeemer_id,
                "points": line.points,
                "value": money.text(line.value),
                "own_redemption": line.own,
            }
            for line in lines
        ],
        "netting": {
            "gross": money.text(netting.gross),
            "bilateral_net": money.text(netting.bilateral_net),
            "multilateral_net": money.text(netting.multilateral_net),
            "netting_ratio": money.text(netting.netting_ratio),
            "payments_gross": netting.payments_gross,
            "payments_net": netting.payments_net,
            "payments_saved": netting.payments_saved,
        },
    }


def _repriced(session, period: periods.Period, kind: str, read, correct) -> list:
    """Postings made before a rate of ``kind`` that applies to them was added, moved from
    the rate they recorded to it (:mod:`coalition.domain.repricing`)."""
    candidates = rates.candidates(session, (kind,))
    windows = repricing.windows(candidates, kind, period.end)
    if not windows:
        return []
    starts = repricing.stretches(candidates, kind, windows)
    return correct(candidates, starts, read(session, period, windows, starts))


def _partner_entry(
    partner,
    position,
    fee_lines: list,
    facts: dict,
    lines,
    fx,
    liability_points: int,
    point_value,
    base: str,
) -> dict:
    """One partner's figures of the settlement (SPEC §7), in the order they are stored."""
    redeemed_here = [line for line in lines if line.redeemer_id == partner.id]
    return {
        "partner_id": partner.id,
        "name": partner.name,
        "currency": partner.currency,
        "receivable": money.text(position.receivable),
        "payable": money.text(position.payable),
        "fees": money.text(position.fees),
        "fee_lines": [
            {
                "fee_rate": money.as_written(line.rate),
                "points": line.points,
                "exact_fees": money.as_written(line.exact),
            }
            for line in fee_lines
        ],
        "net": money.text(position.net),
        "fx_rate": None if fx is None else money.as_written(fx.value),
        "net_in_currency": None
        if fx is None
        else money.text(arithmetic.convert(position.net, fx.value, partner.currency)),
        "points_issued": facts.get("points_issued", 0),
        "points_redeemed": sum(line.points for line in redeemed_here),
        "own_redemption_points": sum(line.points for line in redeemed_here if line.own),
        "points_reversed": facts.get("points_reversed", 0),
        "shortfall_points": facts.get("shortfall_points", 0),
        "points_expired": facts.get("points_expired", 0),
        "late_count": facts.get("late_count", 0),
        "liability_points": liability_points,
        "liability": money.text(
            arithmetic.liability_value(liability_points, point_value and point_value.value, base)
        ),
    }


def get(session, principal, period_id: str, now: datetime) -> dict:
    """The stored settlement of a closed period, or a live draft of an open one.

    Every partner's figures are in it: a key bound to a partner reads that
    partner's statements instead (SPEC §4). A period that has not begun has
    no draft, unless a posting is already dated in it (up to 5 minutes ahead),
    as :func:`list_periods` lists it: "2062-11" for "2026-11" should not
    answer a page of zeros.
    """
    if principal.own_partner() is not None:
        raise Forbidden("a key bound to a partner reads that partner's statements instead")
    period = period_service.parse(session, period_id)
    closed = session.get(models.Period, period.id)
    if closed is not None:
        return json.loads(closed.settlement)
    _refuse_before_the_last_close(period, period_service.last_closed(session))
    _, latest = aggregates.occurrences(session)
    if period.start > _reached(now, latest):
        raise NotFound(f"period {period.id} has not begun; it begins {period.start.isoformat()}")
    return compute(session, period, "draft")


def _reached(now: datetime, latest: datetime | None) -> datetime:
    """How far the ledger reaches: now, or its latest transaction if dated later (a
    posting may run 5 minutes ahead, SPEC §5). No period after it is listed or drafted."""
    return max(now, latest or now)


def _refuse_before_the_last_close(period, last) -> None:
    """A period that is not closed but begins before the last closed one ends lies
    before the first close: nothing was ever settled in it."""
    if last is not None and period.start < last.end:
        raise NotFound(f"period {period.id} precedes the ledger and was never settled")


def close(session, period_id: str, now: datetime) -> dict:
    """Close the period and every earlier open one; closing again changes nothing.

    The close is dated once it holds the calendar lock, never before ``now``:
    postings that committed while it waited for the lock are in it, and none
    of them may read as recorded after the period was closed.
    """
    period_service.lock_calendar(session, exclusive=True)
    now = max(now, datetime.now(UTC))
    target = period_service.parse(session, period_id)
    closed = session.get(models.Period, target.id)
    if closed is not None:
        return json.loads(closed.settlement)
    if target.end > now:
        raise Conflict(
            f"period {target.id} ends {target.end.isoformat()}; it cannot close before",
            reason="period_open",
        )
    config = settings_service.load(session)
    last = period_service.last_closed(session)
    _refuse_before_the_last_close(target, last)
    earliest, _ = aggregates.occurrences(session)
    if last is None and _before_any_posting(target, now, earliest):
        raise NotFound(
            f"period {target.id} precedes the ledger: no transaction is, or can ever be, dated in it"
        )
    first = _first_open(config, last, target, earliest)
    expiry.expire_before(session, target.end, now)
    for period in periods.between(first, target, config.period, config.timezone):
        result = _close_one(session, period, now)
    return result


def auto_close(database, now: datetime) -> str | None:
    """Close the latest period that ended ``auto_close_after_hours`` ago, if still open."""

    def due(session):
        config = settings_service.load(session)
        cutoff = now - timedelta(hours=config.auto_close_after_hours)
        current = periods.containing(cutoff, config.period, config.timezone)
        target = periods.containing(current.start - LAST_INSTANT, config.period, config.timezone)
        last = period_service.last_closed(session)
        earliest, _ = aggregates.occurrences(session)
        if earliest is None or (last and target.end <= last.end):
            return None
        return target.id

    target = database.run(due)
    if target is not None:
        database.run(close, target, now)
    return target


def _before_any_posting(period: periods.Period, now: datetime, earliest: datetime | None) -> bool:
    """Whether the period ended before the ledger's first transaction and more than
    ``MAX_BACKDATE_DAYS`` ago, where no posting can ever be dated.

    A first close there would settle nothing and make every close after it
    start there: closing year 1 left the next close 105,000 weeks to
    close in one transaction.
    """
    horizon = now - timedelta(days=settings_service.MAX_BACKDATE_DAYS)
    return period.end <= horizon and (earliest is None or period.end <= earliest)


def _first_open(config, last, target, earliest: datetime | None) -> periods.Period:
    """The first period a close or a listing starts at: after the last closed one, or
    the earliest transaction's (``target`` if that is earlier, or nothing is posted)."""
    if last is not None:
        return periods.following(last, config.period, config.timezone)
    if earliest is None:
        return target
    return min(periods.containing(earliest, config.period, config.timezone), target)


def _close_one(session, period: periods.Period, now: datetime) -> dict:
    result = compute(session, period, "final")
    missing = sorted(
        {entry["currency"] for entry in result["partners"] if entry["fx_rate"] is None}
    )
    if missing:
        raise NoRate(
            f"no fx rate at the end of {period.id} for {', '.join(missing)}: "
            f"add one effective before {period.end.isoformat()}",
            status=409,
        )
    session.add(
        models.Period(
            id=period.id,
            start=period.start,
            end=period.end,
            closed_at=now,
            settlement=canonical(result),
        )
    )
    session.flush()
    late = _late_items(session, period.id)
    coalition_name = _coalition_name(result)
    for index, entry in enumerate(
        sorted(result["partners"], key=lambda e: e["partner_id"]), start=1
    ):
        items = late.get(entry["partner_id"], [])
        number = f"{period.id}-{index:04d}"
        _issue_statement(session, result, entry, items, number, coalition_name, now)
    return result


def _coalition_name(result: dict) -> str:
    """The programme's name as its operator's own partner bears it (SPEC §5: the
    reserved partner ``coalition`` is the operator), renamed with it."""
    (name,) = (
        entry["name"]
        for entry in result["partners"]
        if entry["partner_id"] == arithmetic.OPERATOR_PARTNER
    )
    return name


def _issue_statement(
    session,
    result: dict,
    entry: dict,
    late_items: list[dict],
    number: str,
    coalition_name: str,
    now: datetime,
) -> None:
    partner_id = entry["partner_id"]
    counterparties = _counterparties(result, partner_id)
    body = {
        "number": number,
        "period_id": result["period_id"],
        "period_start": result["start"],
        "period_end": result["end"],
        "timezone": settings_service.load(session).timezone,
        "partner_id": partner_id,
        "partner_name": entry["name"],
        "coalition_name": coalition_name,
        "status": "final",
        "issued_at": now.isoformat(),
        "currency": entry["currency"],
        "base_currency": result["base_currency"],
        "summary": entry,
        "counterparties": counterparties,
        "late_items": late_items,
    }
    text = canonical(body)
    session.add(
        models.Statement(
            number=number,
            period_id=result["period_id"],
            partner_id=partner_id,
            issued_at=now,
            sha256=hashlib.sha256(text.encode()).hexdigest(),
            body=text,
        )
    )


def _counterparties(result: dict, partner_id: str) -> list[dict]:
    names = {entry["partner_id"]: entry["name"] for entry in result["partners"]}
    base = result["base_currency"]
    zero = money.round_half_even(Decimal(0), base)
    sides: dict[str, dict] = {}
    for line in result["pair_lines"]:
        if line["own_redemption"] or partner_id not in (line["issuer_id"], line["redeemer_id"]):
            continue
        incoming = line["redeemer_id"] == partner_id
        other = line["issuer_id"] if incoming else line["redeemer_id"]
        side = sides.setdefault(
            other, {"points_in": 0, "value_in": zero, "points_out": 0, "value_out": zero}
        )
        direction = "in" if incoming else "out"
        side[f"points_{direction}"] += line["points"]
        side[f"value_{direction}"] += Decimal(line["value"])
    return [
        {
            "partner_id": other,
            "name": names.get(other, other),
            "points_in": side["points_in"],
            "value_in": str(side["value_in"]),
            "points_out": side["points_out"],
            "value_out": str(side["value_out"]),
            "net": str(side["value_in"] - side["value_out"]),
        }
        for other, side in sorted(sides.items())
    ]


def _late_items(session, period_id: str) -> dict[str, list[dict]]:
    """The period's late transactions by partner, with the period each belonged to."""
    config = settings_service.load(session)
    by_partner: dict[str, list[dict]] = {}
    for item in aggregates.late_items(session, period_id):
        by_partner.setdefault(item.partner_id, []).append(
            {
                "transaction_id": item.id,
                "external_id": item.external_id,
                "type": item.type,
                "member_id": item.member_id,
                "occurred_at": item.occurred_at.isoformat(),
                "points": item.points,
                "original_period_id": periods.containing(
                    item.occurred_at, config.period, config.timezone
                ).id,
            }
        )
    return by_partner


def statement_document(row: models.Statement) -> dict:
    """A stored statement as served: its canonical body with id and hash."""
    return {"id": row.id, "sha256": row.sha256, **json.loads(row.body)}


def list_statements(
    session, principal, period_id: str | None, partner_id: str | None
) -> list[dict]:
    partner_id = queries.visible_partner(principal, partner_id)
    query = select(models.Statement).order_by(models.Statement.period_id, models.Statement.number)
    if period_id is not None:
        query = query.where(
            models.Statement.period_id == period_service.parse_query(session, period_id).id
        )
    if partner_id is not None:
        query = query.where(models.Statement.partner_id == partner_id)
    return [statement_document(row) for row in session.scalars(query)]


def get_statement(session, principal, statement_id: int) -> dict:
    row = session.get(models.Statement, statement_id)
    own = principal.own_partner()
    if row is None or own not in (None, row.partner_id):
        raise NotFound(f"no statement {statement_id}")
    return statement_document(row)


def list_periods(session, now: datetime) -> list[dict]:
    """Closed periods, then the open ones: from the one after the last closed (before
    any close, the earliest transaction's or now's, whichever is earlier) up to the
    period of now, or of the latest transaction if later: a posting may be dated a few
    minutes ahead (SPEC §5), so in a period's last minutes the next one can already
    hold transactions."""
    config = settings_service.load(session)
    rows = list(session.scalars(select(models.Period).order_by(models.Period.start)))
    listed = [
        {
            "id": row.id,
            "start": row.start,
            "end": row.end,
            "status": "closed",
            "closed_at": row.closed_at,
        }
        for row in rows
    ]
    last = periods.Period(rows[-1].start, rows[-1].end, rows[-1].id) if rows else None
    earliest, latest = aggregates.occurrences(session)
    of_now = periods.containing(now, config.period, config.timezone)
    first = _first_open(config, last, of_now, earliest)
    reached = periods.containing(_reached(now, latest), config.period, config.timezone)
    for period in periods.between(first, reached, config.period, config.timezone):
        listed.append(
            {
                "id": period.id,
                "start": period.start,
                "end": period.end,
                "status": "open",
                "closed_at": None,
            }
        )
    return listed
