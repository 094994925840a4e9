"""More values than the database binds in one statement are the code's error, on the
real driver: PostgreSQL's protocol carries at most 65,535 a statement, this SQLite build
its own limit (Debian's 250,000). The unit of work fails with the driver's error, not
:class:`~coalition.db.Unavailable` (a 503 telling the caller to try again, which would
fail the same), and the database goes on serving."""

import sqlite3

import pytest
from sqlalchemy import bindparam, text
from sqlalchemy.exc import OperationalError

from coalition.db import Unavailable

ONE_IN = text("SELECT 1 WHERE 0 IN :values").bindparams(bindparam("values", expanding=True))


def most_values(dialect: str) -> int:
    if dialect == "postgresql":
        return 65535
    return sqlite3.connect(":memory:").getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)


def test_a_statement_of_more_values_than_the_database_binds_fails_as_the_codes_error(database):
    most = most_values(database.engine.dialect.name)
    with pytest.raises(OperationalError) as raised, database.transaction() as session:
        session.execute(ONE_IN, {"values": list(range(most + 1))})
    assert not isinstance(raised.value, Unavailable)
    with database.transaction() as session:  # as many as it binds: served, on the same pool
        assert session.execute(ONE_IN, {"values": list(range(most))}).scalar() == 1
