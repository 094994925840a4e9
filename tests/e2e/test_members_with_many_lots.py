"""A member who earns a little every day holds thousands of lots: what a posting for such a
member reads and sends must not grow with them beyond what it moves.

A burn from many lots makes an allocation a lot, and drew their ids four at
a time, a round trip each (docs/performance-log.md, "Members with many lots").
"""

import pytest

from tests.conftest import days_ago
from tests.e2e.helpers import burn, burn_reversal, expect
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

