"""Importing a file of transactions on several processes at once (``coalition import``).

Rows are posted as if one after the other, in file order (SPEC §6, as a
batch). Two rows can only affect each other through what they share: a
member, whose lots a burn spends; an idempotency key, which makes the later
row a replay, a conflict, or (if the first was refused) the one posted; an
original, which reversals take from. :func:`lanes` puts rows sharing any of
these in the same lane; each lane is posted in file order, lanes side by
side, so every row meets exactly the ledger it would have met posted alone.

A slice of the file is posted in full before the next is routed, so rows of
earlier slices are in the database when a later reversal names them: its
original's member is read there (:func:`coalition.db.ledger_reads.members_of`).

What lanes change: ids (and ``recorded_at``) follow file order within a
group, not across groups, so a listing by id orders the file's members
differently; if something else writes while the import runs (a close, the
expiry job, a posting over the API), each lane meets it at its own point in
the file, as concurrent API batches would; and if the import dies, the
file's earlier slices are written and part of the one in flight. Importing
the file again answers the written rows as replays.
"""

import functools
import multiprocessing
import os
import signal
import zlib
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor

from coalition import auth, processes
from coalition.db import Database, Unavailable, ledger_reads
from coalition.domain.errors import CoalitionError, Invalid, fields_text
from coalition.domain.lots import REVERSES
from coalition.services import batches, ledger

OPERATOR = auth.Principal(None, "operator")


def lanes(requests: list, originals: dict[tuple[str, str], str], count: int) -> list[int]:
    """The lane, of ``count``, of each request: requests that share a member, an
    idempotency key or an original share a lane. ``originals`` maps the
    (partner, external_id) of transactions already posted to their member. A
    request that can touch nothing (already an error, or naming no partner)
    is refused in any lane: lane 0."""
    groups = _Groups()
    for _, key, request in _keyed(requests):
        if request.get("member_id") is not None:
            groups.union(key, ("member", request["member_id"]))
        if request["type"] in REVERSES:
            original = (request["partner_id"], request["original_external_id"])
            groups.union(key, ("key", *original))
            if original in originals:
                groups.union(key, ("member", originals[original]))
    lane_of = [0] * len(requests)
    for index, key, _ in _keyed(requests):
        lane_of[index] = _lane(groups.find(key), count)
    return lane_of


def originals_named(requests: list) -> set[tuple[str, str]]:
    """The (partner, external_id) of the originals these requests reverse."""
    return {
        (request["partner_id"], request["original_external_id"])
        for _, _, request in _keyed(requests)
        if request["type"] in REVERSES
    }


def _keyed(requests: list):
    """Each request that can be posted: its index, its idempotency key as a node, itself."""
    for index, request in enumerate(requests):
        if not isinstance(request, Exception) and request.get("partner_id") is not None:
            yield index, ("key", request["partner_id"], request["external_id"]), request


def _lane(root: tuple, count: int) -> int:
    """A stable lane for a group: the same on every run, whatever the process."""
    return zlib.crc32("\x1f".join(root).encode()) % count


class _Groups:
    """Union-find over members and keys; a group's root is its smallest node, so
    a group's lane depends only on what is in it."""

    def __init__(self):
        self.parent: dict[tuple, tuple] = {}

    def find(self, node: tuple) -> tuple:
        root = node
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while node != root:  # shorten the path for the next find
            self.parent[node], node = root, self.parent[node]
        return root

    def union(self, a: tuple, b: tuple) -> None:
        a, b = self.find(a), self.find(b)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


def post_file(
    database: Database, jobs: int, slices: Iterable, requests_of, pool=None
) -> Iterator[tuple]:
    """Each slice of a file with what the import reports of each of its rows
    (:func:`_reported`), posted as the operator in ``jobs`` lanes.

    ``requests_of(slice)`` reads a slice's requests: the next slice's while
    the lanes post the one before. The lanes run on ``pool``, an executor
    (default: ``jobs`` processes of their own).
    """
    if jobs == 1:
        for part in slices:
            yield part, _post(database, requests_of(part))
        return
    url = database.engine.url.render_as_string(hide_password=False)
    with pool or _processes(jobs, url) as lanes_pool:
        in_flight = None  # the slice being posted, its lanes' indexes and futures
        for part in slices:
            requests = requests_of(part)
            if in_flight is not None:
                yield _gathered(*in_flight)
            in_flight = (part, *_dispatch(database, url, lanes_pool, jobs, requests))
        if in_flight is not None:
            yield _gathered(*in_flight)


