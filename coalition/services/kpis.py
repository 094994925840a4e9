"""Programme KPIs per settlement period, per partner and coalition-wide.

The measures and their formulas are in :mod:`coalition.domain.kpis`; this use
case gathers the counts for each scope and period from set-based aggregates
and hands them over. The points figures are the settlement's own (the
period totals of :mod:`coalition.db.period_totals`, and the liability of
:mod:`coalition.db.aggregates`), and for a closed period the points
outstanding are read from the settlement stored at close, so a closed
period's KPIs agree with its statements to the point (a statement's
``points_redeemed`` is the KPIs' ``points_redeemed_here``).

Member counts (visits, purchases, new members) come from
:mod:`coalition.services.kpi_counts`, which counts a closed period once and
keeps the counts (a GET may write, once a period), and keeps the open
periods' for an hour once counting those of a request together takes
seconds. A closed period's redeemed points by partner are kept with its
counts; an open period's are summed from its pair totals for each request,
as its other points figures are.

Isolation (SPEC §4) is decided by :meth:`coalition.auth.Principal.listed_partner`:
a key bound to a partner gets its own partner's figures only: not the
coalition-wide totals either, from which (less its own) the others' could
be read.
"""

from datetime import datetime
from decimal import Decimal

from coalition.db import aggregates, kpi_aggregates, period_totals
from coalition.domain import kpis
from coalition.domain.errors import NotFound
from coalition.domain.periods import ListedPeriod
from coalition.domain.totals import PartnerActivity
from coalition.services import calendar, catalog, kpi_counts, settlement
from coalition.services import partners as partner_service

DEFAULT_PERIODS = 12
MAX_PERIODS = 36


def report(
    session,
    principal,
    now: datetime,
    period_id: str | None = None,
    partner_id: str | None = None,
    periods: int = DEFAULT_PERIODS,
) -> dict:
    """KPIs of one period, or of the latest ``periods`` periods (oldest first) for charts."""
    shown = principal.listed_partner(partner_id)
    everyone = partner_service.all_partners(session)
    if shown is not None and shown not in {partner.id for partner in everyone}:
        raise NotFound(f"no partner {shown!r}")
    chosen = _periods(session, now, period_id, periods)
    gathered = kpi_counts.of_periods(session, chosen, now)
    base = catalog.current(session).settings.base_currency
    # with two partners, the totals less one's own are the other's (SPEC §4)
    totals_shown = principal.own_partner() is None
    outstanding = _liability_points(session, chosen)
    return {
        "base_currency": base,
        "periods": [
            _period_kpis(
                session,
                period,
                everyone,
                shown,
                gathered,
                outstanding[period.id],
                base,
                totals_shown,
            )
            for period in chosen
        ],
    }


def _periods(session, now: datetime, period_id: str | None, count: int) -> list[ListedPeriod]:
    listed = calendar.list_periods(session, now)
    if period_id is None:
        return listed[-min(max(count, 1), MAX_PERIODS) :]
    wanted = calendar.parse(session, period_id, location="query").id
    found = [period for period in listed if period.id == wanted]
    if not found:
        raise NotFound(f"no period {wanted}: periods run from the first transaction's to today's")
    return found


def _period_kpis(
    session,
    period: ListedPeriod,
    everyone,
    shown: str | None,
    gathered: kpi_counts.Counts,
    outstanding: dict[str, int],
    base: str,
    totals_shown: bool,
) -> dict:
    period_id, at_end = period.id, period.last_instant
    activities = period_totals.period_activity(session, period_id).partners
    if period.closed:  # kept with its counts, which every closed period's carry
        redeemed = gathered.redeemed[period_id]
    else:
        redeemed = period_totals.redeemed_by_partner(session, period_id)
    point_value = catalog.current(session).point_value(at_end)

    scopes = {
        partner.id: _partner_activity(
            partner.id, period_id, activities, redeemed, outstanding, gathered
        )
        for partner in everyone
    }
    coalition = None
    if totals_shown:
        coalition = kpis.figures(
            _coalition_wide(session, period_id, at_end, everyone, scopes, gathered),
            base,
            point_value,
            base,
        )
    return {
        "period_id": period_id,
        "start": period.start,
        "end": period.end,
        "status": period.status,
        "counted_at": gathered.counted_at.get(period_id),
        "coalition": coalition,
        "partners": [
            {
                # the id and name after the figures, where the answer has always had them
                # (coalition.api.kpis sends these dicts as they are)
                **kpis.figures(scopes[partner.id], partner.currency, point_value, base),
                "partner_id": partner.id,
                "name": partner.name,
            }
            for partner in everyone
            if shown in (None, partner.id)
        ],
    }


