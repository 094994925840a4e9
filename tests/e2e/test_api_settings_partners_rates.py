"""SPEC §5: settings, partners and rates, as the operator configures them."""

import pytest

from tests.conftest import days_ago
from tests.e2e.helpers import add_partner, add_rate, earn, expect, rate_body, setup_coalition

# --- settings ---------------------------------------------------------------


def test_settings_have_the_documented_defaults(operator):
    assert expect(operator.get("/api/v1/settings"), 200) == {
        "base_currency": "EUR",
        "timezone": "UTC",
        "period": "monthly",
        "points_ttl_days": 365,
        "max_backdate_days": 90,
        "auto_close_after_hours": 72,
    }


def test_put_settings_changes_only_the_given_fields(operator):
    body = expect(operator.put("/api/v1/settings", json={"points_ttl_days": 10, "timezone": "Europe/Moscow"}), 200)
    assert body["points_ttl_days"] == 10
    assert body["timezone"] == "Europe/Moscow"
    again = expect(operator.get("/api/v1/settings"), 200)
    assert again["points_ttl_days"] == 10
    assert again["timezone"] == "Europe/Moscow"
    assert again["max_backdate_days"] == 90
    assert again["period"] == "monthly"


@pytest.mark.parametrize(("path", "method"), [("/api/v1/settings", "put"), ("/api/v1/partners/aroma", "patch")])
def test_a_change_sent_without_a_body_changes_nothing_as_the_document_says(client, operator, path, method):
    """Only the fields given change: with no body, none. The OpenAPI document called the
    body required, and a client generated from it could not send this."""
    add_partner(operator, "aroma", "RUB")
    before = expect(operator.get(path), 200)
    assert expect(getattr(operator, method)(path), 200) == before == expect(operator.get(path), 200)
    document = client.get("/api/openapi.json").get_json()
    template = path.replace("aroma", "{partner_id}")
    assert document["paths"][template][method]["requestBody"]["required"] is False


@pytest.mark.parametrize("period", ["weekly", "daily", "monthly"])
def test_put_settings_accepts_each_period_kind(operator, period):
    assert expect(operator.put("/api/v1/settings", json={"period": period}), 200)["period"] == period


def test_base_currency_may_change_before_any_transaction(operator):
    assert expect(operator.put("/api/v1/settings", json={"base_currency": "USD"}), 200)["base_currency"] == "USD"


@pytest.mark.parametrize(
    "change",
    [
        {"points_ttl_days": 0},
        {"points_ttl_days": -5},
        {"points_ttl_days": "10"},
        {"points_ttl_days": 1.5},
        {"points_ttl_days": 10**30},
        {"max_backdate_days": -1},
        {"max_backdate_days": 0},  # every posting is older than 0 days by the time it arrives
        {"auto_close_after_hours": -1},
        {"timezone": "Mars/Olympus_Mons"},
        {"timezone": ""},
        # names that are not IANA zones, though ZoneInfo may open (or trip over) a file for them
        {"timezone": "America"},  # a directory of the zone database
        {"timezone": "America/"},
        {"timezone": "UTC/"},
        {"timezone": "../etc/passwd"},
        {"timezone": "/etc/localtime"},
        {"timezone": "Europe/Mo\x00scow"},
        {"timezone": "\x00"},
        {"timezone": "zone.tab"},  # a data file, not a zone
        {"timezone": "posixrules"},
        {"timezone": "right/UTC"},
        {"timezone": "localtime"},  # Debian's link to the machine's own zone
        {"period": "yearly"},
        {"base_currency": "eur"},
        {"base_currency": "EURO"},
        {"base_currency": "ABC"},
        {"base_currency": "XAU"},
    ],
    ids=repr,
)
def test_invalid_settings_are_422_and_change_nothing(operator, change):
    before = expect(operator.get("/api/v1/settings"), 200)
    response = operator.put("/api/v1/settings", json=change)
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["code"] == 422
    assert expect(operator.get("/api/v1/settings"), 200) == before


def test_base_currency_change_after_a_transaction_is_409(operator):
    setup_coalition(operator)
    expect(earn(operator, "t1", "m1", "100.00"))
    response = operator.put("/api/v1/settings", json={"base_currency": "USD"})
    assert response.status_code == 409
    assert response.get_json()["code"] == 409
    assert expect(operator.get("/api/v1/settings"), 200)["base_currency"] == "EUR"


