"""The benchmark harness at its smallest scale, end to end (bench/, README "Benchmarks").

Runs ``python -m bench.run --scale small`` as a subprocess against the
PostgreSQL server of the test suite (a fresh database is created and dropped
there), and checks that the table has every row and that every number is
sane: finite, positive, consistent with the work done. It asserts no timing
goal — this machine's speed is what the benchmark reports, not what a test
decides.
"""

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench import cpu, pg, report
from tests.conftest import POSTGRES_URL

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 300  # seconds; the small scale takes well under a minute


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("bench") / "figures.json"
    command = [sys.executable, "-m", "bench.run", "--scale", "small", "--database-url", POSTGRES_URL,
               "--json", str(output)]
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"}) as process:
        try:
            stdout, stderr = process.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            # SIGTERM, not SIGKILL: the benchmark then stops its gunicorn (a session of
            # its own, which a kill would leave serving) and drops its database
            process.terminate()
            stdout, stderr = process.communicate(timeout=60)
            pytest.fail(f"the small benchmark took over {TIMEOUT} s:\n{stdout}\n{stderr[-4000:]}")
    assert process.returncode == 0, f"stdout:\n{stdout}\nstderr:\n{stderr[-4000:]}"
    return stdout, json.loads(output.read_text())


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_the_table_has_every_row(bench_run):
    stdout, _ = bench_run
    for label in (*report.LABELS, *report.GROWTH_LABELS):
        assert stdout.count(label) >= 1, f"missing row {label!r}:\n{stdout}"
    for label in report.LABELS:
        assert stdout.count(label) == 2, f"{label!r} should appear once per stage (1× and 10×)"
    headers = [
        line
        for line in stdout.splitlines()
        if tuple(cell.strip() for cell in line.split(" | ")) == report.HEADER
    ]
    assert len(headers) == 2, (
        "one table per stage, each with the header figure | measured | … | met?"
    )
    assert "PostgreSQL 15" in stdout or "PostgreSQL 1" in stdout
    assert "machine:" in stdout and "CPUs" in stdout


def test_every_figure_is_a_sane_number(bench_run):
    _, figures = bench_run
    rates = (
        "a_tps",
        "a_raw_tps",
        "a_floor_tps",
        "b_tps",
        "b_copy_tps",
        "i_tps",
        "i_copy_tps",
        "d_rps",
        "e_pdf_per_s",
        "e_pdf_all_per_s",
        "e_bare_per_s",
        "e_bare_all_per_s",
        "h_rows_per_s",
        "h_copy_rows_per_s",
    )
    latencies = (
        "a_p50_ms",
        "a_p99_ms",
        "a_raw_p50_ms",
        "a_raw_p99_ms",
        "d_p50_ms",
        "d_p99_ms",
        "d_raw_p50_ms",
        "d_raw_p99_ms",
    )
    seconds = ("c_close_s", "c_draft_s", "c_bare_s", "g_counted_s", "g_kept_s", "g_bare_s",
               "g_open_counted_s", "g_open_again_s", "d_upkeep_s")
    for label in ("1x", "10x"):
        stage = figures["stages"][label]
        for key in (*rates, *latencies, *seconds):
            assert _positive(stage[key]), f"{label} {key} = {stage[key]!r}"
        assert stage["a_p50_ms"] <= stage["a_p99_ms"] and stage["d_p50_ms"] <= stage["d_p99_ms"]
        assert (
            stage["a_raw_p50_ms"] <= stage["a_raw_p99_ms"]
            and stage["d_raw_p50_ms"] <= stage["d_raw_p99_ms"]
        )
        # every request the load generators made was answered with success
        assert stage["a_requests"] > 0 and stage["a_failed"] == 0, stage["a_errors"]
        assert stage["a_floor_failed"] == 0, stage["a_floor_errors"]
        assert stage["b_items"] > 0 and stage["b_failed"] == 0, stage["b_errors"]
        assert stage["d_failed"] == 0, stage["d_errors"]
        # the COPY ceiling copied exactly the transactions the batches wrote
        assert stage["b_copy_rows"] == stage["b_items"]
        # the import posted every row of its file, and the ceiling copied exactly those
        assert stage["i_exit"] == 0, stage["i_errors"]
        assert stage["i_summary"] == f"{stage['i_rows']:,} created, 0 replayed, 0 failed"
        assert stage["i_copy_rows"] == stage["i_rows"]
        assert stage["c_pair_lines"] > 0 and stage["e_pages"] >= 1
        assert stage["h_rows"] > 0  # the export sent rows, and COPY as many (or the run fails)
    one, ten = figures["stages"]["1x"], figures["stages"]["10x"]
    assert ten["c_allocations"] >= 5 * one["c_allocations"] > 0  # the 10× period really is bigger


FIGURES = ("(a)", "(b) batches", "(b) import", "(g) open", "(c)", "(g) closed", "(d)", "(e)", "(h)")


def test_each_figure_says_what_autovacuum_did_while_it_ran(bench_run):
    stdout, figures = bench_run
    assert stdout.count("autovacuum while a figure ran: ") == 2, stdout
    for stage in figures["stages"].values():
        assert tuple(stage["autovacuum"]) == FIGURES
        for work in stage["autovacuum"].values():
            assert all(re.fullmatch(r"(vacuum|analyze|vacuum analyze) \w+.*", each) for each in work), work


def test_each_transaction_s_cpu_is_counted_by_whom(bench_run):
    # every process tree's CPU while the figure ran, so each must have done some work;
    # PostgreSQL's is counted only when the server runs on this machine
    stdout, figures = bench_run
    for label, _ in report.CPU_FIGURES:
        assert stdout.count(label) == 1, f"missing CPU row {label!r}:\n{stdout}"
    local = cpu.postmaster(pg.conninfo(POSTGRES_URL)) is not None
    for stage in figures["stages"].values():
        for prefix in ("a", "a_floor", "b", "i"):
            assert _positive(stage[f"{prefix}_service_cpu_ms"]), (prefix, stage)
            postgres = stage[f"{prefix}_postgres_cpu_ms"]
            assert _positive(postgres) if local else postgres is None, (prefix, postgres)
        for prefix in ("a", "a_floor", "b"):
            assert _positive(stage[f"{prefix}_client_cpu_ms"]), (prefix, stage)
        # the floor does the same round trips with no work: less of the service's CPU
        assert stage["a_floor_service_cpu_ms"] < stage["a_service_cpu_ms"]


def test_the_generated_ledger_is_consistent(bench_run):
    _, figures = bench_run
    assert figures["invariants"] and not any(figures["invariants"].values()), figures["invariants"]
    rows = figures["table_rows"]
    assert rows["members"] >= 20_000 and rows["allocations"] >= 20_000
    assert figures["data"]["10x"]["rows"]["members"] == 9 * figures["data"]["1x"]["rows"]["members"]
    assert not figures["gunicorn_log_errors"]
    assert figures["postgres"]["version"] and figures["machine"]["nproc"] >= 1
