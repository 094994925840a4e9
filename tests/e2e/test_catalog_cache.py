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
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, select

from coalition import auth
from coalition.db import Busy, Database, models
from coalition.db.rows import as_rate
from coalition.services import calendar, catalog, partners, rates, settlement
from tests.conftest import days_ago
from tests.e2e.helpers import add_rate, earn, expect
from tests.plans import sent
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


@pytest.mark.postgres
def test_a_close_committed_before_the_calendar_lock_is_granted_makes_what_follows_it_late(
        coalition, database, elsewhere):
    # a unit of work reads the catalog (no period closed), a close elsewhere commits, then
    # the unit of work takes the calendar lock: a posting dated in the closed period must
    # land, late, in the next one (SPEC §7), not in the closed one by the catalog read before
    moment = datetime.fromisoformat(days_ago(40))
    expect(earn(coalition, "early", "m1", "100.00", occurred_at=moment.isoformat()))
    add_rate(coalition, "fx", "0.01", currency="RUB")
    closing = elsewhere.run(lambda s: calendar.attribute(s, moment)[0])

    def attributed_once_locked(session):
        assert calendar.last_closed(session) is None
        elsewhere.run(settlement.close, closing.id, datetime.now(UTC))
        calendar.lock_calendar(session)
        return calendar.attribute(session, moment)

    period, late = database.run(attributed_once_locked)
    assert (late, period.start) == (True, closing.end)


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


def test_a_balance_lookup_with_a_key_never_issued_reads_no_balance(coalition, database, client):
    # read before the 401, a balance took longer the more lots its member has: a caller
    # without a key could tell a member of many lots from a member id never used
    expect(earn(coalition, "e1", "m1", "100.00"))
    expect(coalition.get("/api/v1/members/m1/balance"), 200)  # this process's catalog is warm
    never_issued = {"Authorization": f"Bearer {auth.KEY_PREFIX}never-issued"}
    sent = []

    def count(connection, cursor, statement, parameters, context, executemany):
        sent.append(statement)

    event.listen(database.engine, "before_cursor_execute", count)
    try:
        for member in ("m1", "nobody"):
            refused = expect(client.get(f"/api/v1/members/{member}/balance", headers=never_issued), 401)
            assert refused["message"] == "unknown or revoked key"
    finally:
        event.remove(database.engine, "before_cursor_execute", count)
    assert sent and [statement for statement in sent if "lots" in statement] == []


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


def _rates_whole(session) -> dict:
    """Every rate version, by scope, read afresh: what a process's catalog must hold."""
    generation = session.scalar(select(models.Settings.generation))
    return dict(catalog._load(session, generation).rates)


def test_after_a_rate_is_added_a_process_reads_only_the_versions_added_since(
    coalition, elsewhere, monkeypatch
):
    """A daily fx rate per currency for years is tens of thousands of versions, which
    each process read whole after each rate added: a quarter of a second at 22,000."""
    for day in range(30):
        add_rate(coalition, "fx", "0.011", effective_from=days_ago(60 - day), currency="RUB")
    elsewhere.run(catalog.current)  # the process's copy, then made old by a change
    add_rate(coalition, "fx", "0.012", effective_from=days_ago(20), currency="RUB")
    add_rate(coalition, "earn", "0.2", effective_from=days_ago(20), partner_id="aroma")
    read = []
    monkeypatch.setattr(catalog, "as_rate", lambda row: read.append(row.id) or as_rate(row))
    held = elsewhere.run(lambda s: dict(catalog.current(s).rates))
    assert len(read) == 3  # the last version held, to check it is still there, and the two
    monkeypatch.undo()
    assert held == elsewhere.run(_rates_whole)
    assert [rate.value for rate in held[("fx", None)][-2:]] == [Decimal("0.011"), Decimal("0.012")]


