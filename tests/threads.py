"""Calls released together on threads of their own: how the concurrency tests make a race happen."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import text


def together(*calls, wait: float):
    """Run the calls on their own threads, released at once by a barrier; their results
    in order. ``wait`` bounds, in seconds, the barrier and each result."""
    barrier = threading.Barrier(len(calls), timeout=wait)

    def run(call):
        barrier.wait()
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(run, call) for call in calls]
        return [future.result(timeout=wait) for future in futures]


def until_waiting_on_locks(engine, count: int, wait: float = 60, unless=lambda: False) -> None:
    """Return once ``count`` client sessions of ``engine``'s PostgreSQL database wait on a
    lock (the calls that must queue have queued, however slow the machine), or once
    ``unless()`` is true (a call that should have queued did not). An autovacuum worker
    in the database is none of them."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = :name AND wait_event_type = 'Lock'"
        " AND backend_type = 'client backend'"
    )
    deadline = time.monotonic() + wait
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as watcher:
        while watcher.execute(query, {"name": engine.url.database}).scalar_one() < count:
            if unless():
                return
            assert time.monotonic() < deadline, f"fewer than {count} sessions ever waited on a lock"
            time.sleep(0.05)
