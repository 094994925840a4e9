"""Who may read and close settlements and statements (SPEC §4, §7).

The closed month is :func:`small_closed_month`: statements for aroma, the
seeded coalition partner and skyair. "A" is aroma, "B" is skyair.
"""

import pytest

from tests.e2e.settlement_world import (
    current_month_id,
    expect,
    previous_month,
    small_closed_month,
    small_month,
    statement_of,
)

DOCUMENTS = ("", "/pdf", "/csv")


@pytest.fixture
def month(operator) -> str:
    return small_closed_month(operator)


@pytest.fixture
def ids(operator, month) -> dict[str, int]:
    """Statement id per partner."""
    return {p: statement_of(operator, p, month)["id"] for p in ("aroma", "coalition", "skyair")}


def _listed(caller, **query) -> list[str]:
    return sorted(s["partner_id"] for s in expect(caller.get("/api/v1/statements", query_string=query), 200)["items"])


# --- operator -------------------------------------------------------------------------------


def test_operator_reads_a_settlement(operator, month):
    assert expect(operator.get(f"/api/v1/settlements/{month}"), 200)["status"] == "final"


def test_operator_closes_a_period(operator):
    period_id = small_month(operator)
    assert expect(operator.post(f"/api/v1/settlements/{period_id}/close"), 200)["status"] == "final"


def test_operator_lists_every_statement(operator, month):
    assert _listed(operator) == ["aroma", "coalition", "skyair"]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_operator_reads_any_statement(operator, ids, document):
    for statement_id in ids.values():
        assert operator.get(f"/api/v1/statements/{statement_id}{document}").status_code == 200


# --- finance, unbound -----------------------------------------------------------------------


def test_finance_reads_settlements(make_key, month):
    finance = make_key("finance")
    assert expect(finance.get(f"/api/v1/settlements/{month}"), 200)["period_id"] == month
    assert finance.get(f"/api/v1/settlements/{month}/csv").status_code == 200


def test_finance_reads_a_draft_settlement(make_key, operator):
    finance = make_key("finance")
    assert expect(finance.get(f"/api/v1/settlements/{current_month_id()}"), 200)["status"] == "draft"


def test_finance_lists_all_statements(make_key, month):
    assert _listed(make_key("finance")) == ["aroma", "coalition", "skyair"]


def test_finance_filters_statements_by_partner(make_key, month):
    assert _listed(make_key("finance"), partner_id="skyair") == ["skyair"]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_finance_reads_every_statement(make_key, ids, document):
    finance = make_key("finance")
    for statement_id in ids.values():
        assert finance.get(f"/api/v1/statements/{statement_id}{document}").status_code == 200


def test_finance_may_not_close(make_key, operator):
    period_id = small_month(operator)
    response = make_key("finance").post(f"/api/v1/settlements/{period_id}/close")
    assert response.status_code == 403
    assert all(p["status"] == "open" for p in expect(operator.get("/api/v1/periods"), 200))


# --- finance bound to partner A -------------------------------------------------------------


def test_bound_finance_lists_only_its_partners_statements(make_key, month):
    assert _listed(make_key("finance", "aroma")) == ["aroma"]


def test_bound_finance_filter_for_another_partner_is_403(make_key, month):
    response = make_key("finance", "aroma").get("/api/v1/statements", query_string={"partner_id": "skyair"})
    assert response.status_code == 403


@pytest.mark.parametrize("document", DOCUMENTS)
def test_bound_finance_reads_its_partners_statement(make_key, ids, document):
    assert make_key("finance", "aroma").get(f"/api/v1/statements/{ids['aroma']}{document}").status_code == 200


@pytest.mark.parametrize("document", DOCUMENTS)
def test_bound_finance_gets_404_for_another_partners_statement(make_key, ids, document):
    response = make_key("finance", "aroma").get(f"/api/v1/statements/{ids['skyair']}{document}")
    assert response.status_code == 404
    assert response.get_json()["code"] == 404


@pytest.mark.parametrize("document", ["", "/csv"])
def test_bound_finance_may_not_read_settlements(make_key, month, document):
    assert make_key("finance", "aroma").get(f"/api/v1/settlements/{month}{document}").status_code == 403


def test_bound_finance_may_not_close(make_key, operator):
    period_id = small_month(operator)
    assert make_key("finance", "aroma").post(f"/api/v1/settlements/{period_id}/close").status_code == 403


# --- partner key A --------------------------------------------------------------------------


@pytest.mark.parametrize("document", ["", "/csv"])
def test_partner_may_not_read_settlements(make_key, month, document):
    assert make_key("partner", "aroma").get(f"/api/v1/settlements/{month}{document}").status_code == 403


def test_partner_may_not_read_a_draft_settlement(make_key, operator):
    small_month(operator)
    _, _, period_id = previous_month()
    assert make_key("partner", "aroma").get(f"/api/v1/settlements/{period_id}").status_code == 403


def test_partner_may_not_close(make_key, operator):
    period_id = small_month(operator)
    response = make_key("partner", "aroma").post(f"/api/v1/settlements/{period_id}/close")
    assert response.status_code == 403
    assert all(p["status"] == "open" for p in expect(operator.get("/api/v1/periods"), 200))


def test_partner_lists_only_its_own_statements(make_key, month):
    assert _listed(make_key("partner", "aroma")) == ["aroma"]


def test_partner_listing_for_another_partner_reveals_nothing(make_key, month):
    response = make_key("partner", "aroma").get("/api/v1/statements", query_string={"partner_id": "skyair"})
    assert response.status_code == 403 or (response.status_code == 200 and response.get_json()["items"] == [])


@pytest.mark.parametrize("document", DOCUMENTS)
def test_partner_reads_its_own_statement(make_key, ids, document):
    assert make_key("partner", "aroma").get(f"/api/v1/statements/{ids['aroma']}{document}").status_code == 200


@pytest.mark.parametrize("document", DOCUMENTS)
@pytest.mark.parametrize("other", ["skyair", "coalition"])
def test_partner_gets_404_for_another_partners_statement(make_key, ids, document, other):
    response = make_key("partner", "aroma").get(f"/api/v1/statements/{ids[other]}{document}")
    assert response.status_code == 404
    assert response.get_json()["code"] == 404


@pytest.mark.parametrize("document", DOCUMENTS)
def test_partner_gets_the_same_404_for_a_statement_that_does_not_exist(make_key, ids, document):
    missing = max(ids.values()) + 1000
    response = make_key("partner", "aroma").get(f"/api/v1/statements/{missing}{document}")
    assert response.status_code == 404


# --- no key ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method,path", [
    ("get", "/api/v1/periods"),
    ("get", "/api/v1/settlements/{month}"),
    ("post", "/api/v1/settlements/{month}/close"),
    ("get", "/api/v1/statements"),
    ("get", "/api/v1/statements/{statement}"),
    ("get", "/api/v1/statements/{statement}/pdf"),
    ("get", "/api/v1/statements/{statement}/csv"),
])
def test_no_key_is_401(client, month, ids, method, path):
    response = getattr(client, method)(path.format(month=month, statement=ids["aroma"]))
    assert response.status_code == 401
    assert response.get_json()["code"] == 401


@pytest.mark.parametrize("method,path", [
    ("get", "/api/v1/settlements/{month}"),
    ("post", "/api/v1/settlements/{month}/close"),
    ("get", "/api/v1/statements/{statement}/pdf"),
])
def test_unknown_key_is_401(client, month, ids, method, path):
    response = getattr(client, method)(path.format(month=month, statement=ids["aroma"]),
                                       headers={"Authorization": "Bearer coal_not-a-key"})
    assert response.status_code == 401
