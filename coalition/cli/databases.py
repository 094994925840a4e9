"""The database a command works on: opened from the environment, its schema
checked (or upgraded, for the commands that set things up), and named as the
user should recognise it."""

import itertools
import os
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlsplit

import click
from alembic.util import CommandError
from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from coalition import config, create_app, database_of
from coalition.db import (
    SCHEMA_IS_OLDER,
    Damaged,
    Database,
    SchemaNotCurrent,
    Unavailable,
    damaged,
    is_unavailable,
    migrate,
    sqlite_code,
    unwritable,
)

# serve waits this long for a database that does not answer yet (started beside it)
START_WAIT_SECONDS = 60
START_RETRY_SECONDS = 2


@contextmanager
def opened(*, upgrade=False, wait=0, create=True, backup=False):
    """The configured database for one command, its connections closed afterwards.

    With ``upgrade`` (commands that set things up: ``db upgrade``, ``keys
    create``, ``serve``, ``demo``, and ``db copy`` for its target) the schema is
    brought to the newest first,
    in a new SQLite file if there is none and ``create`` allows it: a new
    database has no partner but the operator's, so a key for another partner
    would only be refused in one. The others use the database as it is; on
    one without the newest schema they say how to get it instead of failing
    on a missing table.

    With ``backup`` (``db check``, run on a backup before it is restored), a SQLite
    file kept in a directory this user may not write is read as SQLite reads one on
    read-only media (:meth:`~coalition.db.Database.read_as_immutable`), where SQLite
    refused to read it at all, unless a ``-wal`` or a ``-journal`` is beside it
    (:func:`_kept_read_only`); and where the file was written meanwhile, what the
    command found is not said, but that it was written (:func:`_unwritten`).
    """
    database = _built(
        config.database_url(), "COALITION_DATABASE_URL", lambda: database_of(create_app())
    )
    missing = _missing_file(database)
    if missing is not None and not (upgrade and create):  # said before SQLite would create it
        database.dispose()
        raise click.ClickException(_no_database(missing))
    kept = backup and _kept_read_only(database)
    if kept:
        database.read_as_immutable()
    try:
        with _unwritten(_file_named(database) if kept else None):
            before, revisions = _check_schema(database, upgrade, wait)
            if upgrade:  # said once done: a file that cannot be made is reported instead
                _tell_what_changed(database, missing, before, revisions)
            yield database
    except Damaged as error:  # a page the command read, where opening it read none
        raise click.ClickException(error.said(shown(database))) from None
    except SchemaNotCurrent as error:  # a newer release upgraded it while the command ran
        raise click.ClickException(str(error)) from None
    except Unavailable as error:  # the server went away while the command ran
        raise click.ClickException(f"{error}; run the command again once it is back") from None
    finally:
        database.dispose()


@contextmanager
def source(url: str):
    """The database ``db copy`` reads, as it is: never created, nor upgraded, since the
    copy must be of what the coalition holds, at the schema this release writes."""
    database = _built(url, "SOURCE_URL", lambda: Database(url))
    try:
        if (missing := _missing_file(database)) is not None:
            raise click.ClickException(f"there is no database at {missing} (SOURCE_URL)")
        try:
            _check_schema(database, upgrade=False)
        except click.ClickException as error:
            raise click.ClickException(_of_the_source(error.message)) from None
        yield database
    finally:
        database.dispose()


def _built(url: str, named: str, make):
    """The database ``url`` names (given as ``named``), built by ``make``; refused when it
    is in memory, gone when the command ends, or not a URL the service can use."""
    if _in_memory(url):
        raise click.ClickException(
            f"{named} names an in-memory SQLite database, which is gone when the command"
            " ends: name a file (sqlite:///path/to/coalition.sqlite3)"
        )
    try:
        return make()
    except (ArgumentError, ImportError, ValueError) as error:  # not a URL, no dialect or driver
        raise click.ClickException(f"{named} cannot be used: {error}")


def _of_the_source(message: str) -> str:
    if message == SCHEMA_IS_OLDER:  # `coalition db upgrade` alone would upgrade the target
        return (
            "the database SOURCE_URL names does not have this release's schema: upgrade it"
            " first (`coalition db upgrade` with COALITION_DATABASE_URL naming it)"
        )
    return f"{message} (SOURCE_URL)"


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


def _kept_read_only(database) -> bool:
    """A SQLite file in a directory this user may not write, where neither a ``-wal`` nor a
    ``-journal`` is beside it: read as immutable, SQLite would leave the one unread, and
    read the other's transaction, never committed, where it would have rolled it back."""
    path = _file_named(database)
    return path is not None and not os.access(path.parent, os.W_OK) and not _journalled(path)


def _journalled(path: Path) -> bool:
    """Whether a ``-wal`` or a ``-journal`` is beside the SQLite file ``path``."""
    return any(path.with_name(f"{path.name}-{kept}").exists() for kept in ("wal", "journal"))


