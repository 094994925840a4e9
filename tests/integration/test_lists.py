"""A list parameter (``coalition.db.lists.among``) selects the rows whose column is one of
its values, on either database: an array on PostgreSQL, an expanded IN elsewhere.

Checked against Python's own ``in`` for text ids (members) and BIGINT ids
beyond 32 bits (transactions), with no value, one, and more values than a
page of the listing sends. Each test's rows are rolled back.
"""

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from coalition.db import models
from coalition.db.lists import among
from coalition.db.writes import Writes

AT = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
MEMBERS = ["card-1", "Card-1", "card-10", "карта-7", "+447700900123", "m'quote"]
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


def test_bigint_ids_select_exactly_the_rows_named_from_a_list_longer_than_a_page(connection):
    ids = [BIG + n for n in range(0, 30, 3)]
    row = {
        "partner_id": "coalition",
        "type": "bonus",
        "member_id": "card-1",
        "occurred_at": AT,
        "recorded_at": AT,
        "reason": "goodwill",
        "points": 5,
        "shortfall_points": 0,
        "rate_ids": (),
        "period_id": "2026-03",
        "late": False,
        "request_hash": "h",
    }
    columns = {"id": ids, "external_id": [f"list-{id}" for id in ids]}
    Writes(connection).insert(
        models.Transaction.__table__, columns | {key: [value] * len(ids) for key, value in row.items()}
    ).run()
    wanted = [BIG + n for n in range(-1000, 1500, 2)]  # 1,250 values, the odd ones absent
    query = select(models.Transaction.id).where(among(models.Transaction.id, "ids"))
    assert sorted(connection.scalars(query, {"ids": wanted})) == [i for i in ids if i in wanted]