def test_a_process_reads_only_the_versions_added_since_whatever_the_tables_order_on_disk(
    coalition, database, elsewhere, monkeypatch
):
    """A rate rolled back leaves its row's slot to PostgreSQL's VACUUM, and a version added
    after takes it: a whole read in no order returned it before older ones, each scope's
    last version in the copy was not the last added, and the next read was of every
    version again."""
    add_rate(coalition, "fx", "0.011", effective_from=days_ago(60), currency="RUB")
    with pytest.raises(RolledBack):
        database.run(_added_then_rolled_back, _rate("fx", 1))
    add_rate(coalition, "fx", "0.012", effective_from=days_ago(50), currency="RUB")
    if database.engine.dialect.name == "postgresql":
        with database.engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT")
            connection.exec_driver_sql("VACUUM rates")
    add_rate(coalition, "fx", "0.013", effective_from=days_ago(40), currency="RUB")  # its slot
    elsewhere.run(catalog.current)  # the process's copy, read whole
    add_rate(coalition, "fx", "0.014", effective_from=days_ago(30), currency="RUB")
    read = []
    monkeypatch.setattr(catalog, "as_rate", lambda row: read.append(row.id) or as_rate(row))
    held = elsewhere.run(lambda s: dict(catalog.current(s).rates))
    assert len(read) == 2  # the last version held, to check it is still there, and the new one
    monkeypatch.undo()
    assert held == elsewhere.run(_rates_whole)


def _rewrite_rates(database, *statements) -> None:
    """SQL run past the guard on rate versions (migration 0020), as a restore of another
    database under the service would be, and a new generation stamped."""
    with database.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("ALTER TABLE rates DISABLE TRIGGER rates_append_only")
        else:
            guards = connection.exec_driver_sql(
                "SELECT name, sql FROM sqlite_master WHERE name LIKE 'rates_append_only%'"
            ).all()
            for name, _ in guards:
                connection.exec_driver_sql(f'DROP TRIGGER "{name}"')
        for statement in statements:
            connection.exec_driver_sql(statement)
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("ALTER TABLE rates ENABLE TRIGGER rates_append_only")
        else:
            for _, sql in guards:
                connection.exec_driver_sql(sql)
        connection.execute(models.new_generation())


def test_rates_replaced_under_the_service_by_as_many_with_the_same_ids_are_read_whole(
    coalition, elsewhere
):
    """Another database's rates, say, restored in their place: as many versions, the last
    id the same, the values not; the last version held no longer being there as held, the
    process reads every version."""
    assert expect(earn(coalition, "before", "m1", "100.00"))["points"] == 10
    held = elsewhere.run(lambda s: dict(catalog.current(s).rates))
    last = max(scoped[-1].id for scoped in held.values())
    _rewrite_rates(
        elsewhere,
        "UPDATE rates SET value = '0.5' WHERE kind = 'earn' AND partner_id = 'aroma'",
        f"UPDATE rates SET created_at = created_at + interval '1 second' WHERE id = {last}"
        if elsewhere.engine.dialect.name == "postgresql"
        else f"UPDATE rates SET created_at = datetime(created_at, '+1 second') WHERE id = {last}",
    )
    assert elsewhere.run(lambda s: dict(catalog.current(s).rates)) == elsewhere.run(_rates_whole)
    assert expect(earn(coalition, "after", "m1", "100.00"))["points"] == 50  # floor(100.00 × 0.5)


def test_a_version_deleted_under_the_service_is_gone_from_the_next_copy(coalition, elsewhere):
    """The last version held is still there as held, but the table holds one fewer than
    the copy: the process reads every version."""
    add_rate(coalition, "promo", "3", effective_from=days_ago(10), effective_to=days_ago(-10),
             partner_id="aroma")
    add_rate(coalition, "fx", "0.011", currency="RUB")  # the last version, kept
    assert expect(earn(coalition, "before", "m1", "100.00"))["points"] == 30
    _rewrite_rates(elsewhere, "DELETE FROM rates WHERE kind = 'promo'")
    assert expect(earn(coalition, "after", "m1", "100.00"))["points"] == 10


KINDS_ADDED = {
    "fx": {"currency": "RUB"},
    "earn": {"partner_id": "aroma"},
    "redemption": {},
    "fee": {"partner_id": "aroma"},
}
steps = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.lists(st.sampled_from(sorted(KINDS_ADDED)), min_size=1, max_size=3)),
        st.tuples(st.just("add, rolled back"), st.sampled_from(sorted(KINDS_ADDED))),
        st.tuples(st.just("look"), st.none()),  # the process takes its copy
        st.tuples(st.just("delete"), st.integers(min_value=0)),  # the n-th version, by hand
        st.tuples(st.just("restore another"), st.none()),  # as many, the same ids, not the same
    ),
    max_size=12,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(sorted(KINDS_ADDED)), max_size=4), steps)
