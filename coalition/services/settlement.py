"""Settling a period: live drafts and closing (SPEC §7).

A draft is computed from the ledger on every request. Closing computes the
same figures once more under the exclusive calendar lock, stores them and
issues one statement per partner (:mod:`coalition.services.statements`); from
then on every read returns the stored bytes: later transactions land, late,
in the next open period and never touch a closed period.
"""

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from coalition.db import aggregates, models, period_totals, repricing_sums, stored_settlement
from coalition.domain import money, periods, repricing
from coalition.domain import settlement as arithmetic
from coalition.domain.errors import Conflict, MissingFx, NotFound
from coalition.domain.rates import Rate
from coalition.domain.totals import PartnerActivity
from coalition.services import calendar, catalog, expiry, statements
from coalition.services import partners as partner_service


class Settled(NamedTuple):
    """A period's settlement: the document SPEC §7 shapes (money as strings), the pair
    lines it was written from by partner, which its statement shows as counterparties,
    and the currencies of partners that took part with no fx rate at its end (a close
    needs one)."""

    document: dict
    lines_by_partner: dict[str, list[arithmetic.PairLine]]
    missing_fx: list[str]


class _Figures(NamedTuple):
    """What a settlement is written from: the period's aggregates, priced (SPEC §7)."""

    base: str
    lines: list[arithmetic.PairLine]
    fee_lines: dict[str, list[arithmetic.FeeLine]]
    positions: dict[str, arithmetic.Position]
    activity: dict[str, PartnerActivity]
    liability_points: dict[str, int]
    point_value: Decimal | None
    fx: dict[str, Rate | None]

    def took_part(self, partner_id: str, lines) -> bool:
        """Whether the partner took part, given its own pair lines
        (:func:`arithmetic.lines_by_partner`)."""
        return arithmetic.took_part(
            partner_id, self.positions[partner_id], self.activity[partner_id], lines
        )


def compute(session, period: periods.Period, status: str) -> Settled:
    """The settlement of ``period``, from one pass of aggregates."""
    everyone = partner_service.all_partners(session)
    figures = _figures(session, period, everyone)
    lines_of = arithmetic.lines_by_partner(figures.lines)
    missing_fx = {
        partner.currency
        for partner in everyone
        if figures.fx[partner.id] is None
        and figures.took_part(partner.id, lines_of.get(partner.id, ()))
    }
    document = {
        "period_id": period.id,
        "status": status,
        "start": period.start.isoformat(),
        "end": period.end.isoformat(),
        "base_currency": figures.base,
        "partners": [
            _partner_entry(partner, figures, lines_of.get(partner.id, ())) for partner in everyone
        ],
        "pair_lines": [_pair_line_entry(line) for line in figures.lines],
        "netting": _netting_entry(
            arithmetic.netting(figures.lines, figures.positions, figures.base)
        ),
    }
    return Settled(document, lines_of, sorted(missing_fx))


def _figures(session, period: periods.Period, everyone) -> _Figures:
    """Read the period's totals (and the corrections of rates added late) and price them:
    pair lines, fee lines and every partner's position, in the base currency."""
    reference = catalog.current(session)
    base = reference.settings.base_currency
    at_end = period.last_instant
    redeemed = period_totals.redeemed_points(session, period.id)
    redeemed += _repriced(
        session, period, "redemption", repricing_sums.redeemed, repricing.redeemed
    )
    lines = arithmetic.pair_lines(redeemed, base)
    activity = period_totals.period_activity(session, period.id)
    issued = activity.issued + _repriced(
        session, period, "fee", repricing_sums.issued, repricing.issued
    )
    fee_lines = arithmetic.fee_lines(issued)
    fees = arithmetic.fees(fee_lines, base)
    return _Figures(
        base=base,
        lines=lines,
        fee_lines=fee_lines,
        positions=arithmetic.positions([partner.id for partner in everyone], lines, fees, base),
        activity={
            partner.id: activity.partners.get(partner.id, PartnerActivity()) for partner in everyone
        },
        liability_points=aggregates.liability_points(session, period.id, period.end),
        point_value=reference.point_value(at_end),
        fx={partner.id: reference.fx_rate(partner.currency, at_end) for partner in everyone},
    )


def _pair_line_entry(line: arithmetic.PairLine) -> dict:
    return {
        "issuer_id": line.issuer_id,
        "redeemer_id": line.redeemer_id,
        "points": line.points,
        "value": money.text(line.value),
        "own_redemption": line.own,
    }


def _netting_entry(netting: arithmetic.Netting) -> dict:
    return {
        "gross": money.text(netting.gross),
        "bilateral_net": money.text(netting.bilateral_net),
        "multilateral_net": money.text(netting.multilateral_net),
        "netting_ratio": money.text(netting.netting_ratio),
        "payments_gross": netting.payments_gross,
        "payments_net": netting.payments_net,
        "payments_saved": netting.payments_saved,
    }


