"""A list parameter: ``column IN (…)`` of however many values a statement gets.

SQLAlchemy expands a list into one bound parameter per value, each adapted
on its own: a page's 1,000 ids cost more to send than to look up. On
PostgreSQL the list goes as one array instead, ``column = ANY(:list)``,
which finds the same rows through the same index (a page of the listing's
allocations read in 1.7 ms instead of 5.7, performance-log.md); other
databases keep the expanded ``IN``. A statement built with it is compiled
once per dialect and cached like any other.
"""

from typing import ClassVar

from sqlalchemy import Boolean, String, any_, bindparam, tuple_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import coercions, roles
from sqlalchemy.sql.expression import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal


def among(column, name: str) -> "_Among":
    """``column`` is one of the values bound, as a list, to the parameter ``name``."""
    return _Among(column, name)


class _Among(ColumnElement):
    inherit_cache = True
    type = Boolean()
    _is_implicitly_boolean = True  # a comparison: no "= 1" after it where booleans are integers
    # what the compiled statement depends on, so that SQLAlchemy's cache tells them apart
    _traverse_internals: ClassVar = [
        ("column", InternalTraversal.dp_clauseelement),
        ("name", InternalTraversal.dp_string),
    ]

    def __init__(self, column, name: str):
        self.column = coercions.expect(roles.ExpressionElementRole, column)
        self.name = name

    @property
    def _from_objects(self):
        """The column's table, for a statement that names it nowhere else."""
        return self.column._from_objects


@compiles(_Among)
def _expanded(element: _Among, compiler, **kw) -> str:
    return compiler.process(element.column.in_(bindparam(element.name, expanding=True)), **kw)


@compiles(_Among, "postgresql")
def _array(element: _Among, compiler, **kw) -> str:
    values = bindparam(element.name, type_=ARRAY(_unbounded(element.column.type)))
    return compiler.process(element.column == any_(values), **kw)


def _unbounded(column_type):
    """The column's type without a length: a cast to ``VARCHAR(n)`` would cut a longer
    value to one the column holds, and find a row the value does not name."""
    return String() if isinstance(column_type, String) else column_type


def among_pairs(first, second, name: str) -> "_AmongPairs":
    """``(first, second)`` is one of the pairs bound, as a list, to the parameter
    ``name``; bind it with :func:`pairs`."""
    return _AmongPairs(first, second, name)


def pairs(name: str, values) -> dict:
    """The parameters of :func:`among_pairs`: the pairs, and each side's values apart."""
    values = sorted(values)
    return {
        name: values,
        f"{name}_first": sorted({first for first, _ in values}),
        f"{name}_second": sorted({second for _, second in values}),
    }


class _AmongPairs(ColumnElement):
    inherit_cache = True
    type = Boolean()
    _is_implicitly_boolean = True
    _traverse_internals: ClassVar = [
        ("first", InternalTraversal.dp_clauseelement),
        ("second", InternalTraversal.dp_clauseelement),
        ("name", InternalTraversal.dp_string),
    ]

    def __init__(self, first, second, name: str):
        self.first = coercions.expect(roles.ExpressionElementRole, first)
        self.second = coercions.expect(roles.ExpressionElementRole, second)
        self.name = name

    @property
    def _from_objects(self):
        return self.first._from_objects


def _pairs_in(element: _AmongPairs):
    return tuple_(element.first, element.second).in_(bindparam(element.name, expanding=True))


@compiles(_AmongPairs)
def _pairs_expanded(element: _AmongPairs, compiler, **kw) -> str:
    return compiler.process(_pairs_in(element), **kw)


@compiles(_AmongPairs, "sqlite")
def _pairs_searched(element: _AmongPairs, compiler, **kw) -> str:
    """SQLite (3.40) reads a list of two pairs or more by scanning the table, not by the
    index on both columns ("SCAN transactions"), so every chunk of a batch or an import
    read every transaction of the ledger to find the few posted under its keys, and
    ingest slowed as the file grew. Each side among its own values lets it search that
    index, once for each combination of the two (a chunk of 100 items at 20 partners:
    at most 2,000 searches, whatever the ledger holds), and the pairs
    then keep only the rows asked for."""
    sides = element.first.in_(
        bindparam(f"{element.name}_first", expanding=True)
    ) & element.second.in_(bindparam(f"{element.name}_second", expanding=True))
    return compiler.process(sides & _pairs_in(element), **kw)
