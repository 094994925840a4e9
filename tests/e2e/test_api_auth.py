"""SPEC §4: keys, roles and what each key may see."""

import pytest
from sqlalchemy import select

from coalition.db import models
from tests.conftest import Caller, days_ago
from tests.e2e.helpers import (
    add_partner,
    burn,
    earn,
    expect,
    history,
    list_all,
    setup_coalition,
)


def assert_401(response):
    assert response.status_code == 401
    body = response.get_json()
    assert body["code"] == 401
    assert body["status"]
    assert body["message"]


# --- 401: who is calling -------------------------------------------------


def test_request_without_a_key_is_401_json(client):
    assert_401(client.get("/api/v1/partners"))


def test_request_with_an_unknown_key_is_401_json(client):
    assert_401(Caller(client, "coal_not-a-key-this-service-issued").get("/api/v1/partners"))


def test_request_with_a_non_bearer_scheme_is_401(client, operator):
    key = operator.headers["Authorization"].removeprefix("Bearer ")
    assert_401(client.get("/api/v1/partners", headers={"Authorization": f"Basic {key}"}))


def test_unauthenticated_post_writes_nothing(client, operator):
    response = client.post("/api/v1/partners", json={"id": "aroma", "name": "A", "category": "cafe", "currency": "RUB"})
    assert_401(response)
    assert operator.get("/api/v1/partners/aroma").status_code == 404


# --- keys ---------------------------------------------------------------


def test_operator_creates_a_key_and_gets_id_key_role_partner_id(operator):
    add_partner(operator, "aroma", "RUB")
    body = expect(operator.post("/api/v1/keys", json={"role": "partner", "partner_id": "aroma", "name": "till 7"}))
    assert body["role"] == "partner"
    assert body["partner_id"] == "aroma"
    assert body["id"]
    assert body["key"]


def test_the_answer_carrying_a_new_key_may_not_be_cached(operator):
    """The key is shown once (SPEC §4): no proxy or browser cache may keep a copy."""
    response = operator.post("/api/v1/keys", json={"role": "finance"})
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"


def test_no_api_answer_may_be_cached_or_read_as_another_type(operator, make_key, client):
    """Balances, money and keys: no cache, a browser's or a proxy's, keeps an answer the
    view did not allow, refused ones included; and none is sniffed for another type."""
    add_partner(operator, "aroma", "RUB")
    aroma = make_key("partner", "aroma")
    answers = {
        "a partner": operator.get("/api/v1/partners/aroma"),
        "a list": operator.get("/api/v1/partners"),
        "a partner's key": aroma.get("/api/v1/transactions"),
        "no key": client.get("/api/v1/partners"),
        "another role's": aroma.get("/api/v1/keys"),
        "unknown": operator.get("/api/v1/partners/nobody"),
        "invalid": operator.post("/api/v1/partners", json={}),
    }
    assert {name: r.status_code for name, r in answers.items()} == {
        "a partner": 200, "a list": 200, "a partner's key": 200,
        "no key": 401, "another role's": 403, "unknown": 404, "invalid": 422,
    }
    for name, response in answers.items():
        assert response.headers["Cache-Control"] == "no-store", name
        assert response.headers["X-Content-Type-Options"] == "nosniff", name


@pytest.mark.parametrize("name", ["   ", "\u200b", "\x7f"], ids=["spaces", "zero-width", "delete"])
def test_a_key_named_with_nothing_to_read_is_422_and_makes_no_key(operator, name):
    """A name is how the operator finds the key to revoke; one that shows nothing would
    list as blank."""
    before = expect(operator.get("/api/v1/keys"), 200)
    response = operator.post("/api/v1/keys", json={"role": "finance", "name": name})
    assert response.status_code == 422
    assert response.get_json()["errors"]["json"] == {"name": ["must not be blank"]}
    assert expect(operator.get("/api/v1/keys"), 200) == before


