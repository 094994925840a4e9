"""SPEC §6: posting, reading and listing points transactions.

Standard coalition (tests/e2e/helpers.py): aroma earns 0.1 point per RUB,
skyair 2 points per EUR, redemption 0.01 EUR per point coalition-wide.
"""

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest

from coalition.api.transactions import TRANSACTION_IN
from coalition.domain import lots
from coalition.services.ledger import HANDLERS, request_hash
from tests.conftest import Caller, days_ago
from tests.e2e.helpers import (
    add_partner,
    add_rate,
    at,
    balance,
    bonus,
    burn,
    burn_reversal,
    earn,
    earn_reversal,
    expect,
    list_all,
    moment,
    post,
    setup_coalition,
    walk_pages,
)


def test_every_postable_type_has_its_fields_and_its_handler():
    """SPEC §6's table: five types a partner posts; expiry only the job writes."""
    assert lots.POSTABLE == ("earn", "bonus", "burn", "earn_reversal", "burn_reversal")
    assert set(lots.TYPE_FIELDS) == set(HANDLERS) == set(lots.POSTABLE)
    assert set(lots.TYPES) - set(lots.POSTABLE) == {"expiry"}


def assert_422(response, reason: str | None = None):
    assert response.status_code == 422, response.get_json()
    body = response.get_json()
    assert body["code"] == 422
    if reason is not None:
        assert body["reason"] == reason, body


def allocations(body) -> list[tuple[int, str, int]]:
    return sorted((a["lot_id"], a["issuer_id"], a["points"]) for a in body["allocations"])


# --- earn: the formula --------------------------------------------------------


def test_earn_is_floor_of_amount_times_earn_times_promo_plus_highest_threshold(coalition):
    promo = add_rate(coalition, "promo", "2", partner_id="aroma", effective_from=days_ago(30), effective_to=days_ago(-30))
    add_rate(coalition, "threshold", "20", partner_id="aroma", min_amount="500.00")
    high = add_rate(coalition, "threshold", "50", partner_id="aroma", min_amount="1000.00")
    add_rate(coalition, "threshold", "90", partner_id="aroma", min_amount="2000.00")
    body = expect(earn(coalition, "t1", "m1", "1234.56"))
    # floor(1234.56 × 0.1 × 2) = floor(246.912) = 246; thresholds reached: 500 (20) and 1000 (50),
    # not 2000; the highest reached applies → 246 + 50 = 296
    assert body["points"] == 296
    assert promo["id"] in body["rate_ids"]
    assert high["id"] in body["rate_ids"]


def test_earn_floors_once_on_the_exact_product(coalition):
    # 99.99 × 0.1 = 9.999 → floor 9 (never rounded up to 10)
    assert expect(earn(coalition, "t1", "m1", "99.99"))["points"] == 9


def test_earn_never_rounds_an_intermediate_product(coalition):
    add_rate(coalition, "promo", "1.5", partner_id="aroma", effective_from=days_ago(30), effective_to=days_ago(-30))
    # 33.33 × 0.1 × 1.5 = 4.9995 exactly → floor 4; rounding the product to the minor unit
    # first (5.00) and then flooring would give 5
    assert expect(earn(coalition, "t1", "m1", "33.33"))["points"] == 4


def test_earn_threshold_applies_when_amount_equals_min_amount(coalition):
    add_rate(coalition, "threshold", "50", partner_id="aroma", min_amount="1000.00")
    # 1000.00 ≥ 1000.00: floor(1000.00 × 0.1) + 50 = 100 + 50 = 150
    assert expect(earn(coalition, "t1", "m1", "1000.00"))["points"] == 150


def test_earn_threshold_does_not_apply_just_below_min_amount(coalition):
    add_rate(coalition, "threshold", "50", partner_id="aroma", min_amount="1000.00")
    # 999.99 < 1000.00: floor(999.99 × 0.1) = floor(99.999) = 99, no threshold
    assert expect(earn(coalition, "t1", "m1", "999.99"))["points"] == 99


def test_earn_promo_outside_its_window_does_not_apply(coalition):
    add_rate(coalition, "promo", "2", partner_id="aroma", effective_from=days_ago(30), effective_to=days_ago(20))
    # occurred 10 days ago, after the promo ended: floor(500.00 × 0.1) = 50
    assert expect(earn(coalition, "t1", "m1", "500.00", occurred_at=days_ago(10)))["points"] == 50


def test_earn_promo_inside_its_window_applies(coalition):
    add_rate(coalition, "promo", "2", partner_id="aroma", effective_from=days_ago(30), effective_to=days_ago(20))
    # occurred 25 days ago, inside the promo: floor(500.00 × 0.1 × 2) = 100
    assert expect(earn(coalition, "t1", "m1", "500.00", occurred_at=days_ago(25)))["points"] == 100


def test_category_specific_earn_rate_beats_the_category_less_one(coalition):
    add_rate(coalition, "earn", "0.2", partner_id="aroma", category="coffee")
    # coffee: floor(99.99 × 0.2) = floor(19.998) = 19; tea falls back to 0.1: floor(9.999) = 9
    assert expect(earn(coalition, "t1", "m1", "99.99", category="coffee"))["points"] == 19
    assert expect(earn(coalition, "t2", "m1", "99.99", category="tea"))["points"] == 9
    # the till's spelling of the operator's category is the same category: 19 again, not 9
    assert expect(earn(coalition, "t3", "m1", "99.99", category="Coffee "))["points"] == 19


@pytest.mark.parametrize("category", ["", "   ", "\u200b"])
def test_a_blank_category_is_422_and_writes_nothing(coalition, category):
    response = earn(coalition, "t1", "m1", "99.99", category=category)
    assert response.status_code == 422
    assert "category" in response.get_json()["errors"]["json"]
    assert expect(coalition.get("/api/v1/transactions"), 200)["items"] == []


@pytest.mark.parametrize("blank", ["   ", "\n", "\t", "\u200b"], ids=["spaces", "newline", "tab", "zero-width"])
@pytest.mark.parametrize("field", ["external_id", "member_id"])
def test_a_blank_id_is_422_naming_it_and_writes_nothing(coalition, field, blank):
    """A till that sends an id of spaces or invisible characters alone has lost the real
    one: a member " " would collect every such till's points."""
    body = {"external_id": "t1", "type": "earn", "partner_id": "aroma", "member_id": "m1",
            "occurred_at": days_ago(1), "amount": "99.99", "currency": "RUB", field: blank}
    response = coalition.post("/api/v1/transactions", json=body)
    assert response.status_code == 422
    assert response.get_json()["errors"]["json"] == {field: ["must not be blank"]}
    assert expect(coalition.get("/api/v1/transactions"), 200)["items"] == []


@pytest.mark.parametrize("member", [".", ".."])
def test_a_member_id_a_url_cannot_name_is_422_and_writes_nothing(coalition, member):
    """Clients and browsers take /members/../balance as a step up the path before sending
    it (to /api/v1/balance): such a member's points could never be looked up."""
    response = earn(coalition, "t1", member, "99.99")
    assert response.status_code == 422
    assert response.get_json()["errors"]["json"] == {"member_id": [
        f"{member!r} cannot be a member id: /members/{member}/balance is read as a step in the path"]}
    assert expect(coalition.get("/api/v1/transactions"), 200)["items"] == []
    # three dots are no step: a segment like any other
    assert expect(earn(coalition, "t2", "...", "99.99"))["member_id"] == "..."
    assert expect(coalition.get("/api/v1/members/.../balance"), 200)["lifetime_earned"] == 9


@pytest.mark.parametrize("reason", ["   ", "\n", "\u200b"], ids=["spaces", "newline", "zero-width"])
def test_a_bonus_whose_reason_shows_nothing_is_422_and_writes_nothing(coalition, reason):
    """The reason is what a member's history says the points were for (SPEC §6)."""
    response = bonus(coalition, "b1", "m1", 50, reason=reason)
    assert response.status_code == 422
    assert response.get_json()["errors"]["json"] == {"reason": ["must not be blank"]}
    assert expect(coalition.get("/api/v1/transactions"), 200)["items"] == []


@pytest.mark.parametrize("field", ["category", "reason"])
def test_a_category_or_reason_with_a_control_character_is_422_naming_it_and_writes_nothing(coalition, field):
    """People read them in statements, CSVs and terminals, where an escape would act."""
    kind = "bonus" if field == "reason" else "earn"
    body = {"external_id": "t1", "type": kind, "partner_id": "aroma", "member_id": "m1", "occurred_at": days_ago(1)}
    body |= {"points": 50, "reason": "goodwill"} if kind == "bonus" else {"amount": "99.99", "currency": "RUB"}
    body[field] = "card\x1b[31m4411"
    response = coalition.post("/api/v1/transactions", json=body)
    assert response.status_code == 422
    assert response.get_json()["errors"]["json"] == {field: ["must not contain control characters: U+001B at character 5"]}
    assert expect(coalition.get("/api/v1/transactions"), 200)["items"] == []


def test_ids_are_opaque_a_card_readers_group_separator_included(coalition):
    """A GS1 card's fields are parted by the group separator (U+001D) its reader sends
    with them: the id is what the reader read, and a return names its earn by it."""
    member, external_id = "0104012345\x1d21ABC", "till-7\x1d000123"
    assert expect(earn(coalition, external_id, member, "99.99"))["member_id"] == member
    assert expect(earn_reversal(coalition, "r1", external_id, amount="99.99"))["points"] == -9
    found = expect(coalition.get(f"/api/v1/members/{quote(member)}/balance"), 200)
    assert (found["member_id"], found["lifetime_earned"]) == (member, 0)  # 9 earned, 9 taken back


