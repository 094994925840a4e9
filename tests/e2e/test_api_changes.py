"""GET /api/v1/changes: who changed settings, partners, rates and keys, and who closed a
period, when, and what changed; a change refused leaves no record, and postings none."""

from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from coalition import auth, jobs
from coalition.cli import main
from coalition.services import expiry, kpi_counts, partners
from coalition.services.changes import Actor, acting
from tests.conftest import days_ago
from tests.e2e.helpers import add_partner, add_rate, bonus, burn, earn, expect, list_all, walk_pages
from tests.e2e.settlement_world import at, close, day_in_past, previous_month, small_month


def changes(caller, **query) -> list[dict]:
    return list_all(caller, "/api/v1/changes", **query)


def made(caller, **query) -> list[tuple]:
    """(via, key_id, subject, subject_id, action, fields) of each change, oldest first."""
    return [(c["via"], c["key_id"], c["subject"], c["subject_id"], c["action"], c["fields"])
            for c in changes(caller, **query)]


@pytest.fixture
def operator_id(operator):
    (key,) = [key for key in expect(operator.get("/api/v1/keys"), 200) if key["role"] == "operator"]
    return key["id"]


def test_each_change_through_the_api_is_recorded_with_the_key_that_made_it(operator, operator_id):
    add_partner(operator, "gym", "EUR", "gym", name="Gym")
    expect(operator.patch("/api/v1/partners/gym", json={"name": "Gym One", "hold_days": 0}), 200)
    rate = add_rate(operator, "redemption", "0.0100")
    expect(operator.put("/api/v1/settings", json={"points_ttl_days": 400}), 200)
    till = expect(operator.post("/api/v1/keys", json={"role": "partner", "partner_id": "gym", "name": "till 1"}))
    assert operator.delete(f"/api/v1/keys/{till['id']}").status_code == 204
    revoked_at = expect(operator.get(f"/api/v1/keys/{till['id']}"), 200)["revoked_at"]
    assert made(operator, via="api") == [
        ("api", operator_id, "partner", "gym", "create",
         {"name": "Gym", "category": "gym", "currency": "EUR", "hold_days": 0, "status": "active"}),
        ("api", operator_id, "partner", "gym", "update", {"name": ["Gym", "Gym One"]}),  # hold_days unchanged
        ("api", operator_id, "rate", str(rate["id"]), "create",
         {"kind": "redemption", "value": "0.0100", "partner_id": None, "category": None, "currency": None,
          "min_amount": None, "effective_from": rate["effective_from"], "effective_to": None}),
        ("api", operator_id, "settings", "settings", "update", {"points_ttl_days": [365, 400]}),
        ("api", operator_id, "key", till["id"], "create",
         {"role": "partner", "partner_id": "gym", "name": "till 1", "revoked_at": None}),
        ("api", operator_id, "key", till["id"], "revoke", {"revoked_at": [None, revoked_at]}),
    ]


def test_a_rate_below_a_millionth_is_recorded_with_its_digits_as_the_api_gives_it(operator):
    # str(Decimal("0.0000001")) is "1E-7"; the record reads as GET /rates does
    rate = add_rate(operator, "fee", "0.0000001")
    assert rate["value"] == "0.0000001"
    ((*_, detail),) = made(operator, subject="rate")
    assert detail["value"] == "0.0000001"


def test_the_record_holds_neither_a_key_nor_its_hash(operator, database):
    till = expect(operator.post("/api/v1/keys", json={"role": "finance", "name": "audit"}))
    body = operator.get("/api/v1/changes").get_data(as_text=True)
    assert till["id"] in body and till["key"] not in body and auth.hash_key(till["key"]) not in body