def test_restating_the_same_base_currency_after_a_transaction_is_allowed(operator):
    setup_coalition(operator)
    expect(earn(operator, "t1", "m1", "100.00"))
    assert operator.put("/api/v1/settings", json={"base_currency": "EUR"}).status_code == 200


@pytest.mark.parametrize("change", [{"period": "daily"}, {"timezone": "Asia/Tokyo"}], ids=repr)
def test_calendar_change_after_a_transaction_is_409_and_changes_nothing(operator, change):
    # The transaction was posted into period 2026-11 (say); a daily calendar
    # would leave it in no period that can ever close, its money unsettled.
    setup_coalition(operator)
    expect(earn(operator, "t1", "m1", "100.00"))
    before = expect(operator.get("/api/v1/settings"), 200)
    response = operator.put("/api/v1/settings", json=change)
    assert (response.status_code, response.get_json()["code"]) == (409, 409)
    assert "calendar" in response.get_json()["message"]
    assert expect(operator.get("/api/v1/settings"), 200) == before


def test_calendar_change_after_a_close_is_409(operator):
    expect(operator.post("/api/v1/settlements/2026-01/close"), 200)
    response = operator.put("/api/v1/settings", json={"period": "weekly"})
    assert response.status_code == 409
    assert expect(operator.get("/api/v1/settings"), 200)["period"] == "monthly"


def test_base_currency_change_after_a_close_is_409(operator):
    # the closed period's statements are in EUR, and stay so
    expect(operator.post("/api/v1/settlements/2026-01/close"), 200)
    response = operator.put("/api/v1/settings", json={"base_currency": "USD"})
    assert response.status_code == 409
    assert expect(operator.get("/api/v1/settings"), 200)["base_currency"] == "EUR"


def test_restating_the_calendar_after_a_transaction_is_allowed(operator):
    setup_coalition(operator)
    expect(earn(operator, "t1", "m1", "100.00"))
    restated = {"period": "monthly", "timezone": "UTC", "points_ttl_days": 30}
    assert expect(operator.put("/api/v1/settings", json=restated), 200)["points_ttl_days"] == 30


def test_partner_key_may_not_read_settings(operator, make_key):
    add_partner(operator, "aroma", "RUB")
    assert make_key("partner", "aroma").get("/api/v1/settings").status_code == 403


# --- partners ---------------------------------------------------------------


def test_partner_with_a_cyrillic_name_is_created_and_read_back(operator):
    body = expect(operator.post("/api/v1/partners", json={"id": "aroma", "name": "Кофейня Арома", "category": "cafe", "currency": "RUB"}))
    assert body == {"id": "aroma", "name": "Кофейня Арома", "category": "cafe", "currency": "RUB", "hold_days": 0, "status": "active"}
    assert expect(operator.get("/api/v1/partners/aroma"), 200)["name"] == "Кофейня Арома"


@pytest.mark.parametrize(
    ("name", "shown"),
    [("Aroma\nCafé", "U+000A at character 6"), ("Aroma\x1b[2J", "U+001B at character 6"),
     ("Aroma\tCafé", "U+0009 at character 6"), ("Aroma\x85", "U+0085 at character 6")],
    ids=["line-feed", "escape", "tab", "next-line"],
)
def test_a_partner_name_with_a_control_character_is_422_naming_it(operator, name, shown):
    """A statement, a member's history and a terminal show the name: a line feed would
    break the line it stands in, an escape would act on the terminal."""
    refused = operator.post("/api/v1/partners", json={"id": "aroma", "name": name, "category": "cafe", "currency": "RUB"})
    message = f"must not contain control characters: {shown}"
    assert expect(refused, 422)["errors"] == {"json": {"name": [message]}}
    assert operator.get("/api/v1/partners/aroma").status_code == 404
    add_partner(operator, "aroma", "RUB")
    before = expect(operator.get("/api/v1/partners/aroma"), 200)
    assert expect(operator.patch("/api/v1/partners/aroma", json={"name": name}), 422)["errors"] == {"json": {"name": [message]}}
    assert expect(operator.get("/api/v1/partners/aroma"), 200) == before


