"""Schema upgrades through Alembic, the only way the schema is made (SPEC §2)."""

import functools
from contextlib import closing
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, ProgrammingError

from coalition.db import Unavailable, locks

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def upgrade(database, revision: str = "head") -> None:
    """Bring the database to the newest revision (or to ``revision``); a no-op when it
    is there already.

    Several instances started at once (``coalition serve`` migrates first)
    upgrade one after the other: on PostgreSQL the first takes a lock that
    the others wait for, then they find the schema current. Without it the
    others ran the same DDL beside the first and failed on what it created.
    The lock is the session's, not the transaction's, so a migration that
    commits midway (an index built concurrently) still holds it. SQLite's
    write lock, taken at BEGIN, queues them there.
    """
    config = _config()
    postgresql = database.dialect == "postgresql"
    with database.engine.connect() as connection:
        if postgresql:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": locks.MIGRATIONS})
            connection.commit()
        try:
            with connection.begin():
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
        finally:
            if postgresql:
                _unlock(connection)


def _unlock(connection) -> None:
    """Let the next instance upgrade; on a connection that broke, closing it does (the
    server lets go of a session's locks with it), and what broke it is the error."""
    try:
        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": locks.MIGRATIONS})
        connection.commit()
    except DBAPIError:
        connection.invalidate()


VERSION = "SELECT version_num FROM alembic_version"


def revision(database) -> str | None:
    """The revision the schema is at, None before the first upgrade: one read outside
    any transaction, for /readyz to ask every few seconds.

    On PostgreSQL it is read once more on a new connection if the pooled one
    broke (:meth:`Database.read`). On SQLite it is read on the driver's
    connection as it is, in autocommit: a transaction there begins by taking
    the write lock, and would wait behind every writer.
    """
    if database.dialect == "postgresql":
        try:
            return database.read(
                lambda session: session.connection().exec_driver_sql(VERSION).scalar()
            )
        except ProgrammingError:  # no alembic_version table yet
            return None
    try:
        with closing(database.engine.raw_connection()) as connection:
            row = connection.cursor().execute(VERSION).fetchone()
    except database.engine.dialect.loaded_dbapi.Error as error:  # not a database file, …
        if "no such table" in str(error):
            return None
        raise Unavailable(f"the database cannot be read ({error})") from error
    return None if row is None else row[0]


def is_behind(revision: str | None) -> bool:
    """Whether a schema at ``revision`` lacks this release's newest: never upgraded, or
    upgraded by an older release. A revision this release does not know is a newer
    release's, which this one runs on while a rolling deploy replaces it."""
    return revision is None or (revision not in _newest() and revision in _known())


def is_current(database) -> bool:
    """Whether the database is at the newest revision, so a command may use it as it is."""
    with database.engine.connect() as connection:
        return set(MigrationContext.configure(connection).get_current_heads()) == _newest()


@functools.cache
def _newest() -> frozenset[str]:
    """This release's head revisions: read once, since /readyz asks on every probe."""
    return frozenset(_scripts().get_heads())


@functools.cache
def _known() -> frozenset[str]:
    return frozenset(script.revision for script in _scripts().walk_revisions())


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def _config() -> Config:
    if not MIGRATIONS.is_dir():
        raise RuntimeError(f"migrations not found at {MIGRATIONS}: install with `pip install -e .`")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config
