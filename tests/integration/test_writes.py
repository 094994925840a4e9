"""Rows written column by column read back exactly as given, on either database.

``coalition.db.writes.Writes`` is how the ledger's book writes its rows: on
PostgreSQL one statement of INSERTs over arrays, on SQLite an executemany
each. Both must store the same values (exact decimals, aware instants,
NULLs), refuse what the columns refuse instead of truncating it (a string too
long, an instant without a zone, a foreign key to nothing), and, when asked,
leave existing keys alone or add to them. Each test's writes are rolled back.
"""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, StatementError

from coalition.db import Database, models
from coalition.db.writes import SKIP_EXISTING, Accumulate, Writes

AT = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)


def write_rows(connection, table, columns, conflict=""):
    Writes(connection).insert(table, columns, conflict).run()


@pytest.fixture
def connection(database):
    with database.engine.connect() as connection:
        transaction = connection.begin()
        try:
            yield connection
        finally:
            transaction.rollback()


def transaction_columns(ids, **overrides) -> dict[str, list]:
    """Columns of transactions rows with these ids, one value each but the overrides."""
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
        "rate_ids": (1, 2),
        "fee_rate": Decimal("0.001000000001"),
        "period_id": "2026-03",
        "late": True,
        "request_hash": "h",
    } | overrides
    columns = {"id": list(ids), "external_id": [f"col-{id}" for id in ids]}
    return columns | {key: [value] * len(ids) for key, value in row.items()}


def test_rows_read_back_exactly_as_written(connection):
    write_rows(connection, models.Transaction.__table__, transaction_columns([9001, 9002]))
    T = models.Transaction.__table__
    rows = connection.execute(select(T).where(T.c.id >= 9001).order_by(T.c.id)).mappings().all()
    assert [row["external_id"] for row in rows] == ["col-9001", "col-9002"]
    for row in rows:
        assert row["amount"] == Decimal("12.3456") and row["fee_rate"] == Decimal("0.001000000001")
        assert row["occurred_at"] == AT and row["occurred_at"].utcoffset().total_seconds() == 0
        assert (row["category"], row["original_id"], row["late"]) == (None, None, True)
        assert (row["points"], row["rate_ids"]) == (25, (1, 2))


def test_text_that_looks_like_array_syntax_and_columns_mixing_nulls_read_back_as_given(connection):
    """Arrays of strings with quotes, commas, braces or the word NULL, and of values
    beside NULLs, must not be split or read as NULL, in whatever format they travel."""
    texts = ["", "NULL", "a,b", '"', "{x}", "back\\slash", "ünïcode €", None]
    ids = list(range(9101, 9101 + len(texts)))
    columns = transaction_columns(ids)
    columns["category"] = texts
    columns["original_id"] = [None if n % 2 else 9101 for n in range(len(ids))]
    columns["amount"] = [None if n % 3 == 0 else Decimal(n) / 7 for n in range(len(ids))]
    columns["amount"] = [None if value is None else round(value, 4) for value in columns["amount"]]
    write_rows(connection, models.Transaction.__table__, columns)
    T = models.Transaction.__table__
    rows = connection.execute(select(T).where(T.c.id >= 9101).order_by(T.c.id)).mappings().all()
    assert [row["category"] for row in rows] == texts
    assert [row["original_id"] for row in rows] == columns["original_id"]
    assert [row["amount"] for row in rows] == columns["amount"]


def test_postgresql_is_reached_through_psycopg_only():
    """Retries read psycopg's sqlstate and bulk writes use its binary parameters."""
    with pytest.raises(ValueError, match="psycopg 3"):
        Database("postgresql+psycopg2://user@localhost/coalition")


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"], ids=["full", "short"])  # not the marker
def test_a_postgresql_url_as_hosts_write_it_is_reached_through_psycopg(scheme):
    # Heroku and others hand out postgres://, which SQLAlchemy names no dialect for
    database = Database(f"{scheme}://user@localhost/coalition")  # made, not connected
    try:
        assert database.engine.url.drivername == "postgresql+psycopg"
    finally:
        database.dispose()


