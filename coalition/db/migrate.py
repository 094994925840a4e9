"""Schema upgrades through Alembic, the only way the schema is made (SPEC §2)."""

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from coalition.db import locks

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def upgrade(database, revision: str = "head") -> None:
    """Bring the database to the newest revision (or to ``revision``); a no-op when it
    is there already.

    Several instances started at once (``coalition serve`` migrates first)
    upgrade one after the other: on PostgreSQL the first takes a lock that
    the others wait for, then they find the schema current. Without it the
    others ran the same DDL beside the first and failed on what it created.
    SQLite's write lock, taken at BEGIN, does the same there.
    """
    config = _config()
    with database.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": locks.MIGRATIONS}
            )
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def is_current(database) -> bool:
    """Whether the database is at the newest revision, so a command may use it as it is."""
    with database.engine.connect() as connection:
        return set(MigrationContext.configure(connection).get_current_heads()) == _newest()


@functools.cache
def _newest() -> set[str]:
    """This release's head revisions: read once, since /readyz asks on every probe."""
    return set(ScriptDirectory.from_config(_config()).get_heads())


def _config() -> Config:
    if not MIGRATIONS.is_dir():
        raise RuntimeError(f"migrations not found at {MIGRATIONS}: install with `pip install -e .`")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config