def test_a_partner_name_may_join_and_direct_its_letters(operator):
    """Format characters are not control characters: Persian writes a zero-width
    non-joiner inside words, emoji join with a zero-width joiner, and a mixed name may
    isolate its right-to-left part."""
    names = ["کافه\u200cنادری", "Family \U0001f468\u200d\U0001f469\u200d\U0001f467", "Café \u2067نادي\u2069"]
    for number, name in enumerate(names):
        body = {"id": f"partner-{number}", "name": name, "category": "cafe", "currency": "EUR"}
        assert expect(operator.post("/api/v1/partners", json=body))["name"] == name


def test_partner_listing_contains_the_reserved_coalition_partner_and_new_ones(operator):
    add_partner(operator, "aroma", "RUB")
    ids = [partner["id"] for partner in expect(operator.get("/api/v1/partners"), 200)]
    assert "coalition" in ids
    assert "aroma" in ids


def test_partner_hold_days_is_stored(operator):
    body = add_partner(operator, "hotel", "EUR", "travel", hold_days=7)
    assert body["hold_days"] == 7


def test_a_new_partner_sent_with_hold_days_and_status_null_takes_their_defaults(operator):
    # a typed client writes every field it declares, null where unset
    body = {"id": "aroma", "name": "Aroma", "category": "cafe", "currency": "RUB", "hold_days": None, "status": None}
    created = expect(operator.post("/api/v1/partners", json=body), 201)
    assert (created["hold_days"], created["status"]) == (0, "active")
    body = {"id": "hotel", "name": None, "category": "travel", "currency": "EUR"}
    assert expect(operator.post("/api/v1/partners", json=body), 422)["errors"] == {"json": {"name": ["must not be null"]}}


@pytest.mark.parametrize(
    ("path", "method", "change", "field"),
    [("/api/v1/partners/aroma", "patch", {"name": "Aroma 2", "hold_days": None}, "hold_days"),
     ("/api/v1/settings", "put", {"points_ttl_days": 30, "auto_close_after_hours": None}, "auto_close_after_hours")],
    ids=["partner", "settings"],
)
def test_a_null_in_a_change_is_refused_in_words_that_say_to_leave_the_field_out(operator, path, method, change, field):
    """Null is read two ways in a change (JSON Merge Patch: reset the field; a typed client's
    unset field: keep it), and the service resets nothing: it says what to send instead."""
    add_partner(operator, "aroma", "RUB", hold_days=3)
    before = expect(operator.get(path), 200)
    errors = expect(getattr(operator, method)(path, json=change), 422)["errors"]["json"]
    assert errors == {field: ["null is not a value here: leave the field out to keep what it is"]}
    assert expect(operator.get(path), 200) == before


@pytest.mark.parametrize("slug", ["a1", "aroma-cafe-2", "0day", "a" * 63])
def test_partner_slug_accepts_valid_ids(operator, slug):
    add_partner(operator, slug, "RUB")


@pytest.mark.parametrize(
    "slug",
    ["a", "Aroma", "-aroma", "aroma_cafe", "aroma cafe", "кофе", "a" * 64, "aroma\x00", "", "aroma/x",
     "aroma\n"],  # a final newline: a regex's $ matches before it
    ids=repr,
)
def test_partner_slug_violations_are_422(operator, slug):
    response = operator.post("/api/v1/partners", json={"id": slug, "name": "X", "category": "cafe", "currency": "RUB"})
    assert response.status_code == 422, response.get_json()
    assert "id" in response.get_json()["errors"]["json"]


def test_a_currency_code_with_a_final_newline_is_422(operator):
    response = operator.post("/api/v1/partners", json={"id": "aroma", "name": "X", "category": "cafe", "currency": "RUB\n"})
    assert response.status_code == 422, response.get_json()
    assert "currency" in response.get_json()["errors"]["json"]
    assert operator.get("/api/v1/partners/aroma").status_code == 404


def test_duplicate_partner_id_is_409(operator):
    add_partner(operator, "aroma", "RUB", name="Кофейня Арома")
    response = operator.post("/api/v1/partners", json={"id": "aroma", "name": "Other", "category": "shop", "currency": "EUR"})
    assert response.status_code == 409
    assert expect(operator.get("/api/v1/partners/aroma"), 200)["name"] == "Кофейня Арома"


def test_reserved_coalition_partner_cannot_be_created_again(operator):
    response = operator.post("/api/v1/partners", json={"id": "coalition", "name": "X", "category": "other", "currency": "EUR"})
    assert response.status_code == 409


