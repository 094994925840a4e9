"""The per-process catalog of reference data never serves a stale copy.

Each test changes reference data through a second ``Database`` on the same
database (another process, as far as the app's cache can tell) and checks
that the app's very next request sees the change.
"""

import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import event, select

from coalition import auth
from coalition.db import Busy, Database, models
from coalition.services import calendar, catalog, partners, rates, settlement
from tests.conftest import days_ago
from tests.e2e.helpers import add_rate, earn, expect
from tests.threads import together


@pytest.fixture
def elsewhere(database_url):
    """Another process's connection to the same database."""
    other = Database(database_url)
    yield other
    other.dispose()


def test_a_key_revoked_elsewhere_is_refused_on_the_next_request(operator, make_key, elsewhere):
    finance = make_key("finance")
    expect(finance.get("/api/v1/settings"), 200)
    key_id = elsewhere.run(lambda s: s.scalars(select(models.ApiKey.id).where(models.ApiKey.role == "finance")).one())
    elsewhere.run(auth.revoke_key, key_id)
    assert finance.get("/api/v1/settings").status_code == 401


def test_a_partner_suspended_elsewhere_cannot_post_on_the_next_request(coalition, elsewhere):
    expect(earn(coalition, "e1", "m1", "100.00"))
    elsewhere.run(partners.update, "aroma", {"status": "suspended"})
    body = expect(earn(coalition, "e2", "m1", "100.00"), 422)
    assert body["reason"] == "partner_suspended"


def test_a_rate_added_elsewhere_applies_to_the_next_earn(coalition, elsewhere):
    fields = {"kind": "promo", "value": Decimal(3), "partner_id": "aroma",
              "effective_from": datetime.fromisoformat(days_ago(10)),
              "effective_to": datetime.fromisoformat(days_ago(-10))}
    assert expect(earn(coalition, "before", "m1", "100.00"))["points"] == 10
    promo = elsewhere.run(lambda s: rates.create(s, fields).id)
    after = expect(earn(coalition, "after", "m1", "100.00"))
    assert promo in after["rate_ids"]
    assert after["points"] == 30  # floor(100.00 RUB × 0.1 × 3)


def test_a_period_closed_elsewhere_makes_the_next_posting_late(coalition, elsewhere):
    moment = datetime.fromisoformat(days_ago(40))
    expect(earn(coalition, "early", "m1", "100.00", occurred_at=moment.isoformat()))
    add_rate(coalition, "fx", "0.01", currency="RUB")
    period = elsewhere.run(lambda s: calendar.attribute(s, moment)[0])
    elsewhere.run(settlement.close, period.id, datetime.now(UTC))
    late = expect(earn(coalition, "late", "m1", "100.00", occurred_at=moment.isoformat()))
    assert late["late"] is True and late["period_id"] != period.id


def test_a_rolled_back_change_never_reaches_the_cache(coalition, elsewhere):
    class Undo(Exception):
        pass

    def suspend_then_undo(session):
        partners.update(session, "aroma", {"status": "suspended"})
        assert catalog.current(session).partners["aroma"].status == "suspended"
        raise Undo

    with pytest.raises(Undo):
        elsewhere.run(suspend_then_undo)
    assert elsewhere.run(lambda s: catalog.current(s).partners["aroma"].status) == "active"
    expect(earn(coalition, "e1", "m1", "100.00"))


def test_postings_leave_the_generation_alone_and_reference_changes_move_it(coalition, elsewhere):
    def generation():
        return elsewhere.run(lambda s: s.scalar(select(models.Settings.generation)))

    before = generation()
    expect(earn(coalition, "e1", "m1", "100.00"))
    assert generation() == before
    elsewhere.run(partners.update, "aroma", {"hold_days": 2})
    assert generation() != before
    held = expect(earn(coalition, "e2", "m1", "100.00"))
    occurred, available = (datetime.fromisoformat(held[key]) for key in ("occurred_at", "available_at"))
    assert available - occurred == timedelta(days=2)


# A balance lookup reads the catalog's generation with the balance itself
# (members.Balance is a reads_generation view): the key is judged after that
# statement, never on a copy older than it.


def test_a_key_revoked_elsewhere_cannot_read_a_balance_on_the_next_request(coalition, make_key, elsewhere):
    expect(earn(coalition, "e1", "m1", "100.00"))
    finance = make_key("finance")
    expect(finance.get("/api/v1/members/m1/balance"), 200)
    key_id = elsewhere.run(lambda s: s.scalars(select(models.ApiKey.id).where(models.ApiKey.role == "finance")).one())
    elsewhere.run(auth.revoke_key, key_id)
    for member in ("m1", "nobody"):  # 401 before 404: an unknown member is no answer to a revoked key
        refused = expect(finance.get(f"/api/v1/members/{member}/balance"), 401)
        assert refused["message"] == "unknown or revoked key"