@contextmanager
def _unwritten(path: Path | None):
    """Whatever the block read of ``path``, a file read as immutable (or nothing, for None),
    said instead to be unreliable if anything wrote the file meanwhile.

    Read as on read-only media, SQLite takes no locks and assumes nothing changes the
    file: a backup copied over it in place while ``db check`` ran (the next night's, as
    ``cp`` writes one) was read half the one and half the other, and a sound file said to
    be damaged, to be restored from a backup. A writer changes the file's size, or when
    it was last changed, or moves another file in its place; or it leaves a ``-wal`` or a
    ``-journal`` beside it, which the file was opened without (:func:`_kept_read_only`).
    """
    before = _as_written(path) if path is not None else None
    try:
        yield
    finally:
        if path is not None and (_as_written(path) != before or _journalled(path)):
            raise click.ClickException(
                f"{path} was written while it was checked, which reads it without locks:"
                " what the check found may be neither what it held before nor after;"
                " stop what writes it, or check a copy"
            ) from None


def _as_written(path: Path) -> tuple | None:
    """What a write to ``path`` changes (see :func:`_unwritten`); None once it is gone."""
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    return status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns


def _no_database(path: Path) -> str:
    if config.named_database():
        return f"there is no database at {path} (COALITION_DATABASE_URL)"
    return (
        f"there is no database at {path}: without COALITION_DATABASE_URL, a command uses"
        " coalition.sqlite3 in the directory it runs in; run it where `coalition serve` runs,"
        " or set COALITION_DATABASE_URL"
    )


def shown(database) -> str:
    """Where a command works: the SQLite file, or the server's URL without its password."""
    path = _file(database)
    return database.engine.url.render_as_string(hide_password=True) if path is None else str(path)


def _in_memory(text: str) -> bool:
    try:
        url = make_url(text)
    except (ArgumentError, ValueError):  # not a URL SQLAlchemy reads: said when opened
        return False
    if url.get_backend_name() != "sqlite":
        return False
    if url.database in (None, "", ":memory:"):
        return True
    return url.query.get("mode") == "memory" or "mode=memory" in url.database  # a file: URI


def _file(database) -> Path | None:
    """The file of an SQLite database named by its path; None for a server, memory, or
    a ``file:`` URI, whose path and options SQLite reads itself."""
    url = database.engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    if url.query.get("uri") == "true" or url.database.startswith("file:"):
        return None
    return Path(url.database).resolve()


def _file_named(database) -> Path | None:
    """The file of an SQLite database named by its path or by a ``file:`` URI, whose path
    SQLite reads as a URL's, percent-decoded, from the directory the command runs in."""
    url = database.engine.url
    if (
        url.get_backend_name() == "sqlite"
        and url.query.get("uri") == "true"
        and (url.database or "").startswith("file:")
    ):
        return Path(unquote(urlsplit(url.database).path)).resolve()
    return _file(database)


def _check_schema(
    database, upgrade: bool, wait: float = 0
) -> tuple[frozenset[str], frozenset[str]]:
    """Upgrade the schema, or check it is this release's; the first statements any
    command sends, so a database that cannot be opened is reported here.

    With ``wait``, a server that does not answer yet (started at the same
    time, as containers are) is asked again every few seconds for that long,
    saying so once, before the command gives up.

    Returns:
        The revisions the schema was at before (none without ``upgrade``) and after.
    """
    where = shown(database)
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
            if isinstance(cause, DBAPIError) and damaged(cause):  # no wait mends it
                raise click.ClickException(Damaged.of(cause).said(where)) from None
            if not (_not_up_yet(cause) and time.monotonic() < deadline):
                raise click.ClickException(
                    f"cannot open the database {where}: {_why(cause)}"
                ) from None
            if attempt == 0:
                click.echo(
                    f"waiting up to {wait:g} s for the database {where}: {_reason(cause)}",
                    err=True,
                )
            time.sleep(START_RETRY_SECONDS)
    if (why := migrate.mismatch(revisions)) is not None:
        raise click.ClickException(why)
    return before, revisions


def _reason(error) -> str:
    """The driver's reason on one line: libpq adds its hint on a line of its own."""
    lines = str(getattr(error, "orig", error)).splitlines()
    return "; ".join(line.strip() for line in lines if line.strip())


def _why(error) -> str:
    """The driver's reason, and for a SQLite file it cannot open, what SQLite needs."""
    reason = _reason(error)
    if isinstance(error, DBAPIError) and sqlite_code(error) == sqlite3.SQLITE_CANTOPEN:
        return f"{reason} (SQLite needs its directory to exist and to be writable)"
    if isinstance(error, DBAPIError) and sqlite_code(error) == sqlite3.SQLITE_BUSY:
        return f"{reason}: another process held it for writing all along; try again once it is done"
    return reason


def _tell_what_changed(database, missing: Path | None, before, revisions) -> None:
    """On stderr, what an upgrade did: made a new SQLite file (its schema with it),
    created the schema in an empty database (a server's, or a file opened by URI), or
    upgraded the schema; nothing when it was the newest already."""
    if missing is not None:
        click.echo(f"created a new database at {missing}", err=True)
    elif not before:
        click.echo(f"created the schema ({_listed(revisions)}) in {shown(database)}", err=True)
    elif before != revisions:
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
    if not (isinstance(error, DBAPIError) and is_unavailable(error)) or unwritable(error):
        return False
    said = str(error.orig)
    return "FATAL" not in said or any(state in said for state in NOT_UP_YET)