def test_a_value_too_long_for_its_column_is_refused_not_cut(connection, database):
    if database.engine.dialect.name == "sqlite":
        pytest.skip("SQLite does not enforce VARCHAR lengths")
    with pytest.raises(DBAPIError):
        write_rows(
            connection, models.Transaction.__table__, transaction_columns([9003], currency="EURO")
        )


def test_an_instant_without_a_zone_is_refused_on_either_database(connection):
    with pytest.raises((ValueError, StatementError), match="naive datetime"):
        write_rows(
            connection, models.Transaction.__table__, transaction_columns([9004], recorded_at=AT.replace(tzinfo=None))
        )


def test_no_rows_write_nothing(connection):
    write_rows(connection, models.Member.__table__, {"id": [], "created_at": []})
    assert connection.execute(select(models.Member.__table__)).all() == []


def test_skip_existing_leaves_a_present_key_alone(connection):
    members = models.Member.__table__
    write_rows(connection, members, {"id": ["m-a"], "created_at": [AT]})
    later = datetime(2026, 4, 1, tzinfo=UTC)
    write_rows(
        connection, members, {"id": ["m-a", "m-b"], "created_at": [later, later]}, SKIP_EXISTING
    )
    found = dict(connection.execute(select(members.c.id, members.c.created_at)).all())
    assert found["m-a"] == AT and found["m-b"] == later


def _lots(ids, transaction_ids, member_id="m-columns") -> dict[str, list]:
    row = {
        "member_id": member_id,
        "issuer_id": "coalition",
        "points": 25,
        "remaining": 25,
        "earned_at": AT,
        "available_at": AT,
        "expires_at": datetime(2028, 3, 1, tzinfo=UTC),
    }
    columns = {"id": list(ids), "transaction_id": list(transaction_ids)}
    return columns | {key: [value] * len(ids) for key, value in row.items()}


def test_rows_of_one_run_may_name_each_other_and_an_update_applies(connection):
    writes = Writes(connection)
    writes.insert(models.Member.__table__, {"id": ["m-columns"], "created_at": [AT]})
    writes.insert(models.Transaction.__table__, transaction_columns([9101, 9102]))
    writes.insert(models.Lot.__table__, _lots([9201], [9101]))
    writes.run()
    Writes(connection).insert(models.Lot.__table__, _lots([9202], [9102])).update(
        models.Lot.__table__, "remaining", [9201], [7]
    ).run()
    L = models.Lot.__table__
    found = dict(connection.execute(select(L.c.id, L.c.remaining).where(L.c.id >= 9201)).all())
    assert found == {9201: 7, 9202: 25}


def test_a_row_naming_nothing_is_refused_with_the_rest_of_its_run(connection):
    writes = Writes(connection)
    writes.insert(models.Member.__table__, {"id": ["m-columns"], "created_at": [AT]})
    writes.insert(models.Transaction.__table__, transaction_columns([9301]))
    writes.insert(models.Lot.__table__, _lots([9302], [9301], member_id="m-nobody"))
    with pytest.raises(DBAPIError):
        writes.run()


def test_accumulate_adds_to_the_row_already_there(connection):
    totals = models.PairTotal.__table__
    add = Accumulate(
        key=("period_id", "issuer_id", "redeemer_id", "value_rate", "stripe"), fields=("points",)
    )
    row = {
        "period_id": ["2026-03"],
        "issuer_id": ["coalition"],
        "redeemer_id": ["coalition"],
        "value_rate": [Decimal("0.01")],
        "stripe": [3],
    }
    write_rows(connection, totals, row | {"points": [40]}, add)
    write_rows(connection, totals, row | {"points": [-15]}, add)
    assert connection.execute(select(totals.c.points)).scalars().all() == [25]


def test_ids_already_written_as_json_are_refused_not_written_twice(connection):
    # SQLAlchemy wraps the type's error in a StatementError; PostgreSQL's arrays are bound here
    with pytest.raises((TypeError, StatementError), match="not the text"):
        write_rows(connection, models.Transaction.__table__, transaction_columns([9101], rate_ids="[1, 2]"))
