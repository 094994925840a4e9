"""Programme KPIs over HTTP: the figures of a small month worked out by hand, and who sees what.

The month is the previous calendar month (UTC, monthly periods), left open
unless a test closes it. Partners: ``aroma`` (RUB, 0.1 point per RUB),
``skyair`` (EUR, 2 points per EUR) and the seeded ``coalition``; redemption
0.01 EUR per point, fx 0.0125 EUR per RUB, no fee.

| day | member | what                                   | lot                    |
|-----|--------|----------------------------------------|------------------------|
| 1   | m1     | earns at skyair, 100.00 EUR            | A: 200 skyair          |
| 2   | m1     | burns 50 at aroma                      | A gives 50             |
| 3   | m1     | earns at aroma, 800.00 RUB             | B: 80 aroma            |
| 4   | m2     | earns at aroma, 400.00 RUB             | C: 40 aroma            |
| 5   | m2     | earns at aroma, 1100.00 RUB            | D: 110 aroma           |
| 6   | m3     | referral bonus from coalition          | E: 30 coalition        |
| 7   | m2     | burns 100 at skyair                    | C gives 40, D gives 60 |
| 8   | m1     | earns at skyair, 50.00 EUR             | F: 100 skyair          |
| 9   | m4     | earns at skyair, 30.00 EUR             | G: 60 skyair           |

Outstanding at the month's end: aroma B 80 + C 0 + D 50 = 130; skyair
A 150 + F 100 + G 60 = 310; coalition E 30; 470 in all.
"""

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from sqlalchemy.engine import make_url

from coalition import jobs
from coalition.db import kept_counts, kpi_aggregates, locks, models, period_totals
from coalition.domain.settlement import Unbalanced
from coalition.services import catalog, expiry
from coalition.services import kpi_counts
from tests.conftest import POSTGRES_URL
from tests.e2e.settlement_world import (
    add_partner,
    add_rate,
    at,
    burn,
    close,
    current_month_id,
    day_in_past,
    earn,
    expect,
    post,
    posted_after,
    previous_month,
    statements,
)
from tests.plans import sent


def kpis(caller, status: int = 200, **query) -> dict:
    return expect(caller.get("/api/v1/kpis", query_string=query), status)


def period(caller, period_id: str, **query) -> dict:
    (found,) = kpis(caller, period_id=period_id, **query)["periods"]
    return found


def partner(entry: dict, partner_id: str) -> dict:
    (found,) = [p for p in entry["partners"] if p["partner_id"] == partner_id]
    return found


def coalition_setup(operator) -> None:
    add_partner(operator, "aroma", "Кофейня Арома", "cafe", "RUB")
    add_partner(operator, "skyair", "SkyAir", "travel", "EUR")
    add_rate(operator, "earn", "0.1", partner_id="aroma")
    add_rate(operator, "earn", "2", partner_id="skyair")
    add_rate(operator, "redemption", "0.01")
    add_rate(operator, "fx", "0.0125", currency="RUB")


@pytest.fixture
def month(operator) -> str:
    """The month of the module docstring; returns its id."""
    start, _, period_id = previous_month()
    coalition_setup(operator)
    earn(operator, "a-1", "skyair", "m1", at(start, 0), "100.00", "EUR")
    burn(operator, "b-2", "aroma", "m1", at(start, 1), 50)
    earn(operator, "a-3", "aroma", "m1", at(start, 2), "800.00", "RUB")
    earn(operator, "a-4", "aroma", "m2", at(start, 3), "400.00", "RUB")
    earn(operator, "a-5", "aroma", "m2", at(start, 4), "1100.00", "RUB")
    post(operator, external_id="bonus-6", type="bonus", partner_id="coalition", member_id="m3",
         occurred_at=at(start, 5), points=30, reason="referral")
    burn(operator, "b-7", "skyair", "m2", at(start, 6), 100)
    earn(operator, "a-8", "skyair", "m1", at(start, 7), "50.00", "EUR")
    earn(operator, "a-9", "skyair", "m4", at(start, 8), "30.00", "EUR")
    return period_id


# --- figures --------------------------------------------------------------------------------


def test_partner_figures_of_aroma(operator, month):
    assert partner(period(operator, month), "aroma") == {
        "partner_id": "aroma",
        "name": "Кофейня Арома",
        "currency": "RUB",
        "active_members": 2,  # m1 (burn, earn) and m2 (earns)
        "new_members": 1,  # m2's first lot is C; m1's first is skyair's A
        "purchases": 3,
        "purchasers": 2,
        "purchase_frequency": "1.50",  # 3 ÷ 2
        "sales": "2300.00",  # 800.00 + 400.00 + 1100.00
        "average_purchase": "766.67",  # 2300.00 ÷ 3 = 766.666…
        "purchases_with_points": 1,  # m1 burned at aroma this month
        "average_purchase_with_points": "800.00",
        "average_purchase_without_points": "750.00",  # m2: (400.00 + 1100.00) ÷ 2
        "redemptions": 1,
        "earn_share": "0.7500",  # 3 earns ÷ (3 + 1 burn)
        "burn_share": "0.2500",
        "points_issued": 230,  # 80 + 40 + 110
        "points_reversed": 0,
        "points_redeemed": 100,  # aroma's points spent at skyair by m2
        "points_redeemed_here": 50,  # skyair's points spent at aroma by m1
        "points_expired": 0,
        "redemption_rate": "0.4348",  # 100 ÷ 230 = 0.43478…
        "breakage_rate": "0.0000",
        "liability_points": 130,
        "liability": "1.30",  # 130 × 0.01 EUR
    }


def test_partner_figures_of_skyair(operator, month):
    figures = partner(period(operator, month), "skyair")
    assert (figures["active_members"], figures["new_members"], figures["purchasers"]) == (3, 2, 2)
    assert (figures["purchases"], figures["purchase_frequency"]) == (3, "1.50")
    # 100.00 + 50.00 + 30.00 = 180.00 EUR over 3; nobody who bought here burned here
    assert (figures["sales"], figures["average_purchase"]) == ("180.00", "60.00")
    assert (figures["average_purchase_with_points"], figures["average_purchase_without_points"]) == (None, "60.00")
    assert (figures["points_issued"], figures["points_redeemed"], figures["points_redeemed_here"]) == (360, 50, 100)
    assert figures["redemption_rate"] == "0.1389"  # 50 ÷ 360 = 0.13888…
    assert (figures["liability_points"], figures["liability"]) == (310, "3.10")


def test_the_coalition_partner_issues_bonuses_without_purchases(operator, month):
    figures = partner(period(operator, month), "coalition")
    assert (figures["active_members"], figures["new_members"], figures["purchases"]) == (0, 1, 0)
    assert (figures["sales"], figures["average_purchase"], figures["purchase_frequency"]) == ("0.00", None, None)
    assert (figures["points_issued"], figures["redemption_rate"], figures["liability"]) == (30, "0.0000", "0.30")