def test_a_key_named_with_a_terminal_escape_is_422_and_makes_no_key(operator):
    """`coalition keys list` shows names in a terminal, where an escape would act."""
    before = expect(operator.get("/api/v1/keys"), 200)
    response = operator.post("/api/v1/keys", json={"role": "finance", "name": "till 7\x1b]0;owned\x07"})
    assert expect(response, 422)["errors"]["json"] == {"name": ["must not contain control characters: U+001B at character 7"]}
    assert expect(operator.get("/api/v1/keys"), 200) == before


def test_a_key_without_a_name_is_made_nameless(operator):
    assert expect(operator.post("/api/v1/keys", json={"role": "finance", "name": None}))["name"] is None


def test_a_created_key_works_for_its_role(client, operator):
    body = expect(operator.post("/api/v1/keys", json={"role": "finance"}))
    finance = Caller(client, body["key"])
    assert finance.get("/api/v1/settings").status_code == 200


def test_each_created_key_is_different(operator):
    first = expect(operator.post("/api/v1/keys", json={"role": "finance"}))
    second = expect(operator.post("/api/v1/keys", json={"role": "finance"}))
    assert first["key"] != second["key"]
    assert first["id"] != second["id"]


def test_a_key_is_stored_only_as_a_hash(operator, database):
    key = expect(operator.post("/api/v1/keys", json={"role": "finance"}))["key"]
    with database.transaction() as session:
        rows = session.scalars(select(models.ApiKey)).all()
        stored = [str(value) for row in rows for value in vars(row).values()]
    assert not any(key in value for value in stored)


def test_revoked_key_gets_401(client, operator):
    body = expect(operator.post("/api/v1/keys", json={"role": "finance"}))
    finance = Caller(client, body["key"])
    assert finance.get("/api/v1/settings").status_code == 200
    assert operator.delete(f"/api/v1/keys/{body['id']}").status_code in (200, 204)
    assert_401(finance.get("/api/v1/settings"))


def test_revoking_an_unknown_key_is_404(operator):
    assert operator.delete("/api/v1/keys/key_doesnotexist").status_code == 404


def test_key_with_unknown_role_is_422(operator):
    assert operator.post("/api/v1/keys", json={"role": "admin"}).status_code == 422


def test_partner_key_without_partner_id_is_422(operator):
    assert operator.post("/api/v1/keys", json={"role": "partner"}).status_code == 422


def test_key_for_an_unknown_partner_is_422(operator):
    assert operator.post("/api/v1/keys", json={"role": "partner", "partner_id": "nobody"}).status_code == 422


# --- 403: outside the role ---------------------------------------------

OPERATOR_ACTIONS = [
    ("post", "/api/v1/keys", {"role": "finance"}),
    ("post", "/api/v1/partners", {"id": "newco", "name": "New", "category": "shop", "currency": "EUR"}),
    ("patch", "/api/v1/partners/aroma", {"status": "suspended"}),
    ("put", "/api/v1/settings", {"points_ttl_days": 10}),
    ("post", "/api/v1/rates", {"kind": "redemption", "value": "0.02", "effective_from": "2026-01-01T00:00:00+00:00"}),
]


@pytest.mark.parametrize("role", ["finance", "partner"])
@pytest.mark.parametrize(("method", "path", "body"), OPERATOR_ACTIONS, ids=[a[0] + " " + a[1] for a in OPERATOR_ACTIONS])
def test_finance_and_partner_keys_get_403_on_operator_actions(operator, make_key, role, method, path, body):
    add_partner(operator, "aroma", "RUB")
    caller = make_key(role, "aroma" if role == "partner" else None)
    response = getattr(caller, method)(path, json=body)
    assert response.status_code == 403, response.get_json()
    # which key would do: "a finance key may not do this" left the caller to guess
    assert response.get_json()["message"] == f"a {role} key may not do this: it takes a key of role operator"


def test_a_403_names_every_role_that_may(make_key):
    response = make_key("finance").post("/api/v1/transactions", json={})
    assert expect(response, 403)["message"] == (
        "a finance key may not do this: it takes a key of role operator or partner")


