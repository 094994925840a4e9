"""The benchmark command: ``python -m bench.run [--scale small|medium|large] [--database-url URL]``.

1. PostgreSQL: a throwaway cluster (``initdb``, fsync off, a free port on
   127.0.0.1, always stopped and deleted), or the server of ``--database-url``;
   either way a fresh database, migrated with the project's Alembic migrations
   and dropped at the end.
2. The service: gunicorn (``-k gthread``, several workers) on 127.0.0.1, its
   scheduler off. Partners (21 in 6 currencies plus ``coalition``), rates and
   partner keys are created through the HTTP API.
3. Stage 1× and stage 10×: the stage's history (one settlement period) is
   generated and COPYed in (:mod:`bench.data`), then every figure is measured
   beside its ceiling: (a) single POSTs, (b) batches, (c) closing the stage's
   period, (d) balance lookups, (e) statement PDFs, and, as references (not
   goals of the issue), (g) the closed period's KPIs and (h) its transactions
   downloaded as CSV. (f) compares the stages.
4. The table goes to stdout (progress to stderr), and after it what a
   transaction of (a) and (b) cost in CPU, the service's, PostgreSQL's and
   the load generator's (:mod:`bench.cpu`); ``--json PATH`` writes every
   number.

Every loop is bounded; nothing listens beyond 127.0.0.1.
"""

import argparse
import http.client
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg import sql

from bench import cpu, data, load, maintenance, pg, report

ROOT = Path(__file__).resolve().parents[1]
SERVER_START_TIMEOUT = 60.0
SERVER_STOP_TIMEOUT = 15.0


@dataclass(frozen=True)
class Scale:
    members: int  # stage 1×; stage 10× adds 9× as many
    allocations: int  # burn allocations in the stage-1× period; ×10 in the stage-10× period
    heavy_members: int  # members holding many live lots, per stage
    heavy_lots: int
    http_clients: int
    http_per_client: int
    batch_clients: int
    batches_per_client: int
    batch_size: int
    import_rows: int  # rows of the CSV file given to `coalition import`
    lookup_clients: int
    lookups_per_client: int
    pdfs: int  # renders per process
    figure_seconds: float  # a time cap on every load figure (a client stops issuing after it)


SCALES = {
    "small": Scale(
        members=2_000,
        allocations=2_000,
        heavy_members=20,
        heavy_lots=100,
        http_clients=8,
        http_per_client=40,
        batch_clients=2,
        batches_per_client=4,
        batch_size=50,
        import_rows=400,
        lookup_clients=2,
        lookups_per_client=150,
        pdfs=4,
        figure_seconds=1.5,
    ),
    "medium": Scale(
        members=100_000,
        allocations=100_000,
        heavy_members=200,
        heavy_lots=300,
        http_clients=32,
        http_per_client=150,
        batch_clients=4,
        batches_per_client=3,
        batch_size=1000,
        import_rows=50_000,
        lookup_clients=2,
        lookups_per_client=1500,
        pdfs=40,
        figure_seconds=45,
    ),
    "large": Scale(
        members=200_000,
        allocations=1_000_000,
        heavy_members=500,
        heavy_lots=500,
        http_clients=32,
        http_per_client=300,
        batch_clients=4,
        batches_per_client=5,
        batch_size=1000,
        import_rows=100_000,
        lookup_clients=2,
        lookups_per_client=3000,
        pdfs=80,
        figure_seconds=90,
    ),
}


def progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the service


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log_path: Path

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=SERVER_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=SERVER_STOP_TIMEOUT)


@contextmanager
def gunicorn(
    database_url: str,
    log_path: Path,
    workers: int,
    threads: int,
    app: str = "coalition:create_app()",
):
    """``app`` (the service) under gunicorn on a free port of 127.0.0.1, until the block ends."""
    environment = {
        **os.environ,
        "COALITION_DATABASE_URL": database_url,
        "COALITION_SCHEDULER": "off",
        "COALITION_BENCH_FLOOR_DSN": pg.conninfo(database_url),
        "COALITION_BENCH_FLOOR_TABLE": FLOOR_TABLE,
        "PYTHONUNBUFFERED": "1",
    }
    for attempt in range(1, 4):
        port = pg.free_port()
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--worker-class",
            "gthread",
            "--threads",
            str(threads),
            "--timeout",
            "300",
            "--graceful-timeout",
            "5",
            "--backlog",
            "2048",
            "--log-level",
            "warning",
            "--error-logfile",
            "-",
            "--no-control-socket",
            "--preload",
            app,
        ]
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=environment,
                cwd=ROOT,
                start_new_session=True,
            )
        server = Server(f"http://127.0.0.1:{port}", process, log_path)
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        healthy = False
        while time.monotonic() < deadline and process.poll() is None:
            client = load.Client(server.url, timeout=1)
            try:
                status, _ = client.request("GET", "/healthz")
                if status == 200:
                    healthy = True
                    break
            except (OSError, http.client.HTTPException):
                time.sleep(0.1)
            finally:
                client.close()
        if healthy:
            break
        _stop(process)
        if attempt == 3:
            raise RuntimeError(f"gunicorn did not start:\n{server.log_tail()}")
    try:
        yield server
    finally:
        _stop(process)