def test_a_process_copy_of_the_rates_is_always_what_a_whole_read_finds(
    database, elsewhere, reset_database, first, steps
):
    """Whatever the order of versions added (some in one transaction, some rolled back),
    of copies taken, and of changes made by hand past the guard (a version deleted,
    another database's rates restored in their place), the copy a process builds on its
    last one holds what a whole read finds."""
    reset_database()
    database.run(partners.create, {"id": "aroma", "name": "Aroma", "category": "cafe",
                                   "currency": "RUB"})
    database.run(lambda s: [rates.create(s, _rate(kind, -1)) for kind in first])
    elsewhere.run(catalog.current)  # the process's first copy
    for number, (step, detail) in enumerate(steps):
        if step == "add":
            database.run(lambda s: [rates.create(s, _rate(kind, number)) for kind in detail])
        elif step == "add, rolled back":
            with pytest.raises(RolledBack):
                database.run(_added_then_rolled_back, _rate(detail, number))
        elif step == "delete":
            held = database.run(lambda s: s.scalars(select(models.Rate.id).order_by(models.Rate.id)).all())
            if held:
                _rewrite_rates(database, f"DELETE FROM rates WHERE id = {held[detail % len(held)]}")
        elif step == "restore another":
            _rewrite_rates(database, "UPDATE rates SET value = '9.5', created_at = effective_from")
        elif step == "look":
            assert elsewhere.run(lambda s: dict(catalog.current(s).rates)) == elsewhere.run(_rates_whole)
    assert elsewhere.run(lambda s: dict(catalog.current(s).rates)) == elsewhere.run(_rates_whole)


class RolledBack(Exception):
    pass


def _added_then_rolled_back(session, fields: dict) -> None:
    rates.create(session, fields)
    raise RolledBack


def _rate(kind: str, number: int) -> dict:
    return {"kind": kind, "value": Decimal(number + 2) / 100,
            "effective_from": datetime(2026, 1, 2, tzinfo=UTC) + timedelta(days=number),
            **KINDS_ADDED[kind]}


def test_a_catalog_read_by_a_change_rolled_back_is_never_the_processs(coalition, database):
    """A transaction that adds a rate and reads the catalog (a second rate's checks do)
    sees its own rate; kept for the process, it would be the copy the next read builds
    on, holding a version that never was (found gone by the check of the last version
    held, or on SQLite, which gives its id to the next rate, by its created_at)."""

    def add_read_and_undo(session):
        rates.create(session, _rate("fx", 7))
        assert Decimal("0.09") in {rate.value for rate in catalog.current(session).rates[("fx", None)]}
        raise RolledBack

    expect(earn(coalition, "e1", "m1", "100.00"))  # the process's copy
    with pytest.raises(RolledBack):
        database.run(add_read_and_undo)
    assert ("fx", None) not in catalog._cached[database.engine].rates  # the copy kept
    assert dict(database.run(catalog.current).rates) == database.run(_rates_whole)


def _reads_keys(database, use_case) -> bool:
    """Whether ``use_case`` read the API keys table."""
    with sent(database.engine) as statements:
        database.run(use_case)
    return any("FROM api_keys" in statement for statement, _ in statements)


def test_a_process_reads_the_keys_again_only_after_a_key_changed(coalition, make_key, elsewhere):
    """A key a till makes tens of thousands of keys, read whole (0.2-0.36 s a process at
    50,000) after every rate added, period closed or KPI count kept, which change none."""
    finance = make_key("finance")
    assert _reads_keys(elsewhere, catalog.current)  # the process's first copy
    add_rate(coalition, "fx", "0.011", currency="RUB")
    assert not _reads_keys(elsewhere, catalog.current)
    elsewhere.run(partners.update, "aroma", {"hold_days": 1})
    assert not _reads_keys(elsewhere, catalog.current)
    key_id = elsewhere.run(lambda s: s.scalars(select(models.ApiKey.id).where(models.ApiKey.role == "finance")).one())
    assert coalition.delete(f"/api/v1/keys/{key_id}").status_code == 204
    assert _reads_keys(elsewhere, catalog.current)
    unrevoked = elsewhere.run(lambda s: {row.role for row in catalog.current(s).keys.values()})
    assert unrevoked == {"operator"}
    assert finance.get("/api/v1/settings").status_code == 401