def test_coalition_wide_figures(operator, month):
    assert period(operator, month)["coalition"] == {
        "currency": "EUR",
        "active_members": 3,  # m1, m2, m4: m1 counts once though active at both partners
        "new_members": 4,  # m1, m2, m3 (by bonus), m4
        "purchases": 6,
        "purchasers": 3,
        "purchase_frequency": "2.00",
        # aroma 2300.00 RUB × 0.0125 = 28.75 EUR, plus skyair 180.00 EUR
        "sales": "208.75",
        "average_purchase": "34.79",  # 208.75 ÷ 6 = 34.7916…
        # m1 and m2 burned somewhere: 100.00 + 50.00 + 800.00×0.0125 + 1500.00×0.0125 = 178.75 over 5
        "purchases_with_points": 5,
        "average_purchase_with_points": "35.75",
        "average_purchase_without_points": "30.00",  # m4's one purchase
        "redemptions": 2,
        "earn_share": "0.7500",  # 6 ÷ 8
        "burn_share": "0.2500",
        "points_issued": 620,  # 230 + 360 + 30
        "points_reversed": 0,
        "points_redeemed": 150,
        "points_redeemed_here": 150,
        "points_expired": 0,
        "redemption_rate": "0.2419",  # 150 ÷ 620 = 0.24193…
        "breakage_rate": "0.0000",
        "liability_points": 470,
        "liability": "4.70",
    }


def test_a_member_is_new_only_in_the_period_of_their_first_lot(operator, month):
    # this month m1 earns again at aroma (first lot A, last month) and m5 earns for the
    # first time: asked for alone, this month has one new member, m5; last month keeps its 4
    _, this_month_start, _ = previous_month()
    now = datetime.now(UTC)
    occurred_at = (this_month_start + (now - this_month_start) / 2).isoformat()
    earn(operator, "a-10", "aroma", "m1", occurred_at, "300.00", "RUB")
    earn(operator, "a-11", "aroma", "m5", occurred_at, "500.00", "RUB")
    this_month = period(operator, current_month_id())
    assert (partner(this_month, "aroma")["new_members"], this_month["coalition"]["new_members"]) == (1, 1)
    assert (partner(this_month, "aroma")["active_members"], this_month["coalition"]["active_members"]) == (2, 2)
    last_month = period(operator, month)
    assert [partner(last_month, p)["new_members"] for p in ("aroma", "skyair", "coalition")] == [1, 2, 1]
    assert last_month["coalition"]["new_members"] == 4


def test_without_a_period_the_latest_periods_come_oldest_first(operator, month):
    report = kpis(operator)
    assert report["base_currency"] == "EUR"
    assert [p["period_id"] for p in report["periods"]] == [month, current_month_id()]
    assert [p["status"] for p in report["periods"]] == ["open", "open"]


def test_a_quiet_period_still_carries_the_outstanding_points(operator, month):
    (_, now) = kpis(operator)["periods"]
    assert (now["coalition"]["active_members"], now["coalition"]["purchases"]) == (0, 0)
    assert (now["coalition"]["liability_points"], now["coalition"]["liability"]) == (470, "4.70")


def test_each_open_periods_outstanding_points_are_its_own_ends(operator, month):
    # this month: m1 burns 120 at skyair, from lot A (expiring first), and m5 earns 50 at
    # aroma. Last month keeps its 470: the burn's 120 added back (A held 150 at its end),
    # m5's lot earned after it. This month: aroma 130 + 50, skyair 310 − 120, coalition 30.
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    burn(operator, "b-10", "skyair", "m1", now, 120)
    earn(operator, "a-11", "aroma", "m5", now, "500.00", "RUB")
    last, this = kpis(operator, periods=2)["periods"]
    assert (last["period_id"], this["period_id"]) == (month, current_month_id())
    outstanding = [
        {entry["partner_id"]: entry["liability_points"] for entry in shown["partners"]}
        for shown in (last, this)
    ]
    assert outstanding == [
        {"aroma": 130, "skyair": 310, "coalition": 30},
        {"aroma": 180, "skyair": 190, "coalition": 30},
    ]
    assert (last["coalition"]["liability_points"], this["coalition"]["liability_points"]) == (
        470, 400)


def test_a_burn_dated_at_a_periods_very_end_is_added_back_to_that_periods_outstanding_points(
        operator, month):
    # m1 burns 120 at skyair dated last month's end itself, this month's first instant: the
    # burn is this month's, so last month keeps its 470 (skyair's 310, the 120 added back: lot
    # A held 150 at its end) and this month shows skyair 310 − 120 = 190, 470 − 120 = 350 in all
    _, end, _ = previous_month()
    burn(operator, "b-10", "skyair", "m1", end.isoformat(), 120)
    last, this = kpis(operator, periods=2)["periods"]
    skyair = [
        next(entry["liability_points"] for entry in shown["partners"] if entry["partner_id"] == "skyair")
        for shown in (last, this)
    ]
    assert skyair == [310, 190]
    assert (last["coalition"]["liability_points"], this["coalition"]["liability_points"]) == (
        470, 350)


def test_a_chart_of_open_days_counts_a_lot_at_the_end_it_expires_not_the_end_it_is_earned(operator):
    # daily periods, points live one day. m1 earns 100.00 EUR × 2 = 200 points at 00:00 of
    # day A (three days ago): its lot expires at B's first instant, A's end, so it is A's
    # outstanding. m2 earns 50.00 EUR × 2 = 100 points at that same instant: B's, not A's,
    # expiring at B's end. A: 200, B: 100, C: 0 (decisions.md, the liability at a period's end)
    expect(operator.put("/api/v1/settings", json={"period": "daily", "points_ttl_days": 1}), 200)
    add_partner(operator, "skyair", "SkyAir", "travel", "EUR")
    add_rate(operator, "earn", "2", partner_id="skyair")
    add_rate(operator, "redemption", "0.01")
    day_a, _ = day_in_past(3)
    earn(operator, "m1-a", "skyair", "m1", at(day_a, 0, 0), "100.00", "EUR")
    earn(operator, "m2-b", "skyair", "m2", at(day_a, 1, 0), "50.00", "EUR")
    shown = kpis(operator, periods=4)["periods"]
    assert [p["period_id"] for p in shown[:3]] == [day_in_past(days)[1] for days in (3, 2, 1)]
    assert [p["coalition"]["liability_points"] for p in shown[:3]] == [200, 100, 0]


def test_periods_limits_the_series(operator, month):
    assert [p["period_id"] for p in kpis(operator, periods=1)["periods"]] == [current_month_id()]


