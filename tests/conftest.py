"""Fixtures: a migrated database per test (SQLite, or PostgreSQL when configured).

Set ``COALITION_TEST_DATABASE_URL`` to a PostgreSQL URL to run the whole suite
there: the schema is migrated once into a template database and every test
gets a fresh copy of it. Without it every test gets a fresh SQLite file.
"""

import os
import shutil
import sqlite3
import subprocess
import uuid
from pathlib import Path
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from coalition import auth, create_app, database_of
from coalition.db import Database, horizon, migrate, models

POSTGRES_URL = os.environ.get("COALITION_TEST_DATABASE_URL")
if os.environ.get("COALITION_REQUIRE_POSTGRES") and not POSTGRES_URL:
    raise RuntimeError("COALITION_REQUIRE_POSTGRES is set but COALITION_TEST_DATABASE_URL is not")

# Every PostgreSQL session of the tests (and of the servers and commands they start, which
# inherit it) gives up waiting for a lock after a minute. A test thread stuck on a lock that
# something it waits for holds would otherwise hang its worker for good: pytest-timeout
# fails the test, but the thread pool it ran in waits for the thread as it shuts down.
os.environ.setdefault("PGOPTIONS", "-c lock_timeout=60s")


def pytest_configure(config):
    """Keep SQLite test files on tmpfs when there is one: each commit's fsync is then free."""
    shm = Path("/dev/shm")
    if config.option.basetemp is None and shm.is_dir() and os.access(shm, os.W_OK):
        config.option.basetemp = config.coalition_basetemp = shm / f"coalition-pytest-{os.getpid()}"


def pytest_unconfigure(config):
    if getattr(config, "coalition_basetemp", None):
        removed(config.coalition_basetemp)


def removed(basetemp: Path) -> None:
    """Remove the run's own ``basetemp``, and what a test worker killed outright (a crash, the
    out-of-memory killer) left in it that cannot be removed as it is: a directory the
    tests' ``unwritable()`` (tests/e2e/test_sqlite_file_unwritable.py) made immutable (as
    root) or of mode 0555, which stayed behind under /dev/shm, where ``rm -rf`` could not
    remove it either."""
    shutil.rmtree(basetemp, ignore_errors=True)
    if basetemp.exists():
        with suppress(OSError):  # no chattr: unwritable() made nothing immutable then
            subprocess.run(["chattr", "-R", "-i", basetemp], capture_output=True)
        subprocess.run(["chmod", "-R", "u+w", basetemp], capture_output=True)
        shutil.rmtree(basetemp, ignore_errors=True)


# The files that take longest, started first: xdist hands each worker a file at a time,
# and one of these begun last would leave the other workers idle while it runs. (Its
# default order, by number of tests, began them last; pyproject.toml turns it off.)
LONGEST_FILES = (
    "test_ledger_state_machine.py",
    "test_settlement_properties.py",
    "test_cli.py",
    "test_serve.py",
    "test_bench_smoke.py",
    "test_schemathesis.py",
    "test_ledger_model.py",
)


def pytest_collection_modifyitems(config, items):
    """The longest files first; and, as CI runs the suite on SQLite, then on PostgreSQL,
    PostgreSQL-only tests are skipped on SQLite, and the unit tests, which use no
    database, on PostgreSQL."""
    rank = {name: number for number, name in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
    if POSTGRES_URL:
        skip = pytest.mark.skip(reason="uses no database: run with the SQLite suite")
        unit = Path(__file__).parent / "unit"
        skipped = [item for item in items if item.path.is_relative_to(unit)]
    else:
        skip = pytest.mark.skip(reason="needs COALITION_TEST_DATABASE_URL (PostgreSQL)")
        skipped = [item for item in items if "postgres" in item.keywords]
    for item in skipped:
        item.add_marker(skip)


def _admin_engine():
    url = make_url(POSTGRES_URL).set(drivername="postgresql+psycopg", database="postgres")
    return create_engine(url, isolation_level="AUTOCOMMIT")


def kill_sessions(database: str, application_name: str | None = None) -> int:
    """End the client sessions on a PostgreSQL database (those of one application, if
    named), as a server restart or a failover does; how many. Not an autovacuum worker
    that happens to be in the database: the count is the service's sessions."""
    admin = _admin_engine()
    try:
        with admin.connect() as connection:
            return connection.execute(
                text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = :name"
                     " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
                     " AND application_name = coalesce(:application, application_name)"),
                {"name": database, "application": application_name}).scalar_one()
    finally:
        admin.dispose()


@contextmanager
def connections_refused(database: str, application_name: str | None = None):
    """A PostgreSQL database that refuses connections, as a server that is down does,
    its sessions (of one application, if named) killed."""
    admin = _admin_engine()
    with admin.connect() as connection:
        connection.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false'))
    try:
        kill_sessions(database, application_name)
        yield
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true'))
        admin.dispose()


@contextmanager
def held_for_writing(path):
    """A SQLite file another process holds for writing (``BEGIN IMMEDIATE``) until the block
    ends; the connection is yielded, to write what the service must not see meanwhile."""
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        yield holder
    finally:
        holder.execute("ROLLBACK")
        holder.close()