@pytest.mark.parametrize(
    "change",
    [
        {"category": "bakery"},
        {"currency": "rub"},
        {"currency": "ABC"},
        {"currency": "XAU"},  # gold: ISO 4217, but no one's money
        {"currency": "XXX"},  # "no currency"
        {"currency": "CLF"},  # a Chilean unit of account, not money
        {"hold_days": -1},
        {"hold_days": "7"},
        {"status": "closed"},
        {"name": ""},
        {"name": "   "},
        {"name": "\t\n"},
        {"name": "\u200b"},  # a zero-width space: nothing to read
        {"name": "Арома\x00"},
    ],
    ids=repr,
)
def test_invalid_partner_fields_are_422(operator, change):
    body = {"id": "aroma", "name": "Aroma", "category": "cafe", "currency": "RUB", **change}
    response = operator.post("/api/v1/partners", json=body)
    assert response.status_code == 422, response.get_json()
    assert operator.get("/api/v1/partners/aroma").status_code == 404


def test_unknown_partner_is_404_on_get(operator):
    response = operator.get("/api/v1/partners/nobody")
    assert response.status_code == 404
    assert response.get_json()["code"] == 404


def test_unknown_partner_is_404_on_patch(operator):
    assert operator.patch("/api/v1/partners/nobody", json={"status": "suspended"}).status_code == 404


def test_a_partner_read_edited_and_sent_back_whole_is_changed_but_its_id_never(operator):
    # a client that PATCHes back what it read sent "id" too: it was 422 "Unknown field."
    add_partner(operator, "aroma", "RUB")
    read = expect(operator.get("/api/v1/partners/aroma"), 200)
    changed = expect(operator.patch("/api/v1/partners/aroma", json={**read, "name": "Aroma Café"}), 200)
    assert changed == {**read, "name": "Aroma Café"}
    response = operator.patch("/api/v1/partners/aroma", json={"id": "aroma-2", "name": "Other"})
    assert expect(response, 422)["errors"] == {"json": {"id": [
        "is the partner's id, which cannot be changed: add a partner under the new id"]}}
    assert expect(operator.get("/api/v1/partners/aroma"), 200)["name"] == "Aroma Café"
    assert operator.get("/api/v1/partners/aroma-2").status_code == 404


def test_patch_changes_a_partners_name(operator):
    add_partner(operator, "aroma", "RUB")
    assert expect(operator.patch("/api/v1/partners/aroma", json={"name": "Кофейня Арома 2"}), 200)["name"] == "Кофейня Арома 2"


def test_suspended_partners_new_transactions_are_422_partner_suspended(operator):
    setup_coalition(operator)
    assert expect(operator.patch("/api/v1/partners/aroma", json={"status": "suspended"}), 200)["status"] == "suspended"
    response = earn(operator, "t1", "m1", "100.00")
    assert response.status_code == 422
    assert response.get_json()["reason"] == "partner_suspended"


def test_suspended_partners_key_cannot_post_either(operator, make_key):
    setup_coalition(operator)
    aroma = make_key("partner", "aroma")
    expect(operator.patch("/api/v1/partners/aroma", json={"status": "suspended"}), 200)
    response = earn(aroma, "t1", "m1", "100.00")
    assert response.status_code == 422
    assert response.get_json()["reason"] == "partner_suspended"


def test_reactivated_partner_may_post_again(operator):
    setup_coalition(operator)
    expect(operator.patch("/api/v1/partners/aroma", json={"status": "suspended"}), 200)
    expect(operator.patch("/api/v1/partners/aroma", json={"status": "active"}), 200)
    expect(earn(operator, "t1", "m1", "100.00"))


def test_the_operators_own_partner_cannot_be_suspended_and_still_issues_bonuses(operator):
    setup_coalition(operator)
    response = operator.patch("/api/v1/partners/coalition", json={"status": "suspended"})
    assert response.status_code == 422
    assert response.get_json()["errors"]["json"]["status"] == [
        "the coalition partner is the operator itself and cannot be suspended"
    ]
    assert expect(operator.get("/api/v1/partners/coalition"), 200)["status"] == "active"
    bonus = {"external_id": "b1", "type": "bonus", "partner_id": "coalition", "member_id": "m1",
             "occurred_at": days_ago(1), "points": 50, "reason": "goodwill"}
    assert expect(operator.post("/api/v1/transactions", json=bonus), 201)["points"] == 50


