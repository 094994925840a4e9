"""The rows one unit of work writes, sent to the database together.

A unit of work of the ledger (a chunk of postings, an expiry batch) makes up
to seven writes to six tables: it inserts members, transactions, lots,
allocations and the two period totals, and updates the lots it spends from.
Sent one by one, each costs a round trip, and on a small machine a round trip
costs more CPU, in the driver, the server and the kernel, than the work it
carries.
On PostgreSQL :class:`Writes` sends them all as one statement, each insert or
update a data-modifying ``WITH`` query; foreign keys are checked when the
statement ends, so a row may name another inserted beside it. Each table's
rows go as arrays that ``unnest`` turns back into rows, so the server parses
and plans once whatever their number. The arrays travel in PostgreSQL's
binary format (psycopg's ``%b``; one of NULLs only, or empty, goes as text):
for a chunk of 100 rows the driver encodes them three times faster than as
text, and the server need not parse them. The SQL goes to psycopg as it is,
so a literal ``%`` in it would have to be written ``%%``.
SQLite, in process, runs the writes one by one in the order given, each an
executemany.

Either way every value goes through its column's type first (UTC instants,
exact decimals), and what a column refuses is refused, not cut.
"""

import functools
import re
from dataclasses import dataclass

from sqlalchemy import bindparam, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.types import TypeDecorator

from coalition.db import on_postgresql

PARAMETERS = re.compile(r"\(.*?\)")  # a SQL type's length, precision and scale


@dataclass(frozen=True)
class Accumulate:
    """On a key that exists, add the new row's ``fields`` to the existing row's.

    ``key`` names the unique index the rows collide on, in SQL (an index on
    an expression is named by the expression).
    """

    key: tuple[str, ...]
    fields: tuple[str, ...]

    def clause(self, table) -> str:
        added = ", ".join(
            f"{field} = {table.name}.{field} + excluded.{field}" for field in self.fields
        )
        return f" ON CONFLICT ({', '.join(self.key)}) DO UPDATE SET {added}"


SKIP_EXISTING = " ON CONFLICT DO NOTHING"


class Writes:
    """Inserts and updates queued in order, then run as one statement (PostgreSQL)
    or one after the other (SQLite) by :meth:`run`."""

    def __init__(self, connection):
        self.connection = connection
        self.postgresql = on_postgresql(connection)
        self.parts: list[tuple[str, dict]] = []  # PostgreSQL: SQL and its parameters
        self.steps: list[tuple[object, list[dict]]] = []  # SQLite: statement, rows

    def insert(self, table, columns: dict[str, list], conflict: Accumulate | str = "") -> "Writes":
        """Rows given column by column (equal lists, one per named column of ``table``).

        ``conflict`` is :data:`SKIP_EXISTING` to leave rows whose key exists
        alone, or an :class:`Accumulate`.
        """
        if not any(columns.values()):
            return self
        clause = conflict.clause(table) if isinstance(conflict, Accumulate) else conflict
        names = tuple(columns)
        if self.postgresql:
            prefix = self._prefix()
            self.parts.append(
                (_unnest_insert(table, names, clause, prefix), self._arrays(table, prefix, columns))
            )
        else:
            rows = [dict(zip(names, row)) for row in zip(*columns.values())]
            self.steps.append((_values_insert(table, names, clause), rows))
        return self

    def update(self, table, column: str, ids: list[int], values: list) -> "Writes":
        """Set ``column`` of the rows with these ids to these values."""
        if not ids:
            return self
        if self.postgresql:
            prefix = self._prefix()
            arrays = self._arrays(table, prefix, {"id": ids, column: values})
            self.parts.append((_unnest_update(table, column, prefix), arrays))
        else:
            rows = [
                {"row_id": row_id, "value": value}
                for row_id, value in zip(ids, values, strict=True)
            ]
            self.steps.append((_values_update(table, column), rows))
        return self

    def _prefix(self) -> str:
        """The next part's parameter prefix: each WITH query's arrays have names of their own."""
        return f"w{len(self.parts)}_"

    def _arrays(self, table, prefix: str, columns: dict[str, list]) -> dict[str, list]:
        dialect = self.connection.dialect
        return {
            prefix + name: _bound(table.c[name].type, values, dialect)
            for name, values in columns.items()
        }

    def run(self) -> None:
        """Send what was queued; nothing when nothing was."""
        if self.postgresql and self.parts:
            sql = _with_queries(tuple(sql for sql, _ in self.parts))
            self.connection.exec_driver_sql(
                sql, {k: v for _, bound in self.parts for k, v in bound.items()}
            )
        for statement, rows in self.steps:
            self.connection.execute(statement, rows)
        self.parts, self.steps = [], []


def _bound(column_type, values: list, dialect) -> list:
    if not isinstance(column_type, TypeDecorator):
        return values
    return [column_type.process_bind_param(value, dialect) for value in values]


def _bare_type(column_type) -> str:
    """The column's SQL type without length, precision or scale: an explicit cast
    to VARCHAR(n) would cut a string silently where the INSERT refuses it
    (NUMERIC(p, s) rounds either way; amounts are checked against their
    currency before)."""
    return PARAMETERS.sub("", column_type.compile(postgresql.dialect()))


@functools.cache
def _unnest_insert(table, names: tuple[str, ...], clause: str, prefix: str) -> str:
    arrays = ", ".join(
        f"CAST(%({prefix}{name})b AS {_bare_type(table.c[name].type)}[])" for name in names
    )
    return f"INSERT INTO {table.name} ({', '.join(names)}) SELECT * FROM unnest({arrays}){clause}"


@functools.cache
def _unnest_update(table, column: str, prefix: str) -> str:
    return (
        f"UPDATE {table.name} SET {column} = changed.value"
        f" FROM unnest(CAST(%({prefix}id)b AS bigint[]),"
        f" CAST(%({prefix}{column})b AS {_bare_type(table.c[column].type)}[]))"
        f" AS changed(id, value) WHERE {table.name}.id = changed.id"
    )


@functools.cache
def _values_insert(table, names: tuple[str, ...], clause: str):
    values = ", ".join(f":{name}" for name in names)
    statement = text(f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({values}){clause}")
    return statement.bindparams(*(bindparam(name, type_=table.c[name].type) for name in names))


@functools.cache
def _values_update(table, column: str):
    # parameters named apart from the columns: SQLAlchemy reserves a SET column's name
    return (
        table.update().where(table.c.id == bindparam("row_id")).values({column: bindparam("value")})
    )


@functools.lru_cache(maxsize=256)
def _with_queries(parts: tuple[str, ...]):
    """One statement of these writes: all but the last as WITH queries."""
    *first, last = parts
    queries = ", ".join(f"w{index} AS ({sql})" for index, sql in enumerate(first))
    return f"WITH {queries} {last}" if first else last