def test_a_change_refused_or_changing_nothing_leaves_no_record(operator):
    add_partner(operator, "gym", "EUR", "gym")
    before = changes(operator)
    assert operator.post("/api/v1/partners", json={"id": "gym", "name": "Again", "category": "gym",
                                                   "currency": "EUR"}).status_code == 409
    assert operator.put("/api/v1/settings", json={"timezone": "Mars/Olympus"}).status_code == 422
    assert operator.patch("/api/v1/partners/coalition", json={"status": "suspended"}).status_code == 422
    assert operator.post("/api/v1/keys", json={"role": "partner"}).status_code == 422
    expect(operator.patch("/api/v1/partners/gym", json={"name": "Gym"}), 200)  # its name already
    expect(operator.put("/api/v1/settings", json={"points_ttl_days": 365}), 200)  # the default
    assert changes(operator) == before


def test_postings_and_expiry_record_no_change(coalition, database):
    before = changes(coalition)
    expect(earn(coalition, "e1", "m1", "1000.00"))
    expect(bonus(coalition, "b1", "m1", 50))
    expect(burn(coalition, "u1", "m1", 20))
    expect(coalition.post("/api/v1/transactions/batch", json={"transactions": [
        {"external_id": "e2", "type": "earn", "partner_id": "aroma", "member_id": "m2",
         "occurred_at": days_ago(1), "amount": "500.00", "currency": "RUB"}]}), 200)
    assert expiry.expire_all(database, datetime.now(UTC) + timedelta(days=400)) == 3
    assert changes(coalition) == before


def test_a_close_refused_after_its_first_period_was_recorded_leaves_no_record(operator):
    # daily periods: three days ago closes (flushed, recorded), the next day aroma earns again
    # and has no RUB fx rate at its end, so the whole close is refused and rolled back, the
    # first's record too
    expect(operator.put("/api/v1/settings", json={"period": "daily", "auto_close_after_hours": 0}), 200)
    add_partner(operator, "aroma", "RUB", "cafe")
    add_rate(operator, "earn", "0.1", partner_id="aroma")
    (first_day, first_id), (_, yesterday_id) = day_in_past(3), day_in_past(1)
    add_rate(operator, "fx", "0.0110", currency="RUB", effective_to=at(first_day, 1, 12))
    expect(earn(operator, "e1", "m1", "1000.00", occurred_at=at(first_day, 0, 10)))
    expect(earn(operator, "e2", "m1", "1000.00", occurred_at=at(first_day, 1, 10)))
    before = changes(operator)
    response = operator.post(f"/api/v1/settlements/{yesterday_id}/close")
    assert (response.status_code, response.get_json()["reason"]) == (409, "no_rate")
    assert changes(operator) == before
    close(operator, first_id)  # the day that could close, alone: recorded
    assert [(c["subject"], c["subject_id"], c["action"]) for c in changes(operator)[len(before):]] == [
        ("period", first_id, "close")]


def test_keeping_a_closed_periods_kpi_counts_records_nothing(operator, database):
    close(operator, small_month(operator))
    before = changes(operator)
    assert kpi_counts.keep_counts(database) == 1  # the close's period, counted and kept on it
    assert changes(operator) == before


def test_a_close_is_recorded_with_its_period_and_who_closed_it(operator, operator_id):
    period_id = small_month(operator)
    start, end, _ = previous_month()
    close(operator, period_id)
    (closed,) = changes(operator, subject="period")
    assert (closed["via"], closed["key_id"], closed["subject_id"], closed["action"]) == (
        "api", operator_id, period_id, "close")
    assert datetime.fromisoformat(closed["fields"]["start"]) == start
    assert datetime.fromisoformat(closed["fields"]["end"]) == end
    assert set(closed["fields"]) == {"start", "end", "closed_at"}, closed["fields"]  # not the settlement, nor KPIs