def test_a_bonus_reason_may_run_over_lines(coalition):
    reason = "Goodwill: flight delayed\r\n\tticket 123"
    assert expect(bonus(coalition, "b1", "m1", 50, reason=reason))["reason"] == reason


def test_a_return_naming_a_blank_original_is_422_naming_it(coalition):
    expect(earn(coalition, "t1", "m1", "99.99"))
    response = earn_reversal(coalition, "r1", "   ", amount="10.00")
    assert response.status_code == 422
    assert response.get_json()["errors"]["json"] == {"original_external_id": ["must not be blank"]}


def test_earn_response_has_the_documented_fields(coalition):
    occurred = days_ago(3)
    body = expect(earn(coalition, "t1", "m1", "350.00", category="coffee", occurred_at=occurred))
    assert body["id"]
    assert body["recorded_at"]
    assert body["type"] == "earn"
    assert body["partner_id"] == "aroma"
    assert body["member_id"] == "m1"
    assert body["amount"] == "350.00"
    assert body["currency"] == "RUB"
    assert body["points"] == 35  # 350.00 × 0.1
    assert body["shortfall_points"] == 0
    assert body["late"] is False
    assert body["allocations"] == []
    assert isinstance(body["rate_ids"], list) and body["rate_ids"]
    # monthly periods in UTC: the period id is the year and month of occurred_at in UTC
    occurred_utc = at(occurred).astimezone(UTC)
    assert body["period_id"] == f"{occurred_utc.year:04d}-{occurred_utc.month:02d}"
    # hold_days 0: available at occurred_at; expires at occurred_at + 365 days
    assert at(body["available_at"]) == at(occurred)
    assert at(body["expires_at"]) == at(occurred) + timedelta(days=365)


def test_earn_amount_with_one_decimal_is_normalised_to_the_currency_minor_unit(coalition):
    # "350.1" RUB is 350.10: floor(350.1 × 0.1) = 35
    body = expect(earn(coalition, "t1", "m1", "350.1"))
    assert body["amount"] == "350.10"
    assert body["points"] == 35


def test_earn_occurred_at_with_a_non_utc_offset_is_the_same_instant(coalition):
    local = (datetime.now(UTC) - timedelta(days=3)).replace(microsecond=0).astimezone(ZoneInfo("Europe/Moscow"))
    body = expect(earn(coalition, "t1", "m1", "100.00", occurred_at=local.isoformat()))
    assert at(body["occurred_at"]) == local


# --- earn: currencies ---------------------------------------------------------


@pytest.fixture
def yen_and_dinar(coalition):
    add_partner(coalition, "sushi", "JPY", "cafe")
    add_partner(coalition, "kuwait", "KWD", "shop")
    add_rate(coalition, "earn", "0.01", partner_id="sushi")
    add_rate(coalition, "earn", "10", partner_id="kuwait")
    return coalition


def test_earn_in_yen_with_whole_amount(yen_and_dinar):
    # 1500 JPY × 0.01 = 15
    body = expect(earn(yen_and_dinar, "t1", "m1", "1500", partner_id="sushi"))
    assert body["points"] == 15
    assert body["amount"] == "1500"


@pytest.mark.parametrize("amount", ["1500.5", "1500.00", "1500.0"])
def test_earn_in_yen_with_decimals_is_422(yen_and_dinar, amount):
    # JPY has 0 decimals (SPEC §3)
    assert_422(earn(yen_and_dinar, "t1", "m1", amount, partner_id="sushi"))


def test_earn_in_dinar_with_three_decimals(yen_and_dinar):
    # 12.345 KWD × 10 = 123.45 → floor 123
    body = expect(earn(yen_and_dinar, "t1", "m1", "12.345", partner_id="kuwait"))
    assert body["points"] == 123
    assert body["amount"] == "12.345"


def test_earn_in_dinar_with_four_decimals_is_422(yen_and_dinar):
    assert_422(earn(yen_and_dinar, "t1", "m1", "12.3456", partner_id="kuwait"))


def test_earn_in_forints_takes_isos_two_decimals_not_cldrs_none(coalition):
    # ISO 4217 gives HUF 2 decimals (CLDR, in Babel, 0): 1500.50 HUF × 0.1 = 150.05 → 150
    add_partner(coalition, "budapest", "HUF", "shop")
    add_rate(coalition, "earn", "0.1", partner_id="budapest")

    def earn_forints(external_id, amount):
        return post(coalition, external_id=external_id, type="earn", partner_id="budapest",
                    member_id="m1", occurred_at=days_ago(1), amount=amount, currency="HUF")

    body = expect(earn_forints("t1", "1500.50"))
    assert (body["points"], body["amount"]) == (150, "1500.50")
    assert_422(earn_forints("t2", "1500.505"))


def test_earn_in_roubles_with_three_decimals_is_422(coalition):
    assert_422(earn(coalition, "t1", "m1", "350.001"))


def test_earn_in_a_currency_other_than_the_partners_is_422(coalition):
    assert_422(earn(coalition, "t1", "m1", "100.00", currency="EUR"))


def test_a_currency_other_than_the_partners_is_422_on_every_type(coalition):
    # aroma transacts in RUB, the coalition partner in EUR (the base currency)
    expect(earn(coalition, "e1", "m1", "1000.00", occurred_at=days_ago(5)))  # 100 points
    expect(burn(coalition, "b1", "m1", 10, occurred_at=days_ago(4)))
    wrong = [
        {"external_id": "x1", "type": "burn", "partner_id": "aroma", "member_id": "m1",
         "points": 5, "currency": "USD", "occurred_at": days_ago(3)},
        {"external_id": "x2", "type": "bonus", "partner_id": "coalition", "member_id": "m1",
         "points": 5, "reason": "goodwill", "currency": "RUB", "occurred_at": days_ago(3)},
        {"external_id": "x3", "type": "earn_reversal", "partner_id": "aroma",
         "original_external_id": "e1", "points": 5, "currency": "JPY", "occurred_at": days_ago(3)},
        {"external_id": "x4", "type": "burn_reversal", "partner_id": "aroma",
         "original_external_id": "b1", "currency": "EUR", "occurred_at": days_ago(3)},
    ]
    for body in wrong:
        response = post(coalition, **body)
        assert response.status_code == 422, (body["type"], response.get_json())
        assert response.get_json()["reason"] == "wrong_currency"
    assert balance(coalition, "m1")["available"] == 90
    right = {**wrong[0], "external_id": "x5", "currency": "RUB"}
    assert post(coalition, **right).status_code == 201


def test_rejected_earn_writes_nothing(coalition):
    earn(coalition, "t1", "m1", "350.001")
    assert coalition.get("/api/v1/members/m1/balance").status_code == 404
    assert list_all(coalition) == []


# --- earn: refusals -------------------------------------------------------------


def test_earn_without_an_earn_rate_is_422_no_rate(operator):
    add_partner(operator, "aroma", "RUB")
    assert_422(earn(operator, "t1", "m1", "100.00"), "no_rate")


def test_earn_before_the_first_earn_rate_is_422_no_rate(operator):
    add_partner(operator, "aroma", "RUB")
    add_rate(operator, "earn", "0.1", partner_id="aroma", effective_from=days_ago(10))
    assert_422(earn(operator, "t1", "m1", "100.00", occurred_at=days_ago(20)), "no_rate")


def test_earn_rate_of_another_partner_does_not_apply(operator):
    add_partner(operator, "aroma", "RUB")
    add_partner(operator, "skyair", "EUR", "travel")
    add_rate(operator, "earn", "2", partner_id="skyair")
    assert_422(earn(operator, "t1", "m1", "100.00"), "no_rate")


def test_earn_worth_zero_points_is_422(coalition):
    # 9.99 × 0.1 = 0.999 → floor 0
    response = earn(coalition, "t1", "m1", "9.99")
    assert_422(response)
    assert coalition.get("/api/v1/members/m1/balance").status_code == 404


def test_burn_without_a_redemption_rate_is_422_no_rate(operator):
    setup_coalition(operator, redemption=False)
    expect(earn(operator, "t1", "m1", "1000.00"))  # 100 points
    assert_422(burn(operator, "t2", "m1", 10), "no_rate")
    assert balance(operator, "m1")["available"] == 100


def test_partner_specific_redemption_rate_alone_is_enough_for_that_partner(operator):
    setup_coalition(operator, redemption=False)
    rate = add_rate(operator, "redemption", "0.02", partner_id="aroma")
    expect(earn(operator, "t1", "m1", "1000.00"))  # 100 points
    body = expect(burn(operator, "t2", "m1", 10))
    assert body["rate_ids"] == [rate["id"]]
    assert_422(burn(operator, "t3", "m1", 10, partner_id="skyair"), "no_rate")


# --- occurred_at window -----------------------------------------------------------


def test_occurred_at_older_than_max_backdate_days_is_422(coalition):
    # max_backdate_days 90
    assert_422(earn(coalition, "t1", "m1", "100.00", occurred_at=days_ago(91)))


def test_occurred_at_just_inside_max_backdate_days_is_accepted(coalition):
    expect(earn(coalition, "t1", "m1", "100.00", occurred_at=days_ago(89)))


def test_max_backdate_days_follows_the_settings(coalition):
    expect(coalition.put("/api/v1/settings", json={"max_backdate_days": 5}), 200)
    assert_422(earn(coalition, "t1", "m1", "100.00", occurred_at=days_ago(6)))
    expect(earn(coalition, "t2", "m1", "100.00", occurred_at=days_ago(4)))


def test_occurred_at_more_than_five_minutes_in_the_future_is_422(coalition):
    assert_422(earn(coalition, "t1", "m1", "100.00", occurred_at=moment(minutes=10)))


