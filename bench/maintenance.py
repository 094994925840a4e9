"""What autovacuum did while a figure ran: work the database did beside the figure's.

On two shared cores an autovacuum worker takes a core from the service and its
load. Its work follows a stage's writes, and whether it runs depends on the
share of a table those writes changed: the same posts change a tenth as much of
the 10× stage's tables as of the 1× stage's, so the 1× stage's figures may share
the machine with it where the 10× stage's do not. Each figure says so.
"""

from contextlib import contextmanager

import psycopg

COMPLETED = "SELECT relname, autovacuum_count, autoanalyze_count FROM pg_stat_user_tables"
# an autovacuum worker's query reads "autovacuum: VACUUM ANALYZE public.lots" and the like
RUNNING = (
    "SELECT query FROM pg_stat_activity"
    " WHERE backend_type = 'autovacuum worker' AND datname = current_database()"
)
PREFIX = "autovacuum: "


def _snapshot(dsn: str) -> tuple[dict[str, tuple[int, int]], set[str]]:
    with psycopg.connect(dsn, autocommit=True) as connection:
        completed = {
            name: (vacuums, analyzes)
            for name, vacuums, analyzes in connection.execute(COMPLETED).fetchall()
        }
        running = {  # a role without pg_read_all_stats reads "<insufficient privilege>"
            query.removeprefix(PREFIX).replace("public.", "").lower()
            for (query,) in connection.execute(RUNNING).fetchall()
            if query and query.startswith(PREFIX)
        }
    return completed, running


def _work(before, after) -> list[str]:
    """Each vacuum or analyze that ended between the snapshots, or ran at either."""
    (done_before, running_before), (done_after, running_after) = before, after
    work = set(running_before | running_after)
    for table, (vacuums, analyzes) in done_after.items():
        vacuums_before, analyzes_before = done_before.get(table, (0, 0))
        if vacuums > vacuums_before:
            work.add(f"vacuum {table}")
        if analyzes > analyzes_before:
            work.add(f"analyze {table}")
    return sorted(work)


@contextmanager
def watched(dsn: str):
    """The autovacuum work seen while the block ran, in the list it yields, filled when
    the block ends: each table vacuumed or analyzed (a worker's run that both started
    and ended between the two snapshots is seen by its table's counts)."""
    before = _snapshot(dsn)
    seen: list[str] = []
    yield seen
    seen.extend(_work(before, _snapshot(dsn)))