class _Walked(list):
    """A period's redeemed points by pair, counting how often they are iterated."""

    walks = 0

    def __iter__(self):
        type(self).walks += 1
        return super().__iter__()


def test_the_points_redeemed_are_read_summed_by_partner_not_pair_by_pair(
        operator, month, monkeypatch):
    # 400 partners trading thousands of pairs a month: the KPIs read every pair's row and
    # summed each partner's from all of them, twice a partner: seconds a period, and the
    # console reads twelve (the settlement's own lines: test_settlement_many_partners.py)
    for number in range(30):
        add_partner(operator, f"idle-{number:02d}", f"Idle {number}", "shop", "EUR")
    pairs = period_totals.redeemed_points
    monkeypatch.setattr(period_totals, "redeemed_points", lambda *a: _Walked(pairs(*a)))
    monkeypatch.setattr(_Walked, "walks", 0)

    report = kpis(operator)
    assert len(report["periods"]) == 2 and len(report["periods"][0]["partners"]) == 33
    assert _Walked.walks == 0, f"{_Walked.walks} walks of the pairs for two periods' KPIs"
    figures = partner(report["periods"][0], "aroma")
    assert (figures["points_redeemed"], figures["points_redeemed_here"]) == (100, 50)
    assert partner(report["periods"][0], "idle-00")["points_redeemed"] == 0
    assert report["periods"][0]["coalition"]["points_redeemed"] == 150


def test_a_partners_points_redeemed_at_two_partners_are_summed_in_an_open_period(operator, month):
    # m1 burns 20 at skyair on day 10: lot A (skyair's, earned day 1) expires first, so
    # skyair's points are spent at skyair. By hand, skyair's points redeemed: 50 at aroma
    # (day 2) + 20 at skyair = 70; redeemed at skyair: 100 of aroma's (day 7) + 20 = 120;
    # aroma's stay 100 and 50; the coalition's 150 + 20 = 170
    start, _, _ = previous_month()
    burn(operator, "b-10", "skyair", "m1", at(start, 9), 20)

    figures = period(operator, month)
    pairs = {
        partner_id: (partner(figures, partner_id)["points_redeemed"],
                     partner(figures, partner_id)["points_redeemed_here"])
        for partner_id in ("aroma", "skyair")
    }
    assert pairs == {"aroma": (100, 50), "skyair": (70, 120)}
    assert figures["coalition"]["points_redeemed"] == 170


def test_the_coalition_wide_sales_look_up_each_currencys_fx_rate_once(operator, month, monkeypatch):
    # 400 partners in 8 currencies: each partner's purchases looked its currency's fx rate
    # up again, 2,400 lookups for the console's six periods (docs/performance-log.md)
    start, _, _ = previous_month()
    for number in range(5):
        add_partner(operator, f"cafe-{number}", f"Cafe {number}", "cafe", "RUB")
        add_rate(operator, "earn", "0.1", partner_id=f"cafe-{number}")
        earn(operator, f"c-{number}", f"cafe-{number}", "m5", at(start, 9), "100.00", "RUB")
    asked = []
    fx_rate = catalog.Catalog.fx_rate
    monkeypatch.setattr(catalog.Catalog, "fx_rate",
                        lambda self, currency, at: asked.append(currency) or fx_rate(self, currency, at))

    figures = period(operator, month)["coalition"]
    assert sorted(asked) == ["EUR", "RUB"]
    # RUB: aroma 800.00 + 400.00 + 1100.00, the cafes 5 × 100.00 = 2800.00 × 0.0125 = 35.00 EUR;
    # skyair 100.00 + 50.00 + 30.00 = 180.00 EUR
    assert (figures["purchases"], figures["sales"]) == (11, "215.00")


def test_the_answer_is_the_schemas_dump_of_the_report_without_dumping_the_figures_again(
        app, database, operator, month, monkeypatch):
    # 400 partners and six periods are 2,400 sets of figures, made in the API's form
    # already: the schema's copy of them was a tenth of a second a request
    # (docs/performance-log.md)
    from coalition.api import authentication
    from coalition.api import kpis as kpis_api
    from coalition.services import kpis as service

    with app.test_request_context():
        who = authentication.authenticate(operator.headers["Authorization"])
    report = database.run_reading(service.report, who, datetime.now(UTC))
    dumped = json.dumps(kpis_api.KpiReport().dump(report))

    def dumped_again(*args, **kwargs):
        raise AssertionError("the figures were dumped again")

    monkeypatch.setattr(kpis_api.Figures, "dump", dumped_again)
    monkeypatch.setattr(kpis_api.PartnerFigures, "dump", dumped_again)
    answered = expect(operator.get("/api/v1/kpis"), 200)
    # the same fields, in the same order, as the schema's dump
    def in_order(text: str) -> list:
        return json.loads(text, object_pairs_hook=list)

    assert in_order(json.dumps(answered)) == in_order(dumped)
    assert [p["period_id"] for p in answered["periods"]] == [month, current_month_id()]


def rows_discarded_by_joins(database, count) -> int:
    """Run ``count(session)``, then EXPLAIN ANALYZE each query it sent, its joins planned
    as nested loops: how many rows they compared and discarded. A period the statistics
    hold none of is planned so (taken for one row); pinned, the count does not depend on
    whether autovacuum has analyzed the period's rows meanwhile, which made a join of the
    earns and the burns a hash join, which discards nothing."""
    with sent(database.engine) as statements:
        database.run(count)

    def nodes(plan):
        yield plan
        for below in plan.get("Plans", []):
            yield from nodes(below)

    discarded = 0
    with database.engine.connect() as connection, connection.begin():
        connection.exec_driver_sql("SET LOCAL enable_hashjoin = off")
        connection.exec_driver_sql("SET LOCAL enable_mergejoin = off")
        for statement, parameters in statements:
            explained = "EXPLAIN (ANALYZE, FORMAT JSON) " + statement
            (plan,) = connection.exec_driver_sql(explained, parameters).scalar()
            discarded += sum(n.get("Rows Removed by Join Filter", 0) for n in nodes(plan["Plan"]))
    return discarded


@pytest.mark.postgres
def test_purchases_are_split_without_comparing_each_earn_with_each_burn(operator, database):
    # the open period is the newest: until ANALYZE runs again the statistics hold none of
    # its rows, and taking it for one row the split joined its burns in a nested loop over
    # every earn: 79 million rows compared, 14 s, for a month of 18,000 (400 partners)
    start, _, period_id = previous_month()
    coalition_setup(operator)
    for number in range(40):
        earn(operator, f"a-{number}", "skyair", f"m{number}", at(start, 1), "10.00", "EUR")
    for number in range(0, 40, 2):
        burn(operator, f"b-{number}", "aroma", f"m{number}", at(start, 2), 5)

    split = kpi_aggregates.purchases
    assert rows_discarded_by_joins(database, lambda session: split(session, period_id)) == 0
    skyair = database.run(lambda session: split(session, period_id))["skyair"]
    assert (skyair["here"].count, skyair["here"].count_with_points) == (40, 0)
    assert (skyair["anywhere"].count, skyair["anywhere"].count_with_points) == (20, 20)
    assert skyair["anywhere"].amount_with_points == Decimal("200.00")


