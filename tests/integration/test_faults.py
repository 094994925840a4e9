"""Fault tests: lost responses, injected database errors, retries, a killed worker, twin schedulers.

SPEC §6 promises idempotent posting ("posting the same body again → 200 with
the original transaction, unchanged"), atomic posting ("a failed request leaves
no partial write", §10), and that deadlocks and serialization failures are
retried, never reported as business errors. SPEC §9 promises that every job is
safe when several service instances run at once. These tests break things on
purpose and check the promises hold:

1. the response to a burn is lost after the commit; the client's identical
   retry gets the original back (200) and the member is debited once;
2. a driver error is injected on every statement of a burn (two lots) and of
   an earn, one request at a time: each failed request leaves every table
   exactly as it was, and the same request then succeeds (201);
3. an injected SQLSTATE 40001 / 40P01 is retried (201, one transaction); an
   error that is not retryable is tried once; a failure that never clears
   is given up after the retry budget, as 500, never as insufficient_points;
4. the only gunicorn worker is killed with SIGKILL in the middle of a batch of
   600 burns and 80 single burns: the ledger's invariants hold, and retrying
   whatever got no answer ends with every external_id exactly once;
5. two expiry runs, and two whole schedulers, at once expire every lot once.

Faults are injected with SQLAlchemy's ``before_cursor_execute`` event on the
app's engine: the hook raises the driver's own exception class (``sqlite3`` or
``psycopg``), which SQLAlchemy wraps exactly as it would a real failure.

Set-up (tests/e2e/helpers.py): aroma earns 0.1 point per RUB, skyair 2 points
per EUR, redemption 0.01 EUR per point; partners have no hold days, and points
live 365 days unless a test changes ``points_ttl_days``.
"""

import functools
import logging
import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
import psycopg.errors
import pytest
import requests
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError

from coalition import auth, create_app, database_of, jobs
from coalition import db as db_module
from coalition.db import Database, TakesNoWrites, kept_counts, locks
from coalition.services import kpi_counts
from tests.conftest import days_ago
from tests.e2e.helpers import (
    POSTGRESQL_DAMAGE,
    add_rate,
    balance,
    bonus,
    earn,
    expect,
    list_all,
    setup_coalition,
)
from tests.e2e.live_server import live_server
from tests.e2e.settlement_world import coalition_kpis, month_closed_uncounted
from tests.threads import together

WAIT = 60  # seconds: the bound of every wait on a thread, a server or a job

LEDGER_TABLES = ("members", "transactions", "lots", "allocations", "periods", "statements")


# --------------------------------------------------------------------------- plumbing


class Faults:
    """Raise an error from chosen statements run on one engine, while armed.

    ``rule(statement)`` returns the exception to raise, or None to let the
    statement run. Statements seen while armed are kept in ``seen`` and the
    ones that were failed in ``failed``.
    """

    def __init__(self, engine):
        self.engine = engine
        self.rule = None
        self.seen: list[str] = []
        self.failed: list[str] = []
        self.lock = threading.Lock()
        event.listen(engine, "before_cursor_execute", self._hook)

    def _hook(self, connection, cursor, statement, parameters, context, executemany):
        with self.lock:
            rule = self.rule
            if rule is None:
                return
            self.seen.append(statement)
            error = rule(statement)
            if error is not None:
                self.failed.append(statement)
        if error is not None:
            raise error

    @contextmanager
    def armed(self, rule):
        with self.lock:
            self.rule, self.seen, self.failed = rule, [], []
        try:
            yield self
        finally:
            with self.lock:
                self.rule = None

    def remove(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._hook)

    def count(self, write: str) -> int:
        """How many statements seen make this write, e.g. "INSERT INTO lots" (case-insensitive)."""
        return sum(1 for statement in self.seen if makes(statement, write))


def makes(statement: str, write: str) -> bool:
    """Whether the statement makes this write ("INSERT INTO lots", "UPDATE lots"), alone or,
    on PostgreSQL, as one of the WITH queries a unit of work's writes go in together."""
    normalised = " ".join(statement.split()).upper()
    return normalised.startswith(write.upper()) or f"AS ({write.upper()}" in normalised or (
        normalised.startswith("WITH ") and f") {write.upper()}" in normalised
    )


def driver_error(dialect: str, message: str = "injected fault: could not read block"):
    """An exception of the driver's own class, as the server reports a failed statement:
    with a SQLSTATE, and not a retryable one (40001/40P01), nor one that says the server
    takes no writes (a full disk, read-only: 503). A driver error without one is a
    connection lost, which tests/e2e/test_database_unavailable.py covers."""
    if dialect == "postgresql":
        return psycopg.errors.InternalError_(message)
    return sqlite3.OperationalError(message)


@pytest.fixture
def faults(database):
    injector = Faults(database.engine)
    yield injector
    injector.remove()


@pytest.fixture
def answers_500(app, monkeypatch):
    """Unhandled exceptions become 500 responses, as in production (TESTING re-raises them).

    The app is shared by the test session (tests/conftest.py), so the change is undone afterwards.
    """
    monkeypatch.setitem(app.config, "PROPAGATE_EXCEPTIONS", False)


@pytest.fixture
def lose_responses(app, monkeypatch):
    """Install :class:`LoseResponses` on the (shared) app for this test only."""

    def install(path: str, count: int = 1) -> "LoseResponses":
        middleware = LoseResponses(app.wsgi_app, path, count)
        monkeypatch.setattr(app, "wsgi_app", middleware)
        return middleware

    return install


def snapshot(database) -> dict[str, list[tuple]]:
    """Every row of the ledger's tables, in id order: the state a failed request must not change."""
    with database.engine.connect() as connection:
        return {
            table: [tuple(row) for row in connection.execute(text(f"SELECT * FROM {table} ORDER BY 1"))]
            for table in LEDGER_TABLES
        }


