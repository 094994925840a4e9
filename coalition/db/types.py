"""Column types that keep money exact and instants in UTC on every database.

SQLite has no decimal type (SQLAlchemy would go through float), so Decimal
columns are stored there as text and read back as Decimal; PostgreSQL gets
real NUMERIC. Instants are stored as UTC and always read back timezone-aware.
Lists of ids are JSON text on both, a tuple in Python.
"""

import json
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, DateTime, Integer, Numeric, String, Text
from sqlalchemy.types import TypeDecorator


class ExactDecimal(TypeDecorator):
    """NUMERIC(precision, scale) on PostgreSQL, exact text on SQLite."""

    impl = Numeric
    cache_ok = True

    def __init__(self, precision: int | None, scale: int | None):
        super().__init__(precision=precision, scale=scale, asdecimal=True)

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(64))
        return dialect.type_descriptor(self.impl)

    def process_bind_param(self, value, dialect):
        if value is None or dialect.name != "sqlite":
            return value
        return str(Decimal(value))

    def process_result_value(self, value, dialect):
        return None if value is None else Decimal(value)


def Amount():
    """Money in any ISO 4217 currency (up to 4 decimals)."""
    return ExactDecimal(24, 4)


def RateValue():
    """A rate: points per unit, multipliers, base currency per point or per unit."""
    return ExactDecimal(30, 12)


def AsWritten():
    """A rate, or a threshold's amount, as the operator wrote it: NUMERIC without a fixed
    scale on PostgreSQL, so ``"0.0110"`` reads back with its four decimals and ``"12.5"``
    with its one (SQLite's text keeps them too)."""
    return ExactDecimal(None, None)


def BigId():
    """A key that must not run out: BIGINT on PostgreSQL (a sustained 1,000 ledger
    rows a second would exhaust INTEGER in 25 days), and on SQLite the INTEGER
    that is its 64-bit, self-numbering rowid."""
    return BigInteger().with_variant(Integer, "sqlite")


class UTCDateTime(TypeDecorator):
    """Timezone-aware in Python, UTC in the database."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class IdList(TypeDecorator):
    """Ids in order, as a tuple in Python and JSON text in the database (``"[3, 7]"``): a
    transaction's rates, which no query looks into, readable in either database as written."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if isinstance(value, str):  # JSON written already would be written twice
            raise TypeError(f"ids are a sequence of ints, not the text {value!r}")
        return None if value is None else json.dumps(list(value))

    def process_result_value(self, value, dialect):
        return None if value is None else tuple(json.loads(value))
