"""A rate the operator adds after postings it applies to (SPEC §5, §7).

A settlement values a burn at the redemption rate in force at its
``occurred_at``, and charges a fee at the fee rate in force at the issue's:
the rates as they stand when it is computed. Every test posts into the
previous calendar month, then adds a rate dated back into it.

Partners: ``skyair`` (EUR, earns 2 points per EUR) and ``aroma`` (EUR, earns
1 point per EUR). Rates from 200 days ago: redemption 0.01 EUR per point and
fee 0.001 EUR per point issued, both coalition-wide.
"""

import pytest
from sqlalchemy import event

from coalition.db import repricing_sums
from tests.conftest import days_ago
from tests.plans import sent
from tests.e2e.settlement_world import (
    add_partner,
    add_rate,
    at,
    burn,
    close,
    earn,
    expect,
    partner_entry,
    post,
    previous_month,
)


@pytest.fixture
def month(operator):
    start, _, period_id = previous_month()
    add_partner(operator, "skyair", "SkyAir", "travel", "EUR")
    add_partner(operator, "aroma", "Aroma", "cafe", "EUR")
    add_rate(operator, "earn", "2", partner_id="skyair")
    add_rate(operator, "earn", "1", partner_id="aroma")
    add_rate(operator, "redemption", "0.01")
    add_rate(operator, "fee", "0.001")
    return start, period_id


def _settlement(operator, period_id: str) -> dict:
    return expect(operator.get(f"/api/v1/settlements/{period_id}"), 200)


def _line(settlement: dict, issuer: str, redeemer: str) -> tuple[int, str]:
    line = next(line for line in settlement["pair_lines"]
                if (line["issuer_id"], line["redeemer_id"]) == (issuer, redeemer))
    return line["points"], line["value"]


def _fees(settlement: dict) -> dict[str, str]:
    return {entry["partner_id"]: entry["fees"] for entry in settlement["partners"]}


def test_a_redemption_rate_added_late_values_the_burns_dated_after_it(operator, month):
    """m1 earns 100.00 EUR at skyair on day 2: 200 points. It burns 50 at aroma on day 5
    and 30 on day 15. The operator then adds aroma's own redemption rate of 0.02 from
    day 10: skyair → aroma = 50 × 0.01 + 30 × 0.02 = 0.50 + 0.60 = 1.10 (it was 0.80)."""
    start, period_id = month
    earn(operator, "e1", "skyair", "m1", at(start, 2), "100.00", "EUR")
    burn(operator, "b1", "aroma", "m1", at(start, 5), 50)
    late = burn(operator, "b2", "aroma", "m1", at(start, 15), 30)
    assert _line(_settlement(operator, period_id), "skyair", "aroma") == (80, "0.80")
    rate = add_rate(operator, "redemption", "0.02", partner_id="aroma", effective_from=at(start, 10))
    assert _line(_settlement(operator, period_id), "skyair", "aroma") == (80, "1.10")
    closed = close(operator, period_id)
    assert _line(closed, "skyair", "aroma") == (80, "1.10")
    entries = {entry["partner_id"]: entry for entry in closed["partners"]}
    assert (entries["aroma"]["receivable"], entries["skyair"]["payable"]) == ("1.10", "1.10")
    # the posting still says what was in force when it was posted
    again = expect(operator.get(f"/api/v1/transactions/{late['id']}"), 200)
    assert rate["id"] not in again["rate_ids"]


def test_a_burn_reversal_follows_its_burn_to_the_rate_added_late(operator, month):
    """200 points at skyair (100.00 EUR × 2); 30 burnt at aroma on day 15; 10 of them
    given back on day 16 before the rate of 0.02 from day 10 is added, 5 more after it:
    (30 − 10 − 5) × 0.02 = 0.30. Each reversal is valued at its burn's rate in force now,
    whatever the rate recorded when it was posted (0.01 for both). Each names the rate it
    is valued at as it stood when it was posted: the second named the burn's old one."""
    start, period_id = month
    earn(operator, "e1", "skyair", "m1", at(start, 2), "100.00", "EUR")
    burnt = burn(operator, "b1", "aroma", "m1", at(start, 15), 30)
    before = post(operator, external_id="r1", type="burn_reversal", partner_id="aroma",
                  original_external_id="b1", points=10, occurred_at=at(start, 16))
    rate = add_rate(operator, "redemption", "0.02", partner_id="aroma", effective_from=at(start, 10))
    after = post(operator, external_id="r2", type="burn_reversal", partner_id="aroma",
                 original_external_id="b1", points=5, occurred_at=at(start, 17))
    assert _line(_settlement(operator, period_id), "skyair", "aroma") == (15, "0.30")
    assert (before["rate_ids"], after["rate_ids"]) == (burnt["rate_ids"], [rate["id"]])


