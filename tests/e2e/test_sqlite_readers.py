"""On SQLite a request that reads takes no write lock (decisions.md, "SQLite is opened in WAL
mode"): it begins deferred and reads a snapshot of the WAL, where every request, reads and
authentication included, began ``BEGIN IMMEDIATE`` and queued for the file behind every
posting, and a KPI request counting for seconds held every till up. A close, which
writes, is dated once it holds the file, as on PostgreSQL once it holds the calendar lock."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy
from sqlalchemy.engine import make_url

from coalition import create_app, database_of
from coalition import db as coalition_db
from coalition.services import calendar, settlement
from tests.conftest import POSTGRES_URL, Caller, days_ago, held_for_writing
from tests.e2e.helpers import burn, earn, expect, setup_coalition

pytestmark = pytest.mark.skipif(bool(POSTGRES_URL), reason="SQLite's write lock")


def test_reads_are_answered_while_a_writer_holds_the_file_and_writes_still_wait(
    operator, database_url, monkeypatch
):
    setup_coalition(operator)
    earned = expect(earn(operator, "e-1", "m1", "1000.00"))  # 100 points at aroma
    expect(burn(operator, "b-1", "m1", 30))
    period_id = earned["period_id"]
    reads = [
        "/api/v1/members/m1/balance", "/api/v1/members/m1/history", "/api/v1/transactions",
        f"/api/v1/transactions/{earned['id']}", "/api/v1/partners", "/api/v1/partners/aroma",
        "/api/v1/rates", "/api/v1/settings", "/api/v1/periods", f"/api/v1/settlements/{period_id}",
        f"/api/v1/settlements/{period_id}/csv", "/api/v1/statements",
        f"/api/v1/kpis?period_id={period_id}", "/api/v1/keys", "/api/v1/changes", "/readyz",
    ]
    # a second instance of the service: connections of its own, waiting 0.2 s for the file
    # (30 s in service), and no catalog yet, so its first request authenticates in a transaction
    monkeypatch.setattr(coalition_db, "LOCK_WAIT_MS", 200)
    app = create_app({"DATABASE_URL": database_url})
    instance = Caller(app.test_client(), None)
    instance.headers = operator.headers
    second = {"external_id": "e-2", "type": "earn", "partner_id": "aroma", "member_id": "m1",
              "occurred_at": earned["occurred_at"], "amount": "10.00", "currency": "RUB"}
    with held_for_writing(make_url(database_url).database) as writer:
        writer.execute("UPDATE partners SET name = 'not yet' WHERE id = 'aroma'")
        answers = {path: instance.get(path).status_code for path in reads}
        aroma = instance.get("/api/v1/partners/aroma").get_json()
        waited = instance.post("/api/v1/transactions", json=second)
    try:
        assert answers == dict.fromkeys(reads, 200)
        assert aroma["name"] == "Кофейня Арома"  # what was committed, not the writer's
        assert (waited.status_code, waited.get_json()["reason"]) == (503, "database_unavailable")
        assert expect(instance.post("/api/v1/transactions", json=second))["points"] == 1
    finally:
        database_of(app).dispose()


def test_a_close_that_waits_for_the_file_is_dated_once_it_holds_it(
    operator, database, database_url, monkeypatch
):
    """decisions.md: a close is dated when it holds the calendar lock, so that no posting it
    settles reads as recorded after it. Dated before it had the file, a close that waited
    for postings committing meanwhile settled them in the period it closed, not late, each
    recorded after its closed_at (11 of them, over 31 ms, under four tills over HTTP)."""
    expect(operator.put("/api/v1/settings", json={"period": "daily"}), 200)
    setup_coalition(operator)
    expect(earn(operator, "e-1", "m1", "10.00", partner_id="skyair", occurred_at=days_ago(2)))
    closing = (datetime.now(UTC) - timedelta(days=2)).strftime("%Y-%m-%d")
    asked = threading.Event()
    lock_calendar = calendar.lock_calendar
    monkeypatch.setattr(
        calendar,
        "lock_calendar",
        lambda session, **how: asked.set() or lock_calendar(session, **how),
    )
    with ThreadPoolExecutor(max_workers=1) as pool:
        with held_for_writing(make_url(database_url).database):
            close = pool.submit(database.run, settlement.close, closing, datetime.now(UTC))
            assert asked.wait(timeout=30)
            time.sleep(0.2)  # long enough for the close to date itself, were it to do so now
            released = datetime.now(UTC)
        close.result(timeout=60)
    (period,) = [p for p in expect(operator.get("/api/v1/periods"), 200) if p["id"] == closing]
    assert datetime.fromisoformat(period["closed_at"]) >= released


def test_a_wal_grown_under_a_long_read_is_cut_back_once_the_readers_are_done(tmp_path, monkeypatch):
    # a KPI count or an export held its snapshot while tills posted: 269 MB of -wal beside a
    # 62 MB database in a 10-minute soak, kept at that size for as long as the service ran
    monkeypatch.setattr(coalition_db, "WAL_SIZE_LIMIT_BYTES", 1024 * 1024)
    path = tmp_path / "wal.sqlite3"
    database = coalition_db.Database(f"sqlite:///{path}")
    wal = tmp_path / "wal.sqlite3-wal"

    def write(rows: int) -> None:
        for _ in range(rows):  # a commit each, 16 pages of 4 KiB each
            with database.engine.begin() as connection:
                connection.exec_driver_sql("INSERT INTO filler VALUES (randomblob(65536))")

    try:
        with database.engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE filler (bytes BLOB)")
        with database.transaction(reads=True) as reading:
            reading.execute(sqlalchemy.text("SELECT count(*) FROM filler")).scalar_one()
            write(80)  # 5 MiB the read's snapshot keeps from being checkpointed
            grown = wal.stat().st_size
        write(2)  # the first commits past 1,000 pages checkpoints them all; the next starts over
        after = wal.stat().st_size
    finally:
        database.engine.dispose()

    assert grown > 5 * 1024 * 1024
    assert after <= 1024 * 1024