def test_an_answer_is_one_instants_figures_while_tills_post(operator, month, monkeypatch):
    """A skyair earn of 50.00 EUR (100 points) commits after the request counted the
    purchases and before it reads the points: the answer is the figures of one instant,
    3 purchases and their 360 points, as SQLite's snapshot gave it. On PostgreSQL each
    statement read the ledger anew, and the answer had 3 purchases beside 460 points
    issued (and 100 points more outstanding), which no moment of the ledger ever held."""
    start, _, _ = previous_month()
    posted_after(monkeypatch, kpi_counts, "of_periods",
                 lambda: earn(operator, "a-10", "skyair", "m4", at(start, 9), "50.00", "EUR"))
    answered = period(operator, month)
    monkeypatch.undo()
    skyair = partner(answered, "skyair")
    assert (skyair["purchases"], skyair["points_issued"], skyair["liability_points"]) == (3, 360, 310)
    assert answered["coalition"]["liability_points"] == 470
    skyair = partner(period(operator, month), "skyair")  # the next answer has the earn
    assert (skyair["purchases"], skyair["points_issued"], skyair["liability_points"]) == (4, 460, 410)


def test_closing_the_period_changes_no_figure(operator, month):
    before = period(operator, month)
    close(operator, month)
    after = period(operator, month)
    assert after["status"] == "closed"
    assert {**after, "status": "open"} == before


def test_a_closed_periods_outstanding_points_are_its_stored_partners_whatever_they_are_called(
        operator, month):
    # the KPIs read a closed period's partners alone out of its stored settlement, where
    # its pair lines come first (services.settlement.stored_partners): a partner whose id is
    # "partners" is in both, before and after the key, and its name reads like the key. m6
    # earns 40.00 EUR × 1 = 40 points there and spends 15 at aroma: 25 outstanding
    start, _, _ = previous_month()
    add_partner(operator, "partners", 'The "partners":[ shop', "shop", "EUR")
    add_rate(operator, "earn", "1", partner_id="partners")
    earn(operator, "p-1", "partners", "m6", at(start, 9), "40.00", "EUR")
    burn(operator, "p-2", "aroma", "m6", at(start, 10), 15)
    before = period(operator, month)
    close(operator, month)
    after = period(operator, month)
    assert partner(after, "partners")["liability_points"] == 25
    assert after["coalition"]["liability_points"] == 470 + 25
    assert {**after, "status": "open"} == before


def test_a_closed_periods_counts_are_kept_and_read_back_unchanged(operator, make_key, database, month):
    # the whole report, coalition-wide and for a partner key, counted live, then from what the
    # first request after the close kept on the period
    partner_key = make_key("partner", "aroma")
    before = kpis(operator, period_id=month)["periods"][0], period(partner_key, month)
    close(operator, month)
    assert kept_kpi_counts(database, month) is None  # a close counts nothing itself
    counted = period(operator, month), period(partner_key, month)
    assert kept_kpi_counts(database, month) is not None
    kept = period(operator, month), period(partner_key, month)
    assert counted == kept
    assert [{**figures, "status": "open"} for figures in kept] == list(before)


@pytest.mark.parametrize("asked_before_the_late_earn", [True, False])
def test_a_late_earn_backdated_before_a_members_first_lot_does_not_make_them_new_again(
        operator, month, asked_before_the_late_earn):
    # m4's first lot is G (skyair, day 9); after the close an aroma earn for m4 dated day 1
    # lands late in this month: m4 stays new last month, and is not new this month, whenever
    # the closed month's KPIs are first asked for
    start, _, _ = previous_month()
    close(operator, month)
    if asked_before_the_late_earn:
        period(operator, month)
    late = earn(operator, "a-late", "aroma", "m4", at(start, 0), "300.00", "RUB")
    assert (late["late"], late["period_id"]) == (True, current_month_id())
    last_month, this_month = period(operator, month), period(operator, current_month_id())
    assert (partner(last_month, "skyair")["new_members"], last_month["coalition"]["new_members"]) == (2, 4)
    assert (partner(this_month, "aroma")["new_members"], this_month["coalition"]["new_members"]) == (0, 0)


def test_the_auto_close_job_keeps_the_counts_of_closed_periods(operator, database, month):
    before = period(operator, month)
    close(operator, month)
    jobs.run_auto_close(database)  # this month has not ended: it closes nothing, and counts last month
    assert json.loads(kept_kpi_counts(database, month))["version"] == kpi_counts.COUNTS_VERSION
    assert kpi_counts.keep_counts(database) == 0
    assert {**period(operator, month), "status": "open"} == before


def counted_once_by_two_instances(database, monkeypatch) -> tuple[list, list]:
    """Keep counts as two instances would on SQLite, the second all the way through after
    the first found what was due: what the second kept, and each period counted."""
    counted, others, real_count, real_run = [], [], kpi_counts._count, database.run

    def count(session, period_id, **how):
        counted.append(period_id)
        return real_count(session, period_id, **how)

    def run(work, *args, **kwargs):
        found = real_run(work, *args, **kwargs)
        if work.__name__ == "due" and not others:
            others.append(None)
            others[0] = kpi_counts.keep_counts(database)
        return found

    monkeypatch.setattr(kpi_counts, "_count", count)
    monkeypatch.setattr(database, "run", run)
    assert kpi_counts.keep_counts(database) == 0
    return others, counted


def test_a_period_another_instance_counted_meanwhile_is_not_counted_again(
        operator, database, month, monkeypatch):
    # on SQLite, where instances take no job lock, three instances counted 85 closed
    # periods 208 times: each counted every period on the list it had found due
    close(operator, month)
    assert counted_once_by_two_instances(database, monkeypatch) == ([1], [month])


def test_an_open_period_another_instance_counted_anew_meanwhile_is_not_counted_again(
        slow_counting, operator, database, month, monkeypatch):
    period(operator, month)  # counted, and kept
    age_open_counts(database, month, kpi_counts.REFRESH_AFTER)
    assert counted_once_by_two_instances(database, monkeypatch) == ([1], [month])


