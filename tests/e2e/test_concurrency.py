"""Concurrency over real HTTP: parallel clients against gunicorn on PostgreSQL (SPEC §6, §7, §9).

The HTTP tests run gunicorn (4 gthread workers × 8 threads, see
tests/e2e/live_server.py) on PostgreSQL and fire requests from up to 32
threads, each with its own ``requests.Session``; every thread waits on one
start signal so the requests really collide. Tests 1–4b share one server and
database (each works on its own members and external ids); the close race (5),
with daily periods from the start, and the period totals under load (8) each get
their own. The job tests (6, 7) run the scheduler's use cases from several
threads, each with its own :class:`~coalition.db.Database` (its own engine and
connections), as separate service instances would; they, and the changes racing
a close or a posting (9), set up through the in-process API.

The numbers are worked out by hand from the set-up (see each test), so a
broken lock shows up as a wrong count, never as a flaky tolerance:

| rate                         | value                 |
|------------------------------|-----------------------|
| earn, aroma (RUB, cafe)      | 0.1 point per RUB     |
| earn, skyair (EUR, travel)   | 2 points per EUR      |
| redemption (coalition-wide)  | 0.01 EUR per point    |
| fee (coalition-wide)         | 0.001 EUR per point   |
| fx RUB                       | 0.0110 EUR per RUB    |
"""

import hashlib
import json
import threading
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

import pytest
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from coalition import auth, create_app, database_of, jobs
from coalition.db import Database, aggregates, horizon, ledger_reads
from coalition.api.transactions import validated
from coalition.services import calendar, expiry, imports, ledger, partners, settlement
from coalition.services import settings as settings_service
from tests.conftest import POSTGRES_URL, Caller, copy_of, days_ago, kill_sessions
from tests.e2e.helpers import add_partner, add_rate, earn, expect, list_all, till_of
from tests.e2e.live_server import LiveServer, live_server
from tests.threads import together, until_waiting_on_locks

pytestmark = pytest.mark.postgres

THREADS = 32
HTTP_TIMEOUT = 60  # seconds per request
WAIT = 90  # seconds for any thread or future

FEE_RATE = Decimal("0.001")


# --------------------------------------------------------------------------- HTTP plumbing


class HttpCaller:
    """One key over one ``requests.Session``, shaped like tests/conftest.py's ``Caller``.

    Responses get a ``get_json`` method, so the helpers of tests/e2e/helpers.py
    (``expect``, ``list_all``, ``add_partner`` …) work over real HTTP too.
    """

    def __init__(self, base_url: str, key: str):
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {key}"

    def request(self, method: str, path: str, query_string=None, **kwargs) -> requests.Response:
        response = self.session.request(
            method, self.base_url + path, params=query_string, timeout=HTTP_TIMEOUT, **kwargs
        )
        response.get_json = response.json
        return response

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path, **kwargs):
        return self.request("POST", path, **kwargs)

    def put(self, path, **kwargs):
        return self.request("PUT", path, **kwargs)

    def close(self) -> None:
        self.session.close()


@dataclass(frozen=True)
class Reply:
    """What a parallel request got back, detached from its connection."""

    status: int
    body: object
    content: bytes
    started_after_close: bool = False

    @classmethod
    def of(cls, response: requests.Response, **extra) -> "Reply":
        try:
            body = response.json()
        except ValueError:
            body = response.text
        return cls(response.status_code, body, response.content, **extra)

    @property
    def reason(self):
        return self.body.get("reason") if isinstance(self.body, dict) else None


def in_parallel(base_url: str, key: str, calls, threads: int = THREADS) -> list:
    """Run each ``call(caller)`` on a pool of threads, one session per thread, all released at once."""
    local = threading.local()
    callers: list[HttpCaller] = []
    guard = threading.Lock()
    go = threading.Event()

    def caller() -> HttpCaller:
        if not hasattr(local, "caller"):
            local.caller = HttpCaller(base_url, key)
            with guard:
                callers.append(local.caller)
        return local.caller

    def task(call):
        if not go.wait(timeout=WAIT):
            raise TimeoutError("start signal never came")
        return call(caller())

    try:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            futures = [pool.submit(task, call) for call in calls]
            go.set()
            return [future.result(timeout=WAIT) for future in futures]
    finally:
        for each in callers:
            each.close()


def diagnose(server, replies=()) -> str:
    """Status counts of the replies and the server's error lines, for assertion messages."""
    counts = Counter((reply.status, reply.reason) for reply in replies)
    errors = server.log_lines("Traceback", "Error", "ERROR", "error", "deadlock")
    return f"replies: {dict(counts)}\nserver errors:\n" + "\n".join(errors[-40:])


# --------------------------------------------------------------------------- fixtures and set-up


def create_operator_key(url: str) -> str:
    """An operator key created directly on the database, as `coalition keys create` does."""
    database = Database(url)
    try:
        _, key = database.run(lambda session: auth.create_key(session, "operator"))
    finally:
        database.dispose()
    return key


@contextmanager
def fresh_database(template: str):
    """A database of its own, copied from the session's migrated template, dropped afterwards."""
    admin = create_engine(
        make_url(POSTGRES_URL).set(drivername="postgresql+psycopg", database="postgres"),
        isolation_level="AUTOCOMMIT",
    )
    name = f"coalition_concurrency_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
        try:
            url = make_url(POSTGRES_URL).set(drivername="postgresql+psycopg", database=name)
            yield url.render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@dataclass
class Shared:
    server: LiveServer
    http: HttpCaller
    key: str


@pytest.fixture(scope="module")
def shared(template, tmp_path_factory):
    """One database and server, set up once, for tests 1–4b.

    Booting and stopping gunicorn costs seconds on two cores, and these
    tests each work on their own members and external ids, so they share
    it; the close race (which needs daily periods from the start) gets its own.
    """
    with fresh_database(template) as url:
        key = create_operator_key(url)
        with live_server(url, tmp_path_factory.mktemp("shared-server") / "gunicorn.log") as server:
            http = HttpCaller(server.url, key)
            try:
                setup_coalition(http)
                yield Shared(server, http, key)
            finally:
                http.close()


@pytest.fixture
def operator_key(database_url) -> str:
    return create_operator_key(database_url)


@pytest.fixture
def server(database_url, tmp_path):
    with live_server(database_url, tmp_path / "gunicorn.log", workers=4, threads=8) as running:
        yield running


@pytest.fixture
def http(server, operator_key):
    caller = HttpCaller(server.url, operator_key)
    yield caller
    caller.close()


def setup_coalition(operator, settings: dict | None = None) -> None:
    """Settings first (before any transaction), then partners and every kind of rate."""
    if settings:
        expect(operator.put("/api/v1/settings", json=settings), 200)
    add_partner(operator, "aroma", "RUB", "cafe", name="Кофейня Арома")
    add_partner(operator, "skyair", "EUR", "travel", name="SkyAir")
    add_rate(operator, "earn", "0.1", partner_id="aroma")
    add_rate(operator, "earn", "2", partner_id="skyair")
    add_rate(operator, "redemption", "0.01")
    add_rate(operator, "fee", str(FEE_RATE))
    add_rate(operator, "fx", "0.0110", currency="RUB")


def partner_key(operator, partner_id: str) -> str:
    return expect(operator.post("/api/v1/keys", json={"role": "partner", "partner_id": partner_id}))["key"]


def earn_body(external_id, member_id, partner_id, amount, occurred_at) -> dict:
    currency = {"aroma": "RUB", "skyair": "EUR"}[partner_id]
    return {"external_id": external_id, "type": "earn", "partner_id": partner_id, "member_id": member_id,
            "occurred_at": occurred_at, "amount": amount, "currency": currency}


def bonus_body(external_id, member_id, points, occurred_at) -> dict:
    return {"external_id": external_id, "type": "bonus", "partner_id": "coalition", "member_id": member_id,
            "occurred_at": occurred_at, "points": points, "reason": "goodwill"}


def three_lots(operator, member_id: str) -> dict[str, int]:
    """Lots of 100 (aroma), 170 (skyair) and 230 (coalition bonus) points; 500 in all.

    Earned 5, 4 and 3 days ago, so with one TTL they also expire in that
    order: a burn spends the aroma lot first, then skyair's, then the bonus.
    Returns ``{issuer: lot_id}``.
    """
    posted = [
        earn_body(f"{member_id}-e1", member_id, "aroma", "1000.00", days_ago(5)),  # 1000 × 0.1 = 100
        earn_body(f"{member_id}-e2", member_id, "skyair", "85.00", days_ago(4)),  # 85 × 2 = 170
        bonus_body(f"{member_id}-b3", member_id, 230, days_ago(3)),
    ]
    lots = {}
    for body, points in zip(posted, (100, 170, 230), strict=True):
        transaction = expect(operator.post("/api/v1/transactions", json=body))
        assert transaction["points"] == points
        lots[body["partner_id"]] = transaction["lot_id"]
    return lots