@contextmanager
def read_only(database: str):
    """A PostgreSQL database that takes no writes, as a standby after a failover or one
    set read-only for maintenance; its sessions killed at each change, to take it up."""
    admin = _admin_engine()
    with admin.connect() as connection:
        connection.execute(text(f'ALTER DATABASE "{database}" SET default_transaction_read_only = on'))
    try:
        kill_sessions(database)
        yield
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{database}" RESET default_transaction_read_only'))
        kill_sessions(database)
        admin.dispose()


@pytest.fixture(scope="session")
def template(tmp_path_factory):
    """A migrated database to copy for each test."""
    if POSTGRES_URL:
        name = f"coalition_template_{uuid.uuid4().hex[:8]}"
        admin = _admin_engine()
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(POSTGRES_URL).set(drivername="postgresql+psycopg", database=name)
        database = Database(url.render_as_string(hide_password=False))
        migrate.upgrade(database)
        database.dispose()
        yield name
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    else:
        path = tmp_path_factory.mktemp("template") / "template.sqlite3"
        database = Database(f"sqlite:///{path}")
        migrate.upgrade(database)
        database.dispose()
        yield path


@contextmanager
def _new_postgres_database(prefix: str, template: str | None = None):
    """A PostgreSQL database of its own (a copy of ``template``, if named), its URL; dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = _admin_engine()
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")))
    url = make_url(POSTGRES_URL).set(drivername="postgresql+psycopg", database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def copy_of(template, directory):
    """A fresh database copied from the migrated template; dropped afterwards."""
    if POSTGRES_URL:
        with _new_postgres_database("coalition_test", template) as url:
            yield url
    else:
        path = directory / f"coalition-{uuid.uuid4().hex[:8]}.sqlite3"
        shutil.copy(template, path)
        yield f"sqlite:///{path}"


@contextmanager
def empty_database(directory):
    """A database without any schema yet; dropped afterwards."""
    if POSTGRES_URL:
        with _new_postgres_database("coalition_empty") as url:
            yield url
    else:
        yield f"sqlite:///{directory / f'coalition-{uuid.uuid4().hex[:8]}.sqlite3'}"


@pytest.fixture(scope="session")
def shared_database(template, tmp_path_factory):
    """One database for this test process, reset to the template before each test.

    Copying a database per test costs up to a second on PostgreSQL; emptying
    the tables and putting back the rows the migrations seeded costs
    milliseconds, and lets one app (whose set-up costs 0.1 s) serve every test.
    """
    with copy_of(template, tmp_path_factory.mktemp("shared")) as url:
        engine = create_engine(url)
        tables = list(reversed(models.Base.metadata.sorted_tables))
        with engine.connect() as connection:
            seeded = {table: connection.execute(table.select()).mappings().all() for table in tables}
        yield url, engine, seeded
        engine.dispose()


def _reset(engine, seeded) -> None:
    """Empty every table, then restore the rows the migrations seeded."""
    horizon.forget()  # ids start again from 1
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            names = ", ".join(f'"{table.name}"' for table in seeded)
            connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:  # no TRUNCATE: DELETE, with the append-only triggers (migration 0014) set aside
            triggers = connection.execute(
                text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
            ).all()
            for name, _ in triggers:
                connection.execute(text(f'DROP TRIGGER "{name}"'))
            for table in seeded:
                connection.execute(table.delete())
            for _, sql in triggers:
                connection.exec_driver_sql(sql)
        for table in reversed(list(seeded)):
            if seeded[table]:
                connection.execute(table.insert(), [dict(row) for row in seeded[table]])


@pytest.fixture
def database_url(shared_database):
    url, engine, seeded = shared_database
    _reset(engine, seeded)
    return url


@pytest.fixture
def reset_database(shared_database):
    """Empties the test's database again, for a test that runs many examples of its own
    (the reference model's): milliseconds, where a copy and an app of its own cost
    half a second an example."""
    _, engine, seeded = shared_database
    return lambda: _reset(engine, seeded)


@pytest.fixture(scope="session")
def shared_app(shared_database):
    app = create_app({"DATABASE_URL": shared_database[0], "TESTING": True})
    yield app
    database_of(app).dispose()


@pytest.fixture
def app(database_url, shared_app):
    """The app on a freshly reset database."""
    return shared_app


@pytest.fixture
def database(app):
    return database_of(app)


@pytest.fixture
def client(app):
    return app.test_client()


class Caller:
    """The test client with one key's Authorization header."""

    def __init__(self, client, key: str | None):
        self.client = client
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}

    def __repr__(self) -> str:
        return f"Caller({'with key' if self.headers else 'without key'})"

    def __getattr__(self, method):
        def call(path, **kwargs):
            return getattr(self.client, method)(path, headers=self.headers, **kwargs)

        return call


@pytest.fixture
def make_key(database, client):
    def make(role: str, partner_id: str | None = None) -> Caller:
        _, key = database.run(lambda session: auth.create_key(session, role, partner_id))
        return Caller(client, key)

    return make


@pytest.fixture
def operator(make_key):
    return make_key("operator")


@pytest.fixture
def now():
    return datetime.now(UTC).replace(microsecond=0)


def iso(moment: datetime) -> str:
    return moment.isoformat()


def days_ago(days: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).replace(microsecond=0).isoformat()