def test_suspending_one_partner_does_not_affect_another(operator):
    setup_coalition(operator)
    expect(operator.patch("/api/v1/partners/aroma", json={"status": "suspended"}), 200)
    expect(earn(operator, "t1", "m1", "100.00", partner_id="skyair"))


# --- rates: creation and scope ---------------------------------------------

SIX_KINDS = [
    ("earn", {"value": "0.1", "partner_id": "aroma"}),
    ("earn", {"value": "0.2", "partner_id": "aroma", "category": "coffee"}),
    ("promo", {"value": "2", "partner_id": "aroma", "effective_to": days_ago(-30)}),
    ("threshold", {"value": "50", "partner_id": "aroma", "min_amount": "1000.00"}),
    ("redemption", {"value": "0.01"}),
    ("redemption", {"value": "0.012", "partner_id": "aroma"}),
    ("fee", {"value": "0.002"}),
    ("fee", {"value": "0.003", "partner_id": "aroma"}),
    ("fx", {"value": "0.0110", "currency": "RUB"}),
]


@pytest.mark.parametrize(("kind", "fields"), SIX_KINDS, ids=[f"{k}-{sorted(f)}" for k, f in SIX_KINDS])
def test_rate_of_each_kind_is_created_with_its_scope(operator, kind, fields):
    add_partner(operator, "aroma", "RUB")
    body = add_rate(operator, kind, **fields)
    assert body["id"]
    assert body["kind"] == kind
    assert body["partner_id"] == fields.get("partner_id")
    assert body["category"] == fields.get("category")
    assert body["currency"] == fields.get("currency")


def test_a_threshold_entered_wrong_is_withdrawn_by_a_version_of_zero(operator):
    """A version replaces another only in its scope and cannot be ended early: 0 at the wrong
    threshold's min_amount is how the operator takes it back (docs/operations.md). aroma
    earns 0.1 a RUB; 50 points from 300.00 RUB, then 0 there from the same instant."""
    setup_coalition(operator)
    wrong = add_rate(operator, "threshold", "50", partner_id="aroma", min_amount="300.00")
    assert expect(earn(operator, "t1", "m1", "350.00"))["points"] == 35 + 50
    # from the same instant as the wrong one, named: each add_rate dates its rate anew, a second
    # apart when the clock passes a second between them
    withdrawn = add_rate(operator, "threshold", "0", partner_id="aroma", min_amount="300.00",
                         effective_from=wrong["effective_from"])
    assert (withdrawn["value"], withdrawn["effective_from"]) == ("0", wrong["effective_from"])
    after = expect(earn(operator, "t2", "m1", "350.00"))
    assert after["points"] == 35  # floor(350.00 × 0.1), no bonus
    assert withdrawn["id"] in after["rate_ids"] and wrong["id"] not in after["rate_ids"]


def test_rate_value_is_returned_as_written(operator):
    """SPEC §7 writes an fx rate "0.0110": the decimals the operator wrote are kept,
    however the database stores numbers, and never turn into an exponent."""
    written = {"0.0110": "RUB", "2": "USD", "0.000000000001": "JPY", "1.10": "GBP"}
    created = [add_rate(operator, "fx", value, currency=currency)["value"]
               for value, currency in written.items()]
    assert created == list(written)
    listed = expect(operator.get("/api/v1/rates?kind=fx"), 200)
    assert [rate["value"] for rate in listed] == list(written)


def test_a_thresholds_amount_is_returned_as_written(operator):
    """PostgreSQL padded it to four decimals ("12.5000") where SQLite kept "12.5"."""
    add_partner(operator, "gym", "KWD", "gym")
    written = ["12.5", "100", "5.000"]
    created = [add_rate(operator, "threshold", "7", partner_id="gym", min_amount=amount)["min_amount"]
               for amount in written]
    listed = expect(operator.get("/api/v1/rates?kind=threshold"), 200)
    assert created == [rate["min_amount"] for rate in listed] == written


