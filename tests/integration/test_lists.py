"""A list parameter (``coalition.db.lists.among``) selects the rows whose column is one of
its values, on either database: an array on PostgreSQL, an expanded IN elsewhere.

Checked against Python's own ``in`` for text ids (members) and BIGINT ids
beyond 32 bits (transactions), with no value, one, and more values than a
page of the listing sends; a value longer than the column names no row (a
cast to the column's type would cut it to one that does); statements that
differ only in the column or the parameter's name are compiled apart (each
is cached by SQLAlchemy). Each test's rows are rolled back.
"""

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from coalition.db import models
from coalition.db.lists import among
from coalition.db.writes import Writes
from tests.integration.test_writes import transaction_columns

AT = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
WIDEST = "x" * 128  # members.id is VARCHAR(128)
MEMBERS = ["card-1", "Card-1", "card-10", "карта-7", "+447700900123", "m'quote", WIDEST]
BIG = 2**40  # ids past 32 bits, as a ledger's may grow


@pytest.fixture
def connection(database):
    with database.engine.connect() as connection:
        transaction = connection.begin()
        try:
            Writes(connection).insert(
                models.Member.__table__, {"id": MEMBERS, "created_at": [AT] * len(MEMBERS)}
            ).run()
            yield connection
        finally:
            transaction.rollback()


def _members(connection, wanted: list[str]) -> list[str]:
    query = select(models.Member.id).where(among(models.Member.id, "ids"))
    return sorted(connection.scalars(query, {"ids": wanted}))


@pytest.mark.parametrize(
    "wanted",
    [[], ["card-1"], ["card-1", "карта-7", "+447700900123", "m'quote"], ["CARD-1", "card"]],
    ids=["none", "one", "several", "none of them: no case folding, no prefixes"],
)
def test_text_ids_select_exactly_the_rows_named(connection, wanted):
    assert _members(connection, wanted) == sorted(m for m in MEMBERS if m in wanted)


def test_a_value_longer_than_the_column_names_no_row(connection):
    assert _members(connection, [WIDEST + "y"]) == []
    assert _members(connection, [WIDEST + "y", WIDEST]) == [WIDEST]


def test_the_list_alone_names_the_table_it_reads(connection):
    query = select(func.count()).where(among(models.Member.id, "ids"))
    assert connection.scalar(query, {"ids": ["card-1", "card-10", "card-2"]}) == 2


def _posted(connection, points: list[int]) -> list[int]:
    """Transactions of these points, with ids past 32 bits; their ids."""
    ids = [BIG + 3 * n for n in range(len(points))]
    columns = transaction_columns(ids, member_id="card-1") | {"points": points}
    Writes(connection).insert(models.Transaction.__table__, columns).run()
    return ids


def test_bigint_ids_select_exactly_the_rows_named_from_a_list_longer_than_a_page(connection):
    ids = _posted(connection, [5] * 10)
    wanted = [BIG + n for n in range(-1000, 1500, 2)]  # 1,250 values, the odd ones absent
    query = select(models.Transaction.id).where(among(models.Transaction.id, "ids"))
    assert sorted(connection.scalars(query, {"ids": wanted})) == [i for i in ids if i in wanted]


def test_statements_that_differ_in_the_column_or_the_name_alone_are_not_confused(connection):
    T = models.Transaction
    ids = _posted(connection, [1, 2, 3])
    by_id = select(T.id).where(among(T.id, "values"))
    by_points = select(T.id).where(among(T.points, "values"))
    assert list(connection.scalars(by_id, {"values": [2, 3, ids[0]]})) == [ids[0]]
    assert sorted(connection.scalars(by_points, {"values": [2, 3, ids[0]]})) == ids[1:]
    lists = {"first": [ids[0]], "second": [ids[2]]}
    assert list(connection.scalars(select(T.id).where(among(T.id, "first")), lists)) == [ids[0]]
    assert list(connection.scalars(select(T.id).where(among(T.id, "second")), lists)) == [ids[2]]