def test_a_fee_rate_added_late_charges_the_points_issued_after_it(operator, month):
    """skyair issues 200 points on day 2 (100.00 EUR × 2) and 100 on day 12 (50.00 × 2).
    The operator adds skyair's own fee of 0.005 from day 10: 200 × 0.001 + 100 × 0.005 =
    0.20 + 0.50 = 0.70 (it was 0.30). A return of 25.00 of the day-12 purchase, posted
    after, takes back floor(100 × 25.00 / 50.00) = 50 points and recovers 50 × 0.005 =
    0.25, at its earn's rate in force now: 0.45. The return names the rates its points
    were earned at and that fee rate; it named the earn's old fee rate."""
    start, period_id = month
    earn(operator, "e1", "skyair", "m1", at(start, 2), "100.00", "EUR")
    earned = earn(operator, "e2", "skyair", "m1", at(start, 12), "50.00", "EUR")
    assert _fees(_settlement(operator, period_id))["skyair"] == "0.30"
    rate = add_rate(operator, "fee", "0.005", partner_id="skyair", effective_from=at(start, 10))
    assert _fees(_settlement(operator, period_id))["skyair"] == "0.70"
    returned = post(operator, external_id="ret", type="earn_reversal", partner_id="skyair",
                    original_external_id="e2", amount="25.00", occurred_at=at(start, 13))
    assert _fees(close(operator, period_id))["skyair"] == "0.45"
    earn_rate, old_fee = earned["rate_ids"]  # skyair's 2 points per EUR, the fee of 0.001
    assert returned["rate_ids"] == [earn_rate, rate["id"]] and old_fee != rate["id"]


def test_the_openapi_document_says_a_reversal_names_the_rate_in_force_when_it_is_posted(client):
    """As the two tests above hold: a reversal posted after a rate added late names that
    rate, not its original's; the document said "a reversal has its original's"."""
    described = client.get("/api/openapi.json").get_json()["components"]["schemas"]["TransactionOut"]
    rate_ids = described["properties"]["rate_ids"]["description"]
    assert "a reversal has its original's, but for the fee or redemption rate then in force" in rate_ids
    assert "added late" in rate_ids


def test_a_fee_rate_added_late_where_there_was_none_charges_it(operator):
    """No fee rate at all when skyair issued 300 points (150.00 EUR × 2) on day 3; one of
    0.002 coalition-wide from day 1 is added later: 300 × 0.002 = 0.60. The operator's
    own bonus of 40 points on day 4 pays no fee to itself."""
    start, _, period_id = previous_month()
    add_partner(operator, "skyair", "SkyAir", "travel", "EUR")
    add_rate(operator, "earn", "2", partner_id="skyair")
    earn(operator, "e1", "skyair", "m1", at(start, 3), "150.00", "EUR")
    post(operator, external_id="g1", type="bonus", partner_id="coalition", member_id="m1",
         points=40, reason="goodwill", occurred_at=at(start, 4))
    add_rate(operator, "fee", "0.002", effective_from=at(start, 1))
    assert _fees(_settlement(operator, period_id)) == {"skyair": "0.60", "coalition": "0.00"}


def test_a_rate_dated_after_the_postings_changes_none_of_them(operator, month):
    """The burn on day 5 and the issue on day 2 precede rates from day 6: 40 × 0.01 = 0.40,
    and fees 200 × 0.001 = 0.20, as before the rates were added."""
    start, period_id = month
    earn(operator, "e1", "skyair", "m1", at(start, 2), "100.00", "EUR")
    burn(operator, "b1", "aroma", "m1", at(start, 5), 40)
    add_rate(operator, "redemption", "0.02", effective_from=at(start, 6))
    add_rate(operator, "fee", "0.005", effective_from=at(start, 6))
    settlement = _settlement(operator, period_id)
    assert (_line(settlement, "skyair", "aroma"), _fees(settlement)["skyair"]) == ((40, "0.40"), "0.20")


