"""Rows written column by column read back exactly as given, on either database.

``coalition.db.insert_columns`` is how the ledger's book writes its rows: on
PostgreSQL one INSERT over arrays, on SQLite an executemany. Both must store
the same values (exact decimals, aware instants, NULLs), refuse what the
columns refuse instead of truncating it (a string too long, an instant
without a zone), and, when asked, leave existing keys alone. Each test's writes are rolled back.
"""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, StatementError

from coalition.db import insert_columns, models

AT = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)


@pytest.fixture
def connection(database):
    with database.engine.connect() as connection:
        transaction = connection.begin()
        try:
            yield connection
        finally:
            transaction.rollback()


def _transactions(ids, **overrides) -> dict[str, list]:
    row = {
        "partner_id": "coalition",
        "type": "earn",
        "member_id": "m-columns",
        "occurred_at": AT,
        "recorded_at": AT,
        "amount": Decimal("12.3456"),
        "currency": "EUR",
        "category": None,
        "reason": None,
        "points": 25,
        "shortfall_points": 0,
        "original_id": None,
        "rate_ids": "[1, 2]",
        "fee_rate": Decimal("0.001000000001"),
        "period_id": "2026-03",
        "late": True,
        "request_hash": "h",
    } | overrides
    columns = {"id": list(ids), "external_id": [f"col-{id}" for id in ids]}
    return columns | {key: [value] * len(ids) for key, value in row.items()}


def test_rows_read_back_exactly_as_written(connection):
    insert_columns(connection, models.Transaction.__table__, _transactions([9001, 9002]))
    T = models.Transaction.__table__
    rows = connection.execute(select(T).where(T.c.id >= 9001).order_by(T.c.id)).mappings().all()
    assert [row["external_id"] for row in rows] == ["col-9001", "col-9002"]
    for row in rows:
        assert row["amount"] == Decimal("12.3456") and row["fee_rate"] == Decimal("0.001000000001")
        assert row["occurred_at"] == AT and row["occurred_at"].utcoffset().total_seconds() == 0
        assert (row["category"], row["original_id"], row["late"]) == (None, None, True)
        assert (row["points"], row["rate_ids"]) == (25, "[1, 2]")


def test_a_value_too_long_for_its_column_is_refused_not_cut(connection, database):
    if database.engine.dialect.name == "sqlite":
        pytest.skip("SQLite does not enforce VARCHAR lengths")
    with pytest.raises(DBAPIError):
        insert_columns(
            connection, models.Transaction.__table__, _transactions([9003], currency="EURO")
        )


def test_an_instant_without_a_zone_is_refused_on_either_database(connection):
    with pytest.raises((ValueError, StatementError), match="naive datetime"):
        insert_columns(
            connection, models.Transaction.__table__, _transactions([9004], recorded_at=AT.replace(tzinfo=None))
        )


def test_no_rows_write_nothing(connection):
    insert_columns(connection, models.Member.__table__, {"id": [], "created_at": []})
    assert connection.execute(select(models.Member.__table__)).all() == []


def test_skip_existing_leaves_a_present_key_alone(connection):
    members = models.Member.__table__
    insert_columns(connection, members, {"id": ["m-a"], "created_at": [AT]})
    later = datetime(2026, 4, 1, tzinfo=UTC)
    insert_columns(
        connection, members, {"id": ["m-a", "m-b"], "created_at": [later, later]}, skip_existing=True
    )
    found = dict(connection.execute(select(members.c.id, members.c.created_at)).all())
    assert found["m-a"] == AT and found["m-b"] == later