@pytest.mark.parametrize(
    ("kind", "fields"),
    [
        ("earn", {"value": "0.1"}),  # earn without partner_id
        ("promo", {"value": "2", "partner_id": "aroma"}),  # promo without effective_to
        ("fx", {"value": "0.011"}),  # fx without currency
        ("threshold", {"value": "50", "partner_id": "aroma"}),  # threshold without min_amount
        ("threshold", {"value": "50.5", "partner_id": "aroma", "min_amount": "1000.00"}),  # fractional points
        ("earn", {"value": "0.1", "partner_id": "nobody"}),  # unknown partner
        ("earn", {"value": "-0.1", "partner_id": "aroma"}),  # negative
        ("earn", {"value": "0", "partner_id": "aroma"}),  # earns nothing
        ("earn", {"value": "NaN", "partner_id": "aroma"}),
        ("earn", {"value": "Infinity", "partner_id": "aroma"}),
        ("earn", {"value": "abc", "partner_id": "aroma"}),
        ("earn", {"value": "0.1", "partner_id": "aroma", "category": "  "}),  # a blank category
        ("redemption", {"value": "0.01", "category": "coffee"}),  # only earn/promo have a category
        ("redemption", {"value": "0.01", "min_amount": "10"}),  # only a threshold has min_amount
        ("fx", {"value": "0.011", "currency": "ABC"}),  # not ISO 4217
        ("fx", {"value": "0.011", "currency": "RUB", "partner_id": "aroma"}),  # fx is coalition-wide
        ("fx", {"value": "1.1", "currency": "EUR"}),  # the base currency is worth 1 of itself
        ("fee", {"value": "0.001", "partner_id": "coalition"}),  # the operator pays itself no fee
        ("bogus", {"value": "1"}),
    ],
    ids=repr,
)
def test_rate_scope_violations_are_422(operator, kind, fields):
    add_partner(operator, "aroma", "RUB")
    response = operator.post("/api/v1/rates", json=rate_body(kind, **fields))
    assert response.status_code == 422, response.get_json()
    assert expect(operator.get("/api/v1/rates"), 200) == []


def test_a_rate_wrong_in_several_fields_is_422_naming_each(operator):
    body = rate_body("fx", "0.011", currency="RUB", partner_id="aroma", min_amount="10",
                     effective_to=days_ago(400))
    error = expect(operator.post("/api/v1/rates", json=body), 422)
    assert error["errors"] == {"json": {
        "min_amount": ["only a threshold has a min_amount"],
        "partner_id": ["an fx rate is coalition-wide"],
        "effective_to": ["effective_to must be after effective_from"],
    }}
    assert error["message"] == ("min_amount: only a threshold has a min_amount; partner_id: an fx rate is"
                                " coalition-wide; effective_to: effective_to must be after effective_from")
    assert expect(operator.get("/api/v1/rates"), 200) == []


def test_rate_effective_to_before_effective_from_is_422(operator):
    add_partner(operator, "aroma", "RUB")
    body = rate_body("promo", "2", partner_id="aroma", effective_from=days_ago(10), effective_to=days_ago(20))
    assert operator.post("/api/v1/rates", json=body).status_code == 422


def test_rate_effective_from_without_offset_is_422(operator):
    body = {"kind": "redemption", "value": "0.01", "effective_from": "2026-01-01T00:00:00"}
    assert operator.post("/api/v1/rates", json=body).status_code == 422


# --- rates: listing filters -----------------------------------------------


@pytest.fixture
def rate_versions(operator):
    """aroma earn 0.1 from 100 days ago, then 0.5 from 10 days ago; a promo 30→20 days ago;
    skyair earn 2; a coalition-wide redemption."""
    add_partner(operator, "aroma", "RUB")
    add_partner(operator, "skyair", "EUR", "travel")
    return {
        "earn_v1": add_rate(operator, "earn", "0.1", partner_id="aroma", effective_from=days_ago(100))["id"],
        "earn_v2": add_rate(operator, "earn", "0.5", partner_id="aroma", effective_from=days_ago(10))["id"],
        "promo": add_rate(operator, "promo", "2", partner_id="aroma", effective_from=days_ago(30), effective_to=days_ago(20))["id"],
        "sky_earn": add_rate(operator, "earn", "2", partner_id="skyair", effective_from=days_ago(100))["id"],
        "redemption": add_rate(operator, "redemption", "0.01", effective_from=days_ago(100))["id"],
    }


def rate_ids(operator, **query) -> list[int]:
    return sorted(rate["id"] for rate in expect(operator.get("/api/v1/rates", query_string=query), 200))


