"""PostgreSQL advisory locks: every id the service locks, in one 64-bit space.

- :data:`CALENDAR`, the settlement calendar: postings hold it shared, a
  close and a change postings depend on (a new rate among them) hold it
  exclusively
  (:func:`coalition.services.calendar.lock_calendar`);
- one per idempotency key, ``hashtextextended(key, 0)`` of
  :func:`idempotency_key`: a posting holds its key's until it commits, so a
  concurrent retry waits for it and answers as a replay
  (:mod:`coalition.services.book`);
- one per scheduled job (:data:`JOBS`), held by the one instance running it
  (:mod:`coalition.jobs`);
- :data:`MIGRATIONS`, held by the one process upgrading the schema
  (:func:`coalition.db.migrate.upgrade`);
- :data:`KPI_COUNTING`, held by the request counting anew an open period's
  KPIs kept too long, so that others read the last count meanwhile
  (:mod:`coalition.services.kpi_counts`).

The fixed ids read as ASCII ("Coal"; "Co" and a number). A key whose hash
met one of them (odds of four in 2⁶⁴ for each key) would make its postings
wait for a close, a job or an upgrade to end, and no more.
"""

from datetime import UTC, datetime

from sqlalchemy import text

CALENDAR = 0x436F616C  # "Coal"
JOBS = {"expiry": 0x436F0001, "auto-close": 0x436F0002}
MIGRATIONS = 0x436F0003
KPI_COUNTING = 0x436F0004


def idempotency_key(partner_id: str, external_id: str) -> str:
    """The text whose hash is the lock id of ``(partner_id, external_id)``."""
    return f"{partner_id}\x1f{external_id}"


def hold(connection, key: int, shared: bool = False) -> datetime:
    """Wait for ``key`` and hold it until the transaction ends (PostgreSQL only); when it
    was granted, by the database's clock (PostgreSQL evaluates the select list in order)."""
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    statement = text(f"SELECT {function}(:key), clock_timestamp()")
    return connection.execute(statement, {"key": key}).one()[1].astimezone(UTC)


def try_hold_session(connection, key: int) -> bool:
    """Take ``key`` if no one holds it, until :func:`release_session` or the connection
    closes; whether it was taken (PostgreSQL only). For work longer than a transaction
    (a job), on a connection in autocommit, so no transaction stays open while it runs."""
    return connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key})


def release_session(connection, key: int) -> None:
    """Let go of a key taken by :func:`try_hold_session`."""
    connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})


def try_hold(connection, key: int) -> bool:
    """Take ``key`` if no one holds it, until the transaction ends; whether it was taken
    (PostgreSQL only)."""
    return connection.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key}).scalar()