def _processes(jobs: int, url: str) -> ProcessPoolExecutor:
    """Worker processes, started now, so that they start while the first slice is read.

    Ctrl-C is the main process's: it stops after the slice in flight, which the
    workers finish, instead of each worker dying with a traceback. So the workers
    are spawned with SIGINT ignored (:func:`processes.signals_held`), and SIGHUP,
    which a closing terminal sends them too, as does multiprocessing's resource
    tracker, which the pool starts (it ignores SIGINT and SIGTERM itself; a hangup
    ended it, with a traceback per lock). SIGTERM is left to end a worker: the pool
    terminates the others with it when one dies.
    """
    spawn = multiprocessing.get_context("spawn")  # a fork would share the engine's sockets
    # not SIGINT: starting, the tracker unblocks it
    with processes.signals_held({signal.SIGHUP}):
        executor = ProcessPoolExecutor(
            jobs, spawn, initializer=processes.exit_with_parent, initargs=(os.getpid(),)
        )
    try:
        with processes.signals_held({signal.SIGINT, signal.SIGHUP}):
            for _ in range(jobs):  # each submit spawns a worker, until there are ``jobs``
                executor.submit(_connect, url)
    except BaseException:  # a Ctrl-C held while they were spawned
        executor.shutdown(cancel_futures=True)
        raise
    return executor


@functools.cache
def _database_at(url: str) -> Database:
    """A worker's own engine, one per process."""
    return Database(url)


def _connect(url: str) -> None:
    """Open this worker's engine before its first lane arrives."""
    _database_at(url)


def _dispatch(database: Database, url: str, pool, jobs: int, requests: list) -> tuple:
    """Start posting each lane of these requests; the lanes' indexes and their futures."""
    posted = database.read(ledger_reads.members_of, originals_named(requests))
    lane_of = lanes(requests, posted, jobs)
    by_lane = [[i for i, lane in enumerate(lane_of) if lane == n] for n in range(jobs)]
    by_lane = [indexes for indexes in by_lane if indexes]
    futures = [pool.submit(_post_lane, url, [requests[i] for i in indexes]) for indexes in by_lane]
    return by_lane, futures


def _gathered(part, by_lane: list[list[int]], futures: list) -> tuple:
    """The slice with its rows' reports, in file order, once every lane is posted."""
    reports: list = [None] * sum(map(len, by_lane))
    for indexes, future in zip(by_lane, futures, strict=True):
        for i, report in zip(indexes, future.result(), strict=True):
            reports[i] = report
    return part, reports


def _post_lane(url: str, requests: list) -> list[tuple]:
    return _post(_database_at(url), requests)


def _post(database: Database, requests: list) -> list[tuple]:
    outcomes = batches.post_many(database, OPERATOR, requests)
    for outcome in outcomes:
        if isinstance(outcome, Unavailable):
            raise outcome  # the import stops, saying from which line to go on
    return [_reported(outcome) for outcome in outcomes]


def _reported(outcome) -> tuple[str, str | None]:
    """What an import reports of one row: created, replayed or failed, and why it failed:
    as the API's answer says it, the field at fault first and the reason last
    (``occurred_at: a reversal cannot occur before its original (before_original)``),
    so that the failures can be sorted and counted by field and by reason."""
    if isinstance(outcome, ledger.Posting):
        return ("created" if outcome.created else "replayed"), None
    messages = getattr(outcome, "messages", None)
    if messages is not None:
        return "failed", fields_text(messages)
    if not isinstance(outcome, CoalitionError):
        return "failed", str(outcome)
    said = outcome.message if outcome.field is None else f"{outcome.field}: {outcome.message}"
    return "failed", said if outcome.reason == Invalid.reason else f"{said} ({outcome.reason})"