def allocated_per_lot(transactions) -> dict[int, int]:
    per_lot: dict[int, int] = defaultdict(int)
    for transaction in transactions:
        for allocation in transaction["allocations"]:
            per_lot[allocation["lot_id"]] += allocation["points"]
    return dict(per_lot)


def fee(points: int) -> str:
    return str((FEE_RATE * points).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN))


# --------------------------------------------------------------------------- 1. burns


def test_concurrent_burns_never_overspend(shared):
    """100 burns of 15 against 500 points: exactly floor(500 / 15) = 33 succeed (495 points).

    The lots fill in expiry order, so the accepted burns take exactly 100 from
    the aroma lot, 170 from skyair's and 225 of the bonus's 230; 5 points stay.
    """
    server, http = shared.server, shared.http
    lots = three_lots(http, "m-burn")
    till = partner_key(http, "aroma")
    occurred_at = days_ago(1)

    def burn(index):
        body = {"external_id": f"burn-{index:03d}", "type": "burn", "member_id": "m-burn",
                "occurred_at": occurred_at, "points": 15}
        return lambda caller: Reply.of(caller.post("/api/v1/transactions", json=body))

    replies = in_parallel(server.url, till, [burn(index) for index in range(100)])

    why = diagnose(server, replies)
    assert {reply.status for reply in replies} <= {201, 422}, why
    accepted = [reply.body for reply in replies if reply.status == 201]
    rejected = [reply for reply in replies if reply.status == 422]
    assert len(accepted) == 500 // 15 == 33, why
    assert len(rejected) == 67, why
    assert {reply.reason for reply in rejected} == {"insufficient_points"}, why
    assert all(transaction["points"] == -15 for transaction in accepted)
    assert all(sum(a["points"] for a in transaction["allocations"]) == 15 for transaction in accepted)
    spent = -sum(transaction["points"] for transaction in accepted)
    assert spent <= 500
    assert spent == 33 * 15 == 495
    assert allocated_per_lot(accepted) == {lots["aroma"]: 100, lots["skyair"]: 170, lots["coalition"]: 225}

    balance = expect(http.get("/api/v1/members/m-burn/balance"), 200)
    assert (balance["available"], balance["lifetime_earned"], balance["lifetime_burned"]) == (5, 500, 495)
    listed = list_all(http, member_id="m-burn", type="burn")
    assert sorted(t["id"] for t in listed) == sorted(t["id"] for t in accepted)


# --------------------------------------------------------------------------- 2. identical retries


def test_concurrent_identical_posts_make_one_transaction(shared):
    """50 identical posts at once → one 201 and 49 byte-identical 200s, for an earn, a burn, a reversal.

    The earn is 1000 RUB × 0.1 = 100 points; the burn takes 60, leaving 40;
    the burn reversal puts 40 of them back, leaving 80. A retry that were
    executed a second time would find too little (40 < 60 points to burn,
    20 < 40 to reverse), so every retry must be answered from the
    idempotency key — 200 with the original — never 422 (SPEC §6: "this
    holds under concurrent retries too").
    """
    server, http, operator_key = shared.server, shared.http, shared.key
    phases = [
        (earn_body("till-1-0001", "m-idem", "aroma", "1000.00", days_ago(3)), 100),
        ({"external_id": "till-1-0002", "type": "burn", "partner_id": "aroma", "member_id": "m-idem",
          "occurred_at": days_ago(2), "points": 60}, -60),
        ({"external_id": "till-1-0003", "type": "burn_reversal", "partner_id": "aroma",
          "original_external_id": "till-1-0002", "occurred_at": days_ago(1), "points": 40}, 40),
    ]
    failures = []
    for body, points in phases:
        replies = in_parallel(
            server.url, operator_key,
            [lambda caller, body=body: Reply.of(caller.post("/api/v1/transactions", json=body))] * 50,
        )
        statuses = Counter(reply.status for reply in replies)
        if statuses != Counter({201: 1, 200: 49}):
            failures.append(f"{body['type']} ×50: {diagnose(server, replies)}")
            continue
        (original,) = [reply for reply in replies if reply.status == 201]
        assert original.body["points"] == points
        assert {reply.body["id"] for reply in replies} == {original.body["id"]}
        assert {reply.content for reply in replies} == {original.content}, "replays differ from the original"

    listed = list_all(http, member_id="m-idem")
    balance = expect(http.get("/api/v1/members/m-idem/balance"), 200)
    assert not failures, "\n".join(failures) + (
        f"\nledger afterwards: {[(t['type'], t['external_id'], t['points']) for t in listed]},"
        f" balance {balance['available']}"
    )
    assert [(t["external_id"], t["points"]) for t in listed] == [
        ("till-1-0001", 100), ("till-1-0002", -60), ("till-1-0003", 40)]
    assert balance["available"] == 80


# --------------------------------------------------------------------------- 3. conflicting retries


def test_concurrent_different_bodies_one_wins(shared):
    """30 earns under one external_id with 3 amounts (10 each): one 201, 9 × 200, 20 × 409.

    100, 200 or 300 RUB earn 10, 20 or 30 points; whichever body wins, the
    nine posts of the same body replay it and the twenty others conflict.
    """
    server, http, operator_key = shared.server, shared.http, shared.key
    amounts = ("100.00", "200.00", "300.00")
    bodies = [earn_body("till-2-0001", "m-conflict", "aroma", amounts[index % 3], days_ago(3))
              for index in range(30)]

    def post(body):
        return lambda caller: (body["amount"], Reply.of(caller.post("/api/v1/transactions", json=body)))

    results = in_parallel(server.url, operator_key,
                          [post(body) for body in bodies])

    why = diagnose(server, [reply for _, reply in results])
    winners = [(amount, reply) for amount, reply in results if reply.status == 201]
    assert len(winners) == 1, why
    amount, winner = winners[0]
    assert winner.body["points"] == {"100.00": 10, "200.00": 20, "300.00": 30}[amount]
    for posted, reply in results:
        if reply is winner:
            continue
        if posted == amount:
            assert reply.status == 200, why
            assert reply.content == winner.content
        else:
            assert (reply.status, reply.reason) == (409, "idempotency_conflict"), why
    assert Counter(reply.status for _, reply in results) == Counter({201: 1, 200: 9, 409: 20}), why

    listed = list_all(http, member_id="m-conflict")
    assert [t["id"] for t in listed] == [winner.body["id"]]
    assert expect(http.get("/api/v1/members/m-conflict/balance"), 200)["available"] == winner.body["points"]


def test_one_partner_created_twenty_times_at_once_is_one_201_and_nineteen_409(shared):
    """Each request may find the id free before any has inserted it: the primary key decides."""
    server, http, operator_key = shared.server, shared.http, shared.key
    bodies = [{"id": "racer", "name": f"Racer {index}", "category": "shop", "currency": "EUR"}
              for index in range(20)]
    replies = in_parallel(server.url, operator_key,
                          [lambda caller, body=body: Reply.of(caller.post("/api/v1/partners", json=body))
                           for body in bodies])
    why = diagnose(server, replies)
    assert Counter(reply.status for reply in replies) == Counter({201: 1, 409: 19}), why
    assert {reply.reason for reply in replies if reply.status == 409} == {"duplicate_partner"}
    (created,) = [reply.body for reply in replies if reply.status == 201]
    assert expect(http.get("/api/v1/partners/racer"), 200)["name"] == created["name"]


# --------------------------------------------------------------------------- 4. burn reversals


def test_concurrent_burn_reversals_restore_at_most_the_burn(shared):
    """A burn of 300 (100 aroma + 170 skyair + 30 bonus) and 20 reversals of 50 each at once.

    Exactly 300 / 50 = 6 succeed, the 14 others are 422 over_reversal, the
    reversals put back exactly what the burn took from each lot (newest
    allocation first) and the balance is whole again: 500.
    """
    server, http, operator_key = shared.server, shared.http, shared.key
    lots = three_lots(http, "m-rev")
    burn = expect(http.post("/api/v1/transactions", json={
        "external_id": "rev-burn", "type": "burn", "partner_id": "aroma", "member_id": "m-rev",
        "occurred_at": days_ago(2), "points": 300}))
    assert allocated_per_lot([burn]) == {lots["aroma"]: 100, lots["skyair"]: 170, lots["coalition"]: 30}
    occurred_at = days_ago(1)

    def reverse(index):
        body = {"external_id": f"rev-{index:02d}", "type": "burn_reversal", "partner_id": "aroma",
                "original_external_id": "rev-burn", "occurred_at": occurred_at, "points": 50}
        return lambda caller: Reply.of(caller.post("/api/v1/transactions", json=body))

    replies = in_parallel(server.url, operator_key,
                          [reverse(index) for index in range(20)], threads=20)

    why = diagnose(server, replies)
    assert Counter((reply.status, reply.reason) for reply in replies) == Counter(
        {(201, None): 6, (422, "over_reversal"): 14}), why
    reversals = [reply.body for reply in replies if reply.status == 201]
    assert sum(t["points"] for t in reversals) == 300
    assert allocated_per_lot(reversals) == allocated_per_lot([burn])
    balance = expect(http.get("/api/v1/members/m-rev/balance"), 200)
    assert (balance["available"], balance["lifetime_burned"]) == (500, 0)
    assert len(list_all(http, member_id="m-rev", type="burn_reversal")) == 6


