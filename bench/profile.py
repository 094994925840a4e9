"""Where the time of one transaction goes: ``python -m bench.profile [--posts 500] [--database-url URL]``.

Builds the benchmark coalition on a fresh PostgreSQL database (a throwaway
cluster unless ``--database-url`` names a server), loads a small history so
burns have points to spend, then posts ``--posts`` single transactions (the
benchmark's mix: 60 % earns, 30 % burns, 10 % returns) through the Flask test
client under cProfile — no HTTP server, so the profile is the service's own
Python. It prints the SQL statements each type issues, the wall time per
post, and the functions by cumulative and by own time. ``--balance N`` also
profiles N balance lookups of members with many lots. ``--close`` times each
aggregate of the settlement of the loaded period (``--allocations`` burn
allocations in it), then closes it under cProfile; ``--pdf N`` profiles N
renders of the resulting statement with the most counterparties. ``--expire N``
expires N of the loaded lots last, timing each batch.
"""

import argparse
import cProfile
import io
import pstats
import random
import time
from collections import Counter, defaultdict
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta

from sqlalchemy import event

from bench import data, load, pg


def _caller(client):
    def call(method, path, body, key):
        response = client.open(
            path, method=method, json=body, headers={"Authorization": f"Bearer {key}"}
        )
        return response.status_code, response.get_json()

    return call