def test_a_reversal_in_a_later_period_follows_its_burn_repriced_in_a_closed_one(operator, month):
    """50 points burnt at aroma on day 25; aroma's own 0.02 from day 20 added late: the
    month closes with skyair → aroma 50 × 0.02 = 1.00. In this month, 10 of them given
    back are valued at the burn's rate in force, 0.02: −10 × 0.02 = −0.20 (−0.10 at the
    0.01 the burn and the reversal recorded)."""
    start, period_id = month
    earn(operator, "e1", "skyair", "m1", at(start, 2), "100.00", "EUR")
    burn(operator, "b1", "aroma", "m1", at(start, 25), 50)
    add_rate(operator, "redemption", "0.02", partner_id="aroma", effective_from=at(start, 20))
    assert _line(close(operator, period_id), "skyair", "aroma") == (50, "1.00")
    reversal = post(operator, external_id="r1", type="burn_reversal", partner_id="aroma",
                    original_external_id="b1", points=10, occurred_at=days_ago(0.001))
    assert _line(_settlement(operator, reversal["period_id"]), "skyair", "aroma") == (-10, "-0.20")


def test_a_reversal_follows_its_burn_repriced_by_a_rate_whose_window_is_all_in_an_earlier_period(operator, month):
    """50 points burnt at aroma on day 25; 10 of them given back this month; then aroma's
    own 0.02 from day 20 to day 26 is added: its window holds none of this month's own
    postings, but the reversal's burn. Last month skyair → aroma 50 × 0.02 = 1.00; this
    month −10 × 0.02 = −0.20 (−0.10 at the 0.01 both recorded)."""
    start, period_id = month
    earn(operator, "e1", "skyair", "m1", at(start, 2), "100.00", "EUR")
    burn(operator, "b1", "aroma", "m1", at(start, 25), 50)
    reversal = post(operator, external_id="r1", type="burn_reversal", partner_id="aroma",
                    original_external_id="b1", points=10, occurred_at=days_ago(0.001))
    add_rate(operator, "redemption", "0.02", partner_id="aroma", effective_from=at(start, 20),
             effective_to=at(start, 26))
    assert _line(_settlement(operator, period_id), "skyair", "aroma") == (50, "1.00")
    assert _line(_settlement(operator, reversal["period_id"]), "skyair", "aroma") == (-10, "-0.20")


def test_a_backdated_earn_is_charged_the_fee_rate_in_force_at_its_occurred_at(operator, month):
    """skyair's own fee of 0.005 EUR a point starts at the first instant of this month,
    and is added before anything is posted (so nothing is re-priced: it is no rate added
    late). m1 then earns 100.00 EUR at skyair on day 3 of last month, posted now:
    100.00 × 2 = 200 points, charged at the fee in force at the earn's occurred_at, the
    coalition-wide 0.001 (docs/decisions.md, Rates: "The fee rate is taken when the
    points are issued (at the earn's occurred_at)"), not at the one in force when it is
    posted: fees = 200 × 0.001 = 0.20 EUR (at 0.005 they would be 1.00)."""
    start, period_id = month
    _, end, _ = previous_month()
    later = add_rate(operator, "fee", "0.005", partner_id="skyair", effective_from=end.isoformat())
    earned = earn(operator, "e1", "skyair", "m1", at(start, 3), "100.00", "EUR")
    assert earned["points"] == 200 and later["id"] not in earned["rate_ids"]
    assert _fees(close(operator, period_id))["skyair"] == "0.20"


