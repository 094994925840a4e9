"""A database that goes away: 503 in JSON, nothing half-written, one line in the log.

Each test has a PostgreSQL database of its own, whose connections it kills
(``pg_terminate_backend``, as a restart or a failover does) or refuses
(``ALLOW_CONNECTIONS false``, as a server that is down does: psycopg reports
both with no SQLSTATE).
"""

import logging
import threading
import time
from contextlib import ExitStack, contextmanager

import psycopg
import pytest
from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from coalition import auth, create_app, database_of, jobs
from coalition import db as coalition_db
from coalition.api import transactions
from coalition.db import horizon, kept_counts, locks, migrate, models
from coalition.services import batches, expiry
from tests.conftest import Caller, connections_refused, copy_of, days_ago, kill_sessions, read_only
from tests.e2e.helpers import add_partner, add_rate, expect
from tests.e2e.settlement_world import coalition_kpis, month_closed_uncounted

pytestmark = pytest.mark.postgres

EARN = {"type": "earn", "partner_id": "aroma", "member_id": "card-1", "amount": "100.00",
        "currency": "RUB"}


@pytest.fixture
def private(template, tmp_path):
    """An app on a database of its own, with aroma earning 0.1 point per RUB."""
    with _private_app(template, tmp_path) as app:
        yield app


@pytest.fixture
def impatient(template, tmp_path, monkeypatch):
    """``private``, its sessions waiting half a second for a lock: the service's own limit,
    applied where the operator set none (the suite's ``PGOPTIONS`` sets one)."""
    monkeypatch.delenv("PGOPTIONS", raising=False)
    monkeypatch.setattr(coalition_db, "LOCK_WAIT_MS", 500)
    with _private_app(template, tmp_path) as app:
        yield app


@contextmanager
def _private_app(template, tmp_path):
    with copy_of(template, tmp_path) as url:
        app = create_app({"DATABASE_URL": url, "TESTING": True})
        database = database_of(app)
        _, key = database.run(lambda session: auth.create_key(session, "operator", None))
        operator = Caller(app.test_client(), key)
        add_partner(operator, "aroma", "RUB")
        add_rate(operator, "earn", "0.1", partner_id="aroma")
        try:
            yield make_url(url).database, url, database, operator
        finally:
            database.dispose()


