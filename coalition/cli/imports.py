"""``coalition import``: post a CSV file of transactions, a slice at a time, in
lanes of worker processes, saying how to go on when it stops."""

import itertools
import os
import shlex
import signal
import sys
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager

import click

from coalition.cli import databases, interrupts, transaction_file
from coalition.db import Unavailable, on_postgresql
from coalition.logs import quantity

IMPORT_SLICE = 1000  # rows of an imported file held, parsed and posted at a time
# rows from which an import posts in several processes by default: below, starting
# them (0.7 s) costs what they save (docs/performance.md)
IMPORT_LANES_FROM = 6000
IMPORT_LANES_MAX = 8  # by default: each holds a connection, and PostgreSQL needs cores too
IMPORT_JOBS_MAX = 32  # when asked: each process takes some 80 MB and a database connection


@click.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--jobs",
    type=click.IntRange(1, IMPORT_JOBS_MAX),
    default=None,
    help=f"processes posting at once (default: one per CPU, at most {IMPORT_LANES_MAX}, "
    f"from {IMPORT_LANES_FROM:,} rows; SQLite: 1)",
)
@click.option(
    "--from-line",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="post only the rows that start on this line of the file or after: where a stopped"
    " import says to go on from",
)
def import_transactions(path, jobs, from_line):
    """Post every row of a CSV of transactions (columns as in POST /transactions).

    Each row is handled as if posted alone, in file order, through the same
    path as an API batch: a replay answers as a replay, a bad row is reported
    and skipped, and leaves nothing behind. Run again, the rows written answer
    as replays and the others, the refused ones too, are decided anew; an
    import that stopped says from which line to go on, so that the rows it
    decided are not decided again. Rows that cannot affect each other are
    posted by several processes at once.
    """
    from coalition.services import imports

    if not os.path.isfile(path):  # a pipe cannot be read twice
        raise click.ClickException(
            f"{path} is not a regular file: the import reads it twice, to count its rows"
            " and then to post them; save the data to a file first"
        )
    with (
        open(path, newline="", encoding="utf-8-sig") as source,
        databases.opened() as database,
        interrupts.terminate_as_interrupt(),
    ):
        try:  # counted for the progress bar, and read in full before anything is posted
            total = transaction_file.count_rows(source, path, *_columns(), from_line)
        except KeyboardInterrupt:
            raise click.ClickException(
                f"interrupted while {path} was read; nothing was posted"
            ) from None
        if not total and from_line > 1:
            click.echo(f"no row of {path} starts on line {from_line:,} or after", err=True)
        source.seek(0)
        jobs = _import_jobs(database, jobs, total)
        # then a slice at a time: files may be large
        numbered = transaction_file.rows(source, path, from_line)
        slices = iter(lambda: list(itertools.islice(numbered, IMPORT_SLICE)), [])
        posted = imports.post_file(database, jobs, slices, _requests)
        label = f"Importing {quantity(total, 'row')}" + (
            f" in {jobs} processes" if jobs > 1 else ""
        )
        counts, stopped = _counted(posted, total, label, path, from_line)
    if counts["failed"] or stopped:
        raise SystemExit(1)


