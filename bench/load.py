"""Load generators and their ceilings, run in a pool of worker processes.

Every figure is driven the same way: ``processes × threads`` clients, each
thread with its own keep-alive HTTP connection (:class:`Client`) or its own
psycopg connection, a bounded number of operations each, all starting at one agreed
wall-clock instant after a warm-up. A worker returns its latencies, status
counts, first error bodies and CPU time; :func:`merge` folds them into one
:class:`Measured`.

Worker processes are spawned (not forked) so that no database connection or
lock of the parent is ever shared with them.
"""

import http.client
import json
import math
import multiprocessing
import os
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

HTTP_TIMEOUT = 120  # seconds for one request; a stuck server fails the run, it does not hang it
START_DELAY = 0.15  # seconds between dispatch and the common start instant
MAX_ERROR_SAMPLES = 5


@dataclass
class Measured:
    """One figure's raw result: operations, wall time, latencies."""

    operations: int = 0  # business operations (transactions, lookups, PDFs)
    requests: int = 0  # round trips
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, one per round trip
    statuses: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    client_cpu: float = 0.0  # CPU seconds the load generator itself used
    concurrency: int = 1

    @property
    def rate(self) -> float:
        return self.operations / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        return percentile(self.latencies, q)

    @property
    def failed(self) -> int:
        return sum(count for status, count in self.statuses.items() if not 200 <= int(status) < 300)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0–100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def merge(parts: list[dict], concurrency: int) -> Measured:
    result = Measured(concurrency=concurrency)
    first = min(part["first"] for part in parts)
    last = max(part["last"] for part in parts)
    result.seconds = max(last - first, 1e-9)
    for part in parts:
        result.operations += part["operations"]
        result.requests += part["requests"]
        result.latencies.extend(part["latencies"])
        result.statuses.update(part["statuses"])
        result.client_cpu += part["cpu"]
        for error in part["errors"]:
            if len(result.errors) < MAX_ERROR_SAMPLES:
                result.errors.append(error)
    return result


class Pool:
    """Spawned worker processes, reused for every figure."""

    def __init__(self, processes: int):
        self.processes = processes
        self._pool = multiprocessing.get_context("spawn").Pool(processes)
        self._pool.map(warm_up, range(processes), chunksize=1)

    def run(
        self,
        kind: str,
        clients: int,
        per_client: int,
        params: dict,
        seed: int,
        max_seconds: float = 600.0,
    ) -> Measured:
        """``clients`` concurrent clients, ``per_client`` operations each, spread over the processes.

        A client stops early once ``max_seconds`` have passed since the start
        (an operation under way is finished), so a slow service cannot make
        a run take forever; rates are completed operations over wall time.
        """
        processes = min(self.processes, clients)
        threads = [
            clients // processes + (1 if index < clients % processes else 0)
            for index in range(processes)
        ]
        start_at = time.time() + START_DELAY + 0.02 * processes
        params = {**params, "deadline": start_at + max_seconds}
        tasks = [
            {
                "kind": kind,
                "threads": threads[index],
                "per_client": per_client,
                "params": params,
                "seed": seed * 1000 + index,
                "process_index": index,
                "thread_offset": sum(threads[:index]),
                "start_at": start_at,
            }
            for index in range(processes)
        ]
        parts = self._pool.map(run_task, tasks, chunksize=1)
        return merge(parts, clients)

    def close(self) -> None:
        self._pool.terminate()
        self._pool.join()


def warm_up(_index: int) -> int:
    import psycopg  # noqa: F401

    return os.getpid()


# --------------------------------------------------------------------------- in the worker