# --------------------------------------------------------------------------- 4b. earn reversals


def earn_of_100_points(http, external_id: str, member_id: str) -> dict:
    """An aroma earn of 1000.00 RUB two days ago: 1000 × 0.1 = 100 points."""
    earn = expect(http.post("/api/v1/transactions", json=earn_body(
        external_id, member_id, "aroma", "1000.00", days_ago(2))))
    assert earn["points"] == 100
    return earn


def earn_reversal_body(external_id, original_external_id, occurred_at, **amount_or_points) -> dict:
    return {"external_id": external_id, "type": "earn_reversal", "partner_id": "aroma",
            "original_external_id": original_external_id, "occurred_at": occurred_at, **amount_or_points}


def test_concurrent_earn_reversals_take_back_at_most_the_earn(shared):
    """An earn of 1000.00 RUB (× 0.1 = 100 points) and 20 returns of 100.00 RUB each at once.

    Each return takes floor(100 × 100 / 1000) = 10 points.
    Exactly 1000 / 100 = 10 succeed, each taking 10 points from the lot with no
    shortfall; the 10 others are 422 over_reversal (they would return more
    than the 1000 RUB bought). Together they take back exactly the 100
    points: the lot, the member's only one, is empty, so the balance is 0.
    """
    server, http, operator_key = shared.server, shared.http, shared.key
    earn = earn_of_100_points(http, "erev-earn", "m-erev")
    occurred_at = days_ago(1)

    def reverse(index):
        body = earn_reversal_body(f"erev-{index:02d}", "erev-earn", occurred_at, amount="100.00", currency="RUB")
        return lambda caller: Reply.of(caller.post("/api/v1/transactions", json=body))

    replies = in_parallel(server.url, operator_key, [reverse(index) for index in range(20)], threads=20)

    why = diagnose(server, replies)
    assert Counter((reply.status, reply.reason) for reply in replies) == Counter(
        {(201, None): 10, (422, "over_reversal"): 10}), why
    reversals = [reply.body for reply in replies if reply.status == 201]
    for reversal in reversals:
        assert (reversal["points"], reversal["shortfall_points"], reversal["amount"]) == (-10, 0, "100.00"), reversal
        assert reversal["original_id"] == earn["id"]
        assert allocated_per_lot([reversal]) == {earn["lot_id"]: 10}
    assert -sum(t["points"] for t in reversals) == 100
    assert allocated_per_lot(reversals) == {earn["lot_id"]: 100}  # the lot's remaining: 100 − 100 = 0

    balance = expect(http.get("/api/v1/members/m-erev/balance"), 200)
    assert (balance["available"], balance["pending"], balance["expiring"]) == (0, 0, [])
    assert (balance["lifetime_earned"], balance["lifetime_burned"]) == (0, 0)  # 100 earned, 100 taken back
    listed = list_all(http, member_id="m-erev", type="earn_reversal")
    assert sorted(t["id"] for t in listed) == sorted(t["id"] for t in reversals)


def test_concurrent_burns_and_earn_reversals_never_take_more_than_the_earn(shared):
    """An earn of 1000.00 RUB (100 points), then 10 burns of 15 and 10 returns of 15 points at once.

    A return by points is capped by the points earned, not by what the lot
    still holds (what it lacks is its ``shortfall_points``), so exactly
    floor(100 / 15) = 6 returns succeed (90 points) and 4 are 422
    over_reversal, whatever the order.

    Burns and returns of the member run one after the other (the member
    lock). While the lot holds 15 or more, each burn or return takes 15 from
    it; the lot goes 100, 85, …, 25, 10, so that happens exactly 6 times
    (the 6 returns alone would see to it). Then burns are 422
    insufficient_points and a return takes what is left. So with b burns
    succeeding, b + (returns that took 15) = 6, and:
    - b = 0: the 6 returns took 90, no shortfall; 10 points stay;
    - b > 0: b returns came after the lot fell to 10; the first took those
      10 (shortfall 5), the others 0 (shortfall 15); the balance is 0.
    In every order: taken + shortfall = 15 for each return, burned + taken
    back ≤ 100, and the balance is 100 − burned − taken back.
    """
    server, http, operator_key = shared.server, shared.http, shared.key
    earn = earn_of_100_points(http, "erev-mix-earn", "m-erev-mix")
    occurred_at = days_ago(1)

    def burn(index):
        body = {"external_id": f"erev-mix-burn-{index:02d}", "type": "burn", "partner_id": "aroma",
                "member_id": "m-erev-mix", "occurred_at": occurred_at, "points": 15}
        return lambda caller: Reply.of(caller.post("/api/v1/transactions", json=body))

    def reverse(index):
        body = earn_reversal_body(f"erev-mix-rev-{index:02d}", "erev-mix-earn", occurred_at, points=15)
        return lambda caller: Reply.of(caller.post("/api/v1/transactions", json=body))

    calls = [call for index in range(10) for call in (burn(index), reverse(index))]
    replies = in_parallel(server.url, operator_key, calls, threads=20)

    why = diagnose(server, replies)
    outcomes = Counter((reply.status, reply.body["type"] if reply.status == 201 else reply.reason)
                       for reply in replies)
    burns = [reply.body for reply in replies if reply.status == 201 and reply.body["type"] == "burn"]
    reversals = [reply.body for reply in replies if reply.status == 201 and reply.body["type"] == "earn_reversal"]
    b = len(burns)
    assert outcomes == Counter({(201, "earn_reversal"): 6, (422, "over_reversal"): 4,
                                (201, "burn"): b, (422, "insufficient_points"): 10 - b}), why

    for reversal in reversals:
        taken = -reversal["points"]
        assert taken + reversal["shortfall_points"] == 15, reversal
        assert sum(a["points"] for a in reversal["allocations"]) == taken
    assert all(t["points"] == -15 and allocated_per_lot([t]) == {earn["lot_id"]: 15} for t in burns)
    burned = 15 * b
    taken_back = -sum(t["points"] for t in reversals)
    requested = sum(t["shortfall_points"] - t["points"] for t in reversals)
    assert requested == 15 * 6 == 90  # at most the 100 earned
    full_returns = sum(1 for t in reversals if t["points"] == -15)
    assert b + full_returns == 6, (b, [(t["points"], t["shortfall_points"]) for t in reversals])
    expected_balance = 10 if b == 0 else 0
    assert 100 - burned - taken_back == expected_balance, (burned, taken_back)
    if b:
        assert sorted(t["shortfall_points"] for t in reversals) == [0] * full_returns + [5] + [15] * (b - 1)

    balance = expect(http.get("/api/v1/members/m-erev-mix/balance"), 200)
    assert balance["available"] == expected_balance
    assert (balance["lifetime_earned"], balance["lifetime_burned"]) == (100 - taken_back, burned)
    assert allocated_per_lot(burns + reversals) == {earn["lot_id"]: 100 - expected_balance}
    listed = list_all(http, member_id="m-erev-mix")
    assert sorted(t["id"] for t in listed if t["type"] != "earn") == sorted(t["id"] for t in burns + reversals)


# --------------------------------------------------------------------------- 5. close racing postings