def scalar(database, sql: str, **params):
    with database.engine.connect() as connection:
        return connection.execute(text(sql), params).scalar()


def lots_remaining(database) -> dict[int, int]:
    with database.engine.connect() as connection:
        return dict(connection.execute(text("SELECT id, remaining FROM lots ORDER BY id")).all())


def two_lots(operator, member_id: str) -> tuple[int, int]:
    """Lot A: aroma, 1000 RUB × 0.1 = 100 points, 5 days ago; lot B: skyair, 40 EUR × 2 = 80, 4 days ago.

    A expires first, so a burn spends A before B. Returns (A, B) lot ids.
    """
    a = expect(earn(operator, f"{member_id}-a", member_id, "1000.00", occurred_at=days_ago(5)))
    b = expect(earn(operator, f"{member_id}-b", member_id, "40.00", partner_id="skyair",
                    occurred_at=days_ago(4)))
    assert (a["points"], b["points"]) == (100, 80)
    return a["lot_id"], b["lot_id"]


def burn_body(external_id: str, member_id: str, points: int, occurred_at: str) -> dict:
    return {"external_id": external_id, "type": "burn", "partner_id": "aroma", "member_id": member_id,
            "occurred_at": occurred_at, "points": points}


# --------------------------------------------------------------------------- 1. lost response


class LoseResponses:
    """WSGI middleware: the app runs to the end, then the connection "drops" before the client reads.

    The first ``count`` POSTs to ``path`` are lost this way; the bytes the
    server produced are kept in ``lost`` so the test can compare the replay.
    """

    def __init__(self, wsgi_app, path: str, count: int = 1):
        self.wsgi_app, self.path, self.left = wsgi_app, path, count
        self.lost: list[tuple[str, bytes]] = []

    def __call__(self, environ, start_response):
        if environ["REQUEST_METHOD"] != "POST" or environ["PATH_INFO"] != self.path or not self.left:
            return self.wsgi_app(environ, start_response)
        self.left -= 1
        captured = {}

        def keep(status, headers, exc_info=None):
            captured["status"] = status
            return lambda data: None

        body = b"".join(self.wsgi_app(environ, keep))
        self.lost.append((captured["status"], body))
        raise ConnectionResetError("the response was lost on the way to the client")


def test_lost_response_retry_returns_the_original(operator, database, lose_responses):
    """A burn of 150 over lots A (100) and B (80): the 201 is lost, the retry gets it back as 200.

    The burn takes 100 from A and 50 from B. Had the retry been executed
    again it would need 150 of the 30 points left and fail with 422; a
    second debit would leave −120. The member must end at 180 − 150 = 30.
    """
    setup_coalition(operator)
    lot_a, lot_b = two_lots(operator, "m-lost")
    body = burn_body("till-9-000001", "m-lost", 150, days_ago(2))
    lose = lose_responses("/api/v1/transactions")

    with pytest.raises(ConnectionResetError):
        operator.post("/api/v1/transactions", json=body)
    (status, lost_body), = lose.lost
    assert status.startswith("201"), (status, lost_body)

    retry = operator.post("/api/v1/transactions", json=body)
    original = expect(retry, 200)
    assert retry.data == lost_body, "the replay differs from the response that was lost"
    assert original["points"] == -150
    assert original["allocations"] == [
        {"lot_id": lot_a, "issuer_id": "aroma", "points": 100},
        {"lot_id": lot_b, "issuer_id": "skyair", "points": 50},
    ]
    again = operator.post("/api/v1/transactions", json=body)
    assert again.status_code == 200 and again.data == lost_body

    assert [t["id"] for t in list_all(operator, member_id="m-lost", type="burn")] == [original["id"]]
    after = balance(operator, "m-lost")
    assert (after["available"], after["lifetime_burned"]) == (30, 150)
    remaining = lots_remaining(database)
    assert (remaining[lot_a], remaining[lot_b]) == (0, 30)


def test_lost_response_of_an_earn_retry_creates_one_lot(operator, database, lose_responses):
    """An earn of 350 RUB (35 points) whose 201 is lost: the retry is a 200 replay, one lot, balance 35."""
    setup_coalition(operator)
    lose = lose_responses("/api/v1/transactions")
    body = {"external_id": "till-9-000002", "type": "earn", "partner_id": "aroma", "member_id": "m-lost-earn",
            "occurred_at": days_ago(1), "amount": "350.00", "currency": "RUB"}

    with pytest.raises(ConnectionResetError):
        operator.post("/api/v1/transactions", json=body)
    retry = operator.post("/api/v1/transactions", json=body)
    assert expect(retry, 200)["points"] == 35
    assert retry.data == lose.lost[0][1]
    assert scalar(database, "SELECT count(*) FROM lots WHERE member_id = 'm-lost-earn'") == 1
    assert balance(operator, "m-lost-earn")["available"] == 35


# --------------------------------------------------------------------------- 2. atomicity under injected errors


def fail_statement(number: int, dialect: str):
    """A rule failing the ``number``-th statement (1-based) seen while armed, and only that one."""
    seen = 0

    def rule(statement):
        nonlocal seen
        seen += 1
        return driver_error(dialect) if seen == number else None

    return rule


def fail_each_statement_then_succeed(operator, database, faults, body: dict,
                                     balance_before: int | None) -> tuple[dict, list[str]]:
    """Post ``body`` failing its 1st statement, then its 2nd, … until a post runs with no failure.

    After every failed post the ledger must be exactly as before it, and the
    member's balance ``balance_before`` (None: the member must not exist).
    Returns the final (successful) transaction and the statements that were failed.
    """
    member = f"/api/v1/members/{body['member_id']}/balance"
    before = snapshot(database)
    failed: list[str] = []
    for number in range(1, 200):
        with faults.armed(fail_statement(number, database.engine.dialect.name)):
            response = operator.post("/api/v1/transactions", json=body)
            hit = list(faults.failed)
        if not hit:
            return expect(response, 201), failed
        failed += hit
        assert response.status_code == 500, (number, hit, response.status_code, response.get_json())
        error = response.get_json()
        assert error is not None and error["code"] == 500, response.data[:300]
        assert snapshot(database) == before, f"a partial write survived a failure at: {hit[0][:200]}"
        if balance_before is None:
            assert operator.get(member).status_code == 404
        else:
            assert expect(operator.get(member), 200)["available"] == balance_before
    raise AssertionError("the post never ran to the end without a failure")