def test_a_key_created_elsewhere_reads_a_balance_on_its_first_request(coalition, client, elsewhere):
    expect(earn(coalition, "e1", "m1", "100.00"))
    expect(coalition.get("/api/v1/members/m1/balance"), 200)  # this process's catalog is warm
    _, key = elsewhere.run(lambda s: auth.create_key(s, "partner", "skyair"))
    headers = {"Authorization": f"Bearer {key}"}
    assert expect(client.get("/api/v1/members/m1/balance", headers=headers), 200)["available"] == 10
    assert expect(client.get("/api/v1/members/m2/balance", headers=headers), 404)["message"] == "no member 'm2'"


def test_a_balance_lookup_is_one_statement_and_a_lookup_without_a_key_none(coalition, database, client):
    expect(earn(coalition, "e1", "m1", "100.00"))
    expect(coalition.get("/api/v1/members/m1/balance"), 200)
    sent = []

    def count(connection, cursor, statement, parameters, context, executemany):
        sent.append(statement)

    event.listen(database.engine, "before_cursor_execute", count)
    try:
        expect(coalition.get("/api/v1/members/m1/balance"), 200)
        looked_up = list(sent)
        sent.clear()
        expect(client.get("/api/v1/members/m1/balance"), 401)
        expect(client.get("/api/v1/members/m1/balance", headers={"Authorization": "Basic x"}), 401)
    finally:
        event.remove(database.engine, "before_cursor_execute", count)
    ledger = [statement for statement in looked_up if not statement.startswith(("BEGIN", "COMMIT"))]
    assert len(ledger) == 1 and "generation" in ledger[0]
    assert sent == []


def test_a_backlog_close_reads_the_catalog_once_not_once_a_period(coalition, elsewhere, monkeypatch):
    """Each period closed stamps a new generation; the close itself goes on with the
    catalog it holds (only its last closed period moved), not a fresh read of every key
    and rate version for each period: years of daily periods took a minute that way."""
    expect(earn(coalition, "early", "m1", "100.00", occurred_at=days_ago(80)))
    add_rate(coalition, "fx", "0.01", currency="RUB")
    loads = []
    read = catalog._load
    monkeypatch.setattr(catalog, "_load", lambda *args: loads.append(args) or read(*args))

    def close_the_last_ended(session):
        periods = catalog.current(session).calendar
        last_ended = periods.containing(periods.containing(datetime.now(UTC)).start - timedelta(seconds=1))
        return settlement.close_through(session, last_ended.id, datetime.now(UTC))

    def close_and_look(session):
        closed = close_the_last_ended(session)
        return closed, catalog.current(session).last_closed  # the close's own catalog

    closed, held = elsewhere.run(close_and_look)
    assert len(closed) >= 2
    assert len(loads) == 1
    assert held.id == closed[-1]["period_id"]
    # read afresh by the next transaction, in this process and in the app's
    assert elsewhere.run(lambda s: catalog.current(s).last_closed) == held
    late = expect(earn(coalition, "late", "m1", "100.00", occurred_at=days_ago(80)))
    assert late["late"] is True and late["period_id"] not in {each["period_id"] for each in closed}


def test_threads_finding_their_copy_old_read_the_catalog_once(coalition, elsewhere, monkeypatch):
    """After a change every thread's next request finds the process's copy old: one of
    them reads the catalog, the others wait for its copy instead of each reading it."""
    elsewhere.run(catalog.current)  # the process's copy, then made old by a change
    elsewhere.run(partners.update, "aroma", {"hold_days": 1})
    loads = []
    read = catalog._load

    def slow_read(*args):
        loads.append(args)
        time.sleep(0.2)  # long enough for every thread to find the copy old meanwhile
        return read(*args)

    monkeypatch.setattr(catalog, "_load", slow_read)
    holds = together(
        *[lambda: elsewhere.run_reading(lambda s: catalog.current(s).partners["aroma"].hold_days)]
        * 4,
        wait=30,
    )
    assert holds == [1, 1, 1, 1]
    assert len(loads) == 1


def test_threads_behind_a_read_held_up_in_the_database_read_the_catalog_themselves(
    coalition, elsewhere, monkeypatch
):
    """The thread reading a new generation's catalog may wait in the database (a table an
    upgrade alters) until its lock limit; those behind it wait for it a while, not each a
    limit in turn after it: with four threads and a 30 s limit the last waited two minutes."""
    elsewhere.run(catalog.current)  # the process's copy, then made old by a change
    elsewhere.run(partners.update, "aroma", {"hold_days": 1})
    monkeypatch.setattr(catalog, "LOAD_WAIT_SECONDS", 0.2)
    read, first = catalog._load, threading.Event()

    def held_up_once(*args):
        if not first.is_set():
            first.set()
            time.sleep(3)  # the first read waits in the database, then is answered Busy
            raise Busy("kept waiting on another's lock")
        return read(*args)

    monkeypatch.setattr(catalog, "_load", held_up_once)

    def answered():
        try:
            found = elsewhere.run_reading(lambda s: catalog.current(s).partners["aroma"].hold_days)
        except Busy:
            found = "busy"
        return found, time.monotonic()

    answers = sorted(together(*[answered] * 3, wait=30), key=lambda answer: answer[1])
    # the two behind it read the catalog themselves and are answered before the one held up
    assert [str(found) for found, _ in answers] == ["1", "1", "busy"]