@pytest.mark.parametrize("role", ["finance", "partner"])
def test_finance_and_partner_keys_get_403_on_key_revocation(operator, make_key, role):
    add_partner(operator, "aroma", "RUB")
    target = expect(operator.post("/api/v1/keys", json={"role": "finance"}))
    caller = make_key(role, "aroma" if role == "partner" else None)
    assert caller.delete(f"/api/v1/keys/{target['id']}").status_code == 403


def test_a_forbidden_action_changes_nothing(operator, make_key):
    add_partner(operator, "aroma", "RUB")
    make_key("partner", "aroma").patch("/api/v1/partners/aroma", json={"status": "suspended"})
    assert expect(operator.get("/api/v1/partners/aroma"), 200)["status"] == "active"


def test_finance_key_may_not_post_transactions(operator, make_key):
    setup_coalition(operator)
    finance = make_key("finance")
    assert earn(finance, "t1", "m1", "100.00").status_code == 403


def test_finance_key_may_read_settings_partners_and_rates(operator, make_key):
    setup_coalition(operator)
    finance = make_key("finance")
    for path in ("/api/v1/settings", "/api/v1/partners", "/api/v1/partners/aroma", "/api/v1/rates"):
        assert finance.get(path).status_code == 200, path


def test_partner_key_may_read_member_balances(operator, make_key):
    setup_coalition(operator)
    expect(earn(operator, "t1", "m1", "100.00", partner_id="skyair"))
    aroma = make_key("partner", "aroma")
    assert aroma.get("/api/v1/members/m1/balance").status_code == 200


# --- partner isolation -----------------------------------------------------


def test_partner_key_posting_for_another_partner_is_403(operator, make_key):
    setup_coalition(operator)
    aroma = make_key("partner", "aroma")
    response = earn(aroma, "t1", "m1", "100.00", partner_id="skyair")
    assert response.status_code == 403
    assert operator.get("/api/v1/members/m1/balance").status_code == 404


def test_partner_key_posting_without_partner_id_posts_for_its_own_partner(operator, make_key):
    setup_coalition(operator)
    aroma = make_key("partner", "aroma")
    body = expect(earn(aroma, "t1", "m1", "100.00", partner_id=None, currency="RUB"))
    assert body["partner_id"] == "aroma"


def test_operator_posting_without_partner_id_is_422(operator):
    setup_coalition(operator)
    response = earn(operator, "t1", "m1", "100.00", partner_id=None, currency="RUB")
    assert response.status_code == 422


def test_partner_key_reading_another_partners_transaction_by_id_is_404(operator, make_key):
    setup_coalition(operator)
    sky = expect(earn(operator, "t1", "m1", "100.00", partner_id="skyair"))
    aroma = make_key("partner", "aroma")
    assert aroma.get(f"/api/v1/transactions/{sky['id']}").status_code == 404


def test_partner_key_reads_its_own_transaction_by_id(operator, make_key):
    setup_coalition(operator)
    own = expect(earn(operator, "t1", "m1", "100.00"))
    aroma = make_key("partner", "aroma")
    assert expect(aroma.get(f"/api/v1/transactions/{own['id']}"), 200)["id"] == own["id"]


def test_partner_key_listing_transactions_sees_only_its_own(operator, make_key):
    setup_coalition(operator)
    expect(earn(operator, "a1", "m1", "100.00"))
    expect(earn(operator, "s1", "m1", "100.00", partner_id="skyair"))
    expect(earn(operator, "a2", "m2", "200.00"))
    items = list_all(make_key("partner", "aroma"))
    assert sorted(item["external_id"] for item in items) == ["a1", "a2"]
    assert {item["partner_id"] for item in items} == {"aroma"}