def test_an_auto_close_refused_for_a_missing_rate_is_one_warning_and_the_job_still_counts(
        operator, database, caplog):
    # daily periods: three days ago is closed by hand (its counts not yet kept); two days ago
    # has ended, but a JPY partner that joined then earned with no fx rate, so the job
    # cannot close it
    expect(operator.put("/api/v1/settings", json={"period": "daily", "auto_close_after_hours": 0}), 200)
    add_partner(operator, "skyair", "SkyAir", "travel", "EUR")
    add_rate(operator, "earn", "2", partner_id="skyair")
    (closed_day, closed_id), (refused_day, refused_id) = day_in_past(3), day_in_past(2)
    earn(operator, "e-1", "skyair", "m1", at(closed_day, 0), "10.00", "EUR")
    earn(operator, "e-2", "skyair", "m2", at(closed_day, 1), "10.00", "EUR")
    close(operator, closed_id)
    add_partner(operator, "ramen", "Tokyo Ramen", "cafe", "JPY")
    add_rate(operator, "earn", "0.1", partner_id="ramen", effective_from=at(refused_day, 0, 0))
    earn(operator, "e-3", "ramen", "m3", at(refused_day, 0), "1000", "JPY")
    with caplog.at_level("WARNING", logger="coalition.jobs"):
        jobs.run_auto_close(database)
    (warning,) = [record for record in caplog.records if record.name == "coalition.jobs"]
    assert (warning.levelname, warning.exc_info) == ("WARNING", None)  # one line, no traceback
    assert "no fx rate" in warning.getMessage() and "JPY" in warning.getMessage()
    statuses = {p["id"]: p["status"] for p in expect(operator.get("/api/v1/periods"), 200)}
    assert (statuses[closed_id], statuses[refused_id]) == ("closed", "open")
    assert json.loads(kept_kpi_counts(database, closed_id))["version"] == kpi_counts.COUNTS_VERSION



def test_an_auto_close_that_finds_the_books_unbalanced_fails_loudly(database, monkeypatch, caplog):
    # SPEC §7: such a close "fails loudly"; only a refusal the operator can fix is a warning
    def unbalanced(database, now):
        raise Unbalanced("Σ(receivable − payable) = 0.01")

    monkeypatch.setattr("coalition.services.settlement.auto_close", unbalanced)
    with pytest.raises(Unbalanced):
        jobs.run_auto_close(database)
    assert not [record for record in caplog.records if record.levelname == "WARNING"]

def test_a_closed_period_is_not_counted_again(operator, database, month):
    close(operator, month)
    period(operator, month)
    doctor_kept_counts(database, month, version=kpi_counts.COUNTS_VERSION)  # one more active member
    figures = period(operator, month)
    assert (figures["coalition"]["active_members"], partner(figures, "aroma")["active_members"]) == (4, 3)


def test_counts_kept_by_another_version_of_the_counting_are_counted_again(operator, database, month):
    close(operator, month)
    period(operator, month)
    doctor_kept_counts(database, month, version=kpi_counts.COUNTS_VERSION - 1)
    figures = period(operator, month)
    assert (figures["coalition"]["active_members"], partner(figures, "aroma")["active_members"]) == (3, 2)
    assert json.loads(kept_kpi_counts(database, month))["version"] == kpi_counts.COUNTS_VERSION


@pytest.mark.skipif(bool(POSTGRES_URL), reason="SQLite's snapshots")
@pytest.mark.parametrize("other_writer", ["committed meanwhile", "holding the file"])
def test_on_sqlite_counts_refused_their_write_by_another_writer_are_answered_and_kept_by_the_next_request(
    operator, database, database_url, month, monkeypatch, other_writer
):
    """A KPI request reads a snapshot on SQLite, taking no write lock; keeping a closed period's
    counts is its one write, which SQLite refuses at once while another writer holds the file,
    or once one has committed since the snapshot began. The request answers what it counted,
    without waiting for the file or counting again holding it (every posting would wait), and
    the next request keeps the counts."""
    close(operator, month)
    counted, other = [], sqlite3.connect(make_url(database_url).database, isolation_level=None,
                                         check_same_thread=False)
    counting = kpi_aggregates.member_activity

    def member_activity(session, period_id):
        counted.append(period_id)
        if len(counted) == 1:  # the operator's change, while the request counts
            other.execute("BEGIN IMMEDIATE")
            other.execute("UPDATE settings SET generation = generation + 1")
            if other_writer == "committed meanwhile":
                other.execute("COMMIT")
        return counting(session, period_id)

    monkeypatch.setattr(kpi_aggregates, "member_activity", member_activity)
    figures = period(operator, month)
    assert other.in_transaction == (other_writer == "holding the file")  # answered without waiting for it
    if other.in_transaction:
        other.execute("COMMIT")
    other.close()
    assert counted == [month]  # on the snapshot, once
    assert (figures["coalition"]["active_members"], partner(figures, "aroma")["active_members"]) == (3, 2)
    assert kept_kpi_counts(database, month) is None  # refused: left for the next request
    assert period(operator, month) == figures and counted == [month, month]  # counted, and kept
    assert json.loads(kept_kpi_counts(database, month))["version"] == kpi_counts.COUNTS_VERSION
    assert period(operator, month) == figures and len(counted) == 2  # read back, not counted


def test_counts_kept_before_the_redeemed_points_were_kept_with_them_are_counted_again(
        operator, database, month):
    # counts kept by version 1, which kept no redeemed points, with one more active member
    # everywhere: counted again, the hand-worked figures come back, and the redeemed points
    # are kept with them (aroma's 100 spent at skyair by m2, skyair's 50 at aroma by m1)
    close(operator, month)
    period(operator, month)
    doctor_kept_counts(database, month, version=1)
    with database.transaction() as session:
        row = session.get(models.ClosedPeriodCounts, month)
        row.kpi_counts = json.dumps({k: v for k, v in json.loads(row.kpi_counts).items() if k != "redeemed"})
    figures = period(operator, month)
    assert (figures["coalition"]["active_members"], partner(figures, "aroma")["active_members"]) == (3, 2)
    assert json.loads(kept_kpi_counts(database, month))["redeemed"] == {
        "by_issuer": {"aroma": 100, "skyair": 50}, "by_redeemer": {"aroma": 50, "skyair": 100}}


def test_a_closed_periods_redeemed_points_are_read_as_kept_with_its_counts(operator, database, month):
    # the kept figures doctored, 7 more of aroma's points spent at skyair: the answer shows
    # them, so it read them as kept rather than summing the pair totals again (100 + 7 = 107
    # redeemed of aroma's, 100 + 7 = 107 redeemed at skyair, 150 + 7 = 157 in all)
    close(operator, month)
    period(operator, month)
    with database.transaction() as session:
        row = session.get(models.ClosedPeriodCounts, month)
        counts = json.loads(row.kpi_counts)
        counts["redeemed"] = {"by_issuer": {"aroma": 107, "skyair": 50}, "by_redeemer": {"aroma": 50, "skyair": 107}}
        row.kpi_counts = json.dumps(counts)
    figures = period(operator, month)
    assert (partner(figures, "aroma")["points_redeemed"], partner(figures, "skyair")["points_redeemed_here"]) == (107, 107)
    assert figures["coalition"]["points_redeemed"] == 157
    assert period(operator, current_month_id())["coalition"]["points_redeemed"] == 0  # open: summed