def _repriced(session, period: periods.Period, kind: str, read, correct) -> list:
    """Postings made before a rate of ``kind`` that applies to them was added, moved from
    the rate they recorded to it (:mod:`coalition.domain.repricing`): the rate in force
    now, as the catalog finds it for a partner at an instant."""
    reference = catalog.current(session)
    reach = repricing.reach(reference.rates_of((kind,)), kind, period)
    if reach is None:
        return []
    in_force = reference.redemption_rate if kind == "redemption" else reference.fee_rate
    return correct(in_force, read(session, period, reach))


def _partner_entry(partner, figures: _Figures, lines) -> dict:
    """One partner's figures of the settlement (SPEC §7), in the order they are stored,
    from its own pair lines (``lines``, :func:`arithmetic.lines_by_partner`)."""
    partner_id = partner.id  # an ORM attribute: read once, not once a line
    position, activity = figures.positions[partner_id], figures.activity[partner_id]
    redeemed_here = [line for line in lines if line.redeemer_id == partner_id]
    fx = figures.fx[partner_id]
    fx_rate = None if fx is None else fx.value
    liability_points = figures.liability_points.get(partner_id, 0)
    return {
        "partner_id": partner_id,
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
            for line in figures.fee_lines.get(partner_id, [])
        ],
        "net": money.text(position.net),
        "fx_rate": None if fx_rate is None else money.as_written(fx_rate),
        "net_in_currency": money.text(arithmetic.convert(position.net, fx_rate, partner.currency)),
        "points_issued": activity.points_issued,
        "points_redeemed": sum(line.points for line in redeemed_here),
        "own_redemption_points": sum(line.points for line in redeemed_here if line.own),
        "points_reversed": activity.points_reversed,
        "shortfall_points": activity.shortfall_points,
        "points_expired": activity.points_expired,
        "late_count": activity.late_count,
        "liability_points": liability_points,
        "liability": money.text(
            arithmetic.liability_value(liability_points, figures.point_value, figures.base)
        ),
    }


class Stored(NamedTuple):
    """A closed period's settlement as its close stored it, canonical JSON
    (:func:`statements.canonical`) never changed after (SPEC §7): the JSON every read
    and close of the period answers, as it is.

    The answer's schema would write it unchanged but for the order of its keys (sorted
    here) and its ``\\u`` escapes: every release's close stored the fields the schema
    declares and no others, each already in the answer's form (strings, integers,
    booleans, nulls). A settlement closed before 2026-12-01 has no ``fee_lines``, which
    the schema left out of its answer too, and no migration rewrote a stored one
    (periods are append-only, migration 0014). Parsed and dumped again through the
    schema, a million pair lines took most of a minute.
    """

    text: str

    def document(self) -> dict:
        """What it says, parsed: what its CSV and the command line are drawn from."""
        return json.loads(self.text)


def stored_partners(session, period_id: str) -> list[dict]:
    """A closed period's partners' entries as its close stored them, parsed: what the KPIs
    read of its settlement. Where a thousand partners all trade, a million pair lines
    come before them (93 MB, read whole and decoded for a few hundred kilobytes), so only
    the text from ``"partners":[`` on is read (:mod:`coalition.db.stored_settlement`).
    Canonical JSON has one key ``partners`` and writes a quote inside a string as
    ``\\"``, so the text has one ``"partners":[``, near its end (the keys sorted, only
    three short ones after it)."""
    found = stored_settlement.from_marker(session, period_id, _PARTNERS)
    return _DECODER.raw_decode(found, len(_PARTNERS) - 1)[0]


_PARTNERS = '"partners":['
_DECODER = json.JSONDecoder()


def read(session, period_id: str, now: datetime) -> "Stored | dict":
    """A closed period's settlement as its close stored it, or a live draft of an open one.

    Every partner's figures are in it: a key bound to a partner reads that
    partner's statements instead (SPEC §4; the view is declared
    :meth:`~coalition.api.Blueprint.reads_every_partner`). A period that has not begun has
    no draft, unless a posting is already dated in it (up to 5 minutes ahead),
    as :func:`~coalition.services.calendar.list_periods` lists it: "2062-11"
    for "2026-11" should not answer a page of zeros.
    """
    period = calendar.parse(session, period_id)
    closed = session.get(models.Period, period.id)
    if closed is not None:
        return Stored(closed.settlement)
    earliest, latest = aggregates.occurrences(session)
    _refuse_before_the_ledger(period, calendar.last_closed(session), now, earliest)
    if period.start > calendar.ledger_reach(now, latest):
        begins = catalog.current(session).calendar.local(period.start)
        raise NotFound(f"period {period.id} has not begun; it begins {begins.isoformat()}")
    draft = compute(session, period, "draft")
    # what a close would refuse for, said before the operator tries it
    return {**draft.document, "missing_fx": draft.missing_fx}