def test_injected_error_in_a_burn_over_two_lots_leaves_no_partial_write(
        operator, database, faults, answers_500):
    """Burn 150 of lots A (100) and B (80), failing each of its statements in turn.

    Every failure (the transaction insert, each lot update, the allocation
    inserts, the reads between and after them) leaves no transaction row, no
    allocation, both lots whole and the balance at 180. The same request then
    succeeds with 201: 100 from A, 50 from B, 30 left.
    """
    setup_coalition(operator)
    lot_a, lot_b = two_lots(operator, "m-fault")
    body = burn_body("till-3-000001", "m-fault", 150, days_ago(2))
    other = expect(earn(operator, "m-other-a", "m-other", "500.00"))  # 50 points, must stay whole

    transaction, failed = fail_each_statement_then_succeed(operator, database, faults, body, 180)

    for write in ("INSERT INTO transactions", "UPDATE lots", "INSERT INTO allocations"):
        assert any(makes(statement, write) for statement in failed), (write, failed)
    assert transaction["points"] == -150
    assert transaction["allocations"] == [
        {"lot_id": lot_a, "issuer_id": "aroma", "points": 100},
        {"lot_id": lot_b, "issuer_id": "skyair", "points": 50},
    ]
    remaining = lots_remaining(database)
    assert (remaining[lot_a], remaining[lot_b], remaining[other["lot_id"]]) == (0, 30, 50)
    assert balance(operator, "m-fault")["available"] == 30
    assert scalar(database, "SELECT count(*) FROM transactions WHERE external_id = 'till-3-000001'") == 1
    assert scalar(database, "SELECT count(*) FROM allocations WHERE transaction_id = :id",
                  id=transaction["id"]) == 2
    assert expect(operator.post("/api/v1/transactions", json=body), 200)["id"] == transaction["id"]


def test_injected_error_in_an_earn_leaves_no_partial_write(operator, database, faults, answers_500):
    """An earn of 350 RUB (35 points) by a new member, failing each of its statements in turn.

    A failure after the transaction row is inserted but before its lot is
    (and one after the lot) leaves no transaction, no lot and no member. The
    same request then succeeds: one member, one lot of 35. On PostgreSQL
    both rows go in one statement (``coalition.db.writes``), so its failure
    is the one case there.
    """
    setup_coalition(operator)
    body = {"external_id": "till-3-000002", "type": "earn", "partner_id": "aroma", "member_id": "m-new",
            "occurred_at": days_ago(1), "amount": "350.00", "currency": "RUB"}

    transaction, failed = fail_each_statement_then_succeed(operator, database, faults, body, None)

    inserted = next(i for i, s in enumerate(failed) if makes(s, "INSERT INTO transactions"))
    lot = next(i for i, s in enumerate(failed) if makes(s, "INSERT INTO lots"))
    if database.engine.dialect.name == "sqlite":
        assert inserted < lot, failed  # a failure fell between the two inserts: the case the brief names
    else:
        assert inserted == lot, failed  # one statement writes both: nothing can fall between
    assert transaction["points"] == 35
    assert scalar(database, "SELECT count(*) FROM members WHERE id = 'm-new'") == 1
    assert scalar(database, "SELECT points FROM lots WHERE transaction_id = :id", id=transaction["id"]) == 35
    assert balance(operator, "m-new")["available"] == 35


def test_injected_error_in_a_batch_item_leaves_that_item_unwritten(operator, database, faults, answers_500,
                                                                    caplog):
    """A batch of three burns of 10 (balance 180) whose second item fails at its allocation insert.

    Items are handled as if posted alone: the first commits, the second
    leaves nothing behind. The batch is one chunk, whose allocations go in
    with one INSERT (the 1st); it fails, the chunk rolls back, and its items
    are posted one by one (the 2nd, 3rd and 4th INSERT), the second failing
    again: a per-item 500 in a 200 response, the third item committed. The
    client retries the whole batch: committed items are 200 replays, the
    other 201, and 180 − 30 = 150 remain.
    """
    setup_coalition(operator)
    two_lots(operator, "m-batch")
    items = [burn_body(f"till-4-{index}", "m-batch", 10, days_ago(2)) for index in range(3)]
    allocations_inserted = 0

    def rule(statement):
        nonlocal allocations_inserted
        if makes(statement, "INSERT INTO allocations"):
            allocations_inserted += 1
            if allocations_inserted in (1, 3):
                return driver_error(database.engine.dialect.name)
        return None

    with faults.armed(rule):
        response = operator.post("/api/v1/transactions/batch", json={"transactions": items})
    assert response.status_code == 200, response.get_json()
    assert [r["status"] for r in response.get_json()["results"]] == [201, 500, 201]
    failed = response.get_json()["results"][1]["error"]
    assert (failed["code"], failed["reason"]) == (500, "database_error")
    assert failed["message"] == "the database failed; this item was not written"  # the database's own words stay in the log
    logged = [record for record in caplog.records if record.getMessage().startswith("a posting failed")]
    assert logged and "INSERT INTO allocations" in caplog.text
    # the statement is logged, its parameters (members' ids, in most statements) are not
    assert "[parameters:" not in caplog.text and "SQL parameters hidden" in caplog.text
    committed = [True, False, True]
    with database.engine.connect() as connection:
        posted = set(connection.execute(text("SELECT external_id FROM transactions WHERE type = 'burn'")).scalars())
    assert posted == {item["external_id"] for item, done in zip(items, committed) if done}
    assert balance(operator, "m-batch")["available"] == 180 - 10 * sum(committed)

    results = expect(operator.post("/api/v1/transactions/batch", json={"transactions": items}), 200)["results"]
    assert [result["status"] for result in results] == [200 if done else 201 for done in committed]
    assert balance(operator, "m-batch")["available"] == 150
    assert scalar(database, "SELECT count(*) FROM transactions WHERE type = 'burn'") == 3


