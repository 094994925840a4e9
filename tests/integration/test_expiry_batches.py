"""The expiry reads only the lots it expires, however large the ledger.

A batch takes the lots due first, from the index of live lots by expiry,
which a lot leaves once expired; and reads their history (expiries, points
put back) from migration 0013's index of allocations by lot. Taken in member
order, each batch read past every lot the batches before it had emptied;
with no index by lot, each read every allocation of the ledger
(docs/performance-log.md, "Expiry at scale").
"""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from coalition.db import locks
from coalition.services import expiry
from tests.conftest import days_ago
from tests.e2e.helpers import add_rate, bonus, expect
from tests.plans import analyze_a_ledger_of_many_members, generic_plan, scans, sent
from tests.threads import until_waiting_on_locks


def _lot(operator, external_id: str, member_id: str, points: int, age_days: float) -> int:
    return expect(bonus(operator, external_id, member_id, points, occurred_at=days_ago(age_days)))[
        "lot_id"
    ]


def test_a_batch_expires_the_lots_due_first(operator, database):
    """With a TTL of 1 day, lots earned 3, 2.5 and 2 days ago expired 2, 1.5 and 1 day
    ago. A batch of two takes the two that expired first, whoever holds them: m-b's
    and m-c's, not m-a's (first in member order), which the next batch takes."""
    expect(operator.put("/api/v1/settings", json={"points_ttl_days": 1}), 200)
    first = _lot(operator, "b-1", "m-b", 30, age_days=3)
    second = _lot(operator, "b-2", "m-c", 20, age_days=2.5)
    last = _lot(operator, "b-3", "m-a", 10, age_days=2)
    now = datetime.now(UTC)

    assert database.run(lambda session: expiry.expire_due(session, now, limit=2)) == 2
    assert _remaining(database) == {first: 0, second: 0, last: 10}
    assert database.run(lambda session: expiry.expire_due(session, now, limit=2)) == 1
    assert _remaining(database) == {first: 0, second: 0, last: 0}


def test_an_expiry_is_recorded_when_its_batch_writes_it_not_when_the_job_started(operator, database):
    """A job that started a minute ago (and waited for a close, or ran many batches)
    records each expiry when it writes it: stamped at the job's start, it read as
    recorded before the close that ended meanwhile, and before the burn reversal whose
    points it expired."""
    expect(operator.put("/api/v1/settings", json={"points_ttl_days": 1}), 200)
    _lot(operator, "b-1", "m-b", 30, age_days=3)
    started = datetime.now(UTC) - timedelta(minutes=1)
    before_the_batch = datetime.now(UTC)

    assert expiry.expire_all(database, started) == 1
    (movement,) = expect(operator.get("/api/v1/transactions?type=expiry"), 200)["items"]
    assert datetime.fromisoformat(movement["recorded_at"]) >= before_the_batch


def _remaining(database) -> dict[int, int]:
    with database.engine.connect() as connection:
        return dict(connection.execute(text("SELECT id, remaining FROM lots")).all())


@pytest.mark.postgres
def test_a_batch_reads_its_lots_and_their_history_from_indexes(operator, database):
    """With scans of whole tables ruled out, the generic plans (which a statement comes
    to once psycopg prepares it) of the reads a batch sends name the index of live lots
    by expiry and the index of allocations by lot. A read in member order goes through
    the lots by member; one with no index by lot, or with its types or the empty lot's
    0 sent as parameters (which a partial index cannot be proven to cover), through
    another index whole."""
    expect(operator.put("/api/v1/settings", json={"points_ttl_days": 1}), 200)
    for number, member in enumerate(("m-b", "m-a")):
        _lot(operator, f"b-{number}", member, 10, age_days=3)
    with database.engine.connect() as connection, connection.begin() as transaction:
        analyze_a_ledger_of_many_members(connection)  # its lots expire in a year
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        connection.exec_driver_sql("SET LOCAL enable_bitmapscan = off")
        with sent(connection) as reads, Session(
            bind=connection, join_transaction_mode="create_savepoint"
        ) as session:
            expiry.expire_due(session, datetime.now(UTC))

        def indexes(marker: str, table: str) -> list[str | None]:
            ((statement, parameters),) = [read for read in reads if marker in read[0]]
            plan = generic_plan(connection, statement, parameters)
            return [index for _, relation, index in scans(plan) if relation == table]

        due = indexes("ORDER BY lots.expires_at", "lots")
        history = indexes("FROM allocations", "allocations")
        transaction.rollback()
    assert due == ["ix_lots_live_expiry"]
    assert history == ["ix_allocations_lot_history"]