def test_rates_list_without_filters_returns_every_version(operator, rate_versions):
    assert rate_ids(operator) == sorted(rate_versions.values())


def test_rates_filter_by_kind(operator, rate_versions):
    r = rate_versions
    assert rate_ids(operator, kind="earn") == sorted([r["earn_v1"], r["earn_v2"], r["sky_earn"]])


def test_rates_filter_by_partner(operator, rate_versions):
    r = rate_versions
    assert rate_ids(operator, partner_id="aroma") == sorted([r["earn_v1"], r["earn_v2"], r["promo"]])


def test_rates_filter_by_kind_and_partner(operator, rate_versions):
    r = rate_versions
    assert rate_ids(operator, kind="earn", partner_id="aroma") == sorted([r["earn_v1"], r["earn_v2"]])


def test_rates_filter_at_a_time_inside_the_promo_window(operator, rate_versions):
    # 25 days ago: earn v1 (from 100 days ago) and the promo (30→20 days ago); v2 starts only 10 days ago
    r = rate_versions
    assert rate_ids(operator, partner_id="aroma", at=days_ago(25)) == sorted([r["earn_v1"], r["promo"]])


def test_rates_filter_at_a_time_after_the_promo_ended(operator, rate_versions):
    # 15 days ago: the promo ended 20 days ago, v2 has not started → only v1
    r = rate_versions
    assert rate_ids(operator, kind="promo", at=days_ago(15)) == []
    assert rate_ids(operator, kind="earn", partner_id="aroma", at=days_ago(15)) == [r["earn_v1"]]


def test_rates_filter_at_a_time_before_any_rate(operator, rate_versions):
    assert rate_ids(operator, at=days_ago(150)) == []


def test_rates_filter_at_returns_only_the_version_in_force_not_the_superseded_one(operator, rate_versions):
    # SPEC §5: "the rate in force at time t is the one with the latest effective_from ≤ t";
    # 5 days ago v2 (from 10 days ago) has replaced v1 (from 100 days ago) in the same scope.
    r = rate_versions
    assert rate_ids(operator, kind="earn", partner_id="aroma", at=days_ago(5)) == [r["earn_v2"]]


def test_rates_filter_with_invalid_kind_is_422(operator):
    assert operator.get("/api/v1/rates", query_string={"kind": "bogus"}).status_code == 422


def test_rates_filter_with_invalid_at_is_422(operator):
    assert operator.get("/api/v1/rates", query_string={"at": "yesterday"}).status_code == 422


def test_rate_for_a_later_version_changes_what_an_earn_gets(operator, rate_versions):
    # 15 days ago (after the promo) v1 applies: floor(100.00 × 0.1) = 10; 5 days ago v2 applies: floor(100.00 × 0.5) = 50
    old = expect(earn(operator, "t1", "m1", "100.00", occurred_at=days_ago(15)))
    new = expect(earn(operator, "t2", "m1", "100.00", occurred_at=days_ago(5)))
    assert old["points"] == 10
    assert new["points"] == 50
    assert rate_versions["earn_v1"] in old["rate_ids"]
    assert rate_versions["earn_v2"] in new["rate_ids"]


def test_creating_a_partner_that_breaks_another_constraint_is_not_called_a_duplicate(database):
    # the API refuses a negative hold_days first; a caller that skips it meets the CHECK
    # constraint, and must not be told the id exists
    from sqlalchemy.exc import IntegrityError

    from coalition.services import partners

    fields = {"id": "fresh", "name": "Fresh", "category": "shop", "currency": "EUR", "hold_days": -1}
    with pytest.raises(IntegrityError):
        database.run(partners.create, fields)


def test_rates_filter_by_an_fx_rates_currency(operator):
    """A daily fx rate per currency for years is tens of thousands of versions: one
    currency's history is asked for by its code, not picked out of all of them."""
    jpy = [add_rate(operator, "fx", value, currency="JPY", effective_from=days_ago(days))["id"]
           for value, days in (("0.0061", 3), ("0.0062", 2))]
    kwd = add_rate(operator, "fx", "3.01", currency="KWD", effective_from=days_ago(2))["id"]
    assert rate_ids(operator, currency="JPY") == jpy
    assert rate_ids(operator, kind="fx", currency="KWD") == [kwd]
    assert rate_ids(operator, currency="JPY", at=days_ago(1)) == [jpy[1]]
    assert rate_ids(operator, currency="JPY", at=days_ago(4)) == []
    assert operator.get("/api/v1/rates", query_string={"currency": "yen"}).status_code == 422


