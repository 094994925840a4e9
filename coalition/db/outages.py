"""What a database that fails says, sorted into what the service does about it.

A failure that is no fault of the request is :class:`Unavailable` (a 503, a command
stopped in one line, a job waiting for its next run), told apart by what will end it:
the server back (:class:`Unavailable` itself), the operator's hand
(:class:`TakesNoWrites`, :class:`Damaged` and its kinds), a release's schema
(:class:`SchemaNotCurrent`) or another unit of work letting go (:class:`Busy`).
:func:`reaching` makes them from the driver's errors; any other error is the code's,
and is raised as it is.
"""

import sqlite3
from contextlib import contextmanager

from sqlalchemy.exc import DBAPIError, OperationalError

# the server says it cannot serve this service now: read-only (a standby after a
# failover, or maintenance), out of disk, shutting down, crashed, starting up
READ_ONLY_SQLSTATE = "25006"
DISK_FULL_SQLSTATE = "53100"  # as SQLite's SQLITE_FULL: the operator's to see to
TAKES_NO_WRITES_SQLSTATES = {READ_ONLY_SQLSTATE, DISK_FULL_SQLSTATE}
UNAVAILABLE_SQLSTATES = {*TAKES_NO_WRITES_SQLSTATES, "57P01", "57P02", "57P03"}
SQLITE_BUSY_CODES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}  # "database is locked"
# SQLite cannot write its file: made read-only, a full disk, an I/O error. The operator's
# to see to, as a PostgreSQL server gone read-only is: no request's fault, nor one item's
SQLITE_UNWRITABLE_CODES = {sqlite3.SQLITE_READONLY, sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR}
# SQLite finds its file damaged: a page overwritten, the file cut short, a -wal of another
# database beside it (SQLITE_CORRUPT), or a file that is no database at all (SQLITE_NOTADB)
SQLITE_DAMAGED_CODES = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}
# PostgreSQL finds a page of its own files damaged: a table's (data_corrupted), or an
# index's (index_corrupted), which REINDEX builds again from its table
DATA_CORRUPTED = "XX001"
INDEX_CORRUPTED = "XX002"
LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's lock_timeout ran out
# libpq refuses to send a statement binding more values than its protocol carries
# (65,535): no SQLSTATE, as from a connection lost, but the code's error, which asking
# again would meet again; raised as it is (a 500, logged), not a 503 saying "try again"
TOO_MANY_VALUES = "number of parameters must be between"


class Unavailable(Exception):
    """The database refused the connection, the connection broke mid-work, or the
    server cannot take writes now.

    What the unit of work had not committed is rolled back; nothing can be
    blamed on the request, nor on one item of a batch. The API answers 503,
    a command stops saying so, and a job waits for its next run.
    """


SCHEMA_IS_NEWER = "the database's schema is a newer release's: run that release"
SCHEMA_IS_OLDER = (
    "the database does not have this release's schema: run `coalition db upgrade` first"
)
TABLE_MISSING = (
    "the database does not have this release's schema (a table it reads is missing):"
    " run `coalition db upgrade`, or the newer release that changed it"
)


class SchemaNotCurrent(Unavailable):
    """The database's schema is not this release's: a table this release reads is not
    there (the database dropped and made anew, or emptied, under a running service), or
    a newer release has upgraded it. The request is not at fault, and asking again
    will not help until the schema and the release match; /readyz says the same.
    ``why`` is what to do, without the database's own words."""

    def __init__(self, why: str, detail: str = ""):
        super().__init__(f"{why} ({detail})" if detail else why)
        self.why = why


RESTORE = 'restore it from a backup (docs/operations.md, "Data to keep")'
REINDEX = (
    "rebuild it from its table with `REINDEX INDEX` and the name it gives; nothing is lost"
    ' (docs/operations.md, "A damaged PostgreSQL database")'
)


class Damaged(Unavailable):
    """The SQLite file is no database, or a page a statement read is damaged: the file cut
    short or written over, or a ``-wal`` of another database read as its own.

    Only the statements that read a damaged page fail (one member's balance, say,
    while others are served). Asking again reads the same page, so it is not asked
    again; the operator restores the file from a backup. PostgreSQL's own damage is
    told by its kinds, :class:`DataDamaged` and :class:`IndexDamaged`.
    """

    what = "the database file"
    remedy = RESTORE

    def __init__(self, reason: str):
        super().__init__(reason)  # its args alone, as pickle makes it again from them
        self.reason = reason

    def __str__(self) -> str:
        return self.said()

    def said(self, where: str = "") -> str:
        """What is damaged (named ``where``, if the caller knows which), with the
        database's reason, and what to do."""
        named = f" {where}" if where else ""
        return f"{self.what}{named} is damaged ({self.reason}): {self.remedy}"

    @staticmethod
    def of(error: DBAPIError) -> "Damaged":
        """The damage the driver's ``error`` tells of (:func:`damaged`), with its first line."""
        return DAMAGE_BY_SQLSTATE.get(sqlstate(error), Damaged)(first_line(error))


class DataDamaged(Damaged):
    """A page of a PostgreSQL table found damaged (data_corrupted, :data:`DATA_CORRUPTED`):
    the rows it held are lost to the server, so the database is restored from a backup,
    as a damaged SQLite file is."""

    what = "the database"


class IndexDamaged(Damaged):
    """A page of a PostgreSQL index found damaged (index_corrupted, :data:`INDEX_CORRUPTED`):
    the table it indexes holds every row, so REINDEX builds the index again from it and
    nothing is restored, nor lost."""

    what = "an index of the database"
    remedy = REINDEX