def http_caller(base_url: str):
    """``call(method, path, body, key) -> (status, JSON or text)`` for setting up through the API."""
    client = load.Client(base_url)

    def call(method, path, body, key):
        status, text = client.request(method, path, body, key)
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    return call


# --------------------------------------------------------------------------- ceilings run here


CEILING_TABLE = "bench_ceiling_tx"
FLOOR_TABLE = "bench_floor_tx"


COPY_RUNS = 3


def copy_ceiling(dsn: str, first_id: int, last_id: int, since: datetime) -> tuple[float, int]:
    """COPY the rows the batches wrote into empty copies of their tables; (seconds, transactions).

    The best of :data:`COPY_RUNS` runs (the copies are truncated between
    runs), so one scheduling hiccup on a busy machine does not become the
    ceiling.
    """
    selections = {
        "members": f"SELECT * FROM members WHERE created_at >= %(since)s AND id IN "
        f"(SELECT member_id FROM lots WHERE transaction_id > {first_id} AND transaction_id <= {last_id})",
        "transactions": f"SELECT * FROM transactions WHERE id > {first_id} AND id <= {last_id}",
        "lots": f"SELECT * FROM lots WHERE transaction_id > {first_id} AND transaction_id <= {last_id}",
        "allocations": f"SELECT * FROM allocations WHERE transaction_id > {first_id} AND transaction_id <= {last_id}",
    }
    dumps = {}
    with psycopg.connect(dsn) as connection, connection.cursor() as cursor:
        for table, select in selections.items():
            select = select.replace("%(since)s", f"'{since.isoformat()}'")
            with cursor.copy(f"COPY ({select}) TO STDOUT (FORMAT binary)") as copy:
                dumps[table] = b"".join(bytes(block) for block in copy)
            cursor.execute(f"DROP TABLE IF EXISTS bench_copy_{table}")
            cursor.execute(
                f"CREATE TABLE bench_copy_{table} (LIKE {table} INCLUDING CONSTRAINTS INCLUDING INDEXES)"
            )
        count = cursor.execute(
            f"SELECT count(*) FROM transactions WHERE id > {first_id} AND id <= {last_id}"
        ).fetchone()[0]
        connection.commit()
        seconds = math.inf
        for _ in range(COPY_RUNS):
            cursor.execute(f"TRUNCATE {', '.join(f'bench_copy_{table}' for table in dumps)}")
            connection.commit()
            began = time.perf_counter()
            for table, dump in dumps.items():
                with cursor.copy(f"COPY bench_copy_{table} FROM STDIN (FORMAT binary)") as copy:
                    copy.write(dump)
            connection.commit()
            seconds = min(seconds, time.perf_counter() - began)
        for table in dumps:
            cursor.execute(f"DROP TABLE bench_copy_{table}")
        connection.commit()
    return seconds, count


BARE_GROUP_BY = (
    "SELECT issuer_id, redeemer_id, sum(-points) AS points, sum(-points * value_rate) AS value "
    "FROM allocations WHERE period_id = %s AND type IN ('burn', 'burn_reversal') "
    "GROUP BY issuer_id, redeemer_id"
)


#: The least a period's KPIs must do: count each partner's distinct members.
BARE_DISTINCT_MEMBERS = (
    "SELECT partner_id, count(DISTINCT member_id) FROM transactions "
    "WHERE period_id = %s AND type IN ('earn', 'burn') GROUP BY partner_id"
)


def bare_group_by(dsn: str, period_id: str, query: str = BARE_GROUP_BY, runs: int = 2):
    """Best of ``runs`` of a bare aggregate (the first run warms the cache); (seconds, rows)."""
    best, lines = math.inf, 0
    with psycopg.connect(dsn, autocommit=True) as connection:
        for _ in range(runs):
            began = time.perf_counter()
            lines = len(connection.execute(query, (period_id,)).fetchall())
            best = min(best, time.perf_counter() - began)
    return best, lines