def test_rates_in_force_are_listed_without_reading_every_version(operator, rate_versions):
    """?at= is the console's default: it chooses from the catalog's copy of the versions,
    and reads no rate row (22,000 fx versions took 0.46 s to load for the 20 in force)."""
    from sqlalchemy.engine import Engine

    from tests.plans import sent

    listed = expect(operator.get("/api/v1/rates", query_string={"at": days_ago(5)}), 200)
    with sent(Engine) as statements:
        again = expect(operator.get("/api/v1/rates", query_string={"at": days_ago(5)}), 200)
    read = [statement for statement, _ in statements if "FROM rates" in statement]
    assert again == listed and read == []
    assert [rate["id"] for rate in listed] == sorted(
        [rate_versions["earn_v2"], rate_versions["sky_earn"], rate_versions["redemption"]]
    )


# --- the OpenAPI document ---------------------------------------------------


def test_the_openapi_document_says_what_each_setting_and_partner_field_means(client):
    """An operator's developer sets a coalition up from /api/openapi.json alone: what
    points_ttl_days or hold_days count, which settings a first posting fixes. The
    settings and a partner's hold_days and status had no description (an integrator's
    probe)."""
    schemas = expect(client.get("/api/openapi.json"), 200)["components"]["schemas"]
    for schema in ("Settings", "SettingsOut"):
        undescribed = [name for name, field in schemas[schema]["properties"].items() if not field.get("description")]
        assert undescribed == [], schema
    assert "2026-W43" in schemas["Settings"]["properties"]["period"]["description"]
    assert "409" in schemas["Settings"]["properties"]["timezone"]["description"]
    assert "409" in schemas["Settings"]["properties"]["base_currency"]["description"]
    for schema in ("Partner", "PartnerOut", "PartnerPatch"):
        assert "spent" in schemas[schema]["properties"]["hold_days"]["description"], schema
        assert "partner_suspended" in schemas[schema]["properties"]["status"]["description"], schema


def test_the_openapi_document_gives_hold_days_and_status_defaults_as_a_new_partners(client, operator):
    """A change that leaves hold_days and status out keeps them; the description PATCH shares
    with POST and the answer said "0 if not given" and "active if not given" there too."""
    add_partner(operator, "aroma", "RUB", hold_days=7)
    expect(operator.patch("/api/v1/partners/aroma", json={"status": "suspended"}), 200)
    kept = expect(operator.patch("/api/v1/partners/aroma", json={"name": "Aroma 2"}), 200)
    assert (kept["hold_days"], kept["status"]) == (7, "suspended")
    schemas = expect(client.get("/api/openapi.json"), 200)["components"]["schemas"]
    for schema in ("Partner", "PartnerPatch", "PartnerOut"):
        described = schemas[schema]["properties"]
        assert described["hold_days"]["description"].endswith("a new partner's is 0 if not given"), schema
        assert described["status"]["description"].endswith("a new partner is active if not given"), schema


def test_the_openapi_document_says_what_a_rates_value_means_and_names_by_kind(client):
    """SPEC §5's table of rate kinds, which a developer needs to add the rates a coalition
    runs on: what value means and what each kind names or refuses. The document had
    kind's six names and a value such as 0.1, nothing more (an integrator's probe)."""
    body = expect(client.get("/api/openapi.json"), 200)["paths"]["/api/v1/rates"]["post"]["requestBody"]
    described = body["description"]
    meanings = {
        "earn": "points per 1 unit of the partner's currency",
        "promo": "a multiplier on an earn's points",
        "threshold": "whole bonus points for a purchase of at least min_amount",
        "redemption": "base currency paid per point redeemed",
        "fee": "base currency the issuer pays the operator per point issued",
        "fx": "base currency per 1 unit of currency",
    }
    for kind, meaning in meanings.items():
        assert f"{kind}: {meaning}" in described, kind
    assert "promo: " in described and "needs partner_id and effective_to" in described
    assert "threshold: " in described and "needs partner_id and min_amount" in described
    assert "fx: " in described and "needs currency and names no partner_id" in described