def test_a_return_recovers_the_fee_at_the_rate_its_earn_was_charged(operator, month):
    """skyair's own fee of 0.005 EUR a point starts on day 10 of last month, added before
    anything is posted (no rate added late). m1 earns 100.00 EUR at skyair on day 3:
    200 points, charged at the coalition-wide 0.001 in force then. On day 12 it returns
    50.00 EUR: floor(200 × 50.00 / 100.00) = 100 points recovered, at the earn's fee rate
    (docs/decisions.md, Rates: "a return recovers fees at that same rate"), not at the
    0.005 in force on day 12. Fees = (200 − 100) × 0.001 = 0.10 EUR, one fee line
    (were the return valued at 0.005: 0.200 − 0.500 = −0.30)."""
    start, period_id = month
    add_rate(operator, "fee", "0.005", partner_id="skyair", effective_from=at(start, 10, 0))
    assert earn(operator, "e1", "skyair", "m1", at(start, 3), "100.00", "EUR")["points"] == 200
    returned = post(operator, external_id="r1", type="earn_reversal", partner_id="skyair",
                    original_external_id="e1", occurred_at=at(start, 12), amount="50.00",
                    currency="EUR")
    assert (returned["points"], returned["shortfall_points"]) == (-100, 0)
    settlement = close(operator, period_id)
    skyair = partner_entry(settlement, "skyair")
    assert [(line["fee_rate"], line["points"]) for line in skyair["fee_lines"]] == [("0.001", 100)]
    assert _fees(settlement)["skyair"] == "0.10"


def test_each_burn_is_valued_at_the_rate_in_force_where_it_is_dated_among_rates_added_late(operator, month):
    """200 points at skyair (100.00 EUR × 2); burnt at aroma: 30 on day 12, 10 on day 14
    at 21:00, 20 on day 16, all recorded at 0.01. Then aroma's own 0.02 from day 10, and
    0.03 from day 14 to day 15: day 12 is at 0.02, day 14 at 0.03 (the later start wins),
    and day 16 at 0.02 again, 0.03 having ended. 30 × 0.02 + 10 × 0.03 + 20 × 0.02 =
    0.60 + 0.30 + 0.40 = 1.30 (it was 60 × 0.01 = 0.60)."""
    start, period_id = month
    earn(operator, "e1", "skyair", "m1", at(start, 2), "100.00", "EUR")
    burn(operator, "b1", "aroma", "m1", at(start, 12), 30)
    burn(operator, "b2", "aroma", "m1", at(start, 14, hour=21), 10)
    burn(operator, "b3", "aroma", "m1", at(start, 16), 20)
    add_rate(operator, "redemption", "0.02", partner_id="aroma", effective_from=at(start, 10))
    add_rate(operator, "redemption", "0.03", partner_id="aroma", effective_from=at(start, 14),
             effective_to=at(start, 15))
    assert _line(_settlement(operator, period_id), "skyair", "aroma") == (60, "1.30")
    assert _line(close(operator, period_id), "skyair", "aroma") == (60, "1.30")


def test_a_burn_dated_at_the_instant_a_rate_added_late_begins_or_ends_is_valued_as_from_then(
        operator, month):
    """200 points at skyair (100.00 EUR × 2); burnt at aroma, recorded at 0.01: 30 at the
    very instant of day 10 at which aroma's own 0.02, added after, begins, and 10 at that
    of day 15 at which its 0.03 from day 14 ends. A rate is in force from its
    ``effective_from`` (SPEC §5) and not at its ``effective_to`` (decisions.md), so both
    are at 0.02: 30 × 0.02 + 10 × 0.02 = 0.60 + 0.20 = 0.80 (it was 40 × 0.01 = 0.40)."""
    start, period_id = month
    earn(operator, "e1", "skyair", "m1", at(start, 2), "100.00", "EUR")
    burn(operator, "b1", "aroma", "m1", at(start, 10), 30)
    burn(operator, "b2", "aroma", "m1", at(start, 15), 10)
    add_rate(operator, "redemption", "0.02", partner_id="aroma", effective_from=at(start, 10))
    add_rate(operator, "redemption", "0.03", partner_id="aroma", effective_from=at(start, 14),
             effective_to=at(start, 15))
    assert _line(_settlement(operator, period_id), "skyair", "aroma") == (40, "0.80")
    assert _line(close(operator, period_id), "skyair", "aroma") == (40, "0.80")


