"""What a database's error makes of a unit of work: a SQLite file found damaged is
:class:`~coalition.db.Damaged`, whichever of SQLite's codes for damage it carries, and is
not asked again, as a broken connection is; PostgreSQL's own damage is too, by its
SQLSTATE, with what to do for a table's page and for an index's."""

import sqlite3

import psycopg.errors
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError, InternalError, OperationalError

from coalition.db import (Busy, Damaged, Database, SchemaNotCurrent, TakesNoWrites, Unavailable, reaching,
                          twice_if_unavailable)
from coalition.db.outages import TABLE_MISSING
from tests.e2e.helpers import POSTGRESQL_DAMAGE

# SQLite's extended codes, as Python reports them: the primary code is the low byte
SQLITE_CORRUPT_INDEX = sqlite3.SQLITE_CORRUPT | 3 << 8


def sqlite_error(code: int, said: str) -> DatabaseError:
    orig = sqlite3.DatabaseError(said)
    orig.sqlite_errorcode = code
    return DatabaseError("SELECT 1", None, orig)


@pytest.mark.parametrize(
    ("code", "said"),
    [
        (sqlite3.SQLITE_CORRUPT, "database disk image is malformed"),
        (SQLITE_CORRUPT_INDEX, "database disk image is malformed"),
        (sqlite3.SQLITE_NOTADB, "file is not a database"),
    ],
)
def test_a_damaged_sqlite_file_is_damaged_with_what_to_do(code, said):
    with pytest.raises(Damaged) as raised, reaching():
        raise sqlite_error(code, said)
    assert str(raised.value) == (
        f'the database file is damaged ({said}): restore it from a backup (docs/operations.md, "Data to keep")'
    )


def test_a_read_of_a_damaged_page_is_not_read_again():
    calls = []

    def read():
        calls.append(1)
        with reaching():
            raise sqlite_error(sqlite3.SQLITE_CORRUPT, "database disk image is malformed")

    with pytest.raises(Damaged):
        twice_if_unavailable(read)
    assert len(calls) == 1


@pytest.mark.parametrize(("damage", "told"), list(zip(POSTGRESQL_DAMAGE, [
    'the database is damaged (invalid page in block 5 of relation base/16384/16622): restore it from a'
    ' backup (docs/operations.md, "Data to keep")',
    'an index of the database is damaged (index "ix_lots_member_balance" contains unexpected zero page at'
    " block 3): rebuild it from its table with `REINDEX INDEX` and the name it gives; nothing is lost"
    ' (docs/operations.md, "A damaged PostgreSQL database")',
])))
def test_postgresqls_own_damage_is_damaged_by_its_sqlstate_with_what_to_do(damage, told):
    corrupted, said = damage
    with pytest.raises(Damaged) as raised, reaching():
        raise InternalError("SELECT 1", None, corrupted(said))
    assert str(raised.value) == told


def test_a_table_gone_is_said_with_what_to_do_and_sqlites_words_after_it():
    # a command's one line (coalition.cli.databases.opened) and the logs say str(error);
    # the API says ``why`` alone
    with pytest.raises(SchemaNotCurrent) as raised, reaching():
        raise sqlite_error(sqlite3.SQLITE_ERROR, "no such table: lots")
    assert raised.value.why == TABLE_MISSING
    assert str(raised.value) == (
        "the database does not have this release's schema (a table it reads is missing):"
        " run `coalition db upgrade`, or the newer release that changed it (no such table: lots)"
    )


@pytest.mark.parametrize("going", [psycopg.errors.AdminShutdown, psycopg.errors.CrashShutdown,
                                   psycopg.errors.CannotConnectNow])
def test_a_server_going_down_or_starting_up_is_unavailable_to_be_asked_again(going):
    # SQLAlchemy has not found the connection broken: the server's SQLSTATE alone says so
    with pytest.raises(Unavailable) as raised, reaching():
        raise OperationalError("SELECT 1", None, going("the database system is shutting down"))
    assert not isinstance(raised.value, (Busy, Damaged, SchemaNotCurrent, TakesNoWrites))
    assert str(raised.value) == "the database cannot be reached (the database system is shutting down)"


def test_a_read_refused_a_write_before_it_answered_is_refused_not_answered(tmp_path):
    """Only a write refused after the reading use case answered (SQLite writes its pages at
    the commit) leaves its answer standing; one refused before has no answer to stand, and
    is refused as a database taking no writes, not answered with a placeholder."""
    from coalition.db import Database

    def reads_then_is_refused(session):
        raise TakesNoWrites("the database file cannot be written (attempt to write a readonly database)")

    database = Database(f"sqlite:///{tmp_path / 'coalition.db'}")
    try:
        with pytest.raises(TakesNoWrites):
            database.run_reading(reads_then_is_refused)
        assert database.run_reading(lambda session: "answered") == "answered"
    finally:
        database.engine.dispose()


def test_an_error_not_the_drivers_in_a_statement_on_sqlite_is_raised_as_it_is():
    """A value the driver cannot take raises its own error while the statement runs; the
    engine's listener for writes SQLite refuses as read-only (it opens that connection
    anew) read SQLite's code of every error, and raised AttributeError in its place."""

    class Unstorable:
        def __conform__(self, _protocol):
            raise LookupError("no value SQLite stores")

    database = Database("sqlite://")
    with pytest.raises(LookupError, match="no value SQLite stores"), database.engine.connect() as connection:
        connection.execute(text("SELECT :value"), {"value": Unstorable()})
    database.dispose()



def test_a_statement_libpq_refuses_to_send_is_the_codes_error_not_an_outage():
    """libpq refuses a statement binding more than 65,535 values before it is sent, with
    no SQLSTATE, as a connection lost has none: asked again it fails the same, so it is
    raised as it is (a 500, logged), not a 503 telling the caller to try again."""
    refused = OperationalError("SELECT 1 WHERE 1 IN (...)", None, psycopg.OperationalError(
        "sending query and params failed: number of parameters must be between 0 and 65535"))
    with pytest.raises(OperationalError) as raised, reaching():
        raise refused
    assert raised.value is refused


@pytest.mark.parametrize(("statement", "said"), [
    (None, "connection failed: Connection refused"),  # a connect names no statement
    # psycopg found the socket closed before it marked the connection broken (a race CI met)
    ("SELECT pg_try_advisory_lock(%(key)s)", "connection socket closed"),
])
def test_a_connection_lost_without_a_sqlstate_is_unavailable(statement, said):
    with pytest.raises(Unavailable) as raised, reaching():
        raise OperationalError(statement, None, psycopg.OperationalError(said))
    assert not isinstance(raised.value, (Busy, Damaged, SchemaNotCurrent, TakesNoWrites))