def test_a_lot_is_due_at_the_very_instant_it_expires_and_not_before(operator, database):
    expect(operator.put("/api/v1/settings", json={"points_ttl_days": 1}), 200)
    earned = (datetime.now(UTC) - timedelta(days=2)).replace(microsecond=0)
    lot = expect(bonus(operator, "b-1", "m-a", 30, occurred_at=earned.isoformat()))["lot_id"]
    expires_at = earned + timedelta(days=1)
    assert database.run(lambda session: expiry.expire_due(session, expires_at - timedelta(microseconds=1))) == 0
    assert database.run(lambda session: expiry.expire_due(session, expires_at)) == 1
    assert _remaining(database) == {lot: 0}


@pytest.mark.postgres
def test_a_batch_whose_lots_another_run_expired_first_goes_on_to_the_next_due(
        operator, database, monkeypatch):
    """A close, or another instance's run, may expire the lots a batch has read as due
    before the batch's locks are granted: the batch then expired none, and the run
    ended there ("expiry: 0 lots expired") with later lots still due, until the next
    hourly run (a helper's scheduler, killed and started again beside the auto-close,
    left 1,600 such lots). m-b's lot is read first and expired by the other run
    meanwhile; m-a's, due later, is expired by this run."""
    expect(operator.put("/api/v1/settings", json={"points_ttl_days": 1}), 200)
    first = _lot(operator, "b-1", "m-b", 30, age_days=3)
    later = _lot(operator, "b-2", "m-a", 10, age_days=2)
    now = datetime.now(UTC)
    read_due = expiry.ledger_reads.lots_due
    reads = []

    def read_then_expired_by_another(session, due_by, limit):
        due = read_due(session, due_by, limit)
        reads.append(due)
        if len(reads) == 1:  # the other run, in a unit of work of its own, before this one locks
            database.run(lambda other: expiry.expire_due(other, now, limit=1))
        return due

    monkeypatch.setattr(expiry.ledger_reads, "lots_due", read_then_expired_by_another)
    assert database.run(lambda session: expiry.expire_due(session, now, limit=1)) == 1
    assert _remaining(database) == {first: 0, later: 0}


@pytest.mark.postgres
def test_a_batch_waits_for_a_running_close_before_it_reads_the_lots_due(operator, database, monkeypatch):
    """A close holds the calendar lock exclusively and expires what fell due in the periods
    it closes. A batch that read its lots before waiting found them emptied once the close
    committed, and read a second set of members to lock beside the first, out of order
    (a deadlock against a posting of both). It reads none until the close is over."""
    expect(operator.put("/api/v1/settings", json={"points_ttl_days": 1}), 200)
    lot = _lot(operator, "b-1", "m-b", 30, age_days=3)
    now = datetime.now(UTC)
    read_due = expiry.ledger_reads.lots_due
    reads = []
    monkeypatch.setattr(expiry.ledger_reads, "lots_due", lambda *a: reads.append(1) or read_due(*a))
    with database.engine.connect() as close:
        locks.hold(close, locks.CALENDAR)  # exclusive, as a close holds it
        with ThreadPoolExecutor(max_workers=1) as pool:
            batch = pool.submit(database.run, lambda session: expiry.expire_due(session, now))
            until_waiting_on_locks(database.engine, 1, unless=batch.done)
            read_while_closing = len(reads)
            close.rollback()
            assert batch.result(timeout=60) == 1
    assert read_while_closing == 0
    assert _remaining(database) == {lot: 0}


@pytest.mark.postgres
def test_a_batch_waits_for_a_burn_of_its_lots_member_and_expires_what_the_burn_left(
        operator, database, monkeypatch):
    """m-b's 30 points, earned 3 days ago, expired 2 days ago. A burn of 10 of them dated
    2.5 days ago holds m-b's lock, and has not yet read m-b's lots, when the batch runs:
    the batch waits for m-b's lock, the burn takes 10, and the batch expires the 20 left.
    Reading the lot without that lock, the batch expired all 30 and the burn was refused."""
    expect(operator.put("/api/v1/settings", json={"points_ttl_days": 1}), 200)
    add_rate(operator, "redemption", "0.01")
    lot = _lot(operator, "b-1", "m-b", 30, age_days=3)
    now = datetime.now(UTC)
    lock_members, calls = expiry.ledger_reads.lock_members, []
    held, release = threading.Event(), threading.Event()

    def burn_holds_the_lock(session, member_ids):
        locked = lock_members(session, member_ids)
        calls.append(member_ids)
        if len(calls) == 1:  # the burn's
            held.set()
            release.wait(60)
        return locked

    monkeypatch.setattr(expiry.ledger_reads, "lock_members", burn_holds_the_lock)
    burn = {"external_id": "burn-b", "type": "burn", "partner_id": "coalition", "member_id": "m-b",
            "points": 10, "occurred_at": days_ago(2.5)}
    with ThreadPoolExecutor(max_workers=2) as pool:
        burning = pool.submit(operator.post, "/api/v1/transactions", json=burn)
        assert held.wait(60)
        batch = pool.submit(database.run, lambda session: expiry.expire_due(session, now))
        until_waiting_on_locks(database.engine, 1, unless=batch.done)
        release.set()
        assert (burning.result(timeout=60).status_code, batch.result(timeout=60)) == (201, 1)
    with database.engine.connect() as connection:
        expired = connection.execute(text("SELECT points FROM transactions WHERE type = 'expiry'")).all()
    assert ([tuple(row) for row in expired], _remaining(database)) == ([(-20,)], {lot: 0})