def count_burn_allocations(dsn: str, period_id: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as connection:
        return connection.execute(
            "SELECT count(*) FROM allocations WHERE period_id = %s AND type IN ('burn', 'burn_reversal')",
            (period_id,),
        ).fetchone()[0]


def max_transaction_id(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as connection:
        return connection.execute("SELECT coalesce(max(id), 0) FROM transactions").fetchone()[0]


#: The transactions CSV's rows (a row per points movement: a lot earned, each allocation,
#: or none), as the database alone would write them: the ceiling of (h).
EXPORT_MOVEMENTS = (
    "SELECT t.id, t.external_id, t.type, t.partner_id, t.member_id, t.occurred_at,"
    " t.recorded_at, t.period_id, t.late, t.amount, t.currency, t.category, t.reason,"
    " t.original_id, t.rate_ids, coalesce(l.id, a.lot_id), coalesce(l.issuer_id, a.issuer_id),"
    " coalesce(l.points, a.points, t.points), t.shortfall_points, l.available_at, l.expires_at"
    " FROM transactions t LEFT JOIN lots l ON l.transaction_id = t.id"
    " LEFT JOIN allocations a ON a.transaction_id = t.id"
    " WHERE t.period_id = {period} ORDER BY t.id, a.id LIMIT {rows}"
)


def copy_export(dsn: str, period_id: str, rows: int) -> tuple[float, int]:
    """COPY the period's first ``rows`` movement rows to this client as CSV; (seconds, rows)."""
    statement = sql.SQL(EXPORT_MOVEMENTS).format(
        period=sql.Literal(period_id), rows=sql.Literal(rows)
    )
    with psycopg.connect(dsn, autocommit=True) as connection, connection.cursor() as cursor:
        began = time.perf_counter()
        with cursor.copy(sql.SQL("COPY ({}) TO STDOUT (FORMAT csv)").format(statement)) as copy:
            copied = sum(bytes(block).count(b"\n") for block in copy)
        return time.perf_counter() - began, copied


def download_export(
    base_url: str, key: str, period_id: str, max_seconds: float
) -> tuple[float, int]:
    """The period's transactions CSV over HTTP, read for at most ``max_seconds``; (seconds,
    rows read, the header not counted)."""
    address = base_url.removeprefix("http://")
    connection = http.client.HTTPConnection(address, timeout=SERVER_START_TIMEOUT)
    try:
        began = time.perf_counter()
        connection.request(
            "GET",
            f"/api/v1/transactions/csv?period_id={period_id}",
            headers={"Authorization": f"Bearer {key}"},
        )
        response = connection.getresponse()
        if response.status != 200:
            raise AssertionError(
                f"the export answered {response.status}: {response.read()[:500]!r}"
            )
        lines = 0
        while chunk := response.read1(1 << 16):
            lines += chunk.count(b"\n")  # a row ends "\r\n"; "\n" is never split between chunks
            if time.perf_counter() - began > max_seconds:
                break
        return time.perf_counter() - began, lines - 1
    finally:
        connection.close()


def pdf_pages(content: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", content))


def import_csv(context: dict, params: dict, rows: int, rng: random.Random) -> dict:
    """Run ``coalition import`` on a generated CSV as an operator would; its figures.

    The time is the command's whole run, interpreter start-up included, since
    that is what a finance team waits for.
    """
    dsn, path = context["dsn"], context["workdir"] / f"import-{params['prefix']}.csv"
    load.write_import_csv(path, params, rows, rng)
    before, since = max_transaction_id(dsn), datetime.now(UTC)
    with cpu.counted(postgres=context["postgres_pid"]) as spent:
        began, ended_before = time.perf_counter(), cpu.ended_children()
        finished = subprocess.run(
            [str(Path(sys.executable).with_name("coalition")), "import", str(path)],
            env={**os.environ, "COALITION_DATABASE_URL": context["database_url"]},
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - began
        # the command and its lanes: the only children this process waits for meanwhile
        spent["service"] = cpu.ended_children() - ended_before
    posted = rows if finished.returncode == 0 else 0  # all rows or none
    after = max_transaction_id(dsn)
    copy_seconds, copied = copy_ceiling(dsn, before, after, since)
    return {
        "i_rows": rows,
        "i_exit": finished.returncode,
        "i_summary": (finished.stdout.strip().splitlines() or [""])[-1],
        "i_errors": finished.stderr.strip().splitlines()[-load.MAX_ERROR_SAMPLES :]
        if finished.returncode
        else [],
        "i_seconds": seconds,
        "i_tps": posted / seconds if posted else math.nan,
        **_cpu_each("i", spent, None, posted),
        "i_copy_rows": copied,
        "i_copy_s": copy_seconds,
        "i_copy_tps": copied / copy_seconds if copy_seconds else math.nan,
    }


def _cpu_each(prefix: str, spent: dict, client_seconds: float | None, count: int) -> dict:
    """Milliseconds of CPU a transaction (or item) cost the service, PostgreSQL and the
    load generator; None where it could not be counted."""

    def each(seconds):
        return None if seconds is None or not count else seconds / count * 1e3

    return {
        f"{prefix}_service_cpu_ms": each(spent.get("service")),
        f"{prefix}_postgres_cpu_ms": each(spent.get("postgres")),
        f"{prefix}_client_cpu_ms": each(client_seconds),
    }


# --------------------------------------------------------------------------- one stage


def measure_stage(context: dict, stage: int, loaded: data.StageResult) -> dict:
    """Every figure of one stage beside its ceiling, in this order.

    The order matters: the open period's KPIs must come before the close and
    the closed period's after it, the PDFs are of the statements the close
    wrote, and every timing depends on what ran before it.
    """
    period_id = loaded.plan.period_id
    participants = {
        "partners": context["world"].partners_for_load(),
        "rich": loaded.rich_members or loaded.heavy_members,
        "regular": loaded.regular_members,
    }
    measures = {
        "(a)": lambda: _measure_single(context, stage, participants),
        "(b) batches": lambda: _measure_batches(context, stage, participants),
        "(b) import": lambda: _measure_import(context, stage, participants),
        "(g) open": lambda: _measure_open_kpis(context, stage, period_id),
        "(c)": lambda: _measure_close(context, stage, period_id),
        "(g) closed": lambda: _measure_closed_kpis(context, stage, period_id),
        "(d)": lambda: _measure_balance(context, stage, loaded, participants["partners"]),
        "(e)": lambda: _measure_pdfs(context, stage, period_id),
        "(h)": lambda: _measure_export(context, stage, period_id),
    }
    figures: dict = {"stage": stage, "period_id": period_id, "autovacuum": {}}
    for label, measure in measures.items():
        with maintenance.watched(context["dsn"]) as autovacuum:
            figures.update(measure())
        figures["autovacuum"][label] = autovacuum
    return figures


def _measure_single(context: dict, stage: int, participants: dict) -> dict:
    """(a) Single transactions over HTTP, the same posts to the floor, and the single-row
    INSERT loop."""
    scale, pool, dsn = context["scale"], context["pool"], context["dsn"]
    cap = scale.figure_seconds
    progress(
        f"stage {stage}: (a) {scale.http_clients} clients × {scale.http_per_client} single POSTs"
    )
    single_params = {"url": context["url"], **participants, "prefix": f"h{stage}"}
    with cpu.counted(service=context["service_pid"], postgres=context["postgres_pid"]) as spent:
        single = pool.run(
            "post",
            scale.http_clients,
            scale.http_per_client,
            single_params,
            seed=stage,
            max_seconds=cap,
        )
    with cpu.counted(service=context["floor_pid"], postgres=context["postgres_pid"]) as floor_spent:
        floor = pool.run(
            "post",
            scale.http_clients,
            scale.http_per_client,
            {**single_params, "url": context["floor_url"]},
            seed=stage,
            max_seconds=cap,
        )
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(f"TRUNCATE {CEILING_TABLE}, {FLOOR_TABLE}")
    raw = pool.run(
        "insert",
        scale.http_clients,
        scale.http_per_client,
        {
            "dsn": dsn,
            "table": CEILING_TABLE,
            "partners": participants["partners"],
            "period_id": context["current_period"],
        },
        seed=stage,
        max_seconds=cap,
    )
    return {
        "a_clients": scale.http_clients,
        "a_requests": single.requests,
        "a_planned": scale.http_clients * scale.http_per_client,
        "a_failed": single.failed,
        "a_statuses": {str(k): v for k, v in single.statuses.items()},
        "a_errors": single.errors,
        "a_tps": single.rate,
        "a_p50_ms": single.percentile(50) * 1e3,
        "a_p99_ms": single.percentile(99) * 1e3,
        "a_client_cpu_s": single.client_cpu,
        "a_seconds": single.seconds,
        **_cpu_each("a", spent, single.client_cpu, single.requests),
        "a_floor_tps": floor.rate,
        **_cpu_each("a_floor", floor_spent, floor.client_cpu, floor.requests),
        "a_floor_failed": floor.failed,
        "a_floor_errors": floor.errors,
        "a_raw_tps": raw.rate,
        "a_raw_p50_ms": raw.percentile(50) * 1e3,
        "a_raw_p99_ms": raw.percentile(99) * 1e3,
    }


def _measure_batches(context: dict, stage: int, participants: dict) -> dict:
    """(b) Batches posted with the operator's key, and COPY of the rows they wrote."""
    scale, pool, dsn = context["scale"], context["pool"], context["dsn"]
    progress(
        f"stage {stage}: (b) {scale.batch_clients} clients × {scale.batches_per_client} batches "
        f"× {scale.batch_size} items"
    )
    before, since = max_transaction_id(dsn), datetime.now(UTC)
    with cpu.counted(service=context["service_pid"], postgres=context["postgres_pid"]) as spent:
        batch = pool.run(
            "batch",
            scale.batch_clients,
            scale.batches_per_client,
            {
                "url": context["url"],
                "operator_key": context["world"].operator_key,
                **participants,
                "size": scale.batch_size,
                "prefix": f"b{stage}",
            },
            seed=100 + stage,
            max_seconds=scale.figure_seconds,
        )
    after = max_transaction_id(dsn)
    copy_seconds, copied = copy_ceiling(dsn, before, after, since)
    return {
        "b_items": batch.operations,
        "b_planned": scale.batch_clients * scale.batches_per_client * scale.batch_size,
        "b_clients": scale.batch_clients,
        "b_failed": batch.failed,
        "b_statuses": {str(k): v for k, v in batch.statuses.items()},
        "b_errors": batch.errors,
        "b_tps": batch.rate,
        **_cpu_each("b", spent, batch.client_cpu, batch.operations),
        "b_seconds": batch.seconds,
        "b_batch_p50_s": batch.percentile(50),
        "b_copy_rows": copied,
        "b_copy_s": copy_seconds,
        "b_copy_tps": copied / copy_seconds if copy_seconds else math.nan,
    }


def _measure_import(context: dict, stage: int, participants: dict) -> dict:
    """(b) The batches' mix as a CSV file through ``coalition import``, and COPY of the rows
    it wrote."""
    rows = context["scale"].import_rows
    progress(f"stage {stage}: (b) coalition import of a {rows:,}-row CSV")
    return import_csv(
        context, {**participants, "prefix": f"i{stage}"}, rows, random.Random(400 + stage)
    )


def _timed_kpis(database, period_id: str) -> tuple[dict, float]:
    """The operator's KPI report of the period, in process; (report, seconds)."""
    from coalition.auth import Principal
    from coalition.services import kpis

    operator = Principal("bench", "operator")
    began = time.perf_counter()
    found = database.run(kpis.report, operator, datetime.now(UTC), period_id=period_id)
    return found, time.perf_counter() - began


def _measure_open_kpis(context: dict, stage: int, period_id: str) -> dict:
    """(g) The open period's KPIs, twice: the first request counts them and, where that
    took seconds, keeps them for the next to read back (its counted_at says which)."""
    progress(f"stage {stage}: (g) KPIs of {period_id} while open, then again")
    bare_seconds, _ = bare_group_by(context["dsn"], period_id, BARE_DISTINCT_MEMBERS)
    _, counted_seconds = _timed_kpis(context["database"], period_id)
    again, again_seconds = _timed_kpis(context["database"], period_id)
    return {
        "g_bare_s": bare_seconds,
        "g_open_counted_s": counted_seconds,
        "g_open_again_s": again_seconds,
        "g_open_again_kept": again["periods"][0]["counted_at"] is not None,
    }


def _measure_close(context: dict, stage: int, period_id: str) -> dict:
    """(c) The settlement's draft and the close of the stage's period, beside the bare
    GROUP BY; the two must agree on the pair lines."""
    from coalition.services import calendar, settlement

    dsn, database = context["dsn"], context["database"]
    allocations = count_burn_allocations(dsn, period_id)
    progress(f"stage {stage}: (c) closing {period_id} with {allocations:,} burn allocations")
    bare_seconds, pair_lines = bare_group_by(dsn, period_id)

    def draft(session):
        return settlement.compute(session, calendar.parse(session, period_id), "draft").document

    began = time.perf_counter()
    drafted = database.run(draft)
    draft_seconds = time.perf_counter() - began
    began = time.perf_counter()
    closed = database.run(settlement.close, period_id, datetime.now(UTC)).document()
    close_seconds = time.perf_counter() - began
    if closed["pair_lines"] != drafted["pair_lines"] or len(closed["pair_lines"]) != pair_lines:
        raise AssertionError("the close and the draft disagree on the pair lines")
    return {
        "c_allocations": allocations,
        "c_pair_lines": pair_lines,
        "c_bare_s": bare_seconds,
        "c_draft_s": draft_seconds,
        "c_close_s": close_seconds,
        "c_netting_ratio": closed["netting"]["netting_ratio"],
    }


def _measure_closed_kpis(context: dict, stage: int, period_id: str) -> dict:
    """(g) The closed period's KPIs, twice: the first request counts and keeps them, the
    next reads them back and must answer the same."""
    progress(f"stage {stage}: (g) KPIs of {period_id}, counted, then kept")
    counted, counted_seconds = _timed_kpis(context["database"], period_id)
    kept, kept_seconds = _timed_kpis(context["database"], period_id)
    if kept != counted:
        raise AssertionError("the kept KPIs differ from the counted ones")
    return {"g_counted_s": counted_seconds, "g_kept_s": kept_seconds}


def _measure_balance(
    context: dict, stage: int, loaded: data.StageResult, partners: list[dict]
) -> dict:
    """(d) Balance lookups of the members with many lots, beside the balance statement
    alone; any partner may look a member up, so the first one's key does.

    A stage's posts add a sixth to the 1× stage's transactions (a fiftieth at 10×),
    enough for autovacuum to vacuum and analyze the ledger while the lookups ran, on
    one of the two cores they share with the service (bench/maintenance.py's note,
    performance-log.md). So the tables get that upkeep first, as a database they live
    in for days has had, and the figure is the lookups', on either stage.
    """
    scale, pool = context["scale"], context["pool"]
    cap = scale.figure_seconds
    began = time.perf_counter()
    with psycopg.connect(context["dsn"], autocommit=True) as connection:
        data.vacuum(connection)
    upkeep_seconds = time.perf_counter() - began
    lookups = scale.lookup_clients * scale.lookups_per_client
    progress(f"stage {stage}: (d) {lookups} balance lookups, {scale.lookup_clients} clients")
    balance = pool.run(
        "balance",
        scale.lookup_clients,
        scale.lookups_per_client,
        {"url": context["url"], "key": partners[0]["key"], "members": loaded.heavy_members},
        seed=200 + stage,
        max_seconds=cap,
    )
    bare = pool.run(
        "lookup",
        scale.lookup_clients,
        scale.lookups_per_client,
        {"dsn": context["dsn"], "members": loaded.heavy_members},
        seed=200 + stage,
        max_seconds=cap,
    )
    return {
        "d_upkeep_s": upkeep_seconds,
        "d_lots": loaded.plan.heavy_lots,
        "d_clients": scale.lookup_clients,
        "d_failed": balance.failed,
        "d_errors": balance.errors,
        "d_rps": balance.rate,
        "d_p50_ms": balance.percentile(50) * 1e3,
        "d_p99_ms": balance.percentile(99) * 1e3,
        "d_raw_p50_ms": bare.percentile(50) * 1e3,
        "d_raw_p99_ms": bare.percentile(99) * 1e3,
    }


def _measure_pdfs(context: dict, stage: int, period_id: str) -> dict:
    """(e) The closed period's statement with the most counterparties as a PDF, in one
    process and in one per CPU, beside a bare ReportLab canvas of as many pages."""
    import reports

    scale, pool = context["scale"], context["pool"]
    cap = scale.figure_seconds
    statement = load.statement_to_render(context["database"], period_id)
    pages = pdf_pages(reports.render_pdf(statement))
    processes = os.cpu_count() or 1
    progress(
        f"stage {stage}: (e) PDFs of {statement['number']} ({pages} pages), 1 and {processes} processes"
    )
    one = pool.run("pdf", 1, scale.pdfs, {"statement": statement}, seed=300, max_seconds=cap)
    every = pool.run(
        "pdf", processes, scale.pdfs, {"statement": statement}, seed=300, max_seconds=cap
    )
    bare_one = pool.run("pdf_bare", 1, scale.pdfs, {"pages": pages}, seed=300, max_seconds=cap)
    bare_every = pool.run(
        "pdf_bare", processes, scale.pdfs, {"pages": pages}, seed=300, max_seconds=cap
    )
    return {
        "e_statement": statement["number"],
        "e_partner": statement["partner_id"],
        "e_pages": pages,
        "e_processes": processes,
        "e_pdf_per_s": one.rate,
        "e_pdf_all_per_s": every.rate,
        "e_bare_per_s": bare_one.rate,
        "e_bare_all_per_s": bare_every.rate,
    }


def _measure_export(context: dict, stage: int, period_id: str) -> dict:
    """(h) The closed period's transactions as CSV over HTTP, read for at most the scale's
    time for a figure, beside COPY of as many of the same rows to this client."""
    progress(f"stage {stage}: (h) the transactions of {period_id} as CSV")
    seconds, rows = download_export(
        context["url"],
        context["world"].operator_key,
        period_id,
        context["scale"].figure_seconds,
    )
    copy_seconds, copied = copy_export(context["dsn"], period_id, rows)
    if copied != rows:
        raise AssertionError(f"COPY wrote {copied:,} rows where the export sent {rows:,}")
    return {
        "h_rows": rows,
        "h_rows_per_s": rows / seconds,
        "h_copy_rows_per_s": rows / copy_seconds,
    }


# --------------------------------------------------------------------------- the command


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--scale", choices=sorted(SCALES), default="small")
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server to use (a fresh database is created on it); "
        "default: start a throwaway cluster",
    )
    parser.add_argument(
        "--pg-bin",
        help="directory of initdb and pg_ctl (default: newest /usr/lib/postgresql/*/bin)",
    )
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers (default 4)")
    parser.add_argument(
        "--threads", type=int, default=4, help="gunicorn threads per worker (default 4)"
    )
    parser.add_argument(
        "--client-processes",
        type=int,
        default=None,
        help="load-generator processes (default: 4, at most the clients)",
    )
    parser.add_argument(
        "--check",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="verify ledger invariants at the end (default: on for small)",
    )
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    parser.add_argument("--keep", action="store_true", help="keep the database (given server only)")
    return parser.parse_args(argv)


def _terminate(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None) -> int:
    arguments = parse_arguments(argv)
    scale = SCALES[arguments.scale]
    signal.signal(signal.SIGTERM, _terminate)
    started = time.perf_counter()
    results: dict = {
        "scale": arguments.scale,
        "scale_parameters": asdict(scale),
        "machine": report.machine(),
        "load_average_start": os.getloadavg(),
    }
    throwaway = arguments.database_url is None
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="coalition-bench.")))
        url, database, operator_key = _database(stack, arguments, throwaway)
        dsn = pg.conninfo(url)
        results["postgres"] = pg.server_facts(url)
        progress(f"starting gunicorn ({arguments.workers} workers × {arguments.threads} threads)")
        server = stack.enter_context(
            gunicorn(url, workdir / "gunicorn.log", arguments.workers, arguments.threads)
        )
        floor = stack.enter_context(
            gunicorn(
                url, workdir / "floor.log", arguments.workers, arguments.threads, "bench.floor:app"
            )
        )
        now = datetime.now(UTC)
        plans = _stage_plans(scale, now)
        progress("creating partners, rates and keys through the API")
        rates_from = plans[0].start - timedelta(days=31)
        world = data.configure(http_caller(server.url), rates_from, operator_key)
        results["rate_versions"] = data.add_rate_history(url, world, rates_from)
        client_processes = arguments.client_processes or min(
            4, max(scale.http_clients, os.cpu_count() or 1)
        )
        pool = load.Pool(max(client_processes, os.cpu_count() or 1))
        stack.callback(pool.close)
        results["service"] = {
            "workers": arguments.workers,
            "threads": arguments.threads,
            "client_processes": client_processes,
        }
        context = {
            "scale": scale,
            "pool": pool,
            "world": world,
            "dsn": dsn,
            "url": server.url,
            "floor_url": floor.url,
            "database": database,
            "database_url": url,
            "workdir": workdir,
            "current_period": now.strftime("%Y-%m"),
            "service_pid": server.process.pid,
            "floor_pid": floor.process.pid,
            "postgres_pid": cpu.postmaster(dsn),
        }
        results["stages"], results["data"] = {}, {}
        for plan, label in zip(plans, ("1x", "10x")):
            loaded = _load_stage(url, world, plan, label)
            results["data"][label] = {
                "rows": loaded.rows,
                "seconds": round(loaded.seconds, 2),
                "burn_allocations": loaded.burn_allocations,
                "foreign_keys_checked_during_copy": loaded.foreign_keys_checked,
            }
            results["stages"][label] = measure_stage(context, plan.stage, loaded)
        check = arguments.check if arguments.check is not None else arguments.scale == "small"
        if check:
            progress("checking ledger invariants")
            results["invariants"] = data.check_consistency(url)
        with psycopg.connect(dsn, autocommit=True) as connection:
            results["table_rows"] = {
                table: connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in ("members", "transactions", "lots", "allocations")
            }
        results["gunicorn_log_errors"] = [
            line
            for line in server.log_tail(400).splitlines()
            if "Traceback" in line or "ERROR" in line
        ][:10]
    results["seconds"] = round(time.perf_counter() - started, 1)
    results["load_average_end"] = os.getloadavg()
    print(render_results(results, throwaway))
    if arguments.json:
        arguments.json.write_text(json.dumps(results, indent=2, default=str))
    broken = {name: count for name, count in results.get("invariants", {}).items() if count}
    return 1 if broken else 0