def doctor_kept_counts(database, period_id: str, version: int) -> None:
    """One more active member everywhere in the counts kept on the period, under ``version``."""
    with database.transaction() as session:
        row = session.get(models.ClosedPeriodCounts, period_id)
        counts = json.loads(row.kpi_counts)
        counts["visits"] = [[p, {**v, "active_members": v["active_members"] + 1}] for p, v in counts["visits"]]
        row.kpi_counts = json.dumps({**counts, "version": version})


def kept_kpi_counts(database, period_id: str):
    with database.transaction() as session:
        row = session.get(models.ClosedPeriodCounts, period_id)
        return None if row is None else row.kpi_counts


# --- an open period slow to count -------------------------------------------------------------


def test_an_open_period_quick_to_count_is_counted_for_each_request(operator, database, month):
    before = period(operator, month)
    earn(operator, "a-10", "skyair", "m5", at(previous_month()[0], 9), "10.00", "EUR")
    after = period(operator, month)
    assert (before["counted_at"], after["counted_at"]) == (None, None)
    assert (before["coalition"]["active_members"], after["coalition"]["active_members"]) == (3, 4)
    assert open_counts(database, month) is None  # nothing kept: it takes milliseconds


@pytest.fixture
def slow_counting(monkeypatch):
    """Every count of an open period takes 'seconds': at least the least time there is."""
    monkeypatch.setattr(kpi_counts, "LIVE_COUNTING", timedelta(0))


def test_an_open_period_slow_to_count_is_read_back_while_its_counts_are_fresh(
        slow_counting, operator, database, month):
    first = period(operator, month)
    counted_at = open_counts(database, month).counted_at
    earn(operator, "a-10", "skyair", "m5", at(previous_month()[0], 9), "10.00", "EUR")
    kept = period(operator, month)
    # m5's earn shows in the points at once, in the counts only when counted anew
    assert (first["counted_at"], kept["counted_at"]) == (None, counted_at.isoformat())
    assert (kept["coalition"]["active_members"], kept["coalition"]["purchases"]) == (3, 6)
    assert kept["coalition"]["points_issued"] == first["coalition"]["points_issued"] + 20


def test_an_open_periods_counts_kept_an_hour_are_counted_anew(slow_counting, operator, database, month):
    period(operator, month)
    earn(operator, "a-10", "skyair", "m5", at(previous_month()[0], 9), "10.00", "EUR")
    aged = age_open_counts(database, month, kpi_counts.KEPT_FOR)
    again = period(operator, month)
    assert again["counted_at"] is None
    assert (again["coalition"]["active_members"], again["coalition"]["purchases"]) == (4, 7)
    assert open_counts(database, month).counted_at > aged  # kept anew


def test_a_kept_open_period_that_counts_quickly_again_is_live_again(
        slow_counting, monkeypatch, operator, database, month):
    period(operator, month)
    age_open_counts(database, month, kpi_counts.KEPT_FOR)
    monkeypatch.setattr(kpi_counts, "LIVE_COUNTING", timedelta(hours=1))
    period(operator, month)
    assert open_counts(database, month) is None
    earn(operator, "a-10", "skyair", "m5", at(previous_month()[0], 9), "10.00", "EUR")
    assert period(operator, month)["coalition"]["active_members"] == 4


@pytest.mark.postgres
def test_while_one_request_counts_a_period_anew_the_others_read_its_last_count(
        slow_counting, operator, database, month):
    period(operator, month)
    earn(operator, "a-10", "skyair", "m5", at(previous_month()[0], 9), "10.00", "EUR")
    aged = age_open_counts(database, month, kpi_counts.KEPT_FOR)
    with database.engine.connect() as counting, counting.begin():
        locks.hold(counting, locks.KPI_COUNTING)  # another request, counting it anew
        meanwhile = period(operator, month)
    assert (meanwhile["counted_at"], meanwhile["coalition"]["active_members"]) == (aged.isoformat(), 3)
    after = period(operator, month)
    assert (after["counted_at"], after["coalition"]["active_members"]) == (None, 4)


def counting_takes(monkeypatch, seconds: dict[str, float]) -> dict[str, datetime]:
    """Counting a period's members takes ``seconds[period_id]`` (none if not given) on a
    clock of the test's, the clock that times each count against LIVE_COUNTING. When,
    by the wall clock, each period's members were last counted."""
    clock, began = SimpleNamespace(now=0.0), {}
    monkeypatch.setattr(kpi_counts, "time", SimpleNamespace(monotonic=lambda: clock.now))
    count_visits = kpi_aggregates.member_activity

    def taking_seconds(session, period_id):
        began[period_id] = datetime.now(UTC)
        clock.now += seconds.get(period_id, 0)
        return count_visits(session, period_id)

    monkeypatch.setattr(kpi_aggregates, "member_activity", taking_seconds)
    return began


def test_open_periods_are_not_kept_for_the_counting_time_of_a_closed_one_counted_beside_them(
        operator, database, month, monkeypatch):
    # last month, closed, is counted in the same request as this month: a minute for last
    # month's count keeps nothing of this month's, as closed periods are kept anyway
    close(operator, month)
    counting_takes(monkeypatch, {month: 60})
    report = kpis(operator, periods=2)
    assert [entry["period_id"] for entry in report["periods"]] == [month, current_month_id()]
    assert kept_kpi_counts(database, month) is not None
    assert open_counts(database, current_month_id()) is None


def test_open_periods_quick_to_count_alone_but_not_together_are_kept_each_counted_at_its_own_time(
        operator, database, month, monkeypatch):
    # a second for each of the two open months: under LIVE_COUNTING (2 s) alone, together
    # 2 s, the least that keeps them
    this_month = current_month_id()
    began = counting_takes(monkeypatch, {month: 1, this_month: 1})
    first = kpis(operator, periods=2)
    counted_at = [open_counts(database, period_id).counted_at for period_id in (month, this_month)]
    # each said counted as its own count began: last month's before this month's
    assert counted_at[0] <= began[month] < counted_at[1] <= began[this_month]
    earn(operator, "a-10", "skyair", "m5", at(previous_month()[0], 9), "10.00", "EUR")
    again = kpis(operator, periods=2)
    assert [entry["counted_at"] for entry in first["periods"]] == [None, None]
    assert [entry["counted_at"] for entry in again["periods"]] == [at.isoformat() for at in counted_at]
    # m5's earn is in neither kept count: last month's members are still the docstring's 3
    assert [entry["coalition"]["active_members"] for entry in again["periods"]] == [3, 0]