class _SqlCount:
    """The SQL statements the engine sends, counted by the kind of request being
    profiled (``kind``); while ``recording``, each statement is kept to print."""

    def __init__(self, engine):
        self.kind: str | None = None
        self.recording = False
        self.counts: Counter = Counter()
        self.shown: dict[str, list[str]] = defaultdict(list)
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "engine_connect", self._connect)

    def _statement(self, conn, cursor, statement, parameters, context, executemany):
        self.counts[self.kind] += 1
        if self.recording:
            self.shown[self.kind].append(" ".join(statement.split())[:110])

    def _connect(self, connection):
        if self.recording:
            self.shown[self.kind].append("(connection checkout)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.profile", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--posts", type=int, default=500)
    parser.add_argument(
        "--balance", type=int, default=200, help="balance lookups to profile (0: none)"
    )
    parser.add_argument(
        "--batches", type=int, default=0, help="1,000-item batches to profile (operator key)"
    )
    parser.add_argument(
        "--members", type=int, default=2000, help="members of the preloaded history"
    )
    parser.add_argument(
        "--allocations",
        type=int,
        default=None,
        help="burn allocations in the preloaded period (default: as many as members)",
    )
    parser.add_argument(
        "--close", action="store_true", help="break down and profile closing the period"
    )
    parser.add_argument(
        "--pdf", type=int, default=0, help="statement PDFs to profile (implies --close)"
    )
    parser.add_argument(
        "--expire",
        type=int,
        default=0,
        help="lots to expire last, as due a year on, batch by batch (0: none)",
    )
    parser.add_argument("--database-url", help="a PostgreSQL server (default: a throwaway cluster)")
    parser.add_argument("--top", type=int, default=35)
    return parser


def main(argv=None) -> int:
    arguments = _parser().parse_args(argv)

    from coalition import auth, create_app, database_of
    from coalition.db import migrate

    with ExitStack() as stack:
        server_url = arguments.database_url
        if server_url is None:
            cluster = pg.Cluster()
            stack.callback(cluster.stop)
            server_url = cluster.start()
        url, _ = stack.enter_context(pg.fresh_database(server_url))
        app = create_app({"DATABASE_URL": url, "SCHEDULER": False})
        database = database_of(app)
        stack.callback(database.dispose)
        migrate.upgrade(database)
        _, operator_key = database.run(
            lambda session: auth.create_key(session, "operator", None, "profile")
        )
        client = app.test_client()
        now = datetime.now(UTC)
        _, (period_id, start, end) = data.month_periods(now)
        world = data.configure(_caller(client), start - timedelta(days=31), operator_key)
        data.add_rate_history(url, world, start - timedelta(days=31))
        began = time.perf_counter()
        loaded = data.bulk_load(
            url,
            world,
            data.StagePlan(
                1,
                period_id,
                start,
                end,
                arguments.members,
                arguments.allocations or arguments.members,
                20,
                200,
            ),
        )
        print(
            f"loaded {sum(loaded.rows.values()):,} rows ({loaded.burn_allocations:,} burn allocations in "
            f"{period_id}) in {time.perf_counter() - began:.1f} s"
        )
        params = {
            "partners": world.partners_for_load(),
            "rich": loaded.rich_members,
            "regular": loaded.regular_members,
        }
        sql = _SqlCount(database.engine)
        if arguments.posts:
            _profile_posts(client, params, arguments, sql)
            print("\nSQL of one post of each type (pool pre-ping and BEGIN/COMMIT not shown):")
            for kind, lines in sql.shown.items():
                print(f"  {kind}:")
                for line in lines:
                    print(f"    {line}")
        if arguments.batches:
            _profile_batches(client, params, operator_key, arguments)
        if arguments.close or arguments.pdf:
            _profile_close(database, period_id, arguments)
        if arguments.balance:
            _profile_balance(client, loaded.heavy_members, params, arguments, sql)
        if arguments.expire:
            _time_expiry(database, arguments.expire)
    return 0


def _profile_posts(client, params, arguments, sql: _SqlCount) -> None:
    rng, earns = random.Random(7), []
    bodies = [
        load._Requests.body(params, rng, f"prof-{index}", f"profm-{index}", earns)
        for index in range(arguments.posts)
    ]
    for partner, body in bodies[:20]:  # warm up: imports, caches, prepared statements
        if body["type"] != "earn_reversal":
            client.post(
                "/api/v1/transactions",
                json={**body, "external_id": "warm-" + body["external_id"]},
                headers={"Authorization": f"Bearer {partner['key']}"},
            )
    per_type, statuses = defaultdict(list), Counter()
    profiler = cProfile.Profile()
    began = time.perf_counter()
    for partner, body in bodies:
        sql.kind, sql.recording = body["type"], not per_type[body["type"]]
        before = sql.counts[body["type"]]
        started = time.perf_counter()
        profiler.enable()
        response = client.post(
            "/api/v1/transactions", json=body, headers={"Authorization": f"Bearer {partner['key']}"}
        )
        profiler.disable()
        per_type[body["type"]].append(
            (time.perf_counter() - started, sql.counts[body["type"]] - before)
        )
        statuses[response.status_code] += 1
    sql.recording = False
    wall = time.perf_counter() - began
    print(
        f"\n{arguments.posts} posts through the Flask test client on PostgreSQL in {wall:.2f} s "
        f"({arguments.posts / wall:.0f} posts/s, one thread, under cProfile); statuses {dict(statuses)}"
    )
    for kind, samples in sorted(per_type.items()):
        mean_ms = sum(seconds for seconds, _ in samples) / len(samples) * 1e3
        mean_sql = sum(count for _, count in samples) / len(samples)
        print(
            f"  {kind:<14} {len(samples):>4} posts, {mean_ms:6.2f} ms each, "
            f"{mean_sql:5.1f} SQL statements each"
        )
    _print_stats(profiler, arguments.top)


def _profile_batches(client, params, operator_key, arguments) -> None:
    rng, size = random.Random(11), 1000
    headers = {"Authorization": f"Bearer {operator_key}"}
    batches = []
    for batch in range(arguments.batches + 1):
        items, earns = [], []
        for index in range(size):
            partner, body = load._Requests.body(
                params, rng, f"profb-{batch}-{index}", f"profbm-{batch}-{index}", earns
            )
            items.append({**body, "partner_id": partner["id"]})
        batches.append({"transactions": items})
    client.post("/api/v1/transactions/batch", json=batches.pop(), headers=headers)  # warm up
    statuses = Counter()
    profiler = cProfile.Profile()
    began = time.perf_counter()
    profiler.enable()
    for body in batches:
        response = client.post("/api/v1/transactions/batch", json=body, headers=headers)
        statuses.update(result["status"] for result in response.get_json()["results"])
    profiler.disable()
    wall = time.perf_counter() - began
    items = arguments.batches * size
    print(
        f"\n{arguments.batches} batches of {size} through the Flask test client in {wall:.2f} s "
        f"({items / wall:.0f} items/s, one thread, under cProfile); statuses {dict(statuses)}"
    )
    _print_stats(profiler, arguments.top)


def _profile_balance(client, members, params, arguments, sql: _SqlCount) -> None:
    key = params["partners"][0]["key"]
    headers = {"Authorization": f"Bearer {key}"}
    for member in members[:5]:
        client.get(f"/api/v1/members/{member}/balance", headers=headers)
    sql.kind = "balance"
    before = sql.counts["balance"]
    profiler = cProfile.Profile()
    began = time.perf_counter()
    profiler.enable()
    for index in range(arguments.balance):
        client.get(f"/api/v1/members/{members[index % len(members)]}/balance", headers=headers)
    profiler.disable()
    wall = time.perf_counter() - began
    print(
        f"\n{arguments.balance} balance lookups (200 lots each) in {wall:.2f} s "
        f"({wall / arguments.balance * 1e3:.2f} ms each under cProfile, "
        f"{(sql.counts['balance'] - before) / arguments.balance:.1f} SQL statements each)"
    )
    _print_stats(profiler, arguments.top // 2)


def _timed(database, label, function, *args):
    began = time.perf_counter()
    result = database.run(lambda session: function(session, *args))
    print(f"  {time.perf_counter() - began:8.3f} s  {label}")
    return result


def _profile_close(database, period_id: str, arguments) -> None:
    """Each aggregate of the settlement on its own, then the close under cProfile, then PDFs."""
    from coalition.db import aggregates, period_totals
    from coalition.services import calendar, catalog, settlement
    from coalition.services import partners as partner_service

    period = database.run(lambda session: calendar.parse(session, period_id))
    everyone = database.run(partner_service.all_partners)
    print(f"\nsettlement of {period_id}, its parts one by one:")
    _timed(
        database,
        "period_totals.redeemed_points (pair lines)",
        period_totals.redeemed_points,
        period_id,
    )
    _timed(
        database,
        "period_totals.period_activity (fees and activity)",
        period_totals.period_activity,
        period_id,
    )
    _timed(
        database, "aggregates.liability_points", aggregates.liability_points, period.id, period.end
    )
    _timed(
        database,
        f"fx_rate × {len(everyone)} partners",
        lambda session: [
            catalog.current(session).fx_rate(p.currency, period.end) for p in everyone
        ],
    )
    _timed(database, "aggregates.late_items (close only)", aggregates.late_items, period_id)
    _timed(database, "settlement.compute (draft, all of it)", settlement.compute, period, "draft")
    profiler = cProfile.Profile()
    profiler.enable()
    _timed(
        database,
        "settlement.close (under cProfile)",
        settlement.close,
        period_id,
        datetime.now(UTC),
    )
    profiler.disable()
    _print_stats(profiler, arguments.top // 2)
    if not arguments.pdf:
        return
    import reports

    statement = load.statement_to_render(database, period_id)
    reports.render_pdf(statement)
    profiler = cProfile.Profile()
    began = time.perf_counter()
    profiler.enable()
    for _ in range(arguments.pdf):
        content = reports.render_pdf(statement)
    profiler.disable()
    wall = time.perf_counter() - began
    print(
        f"\n{arguments.pdf} PDFs of statement {statement['number']} ({len(statement['counterparties'])} "
        f"counterparties, {len(content):,} bytes): {wall / arguments.pdf * 1e3:.1f} ms each under cProfile"
    )
    _print_stats(profiler, arguments.top)


def _time_expiry(database, lots: int) -> None:
    """Expire up to ``lots`` lots, all due as of 400 days on (so dated ahead: it runs last),
    in the job's batches, timing each: a batch should cost the same however many the
    ledger holds and however many were expired before it."""
    from coalition.services import expiry

    now = datetime.now(UTC)
    due_by, seconds = now + timedelta(days=400), []
    while len(seconds) * expiry.BATCH < lots:
        began = time.perf_counter()
        if not database.run(lambda session: expiry.expire_due(session, now, due_by=due_by)):
            break
        seconds.append(time.perf_counter() - began)
    if not seconds:
        print("\nno lots to expire")
        return
    middle = sorted(seconds)[len(seconds) // 2]
    print(
        f"\n{len(seconds)} expiry batches of up to {expiry.BATCH} lots in {sum(seconds):.2f} s: "
        f"first {seconds[0]:.3f} s, median {middle:.3f} s, last {seconds[-1]:.3f} s "
        f"({len(seconds) * expiry.BATCH / sum(seconds):,.0f} lots/s)"
    )


def _print_stats(profiler, top: int) -> None:
    for order in ("cumulative", "tottime"):
        buffer = io.StringIO()
        stats = pstats.Stats(profiler, stream=buffer).strip_dirs().sort_stats(order)
        stats.print_stats(top)
        text = buffer.getvalue()
        print(f"\n--- by {order} ---")
        print(text[text.find("   ncalls") :].rstrip())


if __name__ == "__main__":
    raise SystemExit(main())
