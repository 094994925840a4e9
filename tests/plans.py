"""The plan PostgreSQL makes for a statement as the service sends it, once prepared.

psycopg prepares a statement after it has run a few times on a connection, and
PostgreSQL may then plan it once for any parameters (a generic plan): one that
a partial index serves only for some values of a parameter cannot use that
index. A test holds the service's hot statements to their indexes in that plan.
"""

from contextlib import contextmanager

from psycopg.sql import Literal
from sqlalchemy import event, text


@contextmanager
def sent(target):
    """The statements ``target`` (an engine or a connection) sends meanwhile, each with
    its parameters, as psycopg receives them."""
    statements = []

    def capture(connection, cursor, statement, parameters, context, executemany):
        statements.append((statement, parameters))

    event.listen(target, "before_cursor_execute", capture)
    try:
        yield statements
    finally:
        event.remove(target, "before_cursor_execute", capture)


@contextmanager
def values_bound(target):
    """The most values each statement ``target`` sends meanwhile binds at once: all of
    a single execution's, one row's of an executemany. A database refuses a statement
    past a number of them (PostgreSQL 65,535; SQLite, as Debian builds it, 250,000)."""
    most = []

    def capture(connection, cursor, statement, parameters, context, executemany):
        rows = parameters if executemany else [parameters]
        most.append(max((len(row or ()) for row in rows), default=0))

    event.listen(target, "before_cursor_execute", capture)
    try:
        yield most
    finally:
        event.remove(target, "before_cursor_execute", capture)


def read_so_far(connection, table: str) -> int:
    """Rows of ``table`` the current transaction has read so far, by any scan: what a
    statement or a commit-time check costs, whatever plan PostgreSQL chose for it."""
    return connection.execute(
        text(
            "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)"
            " FROM pg_stat_xact_user_tables WHERE relid = CAST(:table AS regclass)"
        ),
        {"table": table},
    ).scalar_one()


def analyze_a_ledger_of_many_members(connection, members: int = 200, each: int = 15) -> None:
    """Add to the caller's transaction a ledger of ``members`` members, ``each``
    transactions apiece (a third burns, each taking 5 points from the lot before
    it; the rest bonuses, each with its lot), numbered from 1,001, clear of the
    test's own rows, and a return of every fifth member after them; then ANALYZE it.

    The statistics roll back with the transaction. What a plan test needs is the
    shape of a real ledger: the statistics autovacuum keeps from earlier tests (a
    few members or lots owning most rows) can make a full scan of another index the
    cheaper plan, and did fail CI.
    """
    rows = members * each
    connection.exec_driver_sql(
        f"""
        INSERT INTO members (id, created_at)
        SELECT 'm-many-' || n, now() FROM generate_series(1, {members}) AS n;
        INSERT INTO transactions (id, partner_id, external_id, type, member_id, occurred_at,
                                  recorded_at, points, shortfall_points, rate_ids, period_id,
                                  late, request_hash)
        SELECT 1000 + n, 'coalition', 'many-' || n,
               CASE WHEN mod(n, 3) = 0 THEN 'burn' ELSE 'bonus' END,
               'm-many-' || (mod(n, {members}) + 1), now(), now(),
               CASE WHEN mod(n, 3) = 0 THEN -5 ELSE 10 END, 0, '[]', '2026-06', false, ''
        FROM generate_series(1, {rows}) AS n;
        INSERT INTO lots (id, transaction_id, member_id, issuer_id, points, remaining,
                          earned_at, available_at, expires_at)
        SELECT 1000 + n, 1000 + n, 'm-many-' || (mod(n, {members}) + 1), 'coalition', 10,
               CASE WHEN mod(n, 3) = 2 THEN 5 ELSE 10 END,
               now(), now(), now() + interval '1 year'
        FROM generate_series(1, {rows}) AS n WHERE mod(n, 3) <> 0;
        INSERT INTO allocations (id, transaction_id, type, lot_id, issuer_id, redeemer_id,
                                 points, period_id)
        SELECT 1000 + n, 1000 + n, 'burn', 1000 + n - 1, 'coalition', 'coalition', -5, '2026-06'
        FROM generate_series(1, {rows}) AS n WHERE mod(n, 3) = 0;
        INSERT INTO transactions (id, partner_id, external_id, type, member_id, occurred_at,
                                  recorded_at, points, shortfall_points, rate_ids, period_id,
                                  late, request_hash)
        SELECT 1000 + {rows} + n, 'coalition', 'many-return-' || n, 'earn_reversal',
               'm-many-' || n, now(), now(), -2, 0, '[]', '2026-06', false, ''
        FROM generate_series(1, {members}, 5) AS n;
        ANALYZE members, transactions, lots, allocations
        """
    )


def generic_plan(connection, statement: str, parameters: dict, analyze: bool = False) -> dict:
    """The generic plan (EXPLAIN FORMAT JSON's top node) of a statement captured as
    psycopg receives it (``%(name)s`` placeholders), on a SQLAlchemy connection in a
    transaction the caller rolls back; run, with what each node read, if ``analyze``."""
    names = list(parameters)
    for number, name in enumerate(names, start=1):
        statement = statement.replace(f"%({name})s", f"${number}")
    driver = connection.connection.driver_connection
    values = ", ".join(Literal(parameters[name]).as_string(driver) for name in names)
    try:
        connection.exec_driver_sql(f"PREPARE probe AS {statement}")
        connection.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
        (plan,) = connection.exec_driver_sql(
            f"EXPLAIN ({'ANALYZE, ' if analyze else ''}FORMAT JSON) EXECUTE probe"
            + (f"({values})" if names else "")
        ).scalar_one()
        connection.exec_driver_sql("DEALLOCATE probe")
    except BaseException:
        connection.invalidate()  # PREPARE outlives the transaction: keep it out of the pool
        raise
    return plan["Plan"]


def scans(plan: dict):
    """(node type, relation, index) of every scan in a plan; index None for a scan of
    the table itself, relation None for a bitmap's index scan."""
    for node in _nodes(plan):
        if "Relation Name" in node or "Index Name" in node:
            yield node["Node Type"], node.get("Relation Name"), node.get("Index Name")


def rows_read(plan: dict, relation: str) -> int:
    """The rows an analyzed plan's scans of ``relation`` read: those they returned and
    those their filters removed (both counted per loop)."""
    return sum(
        (node["Actual Rows"] + node.get("Rows Removed by Filter", 0)) * node["Actual Loops"]
        for node in _nodes(plan)
        if node.get("Relation Name") == relation
    )


def rows_handled(plan: dict) -> int:
    """The rows an analyzed plan's nodes returned and those their filters, a join's
    included, removed (each counted per loop): the rows it went through, whatever shape
    PostgreSQL gave it (a join of ranges, say, with its inner side read once and kept)."""
    return sum(
        (
            node["Actual Rows"]
            + node.get("Rows Removed by Filter", 0)
            + node.get("Rows Removed by Join Filter", 0)
        )
        * node["Actual Loops"]
        for node in _nodes(plan)
    )


def _nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)
