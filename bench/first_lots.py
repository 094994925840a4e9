"""What a burn's read of its member's first lots costs, against how many lots the member holds.

In process, through the Flask test client, on a PostgreSQL database of one's own:

``python -m bench.first_lots build URL`` migrates it and posts, through the batch API,
members ``L20000`` and ``L300`` (that many live lots of 10 points, earned over 89 days)
and ``B0``…``B199``, the benchmark's kind of member, 300 lots each.

``python -m bench.first_lots burns URL`` times burns of 5 points at ``L20000`` and ``L300``.

``python -m bench.first_lots statements URL`` runs the two ways of reading the first lots
(:mod:`coalition.db.ledger_reads`: a window, SQLite's; an ordered read per member,
PostgreSQL's) in turn from one connection, for one member and for forty, and gives each
execution's time and its backend's CPU.

``python -m bench.first_lots batches URL`` posts batches of the benchmark's mix over the
``B`` members (earns and burns) and gives the CPU per item of this process (the
service) and of the database's PostgreSQL backends (read from /proc).

Run old and new code in turn on the same database: each run's posts change it a little
(a few points burned, a few lots earned), the same for both.
"""

import argparse
import functools
import random
import statistics
import time
from datetime import UTC, datetime, timedelta

import psycopg
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench import cpu, in_process, pg
from coalition.db import ledger_reads

HEAVY = {"L20000": 20_000, "L300": 300}
MEMBERS = [f"B{n}" for n in range(200)]
BENCH_LOTS = 300
STATS_FLUSHED = 11  # seconds: an idle backend sends its table counters within 10


def _app(url: str):
    """POST through the service in process, as the operator: ``call(path, body)``."""
    call, _, _ = in_process.operator_calls(url)
    return functools.partial(call, "POST")


def _at(days: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).replace(microsecond=0).isoformat()


def _batch(call, items: list[dict]) -> list[dict]:
    results = call("/api/v1/transactions/batch", {"transactions": items})["results"]
    assert {result["status"] for result in results} <= {201, 422}, results[:3]
    return results


def build(url: str) -> None:
    call = _app(url)
    call(
        "/api/v1/partners", {"id": "aroma", "name": "Aroma", "category": "cafe", "currency": "RUB"}
    )
    for kind, value, partner in (("earn", "0.1", "aroma"), ("redemption", "0.01", None)):
        call(
            "/api/v1/rates",
            {
                "kind": kind,
                "value": value,
                "effective_from": _at(200),
                **({"partner_id": partner} if partner else {}),
            },
        )
    wanted = {**HEAVY, **dict.fromkeys(MEMBERS, BENCH_LOTS)}
    for member, count in wanted.items():
        # earned over 89 days, oldest first, a few seconds apart, as a daily habit's are
        items = [
            {
                "external_id": f"{member}-{n}",
                "type": "bonus",
                "partner_id": "coalition",
                "member_id": member,
                "occurred_at": _at(89 - 88 * n / count),
                "points": 10,
                "reason": "daily coffee",
            }
            for n in range(count)
        ]
        for start in range(0, count, 1000):
            _batch(call, items[start : start + 1000])


def burns(url: str, rounds: int) -> None:
    call = _app(url)
    label = f"{time.time_ns()}"
    for member in HEAVY:
        _batch(call, [_burn(f"warm-{label}-{member}", member)])
        took = []
        for n in range(rounds):
            started = time.perf_counter()
            call(
                "/api/v1/transactions",
                {**_burn(f"{label}-{member}-{n}", member), "partner_id": "aroma"},
            )
            took.append((time.perf_counter() - started) * 1000)
        print(
            f"burn 5 points, {member}: median {statistics.median(took):.1f} ms,"
            f" {min(took):.1f}-{max(took):.1f} ({rounds} burns)"
        )


def _burn(external_id: str, member: str) -> dict:
    return {
        "external_id": external_id,
        "type": "burn",
        "partner_id": "aroma",
        "member_id": member,
        "occurred_at": _at(0.01),
        "points": 5,
    }