def test_partner_key_filtering_by_another_partner_is_403(operator, make_key):
    setup_coalition(operator)
    aroma = make_key("partner", "aroma")
    assert aroma.get("/api/v1/transactions", query_string={"partner_id": "skyair"}).status_code == 403


def test_partner_key_filtering_by_its_own_partner_is_allowed(operator, make_key):
    setup_coalition(operator)
    expect(earn(operator, "a1", "m1", "100.00"))
    aroma = make_key("partner", "aroma")
    page = expect(aroma.get("/api/v1/transactions", query_string={"partner_id": "aroma"}), 200)
    assert [item["external_id"] for item in page["items"]] == ["a1"]


def test_finance_key_bound_to_a_partner_sees_only_that_partners_transactions(operator, make_key):
    setup_coalition(operator)
    expect(earn(operator, "a1", "m1", "100.00"))
    expect(earn(operator, "s1", "m1", "100.00", partner_id="skyair"))
    finance_aroma = make_key("finance", "aroma")
    assert [item["external_id"] for item in list_all(finance_aroma)] == ["a1"]


def test_finance_key_bound_to_a_partner_gets_404_for_another_partners_transaction(operator, make_key):
    setup_coalition(operator)
    sky = expect(earn(operator, "s1", "m1", "100.00", partner_id="skyair"))
    assert make_key("finance", "aroma").get(f"/api/v1/transactions/{sky['id']}").status_code == 404


def test_finance_key_bound_to_a_partner_filtering_by_another_partner_is_403(operator, make_key):
    setup_coalition(operator)
    finance_aroma = make_key("finance", "aroma")
    assert finance_aroma.get("/api/v1/transactions", query_string={"partner_id": "skyair"}).status_code == 403


def test_unbound_finance_key_sees_every_partners_transactions(operator, make_key):
    setup_coalition(operator)
    expect(earn(operator, "a1", "m1", "100.00"))
    expect(earn(operator, "s1", "m1", "100.00", partner_id="skyair"))
    assert sorted(item["external_id"] for item in list_all(make_key("finance"))) == ["a1", "s1"]


def test_member_history_via_partner_key_shows_only_that_partners_movements(operator, make_key):
    setup_coalition(operator)
    expect(earn(operator, "a1", "m1", "1000.00", occurred_at=days_ago(5)))  # 1000.00 × 0.1 = 100 points
    expect(earn(operator, "s1", "m1", "50.00", partner_id="skyair", occurred_at=days_ago(4)))  # 50 × 2 = 100
    expect(burn(operator, "s2", "m1", 30, partner_id="skyair", occurred_at=days_ago(3)))
    aroma_items = history(make_key("partner", "aroma"), "m1")
    assert [(item["type"], item["partner_id"], item["points"]) for item in aroma_items] == [("earn", "aroma", 100)]


def test_member_history_via_operator_shows_every_movement(operator):
    setup_coalition(operator)
    expect(earn(operator, "a1", "m1", "1000.00", occurred_at=days_ago(5)))  # 100 points
    expect(earn(operator, "s1", "m1", "50.00", partner_id="skyair", occurred_at=days_ago(4)))  # 100 points
    expect(burn(operator, "s2", "m1", 30, partner_id="skyair", occurred_at=days_ago(3)))
    items = history(operator, "m1")
    assert [(item["type"], item["partner_id"], item["points"]) for item in items] == [
        ("earn", "aroma", 100),
        ("earn", "skyair", 100),
        ("burn", "skyair", -30),
    ]


def test_member_history_via_finance_key_bound_to_a_partner_shows_only_that_partners_movements(operator, make_key):
    setup_coalition(operator)
    expect(earn(operator, "a1", "m1", "1000.00", occurred_at=days_ago(5)))  # 100 points
    expect(earn(operator, "s1", "m1", "50.00", partner_id="skyair", occurred_at=days_ago(4)))  # 100 points
    items = history(make_key("finance", "skyair"), "m1")
    assert [(item["type"], item["partner_id"], item["points"]) for item in items] == [("earn", "skyair", 100)]