def test_a_burn_after_two_rates_added_late_have_ended_is_dated_from_the_later_end(operator, month):
    """200 points at skyair (100.00 EUR × 2); 10 burnt at aroma on day 15, recorded at
    0.01. Then aroma's own 0.02 from day 10; 0.03 from day 11 to day 13; 0.05 from day 11
    at 12:00 to day 14. From day 13 to 14 the 0.05 is in force (the later start), from
    day 14 on the 0.02 again: the burn's stretch begins at day 14, the later end, so
    10 × 0.02 = 0.20 (it was 10 × 0.01 = 0.10; from day 13 it would be 10 × 0.05 = 0.50)."""
    start, period_id = month
    earn(operator, "e1", "skyair", "m1", at(start, 2), "100.00", "EUR")
    burn(operator, "b1", "aroma", "m1", at(start, 15), 10)
    add_rate(operator, "redemption", "0.02", partner_id="aroma", effective_from=at(start, 10))
    add_rate(operator, "redemption", "0.03", partner_id="aroma", effective_from=at(start, 11),
             effective_to=at(start, 13))
    add_rate(operator, "redemption", "0.05", partner_id="aroma", effective_from=at(start, 11, hour=12),
             effective_to=at(start, 14))
    assert _line(_settlement(operator, period_id), "skyair", "aroma") == (10, "0.20")


def test_a_coalition_with_more_than_a_thousand_rates_added_late_is_settled(operator, month):
    """Every rate added while the coalition has postings can re-price some (a window), and
    a coalition's windows add up over its life: with one condition a window, joined by OR,
    SQLite refused the settlement's expression past a depth of 1,000, and the draft and
    the close were 500. 200 points at skyair (100.00 EUR × 2); 50 burnt at aroma on day 5,
    30 on day 15. Then aroma's redemption rate of 0.03 from day 4, and 1,100 versions of
    0.02, from day 10 09:00 a minute apart: 50 × 0.03 + 30 × 0.02 = 1.50 + 0.60 = 2.10."""
    start, period_id = month
    earn(operator, "e1", "skyair", "m1", at(start, 2), "100.00", "EUR")
    burn(operator, "b1", "aroma", "m1", at(start, 5), 50)
    burn(operator, "b2", "aroma", "m1", at(start, 15), 30)
    add_rate(operator, "redemption", "0.03", partner_id="aroma", effective_from=at(start, 4))
    for minute in range(1100):
        add_rate(operator, "redemption", "0.02", partner_id="aroma", effective_from=at(start, 10, minute=minute))
    assert _line(_settlement(operator, period_id), "skyair", "aroma") == (80, "2.10")
    assert _line(close(operator, period_id), "skyair", "aroma") == (80, "2.10")


def test_a_settlement_sends_no_value_for_each_rate_added_late(operator, month, database):
    """The windows of the rates added late used to be sent with the settlement's query,
    four values each: past about 6,500 of them PostgreSQL refused it (65,535 values at
    most) and every draft and close was 503. A draft now sends as many values with 41
    such rates as with one. (A rate added late in each of the two kinds that re-price:
    redemption and fee.)"""
    start, period_id = month
    earn(operator, "e1", "skyair", "m1", at(start, 2), "100.00", "EUR")
    burn(operator, "b1", "aroma", "m1", at(start, 15), 30)
    for kind in ("redemption", "fee"):
        add_rate(operator, kind, "0.02", partner_id="aroma", effective_from=at(start, 10))
    few, _ = _values_sent(operator, database, period_id)
    for minute in range(1, 41):
        for kind in ("redemption", "fee"):
            add_rate(operator, kind, "0.02", partner_id="aroma", effective_from=at(start, 10, minute=minute))
    assert _values_sent(operator, database, period_id)[0] == few


def _values_sent(operator, database, period_id: str) -> tuple[int, dict]:
    """How many values a draft of the period sends, and the draft; after a draft that
    read the catalog again, with the rates added."""
    _settlement(operator, period_id)
    with sent(database.engine) as statements:
        settlement = _settlement(operator, period_id)
    return sum(len(parameters or ()) for _, parameters in statements), settlement


