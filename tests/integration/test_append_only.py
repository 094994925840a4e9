"""The database holds the ledger append-only (migration 0014), and the rate versions
(0020), on PostgreSQL and SQLite.

The code never changes a transaction, an allocation, a final statement, the
record of changes or a rate version, nor a lot but its remaining points, nor a
closed period's settlement. Each statement below would: it must fail, naming
why, and leave the table as it was. What the code does change still goes
through.
"""

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.e2e.settlement_world import small_closed_month

REFUSED = {
    "UPDATE transactions SET points = points": "a transaction is never changed",
    "DELETE FROM transactions WHERE type = 'burn'": "a transaction is never changed",
    "UPDATE allocations SET points = points": "an allocation is never changed",
    "DELETE FROM allocations": "an allocation is never changed",
    "UPDATE lots SET points = points": "a lot changes only in its remaining points",
    "UPDATE lots SET expires_at = expires_at, remaining = remaining": (
        "a lot changes only in its remaining points"
    ),
    "DELETE FROM lots": "a lot changes only in its remaining points",
    "UPDATE periods SET settlement = settlement": "the settlement of a closed period is never changed",
    "DELETE FROM periods": "the settlement of a closed period is never changed",
    "UPDATE statements SET body = body": "a final statement is never changed",
    "DELETE FROM statements": "a final statement is never changed",
    "UPDATE changes SET detail = detail": "the record of changes is never changed",
    "DELETE FROM changes": "the record of changes is never changed",
    "UPDATE rates SET value = value": "a rate version is never changed",
    "DELETE FROM rates": "a rate version is never changed",
}


def _table(statement: str) -> str:
    words = statement.split()
    return words[2] if words[0] == "DELETE" else words[1]


def _rows(database, table: str) -> list:
    with database.engine.connect() as connection:
        return connection.execute(text(f"SELECT * FROM {table} ORDER BY 1")).all()


@pytest.mark.parametrize("statement", list(REFUSED))
def test_the_database_refuses_to_change_what_the_ledger_appends(operator, database, statement):
    small_closed_month(operator)
    table = _table(statement)
    before = _rows(database, table)
    assert before  # the statement would touch rows

    with pytest.raises(DBAPIError) as refused, database.engine.begin() as connection:
        connection.exec_driver_sql(statement)

    assert REFUSED[statement] in str(refused.value)
    assert _rows(database, table) == before


def test_what_the_code_changes_still_goes_through(operator, database):
    """A burn sets its lots' remaining points; a closed period's KPI counts are kept beside it."""
    period_id = small_closed_month(operator)
    with database.engine.begin() as connection:
        spent = connection.exec_driver_sql("UPDATE lots SET remaining = remaining").rowcount
        counted = connection.execute(
            text("INSERT INTO closed_period_counts (period_id, activity) VALUES (:id, '{}')"),
            {"id": period_id},
        ).rowcount
    assert (spent, counted) == (2, 1)  # m1's and m2's lots; the closed month