# --------------------------------------------------------------------------- 3. retryable and other errors


def fail_when(prefix: str, error_factory, times: int | None = 1):
    """Fail statements making the write ``prefix``, the first ``times`` times (None: always)."""
    failures = 0

    def rule(statement):
        nonlocal failures
        if makes(statement, prefix) and (times is None or failures < times):
            failures += 1
            return error_factory()
        return None

    return rule


@pytest.mark.postgres
@pytest.mark.parametrize("error_class", [psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected],
                         ids=["40001", "40P01"])
def test_retryable_error_is_retried(operator, database, faults, answers_500, error_class):
    """A 40001 / 40P01 at the burn's lot update, once: the use case runs again and the burn succeeds.

    Two attempts (two transaction inserts seen, the first rolled back), one
    transaction, 100 from A and 50 from B, 30 left.
    """
    setup_coalition(operator)
    lot_a, lot_b = two_lots(operator, "m-retry")
    body = burn_body("till-5-000001", "m-retry", 150, days_ago(2))

    with faults.armed(fail_when("UPDATE lots", lambda: error_class("injected: could not serialize access"))):
        response = operator.post("/api/v1/transactions", json=body)
    transaction = expect(response, 201)
    assert len(faults.failed) == 1
    assert faults.count("INSERT INTO transactions") == 2, "expected exactly one retry"
    assert [(a["lot_id"], a["points"]) for a in transaction["allocations"]] == [(lot_a, 100), (lot_b, 50)]
    assert scalar(database, "SELECT count(*) FROM transactions WHERE type = 'burn'") == 1
    assert balance(operator, "m-retry")["available"] == 30


@pytest.mark.postgres
def test_serialization_failure_that_never_clears_gives_up_as_500(operator, database, faults, answers_500):
    """40001 on every attempt: the service tries MAX_ATTEMPTS times, then answers 500, not 422.

    SPEC §6: such a failure is never reported as insufficient_points; nothing is written.
    """
    setup_coalition(operator)
    two_lots(operator, "m-stuck")
    before = snapshot(database)
    body = burn_body("till-5-000002", "m-stuck", 150, days_ago(2))

    with faults.armed(fail_when("UPDATE lots", lambda: psycopg.errors.SerializationFailure("injected"),
                                times=None)):
        response = operator.post("/api/v1/transactions", json=body)
    assert response.status_code == 500, response.get_json()
    assert response.get_json().get("reason") != "insufficient_points"
    attempts = faults.count("INSERT INTO transactions")
    assert attempts == len(faults.failed) == db_module.MAX_ATTEMPTS > 1
    assert snapshot(database) == before
    assert expect(operator.post("/api/v1/transactions", json=body), 201)["points"] == -150


def test_error_that_is_not_retryable_is_tried_once(operator, database, faults, answers_500):
    """A driver error without a retryable SQLSTATE (57014 on PostgreSQL, an I/O error on SQLite) → 500 after one attempt."""
    setup_coalition(operator)
    two_lots(operator, "m-once")
    before = snapshot(database)
    body = burn_body("till-5-000003", "m-once", 150, days_ago(2))
    with faults.armed(fail_when("UPDATE lots", not_retryable(database, "disk I/O error"), times=None)):
        response = operator.post("/api/v1/transactions", json=body)
    assert response.status_code == 500, response.get_json()
    assert faults.count("INSERT INTO transactions") == len(faults.failed) == 1
    assert snapshot(database) == before


def not_retryable(database, sqlite_words: str):
    """A driver error no retry and no refusal of writes covers: PostgreSQL's statement
    timeout (57014), or SQLite's error in ``sqlite_words``."""
    if database.engine.dialect.name == "postgresql":
        return lambda: psycopg.errors.QueryCanceled("injected: canceling statement due to statement timeout")
    return lambda: sqlite3.OperationalError(f"injected: {sqlite_words}")


@pytest.mark.postgres
def test_a_full_disk_is_503_as_on_sqlite_and_writes_nothing(operator, database, faults, answers_500):
    """PostgreSQL out of disk refuses the write that would extend a file (SQLSTATE 53100),
    as a read-only server refuses every write: the operator's to see to, not the request's.
    A posting was 500 with a traceback, and a batch's every item 500, a traceback each (979
    for a batch of 1,000 on a server whose file size was capped); now 503, as SQLite's full
    disk is, and the posting sent again once there is room is written (150 from two lots)."""
    setup_coalition(operator)
    two_lots(operator, "m-full")
    before = snapshot(database)
    body = burn_body("till-6-000001", "m-full", 150, days_ago(2))

    with faults.armed(fail_when("INSERT INTO transactions", disk_full, times=None)):
        alone = operator.post("/api/v1/transactions", json=body)
        batch = operator.post("/api/v1/transactions/batch", json={"transactions": [body]})
    for response in (alone, batch):
        assert (response.status_code, response.get_json()["reason"]) == (503, "database_unavailable")
    assert snapshot(database) == before
    assert expect(operator.post("/api/v1/transactions", json=body), 201)["points"] == -150


def disk_full():
    return psycopg.errors.DiskFull('could not extend file "base/16384/16440": wrote only 1024 of 8192 bytes')