#: PostgreSQL's damage by its SQLSTATE (:data:`DATA_CORRUPTED`, :data:`INDEX_CORRUPTED`)
DAMAGE_BY_SQLSTATE = {DATA_CORRUPTED: DataDamaged, INDEX_CORRUPTED: IndexDamaged}


class Busy(Unavailable):
    """Another unit of work held what this one needed for all of
    :data:`coalition.db.LOCK_WAIT_MS`.

    Not tried again at once, as a broken connection is: it has waited its
    time, and the one that held it may hold it for minutes more.
    """


class TakesNoWrites(Unavailable):
    """The database answers, but refuses to write: a PostgreSQL standby after a failover or
    a server out of disk (:data:`TAKES_NO_WRITES_SQLSTATES`), a SQLite file that cannot be
    written (:func:`unwritable`). Reads are served as ever."""


def is_unavailable(error: DBAPIError) -> bool:
    """A connection found broken, or one the server never answered: psycopg's error
    then carries no SQLSTATE (refused, reset, timed out), where a server's always does;
    a server that answers it is read-only, out of disk or going down
    (:data:`UNAVAILABLE_SQLSTATES`);
    a SQLite file that cannot be written (:func:`unwritable`); or a lock waited for past
    the limit (:func:`busy`). Not libpq's refusal of a statement too large to send
    (:data:`TOO_MANY_VALUES`), which has no SQLSTATE either."""
    if error.connection_invalidated or busy(error) or unwritable(error):
        return True
    state = getattr(error.orig, "sqlstate", "")  # "": not psycopg's error at all
    lost = state is None and TOO_MANY_VALUES not in str(error.orig)
    return (isinstance(error, OperationalError) and lost) or state in UNAVAILABLE_SQLSTATES


def missing_table(error: DBAPIError) -> bool:
    """A table not there: PostgreSQL's undefined_table, SQLite's own words (in SQLite's
    errors alone: PostgreSQL's carry the row's values, which a partner may have written)."""
    if sqlite_code(error) is not None:
        return str(error.orig).startswith("no such table")
    return sqlstate(error) == "42P01"


def first_line(error: DBAPIError) -> str:
    """The driver's first line: what went wrong, without the detail and context lines
    PostgreSQL adds after it (a row's values, the function that raised)."""
    return next(iter(str(error.orig).strip().splitlines()), "no answer")


@contextmanager
def reaching():
    """Raise :class:`Unavailable` for a database that cannot be reached, with the
    driver's first line (a host and port, never a password); :class:`SchemaNotCurrent`
    for one whose tables are gone, :class:`Damaged` for one found damaged."""
    try:
        yield
    except DBAPIError as error:
        reason = first_line(error)
        if missing_table(error):
            raise SchemaNotCurrent(TABLE_MISSING, reason) from error
        if damaged(error):
            raise Damaged.of(error) from error
        if sqlite_code(error) == sqlite3.SQLITE_CANTOPEN:  # its file gone, or out of reach
            raise Unavailable(f"the database file cannot be opened ({reason})") from error
        if not is_unavailable(error):
            raise
        if busy(error):
            raise Busy(
                f"the database kept this waiting on other work's lock too long ({reason})"
            ) from error
        if unwritable(error):
            raise TakesNoWrites(f"the database file cannot be written ({reason})") from error
        if sqlstate(error) in TAKES_NO_WRITES_SQLSTATES:
            raise TakesNoWrites(f"the database takes no writes now ({reason})") from error
        raise Unavailable(f"the database cannot be reached ({reason})") from error


def busy(error: DBAPIError) -> bool:
    """A SQLite file another writer held for the whole busy timeout (or at once, the write
    of a snapshot: :meth:`Database.run_reading`), or a PostgreSQL lock not granted within
    the session's ``lock_timeout``."""
    code = sqlite_code(error)
    if code is not None:
        return code in SQLITE_BUSY_CODES
    return sqlstate(error) == LOCK_NOT_AVAILABLE


def takes_no_writes(error: DBAPIError) -> bool:
    """A database that answers but refuses to write (:class:`TakesNoWrites`): a PostgreSQL
    server read-only or out of disk, a SQLite file that cannot be written."""
    return unwritable(error) or sqlstate(error) in TAKES_NO_WRITES_SQLSTATES


def unwritable(error: DBAPIError) -> bool:
    """A SQLite file that cannot be written (:data:`SQLITE_UNWRITABLE_CODES`)."""
    return sqlite_code(error) in SQLITE_UNWRITABLE_CODES


def damaged(error: DBAPIError) -> bool:
    """A SQLite file found damaged, or no database (:data:`SQLITE_DAMAGED_CODES`); a
    PostgreSQL table's or index's page found damaged (:data:`DAMAGE_BY_SQLSTATE`)."""
    return sqlite_code(error) in SQLITE_DAMAGED_CODES or sqlstate(error) in DAMAGE_BY_SQLSTATE


def sqlstate(error: DBAPIError) -> str | None:
    """PostgreSQL's SQLSTATE of the error; None for SQLite, or for a connection psycopg
    found broken before the server answered."""
    return getattr(error.orig, "sqlstate", None)


def sqlite_code(error: DBAPIError) -> int | None:
    """SQLite's primary result code (an extended code's low byte); None for PostgreSQL."""
    code = getattr(error.orig, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


def twice_if_unavailable(call, *args, **kwargs):
    """``call(...)``, and once more if the database was unavailable: the broken connection
    is gone from the pool by then, so a server that is back serves the second."""
    try:
        return call(*args, **kwargs)
    except (Busy, Damaged, SchemaNotCurrent):
        raise
    except Unavailable:
        return call(*args, **kwargs)