def run_task(task: dict) -> dict:
    cpu_before = time.process_time()
    client = CLIENTS[task["kind"]]
    outputs: list[dict] = [None] * task["threads"]
    failures: list[BaseException] = []

    def thread_main(slot: int):
        try:
            seed = task["seed"] * 100 + slot
            number = task["thread_offset"] + slot
            outputs[slot] = client(
                task["params"], task["per_client"], random.Random(seed), number, task["start_at"]
            )
        except BaseException as error:  # noqa: BLE001 — re-raised below, in the worker's main thread
            failures.append(error)

    threads = [
        threading.Thread(target=thread_main, args=(slot,), daemon=True)
        for slot in range(task["threads"])
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    result = {
        "operations": 0,
        "requests": 0,
        "latencies": [],
        "statuses": Counter(),
        "errors": [],
        "first": min(output["first"] for output in outputs),
        "last": task["start_at"],
    }
    for output in outputs:
        result["operations"] += output["operations"]
        result["requests"] += len(output["latencies"])
        result["latencies"].extend(output["latencies"])
        result["statuses"].update(output["statuses"])
        result["errors"].extend(output["errors"][:MAX_ERROR_SAMPLES])
        result["last"] = max(result["last"], output["last"])
    result["cpu"] = time.process_time() - cpu_before
    return result


def _wait(start_at: float) -> float:
    """Sleep until the common start; return when this client really began (warm-up may overrun)."""
    delay = start_at - time.time()
    if delay > 0:
        time.sleep(delay)
    return time.time()


def _done(params: dict, latencies: list[float]) -> bool:
    """Past the figure's time cap, once this client has measured something: on a busy
    machine a client whose warm-up overran the cap still gives its figure a sample."""
    return bool(latencies) and time.time() >= params["deadline"]


def _output(operations, latencies, statuses, errors, first) -> dict:
    return {
        "operations": operations,
        "latencies": latencies,
        "statuses": statuses,
        "errors": errors,
        "first": first,
        "last": time.time(),
    }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _amount(partner: dict, minor: int) -> str:
    exponent = partner["exponent"]
    if exponent == 0:
        return str(minor)
    text = str(minor).rjust(exponent + 1, "0")
    return f"{text[:-exponent]}.{text[-exponent:]}"


class Client:
    """One keep-alive HTTP/1.1 connection from the standard library.

    The load generator shares the machine's cores with the service, so it
    should cost as little as it can: ``requests`` spent about 1.4 ms of CPU
    per request here, a good part of a single post's own cost, and that time
    was also inside every latency measured. A connection the server closed
    while idle (gunicorn's keep-alive is short) is opened again and the
    request sent once more; every request the benchmarks send may be
    repeated (postings are idempotent).
    """

    RETRIED = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)

    def __init__(self, base_url: str, key: str | None = None, timeout: float = HTTP_TIMEOUT):
        parts = urlsplit(base_url)
        self.host, self.port, self.prefix = parts.hostname, parts.port, parts.path.rstrip("/")
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.timeout = timeout
        self.connection = self._connect()

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def request(self, method: str, path: str, body=None, key: str | None = None):
        """(status, body) of one request, the body as text, or as bytes where its type is
        no text (a statement's PDF); ``key`` overrides the client's own."""
        headers = dict(self.headers)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            try:
                self.connection.request(method, self.prefix + path, payload, headers)
                response = self.connection.getresponse()
                return response.status, _body(response)
            except self.RETRIED:
                self.connection.close()
                self.connection = self._connect()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.connection.close()


def _body(response: http.client.HTTPResponse) -> str | bytes:
    """An answer's body: text for JSON, CSV and other text, in its charset (UTF-8 where
    it names none, as the service's JSON does); bytes for any other type."""
    content = response.read()
    kind = response.headers.get_content_type()
    if kind.startswith("text/") or kind == "application/json" or kind.endswith("+json"):
        return content.decode(response.headers.get_content_charset("utf-8"))
    return content