@pytest.mark.postgres
@pytest.mark.parametrize(("damage", "told"), list(zip(POSTGRESQL_DAMAGE, [
    "the service's database is damaged and this request read a damaged part of it; its operator restores it"
    " from a backup; try again once it is restored (asked sooner, the request reads the same damage): ",
    "an index of the service's database is damaged and this request read it; its operator builds it again"
    " from the ledger, losing nothing; try again once it is built (asked sooner, the request reads the same"
    " damage): ",
])))
def test_postgresqls_own_damage_where_a_balance_is_read_is_503_and_read_once(operator, faults, damage, told):
    """A page of lots (XX001) or of its index (XX002) that PostgreSQL finds damaged was 500
    with a traceback; it is 503, as a damaged SQLite file is, in words that say which, and
    not read again on a new connection, as a broken one is: it would read the same page.
    (The server's words: POSTGRESQL_DAMAGE.)"""
    corrupted, said = damage
    setup_coalition(operator)
    two_lots(operator, "m-damaged")
    with faults.armed(lambda statement: corrupted(said) if "FROM lots" in statement else None):
        response = operator.get("/api/v1/members/m-damaged/balance")
    assert (response.status_code, response.get_json()["reason"]) == (503, "database_unavailable")
    assert response.get_json()["message"].startswith(told)
    assert len(faults.failed) == 1


@pytest.mark.postgres
def test_kpis_whose_counts_a_full_disk_refuses_to_keep_are_answered(operator, database, faults):
    """The first KPI request for a closed period keeps its counts, a write a server out of disk
    refuses: the request answers what it counted (it was 503), and keeps nothing."""
    setup_coalition(operator)
    month = month_closed_uncounted(operator)
    with faults.armed(fail_when("INSERT INTO closed_period_counts", disk_full, times=None)):
        figures = coalition_kpis(operator, month)
    assert (figures["active_members"], figures["purchases"], figures["points_issued"]) == (1, 1, 20)
    assert len(faults.failed) == 1
    assert database.run_reading(kept_counts.committed_of_closed, month) is None


def test_kpis_whose_keeping_fails_for_another_reason_are_500_not_answered(operator, database, faults,
                                                                         answers_500):
    """Only a refusal the database may answer any read with (no writes, or on SQLite busy) is
    the counts answered and kept later; any other error in keeping them is the code's, 500."""
    setup_coalition(operator)
    month = month_closed_uncounted(operator)
    with faults.armed(fail_when("INSERT INTO closed_period_counts", not_retryable(database, "no such savepoint"), times=None)):
        response = operator.get("/api/v1/kpis", query_string={"period_id": month})
    assert response.status_code == 500, response.get_json()
    assert len(faults.failed) == 1
    assert database.run_reading(kept_counts.committed_of_closed, month) is None


@pytest.mark.postgres
def test_a_job_whose_kpi_counts_a_full_disk_refuses_to_keep_fails_its_run(operator, database, faults):
    """What a request may leave for later is the auto-close job's work: refused, its run fails
    (logged, tried again at the next), where it said it had kept the counts and would count
    them again at each run."""
    setup_coalition(operator)
    month = month_closed_uncounted(operator)
    with faults.armed(fail_when("INSERT INTO closed_period_counts", disk_full, times=None)):
        with pytest.raises(TakesNoWrites):
            kpi_counts.keep_counts(database)
    assert database.run_reading(kept_counts.committed_of_closed, month) is None
    assert kpi_counts.keep_counts(database) == 1


def test_run_retries_only_retryable_errors(database, faults):
    """``Database.run`` directly: it reruns a use case on 40001/40P01 and re-raises anything else at once."""
    calls = []

    def use_case(session):
        calls.append(1)
        if len(calls) == 1:
            session.execute(text("SELECT 1 AS fault_me"))
        return session.execute(text("SELECT 2")).scalar()

    if database.engine.dialect.name == "postgresql":
        retryable = psycopg.errors.SerializationFailure("injected")
        with faults.armed(lambda s: retryable if "fault_me" in s else None):
            assert database.run(use_case) == 2
        assert len(calls) == 2
    calls.clear()
    with faults.armed(lambda s: driver_error(database.engine.dialect.name) if "fault_me" in s else None):
        with pytest.raises(DBAPIError) as raised:
            database.run(use_case)
    assert "injected fault" in str(raised.value)
    assert len(calls) == 1


# --------------------------------------------------------------------------- 4. a worker killed mid-flight


MEMBERS = 10
BATCH_ITEMS = 600  # burns of 2 points, item i for member i % 10: 60 × 2 = 120 points per member
SINGLE_THREADS = 4
SINGLES_PER_THREAD = 20  # burns of 3 points, the g-th of all 80 for member g % 10: 8 × 3 = 24 per member
FIRST_LOT, BONUS_LOT = 30, 970  # per member: aroma 300 RUB × 0.1, then a coalition bonus; 1000 in all
KILL_AFTER = 30  # committed batch items
LEFT = 1000 - 120 - 24  # points each member holds in the end


class Http:
    """One key over one requests.Session; responses get ``get_json`` so the helpers work."""

    def __init__(self, base_url: str, key: str):
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {key}"

    def post(self, path, json=None, timeout=WAIT):
        response = self.session.post(self.base_url + path, json=json, timeout=timeout)
        response.get_json = response.json
        return response

    def get(self, path, query_string=None, timeout=WAIT):
        response = self.session.get(self.base_url + path, params=query_string, timeout=timeout)
        response.get_json = response.json
        return response

    def close(self):
        self.session.close()