def test_occurred_at_a_little_in_the_future_is_accepted(coalition):
    # a till's clock may run up to 5 minutes ahead
    expect(earn(coalition, "t1", "m1", "100.00", occurred_at=moment(minutes=2)))


@pytest.mark.parametrize("occurred_at", ["naive", "2026-10-03", "03/10/2026 10:15", "yesterday", ""])
def test_occurred_at_without_an_offset_or_malformed_is_422(coalition, occurred_at):
    if occurred_at == "naive":
        occurred_at = (datetime.now(UTC) - timedelta(days=1)).replace(tzinfo=None, microsecond=0).isoformat()
    response = post(coalition, external_id="t1", type="earn", partner_id="aroma", member_id="m1",
                    occurred_at=occurred_at, amount="100.00", currency="RUB")
    assert_422(response)
    assert "occurred_at" in str(response.get_json()["errors"])


# --- bonus ------------------------------------------------------------------------------


def test_bonus_from_the_coalition_partner_creates_a_lot_it_issued(coalition):
    body = expect(bonus(coalition, "b1", "m1", 500, reason="referral"))
    assert body["type"] == "bonus"
    assert body["partner_id"] == "coalition"
    assert body["points"] == 500
    assert body["reason"] == "referral"
    assert body["lot_id"]
    # the coalition's points are spent like any other: a burn at aroma takes them from its lot
    spent = expect(burn(coalition, "t2", "m1", 120))
    assert allocations(spent) == [(body["lot_id"], "coalition", 120)]


def test_bonus_without_a_reason_is_422(coalition):
    response = post(coalition, external_id="b1", type="bonus", partner_id="coalition", member_id="m1",
                    occurred_at=days_ago(1), points=10)
    assert_422(response)


def test_bonus_creates_the_member(coalition):
    expect(bonus(coalition, "b1", "m1", 500))
    assert balance(coalition, "m1")["available"] == 500


def test_earn_with_points_field_is_422(coalition):
    assert_422(earn(coalition, "t1", "m1", "100.00", points=10))


def test_expiry_cannot_be_posted(coalition):
    response = post(coalition, external_id="x1", type="expiry", partner_id="aroma", member_id="m1",
                    occurred_at=days_ago(1), points=10)
    assert_422(response)


@pytest.mark.parametrize(
    "external_id", ["expiry-1", "expiry-1-1x", "Expiry-1-1", "expiry-a-1", "expiry-١-١"]
)
def test_an_external_id_near_the_expiry_form_is_the_partners(coalition, external_id):
    expect(earn(coalition, external_id, "m1", "100.00"))


@pytest.mark.parametrize("external_id", ["expiry-1-1", "expiry-120-3"])
def test_an_external_id_of_the_expiry_form_is_422_in_a_post_and_a_batch(coalition, external_id):
    single = earn(coalition, external_id, "m1", "100.00")
    assert_422(single)
    assert list(single.get_json()["errors"]["json"]) == ["external_id"]
    item = {"external_id": external_id, "type": "earn", "partner_id": "aroma", "member_id": "m1",
            "occurred_at": days_ago(1), "amount": "100.00", "currency": "RUB"}
    results = expect(coalition.post("/api/v1/transactions/batch", json={"transactions": [item]}), 200)
    assert results["results"][0]["status"] == 422
    assert list_all(coalition) == []


# --- burn -----------------------------------------------------------------------------


@pytest.fixture
def three_lots(coalition):
    """m1: aroma 100 (30 days ago), skyair 50 (20 days ago), coalition bonus 40 (10 days ago)."""
    lots = {
        "aroma": expect(earn(coalition, "a1", "m1", "1000.00", occurred_at=days_ago(30)))["lot_id"],  # 1000 × 0.1
        "skyair": expect(earn(coalition, "s1", "m1", "25.00", partner_id="skyair", occurred_at=days_ago(20)))["lot_id"],  # 25 × 2
        "coalition": expect(bonus(coalition, "b1", "m1", 40, occurred_at=days_ago(10)))["lot_id"],
    }
    return lots


def test_burn_spends_the_lot_expiring_first_across_lots(coalition, three_lots):
    # every lot lives 365 days, so the oldest expires first: aroma 100, then 30 of skyair's 50
    body = expect(burn(coalition, "t1", "m1", 130, occurred_at=days_ago(1)))
    assert body["points"] == -130
    assert allocations(body) == sorted([(three_lots["aroma"], "aroma", 100), (three_lots["skyair"], "skyair", 30)])
    assert all(a["points"] > 0 for a in body["allocations"])


def test_burn_reduces_the_balance_by_its_points(coalition, three_lots):
    expect(burn(coalition, "t1", "m1", 130, occurred_at=days_ago(1)))
    # 100 + 50 + 40 − 130 = 60
    assert balance(coalition, "m1")["available"] == 60


def test_second_burn_continues_where_the_first_stopped(coalition, three_lots):
    expect(burn(coalition, "t1", "m1", 130, occurred_at=days_ago(1)))
    body = expect(burn(coalition, "t2", "m1", 50, occurred_at=days_ago(1)))
    # skyair has 50 − 30 = 20 left, then 30 of the coalition's 40
    assert allocations(body) == sorted([(three_lots["skyair"], "skyair", 20), (three_lots["coalition"], "coalition", 30)])


def test_burn_takes_a_newer_lot_first_when_it_expires_first(coalition):
    old = expect(earn(coalition, "a1", "m1", "1000.00", occurred_at=days_ago(30)))  # 100 points, expires in 335 days
    expect(coalition.put("/api/v1/settings", json={"points_ttl_days": 60}), 200)
    new = expect(earn(coalition, "a2", "m1", "500.00", occurred_at=days_ago(10)))  # 50 points, expires in 50 days
    body = expect(burn(coalition, "t1", "m1", 70, occurred_at=days_ago(1)))
    # the newer lot expires first: all its 50, then 20 of the older
    assert allocations(body) == sorted([(new["lot_id"], "aroma", 50), (old["lot_id"], "aroma", 20)])


def test_burn_ties_on_expiry_go_to_the_lowest_lot_id(coalition):
    occurred = days_ago(5)
    first = expect(earn(coalition, "a1", "m1", "100.00", occurred_at=occurred))  # 10 points
    second = expect(earn(coalition, "a2", "m1", "100.00", occurred_at=occurred))  # 10 points
    body = expect(burn(coalition, "t1", "m1", 15, occurred_at=days_ago(1)))
    assert allocations(body) == sorted([(first["lot_id"], "aroma", 10), (second["lot_id"], "aroma", 5)])


def test_burn_of_more_than_available_is_422_insufficient_points(coalition, three_lots):
    # available 100 + 50 + 40 = 190
    assert_422(burn(coalition, "t1", "m1", 191, occurred_at=days_ago(1)), "insufficient_points")


def test_failed_burn_leaves_the_balance_unchanged(coalition, three_lots):
    burn(coalition, "t1", "m1", 191, occurred_at=days_ago(1))
    after = balance(coalition, "m1")
    assert after["available"] == 190
    assert after["lifetime_burned"] == 0


def test_burn_of_exactly_the_balance_empties_it(coalition, three_lots):
    expect(burn(coalition, "t1", "m1", 190, occurred_at=days_ago(1)))
    assert balance(coalition, "m1")["available"] == 0
    assert_422(burn(coalition, "t2", "m1", 1, occurred_at=days_ago(1)), "insufficient_points")


def test_burn_for_an_unknown_member_is_422_insufficient_points(coalition):
    assert_422(burn(coalition, "t1", "nobody", 1), "insufficient_points")
    assert coalition.get("/api/v1/members/nobody/balance").status_code == 404


def test_burn_for_an_unknown_member_is_insufficient_points_even_where_no_redemption_rate_is(operator):
    """A member who never earned has no points to burn (docs/decisions.md): that is the
    refusal, said of the member, whether or not the partner could price a burn."""
    setup_coalition(operator, redemption=False)
    response = burn(operator, "t1", "nobody", 1)
    assert_422(response, "insufficient_points")
    assert response.get_json()["message"] == "member 'nobody' has no points"
    assert operator.get("/api/v1/members/nobody/balance").status_code == 404


def test_burn_cannot_use_a_lot_earned_after_the_burn(coalition):
    expect(earn(coalition, "a1", "m1", "1000.00", occurred_at=days_ago(2)))  # 100 points
    # backdated burn before the lot existed
    assert_422(burn(coalition, "t1", "m1", 10, occurred_at=days_ago(5)), "insufficient_points")


@pytest.fixture
def hotel(coalition):
    add_partner(coalition, "hotel", "EUR", "travel", hold_days=7)
    add_rate(coalition, "earn", "1", partner_id="hotel")
    return coalition


def test_lot_of_a_partner_with_hold_days_is_pending_and_not_burnable(hotel):
    occurred = days_ago(2)
    body = expect(earn(hotel, "h1", "m1", "80.00", partner_id="hotel", occurred_at=occurred))  # 80 × 1 = 80
    assert at(body["available_at"]) == at(occurred) + timedelta(days=7)
    assert_422(burn(hotel, "t1", "m1", 10, occurred_at=days_ago(0)), "insufficient_points")


def test_held_lot_is_pending_in_the_balance(hotel):
    expect(earn(hotel, "h1", "m1", "80.00", partner_id="hotel", occurred_at=days_ago(2)))
    now = balance(hotel, "m1")
    assert (now["available"], now["pending"]) == (0, 80)


def test_lot_becomes_burnable_once_its_hold_has_passed(hotel):
    lot = expect(earn(hotel, "h1", "m1", "80.00", partner_id="hotel", occurred_at=days_ago(10)))  # available 3 days ago
    body = expect(burn(hotel, "t1", "m1", 80, occurred_at=days_ago(1)))
    assert allocations(body) == [(lot["lot_id"], "hotel", 80)]


