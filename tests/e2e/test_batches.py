"""A batch answers exactly what posting its items one by one would, across its chunks."""

import pytest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from coalition import auth
from coalition.db import Unavailable
from coalition.services import batches
from tests.conftest import days_ago
from tests.e2e.helpers import balance, burn, burn_reversal, earn, expect, till_of
from tests.plans import sent


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

    def sequences(query="SELECT last_value FROM {table}_id_seq"):
        with database.engine.connect() as connection:
            return [connection.execute(text(query.format(table=table))).scalar_one()
                    for table in ("transactions", "lots", "allocations")]

    before = sequences()
    # the ids came from the sequences, not counted on from the tables' largest as on SQLite:
    # another instance drawing next would otherwise be handed an id already written
    assert all(drawn >= largest for drawn, largest in
               zip(before, sequences("SELECT coalesce(max(id), 0) FROM {table}"), strict=True))
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


def test_returns_of_one_earn_in_one_batch_take_back_at_most_what_it_earned(coalition):
    """Each return in a chunk counts those before it in the same chunk: three returns of 40
    points of an earn of 100 are 40 + 40 and then a refusal (120 > 100), as if posted one
    by one.

    The lot still holds 20 points for the third, which would take those and record the
    other 20 as a shortfall: only the rule, counting the chunk's own returns, refuses it."""
    expect(earn(coalition, "e-1", "m1", "1000.00", occurred_at=days_ago(5)))  # 1000.00 RUB × 0.1 = 100
    items = [{"external_id": f"er-{number}", "type": "earn_reversal", "partner_id": "aroma",
              "original_external_id": "e-1", "points": 40, "occurred_at": days_ago(1)} for number in range(3)]
    results = expect(coalition.post("/api/v1/transactions/batch", json={"transactions": items}), 200)["results"]
    assert [result["status"] for result in results] == [201, 201, 422]
    assert results[2]["error"]["reason"] == "over_reversal"
    assert balance(coalition, "m1")["available"] == 20  # 100 − 40 − 40


def test_a_batch_whose_first_posting_is_a_burn_posts_it(coalition):
    """A chunk draws its ids as its postings need them (on PostgreSQL, from the sequences):
    one that opens with a burn has drawn none when the burn asks for its allocations'."""
    expect(earn(coalition, "e-1", "m1", "1000.00", occurred_at=days_ago(5)))  # 1000.00 RUB × 0.1 = 100
    items = [{"external_id": f"b-{number}", "type": "burn", "partner_id": "aroma", "member_id": "m1",
              "points": points, "occurred_at": days_ago(1)} for number, points in enumerate((30, 20))]
    results = expect(coalition.post("/api/v1/transactions/batch", json={"transactions": items}), 200)["results"]
    assert [result["status"] for result in results] == [201, 201]
    assert [result["transaction"]["points"] for result in results] == [-30, -20]
    assert balance(coalition, "m1")["available"] == 50  # 100 − 30 − 20


def _earns(count: int, invalid_at: int) -> list[dict]:
    items = [{"external_id": f"u-{n}", "type": "earn", "partner_id": "aroma", "member_id": f"u-m{n}",
              "amount": "100.00", "currency": "RUB", "occurred_at": days_ago(1)} for n in range(count)]
    items[invalid_at] = {"external_id": "u-bad", "type": "earn"}  # refused for its fields: 422
    return items


@pytest.mark.parametrize("first_failure", ["the database goes away", "an error, then it goes away"])
def test_a_batch_the_database_leaves_answers_which_items_it_wrote(coalition, monkeypatch, first_failure):
    """The items posted before the database went away 201, the rest 503 but for one refused for
    its fields (422 as ever); it was 503 for the whole batch, with its first items written. After
    a chunk's database error its items are posted one by one, and the database may go away there too."""
    items, calls = _earns(250, invalid_at=200), []
    posting = batches._post_chunk

    def failing(session, principal, chunk):
        calls.append(len(chunk))
        if first_failure == "an error, then it goes away" and len(calls) == 2:
            raise SQLAlchemyError("the second chunk fails in the database")
        if len(calls) > (12 if first_failure == "an error, then it goes away" else 1):
            raise Unavailable("the database cannot be reached")
        return posting(session, principal, chunk)

    monkeypatch.setattr(batches, "_post_chunk", failing)
    results = expect(coalition.post("/api/v1/transactions/batch", json={"transactions": items}), 200)["results"]
    written = 110 if first_failure == "an error, then it goes away" else 100  # a chunk, and ten alone
    assert [result["status"] for result in results] == [201] * written + [503] * (200 - written) + [422] + [503] * 49
    assert {results[i]["error"]["reason"] for i in range(written, 250) if i != 200} == {"database_unavailable"}
    monkeypatch.undo()
    results = expect(coalition.post("/api/v1/transactions/batch", json={"transactions": items}), 200)["results"]
    assert [result["status"] for result in results] == [200] * written + [201] * (200 - written) + [422] + [201] * 49


def test_a_batch_the_database_leaves_before_it_wrote_anything_is_503_as_a_whole(coalition, monkeypatch):
    def away(session, principal, chunk):
        raise Unavailable("the database cannot be reached")

    monkeypatch.setattr(batches, "_post_chunk", away)
    response = coalition.post("/api/v1/transactions/batch", json={"transactions": _earns(150, invalid_at=3)})
    assert (response.status_code, response.get_json()["reason"]) == (503, "database_unavailable")
    monkeypatch.undo()
    assert expect(coalition.get("/api/v1/transactions"), 200)["items"] == []


