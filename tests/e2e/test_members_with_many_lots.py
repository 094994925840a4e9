"""A member who earns a little every day holds thousands of lots: what a posting for such a
member reads and sends must not grow with them beyond what it moves.

A burn chooses among its member's live lots, so it reads them; but a return
or a burn reversal moves points only in the lots its original made or took
from, and read every live lot of the member as well (20,000 rows, 0.5 s, for a
reversal of a 5-point burn). A burn from many lots makes an allocation a lot,
and drew their ids four at a time, a round trip each (docs/performance-log.md,
"Members with many lots").
"""

import pytest

from coalition.services.book import Book
from tests.conftest import days_ago
from tests.e2e.helpers import bonus, burn, burn_reversal, earn_reversal, expect
from tests.plans import sent

LOTS = 60


def _bonuses(caller, member: str, count: int, points: int = 1) -> list[dict]:
    """``count`` bonuses of ``points`` for ``member``, a day apart, oldest first."""
    items = [{"external_id": f"{member}-{n}", "type": "bonus", "partner_id": "coalition",
              "member_id": member, "occurred_at": days_ago(80 - n), "points": points,
              "reason": "daily coffee"} for n in range(count)]
    results = expect(caller.post("/api/v1/transactions/batch", json={"transactions": items}), 200)["results"]
    assert {result["status"] for result in results} == {201}
    return [result["transaction"] for result in results]


def _statements(database, post) -> tuple[int, dict]:
    with sent(database.engine) as statements:
        posted = expect(post())
    return len(statements), posted


@pytest.mark.postgres
def test_a_burn_from_many_lots_and_its_reversal_draw_their_ids_in_one_round_trip(coalition, database):
    _bonuses(coalition, "single", 1, points=100)
    lots = _bonuses(coalition, "daily", LOTS)
    expect(burn(coalition, "warm-up", "single", 1))  # the catalog read, and statements prepared

    one, _ = _statements(database, lambda: burn(coalition, "from-one", "single", 50))
    many, burned = _statements(database, lambda: burn(coalition, "from-many", "daily", 50))

    assert many == one + 1  # the ids of 50 allocations, where one drew ahead with its locks
    assert [allocation["lot_id"] for allocation in burned["allocations"]] == [lot["lot_id"] for lot in lots[:50]]
    one, _ = _statements(database, lambda: burn_reversal(coalition, "back-one", "from-one"))
    many, restored = _statements(database, lambda: burn_reversal(coalition, "back-many", "from-many"))
    assert many == one + 1
    assert restored["points"] == 50 and len(restored["allocations"]) == 50


def test_a_return_and_a_burn_reversal_read_only_the_lots_their_original_made_or_took_from(
    coalition, database
):
    lots = _bonuses(coalition, "daily", LOTS, points=10)
    burned = expect(burn(coalition, "till-1", "daily", 15, partner_id="coalition"))
    assert [(a["lot_id"], a["points"]) for a in burned["allocations"]] == [
        (lots[0]["lot_id"], 10), (lots[1]["lot_id"], 5)]

    returned = {"external_id": "ret-1", "type": "earn_reversal", "original_external_id": "daily-7",
                "points": 3}
    reversed_burn = {"external_id": "rev-1", "type": "burn_reversal", "original_external_id": "till-1"}
    with database.transaction() as session:
        assert set(Book.open(session, [("coalition", returned)]).lots) == {lots[7]["lot_id"]}
        assert set(Book.open(session, [("coalition", reversed_burn)]).lots) == {
            lots[0]["lot_id"], lots[1]["lot_id"]}

    took = expect(earn_reversal(coalition, "ret-1", "daily-7", partner_id="coalition", points=3))
    assert took["allocations"] == [{"lot_id": lots[7]["lot_id"], "issuer_id": "coalition", "points": 3}]
    back = expect(burn_reversal(coalition, "rev-1", "till-1", partner_id="coalition", points=7))
    assert [(a["lot_id"], a["points"]) for a in back["allocations"]] == [
        (lots[1]["lot_id"], 5), (lots[0]["lot_id"], 2)]
    balance = expect(coalition.get("/api/v1/members/daily/balance"), 200)
    assert balance["available"] == LOTS * 10 - 15 - 3 + 7
