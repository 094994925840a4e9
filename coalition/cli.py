"""The ``coalition`` command (SPEC §9).

Each command builds the app from the environment and calls the same use cases
as the HTTP API; ``serve`` migrates first, prints an operator key on first
start, runs the scheduler (unless switched off) and serves with gunicorn.
"""

import itertools
import os
import re
import shlex
import signal
import sys
import time
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import click
from alembic.util import CommandError
from sqlalchemy.exc import ArgumentError, DBAPIError

from coalition import auth, config, create_app, database_of, transaction_file
from coalition.db import Unavailable, is_unavailable, migrate, on_postgresql
from coalition.domain.errors import CoalitionError
from coalition.logs import quantity
from coalition.services import changes

IMPORT_SLICE = 1000  # rows of an imported file held, parsed and posted at a time
# rows from which an import posts in several processes by default: below, starting
# them (0.7 s) costs what they save (docs/performance.md)
IMPORT_LANES_FROM = 6000
IMPORT_LANES_MAX = 8  # by default: each holds a connection, and PostgreSQL needs cores too
IMPORT_JOBS_MAX = 32  # when asked: each process takes some 80 MB and a database connection
# serve waits this long for a database that does not answer yet (started beside it)
START_WAIT_SECONDS = 60
START_RETRY_SECONDS = 2


@contextmanager
def _database(*, upgrade=False, wait=0):
    """The configured database for one command, its connections closed afterwards.

    With ``upgrade`` (commands that set things up: ``db upgrade``, ``keys
    create``, ``serve``, ``demo``) the schema is brought to the newest first.
    The others use the database as it is; on one without the newest schema
    they say how to get it instead of failing on a missing table.
    """
    try:
        database = database_of(create_app())
    except config.Unreadable as error:
        raise click.ClickException(str(error)) from None
    except (ArgumentError, ImportError, ValueError) as error:  # not a URL, no dialect or driver
        raise click.ClickException(f"COALITION_DATABASE_URL cannot be used: {error}")
    missing = _missing_file(database)
    if missing is not None and not upgrade:  # said before SQLite would create it
        database.dispose()
        raise click.ClickException(_no_database(missing))
    try:
        _check_schema(database, upgrade, wait)
        if missing is not None:  # said once it exists: a file that cannot be made is reported
            click.echo(f"created a new database at {missing}", err=True)
        yield database
    except Unavailable as error:  # the server went away while the command ran
        raise click.ClickException(f"{error}; run the command again once it is back") from None
    finally:
        database.dispose()


def _missing_file(database) -> Path | None:
    """The SQLite file a command would create by opening it, None if it exists or the
    database is a server's: a command run in another directory than the service would
    otherwise work on a new, empty database of its own."""
    path = _file(database)
    try:
        return None if path is None or path.exists() else path
    except OSError as error:  # a name the file system refuses (too long): no file, and none to make
        database.dispose()
        raise click.ClickException(f"cannot open the database {path}: {error.strerror}") from None


def _no_database(path: Path) -> str:
    if os.environ.get("COALITION_DATABASE_URL"):
        return f"there is no database at {path} (COALITION_DATABASE_URL)"
    return (
        f"there is no database at {path}: without COALITION_DATABASE_URL, a command uses"
        " coalition.sqlite3 in the directory it runs in; run it where `coalition serve` runs,"
        " or set COALITION_DATABASE_URL"
    )


def _shown(database) -> str:
    """Where a command works: the SQLite file, or the server's URL without its password."""
    path = _file(database)
    return database.engine.url.render_as_string(hide_password=True) if path is None else str(path)


def _file(database) -> Path | None:
    """The file of an SQLite database named by its path; None for a server, memory, or
    a ``file:`` URI, whose path and options SQLite reads itself."""
    url = database.engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    if url.query.get("uri") == "true" or url.database.startswith("file:"):
        return None
    return Path(url.database).resolve()