def get(session, period_id: str, now: datetime) -> dict:
    """:func:`read`'s settlement as a document, a closed period's parsed."""
    found = read(session, period_id, now)
    return found.document() if isinstance(found, Stored) else found


def _refuse_before_the_ledger(period, last, now: datetime, earliest: datetime | None) -> None:
    """A period that is not closed but comes before the last closed one lies
    before the first close: nothing was ever settled in it. Before any close, one
    where no posting is or can ever be dated (:func:`_before_any_posting`) has
    neither a draft nor a close: a page of zeros for "1026-11" would say it had."""
    if last is not None and period.id < last.id:  # ids sort as periods do (domain.periods)
        raise NotFound(f"period {period.id} precedes the ledger and was never settled")
    if last is None and _before_any_posting(period, now, earliest):
        raise NotFound(
            f"period {period.id} precedes the ledger: "
            "no transaction is, or can ever be, dated in it"
        )


def close(session, period_id: str, now: datetime) -> Stored:
    """Close the period with every earlier open one (:func:`close_through`): its
    settlement as stored, the text every read of the period answers from then on.
    Closing again changes nothing and answers the same text."""
    close_through(session, period_id, now)
    return read(session, period_id, now)


def close_through(session, period_id: str, now: datetime) -> list[dict]:
    """Close the period and every earlier open one: the settlement of each, oldest
    first; none if the period was closed before.

    The close is dated once it holds the calendar lock, never before ``now``:
    postings that committed while it waited for the lock are in it, and none
    of them may read as recorded after the period was closed. On PostgreSQL it
    is the database's clock then, by which the period must have ended.
    """
    now = calendar.dated_once_locked(now, calendar.lock_calendar(session, exclusive=True))
    target = calendar.parse(session, period_id)
    if calendar.is_closed(session, target.id):
        return []
    reference = catalog.current(session)
    if target.end > now:
        ends = reference.calendar.local(target.end)
        raise Conflict(
            f"period {target.id} ends {ends.isoformat()}; it cannot close before",
            reason="period_open",
        )
    last = calendar.last_closed(session)
    earliest, _ = aggregates.occurrences(session)
    _refuse_before_the_ledger(target, last, now, earliest)
    first = calendar.first_open(reference.calendar, last, target, earliest)
    expiry.expire_before(session, target.end, now)
    return [
        _close_one(session, period, now) for period in reference.calendar.between(first, target)
    ]


def auto_close(database, now: datetime) -> Iterator[str]:
    """Close the open periods up to the latest that ended ``auto_close_after_hours`` ago,
    oldest first, each in a unit of work of its own: the id of each as it closes.

    One at a time, so that a period the close refuses (a partner that took part
    with no fx rate at its end) holds back itself and those after it, not the
    periods before it. Not a period that ended before the ledger's first
    transaction: it has nothing to settle, and closing it would close the
    calendar there, so history posted later, backdated into it, could never
    be priced (a rate may not start in a closed period).
    """

    def due(session) -> list[str]:
        reference = catalog.current(session)
        cutoff = now - timedelta(hours=reference.settings.auto_close_after_hours)
        current = reference.calendar.containing(cutoff)
        target = reference.calendar.containing(current.start - periods.LAST_INSTANT)
        last = calendar.last_closed(session)
        earliest, _ = aggregates.occurrences(session)
        if earliest is None or target.end <= earliest or (last and target.end <= last.end):
            return []
        first = calendar.first_open(reference.calendar, last, target, earliest)
        return [period.id for period in reference.calendar.between(first, target)]

    for period_id in database.run(due):
        for closed in database.run(close_through, period_id, now):
            yield closed["period_id"]


def _before_any_posting(period: periods.Period, now: datetime, earliest: datetime | None) -> bool:
    """Whether the period ended before the ledger's first transaction and more than
    ``periods.MAX_BACKDATE_DAYS`` ago, where no posting can ever be dated.

    A first close there would settle nothing and make every close after it
    start there: a close of year 1 would leave the next one 105,000 weeks
    to close in one transaction.
    """
    horizon = now - timedelta(days=periods.MAX_BACKDATE_DAYS)
    return period.end <= horizon and (earliest is None or period.end <= earliest)


def _close_one(session, period: periods.Period, now: datetime) -> dict:
    settled = compute(session, period, "final")
    reference = catalog.current(session)
    if settled.missing_fx:
        end = reference.calendar.local(period.end)
        raise MissingFx(
            f"no fx rate at the end of {period.id} for {', '.join(settled.missing_fx)}: "
            f"add one effective before {end.isoformat()}"
        )
    session.add(
        models.Period(
            id=period.id,
            start=period.start,
            end=period.end,
            closed_at=now,
            settlement=statements.canonical(settled.document),
        )
    )
    session.flush()
    catalog.closed_here(session, reference, period)
    statements.issue(session, settled, now)
    return settled.document