def transactions_in(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(select(func.count()).select_from(models.Transaction)).scalar_one()
    finally:
        engine.dispose()


def assert_unavailable(response) -> None:
    assert response.status_code == 503, response.get_data(as_text=True)
    body = response.get_json()
    assert (body["code"], body["status"], body["reason"]) == (503, "Service Unavailable",
                                                               "database_unavailable")
    assert "try again" in body["message"] and "127.0.0.1" not in body["message"]
    assert response.headers["Retry-After"] == "5"


def assert_not_ready(response, why: str) -> None:
    assert response.status_code == 503, response.get_data(as_text=True)
    body = response.get_json()
    assert (body["code"], body["reason"]) == (503, "database_unavailable")
    assert why in body["message"] and "127.0.0.1" not in body["message"]


def test_a_read_only_database_answers_writes_503_and_reads_as_ever(private):
    """A standby after a failover, or a database set read-only for maintenance: PostgreSQL
    refuses each write (SQLSTATE 25006). Postings, batches and rates are 503, no fault of the
    request (they were 500, a traceback each); balances are served; /readyz says writes are off."""
    name, url, _, operator = private
    expect(operator.post("/api/v1/transactions", json={**EARN, "external_id": "w-1", "occurred_at": days_ago(2)}))
    one = {**EARN, "external_id": "w-2", "occurred_at": days_ago(1)}
    with read_only(name):
        posting = operator.post("/api/v1/transactions", json=one)
        assert_unavailable(posting)
        # not "cannot reach its database", which it reads from as ever
        assert posting.get_json()["message"].startswith("the service's database takes no writes just now")
        batch = operator.post("/api/v1/transactions/batch", json={"transactions": [one]})
        assert_unavailable(batch)
        assert batch.get_json()["message"] == posting.get_json()["message"]
        assert_unavailable(operator.post("/api/v1/rates", json={
            "kind": "earn", "value": "0.2", "partner_id": "aroma", "effective_from": days_ago(1)}))
        assert expect(operator.get("/api/v1/members/card-1/balance"), 200)["available"] == 10
        # ready: every instance has the same database, and balance lookups still work
        assert expect(operator.get("/readyz"), 200) == {"status": "ready", "writes": False}
    assert transactions_in(url) == 1
    assert expect(operator.post("/api/v1/transactions", json=one))["points"] == 10
    assert expect(operator.get("/readyz"), 200) == {"status": "ready", "writes": True}


def test_kpis_of_a_closed_month_not_kept_yet_are_answered_by_a_read_only_database(private):
    """The first KPI request for a closed period keeps its counts: a write inside a read, which
    a read-only database refused, and the whole answer was 503 although every figure was
    counted. It is answered, keeping nothing; the first request once writes are back keeps them."""
    name, _, database, operator = private
    month = month_closed_uncounted(operator)
    with read_only(name):
        figures = coalition_kpis(operator, month)
        assert database.run_reading(kept_counts.committed_of_closed, month) is None
    assert (figures["active_members"], figures["purchases"], figures["points_issued"]) == (1, 1, 20)
    assert coalition_kpis(operator, month) == figures
    assert database.run_reading(kept_counts.committed_of_closed, month) is not None


def test_a_post_kept_waiting_past_the_lock_wait_by_a_long_close_is_503_and_posts_nothing(impatient):
    """A close of ten years of daily periods holds the calendar for a minute and more: every
    posting waited for it with no limit, each holding a thread, until the service had none
    left for anything else. Past the wait it is 503, asked once: waiting again at once
    would only hold the thread twice as long."""
    _, url, database, operator = impatient
    waits = []
    event.listen(database.engine, "before_cursor_execute",
                 lambda *args: waits.append(args[2]) if "advisory_xact_lock_shared" in args[2] else None)
    one = {**EARN, "external_id": "c-1", "occurred_at": days_ago(1)}
    with database.engine.connect() as close:
        locks.hold(close, locks.CALENDAR)
        started = time.monotonic()
        response = operator.post("/api/v1/transactions", json=one)
        waited = time.monotonic() - started
        close.rollback()
    assert_unavailable(response)
    assert waited >= 0.5 and len(waits) == 1, (waited, waits)
    assert transactions_in(url) == 0
    assert expect(operator.post("/api/v1/transactions", json=one))["points"] == 10


def test_a_page_of_transactions_kept_waiting_by_a_posting_in_flight_is_503(private, monkeypatch):
    """A page waits for the postings in flight below the ids it shows (:mod:`horizon`), but
    not past its own wait: a lock queued behind the page could hold the posting up."""
    _, _, database, operator = private
    monkeypatch.setattr(horizon, "WAIT", "300ms")
    expect(operator.post("/api/v1/transactions", json={**EARN, "external_id": "p-1", "occurred_at": days_ago(1)}))
    with database.engine.connect() as posting:
        locks.hold(posting, locks.CALENDAR, shared=True)
        assert_unavailable(operator.get("/api/v1/transactions"))
        posting.rollback()
    assert [item["external_id"] for item in expect(operator.get("/api/v1/transactions"), 200)["items"]] == ["p-1"]


def test_a_lock_timeout_the_operator_set_is_kept(template, tmp_path, monkeypatch):
    monkeypatch.delenv("PGOPTIONS", raising=False)
    with _private_app(template, tmp_path) as (_, url, database, _):
        own = create_app({"DATABASE_URL": f"{url}?options=-c%20lock_timeout%3D7s"})
        try:
            assert database_of(own).run(lambda session: session.scalar(text("SHOW lock_timeout"))) == "7s"
        finally:
            database_of(own).dispose()
        assert database.run(lambda session: session.scalar(text("SHOW lock_timeout"))) == "30s"


def test_an_upgrade_waits_for_another_instances_upgrade_however_long_it_takes(impatient):
    """Instances started at once upgrade one after the other; the one that waits past the
    lock wait must not fail to start."""
    _, _, database, _ = impatient
    held, let_go = threading.Event(), []

    def another_instance_upgrading():
        with database.engine.connect() as connection:
            locks.hold(connection, locks.MIGRATIONS)
            held.set()
            time.sleep(1.5)  # three lock waits
            let_go.append(time.monotonic())
            connection.rollback()

    upgrading = threading.Thread(target=another_instance_upgrading)
    upgrading.start()
    try:
        assert held.wait(10)
        migrate.upgrade(database)
        done = time.monotonic()
    finally:
        upgrading.join()
    # it did wait for the other: timed from the release, not from when this thread woke up
    # after held.set(), which a loaded machine may delay past the half second of slack
    assert let_go and done > let_go[0]


def test_while_the_database_refuses_connections_every_call_is_503_in_json_and_nothing_is_posted(private):
    name, url, _, operator = private
    one = {**EARN, "external_id": "r-1", "occurred_at": days_ago(1)}
    batch = {"transactions": [{**EARN, "external_id": f"b-{n}", "occurred_at": days_ago(1)} for n in range(3)]}
    with connections_refused(name):
        assert_unavailable(operator.post("/api/v1/transactions", json=one))  # its pooled connection was killed
        assert_unavailable(operator.post("/api/v1/transactions", json=one))  # a new one is refused
        assert_unavailable(operator.post("/api/v1/transactions/batch", json=batch))
        assert_unavailable(operator.get("/api/v1/members/card-1/balance"))
        assert_unavailable(operator.get("/api/v1/partners"))
        assert_not_ready(operator.get("/readyz"), "cannot be reached")
        assert operator.get("/healthz").status_code == 200
    assert transactions_in(url) == 0
    assert operator.get("/readyz").status_code == 200
    assert expect(operator.post("/api/v1/transactions", json=one))["points"] == 10
    results = expect(operator.post("/api/v1/transactions/batch", json=batch), 200)["results"]
    assert [result["status"] for result in results] == [201, 201, 201]


def test_after_a_restart_the_next_requests_are_served_on_new_connections(private):
    name, url, _, operator = private
    one = {**EARN, "external_id": "k-1", "occurred_at": days_ago(1)}
    expect(operator.get("/api/v1/partners"), 200)
    assert kill_sessions(name) >= 1  # the app's pooled connections, as a server restart ends them
    # the first read on a broken connection (authentication's) is read again on a new one;
    # it was a 503 for the first request on each pooled connection
    assert expect(operator.post("/api/v1/transactions", json=one))["points"] == 10
    assert kill_sessions(name) >= 1
    assert expect(operator.get("/api/v1/members/card-1/balance"), 200)["available"] == 10
    assert kill_sessions(name) >= 1
    assert expect(operator.get("/readyz"), 200)["status"] == "ready"  # was a false 503 first
    assert transactions_in(url) == 1


@pytest.mark.parametrize("path", ["/api/v1/kpis", "/api/v1/statements", "/api/v1/periods"])
def test_a_read_whose_connection_breaks_under_it_is_read_once_more_on_a_new_one(private, path):
    """The soak test's restart: KPIs and statements were 503 there, where a balance was read again."""
    name, _, database, operator = private
    expect(operator.post("/api/v1/transactions", json={**EARN, "external_id": "k-r", "occurred_at": days_ago(1)}))
    expect(operator.get(path), 200)  # authentication's catalog, cached: it reads only the generation now
    killed = []

    @event.listens_for(database.engine, "before_cursor_execute")
    def kill_under_the_first_read(connection, cursor, statement, *_):
        if not killed and "generation" not in statement:  # the request's own, not authentication's
            killed.append(kill_sessions(name))  # its connection, as a restart ends it

    assert expect(operator.get(path), 200) is not None
    assert len(killed) == 1 and killed[0] >= 1


def test_an_export_whose_connection_breaks_between_pages_reads_the_next_on_a_new_one(private, monkeypatch):
    name, _, _, operator = private
    monkeypatch.setattr(transactions, "EXPORT_PAGE", 1)
    for n in range(3):
        expect(operator.post("/api/v1/transactions", json={**EARN, "external_id": f"x-{n}", "occurred_at": days_ago(1)}))
    whole = operator.get("/api/v1/transactions/csv").get_data()
    chunks = iter(operator.get("/api/v1/transactions/csv", buffered=False).response)
    sent = [next(chunks), next(chunks)]  # the header, the first page
    assert kill_sessions(name) >= 1  # a restart between pages
    sent += list(chunks)
    assert b"".join(sent) == whole and whole.count(b"x-") == 3


def test_an_export_the_database_leaves_midway_stops_short_and_says_so(private, monkeypatch, caplog):
    name, _, _, operator = private
    monkeypatch.setattr(transactions, "EXPORT_PAGE", 1)
    for n in range(3):
        expect(operator.post("/api/v1/transactions", json={**EARN, "external_id": f"x-{n}", "occurred_at": days_ago(1)}))
    sent = operator.get("/api/v1/transactions/csv", buffered=False)
    assert sent.status_code == 200
    chunks = iter(sent.response)
    assert next(chunks).startswith(b"transaction_id,") and b"x-0" in next(chunks)
    with connections_refused(name), pytest.raises(coalition_db.Unavailable):
        next(chunks)  # under a server, the answer ends without its last chunk
    assert "stopped a transactions export short" in caplog.text


def test_a_single_post_whose_connection_breaks_at_its_commit_is_posted_once_on_a_new_one(private):
    name, url, database, operator = private
    one = {**EARN, "external_id": "k-2", "occurred_at": days_ago(1)}
    expect(operator.get("/api/v1/partners"), 200)  # authenticating reads the catalog, then commits nothing
    killed = []

    @event.listens_for(database.engine, "commit")
    def kill_at_the_first_commit(connection):  # the posting's, just before it reaches the server
        if not killed:
            killed.append(kill_sessions(name))

    # it was 503, and the till had to post again: postings are idempotent, so the service does
    assert expect(operator.post("/api/v1/transactions", json=one))["points"] == 10
    assert killed == [1]
    assert expect(operator.post("/api/v1/transactions", json=one), 200)["external_id"] == "k-2"
    assert transactions_in(url) == 1


def test_a_single_post_whose_commit_reached_the_server_answers_it_as_a_replay(private):
    """The connection breaks after the commit was written, before its answer: the posting
    once more on a new connection finds it and answers it, 200 with the transaction."""
    name, url, database, operator = private
    one = {**EARN, "external_id": "k-3", "occurred_at": days_ago(1)}
    expect(operator.get("/api/v1/partners"), 200)
    killed = []

    @event.listens_for(database.engine, "commit")
    def kill_after_the_first_commit(connection):  # the posting's: written, then the answer lost
        if killed:
            return
        driver = connection.connection.driver_connection
        written = driver.commit

        def commit_then_break():
            written()
            killed.append(kill_sessions(name))
            driver.execute("SELECT 1")  # the broken connection's own error, as the answer is lost

        driver.commit = commit_then_break

    reply = expect(operator.post("/api/v1/transactions", json=one), 200)
    assert (reply["external_id"], reply["points"], killed) == ("k-3", 10, [1])
    assert transactions_in(url) == 1


def test_a_batch_whose_connection_breaks_mid_chunk_posts_the_chunk_again_on_a_new_one(private):
    name, url, database, operator = private
    batch = {"transactions": [{**EARN, "external_id": f"c-{n}", "occurred_at": days_ago(1)} for n in range(250)]}
    expect(operator.get("/api/v1/partners"), 200)  # authenticating reads the catalog, then commits nothing
    killed = []

    @event.listens_for(database.engine, "commit")
    def kill_at_the_first_commit(connection):  # the first chunk's, just before it reaches the server
        if not killed:
            killed.append(kill_sessions(name))

    results = expect(operator.post("/api/v1/transactions/batch", json=batch), 200)["results"]
    assert killed == [1]
    assert [result["status"] for result in results] == [201] * 250
    assert transactions_in(url) == 250


def test_a_batch_the_database_leaves_midway_answers_which_items_it_wrote_and_a_resend_posts_the_rest(
        private, monkeypatch):
    """SPEC §6: each item as if posted alone. It was a 503 for the whole batch with its first
    chunk written, which a failed request must not leave behind (SPEC §10)."""
    name, url, database, operator = private
    batch = {"transactions": [{**EARN, "external_id": f"d-{n}", "occurred_at": days_ago(1)} for n in range(250)]}
    expect(operator.get("/api/v1/partners"), 200)
    chunks, refused = [], ExitStack()
    posting = batches._post_chunk

    def away_after_the_first_chunk(session, principal, chunk):
        chunks.append(len(chunk))
        if len(chunks) == 2:  # the server goes down once the first chunk is written
            refused.enter_context(connections_refused(name))
        return posting(session, principal, chunk)

    monkeypatch.setattr(batches, "_post_chunk", away_after_the_first_chunk)
    with refused:
        results = expect(operator.post("/api/v1/transactions/batch", json=batch), 200)["results"]
    assert chunks == [100, 100, 100]  # the second chunk tried twice, on a new connection the second time
    assert [result["status"] for result in results] == [201] * 100 + [503] * 150
    assert {result["error"]["reason"] for result in results[100:]} == {"database_unavailable"}
    assert transactions_in(url) == 100
    results = expect(operator.post("/api/v1/transactions/batch", json=batch), 200)["results"]
    assert [result["status"] for result in results] == [200] * 100 + [201] * 150
    assert transactions_in(url) == 250


# as every other line of the log names them ("auto-close: closed 2026-10")
LOGGED_AS = {jobs.run_expiry: "expiry", jobs.run_auto_close: "auto-close"}


@pytest.mark.parametrize("job", [jobs.run_expiry, jobs.run_auto_close], ids=lambda job: job.__name__)
def test_a_job_finding_the_database_unavailable_logs_one_line_and_waits_for_its_next_run(private, job,
                                                                                        caplog):
    name, _, database, _ = private
    with connections_refused(name), caplog.at_level(logging.WARNING, logger="coalition.jobs"):
        job(database)  # no exception: the scheduler would print a traceback at every run
    (record,) = [record for record in caplog.records if record.name == "coalition.jobs"]
    assert record.getMessage().startswith(f"{LOGGED_AS[job]} skipped until its next run: the database")
    assert record.exc_info is None
    job(database)  # and it runs once the database is back


@pytest.mark.parametrize("job", [jobs.run_expiry, jobs.run_auto_close], ids=lambda job: job.__name__)
def test_a_job_after_a_restart_takes_its_lock_on_a_new_connection(private, job, caplog):
    """It was "skipped until its next run", an hour on for expiry: its lock's connection was
    a pooled one the restart had ended."""
    name, _, database, _ = private
    job(database)  # its lock's connection back in the pool
    assert kill_sessions(name) >= 1
    with caplog.at_level(logging.INFO, logger="coalition.jobs"):
        job(database)
    assert [record.levelname for record in caplog.records if record.name == "coalition.jobs"] == ["INFO"]


@pytest.mark.parametrize("job", [jobs.run_expiry, jobs.run_auto_close], ids=lambda job: job.__name__)
def test_a_job_lock_lost_with_its_connection_is_one_line_even_when_a_rollback_would_fail(
        private, job, monkeypatch, caplog):
    # the race CI once lost: the lock's query finds the socket closed before psycopg has
    # marked the connection broken, and a rollback of it then fails on its own
    _, _, database, _ = private

    def socket_closed(connection, key):
        connection.scalar(text("SELECT 1"))  # the connection is in use
        raise OperationalError("SELECT pg_try_advisory_lock(%(key)s)", {"key": key},
                               psycopg.OperationalError("connection socket closed"))

    def rollback_fails(dbapi_connection):
        raise psycopg.OperationalError("sending query failed: another command is already in progress")

    monkeypatch.setattr(locks, "try_hold_session", socket_closed)
    monkeypatch.setattr(database.engine.dialect, "do_rollback", rollback_fails)
    with caplog.at_level(logging.WARNING, logger="coalition.jobs"):
        job(database)
    (record,) = [record for record in caplog.records if record.name == "coalition.jobs"]
    assert record.getMessage().startswith(f"{LOGGED_AS[job]} skipped until its next run: the database")


def test_a_job_failing_as_its_connection_breaks_fails_with_its_own_error_and_holds_no_lock(private, monkeypatch):
    name, url, database, _ = private

    def fails_as_the_connection_breaks(*_):
        kill_sessions(name)  # the job lock's session among them
        raise RuntimeError("the books do not balance")

    monkeypatch.setattr(expiry, "expire_all", fails_as_the_connection_breaks)
    with pytest.raises(RuntimeError, match="the books do not balance"):
        jobs.run_expiry(database)  # it was one "skipped" warning: the unlock's broken connection won
    engine = create_engine(url)
    try:
        with engine.connect() as other:  # the server let go of the lock with its session
            assert other.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": locks.JOBS["expiry"]})
    finally:
        engine.dispose()