def _database(stack: ExitStack, arguments, throwaway: bool):
    """A fresh, migrated database on a throwaway cluster, or on the given server; (URL,
    its :class:`coalition.db.Database`, the operator's key). It holds the empty copies of
    the transactions table that the INSERT ceiling and the floor write to. Closing
    ``stack`` drops the database (unless kept) and stops the cluster.
    """
    from coalition import auth
    from coalition.db import Database, migrate

    if throwaway:
        cluster = pg.Cluster(arguments.pg_bin)
        stack.callback(cluster.stop)
        progress("starting a throwaway PostgreSQL cluster (fsync=off)")
        server_url = cluster.start()
    else:
        server_url = arguments.database_url
    url, name = stack.enter_context(
        pg.fresh_database(server_url, keep=arguments.keep and not throwaway)
    )
    progress(f"database {name}: migrating")
    database = Database(url)
    stack.callback(database.dispose)
    migrate.upgrade(database)
    _, operator_key = database.run(
        lambda session: auth.create_key(session, "operator", None, "bench operator")
    )
    with psycopg.connect(pg.conninfo(url), autocommit=True) as connection:
        for table in (CEILING_TABLE, FLOOR_TABLE):
            connection.execute(
                f"CREATE TABLE {table} (LIKE transactions INCLUDING CONSTRAINTS INCLUDING INDEXES)"
            )
    return url, database, operator_key