def test_close_racing_with_postings(server, http, operator_key):
    """Daily periods; 150 postings dated yesterday (X) from 6 threads while a 7th closes X.

    (15100 points in all: 3725 from aroma, 7550 from skyair, 3825 bonus.)

    Posting i (0…149) is an aroma earn of 10(i+1) RUB → i+1 points, a skyair
    earn of i+1 EUR → 2(i+1) points, or a coalition bonus of i+1 points, by
    i mod 3. The close is sent once 40 postings have been answered; postings
    100… wait until the close has answered. So the first 40 must be in X, the
    last 50 late in X+1, and those in between in exactly one of them — and
    X's settlement must count exactly the ones it holds.
    """
    setup_coalition(http, {"period": "daily"})
    today = datetime.now(UTC).date()
    day_x, day_next = today - timedelta(days=1), today
    x, x_next = day_x.isoformat(), day_next.isoformat()
    noon = datetime.combine(day_x, time(12), tzinfo=UTC)

    def body(index):
        occurred_at = (noon + timedelta(seconds=index)).isoformat()
        member = f"m-close-{index % 10}"
        kind = index % 3
        if kind == 0:
            return "aroma", index + 1, earn_body(f"c-{index}", member, "aroma", f"{10 * (index + 1)}.00", occurred_at)
        if kind == 1:
            return "skyair", 2 * (index + 1), earn_body(f"c-{index}", member, "skyair", f"{index + 1}.00", occurred_at)
        return "coalition", index + 1, bonus_body(f"c-{index}", member, index + 1, occurred_at)

    postings = [body(index) for index in range(150)]
    by_partner = Counter()
    for partner, points, _ in postings:
        by_partner[partner] += points
    # aroma 1 + 4 + … + 148, skyair 2 × (2 + 5 + … + 149), coalition 3 + 6 + … + 150
    assert by_partner == Counter({"aroma": 3725, "skyair": 7550, "coalition": 3825})
    total = 15100

    guard = threading.Lock()
    answered: list[int] = []  # transaction ids in the order their answers came
    replies: dict[int, Reply] = {}
    next_index = iter(range(150))
    enough, closed = threading.Event(), threading.Event()
    close: dict = {}

    def poster(caller):
        while True:
            with guard:
                index = next(next_index, None)
            if index is None:
                return
            if index >= 100 and not closed.wait(timeout=WAIT):
                raise TimeoutError("the close never answered")
            after = closed.is_set()
            reply = Reply.of(caller.post("/api/v1/transactions", json=postings[index][2]), started_after_close=after)
            with guard:
                replies[index] = reply
                if reply.status == 201:
                    answered.append(reply.body["id"])
                if len(replies) >= 40:
                    enough.set()

    def closer(caller):
        try:
            if not enough.wait(timeout=WAIT):
                raise TimeoutError("postings never reached 40")
            with guard:
                close["before"] = set(answered)
            close["reply"] = Reply.of(caller.post(f"/api/v1/settlements/{x}/close"))
        finally:
            closed.set()
        # Read at once, while the late postings are still coming in.
        close["statements"] = caller.get("/api/v1/statements", query_string={"period_id": x}).content

    in_parallel(server.url, operator_key, [poster] * 6 + [closer], threads=7)

    why = diagnose(server, list(replies.values()) + [close["reply"]])
    assert close["reply"].status == 200, why
    assert sorted(replies) == list(range(150))
    assert {reply.status for reply in replies.values()} == {201}, why
    transactions = {index: reply.body for index, reply in replies.items()}
    in_x = {t["id"] for t in transactions.values() if (t["period_id"], t["late"]) == (x, False)}
    late = {t["id"] for t in transactions.values() if (t["period_id"], t["late"]) == (x_next, True)}
    assert len(in_x) + len(late) == 150 and not in_x & late, [
        (t["period_id"], t["late"]) for t in transactions.values()]
    assert close["before"] <= in_x and len(close["before"]) >= 40
    after_close = {replies[index].body["id"] for index in replies if replies[index].started_after_close}
    assert after_close <= late and len(after_close) >= 50
    for index, (_, points, _) in enumerate(postings):
        assert transactions[index]["points"] == points
    print(f"close race: {len(close['before'])} answered before the close was sent, "
          f"{len(in_x - close['before'])} more in {x}, {len(late - after_close)} late while it ran, "
          f"{len(after_close)} sent after it answered")

    # The ledger agrees: every transaction is listed in exactly one period.
    assert {t["id"] for t in list_all(http, period_id=x)} == in_x
    assert {t["id"] for t in list_all(http, period_id=x_next)} == late

    # X's settlement holds exactly the transactions attributed to it; X+1's draft the late ones.
    issued_in, issued_late, late_count = Counter(), Counter(), Counter()
    for index, (partner, points, _) in enumerate(postings):
        if transactions[index]["id"] in in_x:
            issued_in[partner] += points
        else:
            issued_late[partner] += points
            late_count[partner] += 1
    settled = http.get(f"/api/v1/settlements/{x}")
    assert settled.status_code == 200
    assert settled.content == close["reply"].content, "the stored settlement differs from the close response"
    final = settled.json()
    assert final["status"] == "final"
    draft = expect(http.get(f"/api/v1/settlements/{x_next}"), 200)
    assert draft["status"] == "draft"
    for partner in ("aroma", "skyair", "coalition"):
        entry = next(e for e in final["partners"] if e["partner_id"] == partner)
        assert (entry["points_issued"], entry["late_count"]) == (issued_in[partner], 0), entry
        assert entry["fees"] == ("0.00" if partner == "coalition" else fee(issued_in[partner])), entry
        upcoming = next(e for e in draft["partners"] if e["partner_id"] == partner)
        assert (upcoming["points_issued"], upcoming["late_count"]) == (issued_late[partner], late_count[partner])
    assert sum(e["points_issued"] for e in final["partners"]) + sum(
        e["points_issued"] for e in draft["partners"]) == total

    # Final statements: one per partner, numbered, hashed, and the same bytes on every read.
    listing = http.get("/api/v1/statements", query_string={"period_id": x})
    statements = listing.json()["items"]
    assert sorted((s["number"], s["partner_id"]) for s in statements) == [
        (f"{x}-0001", "aroma"), (f"{x}-0002", "coalition"), (f"{x}-0003", "skyair")]
    for statement in statements:
        assert statement["summary"] == next(e for e in final["partners"] if e["partner_id"] == statement["partner_id"])
        assert statement["late_items"] == []
        body = {key: value for key, value in statement.items() if key != "sha256"}
        canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        assert hashlib.sha256(canonical.encode()).hexdigest() == statement["sha256"]
        first = http.get(f"/api/v1/statements/{statement['id']}")
        assert first.status_code == 200 and first.content == http.get(f"/api/v1/statements/{statement['id']}").content
    assert listing.content == close["statements"], "statements changed after the close"
    again = http.post(f"/api/v1/settlements/{x}/close")
    assert again.status_code == 200 and again.content == close["reply"].content
    periods = {p["id"]: p["status"] for p in expect(http.get("/api/v1/periods"), 200)}
    assert (periods[x], periods[x_next]) == ("closed", "open")

    # X's KPIs, first asked for by 8 clients at once (each counts and keeps them): one answer.
    def kpis_of_x(caller):
        return Reply.of(caller.get("/api/v1/kpis", query_string={"period_id": x}))

    kpi_replies = in_parallel(server.url, operator_key, [kpis_of_x] * 8, threads=8)
    assert {reply.status for reply in kpi_replies} == {200}, diagnose(server, kpi_replies)
    assert len({reply.content for reply in kpi_replies}) == 1
    (figures,) = kpi_replies[0].body["periods"]
    assert (figures["status"], figures["coalition"]["points_issued"]) == ("closed", sum(issued_in.values()))
    assert http.get("/api/v1/kpis", query_string={"period_id": x}).content == kpi_replies[0].content


# --------------------------------------------------------------------------- 6. expiry twice at once


@pytest.fixture
def local_operator(app, database):
    """The API in-process (Flask test client) for set-up; the jobs get their own Database objects."""
    from tests.conftest import Caller

    _, key = database.run(lambda session: auth.create_key(session, "operator"))
    return Caller(app.test_client(), key)


def post_all(operator, bodies: list[dict]) -> list[dict]:
    return [expect(operator.post("/api/v1/transactions", json=body)) for body in bodies]


def test_expiry_job_twice_at_once_expires_each_lot_once(database_url, local_operator):
    """With a 1-day TTL, 60 lots earned 3 days ago are due, 15 bonuses of 7 earned now are not.

    Member j (0…14) has lots of 10, 20, 30 and 40 points (aroma earns of
    100 … 400 RUB). Two instances run ``expire_all`` at once: together they
    expire the 60 lots (1500 points), each exactly once, and every member
    keeps only the bonus: 7.
    """
    setup_coalition(local_operator, {"points_ttl_days": 1})
    old, now_ish = days_ago(3), days_ago(1 / 1440)
    bodies = [earn_body(f"x-{member}-{lot}", f"m-exp-{member:02d}", "aroma", f"{100 * (lot + 1)}.00", old)
              for member in range(15) for lot in range(4)]
    bodies += [bonus_body(f"x-{member}-live", f"m-exp-{member:02d}", 7, now_ish) for member in range(15)]
    posted = post_all(local_operator, bodies)
    due = {t["lot_id"]: t["points"] for t in posted[:60]}
    assert sum(due.values()) == 15 * (10 + 20 + 30 + 40) == 1500

    now = datetime.now(UTC)
    instances = [Database(database_url), Database(database_url)]
    try:
        counts = together(*(lambda db=db: expiry.expire_all(db, now) for db in instances), wait=WAIT)
        assert sum(counts) == 60, counts
        assert [expiry.expire_all(db, now) for db in instances] == [0, 0]
    finally:
        for db in instances:
            db.dispose()

    expiries = list_all(local_operator, type="expiry")
    per_lot = Counter(a["lot_id"] for t in expiries for a in t["allocations"])
    assert len(expiries) == 60 and per_lot == Counter(dict.fromkeys(due, 1)), per_lot
    assert {t["external_id"] for t in expiries} == {f"expiry-{lot}-1" for lot in due}
    for transaction in expiries:
        (allocation,) = transaction["allocations"]
        assert transaction["points"] == -due[allocation["lot_id"]] == -allocation["points"]
    for member in range(15):
        balance = expect(local_operator.get(f"/api/v1/members/m-exp-{member:02d}/balance"), 200)
        assert balance["available"] == 7


