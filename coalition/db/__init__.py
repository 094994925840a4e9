"""The database: engine, sessions, one transaction boundary per use case.

:meth:`Database.transaction` is the unit of work: it commits when the block
ends, rolls back on any exception, and :meth:`Database.run` retries the whole
use case when PostgreSQL reports a deadlock or serialization failure (SPEC §6:
such failures are retried, never reported as business errors). A database
that cannot be reached, or whose connection breaks, is :class:`Unavailable`
instead: no fault of the request, and not retried, since a commit that broke
may have been written (a read, which writes nothing, and a unit of work the
caller declares repeatable are tried twice).

A unit of work waits for another's locks at most :data:`LOCK_WAIT_MS`: on
SQLite (the embedded default), which serialises writers, every transaction
that writes starts with ``BEGIN IMMEDIATE`` and waits that long on its busy
timeout (one that reads, :meth:`Database.run_reading`, reads a snapshot and
waits for no writer); on
PostgreSQL that is every session's ``lock_timeout``, unless the operator set
one. One still waiting when it runs out (behind a close of years of periods)
finds the database :class:`Busy`: a 503 to ask again, where an unbounded wait
would hold a thread per request until every thread of the service was waiting.
"""

import os
import sqlite3
import time
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit
from urllib.request import pathname2url

from sqlalchemy import bindparam, create_engine, event, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from coalition.db.outages import (
    SCHEMA_IS_NEWER,
    SCHEMA_IS_OLDER,
    Busy,
    Damaged,
    IndexDamaged,
    SchemaNotCurrent,
    TakesNoWrites,
    Unavailable,
    busy,
    damaged,
    first_line,
    is_unavailable,
    reaching,
    sqlite_code,
    sqlstate,
    takes_no_writes,
    twice_if_unavailable,
    unwritable,
)

RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization_failure, deadlock_detected
MAX_ATTEMPTS = 8
CONNECT_TIMEOUT_SECONDS = 10
LOCK_WAIT_MS = 30_000
# what a SQLite -wal file is cut back to once its frames are all in the database: a long
# read lets it grow past that under posting, and SQLite keeps the file at its largest
WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024
READS_ONLY = "coalition_reads_only"  # a connection's execution option: see _sqlite_begin
OPENED_READ_ONLY = "coalition_opened_read_only"  # a connection's info: see _sqlite_opened_anew
IMMUTABLE = "immutable=1"  # a URI's option: see Database.read_as_immutable


