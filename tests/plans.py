"""The plan PostgreSQL makes for a statement as the service sends it, once prepared.

psycopg prepares a statement after it has run a few times on a connection, and
PostgreSQL may then plan it once for any parameters (a generic plan): one that
a partial index serves only for some values of a parameter cannot use that
index. A test holds the service's hot statements to their indexes in that plan.
"""

from contextlib import contextmanager

from psycopg.sql import Literal
from sqlalchemy import event


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


def _nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)