# --------------------------------------------------------------------------- 7. two scheduler instances


def test_two_scheduler_instances_close_and_expire_once(database_url, local_operator):
    """Daily periods, a 1-day TTL and auto-close right after a period ends.

    Earns 3 days ago (10 lots: aroma 100 … 1000 RUB → 10 … 100 points) and
    2 days ago (10 lots: skyair 5 … 50 EUR → 10 … 100 points) are expired;
    bonuses of 5 points a minute ago are not. Two instances run the
    auto-close and the expiry jobs at once (four threads): every day from
    the first earn to yesterday closes once, with one statement per partner
    and period; each due lot gets one expiry transaction; and the closed
    settlements plus today's draft account for every point issued and expired.
    """
    setup_coalition(local_operator, {"period": "daily", "points_ttl_days": 1, "auto_close_after_hours": 0})
    three, two, recent = days_ago(3), days_ago(2), days_ago(1 / 1440)
    bodies = [earn_body(f"s-a-{i}", f"m-sched-{i}", "aroma", f"{100 * (i + 1)}.00", three) for i in range(10)]
    bodies += [earn_body(f"s-s-{i}", f"m-sched-{i}", "skyair", f"{5 * (i + 1)}.00", two) for i in range(10)]
    bodies += [bonus_body(f"s-b-{i}", f"m-sched-{i}", 5, recent) for i in range(10)]
    posted = post_all(local_operator, bodies)
    due = {t["lot_id"]: t["points"] for t in posted[:20]}
    assert sorted(due.values()) == sorted([10 * (i + 1) for i in range(10)] * 2)
    issued = 2 * 550 + 50

    today = datetime.now(UTC).date()
    first = datetime.fromisoformat(three).astimezone(UTC).date()
    expected_closed = [(first + timedelta(days=n)).isoformat() for n in range((today - first).days)]

    instances = [Database(database_url), Database(database_url)]
    try:
        together(*(lambda db=db: jobs.run_auto_close(db) for db in instances),
                 *(lambda db=db: jobs.run_expiry(db) for db in instances), wait=WAIT)
        statements = expect(local_operator.get("/api/v1/statements"), 200)
        settlements = {p: local_operator.get(f"/api/v1/settlements/{p}").data for p in expected_closed}
        # Both instances once more, one after the other: nothing left to do, nothing changes.
        for db in instances:
            jobs.run_auto_close(db)
            jobs.run_expiry(db)
    finally:
        for db in instances:
            db.dispose()

    periods = expect(local_operator.get("/api/v1/periods"), 200)
    assert [p["id"] for p in periods if p["status"] == "closed"] == expected_closed
    assert [p["id"] for p in periods if p["status"] == "open"] == [today.isoformat()]
    numbers = Counter((s["period_id"], s["partner_id"]) for s in statements["items"])
    assert numbers == Counter({(p, partner): 1 for p in expected_closed for partner in ("aroma", "coalition", "skyair")})
    assert sorted(s["number"] for s in statements["items"]) == sorted(
        f"{p}-{n:04d}" for p in expected_closed for n in (1, 2, 3))
    assert expect(local_operator.get("/api/v1/statements"), 200) == statements
    for period_id, body in settlements.items():
        assert local_operator.get(f"/api/v1/settlements/{period_id}").data == body

    expiries = list_all(local_operator, type="expiry")
    assert Counter(a["lot_id"] for t in expiries for a in t["allocations"]) == Counter(dict.fromkeys(due, 1))
    figures = [json.loads(body) for body in settlements.values()]
    figures.append(expect(local_operator.get(f"/api/v1/settlements/{today.isoformat()}"), 200))
    assert [f["status"] for f in figures] == ["final"] * len(expected_closed) + ["draft"]
    assert sum(e["points_issued"] for f in figures for e in f["partners"]) == issued
    assert sum(e["points_expired"] for f in figures for e in f["partners"]) == sum(due.values()) == 1100
    late_expiries = [t for t in expiries if t["late"]]
    assert all(t["period_id"] == today.isoformat() for t in late_expiries)


# --------------------------------------------------------------------------- 8. period totals under load