def _sqlite_begin(engine) -> None:
    """Take SQLite's write lock at BEGIN, so two writers queue instead of deadlocking; a
    unit of work that reads begins deferred instead, reading a snapshot of the WAL, so
    that it neither waits for a writer nor keeps one waiting."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA foreign_keys = ON")
        dbapi_connection.execute("PRAGMA journal_mode = WAL")
        dbapi_connection.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT_BYTES}")
        dbapi_connection.execute(f"PRAGMA busy_timeout = {LOCK_WAIT_MS}")

    @event.listens_for(engine, "begin")
    def _begin(connection):
        reads = connection.get_execution_options().get(READS_ONLY, False)
        connection.exec_driver_sql("BEGIN" if reads else "BEGIN IMMEDIATE")


def _sqlite_file_of_its_owner(engine, opened: list) -> None:
    """Create a new database file readable and writable by its owner alone (0600), where
    the umask would leave it readable by every local user: it holds every member's
    movements. SQLite gives the file's ``-wal`` and ``-shm`` the file's own mode.

    Once the engine has opened its file, it opens that file again only if it is there
    (SQLite's ``mode=rw``): a file removed under a running service is not made again,
    empty, by the next connection, where `coalition db upgrade` would then have made a
    new coalition in it. The service answers 503 until its file is back. ``opened``: the
    URI option SQLite opens the file with from then on (``mode=rw``), set once a
    connection has opened the file, or from the start for a process that serves a file
    made before it (:meth:`Database.open_only_where_it_is`) or a command that reads a
    file kept read-only (:meth:`Database.read_as_immutable`).
    """

    @event.listens_for(engine, "do_connect")
    def _create(_dialect, _record, cargs, cparams):
        path = cargs[0] if cargs else cparams.get("database")
        if cparams.get("uri"):  # a file: URI's options are its own, but for a read as immutable
            if opened == [IMMUTABLE]:  # after them: SQLite reads an option's first value
                cargs[:] = [f"{path}{'&' if '?' in path else '?'}{IMMUTABLE}"]
            return
        if path in (None, "", ":memory:"):
            return
        if opened:
            cargs[:] = [f"file:{pathname2url(os.path.abspath(path))}?{opened[0]}"]
            cparams["uri"] = True
            return
        with suppress(OSError):  # there already, or not to be made: SQLite says which
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))

    @event.listens_for(engine, "connect")
    def _opened(_dbapi_connection, _record):
        opened[:] = opened or ["mode=rw"]


def _sqlite_opened_anew(engine) -> None:
    """Open the file again for the next unit of work once a write on a connection is refused
    as read-only (SQLITE_READONLY): SQLite opens a file it may not write read-only, and the
    connection stays so, every write on it refused, after the file may be written again
    (its mode, its mount put right), until the pool recycled it an hour on, while
    :meth:`Database.read_only` said it took writes. A posting refused so runs once more
    (:meth:`Database.run_repeatable`) on the file opened anew. Not in the unit of work it
    was refused in: a KPI request that read goes on reading on its connection."""

    @event.listens_for(engine, "handle_error")
    def _refused(context):
        error = context.sqlalchemy_exception  # None for an error not the driver's
        if (
            context.connection is not None
            and isinstance(error, DBAPIError)
            and sqlite_code(error) == sqlite3.SQLITE_READONLY
        ):
            context.connection.info[OPENED_READ_ONLY] = True

    @event.listens_for(engine, "checkout")
    def _checkout(_dbapi_connection, record, _proxy):
        if record.info.pop(OPENED_READ_ONLY, False):
            raise DisconnectionError("a connection that refused a write as read-only")


def _postgresql_session(engine) -> None:
    """Open every session in UTC, whatever the server's or the URL's settings say, and
    waiting for locks at most :data:`LOCK_WAIT_MS` unless they set a limit.

    psycopg reads instants in the session's time zone, where one near the ends
    of the calendar may not exist: west of UTC, a rate in force from the first
    instant of year 1 could not be read back, nor with it the rate catalogue.
    Set once per connection, so the URL's own ``options`` still apply.
    """

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        dbapi_connection.execute("SET TIME ZONE 'UTC'")
        dbapi_connection.execute(
            "SELECT set_config('lock_timeout', %s, false) "
            "WHERE current_setting('lock_timeout') = '0'",
            (f"{LOCK_WAIT_MS}ms",),
        )
        dbapi_connection.commit()


def is_retryable(error: DBAPIError) -> bool:
    return sqlstate(error) in RETRYABLE_SQLSTATES


def retried(transaction):
    """``transaction()``, a function that runs one database transaction, run again
    (after a short, growing pause) while PostgreSQL makes it a deadlock's victim or
    refuses to serialise it: it was rolled back whole, so it may simply run again."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            return transaction()
        except DBAPIError as error:
            if attempt == MAX_ATTEMPTS or not is_retryable(error):
                raise
            time.sleep(0.005 * 2**attempt)
    raise AssertionError("unreachable")


def on_postgresql(bind) -> bool:
    """Whether an engine, connection or session is PostgreSQL's, else SQLite's: the
    one question asked where the two differ (locks, upserts, reads outside a transaction)."""
    return (bind.bind if isinstance(bind, Session) else bind).dialect.name == "postgresql"


def _hosts_in_query(url: str) -> str:
    """``url`` with the hosts of a primary and its standbys, written as libpq and
    PostgreSQL's documentation write them (``postgresql://u@db1:5432,db2:5432/coalition``),
    moved into its query as SQLAlchemy reads them (``?host=db1,db2&port=5432,5432``):
    libpq then connects to the first that answers, or with ``target_session_attrs=
    read-write`` to the primary, the standby once promoted. SQLAlchemy read the comma
    as part of a port, which is not a number; and its ``host=db1:5432`` form splits an
    IPv6 address (``[::1]:5432``) at each colon."""
    parts = urlsplit(url)
    user, at, hosts = parts.netloc.rpartition("@")
    if "," not in hosts:
        return url
    names, ports = zip(*map(_host_and_port, hosts.split(",")), strict=True)
    servers = [f"host={','.join(names)}", *([f"port={','.join(ports)}"] if any(ports) else [])]
    query = "&".join([*servers, *filter(None, [parts.query])])
    return f"{parts.scheme}://{user}{at}{parts.path}?{query}"


def _host_and_port(server: str) -> tuple[str, str]:
    """A host of a libpq URL and its port ('' where it gives none): ``db1:5432``, or an
    IPv6 address in brackets, ``[::1]:5432``."""
    if server.startswith("["):
        host, _, port = server[1:].partition("]")
        return host, port.removeprefix(":")
    host, _, port = server.partition(":")
    return host, port


class Database:
    """An engine and its session factory, built from a URL in ``create_app``."""

    def __init__(self, url: str):
        for scheme in ("postgresql://", "postgres://"):  # the second, as many hosts write it
            if url.startswith(scheme):
                url = "postgresql+psycopg://" + url.removeprefix(scheme)
        url = _hosts_in_query(url)
        parsed = make_url(url)
        if parsed.get_backend_name() not in ("sqlite", "postgresql"):
            # SQLAlchemy would name the driver it lacks (No module named 'MySQLdb')
            raise ValueError(
                f"the service runs on SQLite or PostgreSQL, not {parsed.get_backend_name()}"
            )
        if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() != "psycopg":
            # retries read psycopg's sqlstate, and bulk writes use its binary parameters
            raise ValueError(
                "PostgreSQL is reached through psycopg 3: "
                f"use postgresql://, not {parsed.drivername}://"
            )
        # No pre-ping: it costs a round trip per request; a connection found
        # dead is invalidated by SQLAlchemy on first use and recycled hourly.
        options = {"pool_recycle": 3600}
        if parsed.get_backend_name() == "sqlite":
            options["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            options.update(pool_size=10, max_overflow=20)
            if "connect_timeout" not in parsed.query:
                # a host that drops packets is unavailable in seconds, not the system's minutes
                options["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
        # an error's message leaves out its statement's parameters: logged, they would
        # show members' ids (card and phone hashes) to whoever reads the logs
        self.engine = create_engine(url, hide_parameters=True, **options)
        self._opened = []  # a SQLite file's: see _sqlite_file_of_its_owner
        if on_postgresql(self.engine):
            _postgresql_session(self.engine)
        else:
            _sqlite_file_of_its_owner(self.engine, self._opened)
            _sqlite_opened_anew(self.engine)
            _sqlite_begin(self.engine)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def transaction(self, reads: bool = False):
        """One unit of work: commit at the end of the block, roll back on error. One that
        ``reads`` takes no write lock on SQLite (see :meth:`run_reading`)."""
        with reaching(), self.sessions() as session, session.begin():
            if reads and not on_postgresql(self.engine):
                session.connection(execution_options={READS_ONLY: True})
            yield session

    @contextmanager
    def snapshot(self):
        """A connection that reads the whole database as of one instant, for reads of many
        statements that must agree (a copy, a check) however long they take: SQLite's
        deferred BEGIN reads a snapshot of its WAL, PostgreSQL's REPEATABLE READ likewise,
        read only; neither keeps a posting waiting."""
        if on_postgresql(self.engine):
            options = {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
        else:
            options = {READS_ONLY: True}
        with reaching(), self.engine.connect() as connection:
            connection.execution_options(**options)
            with connection.begin():
                yield connection

    def now(self) -> datetime:
        """Now, by the clock what is stored is dated by: on PostgreSQL the database's,
        the one clock instances on several hosts share; on SQLite this process's, one
        host's (:func:`coalition.services.calendar.dated_once_locked`). A job's run goes
        by it: by its own, an instance whose clock ran ahead expired lots before their
        time, and a burn dated before then found their points gone."""
        if on_postgresql(self.engine):
            return self.peek("SELECT clock_timestamp()").astimezone(UTC)
        return datetime.now(UTC)

    def peek(self, sql: str):
        """One scalar read without a transaction around it where the database allows it.

        On PostgreSQL the read runs in autocommit: a request that only needs to
        know whether what it cached is current saves the BEGIN and COMMIT round
        trips. On SQLite it reads a snapshot, as :meth:`read` does.
        """
        return self.read(lambda session: session.connection().exec_driver_sql(sql).scalar_one())

    def read_only(self) -> bool:
        """Whether the database refuses every write now, asked without writing: a PostgreSQL
        standby, or a database set ``default_transaction_read_only``; a SQLite file its URL
        opens read-only (``mode=ro``, ``immutable``), or one this process may not write (its
        mode, a read-only mount), which SQLite then opens read-only. A disk that is full is
        said by neither: only a write finds it."""
        if on_postgresql(self.engine):
            return self.peek("SELECT current_setting('transaction_read_only')") == "on"
        file = self.peek("SELECT file FROM pragma_database_list WHERE name = 'main'")
        (name, *_), options = self.engine.dialect.create_connect_args(self.engine.url)
        opens = parse_qs(urlsplit(name).query) if options.get("uri") else {}
        return (
            opens.get("mode") == ["ro"]
            or opens.get("immutable", [""])[-1].lower() in ("1", "on", "true", "yes")
            or (bool(file) and not os.access(file, os.W_OK))
        )

    def read(self, use_case, *args, **kwargs):
        """Run ``use_case(session, ...)``, a read of one statement, outside any transaction.

        One statement sees one snapshot, so on PostgreSQL it needs no BEGIN and
        COMMIT around it: two round trips saved on the lookups partners make
        most. A use case that reads more than once belongs in :meth:`run_reading`.
        On SQLite this is :meth:`run_reading`.

        A read changes nothing, so one whose connection turns out broken (the
        server restarted since the pool opened it) is read once more: SQLAlchemy
        has then dropped the pool's old connections, and the request that
        follows is served as if nothing happened.
        """
        if not on_postgresql(self.engine):
            return self.run_reading(use_case, *args, **kwargs)
        return twice_if_unavailable(self._read_once, use_case, *args, **kwargs)

    def _read_once(self, use_case, *args, **kwargs):
        with reaching(), self.sessions() as session:
            session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            return use_case(session, *args, **kwargs)

    def run(self, use_case, *args, **kwargs):
        """Run ``use_case(session, ...)`` in one transaction, retrying deadlocks."""

        def once():
            with self.transaction() as session:
                return use_case(session, *args, **kwargs)

        return retried(once)

    def run_reading(self, use_case, *args, **kwargs):
        """:meth:`run` for a use case that reads: listings, statements, settings; drafts
        and KPIs too on SQLite, where :meth:`run_consistent` reads them through this.

        On SQLite it begins deferred and reads a snapshot of the WAL: readers
        neither wait for the one writer nor hold it up, where ``BEGIN
        IMMEDIATE`` queued every request behind every posting. One that writes
        now and then after all (a KPI request keeping a period's counts) takes
        the write lock at its first write; if another writer holds it, or
        committed since the snapshot began, SQLite refuses that write at once
        (waiting could only end on a stale snapshot), and the use case must
        expect it: a KPI request then answers what it counted and leaves the
        counts to keep for later (:mod:`coalition.services.kpi_counts`). SQLite
        writes a transaction's pages at its commit, so a full disk refuses such a
        write only there: the use case has answered by then, and its answer stands.

        On PostgreSQL it is :meth:`run_repeatable`: a read whose connection
        broke (a restart) is read once more on a new one.
        """
        if on_postgresql(self.engine):
            return self.run_repeatable(use_case, *args, **kwargs)
        answer = unanswered = object()
        try:
            with self.transaction(reads=True) as session:
                answer = use_case(session, *args, **kwargs)
        except TakesNoWrites:
            if answer is unanswered:
                raise
        return answer

    def run_consistent(self, use_case, *args, **kwargs):
        """:meth:`run_reading` for a read whose statements must agree with one another:
        a KPI answer's member counts, points and outstanding points, or a draft
        settlement's points issued, pair lines and outstanding points, read by many
        statements, are the figures of one instant while tills post.

        SQLite's read already is one snapshot. On PostgreSQL it is REPEATABLE READ: at
        READ COMMITTED each statement read the ledger anew, and an answer counted the
        purchases before an earn committed and the points after it. A write that
        another transaction's commit conflicts with (counts another request kept
        meanwhile) is refused to serialise and the read runs again (:func:`retried`).
        Listings are not read so: a page waits for the postings in flight and must
        then see them (:mod:`coalition.db.horizon`).
        """
        if not on_postgresql(self.engine):
            return self.run_reading(use_case, *args, **kwargs)

        def once():
            with self.transaction() as session:
                session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
                return use_case(session, *args, **kwargs)

        return twice_if_unavailable(retried, once)

    def run_repeatable(self, use_case, *args, **kwargs):
        """:meth:`run` for a unit of work that may safely run twice (postings: a second
        run answers what the first committed as replays). One whose connection broke, a
        restart, a failover or a killed backend, is no fault of its own: it runs once
        more, on a new connection."""
        return twice_if_unavailable(self.run, use_case, *args, **kwargs)

    def open_only_where_it_is(self) -> None:
        """Open a SQLite file only where it is from the first connection on, as once one has
        opened it: for a process that serves a file made before it started (a gunicorn
        worker, the scheduler), which a worker booted again, or a scheduler started again,
        while the file is away made anew, empty, where the others answered 503."""
        self._opened[:] = ["mode=rw"]

    def read_as_immutable(self) -> None:
        """Open a SQLite file as SQLite opens one on read-only media (``immutable=1``), for
        a command that reads a file no process writes (a backup): without locks, and
        without the ``-shm`` a file in WAL mode is otherwise read through, which SQLite
        needs even to read and cannot make in a directory this process may not write
        (SQLITE_READONLY_DIRECTORY). It would leave a ``-wal`` or a ``-journal`` beside
        the file unread: the caller opens so only a file with neither. A file named by a
        ``file:`` URI is opened so too, unless the URI says ``immutable`` itself."""
        self._opened[:] = [IMMUTABLE]

    def dispose(self) -> None:
        self.engine.dispose()


def written(name: str, value):
    """``value`` (a tuple: an ``IN`` list) written into the statement, not bound as a parameter.

    psycopg prepares a statement after a few runs, and PostgreSQL may then plan it
    once for any parameters: a partial index whose condition names a constant
    (``remaining > 0``, some types) serves only the values that meet it, which a
    parameter might not. Written in, the value is the plan's own and the index
    can be read. Only for values the code chooses or the API has checked.
    """
    return bindparam(name, value, expanding=isinstance(value, tuple), literal_execute=True)


__all__ = [
    "SCHEMA_IS_NEWER",
    "SCHEMA_IS_OLDER",
    "Busy",
    "Damaged",
    "Database",
    "IndexDamaged",
    "SchemaNotCurrent",
    "TakesNoWrites",
    "Unavailable",
    "busy",
    "damaged",
    "first_line",
    "is_unavailable",
    "on_postgresql",
    "reaching",
    "retried",
    "sqlite_code",
    "takes_no_writes",
    "twice_if_unavailable",
    "unwritable",
    "written",
]
