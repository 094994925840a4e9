"""Schema upgrades through Alembic, the only way the schema is made (SPEC §2)."""

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from coalition.db import (
    SCHEMA_IS_NEWER,
    SCHEMA_IS_OLDER,
    SchemaNotCurrent,
    locks,
    models,
    on_postgresql,
    retried,
)

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def upgrade(database, revision: str = "head") -> frozenset[str]:
    """Bring the database to the newest revision (or to ``revision``); a no-op when it
    is there already. Returns the revisions it was at (none for a new database), read
    under the lock: an instance that waited for another's upgrade finds it done.

    Several instances started at once (``coalition serve`` migrates first)
    upgrade one after the other: on PostgreSQL the first takes a lock in its
    transaction that the others wait for, then they find the schema current.
    Without it the others ran the same DDL beside the first and failed on
    what it created. SQLite's write lock, taken at BEGIN, queues them there.

    An upgrade locks tables that postings in flight (an older instance's)
    write to, and cannot always take them in a posting's order: a statement
    psycopg has prepared locks its main table first, the others after. When
    PostgreSQL ends such a wait both ways by rolling the upgrade back, as a
    deadlock's victim, the upgrade runs again, as a unit of work would.

    An upgrade with work to do holds the settlement calendar's lock, as a
    close does: postings in flight commit before it migrates, and the next
    ones wait for it. One that reaches this release's schema stamps a new
    generation of the reference data in its transaction, so every instance
    reads its catalog afresh on its next request; one of a release before,
    finding the schema past its own there, answers 503 from then on instead
    of writing the way its release did (a migration may change what every
    release must write), without waiting for a load balancer to take it out.
    """
    config = _config()

    def once():
        with database.engine.begin() as connection:
            if on_postgresql(connection):
                # however long the first takes
                connection.exec_driver_sql("SET LOCAL lock_timeout = 0")
                locks.hold(connection, locks.MIGRATIONS)
            context = MigrationContext.configure(connection)
            before = frozenset(context.get_current_heads())
            behind = before != _newest()
            if behind and on_postgresql(connection):
                # no posting runs beside the migrations: those in flight commit first,
                # and those after read the stamp below (services.catalog)
                locks.hold(connection, locks.CALENDAR)
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
            if behind and frozenset(context.get_current_heads()) == _newest():
                # every instance reads its catalog afresh, and one of an older release,
                # finding the schema past its own, stops serving (services.catalog)
                connection.execute(models.new_generation())
        return before

    return retried(once)


VERSIONS = "SELECT version_num FROM alembic_version"


def revisions(database) -> frozenset[str]:
    """The revisions the schema is at, none before the first upgrade: one read outside
    any transaction (a snapshot on SQLite, waiting for no writer), for /readyz to ask
    every few seconds, read once more on a new connection if the pooled one broke
    (:meth:`Database.read`)."""
    try:
        return database.read(
            lambda session: frozenset(session.connection().exec_driver_sql(VERSIONS).scalars())
        )
    except SchemaNotCurrent:  # no versions table: a database no upgrade has touched
        return frozenset()


def mismatch(revisions: frozenset[str]) -> str | None:
    """Why a schema at ``revisions`` is not the one this release writes to; None when it is.

    Not only one behind it: a migration may change what every release must
    write (0004 made each posting count into the period totals, and a
    release before it, still running, would post without counting, so its
    statements would be wrong), so a release on a newer schema must not
    serve either.
    """
    if revisions == _newest():
        return None
    if revisions - _known():
        return SCHEMA_IS_NEWER
    return SCHEMA_IS_OLDER


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