def test_burn_skips_a_pending_lot_and_uses_an_available_one(hotel):
    held = expect(earn(hotel, "h1", "m1", "80.00", partner_id="hotel", occurred_at=days_ago(5)))  # pending 2 more days
    free = expect(earn(hotel, "a1", "m1", "300.00", occurred_at=days_ago(3)))  # aroma: 30 points, available
    body = expect(burn(hotel, "t1", "m1", 30, occurred_at=days_ago(1)))
    assert allocations(body) == [(free["lot_id"], "aroma", 30)]
    assert held["lot_id"] != free["lot_id"]


@pytest.mark.parametrize("points", [0, -5, 1.5, "10", 10**30, None, True])
def test_burn_points_must_be_a_positive_integer(coalition, points):
    expect(bonus(coalition, "b1", "m1", 100))
    assert_422(burn(coalition, "t1", "m1", points))
    assert balance(coalition, "m1")["available"] == 100


# --- earn reversal ----------------------------------------------------------------


def test_earn_reversal_by_amount_takes_back_the_floored_share(coalition):
    expect(earn(coalition, "a1", "m1", "333.33", occurred_at=days_ago(5)))  # floor(33.333) = 33
    body = expect(earn_reversal(coalition, "r1", "a1", amount="100.00"))
    # floor(33 × 100.00 / 333.33) = floor(9.9000990…) = 9
    assert body["points"] == -9
    assert body["shortfall_points"] == 0
    assert balance(coalition, "m1")["available"] == 33 - 9


def test_a_second_return_by_amount_takes_the_floored_share_of_its_own_amount(coalition):
    expect(earn(coalition, "a1", "m1", "333.33", occurred_at=days_ago(5)))  # floor(33.333) = 33
    expect(earn_reversal(coalition, "r1", "a1", amount="100.00"))  # floor(9.90…) = 9
    body = expect(earn_reversal(coalition, "r2", "a1", amount="100.00"))
    # floor(33 × 100.00 / 333.33) = 9 again (SPEC §6); on the running total of 200.00 it
    # would be floor(19.80…) − 9 = 10
    assert body["points"] == -9
    assert balance(coalition, "m1")["available"] == 33 - 9 - 9


def test_earn_reversal_by_points_takes_them_from_the_original_lot(coalition):
    lot = expect(earn(coalition, "a1", "m1", "1000.00", occurred_at=days_ago(5)))["lot_id"]  # 100
    body = expect(earn_reversal(coalition, "r1", "a1", points=40))
    assert body["points"] == -40
    assert allocations(body) == [(lot, "aroma", 40)]
    assert balance(coalition, "m1")["available"] == 60


def test_earn_reversal_by_points_records_no_amount_nor_currency_even_if_sent_one(coalition):
    """A currency sent without an amount is checked and changes nothing (docs/decisions.md):
    a return by points returns no money, so it has no currency to be settled in."""
    expect(earn(coalition, "a1", "m1", "1000.00", occurred_at=days_ago(5)))  # 100
    body = expect(earn_reversal(coalition, "r1", "a1", points=40, currency="RUB"))
    assert (body["points"], body["amount"], body["currency"]) == (-40, None, None)
    listed = expect(coalition.get(f"/api/v1/transactions/{body['id']}"), 200)
    assert (listed["amount"], listed["currency"]) == (None, None)


def test_earn_reversal_after_a_burn_records_the_shortfall(coalition):
    lot = expect(earn(coalition, "a1", "m1", "1000.00", occurred_at=days_ago(5)))["lot_id"]  # 100
    expect(burn(coalition, "t1", "m1", 80, occurred_at=days_ago(3)))  # lot keeps 20
    body = expect(earn_reversal(coalition, "r1", "a1", points=50, occurred_at=days_ago(1)))
    # the lot holds only 20 of the 50: 20 taken, 30 shortfall borne by aroma
    assert body["points"] == -20
    assert body["shortfall_points"] == 30
    assert allocations(body) == [(lot, "aroma", 20)]
    assert balance(coalition, "m1")["available"] == 0


def test_earn_reversal_only_touches_the_original_lot(coalition):
    expect(earn(coalition, "a1", "m1", "1000.00", occurred_at=days_ago(5)))  # 100
    expect(burn(coalition, "t1", "m1", 100, occurred_at=days_ago(4)))  # lot a1 empty
    expect(earn(coalition, "a2", "m1", "500.00", occurred_at=days_ago(3)))  # 50, another lot
    body = expect(earn_reversal(coalition, "r1", "a1", points=30, occurred_at=days_ago(1)))
    assert (body["points"], body["shortfall_points"]) == (0, 30)
    assert balance(coalition, "m1")["available"] == 50


def test_earn_reversal_by_amount_beyond_the_purchase_is_422(coalition):
    expect(earn(coalition, "a1", "m1", "1000.00", occurred_at=days_ago(5)))  # 100
    expect(earn_reversal(coalition, "r1", "a1", amount="600.00"))  # floor(100 × 0.6) = 60
    # 600.00 + 500.00 = 1100.00 > 1000.00
    response = earn_reversal(coalition, "r2", "a1", amount="500.00")
    assert_422(response)
    # the amounts quoted in RUB's two places, as sent, not as the column keeps them (four)
    assert response.get_json()["message"] == (
        "returns would total 1100.00, more than the purchase amount 1000.00:"
        " 40 points can still be returned"  # 100 − 60
    )
    assert balance(coalition, "m1")["available"] == 40


def test_a_return_by_amount_after_one_by_points_counts_no_money_returned_before(coalition):
    """A return by points returned no money: a return by amount after it is held to the
    purchase alone (2000.00 > 1000.00), and the refusal says so, with the 90 points left."""
    expect(earn(coalition, "a1", "m1", "1000.00", occurred_at=days_ago(5)))  # 100
    expect(earn_reversal(coalition, "r1", "a1", points=10))
    response = earn_reversal(coalition, "r2", "a1", amount="2000.00")
    assert_422(response)
    assert response.get_json()["message"] == (
        "returns would total 2000.00, more than the purchase amount 1000.00:"
        " 90 points can still be returned"  # 100 − 10
    )


def test_earn_reversal_by_points_beyond_the_earned_points_is_422(coalition):
    expect(earn(coalition, "a1", "m1", "1000.00", occurred_at=days_ago(5)))  # 100
    expect(earn_reversal(coalition, "r1", "a1", points=60))
    # 60 + 41 = 101 > 100
    assert_422(earn_reversal(coalition, "r2", "a1", points=41))
    assert balance(coalition, "m1")["available"] == 40


def test_earn_reversals_may_reach_exactly_the_original_points(coalition):
    expect(earn(coalition, "a1", "m1", "1000.00", occurred_at=days_ago(5)))  # 100
    expect(earn_reversal(coalition, "r1", "a1", points=60))
    expect(earn_reversal(coalition, "r2", "a1", points=40))  # 60 + 40 = 100
    assert balance(coalition, "m1")["available"] == 0


def test_earn_reversal_shortfall_counts_against_the_original_points(coalition):
    expect(earn(coalition, "a1", "m1", "1000.00", occurred_at=days_ago(5)))  # 100
    expect(burn(coalition, "t1", "m1", 80, occurred_at=days_ago(3)))
    expect(earn_reversal(coalition, "r1", "a1", points=50, occurred_at=days_ago(1)))  # 20 taken + 30 shortfall
    # 50 already reversed: another 51 would total 101 > 100
    assert_422(earn_reversal(coalition, "r2", "a1", points=51, occurred_at=days_ago(1)))


def test_earn_reversal_of_an_unknown_original_is_422(coalition):
    assert_422(earn_reversal(coalition, "r1", "nope", points=1))


def test_earn_reversal_of_another_partners_earn_is_422(coalition):
    expect(earn(coalition, "s1", "m1", "50.00", partner_id="skyair", occurred_at=days_ago(5)))
    # aroma cannot reverse skyair's earn: the original is looked up under aroma, which the
    # refusal says (an operator posting for the wrong partner is told where it looked)
    response = earn_reversal(coalition, "r1", "s1", partner_id="aroma", points=1)
    assert_422(response)
    assert response.get_json()["message"] == "no earn or bonus of partner aroma with external_id 's1'"


def test_earn_reversal_needs_exactly_one_of_amount_or_points(coalition):
    expect(earn(coalition, "a1", "m1", "1000.00", occurred_at=days_ago(5)))
    assert_422(earn_reversal(coalition, "r1", "a1"))
    assert_422(earn_reversal(coalition, "r2", "a1", amount="10.00", points=1))


def test_earn_reversal_amount_with_too_many_decimals_is_422(coalition):
    expect(earn(coalition, "a1", "m1", "1000.00", occurred_at=days_ago(5)))
    assert_422(earn_reversal(coalition, "r1", "a1", amount="10.001"))
    assert balance(coalition, "m1")["available"] == 100


def test_earn_reversal_cannot_occur_before_its_earn(coalition):
    expect(earn(coalition, "a1", "m1", "1000.00", occurred_at=days_ago(5)))
    assert_422(earn_reversal(coalition, "r1", "a1", points=10, occurred_at=days_ago(6)))


def test_reversals_may_occur_at_the_very_instant_of_their_originals(coalition):
    """Only a reversal *before* its original is refused (docs/decisions.md): a return
    rung up in the same second as the sale, and a burn undone at once, are not."""
    instant = moment(days=3)
    expect(earn(coalition, "a1", "m1", "1000.00", occurred_at=instant))  # 1000 × 0.1 = 100
    expect(burn(coalition, "b1", "m1", 30, occurred_at=instant))  # 70 left
    assert expect(earn_reversal(coalition, "r1", "a1", points=10, occurred_at=instant))["points"] == -10
    assert expect(burn_reversal(coalition, "r2", "b1", occurred_at=instant))["points"] == 30
    assert balance(coalition, "m1")["available"] == 90  # 70 − 10 + 30


