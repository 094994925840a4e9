"""The benchmark's output: the machine, the server, and the table of figures.

:func:`rows` turns the measured figures of one stage into the table's rows
(figure | measured | ceiling (what) | ratio | goal | met?); :func:`growth_rows`
sets the 1× and 10× stages side by side; :func:`render` lays rows out as
plain text. Row labels are stable: tests and readers look for them.
"""

import math
import os
import platform
import sys

GOAL_SINGLE_TPS = 1_000
GOAL_BATCH_TPS = 20_000
GOAL_CLOSE_SECONDS = 30.0
GOAL_CLOSE_ALLOCATIONS = 10_000_000
GOAL_CLOSE_RATIO = 2.0
GOAL_BALANCE_P99_MS = 5.0
GOAL_PDF_PER_SECOND = 50.0

HEADER = ("figure", "measured", "ceiling (what)", "ratio", "goal", "met?")

#: Labels of the main table, in order (the smoke test checks every one is printed).
LABELS = (
    "(a) single tx over HTTP",
    "(a) single tx latency p50/p99",
    "(a) floor: same HTTP stack and round trips, no work",
    "(b) batch ingest",
    "(b) CSV import (coalition import)",
    "(c) close period",
    "(c) settlement draft",
    "(d) balance lookup p50/p99",
    "(e) statement PDFs, 1 process",
    "(e) statement PDFs, all cores",
    "(g) KPIs of the open period, counted",
    "(g) KPIs of the open period, next request",
    "(g) KPIs of the closed period, counted",
    "(g) KPIs of the closed period, kept",
    "(h) transactions CSV export",
)
GROWTH_LABELS = (
    "(f) single tx over HTTP",
    "(f) single tx p99",
    "(f) batch ingest",
    "(f) CSV import",
    "(f) close period",
    "(f) bare GROUP BY",
    "(f) balance lookup p99",
    "(f) statement PDFs, 1 process",
    "(f) transactions CSV export",
)

CPU_HEADER = ("CPU a transaction, item or row, 1× / 10×", "service", "PostgreSQL", "load generator")
#: The figures whose CPU is counted (bench.cpu), with the prefix of their keys.
CPU_FIGURES = (
    ("(a) a single post", "a"),
    ("(a) the floor's post", "a_floor"),
    ("(b) a batch item", "b"),
    ("(b) an imported row", "i"),
)