@pytest.mark.postgres
def test_an_expiry_of_points_put_back_is_recorded_after_the_reversal_that_put_them_back(
    operator, database, monkeypatch
):
    """m-r's 30 points at the operator, earned 2 days ago, expired a day ago but for the
    10 a burn took half a day before; its reversal puts them back now, and the next
    batch expires them. The reversal commits once that batch holds the calendar lock,
    before it reads the lots due (the lock is shared with postings): the batch expires
    what the reversal put back, so it is recorded after it."""
    from tests.e2e.settlement_world import posted_after
    from coalition.services import calendar

    expect(operator.put("/api/v1/settings", json={"points_ttl_days": 1}), 200)
    add_rate(operator, "redemption", "0.01")
    _lot(operator, "b-r", "m-r", 30, age_days=2)
    expect(operator.post("/api/v1/transactions", json={
        "external_id": "burn-r", "type": "burn", "partner_id": "coalition", "member_id": "m-r",
        "points": 10, "occurred_at": days_ago(1.5)}))
    assert expiry.expire_all(database, database.now()) == 1  # the 20 left
    reversal = {"external_id": "rev-r", "type": "burn_reversal", "partner_id": "coalition",
                "original_external_id": "burn-r", "occurred_at": days_ago(0)}
    posted_after(monkeypatch, calendar, "lock_calendar",
                 lambda: operator.post("/api/v1/transactions", json=reversal))

    assert expiry.expire_all(database, database.now()) == 1
    recorded = dict(database.read(lambda session: session.execute(text(
        "SELECT external_id, recorded_at FROM transactions"
        " WHERE external_id IN ('rev-r', 'expiry-1-2')")).all()))
    assert recorded["rev-r"] <= recorded["expiry-1-2"]


def test_points_two_reversals_put_back_at_one_instant_expire_together_then(operator, database):
    """m-p's 30 points, earned 2 days ago, expired a day ago but for the 20 two burns of 10
    took before; both burns are reversed at one instant today, after the lot expired. The
    first batch expires the 10 left at the lot's expiry; the next, the 10 + 10 put back, at
    the reversals' instant (the reversal's period's breakage, decisions.md), none of them
    at the lot's expiry."""
    expect(operator.put("/api/v1/settings", json={"points_ttl_days": 1}), 200)
    add_rate(operator, "redemption", "0.01")
    earned = expect(bonus(operator, "b-p", "m-p", 30, occurred_at=days_ago(2)))
    for n in (1, 2):
        expect(operator.post("/api/v1/transactions", json={
            "external_id": f"burn-{n}", "type": "burn", "partner_id": "coalition", "member_id": "m-p",
            "points": 10, "occurred_at": days_ago(1.5)}))
    assert expiry.expire_all(database, database.now()) == 1  # the 10 left
    back_at = days_ago(0.5)
    for n in (1, 2):
        expect(operator.post("/api/v1/transactions", json={
            "external_id": f"back-{n}", "type": "burn_reversal", "partner_id": "coalition",
            "original_external_id": f"burn-{n}", "occurred_at": back_at}))
    assert expiry.expire_all(database, database.now()) == 1
    items = expect(operator.get("/api/v1/transactions"), 200)["items"]
    expired = sorted((item["id"], item["points"], datetime.fromisoformat(item["occurred_at"]))
                     for item in items if item["type"] == "expiry")
    assert [(points, at) for _, points, at in expired] == [
        (-10, datetime.fromisoformat(earned["expires_at"])), (-20, datetime.fromisoformat(back_at))]