def test_earn_reversal_for_a_different_member_is_422(coalition):
    expect(earn(coalition, "a1", "m1", "1000.00", occurred_at=days_ago(5)))
    assert_422(earn_reversal(coalition, "r1", "a1", points=10, member_id="m2"))


def test_earn_reversal_by_a_suspended_partner_is_422_partner_suspended(coalition):
    expect(earn(coalition, "a1", "m1", "1000.00", occurred_at=days_ago(5)))
    expect(coalition.patch("/api/v1/partners/aroma", json={"status": "suspended"}), 200)
    assert_422(earn_reversal(coalition, "r1", "a1", points=10), "partner_suspended")


# --- burn reversal ----------------------------------------------------------------


@pytest.fixture
def burned(coalition, three_lots):
    """m1 burned 130 at aroma: 100 from the aroma lot, 30 from the skyair lot; 60 left."""
    expect(burn(coalition, "t1", "m1", 130, occurred_at=days_ago(2)))
    return three_lots


def test_burn_reversal_without_points_restores_the_whole_burn(coalition, burned):
    body = expect(burn_reversal(coalition, "u1", "t1"))
    assert body["points"] == 130
    assert allocations(body) == sorted([(burned["aroma"], "aroma", 100), (burned["skyair"], "skyair", 30)])
    # 60 + 130 = 190
    assert balance(coalition, "m1")["available"] == 190


def test_partial_burn_reversal_restores_the_newest_allocation_first(coalition, burned):
    body = expect(burn_reversal(coalition, "u1", "t1", points=40))
    # newest allocation (skyair 30) first, then 10 into the aroma lot
    assert body["points"] == 40
    assert allocations(body) == sorted([(burned["aroma"], "aroma", 10), (burned["skyair"], "skyair", 30)])
    assert balance(coalition, "m1")["available"] == 100  # 60 + 40


def test_burn_reversal_partial_then_rest(coalition, burned):
    expect(burn_reversal(coalition, "u1", "t1", points=40))
    rest = expect(burn_reversal(coalition, "u2", "t1"))
    # 130 − 40 = 90 left to reverse, all into the aroma lot
    assert rest["points"] == 90
    assert allocations(rest) == [(burned["aroma"], "aroma", 90)]
    assert balance(coalition, "m1")["available"] == 190


def test_burn_reversal_beyond_the_burn_is_422(coalition, burned):
    assert_422(burn_reversal(coalition, "u1", "t1", points=131))
    assert balance(coalition, "m1")["available"] == 60


def test_burn_reversal_after_a_full_reversal_is_422(coalition, burned):
    expect(burn_reversal(coalition, "u1", "t1"))
    assert_422(burn_reversal(coalition, "u2", "t1"))
    assert_422(burn_reversal(coalition, "u3", "t1", points=1))
    assert balance(coalition, "m1")["available"] == 190


def test_burn_reversal_restored_points_keep_their_lots_expiry(coalition, burned):
    expect(burn_reversal(coalition, "u1", "t1", points=40))
    # restored: 30 into skyair's lot (20 days ago) and 10 into aroma's (30 days ago); expiry 365 days
    # after each, so neither lot is within the 90-day expiring window
    assert balance(coalition, "m1")["expiring"] == []
    again = expect(burn(coalition, "t2", "m1", 10, occurred_at=days_ago(1)))
    # the restored aroma points still expire first
    assert allocations(again) == [(burned["aroma"], "aroma", 10)]


def test_burn_reversal_cannot_occur_before_its_burn(coalition, burned):
    # the burn occurred 2 days ago
    assert_422(burn_reversal(coalition, "u1", "t1", occurred_at=days_ago(3)))
    assert balance(coalition, "m1")["available"] == 60


def test_burn_reversal_of_an_earn_is_422(coalition, burned):
    assert_422(burn_reversal(coalition, "u1", "a1"))


# --- idempotency -------------------------------------------------------------------


def test_replay_of_the_same_body_is_200_with_the_identical_transaction(coalition):
    body = {"external_id": "till-7-000123", "type": "earn", "partner_id": "aroma", "member_id": "card-4411",
            "occurred_at": days_ago(3), "amount": "350.00", "currency": "RUB", "category": "coffee"}
    first = coalition.post("/api/v1/transactions", json=body)
    second = coalition.post("/api/v1/transactions", json=body)
    assert first.status_code == 201
    assert second.status_code == 200
    assert second.get_json() == first.get_json()


def test_first_answer_replay_and_read_are_the_same_bytes_with_times_in_utc(coalition):
    # posted at +03:00, answered as stored: in UTC, the first time as on a replay or a read
    moscow = timezone(timedelta(hours=3))
    local = (datetime.now(UTC) - timedelta(days=3)).replace(microsecond=0).astimezone(moscow)
    expect(bonus(coalition, "b1", "m1", 100))
    bodies = [
        {"external_id": "e1", "type": "earn", "partner_id": "aroma", "member_id": "m1",
         "occurred_at": local.isoformat(), "amount": "350.00", "currency": "RUB"},
        {"external_id": "u1", "type": "burn", "partner_id": "aroma", "member_id": "m1",
         "occurred_at": (local + timedelta(days=1)).isoformat(), "points": 30},
        {"external_id": "r1", "type": "burn_reversal", "partner_id": "aroma",
         "original_external_id": "u1", "occurred_at": (local + timedelta(days=2)).isoformat()},
    ]
    for body in bodies:
        first = coalition.post("/api/v1/transactions", json=body)
        replay = coalition.post("/api/v1/transactions", json=body)
        assert (first.status_code, replay.status_code) == (201, 200)
        assert first.get_data() == replay.get_data()
        read = coalition.get(f"/api/v1/transactions/{first.get_json()['id']}")
        assert read.get_data() == first.get_data()
        assert first.get_json()["occurred_at"].endswith("+00:00")


def test_the_fingerprint_of_a_body_with_an_offset_is_the_one_stored_before():
    """Instants are now converted to UTC on input; the fingerprint always hashed them in UTC,
    so a ledger written before still sees a replay as a replay, not as a conflict."""
    body = TRANSACTION_IN.load({"external_id": "e1", "type": "earn", "member_id": "m1",
                                "occurred_at": "2026-11-29T10:15:00+03:00", "amount": "350.00",
                                "currency": "RUB"})
    canonical = ('{"amount": "350", "currency": "RUB", "external_id": "e1", "member_id": "m1", '
                 '"occurred_at": "2026-11-29T07:15:00+00:00", "partner_id": "aroma", "type": "earn"}')
    assert hashlib.sha256(canonical.encode()).hexdigest() == (
        "ae7efa6f47abc7987e65aec4b346bdc0eb72374d226c93f66e789a104ee6ca82"  # computed before the change
    )
    assert request_hash({**body, "partner_id": "aroma"}) == hashlib.sha256(canonical.encode()).hexdigest()


def test_replay_does_not_post_twice(coalition):
    body = {"external_id": "t2", "type": "earn", "partner_id": "aroma", "member_id": "m2",
            "occurred_at": days_ago(3), "amount": "350.00", "currency": "RUB"}
    for _ in range(3):
        coalition.post("/api/v1/transactions", json=body)
    # 350.00 × 0.1 = 35, once
    assert balance(coalition, "m2")["available"] == 35
    assert len(list_all(coalition, member_id="m2")) == 1


def test_replay_of_a_burn_does_not_spend_twice(coalition):
    expect(bonus(coalition, "b1", "m1", 100))
    body = {"external_id": "t1", "type": "burn", "partner_id": "aroma", "member_id": "m1",
            "occurred_at": days_ago(1), "points": 30}
    first = expect(coalition.post("/api/v1/transactions", json=body))
    second = expect(coalition.post("/api/v1/transactions", json=body), 200)
    assert second == first
    assert balance(coalition, "m1")["available"] == 70


def test_same_external_id_with_a_different_body_is_409_idempotency_conflict(coalition):
    occurred = days_ago(3)
    original = expect(earn(coalition, "t1", "m1", "350.00", occurred_at=occurred))
    response = earn(coalition, "t1", "m1", "360.00", occurred_at=occurred)
    assert response.status_code == 409
    assert response.get_json()["reason"] == "idempotency_conflict"
    assert expect(coalition.get(f"/api/v1/transactions/{original['id']}"), 200) == original


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"amount": "360.00"}, "amount"),
        ({"member_id": "m2"}, "member_id"),
        ({"category": "coffee"}, "category"),
        ({"amount": "360.00", "member_id": "m2"}, "member_id, amount"),
    ],
)
def test_an_idempotency_conflict_names_the_fields_the_retry_changed(coalition, change, named):
    """A till's developer is told where the retry differs, and only there: the same
    instant written in another offset, or 350.0 for 350.00, is no difference."""
    occurred = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    expect(earn(coalition, "t1", "m1", "350.00", occurred_at=occurred.isoformat()))
    same_instant = occurred.astimezone(timezone(timedelta(hours=3))).isoformat()
    retry = {"member_id": "m1", "amount": "350.0", **change}
    response = earn(coalition, "t1", retry.pop("member_id"), retry.pop("amount"),
                    occurred_at=same_instant, **retry)
    assert response.status_code == 409
    assert response.get_json()["message"] == (
        f"external_id 't1' was posted with a different body; changed: {named}"
    )