def test_open_periods_kept_together_and_quick_together_when_counted_anew_are_live_again(
        operator, database, month, monkeypatch):
    # kept for a second each (2 s together); an hour later counted anew in half a second
    # each (1 s together): neither is kept, and those kept are dropped
    this_month = current_month_id()
    counting_takes(monkeypatch, {month: 1, this_month: 1})
    kpis(operator, periods=2)
    assert open_counts(database, month) is not None and open_counts(database, this_month) is not None
    for period_id in (month, this_month):
        age_open_counts(database, period_id, kpi_counts.KEPT_FOR)
    counting_takes(monkeypatch, {month: 0.5, this_month: 0.5})
    anew = kpis(operator, periods=2)
    assert [entry["counted_at"] for entry in anew["periods"]] == [None, None]
    assert (open_counts(database, month), open_counts(database, this_month)) == (None, None)
    earn(operator, "a-10", "skyair", "m5", at(previous_month()[0], 9), "10.00", "EUR")
    assert period(operator, month)["coalition"]["active_members"] == 4  # counted live


def open_counts_kept_and_aged_for_the_job(operator, database, month, monkeypatch) -> list[datetime]:
    """Last month's and this month's counts kept (however quick: LIVE_COUNTING none while
    the request counts them), then made REFRESH_AFTER old: due for the job. When each
    is now said counted."""
    with monkeypatch.context() as keeping_anything:
        keeping_anything.setattr(kpi_counts, "LIVE_COUNTING", timedelta(0))
        kpis(operator, periods=2)
    return [age_open_counts(database, period_id, kpi_counts.REFRESH_AFTER)
            for period_id in (month, current_month_id())]


def test_the_job_keeps_anew_open_periods_it_counts_anew_that_take_seconds_together(
        operator, database, month, monkeypatch):
    # a second for each of the two open months (2 s together): kept anew, each at its own time
    aged = open_counts_kept_and_aged_for_the_job(operator, database, month, monkeypatch)
    this_month = current_month_id()
    began = counting_takes(monkeypatch, {month: 1, this_month: 1})
    earn(operator, "a-10", "skyair", "m5", at(previous_month()[0], 9), "10.00", "EUR")
    assert kpi_counts.keep_counts(database) == 2
    refreshed = [open_counts(database, period_id).counted_at for period_id in (month, this_month)]
    assert max(aged) < refreshed[0] <= began[month] < refreshed[1] <= began[this_month]
    figures = kpis(operator, periods=2)["periods"]
    assert [entry["counted_at"] for entry in figures] == [at.isoformat() for at in refreshed]
    assert figures[0]["coalition"]["active_members"] == 4  # m5 counted in the job's count


def test_the_job_drops_open_periods_it_counts_anew_that_are_quick_together(
        operator, database, month, monkeypatch):
    # half a second for each of the two open months (1 s together): live again
    open_counts_kept_and_aged_for_the_job(operator, database, month, monkeypatch)
    this_month = current_month_id()
    counting_takes(monkeypatch, {month: 0.5, this_month: 0.5})
    assert kpi_counts.keep_counts(database) == 2
    assert (open_counts(database, month), open_counts(database, this_month)) == (None, None)
    assert [entry["counted_at"] for entry in kpis(operator, periods=2)["periods"]] == [None, None]


def test_the_auto_close_job_counts_an_open_periods_kept_counts_once_they_age(
        slow_counting, operator, database, month):
    this_month = current_month_id()  # not ended: the job's check closes nothing of it
    assert period(operator, this_month)["coalition"]["active_members"] == 0
    earn(operator, "a-10", "skyair", "m5", datetime.now(UTC).replace(microsecond=0).isoformat(),
         "10.00", "EUR")
    assert kpi_counts.keep_counts(database) == 0  # kept a moment ago
    aged = age_open_counts(database, this_month, kpi_counts.REFRESH_AFTER)
    jobs.run_auto_close(database)
    refreshed = open_counts(database, this_month).counted_at
    assert refreshed > aged
    figures = period(operator, this_month)
    assert (figures["counted_at"], figures["coalition"]["active_members"]) == (refreshed.isoformat(), 1)


def test_a_closed_period_is_counted_anew_not_read_from_what_was_kept_while_open(
        slow_counting, operator, database, month):
    period(operator, month)
    earn(operator, "a-10", "skyair", "m5", at(previous_month()[0], 9), "10.00", "EUR")
    close(operator, month)
    figures = period(operator, month)
    assert (figures["counted_at"], figures["coalition"]["active_members"]) == (None, 4)
    assert kpi_counts.keep_counts(database) == 0
    assert open_counts(database, month) is None  # the job clears what no longer stands


def test_counts_kept_later_are_not_replaced_by_counts_taken_earlier(database):
    # two requests count at once; the one that counted first commits last
    taken = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    with database.transaction() as session:
        kept_counts.keep_open(session, "2026-11", taken, "newer")
    with database.transaction() as session:
        kept_counts.keep_open(session, "2026-11", taken - timedelta(minutes=20), "older")
    kept = open_counts(database, "2026-11")
    assert (kept.counted_at, kept.kpi_counts) == (taken, "newer")
    with database.transaction() as session:
        kept_counts.keep_open(session, "2026-11", taken + timedelta(minutes=1), "newest")
    assert open_counts(database, "2026-11").kpi_counts == "newest"


def open_counts(database, period_id: str):
    with database.transaction() as session:
        row = session.get(models.OpenPeriodCounts, period_id)
        if row is not None:
            session.expunge(row)
        return row


def age_open_counts(database, period_id: str, by: timedelta) -> datetime:
    """Make the counts kept of a period older by ``by``; when they are now said counted."""
    with database.transaction() as session:
        row = session.get(models.OpenPeriodCounts, period_id)
        row.counted_at -= by
        return row.counted_at


def test_points_outstanding_of_a_closed_period_match_its_statements(operator, month):
    close(operator, month)
    figures = period(operator, month)
    for statement in statements(operator, period_id=month):
        entry = partner(figures, statement["partner_id"])
        assert (entry["liability_points"], entry["liability"]) == (
            statement["summary"]["liability_points"], statement["summary"]["liability"])


def test_breakage_counts_expired_points(operator, database):
    """m9 earns 1000.00 RUB → 100 points that live one day, spends 30; the other 70 expire.

    redemption 30 ÷ 100 = 0.30, breakage 70 ÷ 100 = 0.70, nothing outstanding.
    """
    start, _, period_id = previous_month()
    coalition_setup(operator)
    expect(operator.put("/api/v1/settings", json={"points_ttl_days": 1}), 200)
    earn(operator, "e-1", "aroma", "m9", at(start, 0, 9), "1000.00", "RUB")
    burn(operator, "b-1", "aroma", "m9", at(start, 0, 10), 30)
    assert expiry.expire_all(database, datetime.now(UTC)) == 1
    figures = partner(period(operator, period_id), "aroma")
    assert (figures["points_issued"], figures["points_redeemed"], figures["points_expired"]) == (100, 30, 70)
    assert (figures["redemption_rate"], figures["breakage_rate"]) == ("0.3000", "0.7000")
    assert (figures["liability_points"], figures["liability"]) == (0, "0.00")