def test_a_batch_whose_key_is_revoked_midway_posts_no_chunk_after_the_revocation(coalition, database, monkeypatch):
    """A till's key revoked (leaked) after the batch's first chunk: the chunks after it find
    the key revoked and their items are 401, but the one refused for its fields (422 as
    ever); they were all written under the revoked key. Sent again under a working key,
    the first chunk's items are replays and the rest are posted."""
    items = _earns(250, invalid_at=200)
    till, key_id = till_of(coalition, "aroma")
    posting = batches._post_into

    def revoked_after_the_first_chunk(outcomes, *arguments):
        posting(outcomes, *arguments)
        if len(outcomes) == batches.CHUNK:
            database.run(auth.revoke_key, key_id)

    monkeypatch.setattr(batches, "_post_into", revoked_after_the_first_chunk)
    results = expect(till.post("/api/v1/transactions/batch", json={"transactions": items}), 200)["results"]
    assert [result["status"] for result in results] == [201] * 100 + [401] * 100 + [422] + [401] * 49
    assert {results[i]["error"]["reason"] for i in range(100, 250) if i != 200} == {"unauthenticated"}
    monkeypatch.undo()
    again, _ = till_of(coalition, "aroma")
    results = expect(again.post("/api/v1/transactions/batch", json={"transactions": items}), 200)["results"]
    assert [result["status"] for result in results] == [200] * 100 + [201] * 100 + [422] + [201] * 49


def test_a_chunk_finds_what_was_posted_under_its_keys_through_their_index(coalition, database):
    """A chunk reads the transactions posted under its keys by the idempotency index.

    On SQLite a list of (partner, external_id) pairs alone is read by scanning
    the table: every chunk of a batch or an import read every transaction of the
    ledger, and ingest slowed as the file grew (1,172 items/s in a pilot's first
    month, 566 in its fourth). Each statement that looks keys up must search the
    index, whatever the ledger holds.
    """
    items = [{"external_id": f"keyed-{index}", "type": "earn", "partner_id": "aroma",
              "member_id": f"keyed-m{index}", "amount": "300.00", "currency": "RUB",
              "occurred_at": days_ago(2)} for index in range(3)]
    with sent(database.engine) as statements:
        results = expect(coalition.post("/api/v1/transactions/batch", json={"transactions": items}), 200)
    assert {result["status"] for result in results["results"]} == {201}
    keyed = [(sql, parameters) for sql, parameters in statements
             if "(transactions.partner_id, transactions.external_id) IN" in sql]
    assert keyed
    if database.engine.dialect.name != "sqlite":
        return  # PostgreSQL reads a list of pairs by the index it has on both
    with database.engine.connect() as connection:
        for sql, parameters in keyed:
            plan = [row[3] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", parameters)]
            assert not [step for step in plan if step.startswith("SCAN transactions")], (sql, plan)


def test_a_batch_s_earlier_burn_spends_the_lot_that_expires_before_its_later_burn(coalition):
    """The first lots a chunk reads for its burns are those that expire after its earliest
    burn, not its latest: an earlier burn spends first the lot expiring first (SPEC §6),
    though that lot has expired by the time of a later burn in the same batch."""
    expect(coalition.put("/api/v1/settings", json={"points_ttl_days": 30}), 200)
    # 1000.00 RUB at aroma's earn rate of 0.1: 100 points each; the early lot expires 30
    # days after 60 days ago (30 days ago), the late one 30 days after 40 (10 days ago)
    early = expect(earn(coalition, "early-lot", "spender", "1000.00", occurred_at=days_ago(60)))["lot_id"]
    late = expect(earn(coalition, "late-lot", "spender", "1000.00", occurred_at=days_ago(40)))["lot_id"]
    burns = [{"external_id": f"spend-{days}", "type": "burn", "partner_id": "aroma", "member_id": "spender",
              "points": 30, "occurred_at": days_ago(days)} for days in (35, 15)]
    results = expect(coalition.post("/api/v1/transactions/batch", json={"transactions": burns}), 200)["results"]
    # 35 days ago the early lot comes first; 15 days ago it has expired and only the late one is left
    assert [[a["lot_id"] for a in result["transaction"]["allocations"]] for result in results] == [
        [early], [late]]
    history = {item["external_id"]: item for item in expect(coalition.get("/api/v1/transactions"), 200)["items"]}
    assert [a["points"] for a in history["spend-35"]["allocations"]] == [30]


def test_a_batch_s_second_burn_reversal_puts_back_what_its_first_left(coalition):
    """Burn reversals of one burn in one batch count what those before them put back, as
    posted one by one: of a burn of 30, 10 and then the 20 left."""
    expect(earn(coalition, "e-1", "reverser", "1000.00", occurred_at=days_ago(3)))  # 1000.00 × 0.1: 100 points
    expect(burn(coalition, "b-1", "reverser", 30, occurred_at=days_ago(2)))
    back = [{"external_id": "back-1", "type": "burn_reversal", "partner_id": "aroma", "original_external_id": "b-1",
             "occurred_at": days_ago(1), "points": 10},
            {"external_id": "back-2", "type": "burn_reversal", "partner_id": "aroma", "original_external_id": "b-1",
             "occurred_at": days_ago(1)}]  # no points: what is left of the burn
    results = expect(coalition.post("/api/v1/transactions/batch", json={"transactions": back}), 200)["results"]
    assert [result["transaction"]["points"] for result in results] == [10, 30 - 10]
    assert balance(coalition, "reverser")["available"] == 100 - 30 + 10 + 20
    assert burn_reversal(coalition, "back-3", "b-1").status_code == 422  # nothing left to put back