def test_an_idempotency_conflict_names_a_burns_points_and_not_the_currency_it_repeats(coalition):
    """A burn's currency is checked, not kept: repeated, it is no change."""
    expect(bonus(coalition, "b1", "m1", 100))
    body = {"external_id": "t1", "type": "burn", "partner_id": "aroma", "member_id": "m1",
            "occurred_at": days_ago(1), "points": 30, "currency": "RUB"}
    expect(coalition.post("/api/v1/transactions", json=body))
    response = coalition.post("/api/v1/transactions", json={**body, "points": 40})
    assert response.status_code == 409
    assert response.get_json()["message"] == "external_id 't1' was posted with a different body; changed: points"


def test_an_idempotency_conflict_of_a_burn_does_not_name_the_points_it_repeats(coalition):
    """A burn's points are kept negative (−30) and sent positive (30): the same points."""
    expect(bonus(coalition, "b1", "m1", 100))
    expect(bonus(coalition, "b2", "m2", 100))
    body = {"external_id": "t1", "type": "burn", "partner_id": "aroma", "member_id": "m1",
            "occurred_at": days_ago(1), "points": 30}
    expect(coalition.post("/api/v1/transactions", json=body))
    response = coalition.post("/api/v1/transactions", json={**body, "member_id": "m2"})
    assert response.status_code == 409
    assert response.get_json()["message"] == "external_id 't1' was posted with a different body; changed: member_id"


def test_an_idempotency_conflict_it_cannot_place_says_the_body_differs(coalition):
    """A reversal keeps its original by id, not as sent: the message falls back to the body."""
    expect(bonus(coalition, "b1", "m1", 100))
    occurred = days_ago(1)
    expect(burn(coalition, "t1", "m1", 30, occurred_at=occurred))
    expect(burn(coalition, "t2", "m1", 30, occurred_at=occurred))
    expect(burn_reversal(coalition, "r1", "t1", occurred_at=occurred))
    response = burn_reversal(coalition, "r1", "t2", occurred_at=occurred)
    assert response.status_code == 409
    assert response.get_json()["message"] == "external_id 'r1' was posted with a different body"


def test_same_external_id_at_two_partners_is_two_transactions(coalition):
    expect(earn(coalition, "t1", "m1", "350.00"))
    expect(earn(coalition, "t1", "m1", "10.00", partner_id="skyair"))
    # 35 + 20
    assert balance(coalition, "m1")["available"] == 55


def test_replay_through_a_partner_key_of_an_operator_posting_is_a_replay(coalition, make_key):
    occurred = days_ago(3)
    first = expect(earn(coalition, "t1", "m1", "350.00", occurred_at=occurred))
    aroma = make_key("partner", "aroma")
    second = earn(aroma, "t1", "m1", "350.00", occurred_at=occurred)
    assert second.status_code == 200
    assert second.get_json() == first


def test_each_transaction_names_the_key_that_posted_it(coalition, client):
    """What a leaked key posted is told from what the tills did (docs/operations.md,
    "Correcting mistakes"): each posting, alone or in a batch, names its key as posted,
    replayed and read; a replay through another key names the key that posted it."""
    tills = [expect(coalition.post("/api/v1/keys", json={"role": "partner", "partner_id": "aroma"}))
             for _ in range(2)]
    first, second = (Caller(client, till["key"]) for till in tills)
    [operators_key] = expect(coalition.get("/api/v1/keys", query_string={"role": "operator"}), 200)
    when = days_ago(3)  # once: the replay must be the same body, whatever second it is sent in
    posted = expect(earn(first, "t1", "m1", "350.00", currency="RUB", partner_id=None, occurred_at=when))
    assert posted["key_id"] == tills[0]["id"]
    assert expect(earn(second, "t1", "m1", "350.00", currency="RUB", partner_id=None, occurred_at=when), 200) == posted
    items = [{"external_id": "t2", "type": "burn", "member_id": "m1", "occurred_at": days_ago(1),
              "points": 5}]
    [result] = expect(second.post("/api/v1/transactions/batch", json={"transactions": items}), 200)["results"]
    assert result["transaction"]["key_id"] == tills[1]["id"]
    expect(bonus(coalition, "b1", "m1", 10))
    listed = {row["external_id"]: row["key_id"] for row in list_all(coalition)}
    assert listed == {"t1": tills[0]["id"], "t2": tills[1]["id"], "b1": operators_key["id"]}
    assert expect(coalition.get(f"/api/v1/transactions/{posted['id']}"), 200) == posted


def test_a_failed_request_does_not_reserve_its_external_id(coalition):
    body = {"external_id": "t1", "type": "burn", "partner_id": "aroma", "member_id": "m1",
            "occurred_at": days_ago(1), "points": 30}
    expect(bonus(coalition, "b1", "m1", 10, occurred_at=days_ago(2)))
    assert_422(coalition.post("/api/v1/transactions", json=body), "insufficient_points")
    expect(bonus(coalition, "b2", "m1", 100, occurred_at=days_ago(2)))
    expect(coalition.post("/api/v1/transactions", json=body))


# --- batch ------------------------------------------------------------------------------


def test_batch_reports_each_item_and_posts_the_good_ones(coalition):
    items = [
        {"external_id": "b-0", "type": "earn", "partner_id": "aroma", "member_id": "m1",
         "occurred_at": days_ago(3), "amount": "1000.00", "currency": "RUB"},  # 100 points
        {"external_id": "b-1", "type": "earn", "partner_id": "aroma", "member_id": "m1",
         "occurred_at": days_ago(3), "currency": "RUB"},  # no amount → 422
        {"external_id": "b-2", "type": "burn", "partner_id": "aroma", "member_id": "m1",
         "occurred_at": days_ago(1), "points": 500},  # more than 100 → 422
        {"external_id": "b-3", "type": "burn", "partner_id": "aroma", "member_id": "m1",
         "occurred_at": days_ago(1), "points": 30},  # uses b-0's lot, posted earlier in the batch
        {"external_id": "b-4", "type": "earn", "partner_id": "aroma", "member_id": "m1",
         "occurred_at": days_ago(3), "amount": "350.001", "currency": "RUB"},  # too many decimals → 422
    ]
    body = expect(coalition.post("/api/v1/transactions/batch", json={"transactions": items}), 200)
    results = body["results"]
    assert [(r["index"], r["status"]) for r in results] == [(0, 201), (1, 422), (2, 422), (3, 201), (4, 422)]
    assert results[0]["transaction"]["points"] == 100
    assert results[3]["transaction"]["points"] == -30
    assert results[2]["error"]["reason"] == "insufficient_points"
    assert "error" in results[1] and "transaction" not in results[1]
    assert sorted(t["external_id"] for t in list_all(coalition)) == ["b-0", "b-3"]
    assert balance(coalition, "m1")["available"] == 70  # 100 − 30


def test_batch_item_repeating_an_earlier_item_is_a_replay(coalition):
    item = {"external_id": "b-0", "type": "earn", "partner_id": "aroma", "member_id": "m1",
            "occurred_at": days_ago(3), "amount": "1000.00", "currency": "RUB"}
    results = expect(coalition.post("/api/v1/transactions/batch", json={"transactions": [item, item]}), 200)["results"]
    assert [r["status"] for r in results] == [201, 200]
    assert results[1]["transaction"] == results[0]["transaction"]
    assert balance(coalition, "m1")["available"] == 100


def test_batch_item_conflicting_with_an_earlier_item_is_409(coalition):
    item = {"external_id": "b-0", "type": "earn", "partner_id": "aroma", "member_id": "m1",
            "occurred_at": days_ago(3), "amount": "1000.00", "currency": "RUB"}
    changed = {**item, "amount": "2000.00"}
    results = expect(coalition.post("/api/v1/transactions/batch", json={"transactions": [item, changed]}), 200)["results"]
    assert [r["status"] for r in results] == [201, 409]
    assert results[1]["error"]["reason"] == "idempotency_conflict"


def test_batch_item_of_a_partner_key_for_another_partner_is_403(coalition, make_key):
    aroma = make_key("partner", "aroma")
    items = [
        {"external_id": "b-0", "type": "earn", "member_id": "m1", "occurred_at": days_ago(3),
         "amount": "1000.00", "currency": "RUB"},
        {"external_id": "b-1", "type": "earn", "partner_id": "skyair", "member_id": "m1",
         "occurred_at": days_ago(3), "amount": "10.00", "currency": "EUR"},
    ]
    results = expect(aroma.post("/api/v1/transactions/batch", json={"transactions": items}), 200)["results"]
    assert [r["status"] for r in results] == [201, 403]
    assert [t["external_id"] for t in list_all(coalition)] == ["b-0"]


def test_batch_of_more_than_1000_items_is_422(coalition):
    item = {"external_id": "x", "type": "bonus", "partner_id": "coalition", "member_id": "m1",
            "occurred_at": days_ago(1), "points": 1, "reason": "r"}
    items = [{**item, "external_id": f"x-{n}"} for n in range(1001)]
    response = coalition.post("/api/v1/transactions/batch", json={"transactions": items})
    assert response.status_code == 422
    assert list_all(coalition) == []


def test_empty_batch_is_422(coalition):
    assert coalition.post("/api/v1/transactions/batch", json={"transactions": []}).status_code == 422


def test_batch_item_that_is_not_an_object_is_its_own_422_and_the_others_are_posted(coalition):
    # each item is handled as if posted alone (SPEC §6): a string posted alone is 422, not the batch
    item = {"external_id": "b-0", "type": "earn", "partner_id": "aroma", "member_id": "m1",
            "occurred_at": days_ago(3), "amount": "1000.00", "currency": "RUB"}
    junk = ["notadict", 5, None, [], True]
    results = expect(coalition.post("/api/v1/transactions/batch", json={"transactions": [item, *junk]}), 200)["results"]
    assert [(r["index"], r["status"]) for r in results] == [(0, 201)] + [(n, 422) for n in range(1, 6)]
    for value, result in zip(junk, results[1:], strict=True):
        alone = coalition.post("/api/v1/transactions", data=json.dumps(value), content_type="application/json")
        assert (alone.status_code, alone.get_json()) == (422, result["error"])
    assert [t["external_id"] for t in list_all(coalition)] == ["b-0"]


