"""A member who earns a little every day holds thousands of lots: what a posting for such a
member reads and sends must not grow with them beyond what it moves.

A burn spends its member's live lots in the SPEC's order, and read all of
them (20,000 rows, 0.3 s, for a burn of 5 points): it now reads the first
:data:`~coalition.services.book.FIRST_LOTS` in that order, and the rest only
if those do not hold enough; on PostgreSQL the read stops after them, where
numbering the member's lots read every one. A return or a burn reversal moves points only in
the lots its original made or took from, and read every live lot of the
member as well (0.5 s for the reversal of a 5-point burn). A burn from many lots makes an allocation a lot,
and drew their ids four at a time, a round trip each (docs/performance-log.md,
"Members with many lots").
"""

from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from coalition.services import book
from coalition.services.book import Book
from tests.conftest import days_ago
from tests.e2e.helpers import burn, burn_reversal, earn_reversal, expect
from tests.plans import read_so_far, sent, values_bound

LOTS = 60


def _bonuses(caller, member: str, count: int, points: int = 1, apart: float = 1) -> list[dict]:
    """``count`` bonuses of ``points`` for ``member``, ``apart`` days apart, oldest first."""
    items = [{"external_id": f"{member}-{n}", "type": "bonus", "partner_id": "coalition",
              "member_id": member, "occurred_at": days_ago(80 - n * apart), "points": points,
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


def test_a_burn_reversal_binds_no_value_for_each_lot_its_burn_took_from(coalition, database):
    """A burn reversal read the lots its burn took from, and what reversals had put back
    into them, by the ids of those lots and of the burn's allocations, one value each:
    SQLite takes 250,000 values a statement (as Debian builds it), and the reversal of a
    burn from 250,001 one-point lots failed, too many SQL variables. Both are now asked by
    the burn's id: no statement of the reversal of a burn from 60 lots binds more values
    than one of the reversal of a burn from one lot."""
    _bonuses(coalition, "single", 1, points=100)
    _bonuses(coalition, "daily", LOTS)
    expect(burn(coalition, "from-one", "single", LOTS))
    expect(burn(coalition, "from-many", "daily", LOTS))
    # 10 points of each given back first, which the second reversal must read as put back
    expect(burn_reversal(coalition, "back-one-1", "from-one", points=10))
    expect(burn_reversal(coalition, "back-many-1", "from-many", points=10))

    with values_bound(database.engine) as one:
        expect(burn_reversal(coalition, "back-one-2", "from-one"))
    with values_bound(database.engine) as many:
        restored = expect(burn_reversal(coalition, "back-many-2", "from-many"))

    assert max(many) == max(one)
    # 60 one-point lots taken, the last 10 given back (newest allocation first): the
    # other 50 now, a point into each of the first 50 lots
    assert restored["points"] == LOTS - 10 and len(restored["allocations"]) == LOTS - 10
    balance = expect(coalition.get("/api/v1/members/daily/balance"), 200)
    assert balance["available"] == LOTS


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


def test_a_burn_reads_only_its_members_first_lots_in_the_order_it_spends_them(coalition, database):
    lots = _bonuses(coalition, "daily", LOTS)
    with database.transaction() as session:
        read = Book.open(session, [("coalition", {"external_id": "till-1", "type": "burn",
                                                  "member_id": "daily", "occurred_at": datetime.now(UTC)})])
    assert sorted(read.lots) == [lot["lot_id"] for lot in lots[:book.FIRST_LOTS]]


def _in(items: list[dict], lots: list[dict]) -> list[tuple[str, int]]:
    """Allocations as (which lot, points): a lot named by its place among ``lots``, or "late"."""
    places = {lot["lot_id"]: str(place) for place, lot in enumerate(lots)}
    return [(places.get(item["lot_id"], "late"), item["points"]) for item in items]


@pytest.mark.parametrize("first", [1, 3, 1000])
def test_a_chunk_spends_in_the_specs_order_however_few_lots_it_reads_first(coalition, monkeypatch, first):
    # ten lots of 10 a day apart; in one chunk: a bonus that expires after them all, a burn,
    # a bonus backdated to expire before them all, two more burns with a burn reversal
    # between, and a burn of more than is left
    monkeypatch.setattr(book, "FIRST_LOTS", first)
    lots = _bonuses(coalition, "daily", 10, points=10)

    def spend(external_id, points, at=0.5):
        return {"external_id": external_id, "type": "burn", "partner_id": "coalition",
                "member_id": "daily", "occurred_at": days_ago(at), "points": points}

    items = [
        {"external_id": "recent", "type": "bonus", "partner_id": "coalition", "member_id": "daily",
         "occurred_at": days_ago(2), "points": 10, "reason": "goodwill"},  # expires last
        spend("till-1", 15, at=1),
        {"external_id": "late", "type": "bonus", "partner_id": "coalition", "member_id": "daily",
         "occurred_at": days_ago(85), "points": 10, "reason": "goodwill"},
        spend("till-2", 12),
        {"external_id": "back-1", "type": "burn_reversal", "partner_id": "coalition",
         "original_external_id": "till-1", "occurred_at": days_ago(0.5), "points": 5},
        spend("till-3", 40),
        spend("till-4", 1000),
    ]
    results = expect(coalition.post("/api/v1/transactions/batch", json={"transactions": items}), 200)["results"]

    assert [result["status"] for result in results] == [201, 201, 201, 201, 201, 201, 422]
    moved = [_in(result["transaction"]["allocations"], lots) for result in results[1:6]]
    assert moved == [
        [("0", 10), ("1", 5)],
        [],
        [("late", 10), ("1", 2)],
        [("1", 5)],  # the burn's newest allocation first
        [("1", 8), ("2", 10), ("3", 10), ("4", 10), ("5", 2)],
    ]
    assert results[6]["error"]["message"] == "burn of 1000 points but only 58 are available"
    assert expect(coalition.get("/api/v1/members/daily/balance"), 200)["available"] == 58


@pytest.mark.postgres
def test_a_burn_reads_about_as_many_lots_as_it_reads_first_however_many_its_member_holds(
    coalition, database, monkeypatch
):
    # 200 lots six hours apart, the first 5 read: a read in spending order stops after the
    # 5th and the next, which tells it the 5th's expiry has no more lots; numbering the
    # member's lots read all 200
    monkeypatch.setattr(book, "FIRST_LOTS", 5)
    lots = _bonuses(coalition, "daily", 200, apart=0.25)
    with database.transaction() as session:
        session.execute(text("ANALYZE lots"))  # planned as for any table the size of a member's lots
        before = read_so_far(session, "lots")
        read = Book.open(session, [("coalition", {"external_id": "till-1", "type": "burn",
                                                  "member_id": "daily", "occurred_at": datetime.now(UTC)})])
        rows_read = read_so_far(session, "lots") - before
    assert sorted(read.lots) == [lot["lot_id"] for lot in lots[:5]]
    assert rows_read < 2 * 5


def test_a_burn_at_the_instant_its_members_first_lot_expires_reads_past_that_lot(coalition, monkeypatch):
    """The first lots a chunk reads for a burn are those that expire after it: a lot
    expiring at the burn's very instant can no longer be spent (SPEC §6: spendable while
    the burn is before ``expires_at``), so it is not one of them, and the burn reads on to
    the lot after the first ones it counts."""
    monkeypatch.setattr(book, "FIRST_LOTS", 2)
    expect(coalition.put("/api/v1/settings", json={"points_ttl_days": 30}), 200)
    # three lots of 10, earned 40, 39 and 38 days ago: they expire 10, 9 and 8 days ago
    lots = [expect(coalition.post("/api/v1/transactions", json={
        "external_id": f"coffee-{days}", "type": "bonus", "partner_id": "coalition", "member_id": "daily",
        "occurred_at": days_ago(days), "points": 10, "reason": "daily coffee"}), 201) for days in (40, 39, 38)]
    burned = expect(burn(coalition, "till-1", "daily", 15, partner_id="coalition",
                         occurred_at=lots[0]["expires_at"]), 201)
    # the first lot expired as the burn happened: 10 from the second, the other 5 from the third
    assert [(a["lot_id"], a["points"]) for a in burned["allocations"]] == [
        (lots[1]["lot_id"], 10), (lots[2]["lot_id"], 5)]