def children(pid: int) -> list[int]:
    """The child processes of ``pid`` (gunicorn's workers, for its master)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            pass
    if not found:  # kernels without /proc/<pid>/task/<tid>/children
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def wait_for(condition, what: str, timeout: float = WAIT, step: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise TimeoutError(f"{what} did not happen within {timeout}s")


#: Other client sessions of this database inside a transaction that has locked or written
#: rows; not an autovacuum worker, which holds a transaction id of its own while it writes
#: the statistics it took.
WRITING_BACKENDS = text(
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
    " AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL AND backend_type = 'client backend'"
)


def ledger_invariants(database) -> list[str]:
    """Broken invariants of the points ledger, as readable lines (empty when consistent)."""
    checks = {
        "Σ lots.remaining ≠ Σ transactions.points":
            "SELECT (SELECT coalesce(sum(remaining), 0) FROM lots) - (SELECT coalesce(sum(points), 0)"
            " FROM transactions) WHERE (SELECT coalesce(sum(remaining), 0) FROM lots)"
            " <> (SELECT coalesce(sum(points), 0) FROM transactions)",
        "burn whose allocations do not add up to its points":
            "SELECT t.id, t.points, coalesce(sum(a.points), 0) FROM transactions t"
            " LEFT JOIN allocations a ON a.transaction_id = t.id WHERE t.type = 'burn'"
            " GROUP BY t.id, t.points HAVING coalesce(sum(a.points), 0) <> t.points",
        "lot with remaining outside [0, points]":
            "SELECT id, points, remaining FROM lots WHERE remaining < 0 OR remaining > points",
        "lot whose points − remaining ≠ what its allocations took":
            "SELECT l.id, l.points, l.remaining, coalesce(sum(a.points), 0) FROM lots l"
            " LEFT JOIN allocations a ON a.lot_id = l.id GROUP BY l.id, l.points, l.remaining"
            " HAVING l.points + coalesce(sum(a.points), 0) <> l.remaining",
        "external_id posted more than once":
            "SELECT partner_id, external_id, count(*) FROM transactions"
            " GROUP BY partner_id, external_id HAVING count(*) > 1",
    }
    broken = []
    with database.engine.connect() as connection:
        for name, sql in checks.items():
            rows = connection.execute(text(sql)).all()
            if rows:
                broken.append(f"{name}: {[tuple(row) for row in rows[:10]]}")
    return broken


@pytest.mark.postgres
def test_worker_killed_mid_flight_leaves_the_ledger_consistent(database_url, database, tmp_path):
    """SIGKILL the only gunicorn worker while it runs a batch of 600 burns and 4 threads of single burns.

    10 members hold 1000 points each (a 30-point aroma lot, then a 970-point
    bonus, so burns cross from one lot to the next). The batch burns 2 points
    per item (120 per member), the 80 singles 3 points (24 per member). The
    worker is killed once 30 batch items have committed, at a moment when one
    of its transactions holds uncommitted row locks or writes (PostgreSQL's
    pg_stat_activity.backend_xid); gunicorn starts a new one.
    Then: the invariants hold; every 201 the clients saw is in the ledger;
    the committed batch items are a prefix of the batch; retrying every
    request that got no answer yields 200 (it had committed) or 201; in the
    end each external_id exists once and every member holds 1000 − 144 = 856.
    (The batch is long so that it is still running when the kill comes: at 150
    items, under a loaded CI machine, it once finished first.)
    """
    key = database.run(lambda session: auth.create_key(session, "operator"))[1]
    log = tmp_path / "gunicorn.log"
    with live_server(database_url, log, workers=1, threads=4) as server:
        http = Http(server.url, key)
        try:
            setup_coalition(http)
            members = [f"m-kill-{index:02d}" for index in range(MEMBERS)]
            lots = [{"external_id": f"{member}-earn", "type": "earn", "partner_id": "aroma", "member_id": member,
                     "occurred_at": days_ago(5), "amount": "300.00", "currency": "RUB"} for member in members]
            lots += [{"external_id": f"{member}-bonus", "type": "bonus", "partner_id": "coalition",
                      "member_id": member, "occurred_at": days_ago(4), "points": BONUS_LOT, "reason": "welcome"}
                     for member in members]
            made = expect(http.post("/api/v1/transactions/batch", json={"transactions": lots}), 200)["results"]
            assert [r["status"] for r in made] == [201] * 2 * MEMBERS, made
            assert {r["transaction"]["points"] for r in made[:MEMBERS]} == {FIRST_LOT}

            occurred_at = days_ago(1)
            batch = [burn_body(f"kb-{index:03d}", members[index % MEMBERS], 2, occurred_at)
                     for index in range(BATCH_ITEMS)]
            singles = [[burn_body(f"ks-{thread}-{index:02d}",
                                  members[(SINGLES_PER_THREAD * thread + index) % MEMBERS], 3, occurred_at)
                        for index in range(SINGLES_PER_THREAD)] for thread in range(SINGLE_THREADS)]

            replies: dict[str, object] = {}  # external_id → (status, body) or the exception
            guard = threading.Lock()
            go = threading.Event()

            def post_singles(bodies):
                caller = Http(server.url, key)
                try:
                    go.wait(WAIT)
                    for body in bodies:
                        try:
                            response = caller.post("/api/v1/transactions", json=body)
                            reply = (response.status_code, response.json())
                        except requests.RequestException as error:
                            reply = error
                        with guard:
                            replies[body["external_id"]] = reply
                finally:
                    caller.close()

            def post_batch():
                caller = Http(server.url, key)
                try:
                    go.wait(WAIT)
                    return caller.post("/api/v1/transactions/batch", json={"transactions": batch})
                except requests.RequestException as error:
                    return error
                finally:
                    caller.close()

            master = server.process.pid
            (worker,) = children(master)
            with ThreadPoolExecutor(max_workers=SINGLE_THREADS + 1) as pool:
                batch_future = pool.submit(post_batch)
                single_futures = [pool.submit(post_singles, bodies) for bodies in singles]
                go.set()
                wait_for(lambda: scalar(database, "SELECT count(*) FROM transactions WHERE external_id LIKE 'kb-%'")
                         >= KILL_AFTER, f"{KILL_AFTER} committed batch items", step=0.01)
                # Kill while a transaction of the worker holds row locks or uncommitted writes.
                # (Autocommit: pg_stat_activity is a snapshot for the length of a transaction.)
                with database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as watcher:
                    wait_for(lambda: watcher.execute(WRITING_BACKENDS).scalar(), "an uncommitted write",
                             timeout=10, step=0)
                    os.kill(worker, signal.SIGKILL)
                killed_at = scalar(database, "SELECT count(*) FROM transactions WHERE external_id LIKE 'kb-%'")
                batch_reply = batch_future.result(timeout=WAIT)
                for future in single_futures:
                    future.result(timeout=WAIT)
            assert killed_at < BATCH_ITEMS, "the batch finished before the worker was killed"
            assert isinstance(batch_reply, requests.RequestException), (
                f"the batch got an answer although its worker was killed: {batch_reply}")
            wait_for(lambda: [pid for pid in children(master) if pid != worker], "a new worker")

            # The ledger as the crash left it.
            broken = ledger_invariants(database)
            assert not broken, "\n".join(broken)
            with database.engine.connect() as connection:
                posted = {row.external_id: (row.id, row.points) for row in connection.execute(text(
                    "SELECT external_id, id, points FROM transactions WHERE external_id LIKE 'k%-%'"))}
            committed_batch = sorted(e for e in posted if e.startswith("kb-"))
            assert committed_batch == [f"kb-{index:03d}" for index in range(len(committed_batch))], (
                "the committed batch items are not a prefix of the batch")
            unanswered = [e for e, reply in replies.items() if not isinstance(reply, tuple)]
            statuses = Counter(reply[0] for reply in replies.values() if isinstance(reply, tuple))
            assert set(statuses) <= {201}, (statuses, [r for r in replies.values() if isinstance(r, tuple)
                                                       and r[0] != 201][:5], server.log_tail())
            assert len(replies) == SINGLE_THREADS * SINGLES_PER_THREAD
            for external_id, reply in replies.items():
                if isinstance(reply, tuple):
                    assert posted.get(external_id) == (reply[1]["id"], -3), external_id

            # Retry what got no answer: the batch and the single burns cut off by the kill.
            retried = expect(http.post("/api/v1/transactions/batch", json={"transactions": batch}), 200)["results"]
            assert [r["status"] for r in retried] == (
                [200] * len(committed_batch) + [201] * (BATCH_ITEMS - len(committed_batch))), Counter(
                r["status"] for r in retried)
            for result in retried[:len(committed_batch)]:
                assert result["transaction"]["id"] == posted[result["transaction"]["external_id"]][0]
            by_id = {body["external_id"]: body for bodies in singles for body in bodies}
            for external_id in unanswered:
                response = http.post("/api/v1/transactions", json=by_id[external_id])
                expected = 200 if external_id in posted else 201
                assert response.status_code == expected, (external_id, response.status_code, response.text)

            broken = ledger_invariants(database)
            assert not broken, "\n".join(broken)
            with database.engine.connect() as connection:
                counts = dict(connection.execute(text(
                    "SELECT external_id, count(*) FROM transactions WHERE external_id LIKE 'k%-%'"
                    " GROUP BY external_id")).all())
                held = dict(connection.execute(text(
                    "SELECT member_id, sum(remaining) FROM lots GROUP BY member_id")).all())
            expected_ids = {body["external_id"] for body in batch} | set(by_id)
            assert set(counts) == expected_ids and set(counts.values()) == {1}
            assert held == dict.fromkeys(members, LEFT)
            assert scalar(database, "SELECT sum(remaining) FROM lots") == MEMBERS * LEFT == 8560
            print(f"killed worker {worker} with {killed_at} batch items committed; "
                  f"{len(unanswered)} single burns unanswered, "
                  f"{sum(1 for e in unanswered if e in posted)} of them had committed")
        finally:
            http.close()
            quick_stop(server.process)


def quick_stop(process) -> None:
    """SIGQUIT: gunicorn's immediate shutdown (the graceful SIGTERM of live_server takes seconds).

    live_server still stops the process itself if it has not exited by then.
    """
    if process.poll() is None:
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


# --------------------------------------------------------------------------- 5. jobs run twice at once


@pytest.fixture
def expiring(operator, database):
    """A 1-day TTL; 6 members with two lots earned 3 days ago (due) and one bonus of 7 now (not due).

    Member j (0…5): aroma 100 (j+1) RUB → 10 (j+1) points, skyair 5 (j+1)
    EUR → 10 (j+1) points: 2 × 10 × (1 + … + 6) = 420 points due in 12 lots.
    Returns {due lot id: points} and the ids of the lots that are not due.
    """
    setup_coalition(operator)
    add_rate(operator, "fx", "0.0110", currency="RUB")  # so an auto-close running alongside can close
    add_rate(operator, "fee", "0.001")
    expect(operator.put("/api/v1/settings", json={"points_ttl_days": 1}), 200)
    due, fresh = {}, []
    for j in range(6):
        for posted in (
            earn(operator, f"x-a-{j}", f"m-exp-{j}", f"{100 * (j + 1)}.00", occurred_at=days_ago(3)),
            earn(operator, f"x-s-{j}", f"m-exp-{j}", f"{5 * (j + 1)}.00", partner_id="skyair",
                 occurred_at=days_ago(3)),
        ):
            transaction = expect(posted)
            due[transaction["lot_id"]] = transaction["points"]
        fresh.append(expect(bonus(operator, f"x-b-{j}", f"m-exp-{j}", 7, occurred_at=days_ago(1 / 1440)))["lot_id"])
    assert sum(due.values()) == 420 and len(due) == 12
    return due, fresh


def expiries_per_lot(database) -> tuple[Counter, list[tuple]]:
    with database.engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT a.lot_id, a.points, t.points, t.external_id FROM allocations a"
            " JOIN transactions t ON t.id = a.transaction_id WHERE t.type = 'expiry' ORDER BY a.lot_id")).all()
        transactions = connection.execute(text("SELECT count(*) FROM transactions WHERE type = 'expiry'")).scalar()
    assert transactions == len(rows), "an expiry transaction without exactly one allocation"
    return Counter(row[0] for row in rows), [tuple(row) for row in rows]


def check_expired_once(operator, database, due: dict, fresh: list) -> None:
    per_lot, rows = expiries_per_lot(database)
    assert per_lot == Counter(dict.fromkeys(due, 1)), per_lot
    for lot_id, allocation_points, transaction_points, external_id in rows:
        assert allocation_points == transaction_points == -due[lot_id]
        assert external_id == f"expiry-{lot_id}-1"
    remaining = lots_remaining(database)
    assert {lot: remaining[lot] for lot in due} == dict.fromkeys(due, 0)
    assert [remaining[lot] for lot in fresh] == [7] * 6
    for j in range(6):
        assert balance(operator, f"m-exp-{j}")["available"] == 7
    assert not ledger_invariants(database)


def test_expiry_job_run_twice_at_once_expires_each_lot_once(operator, database, database_url, expiring):
    """Two instances (own Database objects) run ``jobs.run_expiry`` at once: 12 expiry transactions, one per lot."""
    due, fresh = expiring
    instances = [Database(database_url), Database(database_url)]
    try:
        together(*(lambda db=db: jobs.run_expiry(db) for db in instances), wait=WAIT)
        check_expired_once(operator, database, due, fresh)
        for db in instances:  # and once more each: nothing left to do
            jobs.run_expiry(db)
    finally:
        for db in instances:
            db.dispose()
    check_expired_once(operator, database, due, fresh)


@pytest.mark.postgres
def test_expiry_job_skips_while_another_instance_holds_the_lock(operator, database, database_url, expiring,
                                                                 caplog):
    """While another instance holds the expiry job's advisory lock, ``run_expiry`` does nothing; then it does it all."""
    due, fresh = expiring
    instance = Database(database_url)
    try:
        with database.engine.connect() as other:
            assert other.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": locks.JOBS["expiry"]})
            try:
                with caplog.at_level(logging.INFO, logger="coalition.jobs"):
                    jobs.run_expiry(instance)
                assert expiries_per_lot(database)[0] == Counter(), "the job ran although another instance held the lock"
                assert "expiry skipped: another instance is running it" in caplog.messages
            finally:  # a session's lock outlives its transaction: left held, later tests' jobs would skip
                other.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": locks.JOBS["expiry"]})
                other.commit()
        jobs.run_expiry(instance)
    finally:
        instance.dispose()
    check_expired_once(operator, database, due, fresh)