def test_batch_item_errors_are_the_errors_of_the_item_posted_alone(coalition):
    # SPEC §10's shape, built as for a whole request: code, status, message, and reason or errors
    items = [
        {"external_id": "b-0", "type": "burn", "partner_id": "aroma", "member_id": "m1",
         "occurred_at": days_ago(1), "points": 500},  # insufficient points: a domain error
        {"external_id": "b-1", "type": "earn", "partner_id": "aroma", "member_id": "m1",
         "occurred_at": days_ago(3), "currency": "RUB"},  # no amount: field validation
        {"external_id": "b-2", "type": "earn", "partner_id": "aroma", "member_id": "m1",
         "occurred_at": days_ago(3), "amount": "350.001", "currency": "RUB"},  # too many decimals
    ]
    results = expect(coalition.post("/api/v1/transactions/batch", json={"transactions": items}), 200)["results"]
    for item, result in zip(items, results, strict=True):
        alone = coalition.post("/api/v1/transactions", json=item)
        assert (result["status"], result["error"]) == (alone.status_code, alone.get_json())
    assert set(results[0]["error"]) == {"code", "status", "message", "reason"}
    assert set(results[1]["error"]) == {"code", "status", "message", "errors"}
    assert results[1]["error"]["status"] == "Unprocessable Entity"


def test_finance_key_may_not_post_a_batch(coalition, make_key):
    item = {"external_id": "b-0", "type": "bonus", "partner_id": "coalition", "member_id": "m1",
            "occurred_at": days_ago(1), "points": 1, "reason": "r"}
    assert make_key("finance").post("/api/v1/transactions/batch", json={"transactions": [item]}).status_code == 403


# --- reading and listing ----------------------------------------------------------


def test_get_transaction_by_id_returns_what_post_returned(coalition):
    posted = expect(earn(coalition, "t1", "m1", "350.00"))
    assert expect(coalition.get(f"/api/v1/transactions/{posted['id']}"), 200) == posted


def test_get_burn_by_id_includes_its_allocations(coalition, three_lots):
    posted = expect(burn(coalition, "t1", "m1", 130, occurred_at=days_ago(1)))
    assert expect(coalition.get(f"/api/v1/transactions/{posted['id']}"), 200)["allocations"] == posted["allocations"]


def test_get_unknown_transaction_is_404(coalition):
    response = coalition.get("/api/v1/transactions/999999")
    assert response.status_code == 404
    assert response.get_json()["code"] == 404


@pytest.fixture
def ledger(coalition):
    """Five transactions over two months: (external_id, member, type, days ago)."""
    rows = [
        ("e1", "m1", "earn", 40),
        ("e2", "m2", "earn", 35),
        ("e3", "m1", "earn", 8),
        ("e4", "m2", "earn", 5),
        ("u1", "m1", "burn", 2),
    ]
    when = {}
    for external_id, member, kind, days in rows:
        when[external_id] = days_ago(days)
        if kind == "earn":
            expect(earn(coalition, external_id, member, "1000.00", occurred_at=when[external_id]))
        else:
            expect(burn(coalition, external_id, member, 10, occurred_at=when[external_id]))
    return when


def external_ids(caller, **query) -> list[str]:
    return [item["external_id"] for item in list_all(caller, **query)]


def test_list_transactions_oldest_posting_first(coalition, ledger):
    assert external_ids(coalition) == ["e1", "e2", "e3", "e4", "u1"]


def test_list_transactions_filtered_by_member(coalition, ledger):
    assert external_ids(coalition, member_id="m1") == ["e1", "e3", "u1"]


def test_list_transactions_filtered_by_type(coalition, ledger):
    assert external_ids(coalition, type="burn") == ["u1"]


def test_list_transactions_filtered_by_member_and_type(coalition, ledger):
    assert external_ids(coalition, member_id="m2", type="earn") == ["e2", "e4"]


def test_list_transactions_filtered_by_period(coalition, ledger):
    def period_of(external_id):
        moment_utc = at(ledger[external_id]).astimezone(UTC)
        return f"{moment_utc.year:04d}-{moment_utc.month:02d}"

    # 40 days ago and 2 days ago are 38 days apart, so always in different months
    recent = period_of("u1")
    expected = [e for e in ("e1", "e2", "e3", "e4", "u1") if period_of(e) == recent]
    assert "u1" in expected and "e1" not in expected
    assert external_ids(coalition, period_id=recent) == expected


@pytest.mark.parametrize("path", ["/api/v1/transactions", "/api/v1/statements"])
@pytest.mark.parametrize("period_id", ["2026-13", "2026-W43", "2026-10-05", "Oct 2026"])
def test_a_period_filter_that_is_no_period_of_the_calendar_is_422(coalition, ledger, path, period_id):
    # monthly calendar: a filter that can match nothing is the caller's mistake, said as
    # GET /settlements/{period_id} says it, not an empty page
    response = coalition.get(path, query_string={"period_id": period_id})
    assert response.status_code == 422, response.get_json()
    message = f"{period_id!r} is not a monthly period id, such as 2026-10"
    assert response.get_json() == {"code": 422, "status": "Unprocessable Entity", "message": message,
                                   "reason": "invalid", "errors": {"query": {"period_id": [message]}}}


def test_list_transactions_filtered_by_time_range(coalition, ledger):
    # from 10 days ago up to 3 days ago: e3 (8 days ago) and e4 (5 days ago)
    assert external_ids(coalition, **{"from": days_ago(10), "to": days_ago(3)}) == ["e3", "e4"]


def test_list_transactions_filtered_from_a_time(coalition, ledger):
    # since 36 days ago: everything but e1 (40 days ago)
    assert external_ids(coalition, **{"from": days_ago(36)}) == ["e2", "e3", "e4", "u1"]


def test_list_transactions_filtered_from_a_time_after_the_last_is_empty(coalition, ledger):
    assert external_ids(coalition, **{"from": moment(minutes=10)}) == []


@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "America/New_York"])
def test_a_listing_from_either_end_of_time_answers_in_any_time_zone(operator, zone):
    # in +14:00 the last hour of 9999 is in a period that would end in year 10000; in
    # −05:00 the first of year 1 is in a period that would start in year 0
    expect(operator.put("/api/v1/settings", json={"timezone": zone}), 200)
    setup_coalition(operator)
    expect(earn(operator, "e1", "m1", "1000.00"))
    assert external_ids(operator, **{"from": "0001-01-01T00:00:00+00:00"}) == ["e1"]
    assert external_ids(operator, **{"from": "9999-12-31T23:59:59+00:00"}) == []


@pytest.mark.parametrize("path", ["/api/v1/transactions", "/api/v1/changes"])
def test_a_window_that_ends_before_it_starts_is_422(coalition, ledger, path):
    # swapped bounds are a mistake to point out, not a question whose answer is nothing
    response = coalition.get(path, query_string={"from": days_ago(3), "to": days_ago(10)})
    assert response.status_code == 422, response.get_json()
    message = "is before from: the window would end before it starts"
    assert response.get_json()["errors"] == {"query": {"to": [message]}}


def test_a_window_of_no_length_is_empty_not_refused(coalition, ledger):
    # from inclusive, to exclusive: the same instant twice holds nothing, e4's own included
    assert external_ids(coalition, **{"from": ledger["e4"], "to": ledger["e4"]}) == []
    assert external_ids(coalition, **{"from": ledger["e4"], "to": days_ago(4)}) == ["e4"]


def test_list_transactions_filtered_by_partner(coalition, ledger):
    expect(earn(coalition, "s1", "m1", "10.00", partner_id="skyair"))
    assert external_ids(coalition, partner_id="skyair") == ["s1"]


def test_a_partners_own_id_finds_its_transaction_and_not_another_partners_of_that_id(coalition, ledger):
    # a till asks whether its e3 landed; skyair's own e3 is another transaction
    expect(earn(coalition, "e3", "m9", "10.00", partner_id="skyair"))
    found = list_all(coalition, partner_id="aroma", external_id="e3")
    assert [(item["partner_id"], item["external_id"], item["member_id"]) for item in found] == [("aroma", "e3", "m1")]
    assert external_ids(coalition, partner_id="skyair", external_id="e3") == ["e3"]
    assert external_ids(coalition, partner_id="aroma", external_id="e3 ") == []  # ids are matched whole


def test_a_partner_key_finds_its_own_transaction_by_its_id_alone(coalition, ledger, make_key):
    expect(earn(coalition, "s1", "m1", "10.00", partner_id="skyair"))
    aroma = make_key("partner", "aroma")
    assert external_ids(aroma, external_id="e2") == ["e2"]
    assert external_ids(aroma, external_id="s1") == []  # skyair's, never shown to aroma
    assert external_ids(make_key("finance", "skyair"), external_id="s1") == ["s1"]


@pytest.mark.parametrize("role", ["operator", "finance"])
def test_an_id_without_its_partner_is_422_naming_partner_id(coalition, ledger, make_key, role):
    # an id is unique only within its partner: across partners it would be a scan, not a lookup
    caller = coalition if role == "operator" else make_key("finance")
    response = caller.get("/api/v1/transactions", query_string={"external_id": "e2"})
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["errors"] == {"query": {"partner_id": ["external_id is a partner's own id: give partner_id with it"]}}


