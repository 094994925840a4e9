"""A batch answers exactly what posting its items one by one would, across its chunks."""

import pytest
from sqlalchemy import text

from coalition.services import batches
from tests.conftest import days_ago
from tests.e2e.helpers import balance, burn, earn, expect


def _items(prefix: str) -> list[dict]:
    """Earns, burns (some overspending), a return, replays and a conflict, for members of ``prefix``."""
    items = []
    for index in range(batches.CHUNK * 2 + 7):
        member = f"{prefix}-m{index % 4}"
        external_id = f"{prefix}-{index}"
        if index % 5 == 3:
            items.append({"external_id": external_id, "type": "burn", "partner_id": "skyair",
                          "member_id": member, "points": 70, "occurred_at": days_ago(1)})
        elif index % 11 == 7:
            items.append({"external_id": external_id, "type": "earn_reversal", "partner_id": "aroma",
                          "original_external_id": f"{prefix}-{index - 6}", "points": 5,
                          "occurred_at": days_ago(1)})
        else:
            items.append({"external_id": external_id, "type": "earn", "partner_id": "aroma",
                          "member_id": member, "amount": "300.00", "currency": "RUB",
                          "occurred_at": days_ago(2)})
    items.append(dict(items[2]))  # a replay of an earn from the first chunk, in the last
    items.append({**items[1], "amount": "1.00"})  # same key, another body: a conflict
    items.insert(batches.CHUNK, {"external_id": f"{prefix}-bad", "type": "earn"})  # fails validation
    return items


def _shape(status: int, body: dict) -> tuple:
    if status >= 400:
        error = body.get("error", body)
        return status, error.get("reason"), None
    return status, body["type"], body["points"]


def test_a_batch_across_chunks_answers_as_posting_alone(coalition):
    batched = _items("b")
    results = expect(coalition.post("/api/v1/transactions/batch", json={"transactions": batched}), 200)["results"]
    assert [result["index"] for result in results] == list(range(len(batched)))

    alone = []
    for item in _items("s"):
        response = coalition.post("/api/v1/transactions", json=item)
        alone.append(_shape(response.status_code, response.get_json()))
    assert [_shape(r["status"], r.get("transaction") or r) for r in results] == alone

    statuses = {status for status, _, _ in alone}
    assert {200, 201, 409, 422} <= statuses  # the mix really has replays, conflicts and refusals
    figures = ("available", "pending", "lifetime_earned", "lifetime_burned")
    for member in range(4):
        batch_balance, alone_balance = (balance(coalition, f"{prefix}-m{member}") for prefix in "bs")
        assert [batch_balance[f] for f in figures] == [alone_balance[f] for f in figures]


@pytest.mark.postgres
def test_a_batch_posted_again_draws_no_ids(coalition, database):
    """A chunk draws ids only for postings that are not replays.

    Posting the same batch again (as re-running an import does) answers every
    item as a replay and leaves the sequences where they were.
    """
    items = [{"external_id": f"again-{index}", "type": "earn", "partner_id": "aroma", "member_id": f"again-m{index}",
              "amount": "300.00", "currency": "RUB", "occurred_at": days_ago(2)} for index in range(batches.CHUNK + 5)]
    first = expect(coalition.post("/api/v1/transactions/batch", json={"transactions": items}), 200)["results"]
    assert {result["status"] for result in first} == {201}

    def sequences():
        with database.engine.connect() as connection:
            return [connection.execute(text(
                f"SELECT last_value FROM {table}_id_seq")).scalar_one() for table in ("transactions", "lots", "allocations")]

    before = sequences()
    again = expect(coalition.post("/api/v1/transactions/batch", json={"transactions": items}), 200)["results"]
    assert {result["status"] for result in again} == {200}
    assert sequences() == before
    assert before[0] >= len(items)  # the first batch did draw


def test_burn_reversals_of_one_burn_in_one_batch_put_back_at_most_what_it_took(coalition):
    """Each reversal in a chunk counts those before it in the same chunk: three reversals of 4
    points of a burn of 10 are 4 + 4 and then a refusal (12 > 10), as if posted one by one.

    The lot keeps points enough for a third (100 − 50 − 10 = 40 left), so only the rule, not
    the lot's own CHECK, can refuse it."""
    expect(earn(coalition, "e-1", "m1", "1000.00", occurred_at=days_ago(5)))  # 1000.00 RUB × 0.1 = 100
    expect(burn(coalition, "b-0", "m1", 50, occurred_at=days_ago(4)))
    expect(burn(coalition, "b-1", "m1", 10, occurred_at=days_ago(3)))
    items = [{"external_id": f"br-{number}", "type": "burn_reversal", "partner_id": "aroma",
              "original_external_id": "b-1", "points": 4, "occurred_at": days_ago(1)} for number in range(3)]
    results = expect(coalition.post("/api/v1/transactions/batch", json={"transactions": items}), 200)["results"]
    assert [result["status"] for result in results] == [201, 201, 422]
    assert results[2]["error"]["reason"] == "over_reversal"
    assert balance(coalition, "m1")["available"] == 48  # 40 + 4 + 4