def _check_schema(database, upgrade: bool, wait: float = 0) -> None:
    """Upgrade the schema, or check it is this release's; the first statements any
    command sends, so a database that cannot be opened is reported here.

    With ``wait``, a server that does not answer yet (started at the same
    time, as containers are) is asked again every few seconds for that long,
    saying so once, before the command gives up.
    """
    shown = _shown(database)
    deadline = time.monotonic() + wait
    for attempt in itertools.count():
        try:
            before = migrate.upgrade(database) if upgrade else frozenset()
            revisions = migrate.revisions(database)
            break
        except CommandError as error:  # a revision it does not know: a newer release's
            raise click.ClickException(f"{migrate.SCHEMA_IS_NEWER} ({error})") from None
        except (DBAPIError, Unavailable) as error:  # unreachable, not a database, no such directory
            cause = error.__cause__ if isinstance(error, Unavailable) else error
            if not (_not_up_yet(cause) and time.monotonic() < deadline):
                reason = getattr(cause, "orig", cause)
                raise click.ClickException(f"cannot open the database {shown}: {reason}") from None
            if attempt == 0:
                click.echo(f"waiting up to {wait:g} s for the database {shown}: {cause.orig}")
            time.sleep(START_RETRY_SECONDS)
    if (why := migrate.mismatch(revisions)) is not None:
        raise click.ClickException(why)
    if before and before != revisions:  # a new database's creation is said by _database
        click.echo(f"upgraded the schema from {_listed(before)} to {_listed(revisions)}", err=True)


def _listed(revisions: frozenset[str]) -> str:
    return ", ".join(sorted(revisions))


# what a server says while it is not serving for a while: worth waiting for
NOT_UP_YET = (
    "starting up",
    "shutting down",
    "in recovery",
    "not currently accepting connections",
    "too many clients",
)


def _not_up_yet(error) -> bool:
    """A server that does not answer yet (refused, unreachable, timed out) or says it
    is starting or full; not one that answers no (no such database or role, a wrong
    password), which would answer the same after the wait."""
    if not (isinstance(error, DBAPIError) and is_unavailable(error)):
        return False
    said = str(error.orig)
    return "FATAL" not in said or any(state in said for state in NOT_UP_YET)


class Group(click.Group):
    """The command group, reporting a domain error as click reports a usage error.

    A :class:`CoalitionError` from any command is the user's mistake (a partner
    key without its partner, a period that has not ended), not a bug: one line
    ``Error: ...`` on stderr and exit status 1, without a traceback. What a
    command changes (a key, a close) is recorded as the command line's.
    """

    def invoke(self, ctx):
        try:
            with changes.acting(changes.Actor("cli")):
                return super().invoke(ctx)
        except CoalitionError as error:
            raise click.ClickException(error.message) from error


@click.group(cls=Group)
def main():
    """Coalition settlement service."""


@main.group()
def db():
    """Database schema."""


@db.command("upgrade")
def db_upgrade():
    """Create or upgrade the schema (Alembic)."""
    with _database(upgrade=True):
        click.echo("database is at the newest schema")


@main.group()
def keys():
    """API keys."""


@keys.command("create")
@click.option(
    "--role",
    type=click.Choice(auth.ROLES),
    required=True,
    help="operator: everything; finance: reads (with --partner, that partner's only);"
    " partner: posts and reads for its --partner",
)
@click.option(
    "--partner", "--partner-id", "partner_id", default=None, help="partner the key is bound to"
)
@click.option("--name", default=None, help="what the key is for, as keys list shows it")
def keys_create(role, partner_id, name):
    """Create a key; the key itself is the last line printed (shown once)."""
    from coalition.api.keys import KeyIn

    fields = _checked(KeyIn, role=role, partner_id=partner_id, name=name)
    with _database(upgrade=True) as database:
        try:
            row, key = database.run(lambda session: auth.create_key(session, **fields))
        except CoalitionError as error:
            if error.field is None:
                raise
            raise click.ClickException(_about_option(error.field, error.message)) from None
    click.echo(
        f"created {role} key {row.id} in {_shown(database)}; store it now, it is not shown again:"
    )
    click.echo(key)


