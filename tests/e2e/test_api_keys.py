"""GET /api/v1/keys: the operator finds the key to revoke, and never sees a key again.

Keys are shown once, when made (SPEC §4); a listing shows what each key is for
and whether it still works. Who may list them is in test_role_matrix.py.
"""

from datetime import UTC, datetime, timedelta

import pytest

from coalition.db import models
from tests.conftest import Caller
from tests.e2e.helpers import add_partner, expect, key_ring

RECORD = {"id", "role", "partner_id", "name", "created_at", "revoked_at"}


@pytest.fixture
def keys(operator):
    """Made in this order: a till of aroma's, a finance team's, aroma's finance; the till revoked."""
    add_partner(operator, "aroma", "RUB", "cafe", name="Кофейня Арома")
    add_partner(operator, "gym", "EUR", "gym")
    return key_ring(operator)


def listed(operator, query="") -> list[dict]:
    return expect(operator.get(f"/api/v1/keys{query}"), 200)


def test_a_listing_shows_every_key_oldest_first_with_what_it_is_for(operator, keys):
    till, finance, aroma_finance = keys
    found = listed(operator)
    assert [key["id"] for key in found][-3:] == [till["id"], finance["id"], aroma_finance["id"]]
    by_id = {key["id"]: key for key in found}
    assert by_id[aroma_finance["id"]]["role"] == "finance"
    assert by_id[aroma_finance["id"]]["partner_id"] == "aroma"
    assert by_id[aroma_finance["id"]]["name"] == "Арома бухгалтерия"
    assert by_id[finance["id"]]["partner_id"] is None


def test_a_listing_never_shows_a_key_or_its_hash(operator, keys, database):
    body = operator.get("/api/v1/keys").get_data(as_text=True)
    for made in keys:
        assert made["key"] not in body
    with database.transaction() as session:
        hashes = [row.key_hash for row in session.query(models.ApiKey)]
    assert hashes and not any(digest in body for digest in hashes)
    assert all(set(key) == RECORD for key in listed(operator))


def test_a_revoked_key_is_listed_with_when_it_was_revoked(operator, keys):
    before = datetime.now(UTC)
    second = expect(operator.post("/api/v1/keys", json={"role": "finance"}))
    assert operator.delete(f"/api/v1/keys/{second['id']}").status_code == 204
    by_id = {key["id"]: key for key in listed(operator)}
    revoked_at = datetime.fromisoformat(by_id[second["id"]]["revoked_at"])
    assert before <= revoked_at <= datetime.now(UTC) + timedelta(seconds=1)
    assert by_id[keys[0]["id"]]["revoked_at"] is not None
    assert by_id[keys[1]["id"]]["revoked_at"] is None


def test_revoking_twice_keeps_the_first_revocation(operator, keys):
    first = expect(operator.get(f"/api/v1/keys/{keys[0]['id']}"), 200)["revoked_at"]
    again = operator.delete(f"/api/v1/keys/{keys[0]['id']}")
    # no content, so no type of it: it said application/json, of nothing
    assert (again.status_code, again.data, again.headers.get("Content-Type")) == (204, b"", None)
    assert expect(operator.get(f"/api/v1/keys/{keys[0]['id']}"), 200)["revoked_at"] == first


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?partner_id=aroma", [0, 2]),
        ("?partner_id=gym", []),
        ("?partner_id=nobody", []),
        ("?role=partner", [0]),
        ("?role=finance&partner_id=aroma", [2]),
        ("?status=revoked", [0]),
        ("?status=active&partner_id=aroma", [2]),
    ],
)
def test_a_listing_filters_by_partner_role_and_status(operator, keys, query, expected):
    assert [key["id"] for key in listed(operator, query)] == [keys[index]["id"] for index in expected]


def test_active_keys_are_those_not_revoked_the_operators_own_among_them(operator, keys):
    active = listed(operator, "?status=active")
    assert {key["id"] for key in active} >= {keys[1]["id"], keys[2]["id"]}
    assert keys[0]["id"] not in {key["id"] for key in active}
    assert all(key["revoked_at"] is None for key in active)
    assert any(key["role"] == "operator" for key in active)  # the fixture's own


@pytest.mark.parametrize(
    ("query", "field"),
    [("?status=expired", "status"), ("?role=admin", "role"), ("?partner_id=Not%20A%20Slug", "partner_id")],
)
def test_a_listing_with_a_filter_it_does_not_know_is_422_naming_the_field(operator, keys, query, field):
    response = operator.get(f"/api/v1/keys{query}")
    assert response.status_code == 422
    assert field in response.get_json()["errors"]["query"]


def test_one_key_reads_as_it_is_listed(operator, keys):
    one = expect(operator.get(f"/api/v1/keys/{keys[2]['id']}"), 200)
    assert one == next(key for key in listed(operator) if key["id"] == keys[2]["id"])


def test_a_finance_key_bound_to_a_partner_reads_no_keys_not_even_its_partners(client, keys):
    bound = Caller(client, keys[2]["key"])
    # refused before its query is read: a filter it gets wrong is no 422 that tells the schema
    for path in ("/api/v1/keys", "/api/v1/keys?partner_id=aroma", "/api/v1/keys?status=bogus",
                 f"/api/v1/keys/{keys[2]['id']}", "/api/v1/keys/key_000000000000"):
        response = bound.get(path)
        assert response.status_code == 403
        assert "bound to a partner" in response.get_json()["message"]


def test_a_finance_key_reads_keys_but_may_not_revoke_one(client, keys, operator):
    finance = Caller(client, keys[1]["key"])
    assert keys[2]["id"] in {key["id"] for key in expect(finance.get("/api/v1/keys"), 200)}
    assert finance.delete(f"/api/v1/keys/{keys[2]['id']}").status_code == 403
    assert expect(operator.get(f"/api/v1/keys/{keys[2]['id']}"), 200)["revoked_at"] is None