def batches(url: str, count: int, size: int) -> None:
    call = _app(url)
    rng, label = random.Random(7), f"{time.time_ns()}"

    def item(n: int) -> dict:
        member = rng.choice(MEMBERS)
        if rng.random() < 0.6:
            return {
                "external_id": f"{label}-{n}",
                "type": "earn",
                "partner_id": "aroma",
                "member_id": member,
                "occurred_at": _at(0.01),
                "amount": "120.00",
                "currency": "RUB",
            }
        return _burn(f"{label}-{n}", member)

    _batch(call, [item(n) for n in range(size)])  # warm-up: statements prepared, pool filled
    dbname = make_url(url).database
    time.sleep(STATS_FLUSHED)
    lots_read = _lots_read(url)
    service, backends = time.process_time(), _backend_ticks(url, dbname)
    started = time.perf_counter()
    for b in range(count):
        _batch(call, [item((b + 1) * size + n) for n in range(size)])
    wall = time.perf_counter() - started
    service = time.process_time() - service
    after = _backend_ticks(url, dbname)
    postgres = (
        sum(after[pid] - ticks for pid, ticks in backends.items() if pid in after) / cpu.TICKS
    )
    time.sleep(STATS_FLUSHED)
    lots_read = _lots_read(url) - lots_read
    items = count * size
    print(
        f"{items} items in {count} batches of {size}: {items / wall:.0f} items/s;"
        f" CPU per item: service {service / items * 1000:.3f} ms,"
        f" PostgreSQL backends {postgres / items * 1000:.3f} ms;"
        f" rows of lots read per item {lots_read / items:.1f}"
    )


def statements(url: str, rounds: int, runs: int = 200) -> None:
    engine = create_engine(url)
    forms = {"window": ledger_reads.NUMBERED_FIRST_LOTS, "ordered": ledger_reads.ORDERED_FIRST_LOTS}
    spenders = {"L20000": ["L20000"], "L300": ["L300"], "40 B": MEMBERS[::5]}
    took = {(form, who): [] for form in forms for who in spenders}
    with engine.connect() as connection:
        pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        for _ in range(rounds):
            for who, members in spenders.items():
                for form, statement in forms.items():
                    parameters = {
                        "first_of": members,
                        "first": 50,
                        "spendable_after": datetime.now(UTC),
                    }
                    ticks, started = cpu.own_ticks(pid), time.perf_counter()
                    for _ in range(runs):
                        connection.execute(statement, parameters).all()
                    took[form, who].append(
                        (
                            (time.perf_counter() - started) / runs * 1000,
                            (cpu.own_ticks(pid) - ticks) / cpu.TICKS / runs * 1000,
                        )
                    )
    for (form, who), figures in took.items():
        walls, cpus = zip(*figures, strict=True)
        print(
            f"{who}, {form}: {min(walls):.2f}-{max(walls):.2f} ms an execution,"
            f" backend CPU {min(cpus):.2f}-{max(cpus):.2f} ms ({rounds} rounds of {runs})"
        )


def _lots_read(url: str) -> int:
    """Rows of lots read in the database so far, by any scan."""
    with psycopg.connect(pg.conninfo(url), autocommit=True) as connection:
        return connection.execute(
            "SELECT seq_tup_read + coalesce(idx_tup_fetch, 0) FROM pg_stat_user_tables"
            " WHERE relid = 'lots'::regclass"
        ).fetchone()[0]


def _backend_ticks(url: str, dbname: str) -> dict[int, int]:
    """CPU ticks of each client backend connected to ``dbname`` but the one asking (not
    autovacuum's, which come and go with what other work left to vacuum)."""
    with psycopg.connect(pg.conninfo(url), autocommit=True) as connection:
        pids = connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND backend_type = 'client backend'"
            " AND pid <> pg_backend_pid()",
            (dbname,),
        ).fetchall()
    return {pid: cpu.own_ticks(pid) for (pid,) in pids}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("build", "burns", "statements", "batches"))
    parser.add_argument("url")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--size", type=int, default=500)
    arguments = parser.parse_args()
    if arguments.what == "build":
        build(arguments.url)
    elif arguments.what == "burns":
        burns(arguments.url, arguments.rounds)
    elif arguments.what == "statements":
        statements(arguments.url, arguments.rounds)
    else:
        batches(arguments.url, arguments.batches, arguments.size)


if __name__ == "__main__":
    main()