@keys.command("list")
@click.option("--partner", "--partner-id", "partner_id", default=None, help="keys bound to it")
@click.option("--role", type=click.Choice(auth.ROLES), default=None)
@click.option(
    "--status", type=click.Choice(auth.KEY_STATUSES), default=None, help="(default: both)"
)
def keys_list(partner_id, role, status):
    """List keys, oldest first, as GET /api/v1/keys does: never the keys themselves."""
    from coalition.api.keys import KeyQuery

    query = _checked(KeyQuery, partner_id=partner_id, role=role, status=status)
    with _database() as database:
        found = database.run(auth.listing, **query)
    click.echo(_key_table(found))


def _key_table(found) -> str:
    """One line a key under a header, columns aligned; times in UTC, ``-`` for none."""

    def at(moment):
        return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")

    lines = [("ID", "ROLE", "PARTNER", "CREATED (UTC)", "REVOKED (UTC)", "NAME")] + [
        (
            row.id,
            row.role,
            row.partner_id or "-",
            at(row.created_at),
            at(row.revoked_at),
            _printable(row.name or "-"),
        )
        for row in found
    ]
    widths = [max(len(line[column]) for line in lines) for column in range(5)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths)) + "  " + line[5]
        for line in lines
    )


def _printable(text: str) -> str:
    """A name as it can stand in one line of a terminal's table: a control character
    (a newline, an escape sequence's ESC) written as its Python escape."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


@keys.command("revoke")
@click.argument("key")
def keys_revoke(key):
    """Revoke a key, by its id (key_…) or, one that leaked, by the key itself (coal_…):
    every request with it is refused (401) from now on."""

    # a key as pasted from a header or a log line ("Bearer coal_…"), never printed back
    leaked = [word for word in key.split() if word.startswith(auth.KEY_PREFIX)]
    if not leaked and not re.fullmatch(auth.KEY_ID, key.strip()):
        raise click.ClickException("that is neither a key's id (key_…) nor a key (coal_…)")

    def revoke(session):
        if leaked:
            row = auth.key_by_value(session, leaked[-1])
        else:
            row = auth.get_key(session, key.strip())
        before = row.revoked_at
        return auth.revoke_key(session, row.id), before

    with _database() as database:
        row, before = database.run(revoke)
    what = f"{row.role} key {row.id} ({_printable(row.name or 'no name')}) in {_shown(database)}"
    at = f"{row.revoked_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
    click.echo(f"{what} was revoked already, at {at}" if before else f"revoked {what} at {at}")


def _checked(schema, **options) -> dict:
    """The options given, checked as the API checks the same fields with ``schema``
    (``POST /api/v1/keys``: a name of 1–200 characters a database can store, a
    partner id of the slug form)."""
    from marshmallow import ValidationError

    try:
        return schema().load(
            {field: value for field, value in options.items() if value is not None}
        )
    except ValidationError as error:
        said = "; ".join(
            _about_option(field, " ".join(why)) for field, why in error.messages.items()
        )
        raise click.ClickException(said) from None


def _about_option(field: str, message: str) -> str:
    """A message about a field, said of the option that gives it (``partner_id``: ``--partner``)."""
    return f"--{field.split('_')[0]}: {message}"


@main.command()
def expire():
    """Expire every lot past its expiry date now."""
    from coalition.services import expiry

    with _database() as database:
        count = expiry.expire_all(database, datetime.now(UTC))
    click.echo(f"expired {quantity(count, 'lot')}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=1))
@click.option("--no-scheduler", is_flag=True, help="do not run the expiry and auto-close jobs")
def serve(host, port, workers, no_scheduler):
    """Migrate, then serve the API (gunicorn) with the scheduler."""
    from coalition import server

    with _database(upgrade=True, wait=START_WAIT_SECONDS) as database:
        key = database.run(auth.first_operator_key)
    if key is not None:
        click.echo("First start: an operator key was created. Store it now, it is not shown again:")
        click.echo(key)
    scheduler = config.from_environment()["SCHEDULER"] and not no_scheduler
    jobs = "expiry hourly, auto-close checked every 15 minutes" if scheduler else "off"
    banner = f"Coalition on http://{host}:{port}  (API docs at /api/docs)\nJobs: {jobs}"
    server.run(host, port, workers, scheduler, banner)


@main.command()
@click.argument("period_id")
def close(period_id):
    """Close a settlement period (and every earlier open one): PERIOD_ID as the calendar
    names it, 2026-10 (monthly), 2026-W43 (weekly) or 2026-10-05 (daily)."""
    from coalition.services import calendar, settlement

    with _database() as database:
        period_id = database.run(calendar.parse, period_id).id  # not a period id: said first
        click.echo(f"Closing {period_id} and any earlier open period …")
        now = datetime.now(UTC)
        closed = database.run(settlement.close_through, period_id, now)
        result = closed[-1] if closed else database.run(settlement.get, period_id, now)
    if len(closed) > 1:
        earlier = [each["period_id"] for each in closed[:-1]]
        click.echo(
            f"closed {earlier[0]} first: the open period before {period_id}"
            if len(earlier) == 1
            else f"closed {earlier[0]} to {earlier[-1]} first:"
            f" the {len(earlier):,} open periods before {period_id}"
        )
    netting = result["netting"]
    what = f"closed {period_id}" if closed else f"{period_id} was already closed"
    click.echo(
        f"{what}: {quantity(len(result['partners']), 'statement')}, "
        f"gross {netting['gross']} {result['base_currency']}, "
        f"multilateral net {netting['multilateral_net']} {result['base_currency']}, "
        f"payments saved {netting['payments_saved']}"
    )


@main.command()
def demo():
    """Load a sample coalition with closed periods and statements."""
    from coalition import demo as demo_data

    with _database(upgrade=True) as database:
        demo_data.load(
            database,
            datetime.now(UTC),
            echo=click.echo,
            progress=lambda: click.progressbar(length=demo_data.DAYS, label="Posting days"),
        )


@main.command("import")
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
        _database() as database,
        _terminate_as_interrupt(),
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
    click.echo(", ".join(f"{count} {outcome}" for outcome, count in counts.items()))
    if counts["failed"] or stopped:
        raise SystemExit(1)


def _counted(
    posted, total: int, label: str, path: str, from_line: int
) -> tuple[dict[str, int], bool]:
    """Each posted row's outcome counted under a progress bar, a refused row said with its
    line; and whether the import stopped before the end, said with why and from which
    line to go on.

    A Ctrl-C or SIGTERM stops it after the slice in flight, counted in full
    (:func:`_stop_after_the_slice`); a second one, or a lost database or worker,
    stops it at once, and that slice may be written in part.
    """
    counts = {"created": 0, "replayed": 0, "failed": 0}
    # the bar is drawn on a terminal only; an error shown there starts below it
    below_bar = "\n" if sys.stdout.isatty() and sys.stderr.isatty() else ""
    last_line = None  # the line the last counted row starts on
    why, in_flight = None, False  # why it stopped, and whether a slice may be written in part
    try:
        with _stop_after_the_slice() as stop, click.progressbar(length=total, label=label) as bar:
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
    if why is not None:
        said = _going_on(path, from_line, last_line, in_flight)
        click.echo(f"\nthe import stopped: {why}. {said}", err=True)
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
    """While an import posts, the first Ctrl-C or SIGTERM asks it to stop once the slice
    in flight is posted and counted, so that every row it decided is counted and none is
    decided again by the import that goes on; a second one stops it at once.
    (Stopped mid-slice, the rows of that slice refused so far were never counted: going
    on from the slice's first line decided them anew.)"""
    stop = _StopAsked()
    with _handled(stop, signal.SIGINT, signal.SIGTERM):
        yield stop


class _StopAsked:
    """A signal handler that notes the first signal and raises on the second."""

    def __init__(self):
        self.asked = False

    def __call__(self, signum, frame):
        if self.asked:
            raise KeyboardInterrupt
        self.asked = True


@contextmanager
def _terminate_as_interrupt():
    """SIGTERM (``kill``, ``timeout``) stops an import as Ctrl-C does, saying so, instead
    of ending it in silence: while the file is read, before anything is posted."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    with _handled(interrupt, signal.SIGTERM):
        yield


@contextmanager
def _handled(handler, *numbers):
    """These signals given to ``handler`` until the block ends, then to their handlers before."""
    previous = {number: signal.signal(number, handler) for number in numbers}
    try:
        yield
    finally:
        for number, before in previous.items():
            signal.signal(number, before)


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