def _partner_activity(
    partner_id: str, period_id: str, activities, redeemed, outstanding, gathered
) -> kpis.Activity:
    """One partner's figures for the period, from the counts gathered for every partner."""
    activity = activities.get(partner_id, PartnerActivity())
    visits = gathered.visits.get((period_id, partner_id), {})
    bought = gathered.purchases.get((period_id, partner_id), {})
    return kpis.Activity(
        active_members=visits.get("active_members", 0),
        new_members=gathered.new_members.get((period_id, partner_id), 0),
        purchasers=visits.get("purchasers", 0),
        redemptions=visits.get("redemptions", 0),
        purchases=bought.get("here", kpis.Purchases()),
        points_issued=activity.points_issued,
        points_reversed=activity.points_reversed,
        points_redeemed=redeemed.by_issuer.get(partner_id, 0),
        points_redeemed_here=redeemed.by_redeemer.get(partner_id, 0),
        points_expired=activity.points_expired,
        liability_points=outstanding.get(partner_id, 0),
    )


def _coalition_wide(session, period_id, at_end, everyone, scopes, gathered) -> kpis.Activity:
    """Coalition-wide: distinct members counted once; amounts converted at the fx at period end."""
    visits = gathered.visits.get((period_id, kpi_aggregates.COALITION_WIDE), {})
    reference, bought, known = catalog.current(session), kpis.Purchases(), True
    # a rate a currency, not a partner: 400 partners trade in a handful of currencies
    fx_rates = {
        currency: reference.fx_rate(currency, at_end)
        for currency in {partner.currency for partner in everyone}
    }
    for partner in everyone:
        split = gathered.purchases.get((period_id, partner.id))
        if split is None:
            continue
        fx = fx_rates[partner.currency]
        known = known and fx is not None
        # without an fx rate the purchases still count; their amounts cannot be added up
        bought = bought + split["anywhere"].converted(fx.value if fx is not None else Decimal(0))
    every = list(scopes.values())
    return kpis.Activity(
        active_members=visits.get("active_members", 0),
        new_members=sum(scope.new_members for scope in every),
        purchasers=visits.get("purchasers", 0),
        redemptions=visits.get("redemptions", 0),
        purchases=bought,
        amounts_known=known,
        points_issued=sum(scope.points_issued for scope in every),
        points_reversed=sum(scope.points_reversed for scope in every),
        points_redeemed=sum(scope.points_redeemed for scope in every),
        points_redeemed_here=sum(scope.points_redeemed_here for scope in every),
        points_expired=sum(scope.points_expired for scope in every),
        liability_points=sum(scope.liability_points for scope in every),
    )


def _liability_points(session, chosen: list[ListedPeriod]) -> dict[str, dict[str, int]]:
    """Points outstanding at each period's end per issuer, by period: as stored at close,
    else as known now, the open periods' from one read of the live lots."""
    outstanding = {}
    for period in (period for period in chosen if period.closed):
        outstanding[period.id] = {
            entry["partner_id"]: entry["liability_points"]
            for entry in settlement.stored_partners(session, period.id)
        }
    opened = {period.id: period.end for period in chosen if not period.closed}
    if opened:
        outstanding |= aggregates.liabilities_points(session, opened)
    return outstanding