def _counted(
    posted, total: int, label: str, path: str, from_line: int
) -> tuple[dict[str, int], bool]:
    """Each posted row's outcome counted under a progress bar, a refused row said with its
    line, then the counts; and whether the import stopped before the end, said with why
    and from which line to go on.

    A Ctrl-C, SIGTERM or hangup stops it after the slice in flight, counted in full
    (:func:`_stop_after_the_slice`); a second one, or a lost database or worker,
    stops it at once, and that slice may be written in part. Once nothing is
    posted, a signal has nothing left to stop and does not cut the report short.
    """
    counts = {"created": 0, "replayed": 0, "failed": 0}
    # the bar is drawn on a terminal only; an error shown there starts below it
    below_bar = "\n" if sys.stdout.isatty() and sys.stderr.isatty() else ""
    last_line = None  # the line the last counted row starts on
    why, in_flight = None, False  # why it stopped, and whether a slice may be written in part
    with _stop_after_the_slice() as stop:
        try:
            with click.progressbar(length=total, label=label) as bar:
                for rows, results in posted:
                    for (line, _), (outcome, detail) in zip(rows, results, strict=True):
                        counts[outcome] += 1
                        last_line = line
                        if detail is not None:
                            click.echo(f"{below_bar}line {line}: {detail}", err=True)
                    bar.update(len(rows))
                    if stop.asked and sum(counts.values()) < total:
                        posted.close()
                        why = _STOPPED_BY[KeyboardInterrupt]
                        break
        except (BrokenProcessPool, KeyboardInterrupt, Unavailable) as error:
            why, in_flight = _STOPPED_BY.get(type(error), str(error)), True
        stop.posting = False
        if why is not None:
            said = _going_on(path, from_line, last_line, in_flight)
            # the bar, where there is one, ended its line as it closed
            click.echo(f"the import stopped: {why}. {said}", err=True)
        click.echo(", ".join(f"{count:,} {outcome}" for outcome, count in counts.items()))
    return counts, why is not None


_STOPPED_BY = {
    KeyboardInterrupt: "it was interrupted",
    BrokenProcessPool: "a process posting it died",
}


def _going_on(path: str, from_line: int, last_line: int | None, in_flight: bool) -> str:
    """How to go on with an import that stopped: after the rows it counted, which are
    decided. Imported again from its start, a row it refused is decided anew, and might
    post where it did not (rows after it may have earned what it lacked)."""
    going_on = from_line if last_line is None else last_line + 1
    counted = (
        "No row was counted"
        if last_line is None
        else f"The rows counted below, through line {last_line}, are decided"
    )
    if in_flight:
        counted += (
            f"; some of the next {IMPORT_SLICE} rows may be in the ledger too, and answer"
            " as replays"
        )
    option = f" --from-line {going_on}" if going_on > 1 else ""
    return f"{counted}. To go on: coalition import {shlex.quote(path)}{option}"


@contextmanager
def _stop_after_the_slice():
    """While an import posts, the first Ctrl-C, SIGTERM or hangup asks it to stop once the
    slice in flight is posted and counted, so that every row it decided is counted and none
    is decided again by the import that goes on; a second one stops it at once.
    (Stopped mid-slice, the rows of that slice refused so far were never counted: going
    on from the slice's first line decided them anew.)"""
    stop = _StopAsked()
    with interrupts.handled(stop, signal.SIGINT, *interrupts.stopping()):
        yield stop


class _StopAsked:
    """A signal handler that notes the first signal and, while rows are posted, raises on
    the second."""

    def __init__(self):
        self.asked = False
        self.posting = True

    def __call__(self, signum, frame):
        if self.asked and self.posting:
            raise KeyboardInterrupt
        self.asked = True


def _import_jobs(database, asked: int | None, total: int) -> int:
    """How many processes post an import of ``total`` rows (``asked`` by ``--jobs``)."""
    if not on_postgresql(database.engine):
        if (asked or 1) > 1:
            click.echo("SQLite lets one writer in at a time: importing in one process", err=True)
        return 1
    if asked is not None:
        return asked
    if total < IMPORT_LANES_FROM:
        return 1
    usable = (
        os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    )
    return min(len(usable), IMPORT_LANES_MAX)


def _columns() -> tuple[list[str], list[str]]:
    """The columns of an imported file, the fields of ``POST /transactions``; and those no
    row can post without: the fields every transaction needs, and the partner, which the
    operator an import posts as must name."""
    from coalition.api.transactions import TRANSACTION_IN

    required = [name for name, field in TRANSACTION_IN.fields.items() if field.required]
    return list(TRANSACTION_IN.fields), required + ["partner_id"]


def _requests(rows: list) -> list:
    from coalition.api.transactions import validated

    return [
        transaction_file.misshapen(row) or validated(transaction_file.request_body(row))
        for _, row in rows
    ]