def test_a_scheduler_stopped_as_a_job_runs_says_which_and_that_its_next_run_does_it(database, caplog,
                                                                                     monkeypatch):
    """The operator reading the log of a stopped service learns which job run the stop cut
    short and that nothing is lost; a stop between runs says only that it stopped."""

    class Scheduler:
        def shutdown(self, wait):
            self.waited = wait

    scheduler = Scheduler()
    monkeypatch.setattr("coalition.services.expiry.expire_all", lambda db, now: jobs.stop(scheduler) or 0)
    with caplog.at_level(logging.INFO, logger="coalition.jobs"):
        jobs.run_expiry(database)
        jobs.stop(scheduler)
    assert caplog.messages == [
        "scheduler stopped while expiry ran: what it had not committed is rolled back, and its next"
        " run, when the scheduler starts again, does it",
        "expiry: 0 lots expired",
        "scheduler stopped",
    ]
    assert scheduler.waited is False  # a job cut short is not waited for: the master stops it in 5 s


@pytest.fixture
def job_runs(monkeypatch):
    """Each job's runs, counted, and their errors, kept (APScheduler would only log them)."""
    done = Counter()
    errors: list[BaseException] = []
    guard = threading.Lock()

    def counted(name, job):
        @functools.wraps(job)  # with the job's name, which the scheduler files it under
        def run(db):
            try:
                job(db)
            except BaseException as error:
                with guard:
                    errors.append(error)
                raise
            finally:
                with guard:
                    done[name] += 1
        return run

    monkeypatch.setattr(jobs, "run_expiry", counted("expiry", jobs.run_expiry))
    monkeypatch.setattr(jobs, "run_auto_close", counted("auto_close", jobs.run_auto_close))
    return done, errors