def test_concurrent_postings_keep_the_period_totals(server, http, operator_key):
    """200 earns and burns from 32 threads: the draft settlement equals what the replies say.

    Twenty members get the three lots of :func:`three_lots`; then each posts
    five burns of 25 points (at aroma, then skyair, alternately) and five
    earns at once, all dated yesterday. The close reads counters that every
    posting adds to (16 stripes per key, many postings on one key at once):
    its pair lines must be the sum, by issuer and redeemer, of the
    allocations the burns answered with, and each partner's points issued
    the sum of the earns answered in that period.
    """
    setup_coalition(http)
    members = [f"m-totals-{number:02d}" for number in range(20)]
    issuer_of = {}
    for member in members:
        issuer_of.update({lot: issuer for issuer, lot in three_lots(http, member).items()})
    yesterday = days_ago(1)

    def call(member, step):
        if step % 2:
            partner = ("aroma", "skyair")[step // 2 % 2]
            body = {"external_id": f"{member}-burn-{step}", "type": "burn", "partner_id": partner,
                    "member_id": member, "points": 25, "occurred_at": yesterday}
        else:
            partner, amount = (("aroma", "120.00"), ("skyair", "3.50"))[step // 2 % 2]  # 12 and 7 points
            body = earn_body(f"{member}-earn-{step}", member, partner, amount, yesterday)
        return lambda caller: Reply.of(caller.post("/api/v1/transactions", json=body))

    replies = in_parallel(server.url, operator_key, [call(m, step) for step in range(10) for m in members])
    why = diagnose(server, replies)
    assert {reply.status for reply in replies} == {201}, why
    period = replies[0].body["period_id"]
    assert {reply.body["period_id"] for reply in replies} == {period}

    redeemed, issued = Counter(), Counter()
    for reply in replies:
        posted = reply.body
        if posted["type"] == "burn":
            for allocation in posted["allocations"]:
                redeemed[issuer_of[allocation["lot_id"]], posted["partner_id"]] += allocation["points"]
        else:
            issued[posted["partner_id"]] += posted["points"]
    assert sum(redeemed.values()) == 20 * 5 * 25
    assert {issuer for issuer, _ in redeemed} == {"aroma", "skyair"}  # 125 points cross the 100-point lot
    assert issued == {"aroma": 20 * 3 * 12, "skyair": 20 * 2 * 7}
    for kind in ("earn", "bonus"):  # the set-up's lots dated in this period count too
        for posted in list_all(http, period_id=period, type=kind):
            if "-earn-" not in posted["external_id"]:
                issued[posted["partner_id"]] += posted["points"]

    draft = expect(http.get(f"/api/v1/settlements/{period}"), 200)
    assert {(line["issuer_id"], line["redeemer_id"]): line["points"] for line in draft["pair_lines"]} == redeemed
    assert {entry["partner_id"]: entry["points_issued"] for entry in draft["partners"] if entry["points_issued"]} == {
        partner: points for partner, points in issued.items() if points}


# --------------------------------------------------------------------------- 9. changes racing a close or a posting


@contextmanager
def held_open(database_url: str, use_case):
    """``use_case(session)`` run in a transaction left open (its locks held) until the block ends, then committed."""
    database = Database(database_url)
    session = database.sessions()
    try:
        with session.begin():
            use_case(session)
            yield
    finally:
        session.close()
        database.dispose()


def posting_held_open(database_url: str, request: dict):
    """``request`` (loaded) posted by the operator in a transaction left open, its locks
    held, until the block ends."""
    return held_open(database_url, lambda session: ledger.post(session, imports.OPERATOR, request,
                                                                 datetime.now(UTC)))


def held_burn() -> dict:
    """A burn of 10 of m-held's points at skyair, loaded: posted held open, it holds the
    member's lock (see :func:`member_with_skyair_points`)."""
    return validated({"external_id": "b-held", "type": "burn", "partner_id": "skyair",
                      "member_id": "m-held", "points": 10, "occurred_at": days_ago(2)})


def replied_after(held, call, database_url: str):
    """``call()`` sent while ``held`` holds its locks, which are let go once it waits (or
    answered without waiting); its reply."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        with held:
            reply = pool.submit(call)
            until_queued_or_done(database_url, reply)
        return reply.result(timeout=WAIT)


def until_queued_or_done(database_url: str, call) -> None:
    """Return once the ``call`` in flight waits on a lock of the database, or has answered
    without waiting (what the test then catches): however slow the machine, it ran its
    checks before the held locks were let go, as it could (a fixed second let a slow call
    start after the commit, and pass without the race)."""
    engine = create_engine(database_url)
    try:
        until_waiting_on_locks(engine, 1, unless=call.done)
    finally:
        engine.dispose()


def test_a_rate_posted_while_a_close_runs_waits_for_it_and_cannot_start_in_the_period_closed(
        database_url, local_operator):
    this_month = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    closing = (this_month - timedelta(days=1)).strftime("%Y-%m")
    inside = (this_month - timedelta(days=3)).isoformat()
    close = held_open(database_url, lambda session: settlement.close(session, closing, datetime.now(UTC)))
    reply = replied_after(close, lambda: local_operator.post(
        "/api/v1/rates", json={"kind": "redemption", "value": "0.02", "effective_from": inside}), database_url)
    # it passed the check before the close committed, then landed in the closed period (201)
    assert (reply.status_code, reply.get_json()["reason"]) == (409, "period_closed")
    assert expect(local_operator.get("/api/v1/rates", query_string={"kind": "redemption"}), 200) == []


def test_a_posting_that_waits_for_a_close_lands_late_and_is_recorded_after_the_close(
        database_url, local_operator):
    """A close is dated once it holds the calendar lock, and so is a posting: one asked
    for before the close began, dated in the period, that waits for the close's lock,
    lands late in the next period and is recorded after the close (it was recorded when
    asked for, before the close's date)."""
    add_partner(local_operator, "skyair", "EUR", "travel")
    add_rate(local_operator, "earn", "2", partner_id="skyair")
    this_month = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    closing = (this_month - timedelta(days=1)).strftime("%Y-%m")
    request = validated({"external_id": "e-wait", "type": "earn", "partner_id": "skyair",
                         "member_id": "m-wait", "occurred_at": (this_month - timedelta(days=3)).isoformat(),
                         "amount": "10.00", "currency": "EUR"})
    asked_at = datetime.now(UTC)
    close = held_open(database_url, lambda session: settlement.close(session, closing, datetime.now(UTC)))
    database = Database(database_url)
    try:
        posting = replied_after(close, lambda: database.run(ledger.post, imports.OPERATOR, request, asked_at),
                                database_url)
    finally:
        database.dispose()
    (closed,) = [p for p in expect(local_operator.get("/api/v1/periods"), 200) if p["id"] == closing]
    transaction = posting.transaction
    assert transaction.late and transaction.period_id == this_month.strftime("%Y-%m")
    assert transaction.recorded_at > datetime.fromisoformat(closed["closed_at"]) > asked_at


def member_with_skyair_points(operator, member_id: str) -> None:
    """aroma (RUB) and skyair (EUR), redemption 0.01, and ``member_id`` with 200 points of skyair's."""
    add_partner(operator, "aroma", "RUB", "cafe")
    add_partner(operator, "skyair", "EUR", "travel")
    add_rate(operator, "earn", "2", partner_id="skyair")
    add_rate(operator, "redemption", "0.01")
    expect(earn(operator, f"e-{member_id}", member_id, "100.00", partner_id="skyair", occurred_at=days_ago(3)))


def test_a_rate_added_while_a_burn_is_in_flight_waits_for_it_and_then_re_prices_it(database_url,
                                                                                  local_operator):
    """The rate knows which postings were priced without it (SPEC §7: a burn is valued at
    the rate in force at its occurred_at). Read while the burn was in flight, the ledger's
    last transaction would leave the burn out: valued at 0.01, not at aroma's own 0.05
    dated before it. 30 points burnt at aroma from skyair's lot: 30 × 0.05 = 1.50 EUR."""
    member_with_skyair_points(local_operator, "m-race")
    request = validated({"external_id": "b-race", "type": "burn", "partner_id": "aroma",
                         "member_id": "m-race", "points": 30, "occurred_at": days_ago(2)})
    posting = posting_held_open(database_url, request)
    reply = replied_after(posting, lambda: local_operator.post("/api/v1/rates", json={
        "kind": "redemption", "value": "0.05", "partner_id": "aroma", "effective_from": days_ago(4)}),
        database_url)
    assert reply.status_code == 201, reply.get_json()
    burnt = list_all(local_operator, "/api/v1/transactions", type="burn")
    draft = expect(local_operator.get(f"/api/v1/settlements/{burnt[0]['period_id']}"), 200)
    lines = [(line["issuer_id"], line["redeemer_id"], line["points"], line["value"]) for line in draft["pair_lines"]]
    assert lines == [("skyair", "aroma", 30, "1.50")]


@pytest.mark.parametrize("change", [
    ("/api/v1/partners/aroma", {"currency": "EUR"}),
    ("/api/v1/settings", {"timezone": "Europe/Moscow"}),
    ("/api/v1/settings", {"base_currency": "USD"}),
], ids=["a partner's currency", "the calendar", "the base currency"])
def test_a_change_the_ledger_depends_on_waits_for_a_posting_in_flight_and_is_then_refused(
        database_url, local_operator, change):
    add_partner(local_operator, "aroma", "RUB", "cafe")
    add_rate(local_operator, "earn", "0.1", partner_id="aroma")
    request = validated(earn_body("race-1", "m-race", "aroma", "100.00", days_ago(1)))
    posting = posting_held_open(database_url, request)
    path, body = change
    reply = replied_after(posting, lambda: (local_operator.patch if "partners" in path else local_operator.put)(
        path, json=body), database_url)
    # it found no transaction yet, and changed what the posting had just been checked against (200)
    assert reply.status_code == 409, reply.get_json()
    assert expect(local_operator.get("/api/v1/partners/aroma"), 200)["currency"] == "RUB"
    assert expect(local_operator.get("/api/v1/settings"), 200)["timezone"] == "UTC"


@pytest.mark.parametrize("change", [
    ("/api/v1/partners/aroma", {"currency": "EUR"}, {"currency": "RUB"}, "EUR", "currency_fixed"),
    ("/api/v1/settings", {"timezone": "Europe/Moscow"}, {"timezone": "UTC"}, "RUB", "calendar_fixed"),
    ("/api/v1/partners/aroma", {"status": "active"}, {"status": "suspended"}, "RUB", None),
], ids=["a partner's currency", "the calendar", "a suspension"])
def test_a_change_sent_as_read_before_another_change_committed_waits_for_postings_in_flight(
        database_url, local_operator, monkeypatch, change):
    """Operator B sends back a value as it was (RUB, UTC, suspended) while operator A
    changes it (EUR, Moscow, active). B judged whether to wait for postings by the
    reference data it read before A committed, where its value was no change, then
    read the row after A committed and wrote its value over A's without waiting: an
    earn checked against A's value in flight meanwhile was not counted (the currency
    went back to RUB under an earn in EUR, the calendar to UTC under a transaction
    in Moscow's period), or committed after the suspension was answered.

    B is held between those two reads, a round trip apart over HTTP: 2 in 300 rounds
    of PATCH EUR, PATCH RUB and an earn in EUR released together against gunicorn
    left an earn in EUR at a partner in RUB."""
    path, first, back, currency, refused = change
    send = local_operator.patch if "partners" in path else local_operator.put
    add_partner(local_operator, "aroma", "RUB", "cafe")
    add_rate(local_operator, "earn", "0.1", partner_id="aroma")
    if refused is None:
        expect(local_operator.patch("/api/v1/partners/aroma", json={"status": "suspended"}), 200)
    module, loader = (partners, "get") if "partners" in path else (settings_service, "load")
    original = getattr(module, loader)
    read, go = threading.Event(), threading.Event()

    def row_read_late(session, *args):
        if not read.is_set():  # B's, the first read of the row from here on
            read.set()
            assert go.wait(timeout=WAIT)
        return original(session, *args)

    monkeypatch.setattr(module, loader, row_read_late)
    request = validated({**earn_body("race-4", "m-race", "aroma", "100.00", days_ago(1)), "currency": currency})
    with ThreadPoolExecutor(max_workers=1) as pool:
        sent_back = pool.submit(send, path, json=back)
        assert read.wait(timeout=WAIT)
        expect(send(path, json=first), 200)
        with posting_held_open(database_url, request):
            go.set()
            until_queued_or_done(database_url, sent_back)
            answered_while_posting = sent_back.done()
        reply = sent_back.result(timeout=WAIT)
    assert not answered_while_posting, reply.get_json()
    if refused is None:
        assert expect(reply, 200)["status"] == "suspended"
    else:
        assert (reply.status_code, reply.get_json()["reason"]) == (409, refused)
    (posted,) = list_all(local_operator)
    assert posted["currency"] == expect(local_operator.get("/api/v1/partners/aroma"), 200)["currency"]
    assert expect(local_operator.get("/api/v1/settings"), 200)["timezone"] == first.get("timezone", "UTC")


def test_no_posting_of_a_partner_is_recorded_after_its_suspension(database_url, local_operator):
    """An operator who suspends a partner (a compromised till) is answered once that
    partner's postings in flight have committed: one queued behind a member's lock
    when the suspension came was recorded tens of milliseconds after it."""
    member_with_skyair_points(local_operator, "m-held")
    queued = {"external_id": "b-queued", "type": "burn", "partner_id": "aroma",
              "member_id": "m-held", "points": 10, "occurred_at": days_ago(2)}
    watched = Database(database_url)
    with ThreadPoolExecutor(max_workers=2) as pool:
        with posting_held_open(database_url, held_burn()):
            burn = pool.submit(local_operator.post, "/api/v1/transactions", json=queued)
            until_waiting_on_locks(watched.engine, 1)  # aroma's burn, queued on the member's lock
            suspension = pool.submit(local_operator.patch, "/api/v1/partners/aroma",
                                     json={"status": "suspended"})
            # queued behind the burn; without waiting, it committed at once
            until_waiting_on_locks(watched.engine, 2, unless=suspension.done)
        expect(suspension.result(timeout=WAIT), 200)
        recorded_at = datetime.fromisoformat(expect(burn.result(timeout=WAIT))["recorded_at"])
    watched.dispose()
    (suspended,) = [change for change in list_all(local_operator, "/api/v1/changes", subject="partner")
                    if change["fields"].get("status") == ["active", "suspended"]]
    assert recorded_at < datetime.fromisoformat(suspended["at"])


def test_no_posting_of_a_partner_is_recorded_while_it_was_suspended(database_url, local_operator, monkeypatch):
    """A partner reactivated while a posting asked during its suspension holds the
    calendar lock but has not yet read the partner: the posting is refused, as it was
    asked. The reactivation went ahead without waiting, the posting then read the partner
    active and was written, recorded as its lock was granted: before the reactivation's
    time in /changes, so posted while the partner was suspended by the record."""
    add_partner(local_operator, "aroma", "RUB", "cafe")
    add_rate(local_operator, "earn", "0.1", partner_id="aroma")
    expect(local_operator.patch("/api/v1/partners/aroma", json={"status": "suspended"}), 200)
    original = ledger_reads.posted
    granted, go = threading.Event(), threading.Event()

    def read_late(session, keys):
        if not granted.is_set():  # the posting's, its locks granted
            granted.set()
            assert go.wait(timeout=WAIT)
        return original(session, keys)

    monkeypatch.setattr(ledger_reads, "posted", read_late)
    watched = Database(database_url)
    with ThreadPoolExecutor(max_workers=2) as pool:
        posting = pool.submit(local_operator.post, "/api/v1/transactions",
                              json=earn_body("e-asked", "m-asked", "aroma", "100.00", days_ago(1)))
        assert granted.wait(timeout=WAIT)
        reactivation = pool.submit(local_operator.patch, "/api/v1/partners/aroma", json={"status": "active"})
        until_waiting_on_locks(watched.engine, 1, unless=reactivation.done)  # behind the posting
        go.set()
        expect(reactivation.result(timeout=WAIT), 200)
        reply = posting.result(timeout=WAIT)
    watched.dispose()
    (reactivated,) = [change for change in list_all(local_operator, "/api/v1/changes", subject="partner")
                      if change["fields"].get("status") == ["suspended", "active"]]
    assert (reply.status_code, reply.get_json().get("reason")) == (422, "partner_suspended"), (
        reply.get_json().get("recorded_at"), reactivated["at"])
    assert list_all(local_operator) == []


def test_no_posting_under_a_key_is_recorded_after_its_revocation(database_url, local_operator):
    """A till's key revoked (leaked) while its batch of 250 runs: the revocation is
    answered once the chunk in flight (items 0–99) has committed, and the chunks after
    it find the key revoked: items 100–249 are 401, as each would be posted alone now,
    where every chunk went on posting under the revoked key (250 written).

    The first chunk's burn queues on m-held's lock, held open by another burn; the
    revocation queues behind the chunk for the calendar lock, and the second chunk
    behind the revocation."""
    member_with_skyair_points(local_operator, "m-held")
    till, key_id = till_of(local_operator, "skyair")
    batch = [{"external_id": "b-till", "type": "burn", "member_id": "m-held", "points": 10,
              "occurred_at": days_ago(2)}]
    batch += [earn_body(f"e-till-{n}", f"m-till-{n}", "skyair", "1.00", days_ago(1)) for n in range(1, 250)]
    watched = Database(database_url)
    with ThreadPoolExecutor(max_workers=2) as pool:
        with posting_held_open(database_url, held_burn()):
            posted = pool.submit(till.post, "/api/v1/transactions/batch", json={"transactions": batch})
            until_waiting_on_locks(watched.engine, 1)  # the first chunk, on m-held's lock
            revocation = pool.submit(local_operator.delete, f"/api/v1/keys/{key_id}")
            until_waiting_on_locks(watched.engine, 2, unless=revocation.done)
        assert revocation.result(timeout=WAIT).status_code == 204
        results = expect(posted.result(timeout=WAIT), 200)["results"]
    recorded = watched.run(lambda session: session.execute(text(
        "SELECT count(*), max(recorded_at) FROM transactions WHERE key_id = :key"), {"key": key_id}).one())
    watched.dispose()
    assert [result["status"] for result in results] == [201] * 100 + [401] * 150
    assert {result["error"]["reason"] for result in results[100:]} == {"unauthenticated"}
    (key,) = [row for row in expect(local_operator.get("/api/v1/keys"), 200) if row["id"] == key_id]
    assert recorded[0] == 100 and recorded[1] < datetime.fromisoformat(key["revoked_at"])


@pytest.mark.parametrize("alone", [False, True], ids=["batch", "alone"])
def test_a_posting_whose_key_is_revoked_before_it_writes_is_401_and_writes_nothing(database_url, local_operator,
                                                                                   alone):
    """Authenticated, then queued behind a revocation for the calendar lock: a batch
    finds its key revoked before its first chunk writes, and is refused as a whole, as
    a posting alone is; each was written under the revoked key (200 and 201) when the
    key was judged only as the request came in."""
    member_with_skyair_points(local_operator, "m-held")
    till, key_id = till_of(local_operator, "skyair")
    batch = [earn_body(f"e-till-{n}", f"m-till-{n}", "skyair", "1.00", days_ago(1)) for n in range(3)]
    watched = Database(database_url)
    with ThreadPoolExecutor(max_workers=2) as pool:
        with posting_held_open(database_url, held_burn()):
            revocation = pool.submit(local_operator.delete, f"/api/v1/keys/{key_id}")
            until_waiting_on_locks(watched.engine, 1, unless=revocation.done)  # behind the held burn
            posted = (pool.submit(till.post, "/api/v1/transactions", json=batch[0]) if alone else
                      pool.submit(till.post, "/api/v1/transactions/batch", json={"transactions": batch}))
            until_waiting_on_locks(watched.engine, 2, unless=posted.done)  # behind the revocation
        assert revocation.result(timeout=WAIT).status_code == 204
        reply = posted.result(timeout=WAIT)
    written = watched.run(lambda session: session.execute(text(
        "SELECT count(*) FROM transactions WHERE key_id = :key"), {"key": key_id}).scalar_one())
    watched.dispose()
    assert reply.status_code == 401 and reply.get_json()["reason"] == "unauthenticated"
    assert written == 0


def test_an_fx_rate_posted_while_the_base_currency_changes_is_checked_against_the_new_one(database_url,
                                                                                         local_operator):
    change = held_open(database_url, lambda session: settings_service.update(session, {"base_currency": "USD"}))
    reply = replied_after(change, lambda: local_operator.post(
        "/api/v1/rates", json={"kind": "fx", "currency": "USD", "value": "1.1", "effective_from": days_ago(1)}),
        database_url)
    # it was checked against EUR before the change committed: an fx rate for the base currency (201)
    assert reply.status_code == 422, reply.get_json()
    assert reply.get_json()["message"] == "USD is the base currency: its fx rate is always 1"


def test_settings_sent_back_unchanged_do_not_wait_for_postings_in_flight(database_url, local_operator):
    add_partner(local_operator, "aroma", "RUB", "cafe")
    add_rate(local_operator, "earn", "0.1", partner_id="aroma")
    settings = expect(local_operator.get("/api/v1/settings"), 200)
    request = validated(earn_body("race-2", "m-race", "aroma", "100.00", days_ago(1)))
    with ThreadPoolExecutor(max_workers=1) as pool, posting_held_open(database_url, request):
        # the calendar and currency as they are, the TTL changed: nothing postings depend on
        reply = pool.submit(local_operator.put, "/api/v1/settings", json={**settings, "points_ttl_days": 400})
        assert expect(reply.result(timeout=10), 200)["points_ttl_days"] == 400  # while the posting is open


def test_instances_started_together_make_one_first_operator_key(database_url):
    """`serve` on a coalition without an operator key makes one and prints it. Of two
    instances starting together, the second looks while the first's key is not yet
    committed: it waits and makes none, where each made and printed a key of its own."""
    made = []
    first = held_open(database_url, lambda session: made.append(auth.first_operator_key(session)))
    database = Database(database_url)
    try:
        second = replied_after(first, lambda: database.run(auth.first_operator_key), database_url)
        keys = database.run(lambda session: session.execute(text(
            "SELECT count(*) FROM api_keys WHERE role = 'operator'")).scalar_one())
    finally:
        database.dispose()
    assert made[0].startswith(auth.KEY_PREFIX) and second is None
    assert keys == 1


# --------------------------------------------------------------------------- a page passes no posting in flight


@pytest.mark.parametrize("order", ["oldest", "newest"])
@pytest.mark.parametrize("listing", ["transactions", "history"])
def test_a_page_does_not_pass_a_posting_still_in_flight(database_url, local_operator, listing, order):
    """Ids are drawn as a posting begins and postings commit in any order. `held`
    draws its id, then `later`, posted meanwhile, commits with a higher one. A page
    read then that showed `later` and a cursor past it would never show `held`: a
    partner reading its transactions page by page would lose it for good. The page
    waits for `held` to commit and shows both, in id order. Newest first, the first
    page would show `later` and `first` and send the reader on below `first`.

    `held` earns at another partner than `later`: a unit of work adds to one of
    its partner's period counters, picked at random, so at one partner `later`
    could pick the stripe `held` keeps locked and commit only after it."""
    for partner, currency in (("aroma", "RUB"), ("skyair", "EUR")):
        add_partner(local_operator, partner, currency, "cafe")
        add_rate(local_operator, "earn", "0.1", partner_id=partner)
    first = expect(earn(local_operator, "page-first", "m-page", "100.00", occurred_at=days_ago(1)))
    request = validated(earn_body("page-held", "m-page", "skyair", "100.00", days_ago(1)))
    path = {"transactions": "/api/v1/transactions", "history": "/api/v1/members/m-page/history"}[listing]
    expect(local_operator.get(path), 200)  # `first` is now known settled: a page up to it waits for none
    held = posting_held_open(database_url, request)
    with ThreadPoolExecutor(max_workers=1) as pool:
        with held:  # a thread of its own even for `later`: waiting on `held` here would wait for ever
            later = expect(pool.submit(earn, local_operator, "page-later", "m-page", "100.00",
                                       occurred_at=days_ago(1)).result(timeout=WAIT))
            query = {"cursor": str(first["id"])} if order == "oldest" else {"order": "newest"}
            page = pool.submit(local_operator.get, path, query_string=query)
            until_queued_or_done(database_url, page)  # it reads the page before `held` commits
        items = expect(page.result(timeout=WAIT), 200)["items"]
    ids = [item["id" if listing == "transactions" else "transaction_id"] for item in items]
    everything = {item["external_id"]: item["id"] for item in list_all(local_operator)}
    assert everything["page-first"] < everything["page-held"] < everything["page-later"] == later["id"]
    in_order = [everything["page-held"], everything["page-later"]]
    assert ids == (in_order if order == "oldest" else [*in_order[::-1], everything["page-first"]])


@contextmanager
def standby_of(url: str):
    """A copy of the database at ``url`` as it is now, a standby that will have lost what
    follows, and the promotion that puts it in the database's place under its name, as a
    failover to an asynchronous standby does: the sessions killed, the database's
    postings since the copy gone, and their ids to be drawn again."""
    name = make_url(url).database
    admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    kill_sessions(name)  # a database is copied with no one in it
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}_standby" TEMPLATE "{name}"'))

    def promote():
        kill_sessions(name)
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{name}" RENAME TO "{name}_old"'))
            connection.execute(text(f'ALTER DATABASE "{name}_standby" RENAME TO "{name}"'))

    try:
        yield promote
    finally:
        with admin.connect() as connection:
            for gone in (f"{name}_old", f"{name}_standby"):
                connection.execute(text(f'DROP DATABASE IF EXISTS "{gone}" WITH (FORCE)'))
        admin.dispose()


def test_after_a_failover_that_lost_postings_a_page_waits_again_for_those_in_flight(template, tmp_path):
    """A failover to an asynchronous standby loses what the primary had not sent it, and the
    promoted standby draws those ids again. An instance that had read a page over them took
    them for committed: a page then showed `later` and a cursor past it while `held`, a lower
    id, was still in flight, and a reader page by page never saw `held`."""
    with copy_of(template, tmp_path) as url:
        app = create_app({"DATABASE_URL": url, "TESTING": True})
        database = database_of(app)
        try:
            _, key = database.run(lambda session: auth.create_key(session, "operator"))
            operator = Caller(app.test_client(), key)
            for partner, currency in (("aroma", "RUB"), ("skyair", "EUR")):
                add_partner(operator, partner, currency, "cafe")
                add_rate(operator, "earn", "0.1", partner_id=partner)
            first = expect(earn(operator, "page-first", "m-page", "100.00", occurred_at=days_ago(1)))
            with standby_of(url) as promote:
                for lost in ("lost-1", "lost-2"):  # acknowledged by the primary alone
                    expect(earn(operator, lost, "m-page", "100.00", occurred_at=days_ago(1)))
                expect(operator.get("/api/v1/transactions"), 200)  # their ids known committed
                promote()
                request = validated(earn_body("page-held", "m-page", "skyair", "100.00", days_ago(1)))
                with ThreadPoolExecutor(max_workers=1) as pool, posting_held_open(url, request):
                    later = expect(pool.submit(earn, operator, "page-later", "m-page", "100.00",
                                               occurred_at=days_ago(1)).result(timeout=WAIT))
                    page = pool.submit(operator.get, "/api/v1/transactions",
                                       query_string={"cursor": str(first["id"])})
                    until_queued_or_done(url, page)
                items = expect(page.result(timeout=WAIT), 200)["items"]
                everything = {item["external_id"]: item["id"] for item in list_all(operator)}
        finally:
            database.dispose()
    assert everything == {"page-first": first["id"], "page-held": first["id"] + 1, "page-later": later["id"]}
    assert [item["external_id"] for item in items] == ["page-held", "page-later"]


def test_a_page_whose_wait_saw_a_connection_break_remembers_nothing_it_read(
        database_url, local_operator, database, monkeypatch):
    """A failover found by another request while a page waited: the page may have read the
    old primary's highest id, and kept after the forgetting it would let later pages pass
    the ids the promoted server draws again. So the next page waits again (and, the lock
    held, is 503), where it was answered as settled."""
    monkeypatch.setattr(horizon, "WAIT", "300ms")
    add_partner(local_operator, "aroma", "RUB", "cafe")
    add_rate(local_operator, "earn", "0.1", partner_id="aroma")
    expect(earn(local_operator, "page-first", "m-page", "100.00", occurred_at=days_ago(1)))
    largest_id = aggregates.largest_id

    def read_as_another_connection_breaks(connection, table):
        settled = largest_id(connection, table)
        with database.engine.connect() as other:
            other.exec_driver_sql("SET application_name = 'broken'")
            kill_sessions(make_url(database_url).database, "broken")  # a failover, which `other` finds
            with pytest.raises(OperationalError):
                other.exec_driver_sql("SELECT 1")
        return settled

    monkeypatch.setattr(aggregates, "largest_id", read_as_another_connection_breaks)
    expect(local_operator.get("/api/v1/transactions"), 200)
    monkeypatch.setattr(aggregates, "largest_id", largest_id)
    close = held_open(database_url, lambda session: calendar.lock_calendar(session, exclusive=True))
    with ThreadPoolExecutor(max_workers=1) as pool, close:
        reply = pool.submit(local_operator.get, "/api/v1/transactions").result(timeout=WAIT)
    assert (reply.status_code, reply.get_json()["reason"]) == (503, "database_unavailable")


def test_a_page_kept_waiting_too_long_by_postings_in_flight_is_503_to_ask_again(
        database_url, local_operator, monkeypatch):
    """The wait gives up (here after 0.3 s; 10 s in service) rather than hang on a lock
    queued behind the page's own transaction, which no deadlock check would see."""
    monkeypatch.setattr(horizon, "WAIT", "300ms")
    add_partner(local_operator, "aroma", "RUB", "cafe")
    add_rate(local_operator, "earn", "0.1", partner_id="aroma")
    expect(earn(local_operator, "page-first", "m-page", "100.00", occurred_at=days_ago(1)))
    close = held_open(database_url, lambda session: calendar.lock_calendar(session, exclusive=True))
    with ThreadPoolExecutor(max_workers=1) as pool, close:  # answered while the close holds on, however late
        reply = pool.submit(local_operator.get, "/api/v1/transactions").result(timeout=WAIT)
    assert (reply.status_code, reply.get_json()["reason"]) == (503, "database_unavailable")
    assert reply.get_json()["message"].startswith("the service waited too long for other work on the database")
    assert reply.headers["Retry-After"]
    assert [item["external_id"] for item in list_all(local_operator)] == ["page-first"]