def test_a_settlement_sends_no_value_for_each_partner_past_those_it_names(operator, month, database, monkeypatch):
    """The period's postings a rate added late may re-price were asked only of the partners
    whose rates' windows are in it, each named a value: 65,600 partners with a rate added
    late made a draft PostgreSQL refused (65,535 values at most), 503, and SQLite would past
    250,000. Past PARTNERS_NAMED (here 2) every partner's postings are asked: a draft
    sends as many values for 6 such partners as for 3, and still re-prices the burn:
    30 points at aroma's 0.02 = 0.60 (it was 0.30 at 0.01)."""
    monkeypatch.setattr(repricing_sums, "PARTNERS_NAMED", 2)
    start, period_id = month
    earn(operator, "e1", "skyair", "m1", at(start, 2), "100.00", "EUR")
    burn(operator, "b1", "aroma", "m1", at(start, 15), 30)

    def late_rate(partner_id: str) -> None:
        if partner_id not in ("skyair", "aroma"):
            add_partner(operator, partner_id, partner_id.title(), "shop", "EUR")
        add_rate(operator, "redemption", "0.02", partner_id=partner_id, effective_from=at(start, 10))

    for partner_id in ("aroma", "skyair", "idle-1"):
        late_rate(partner_id)
    few, settlement = _values_sent(operator, database, period_id)
    assert _line(settlement, "skyair", "aroma") == (30, "0.60")
    for partner_id in ("idle-2", "idle-3", "idle-4"):
        late_rate(partner_id)
    many, settlement = _values_sent(operator, database, period_id)
    assert _line(settlement, "skyair", "aroma") == (30, "0.60")
    assert many == few


def test_a_settlement_asks_the_rates_added_after_each_posting_by_their_index(operator, month, database):
    """For each posting, whether a rate added after it applies is asked of the index of the
    rates by partner and when each was added (migration 0025): a few rates. SQLite plans
    without statistics, and took the index of the rates by start instead, which holds
    every rate of the kind begun before the posting: nearly all of them, for each posting
    of the period. Where its stretch begins is asked of the rates by start and by end."""
    start, period_id = month
    earn(operator, "e1", "skyair", "m1", at(start, 2), "100.00", "EUR")
    burn(operator, "b1", "aroma", "m1", at(start, 15), 30)
    add_rate(operator, "redemption", "0.02", partner_id="aroma", effective_from=at(start, 10))
    with sent(database.engine) as statements:
        _settlement(operator, period_id)
    (repricing,) = [(sql, parameters) for sql, parameters in statements if "added_after" in sql]
    if database.engine.dialect.name != "sqlite":
        return  # PostgreSQL plans by its statistics
    with database.engine.connect() as connection:
        plan = [row[3] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {repricing[0]}", repricing[1])]
    def searched(alias: str) -> set[str]:
        return {step.split(" INDEX ")[-1].split()[0] for step in plan if f"SEARCH {alias} " in step}

    assert searched("added_after") == {"ix_rates_added_after"}
    assert (searched("began"), searched("ended")) == ({"ix_rates_begin"}, {"ix_rates_end"})


@pytest.mark.postgres
def test_a_settlement_re_prices_without_postgresqls_jit_and_runs_the_rest_as_the_server_says(
        operator, month, database):
    """A check of a rate's window for each posting is costed high, and on a month of
    postings PostgreSQL spent longer compiling the re-pricing query than running it
    (performance-log.md): the two re-pricing statements run with ``jit`` off, and the
    settlement's other statements, before them and after, as the server is set."""
    start, period_id = month
    earn(operator, "e1", "skyair", "m1", at(start, 2), "100.00", "EUR")
    burn(operator, "b1", "aroma", "m1", at(start, 15), 30)
    for kind in ("redemption", "fee"):
        add_rate(operator, kind, "0.02", partner_id="aroma", effective_from=at(start, 1))
    ran_with = []

    def jit_of(connection, cursor, statement, *_):
        if not statement.startswith(("SET LOCAL jit", "SHOW jit")):
            ran_with.append(("added_after" in statement, cursor.connection.execute("SHOW jit").fetchone()[0]))

    with database.engine.connect() as connection:
        server = connection.exec_driver_sql("SHOW jit").scalar()
    event.listen(database.engine, "after_cursor_execute", jit_of)
    try:
        _settlement(operator, period_id)
    finally:
        event.remove(database.engine, "after_cursor_execute", jit_of)
    repricing = [setting for asked, setting in ran_with if asked]
    others = [setting for asked, setting in ran_with if not asked]
    assert repricing == ["off", "off"]
    assert len(others) > 2 and set(others) == {server}
