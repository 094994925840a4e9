"""CPU seconds spent by a process and everything below it: who did a figure's work.

On two shared cores a rate moves with whatever else the machine runs; what
a transaction costs the service and PostgreSQL in CPU moves far less, and
says where its time went. Read from /proc (Linux), so PostgreSQL's share is
known only for a server on this machine; elsewhere it is None.
"""

import os
import resource
from contextlib import contextmanager
from pathlib import Path

import psycopg

PROC = Path("/proc")
TICKS = os.sysconf("SC_CLK_TCK")  # a second's clock ticks, as /proc counts CPU time


def _trees(pids: list[int | None], stats: dict[int, tuple[int, int]]) -> list[int | None]:
    """The CPU ticks of each pid and every process below it, including those that
    have ended (a process's time joins its parent's once the parent has waited for
    it), all from one reading of /proc; None for a pid not here. The reading takes a
    few milliseconds, a process at a time: one that ends and is waited for meanwhile
    may be counted twice or not at all, with all its time (PostgreSQL's autovacuum
    workers end every minute or so; its backends, and gunicorn's workers, live as
    long as the run)."""
    children: dict[int, list[int]] = {}
    for child, (parent, _) in stats.items():
        children.setdefault(parent, []).append(child)
    return [_tree(pid, stats, children) if pid in stats else None for pid in pids]


def _tree(pid: int, stats: dict, children: dict) -> int:
    ticks, pending = 0, [pid]
    while pending:
        process = pending.pop()
        ticks += stats[process][1]
        pending.extend(children.get(process, ()))
    return ticks


def own_ticks(pid: int) -> int:
    """CPU ticks ``pid`` has used itself (utime, stime), not its children."""
    fields = _fields((PROC / str(pid) / "stat").read_text())
    return int(fields[11]) + int(fields[12])


def _fields(stat: str) -> list[str]:
    """A /proc stat line's fields after the command, which may hold spaces."""
    return stat.rsplit(")", 1)[1].split()


def _stats() -> dict[int, tuple[int, int]]:
    """Each process's parent and its CPU ticks, its own and its waited-for children's."""
    stats = {}
    for entry in PROC.glob("[0-9]*"):
        try:
            text = (entry / "stat").read_text()
        except OSError:  # ended meanwhile
            continue
        fields = _fields(text)
        parent, times = int(fields[1]), fields[11:15]  # ppid; utime stime cutime cstime
        stats[int(entry.name)] = (parent, sum(map(int, times)))
    return stats


def postmaster(dsn: str) -> int | None:
    """The pid of the PostgreSQL server ``dsn`` reaches, if it runs on this machine and
    among its processes (one in a container numbers its processes its own way)."""
    with psycopg.connect(dsn, autocommit=True) as connection:
        backend = connection.execute("SELECT pg_backend_pid()").fetchone()[0]
        stats = _stats()
        if backend not in stats or not _is_postgres(backend):
            return None
        server = stats[backend][0]
        return server if _is_postgres(server) else None


def _is_postgres(pid: int) -> bool:
    try:
        return (PROC / str(pid) / "comm").read_text().strip() == "postgres"
    except OSError:
        return False


@contextmanager
def counted(**pids: int | None):
    """The CPU seconds each named process tree spends in the block, in the dict it
    yields, filled when the block ends (None for a tree not on this machine)."""
    names = list(pids)
    before = _trees([pids[name] for name in names], _stats())
    spent: dict[str, float | None] = {}
    yield spent
    after = _trees([pids[name] for name in names], _stats())
    for name, first, last in zip(names, before, after, strict=True):
        spent[name] = None if first is None or last is None else (last - first) / TICKS


def ended_children() -> float:
    """CPU seconds of this process's children that have ended and been waited for, and
    of theirs: a command's whole cost once it has exited."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