def test_list_transactions_with_limit_2_walks_every_page_without_duplicates(coalition, ledger):
    # 5 transactions in pages of 2: 2 + 2 + 1
    pages = walk_pages(coalition, "/api/v1/transactions", limit=2)
    assert [[item["external_id"] for item in page] for page in pages] == [["e1", "e2"], ["e3", "e4"], ["u1"]]


def test_newest_first_the_pages_run_down_from_the_newest_without_duplicates(coalition, ledger):
    pages = walk_pages(coalition, "/api/v1/transactions", limit=2, order="newest")
    assert [[item["external_id"] for item in page] for page in pages] == [["u1", "e4"], ["e3", "e2"], ["e1"]]
    # m1 has e1, e3, u1: newest first with a filter, [u1, e3] then [e1]
    pages = walk_pages(coalition, "/api/v1/transactions", limit=2, order="newest", member_id="m1")
    assert [[item["external_id"] for item in page] for page in pages] == [["u1", "e3"], ["e1"]]


def test_every_walk_of_the_pages_in_either_order_lists_each_match_once_in_id_order(coalition):
    """Whatever the page size, filter and order, walking every page lists the matching
    transactions once each, by id ascending or descending: a reference (the filtered ids,
    sorted) against the keyset pages. 24 earns: members m0..m3 in turn, at aroma and skyair
    in turn, so each filter matches a different interleaving of ids."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    posted = []
    for n in range(24):
        partner, amount = ("aroma", "100.00") if n % 2 else ("skyair", "1.00")
        body = expect(earn(coalition, f"p{n}", f"m{n % 4}", amount, partner_id=partner, occurred_at=days_ago(3)))
        posted.append(body)

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(limit=st.integers(1, 25), order=st.sampled_from(["oldest", "newest"]),
           filters=st.sampled_from([{}, {"member_id": "m1"}, {"partner_id": "aroma"},
                                    {"member_id": "m2", "partner_id": "skyair"}, {"member_id": "m9"}]))
    def walk(limit, order, filters):
        matching = [t["id"] for t in posted if all(t[field] == value for field, value in filters.items())]
        expected = sorted(matching, reverse=order == "newest")
        pages = walk_pages(coalition, "/api/v1/transactions", limit=limit, order=order, **filters)
        assert [t["id"] for page in pages for t in page] == expected
        assert all(len(page) == limit for page in pages[:-1]) and len(pages[-1]) <= limit

    walk()


def test_an_order_the_listing_does_not_know_is_422_naming_it(coalition, ledger):
    for path in ("/api/v1/transactions", "/api/v1/members/m1/history", "/api/v1/statements", "/api/v1/changes"):
        response = coalition.get(path, query_string={"order": "desc"})
        assert response.status_code == 422, (path, response.get_json())
        assert list(response.get_json()["errors"]["query"]) == ["order"]


def test_the_openapi_document_says_each_listing_is_oldest_first_unless_asked(coalition):
    """The default the document gives is the order a listing asked for none answers in
    (test_list_transactions_oldest_posting_first reads it so)."""
    paths = coalition.get("/api/openapi.json").get_json()["paths"]
    for path in ("/api/v1/transactions", "/api/v1/members/{member_id}/history", "/api/v1/statements", "/api/v1/changes"):
        (order,) = [parameter for parameter in paths[path]["get"]["parameters"] if parameter["name"] == "order"]
        assert order["schema"] == {"type": "string", "default": "oldest", "enum": ["oldest", "newest"]}, path


def test_list_transactions_last_full_page_has_no_next_cursor_or_an_empty_next_page(coalition, ledger):
    page = expect(coalition.get("/api/v1/transactions", query_string={"limit": 5}), 200)
    assert len(page["items"]) == 5
    if page["next_cursor"]:
        following = expect(coalition.get("/api/v1/transactions", query_string={"limit": 5, "cursor": page["next_cursor"]}), 200)
        assert following["items"] == []


def test_list_transactions_pagination_with_a_filter(coalition, ledger):
    # m1 has e1, e3, u1: with limit 2 → [e1, e3] then [u1]
    first = expect(coalition.get("/api/v1/transactions", query_string={"limit": 2, "member_id": "m1"}), 200)
    assert [i["external_id"] for i in first["items"]] == ["e1", "e3"]
    second = expect(coalition.get("/api/v1/transactions", query_string={"limit": 2, "member_id": "m1", "cursor": first["next_cursor"]}), 200)
    assert [i["external_id"] for i in second["items"]] == ["u1"]
    assert second["next_cursor"] is None


@pytest.mark.parametrize(
    "query",
    [{"limit": 0}, {"limit": -1}, {"limit": "abc"}, {"limit": 100000}, {"cursor": "not-a-cursor"},
     {"type": "refund"}, {"from": "yesterday"}, {"to": "2026-13-45T00:00:00+00:00"}, {"partner_id": "Not A Slug"}],
    ids=repr,
)
def test_list_transactions_with_bad_query_is_4xx(coalition, query):
    response = coalition.get("/api/v1/transactions", query_string=query)
    assert response.status_code in (400, 422), response.get_json()
    assert response.get_json()["code"] == response.status_code


@pytest.mark.parametrize("path", ["/api/v1/transactions", "/api/v1/members/m1/history", "/api/v1/statements",
                                  "/api/v1/changes"])
@pytest.mark.parametrize("limit", ["٢", "２", "+2", " 2", "2 ", "2_0"])
def test_a_limit_is_written_in_ascii_digits_as_ids_in_urls_are(coalition, limit, path):
    # int() reads each of these as a number: "٢" (Arabic-Indic) and "２" (fullwidth) as 2
    for external_id in ("t1", "t2", "t3"):
        expect(earn(coalition, external_id, "m1", "1000.00"))
    page = expect(coalition.get(path, query_string={"limit": "2"}), 200)
    if "transactions" in path or "history" in path:  # the three earns are there: a page holds 2
        assert len(page["items"]) == 2
    response = coalition.get(path, query_string={"limit": limit})
    assert expect(response, 422)["errors"]["query"]["limit"] == ["must be a whole number: write it in the digits 0-9"]


def test_a_reversal_naming_a_transaction_of_the_other_kind_is_an_unknown_original(coalition):
    """A burn reversal names a burn and an earn reversal an earn: another type is no original
    of theirs (422 unknown_original), not an over-reversal, nor a 500 reading a burn's lot."""
    expect(earn(coalition, "e-1", "m1", "1000.00", occurred_at=days_ago(5)))  # 1000.00 RUB × 0.1 = 100
    expect(burn(coalition, "b-1", "m1", 10, occurred_at=days_ago(3)))
    for response in (burn_reversal(coalition, "br-1", "e-1"), earn_reversal(coalition, "er-1", "b-1", points=5)):
        assert response.status_code == 422, response.get_json()
        assert response.get_json()["reason"] == "unknown_original"
    assert balance(coalition, "m1")["available"] == 90


def test_a_burn_reversal_is_priced_at_the_burns_redemption_rate_not_at_its_own_date(coalition):
    """A rate that starts between the burn and its reversal does not price the reversal: the
    points go back at the value they were redeemed at (SPEC §7), so its rate_ids are the burn's."""
    expect(earn(coalition, "e-1", "m1", "1000.00", occurred_at=days_ago(5)))
    burned = expect(burn(coalition, "b-1", "m1", 10, occurred_at=days_ago(3)))
    later = add_rate(coalition, "redemption", "0.02", effective_from=days_ago(2))
    reversed_ = expect(burn_reversal(coalition, "br-1", "b-1", occurred_at=days_ago(1)))
    assert reversed_["rate_ids"] == burned["rate_ids"] and later["id"] not in reversed_["rate_ids"]


def test_a_page_holds_100_transactions_unless_asked_otherwise(coalition):
    items = [{"external_id": f"e-{number}", "type": "earn", "partner_id": "aroma", "member_id": "m1",
              "occurred_at": days_ago(3), "amount": "100.00", "currency": "RUB"} for number in range(101)]
    expect(coalition.post("/api/v1/transactions/batch", json={"transactions": items}), 200)
    page = expect(coalition.get("/api/v1/transactions"), 200)
    assert len(page["items"]) == 100 and page["next_cursor"] is not None


def test_expiries_are_listed_by_their_type(coalition):
    assert expect(coalition.get("/api/v1/transactions", query_string={"type": "expiry"}), 200)["items"] == []


def test_the_openapi_document_says_what_a_transactions_settlement_and_lot_fields_mean(client):
    """SPEC §6's answer to a posting: a till's developer reads from the document alone
    whether a posting is late and in which period it settles, which rates and lots it
    used, and that an allocation's points are unsigned where the transaction's are
    signed. These fields had no description (an integrator's probe)."""
    schemas = expect(client.get("/api/openapi.json"), 200)["components"]["schemas"]
    transaction = schemas["TransactionOut"]["properties"]
    fields = ("shortfall_points", "original_id", "rate_ids", "period_id", "late", "allocations",
              "lot_id", "available_at", "expires_at")
    assert [name for name in fields if not transaction[name].get("description")] == []
    assert "closed" in transaction["late"]["description"]
    assert "unsigned" in schemas["AllocationOut"]["properties"]["points"]["description"]


def test_the_openapi_document_names_every_type_a_transaction_may_have(client):
    """A transaction's ``type`` is a string in the document (not an enum, so a later type
    does not break a client); its description names SPEC §6's six, expiry among them,
    which no partner posts but every listing may hold (a consumer probe found it bare)."""
    document = expect(client.get("/api/openapi.json"), 200)
    described = document["components"]["schemas"]["TransactionOut"]["properties"]["type"]
    assert "enum" not in described
    named = described["description"].split(";")[0].removeprefix("One of ").split(", ")
    assert named == ["earn", "bonus", "burn", "earn_reversal", "burn_reversal", "expiry"]