def machine() -> dict:
    facts = {
        "nproc": os.cpu_count() or 1,
        "python": sys.version.split()[0],
        "kernel": platform.release(),
    }
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    facts["memory_gb"] = round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    facts["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return facts


def _n(value: float, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:,.{digits}f}"


def _ms(p50: float, p99: float) -> str:
    return f"{p50:.1f} / {p99:.1f} ms"


def _ratio(measured: float, ceiling: float) -> str:
    if not ceiling or measured is None or math.isnan(measured) or math.isnan(ceiling):
        return "—"
    return f"{measured / ceiling:.2f}×"


def _met(condition: bool | None) -> str:
    return "n/a" if condition is None else ("yes" if condition else "NO")


def _rate(
    label: str, rate: float, ceiling: float, what: str, goal: float, unit="tx/s", digits=0
) -> tuple[str, ...]:
    """A row of a rate beside its ceiling, against a goal it must reach."""
    return (
        label,
        f"{_n(rate, digits)} {unit}",
        f"{_n(ceiling, digits)} {unit} ({what})",
        _ratio(rate, ceiling),
        f"≥ {goal:,.0f} {unit}",
        _met(rate >= goal),
    )


def rows(f: dict) -> list[tuple[str, ...]]:
    """The main table for one stage's figures ``f`` (see ``bench.run.measure_stage``)."""
    close_10m = f["c_close_s"] * GOAL_CLOSE_ALLOCATIONS / max(f["c_allocations"], 1)
    close_met = (
        f["c_close_s"] <= GOAL_CLOSE_RATIO * f["c_bare_s"] and close_10m < GOAL_CLOSE_SECONDS
    )
    return [
        _rate(
            LABELS[0],
            f["a_tps"],
            f["a_raw_tps"],
            f"single-row INSERT loop, psycopg, {f['a_clients']} conns",
            GOAL_SINGLE_TPS,
        ),
        (
            LABELS[1],
            _ms(f["a_p50_ms"], f["a_p99_ms"]),
            f"{_ms(f['a_raw_p50_ms'], f['a_raw_p99_ms'])} (same INSERT loop)",
            _ratio(f["a_p99_ms"], f["a_raw_p99_ms"]),
            "—",
            "",
        ),
        (
            LABELS[2],
            f"{_n(f['a_floor_tps'])} tx/s",
            f"{_n(f['a_raw_tps'])} tx/s (same INSERT loop)",
            _ratio(f["a_floor_tps"], f["a_raw_tps"]),
            "(reference)",
            "",
        ),
        _rate(
            LABELS[3],
            f["b_tps"],
            f["b_copy_tps"],
            "COPY of the same rows into copies of the tables",
            GOAL_BATCH_TPS,
        ),
        _rate(
            f"{LABELS[4]}, {f['i_rows']:,} rows",
            f["i_tps"],
            f["i_copy_tps"],
            "COPY of the rows it wrote",
            GOAL_BATCH_TPS,
        ),
        (
            f"{LABELS[5]}, {f['c_allocations']:,} allocations",
            f"{f['c_close_s']:.3f} s",
            f"{f['c_bare_s']:.3f} s (bare SELECT … GROUP BY issuer, redeemer)",
            _ratio(f["c_close_s"], f["c_bare_s"]),
            f"< {GOAL_CLOSE_SECONDS:.0f} s at 10M, ≤ {GOAL_CLOSE_RATIO:.0f}× bare (≈{close_10m:.1f} s at 10M)",
            _met(close_met),
        ),
        (
            f"{LABELS[6]}, {f['c_allocations']:,} allocations",
            f"{f['c_draft_s']:.3f} s",
            f"{f['c_bare_s']:.3f} s (same bare query)",
            _ratio(f["c_draft_s"], f["c_bare_s"]),
            "—",
            "",
        ),
        (
            f"{LABELS[7]}, {f['d_lots']:,} lots/member",
            _ms(f["d_p50_ms"], f["d_p99_ms"]),
            f"{_ms(f['d_raw_p50_ms'], f['d_raw_p99_ms'])} (the balance statement alone, psycopg, {f['d_clients']} conns)",
            _ratio(f["d_p99_ms"], f["d_raw_p99_ms"]),
            f"p99 < {GOAL_BALANCE_P99_MS:.0f} ms",
            _met(f["d_p99_ms"] < GOAL_BALANCE_P99_MS),
        ),
        _rate(
            f"{LABELS[8]} ({f['e_pages']} pages)",
            f["e_pdf_per_s"],
            f["e_bare_per_s"],
            "bare ReportLab canvas, same pages and font",
            GOAL_PDF_PER_SECOND,
            unit="/s",
            digits=1,
        ),
        _rate(
            f"{LABELS[9]} ({f['e_processes']} processes)",
            f["e_pdf_all_per_s"],
            f["e_bare_all_per_s"],
            f"bare canvas, {f['e_processes']} processes",
            GOAL_PDF_PER_SECOND,
            unit="/s",
            digits=1,
        ),
        *(
            (
                label,
                f"{f[key]:.3f} s",
                f"{f['g_bare_s']:.3f} s (bare count of distinct members by partner)",
                _ratio(f[key], f["g_bare_s"]),
                note,
                "",
            )
            for label, key, note in (
                (LABELS[10], "g_open_counted_s", "(reference)"),
                (
                    LABELS[11],
                    "g_open_again_s",
                    "(reference; read back)" if f["g_open_again_kept"] else "(reference; counted)",
                ),
                (LABELS[12], "g_counted_s", "(reference)"),
                (LABELS[13], "g_kept_s", "(reference)"),
            )
        ),
        (
            f"{LABELS[14]} ({f['h_rows']:,} rows)",
            f"{_n(f['h_rows_per_s'])} rows/s",
            f"{_n(f['h_copy_rows_per_s'])} rows/s (COPY of the same rows, joined, to the client)",
            _ratio(f["h_rows_per_s"], f["h_copy_rows_per_s"]),
            "(reference)",
            "",
        ),
    ]


GROWTH_HEADER = ("figure", "1× data", "10× data", "10× ÷ 1×", "ceiling 1× → 10×")


def growth_rows(one: dict, ten: dict) -> list[tuple[str, ...]]:
    def line(label, key, unit, digits, ceiling_key=None):
        ceiling = (
            f"{_n(one[ceiling_key], digits)} → {_n(ten[ceiling_key], digits)} {unit}"
            if ceiling_key
            else "—"
        )
        return (
            label,
            f"{_n(one[key], digits)} {unit}",
            f"{_n(ten[key], digits)} {unit}",
            _ratio(ten[key], one[key]),
            ceiling,
        )

    return [
        line(GROWTH_LABELS[0], "a_tps", "tx/s", 0, "a_raw_tps"),
        line(GROWTH_LABELS[1], "a_p99_ms", "ms", 1, "a_raw_p99_ms"),
        line(GROWTH_LABELS[2], "b_tps", "tx/s", 0, "b_copy_tps"),
        line(GROWTH_LABELS[3], "i_tps", "tx/s", 0, "i_copy_tps"),
        (
            f"{GROWTH_LABELS[4]} ({one['c_allocations']:,} → {ten['c_allocations']:,} allocations)",
            f"{one['c_close_s']:.3f} s",
            f"{ten['c_close_s']:.3f} s",
            _ratio(ten["c_close_s"], one["c_close_s"]),
            f"{one['c_bare_s']:.3f} → {ten['c_bare_s']:.3f} s (bare)",
        ),
        line(GROWTH_LABELS[5], "c_bare_s", "s", 3),
        line(GROWTH_LABELS[6], "d_p99_ms", "ms", 1, "d_raw_p99_ms"),
        line(GROWTH_LABELS[7], "e_pdf_per_s", "/s", 1, "e_bare_per_s"),
        line(GROWTH_LABELS[8], "h_rows_per_s", "rows/s", 0, "h_copy_rows_per_s"),
    ]


def cpu_rows(one: dict, ten: dict) -> list[tuple[str, ...]]:
    """What each transaction cost in CPU, by whom: the service (gunicorn's processes, or
    the import's), PostgreSQL (all its processes) and the load generator."""

    def cell(key: str) -> str:
        both = (one.get(key), ten.get(key))
        if both == (None, None):
            return "—"
        return " / ".join(_n(value, 3) for value in both) + " ms"

    return [
        (
            label,
            cell(f"{key}_service_cpu_ms"),
            cell(f"{key}_postgres_cpu_ms"),
            cell(f"{key}_client_cpu_ms"),
        )
        for label, key in CPU_FIGURES
    ]


def autovacuum(by_figure: dict[str, list[str]]) -> str:
    """Each figure during which autovacuum worked, and on what (bench/maintenance.py)."""
    worked = [f"{figure} {', '.join(work)}" for figure, work in by_figure.items() if work]
    return "; ".join(worked) or "none"


def render(header: tuple[str, ...], table: list[tuple[str, ...]]) -> str:
    widths = [
        max(len(str(row[column])) for row in [header, *table]) for column in range(len(header))
    ]

    def line(row):
        return " | ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()

    rule = "-+-".join("-" * width for width in widths)
    return "\n".join([line(header), rule, *(line(row) for row in table)])


def describe_environment(facts: dict, pg: dict, service: dict, throwaway: bool) -> str:
    settings = ", ".join(f"{name}={value}" for name, value in pg["settings"].items())
    lines = [
        (
            f"machine: {facts.get('nproc')} CPUs ({facts.get('cpu', 'unknown CPU')}), "
            f"{facts.get('memory_gb', '?')} GB memory, Linux {facts.get('kernel')}, "
            f"Python {facts.get('python')}"
        ),
        f"PostgreSQL {pg['version']} ({'throwaway cluster started by the benchmark' if throwaway else 'given server'})",
        f"  {settings}",
    ]
    if pg["settings"].get("fsync") == "off":
        lines.append(
            "  NOTE: fsync=off — commits are not flushed to disk; every write figure and its ceiling "
            "alike are higher than on a durable server"
        )
    lines.append(
        f"service: gunicorn {service['workers']} workers × {service['threads']} threads (gthread, --preload), "
        f"127.0.0.1, scheduler off; load from {service['client_processes']} client processes"
    )
    return "\n".join(lines)