def test_the_scheduler_and_the_command_line_are_recorded_as_themselves(operator, database, database_url,
                                                                       monkeypatch):
    expect(operator.put("/api/v1/settings", json={"auto_close_after_hours": 0}), 200)
    period_id = small_month(operator)
    jobs.run_auto_close(database)
    monkeypatch.setenv("COALITION_DATABASE_URL", database_url)
    made_by_cli = CliRunner().invoke(main, ["keys", "create", "--role", "finance", "--name", "by hand"])
    key_id = made_by_cli.stdout.split()[3]
    assert CliRunner().invoke(main, ["keys", "revoke", key_id]).exit_code == 0
    assert [(c["via"], c["key_id"], c["subject"], c["subject_id"], c["action"])
            for c in changes(operator) if c["via"] in ("scheduler", "cli")] == [
        ("scheduler", None, "period", period_id, "close"),
        ("cli", None, "key", key_id, "create"),
        ("cli", None, "key", key_id, "revoke"),
    ]


def test_what_a_thread_changes_after_its_request_is_no_keys(operator, database):
    # a request's key must not be taken for the author of what the same thread does next
    add_partner(operator, "gym", "EUR", "gym")
    database.run(partners.update, "gym", {"name": "Renamed"})
    assert made(operator)[-1][:2] == ("system", None)


def test_what_a_thread_changes_after_its_request_is_whoever_acted_before(operator, database):
    # a command that serves a request in its own thread (a test client) stays the command
    with acting(Actor("cli")):
        add_partner(operator, "gym", "EUR", "gym")
        database.run(partners.update, "gym", {"name": "Renamed"})
    assert [change[:2] for change in made(operator, subject="partner")] == [
        ("api", made(operator, subject="partner")[0][1]), ("cli", None)]


def test_changes_are_filtered_and_paged(operator, operator_id, client, make_key):
    add_partner(operator, "gym", "EUR", "gym")
    add_partner(operator, "spa", "EUR", "other")
    expect(operator.patch("/api/v1/partners/gym", json={"hold_days": 14}), 200)
    other = make_key("operator")
    add_partner(other, "cafe", "EUR", "cafe")
    everything = changes(operator)
    assert [(c["subject_id"], c["action"]) for c in changes(operator, subject="partner", subject_id="gym")] == [
        ("gym", "create"), ("gym", "update")]
    assert [c["subject_id"] for c in changes(operator, key_id=operator_id, subject="partner")] == ["gym", "spa", "gym"]
    assert [c["subject_id"] for c in changes(operator, via="api", subject="partner")] == ["gym", "spa", "gym", "cafe"]
    assert changes(operator, via="cli") == []
    later = datetime.fromisoformat(everything[-1]["at"])
    assert changes(operator, **{"from": later.isoformat()}) == everything[-1:]
    assert changes(operator, to=later.isoformat()) == everything[:-1]
    pages = [expect(operator.get("/api/v1/changes", query_string={"limit": 2}), 200)]
    while pages[-1]["next_cursor"]:
        query = {"limit": 2, "cursor": pages[-1]["next_cursor"]}
        pages.append(expect(operator.get("/api/v1/changes", query_string=query), 200))
    assert [c for page in pages for c in page["items"]] == everything
    assert len(pages) == (len(everything) + 1) // 2 and len(everything) == 6  # the fixture's key too
    newest = walk_pages(operator, "/api/v1/changes", limit=4, order="newest")
    assert newest == [everything[:1:-1], everything[1::-1]]


@pytest.mark.parametrize(("query", "field"), [
    ({"subject": "transaction"}, "subject"), ({"via": "email"}, "via"), ({"from": "yesterday"}, "from"),
    ({"limit": 0}, "limit")])
def test_a_filter_the_record_does_not_know_is_422_naming_it(operator, query, field):
    response = operator.get("/api/v1/changes", query_string=query)
    assert response.status_code == 422, response.get_json()
    assert field in response.get_json()["errors"]["query"]


def test_a_finance_key_reads_the_record_and_a_key_bound_to_a_partner_does_not(operator, make_key):
    add_partner(operator, "gym", "EUR", "gym")
    assert changes(make_key("finance")) == changes(operator)
    for bound in (make_key("finance", "gym"), make_key("partner", "gym")):
        assert bound.get("/api/v1/changes").status_code == 403
        assert bound.get("/api/v1/changes", query_string={"via": "email"}).status_code == 403  # before the query