class _Requests:
    """Single transactions: earns (60 %), burns of rich members (30 %), returns (10 %)."""

    @staticmethod
    def body(
        params: dict, rng: random.Random, external_id: str, member_hint: str, earns: list
    ) -> tuple[dict, dict]:
        partners, rich, regular = params["partners"], params["rich"], params["regular"]
        roll = rng.random()
        if roll < 0.10 and earns:
            partner, original, minor = earns.pop(rng.randrange(len(earns)))
            return partner, {
                "external_id": external_id,
                "type": "earn_reversal",
                "original_external_id": original,
                "amount": _amount(partner, minor // 2),
                "occurred_at": _now(),
            }
        partner = partners[rng.randrange(len(partners))]
        if roll < 0.40:
            return partner, {
                "external_id": external_id,
                "type": "burn",
                "member_id": rich[rng.randrange(len(rich))],
                "points": rng.randrange(5, 31),
                "occurred_at": _now(),
            }
        low, high = partner["minor_range"]
        minor = rng.randrange(low, high + 1)
        member = member_hint if rng.random() < 0.5 else regular[rng.randrange(len(regular))]
        earns.append((partner, external_id, minor))
        return partner, {
            "external_id": external_id,
            "type": "earn",
            "member_id": member,
            "amount": _amount(partner, minor),
            "currency": partner["currency"],
            "occurred_at": _now(),
        }


IMPORT_COLUMNS = (
    "external_id",
    "type",
    "partner_id",
    "member_id",
    "occurred_at",
    "amount",
    "currency",
    "category",
    "points",
    "reason",
    "original_external_id",
)


def write_import_csv(path, params: dict, rows: int, rng: random.Random) -> None:
    """A CSV for ``coalition import``: the batches' mix of earns, burns and returns."""
    import csv

    earns: list = []
    with open(path, "w", newline="", encoding="utf-8") as target:
        writer = csv.DictWriter(target, IMPORT_COLUMNS)
        writer.writeheader()
        for index in range(rows):
            external_id = f"{params['prefix']}-{index}"
            partner, body = _Requests.body(
                params, rng, external_id, f"{params['prefix']}m-{index}", earns
            )
            writer.writerow({**body, "partner_id": partner["id"]})


def http_post(params: dict, count: int, rng: random.Random, number: int, start_at: float) -> dict:
    client = Client(params["url"])
    client.request("GET", "/healthz")
    latencies, statuses, errors, earns = [], Counter(), [], []
    first = _wait(start_at)
    for index in range(count):
        if _done(params, latencies):
            break
        external_id = f"{params['prefix']}-{number}-{index}"
        partner, body = _Requests.body(
            params, rng, external_id, f"{params['prefix']}m-{number}-{index}", earns
        )
        began = time.perf_counter()
        status, text = client.request("POST", "/api/v1/transactions", body, partner["key"])
        latencies.append(time.perf_counter() - began)
        statuses[status] += 1
        if status >= 300 and len(errors) < MAX_ERROR_SAMPLES:
            errors.append(f"{status} {body['type']}: {text[:300]}")
    client.close()
    return _output(len(latencies), latencies, statuses, errors, first)


def http_batch(params: dict, count: int, rng: random.Random, number: int, start_at: float) -> dict:
    """``count`` batches of ``params['size']`` items: earns, burns and returns, many partners."""
    client = Client(params["url"], params["operator_key"])
    client.request("GET", "/healthz")
    latencies, statuses, errors, operations = [], Counter(), [], 0
    first = _wait(start_at)
    for batch in range(count):
        if _done(params, latencies):
            break
        items, earns = [], []
        for index in range(params["size"]):
            external_id = f"{params['prefix']}-{number}-{batch}-{index}"
            partner, body = _Requests.body(
                params, rng, external_id, f"{params['prefix']}m-{number}-{batch}-{index}", earns
            )
            body["partner_id"] = partner["id"]
            items.append(body)
        began = time.perf_counter()
        status, text = client.request("POST", "/api/v1/transactions/batch", {"transactions": items})
        latencies.append(time.perf_counter() - began)
        operations += len(items)
        if status != 200:
            statuses[status] += len(items)
            if len(errors) < MAX_ERROR_SAMPLES:
                errors.append(f"batch {status}: {text[:300]}")
            continue
        for result in json.loads(text)["results"]:
            statuses[result["status"]] += 1
            if result["status"] >= 300 and len(errors) < MAX_ERROR_SAMPLES:
                errors.append(f"item {result['status']}: {str(result.get('error'))[:300]}")
    client.close()
    return _output(operations, latencies, statuses, errors, first)


def http_balance(
    params: dict, count: int, rng: random.Random, number: int, start_at: float
) -> dict:
    client = Client(params["url"], params["key"])
    members = params["members"]
    for _ in range(3):
        client.request("GET", f"/api/v1/members/{members[0]}/balance")
    latencies, statuses, errors = [], Counter(), []
    first = _wait(start_at)
    for _ in range(count):
        if _done(params, latencies):
            break
        member = members[rng.randrange(len(members))]
        began = time.perf_counter()
        status, text = client.request("GET", f"/api/v1/members/{member}/balance")
        latencies.append(time.perf_counter() - began)
        statuses[status] += 1
        if status != 200 and len(errors) < MAX_ERROR_SAMPLES:
            errors.append(f"{status}: {text[:300]}")
    client.close()
    return _output(len(latencies), latencies, statuses, errors, first)


INSERT = (
    "INSERT INTO {table} (id, partner_id, external_id, type, member_id, occurred_at, recorded_at, amount, "
    "currency, category, reason, points, shortfall_points, original_id, rate_ids, fee_rate, period_id, late, "
    "request_hash) VALUES (%s, %s, %s, 'earn', %s, %s, %s, %s, %s, NULL, NULL, %s, 0, NULL, '[1, 2]', 0.0005, "
    "%s, false, %s)"
)


def sql_insert(params: dict, count: int, rng: random.Random, number: int, start_at: float) -> dict:
    """The ceiling of (a): one committed single-row INSERT per operation, no service in between."""
    import psycopg

    partners = params["partners"]
    statement = INSERT.format(table=params["table"])
    latencies = []
    with psycopg.connect(params["dsn"], autocommit=True) as connection:
        connection.execute("SELECT 1")
        first = _wait(start_at)
        base = (number + 1) * 1_000_000
        for index in range(count):
            if _done(params, latencies):
                break
            partner = partners[rng.randrange(len(partners))]
            low, high = partner["minor_range"]
            minor = rng.randrange(low, high + 1)
            moment = datetime.now(UTC)
            began = time.perf_counter()
            connection.execute(
                statement,
                (
                    base + index,
                    partner["id"],
                    f"raw-{number}-{index}",
                    f"rawm-{number}-{index}",
                    moment,
                    moment,
                    _amount(partner, minor),
                    partner["currency"],
                    minor % 1000 + 1,
                    params["period_id"],
                    "0" * 64,
                ),
            )
            latencies.append(time.perf_counter() - began)
    return _output(len(latencies), latencies, Counter({200: len(latencies)}), [], first)


def balance_statement(at: datetime) -> tuple[str, dict]:
    """The service's balance statement (:data:`coalition.db.aggregates.MEMBER_BALANCE`) as
    it reaches PostgreSQL, with its parameters for a lookup at ``at``; ``member_id`` is
    set per lookup."""
    from sqlalchemy.dialects.postgresql import psycopg as dialect

    from coalition.db import aggregates
    from coalition.domain.lots import EXPIRING_HORIZON

    compiled = aggregates.MEMBER_BALANCE.compile(dialect=dialect.dialect())
    expanded = compiled.construct_expanded_state(
        {"member_id": "", "at": at, "horizon": at + EXPIRING_HORIZON}
    )
    return expanded.statement, dict(expanded.parameters)


def sql_lookup(params: dict, count: int, rng: random.Random, number: int, start_at: float) -> dict:
    """The ceiling of (d): the service's own balance statement, straight from psycopg,
    without HTTP, Flask or authentication."""
    import psycopg

    members = params["members"]
    statement, values = balance_statement(datetime.now(UTC))
    latencies = []
    with psycopg.connect(params["dsn"], autocommit=True) as connection:
        for _ in range(6):  # past psycopg's prepare threshold, as a long-lived connection would be
            connection.execute(statement, {**values, "member_id": members[0]}).fetchall()
        first = _wait(start_at)
        for _ in range(count):
            if _done(params, latencies):
                break
            member = members[rng.randrange(len(members))]
            began = time.perf_counter()
            connection.execute(statement, {**values, "member_id": member}).fetchall()
            latencies.append(time.perf_counter() - began)
    return _output(len(latencies), latencies, Counter({200: len(latencies)}), [], first)


def statement_to_render(database, period_id: str) -> dict:
    """The statement figure (e) renders: the period's with the most counterparties (the
    longest table), the last partner id among equals."""
    from coalition.auth import Principal
    from coalition.services import statements
    from coalition.services.pages import Paging

    listed = database.run(
        statements.list_statements, Principal("bench", "operator"), Paging(), period_id
    )
    return max(
        (issued.document() for issued in listed["items"]),
        key=lambda document: (len(document["counterparties"]), document["partner_id"]),
    )


def pdf_render(params: dict, count: int, rng: random.Random, number: int, start_at: float) -> dict:
    import reports

    statement = params["statement"]
    reports.render_pdf(statement)
    latencies = []
    first = _wait(start_at)
    for _ in range(count):
        if _done(params, latencies):
            break
        began = time.perf_counter()
        reports.render_pdf(statement)
        latencies.append(time.perf_counter() - began)
    return _output(len(latencies), latencies, Counter({200: len(latencies)}), [], first)


def pdf_bare(params: dict, count: int, rng: random.Random, number: int, start_at: float) -> dict:
    bare_pdf(params["pages"])
    latencies = []
    first = _wait(start_at)
    for _ in range(count):
        if _done(params, latencies):
            break
        began = time.perf_counter()
        bare_pdf(params["pages"])
        latencies.append(time.perf_counter() - began)
    return _output(len(latencies), latencies, Counter({200: len(latencies)}), [], first)


def bare_pdf(pages: int) -> bytes:
    """The ceiling of (e): a ReportLab canvas with the statement's font and page count.

    Each page carries 40 short lines of text in Roboto (subset-embedded, as
    the statement's is) and a rule; no layout engine, no tables, no chart.
    """
    import io

    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    from reports import fonts

    fonts.register()
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4, invariant=1)
    for page in range(pages):
        pdf.setFont(fonts.REGULAR, 9)
        for line in range(40):
            pdf.drawString(
                50, 800 - line * 18, f"Кофейня Арома € ₽ page {page + 1} line {line + 1}: 1 234,56"
            )
        pdf.line(50, 60, 545, 60)
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


CLIENTS = {
    "post": http_post,
    "batch": http_batch,
    "balance": http_balance,
    "insert": sql_insert,
    "lookup": sql_lookup,
    "pdf": pdf_render,
    "pdf_bare": pdf_bare,
}