def _stage_plans(scale: Scale, now: datetime) -> list[data.StagePlan]:
    """Stage 1× in the month before last, stage 10× in last month: nine times the members
    again and ten times the allocations."""
    first, second = data.month_periods(now)
    return [
        data.StagePlan(
            1,
            *first,
            scale.members,
            scale.allocations,
            scale.heavy_members,
            scale.heavy_lots,
        ),
        data.StagePlan(
            2,
            *second,
            9 * scale.members,
            10 * scale.allocations,
            scale.heavy_members,
            scale.heavy_lots,
        ),
    ]


def _load_stage(url: str, world: data.World, plan: data.StagePlan, label: str) -> data.StageResult:
    progress(
        f"stage {plan.stage} ({label}): generating and COPYing {plan.members:,} members, "
        f"≈{plan.allocations:,} burn allocations in {plan.period_id}"
    )
    loaded = data.bulk_load(url, world, plan)
    progress(
        f"stage {plan.stage}: loaded {sum(loaded.rows.values()):,} rows in {loaded.seconds:.1f} s "
        f"(indexes and VACUUM ANALYZE {loaded.index_seconds:.1f} s)"
    )
    return loaded


def render_results(results: dict, throwaway: bool) -> str:
    one, ten = results["stages"]["1x"], results["stages"]["10x"]
    rows = results["table_rows"]
    out = [
        f"Coalition benchmark — scale {results['scale']} — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        report.describe_environment(
            results["machine"], results["postgres"], results["service"], throwaway
        ),
        (
            f"data: {rows['members']:,} members, {rows['transactions']:,} transactions, {rows['lots']:,} lots, "
            f"{rows['allocations']:,} allocations (21 partners + coalition, 6 currencies; earns, bonuses, "
            f"returns, burns, burn reversals); {results['rate_versions']:,} rate versions before the "
            f"stages (two years of weekly promos at every partner)"
        ),
        "",
        f"Figures on 10× data (period {ten['period_id']}):",
        report.render(report.HEADER, report.rows(ten)),
        "",
        "Figures on 1× data (period {}):".format(one["period_id"]),
        report.render(report.HEADER, report.rows(one)),
        "",
        "(f) growth from 1× to 10× data:",
        report.render(report.GROWTH_HEADER, report.growth_rows(one, ten)),
        "",
        "Where the CPU went (bench/cpu.py: each process tree's CPU time while the figure ran):",
        report.render(report.CPU_HEADER, report.cpu_rows(one, ten)),
        "",
        "notes:",
        (
            "  ratio = measured ÷ ceiling: for a rate, the share of the ceiling reached; for a time or a "
            "latency, how many times the ceiling it takes"
        ),
        (
            "  (a) floor: the same gunicorn, Flask and psycopg, posted the same bodies, making a "
            "posting's round trips with trivial SQL and one INSERT (bench/floor.py): the most any "
            "service on this stack could reach here"
        ),
    ]
    for label, stage in (("1×", one), ("10×", ten)):
        out.append(
            f"  {label}: (a) {stage['a_requests']} of {stage['a_planned']} requests, {stage['a_failed']} not 2xx, statuses {stage['a_statuses']}; "
            f"load generator used {stage['a_client_cpu_s']:.1f} CPU-s of {stage['a_seconds']:.1f} s; "
            f"the service ran at {stage['a_tps'] / max(stage['a_floor_tps'], 1e-9):.2f}× the floor's rate, "
            f"the floor answered {stage['a_floor_failed']} not 2xx; "
            f"(b) {stage['b_items']} of {stage['b_planned']} items, {stage['b_failed']} not 2xx, batch p50 {stage['b_batch_p50_s']:.2f} s, "
            f"COPY {stage['b_copy_rows']} rows in {stage['b_copy_s']:.3f} s; "
            f"(b) import exit {stage['i_exit']}, {stage['i_summary']!r} in {stage['i_seconds']:.2f} s; "
            f"(d) {stage['d_failed']} not 200, after VACUUM (ANALYZE) of the ledger's tables "
            f"in {stage['d_upkeep_s']:.1f} s"
        )
        out.append(f"    autovacuum while a figure ran: {report.autovacuum(stage['autovacuum'])}")
        for error in (
            stage["a_errors"]
            + stage["a_floor_errors"]
            + stage["b_errors"]
            + stage["i_errors"]
            + stage["d_errors"]
        ):
            out.append(f"    error: {error}")
    for label, facts in results["data"].items():
        out.append(
            f"  generated {label}: {facts['rows']} in {facts['seconds']} s"
            + (
                ""
                if facts["foreign_keys_checked_during_copy"]
                else " (foreign keys not re-checked during COPY: session_replication_role=replica)"
            )
        )
    if "invariants" in results:
        out.append(f"  ledger invariants (all 0 when consistent): {results['invariants']}")
    if results["gunicorn_log_errors"]:
        out.append(f"  gunicorn log errors: {results['gunicorn_log_errors']}")
    start_load, end_load = results["load_average_start"], results["load_average_end"]
    out.append(
        f"  load average (1, 5, 15 min) before the run {', '.join(f'{v:.1f}' for v in start_load)}, "
        f"after {', '.join(f'{v:.1f}' for v in end_load)}"
    )
    # the load after the run is mostly the run's own, so only the load before it says
    # whether something else had the CPUs
    if start_load[0] > 0.5 * results["machine"]["nproc"]:
        out.append(
            "  WARNING: the CPUs were busy when the run started; every figure may be depressed and noisy"
        )
    out.append(
        f"  total run time {results['seconds']} s (a load figure stops after {results['scale_parameters']['figure_seconds']} s)"
    )
    return "\n".join(out)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        progress("interrupted; everything started was stopped")
        sys.exit(130)