@contextmanager
def schedulers_running(database_url: str, instances: int = 1):
    """``instances`` apps on the database, each with its scheduler started, until the block ends."""
    apps = [create_app({"DATABASE_URL": database_url, "TESTING": True})
            for _ in range(instances)]
    schedulers = []
    try:
        for each in apps:
            schedulers.append(jobs.start(each))
        yield
    finally:
        for scheduler in schedulers:
            scheduler.shutdown(wait=True)
        for each in apps:
            database_of(each).dispose()


def test_a_scheduler_whose_first_runs_start_late_still_runs_them(database_url, monkeypatch, job_runs):
    """APScheduler drops a run that starts more than its grace time late (1 s by default):
    on a loaded machine a scheduler started its jobs late and skipped them, the next runs
    an hour (expiry) and 15 minutes (auto-close) away. Here each first run is due 30 s
    before the scheduler starts."""
    done, errors = job_runs

    class Late(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.now(tz) - timedelta(seconds=30)

    monkeypatch.setattr(jobs, "datetime", Late)
    with schedulers_running(database_url):
        wait_for(lambda: done["expiry"] and done["auto_close"], "each job's first run", timeout=30)
    assert not errors, errors


def test_two_schedulers_expire_each_lot_once(operator, database, database_url, expiring, job_runs):
    """Two apps on one database each start the scheduler; their first runs (at start) expire each lot once."""
    due, fresh = expiring
    done, errors = job_runs
    with schedulers_running(database_url, instances=2):
        wait_for(lambda: done["expiry"] >= 2 and done["auto_close"] >= 2, "both schedulers' first runs",
                 step=0.05)
    assert not errors, errors
    assert done == Counter({"expiry": 2, "auto_close": 2})
    check_expired_once(operator, database, due, fresh)