def test_a_return_lowers_the_points_the_rates_divide_by(operator, month):
    """m2 returns 550.00 of the 1100.00 RUB purchase: floor(110 × 550 / 1100) = 55 points are due
    back from D, which holds 110 − 60 = 50: 50 are recovered, 5 are a shortfall.

    aroma: net issued 230 − 50 = 180, redemption 100 ÷ 180 = 0.5555…
    """
    post(operator, external_id="r-10", type="earn_reversal", partner_id="aroma",
         original_external_id="a-5", amount="550.00", currency="RUB",
         occurred_at=at(previous_month()[0], 9))
    figures = partner(period(operator, month), "aroma")
    assert (figures["points_issued"], figures["points_reversed"]) == (230, 50)
    assert figures["redemption_rate"] == "0.5556"


def test_a_missing_fx_rate_leaves_coalition_money_blank(operator):
    """A CZK partner without an fx rate: its purchases count, coalition-wide amounts cannot be added up."""
    start, _, period_id = previous_month()
    coalition_setup(operator)
    add_partner(operator, "hotel", "Hotel", "travel", "CZK")
    add_rate(operator, "earn", "0.2", partner_id="hotel")
    earn(operator, "h-1", "hotel", "m7", at(start, 2), "1000.00", "CZK")
    entry = period(operator, period_id)
    assert (entry["coalition"]["purchases"], entry["coalition"]["sales"]) == (1, None)
    assert partner(entry, "hotel")["sales"] == "1000.00"


# --- who sees what ----------------------------------------------------------------------------


def test_a_partner_key_sees_its_own_figures_and_no_coalition_totals(make_key, operator, month):
    entry = period(make_key("partner", "aroma"), month)
    assert [p["partner_id"] for p in entry["partners"]] == ["aroma"]
    assert entry["coalition"] is None


def test_no_key_bound_to_a_partner_gets_the_coalition_totals(make_key, operator, month):
    # aroma's sales are known to aroma: the coalition's total less them is skyair's
    for key in (make_key("partner", "aroma"), make_key("finance", "aroma")):
        assert all(entry["coalition"] is None for entry in kpis(key)["periods"])
    assert period(make_key("finance"), month)["coalition"]["points_issued"] == 620


def test_a_partner_key_never_sees_another_partners_name_or_figures(make_key, operator, month):
    response = make_key("partner", "aroma").get("/api/v1/kpis")
    assert response.status_code == 200
    assert "skyair" not in response.get_data(as_text=True).lower()


def test_a_partner_key_asking_for_another_partner_is_forbidden(make_key, operator, month):
    kpis(make_key("partner", "aroma"), 403, partner_id="skyair")


def test_a_partner_key_may_name_itself(make_key, operator, month):
    entry = period(make_key("partner", "aroma"), month, partner_id="aroma")
    assert [p["partner_id"] for p in entry["partners"]] == ["aroma"]


def test_a_finance_key_bound_to_a_partner_sees_that_partner_only(make_key, operator, month):
    entry = period(make_key("finance", "skyair"), month)
    assert [p["partner_id"] for p in entry["partners"]] == ["skyair"]


def test_an_unbound_finance_key_sees_every_partner(make_key, operator, month):
    entry = period(make_key("finance"), month)
    assert [p["partner_id"] for p in entry["partners"]] == ["aroma", "coalition", "skyair"]


def test_the_operator_may_narrow_to_one_partner(operator, month):
    entry = period(operator, month, partner_id="skyair")
    assert [p["partner_id"] for p in entry["partners"]] == ["skyair"]
    assert entry["coalition"]["points_issued"] == 620  # the totals stay coalition-wide


def test_an_unknown_partner_is_not_found(operator, month):
    kpis(operator, 404, partner_id="nobody")


def test_without_a_key_kpis_are_unauthorised(client):
    assert client.get("/api/v1/kpis").status_code == 401


# --- periods ----------------------------------------------------------------------------------


def test_a_malformed_period_id_is_invalid(operator, month):
    errors = kpis(operator, 422, period_id="2026-13")["errors"]
    assert errors == {"query": {"period_id": ["'2026-13' is not a monthly period id, such as 2026-10"]}}


def test_a_period_before_the_ledger_is_not_found(operator, month):
    kpis(operator, 404, period_id="1999-01")


def test_a_future_period_is_not_found(operator, month):
    kpis(operator, 404, period_id=f"{datetime.now(UTC).year + 1}-01")


def test_periods_out_of_range_are_invalid(operator):
    kpis(operator, 422, periods=0)
    kpis(operator, 422, periods=37)


@pytest.mark.parametrize("periods", ["٢", "+2"])
def test_periods_are_written_in_ascii_digits(operator, month, periods):
    assert len(kpis(operator, periods="2")["periods"]) == 2
    kpis(operator, 422, periods=periods)


# --- the OpenAPI document -----------------------------------------------------------------------


def test_the_openapi_document_gives_the_coalition_figures_or_null_and_nothing_else(client):
    """A partner key's KPIs have ``"coalition": null``, anyone else's the Figures. apispec
    wrote the null as a second branch ``{"type": "object", "nullable": true}``, which any
    object passes: a validator took ``{}`` there, and openapi-python-client made an empty
    class of it beside Figures (an integrator's probe)."""
    document = expect(client.get("/api/openapi.json"), 200)
    branches = document["components"]["schemas"]["PeriodKpis"]["properties"]["coalition"]["anyOf"]
    assert branches == [
        {"$ref": "#/components/schemas/Figures"},
        {"type": "object", "nullable": True, "enum": [None]},
    ]


def test_the_openapi_document_defines_every_figure(client):
    """An operator or an integrator reads the figures' meaning from the OpenAPI document:
    each says what it counts (the points ones less what reversals put back, the money ones
    when they are null), as docs/console.md defines it."""
    schemas = expect(client.get("/api/openapi.json"), 200)["components"]["schemas"]
    figures = schemas["Figures"]["properties"]
    assert [name for name, field in figures.items() if not field.get("description")] == []
    assert "less burn reversals" in figures["points_redeemed"]["description"]
    assert "less burn reversals" in figures["points_redeemed_here"]["description"]
    assert "no such rate" in figures["sales"]["description"]
    assert "half-even" in figures["average_purchase"]["description"]
