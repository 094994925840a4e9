"""Ledger ids are BIGINT on PostgreSQL (migration 0005), and postings past INTEGER's range work.

The sequences of transactions, lots and allocations are moved past
2,147,483,647; then an earn, a burn, a burn reversal and a batch are posted
and read back through the API. Migration 0005 is also run down and up again
over a ledger that already holds rows, as an upgrade of a live database would.
(SQLite's INTEGER keys hold 64 bits already.)
"""

import pytest
from sqlalchemy import text

from tests.e2e.helpers import balance, burn, burn_reversal, earn, expect
from tests.migrations import migrate

pytestmark = pytest.mark.postgres

PAST_INTEGER = 2**31 + 100
MIGRATION = "0005_ledger_bigint_ids.py"
# 0014's triggers name columns 0005 retypes: set aside meanwhile, with 0020's, which use its function
GUARDS = ("0014_append_only_ledger.py", "0020_rate_versions_never_change.py")
LEDGER_COLUMNS = {
    ("transactions", "id"), ("transactions", "original_id"),
    ("lots", "id"), ("lots", "transaction_id"),
    ("allocations", "id"), ("allocations", "transaction_id"), ("allocations", "lot_id"),
    ("allocations", "reverses_id"),
}


def _types(connection) -> dict:
    columns = connection.execute(text(
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_name IN ('transactions', 'lots', 'allocations')"))
    found = {(table, column): kind for table, column, kind in columns if (table, column) in LEDGER_COLUMNS}
    sequences = connection.execute(text(
        "SELECT sequencename, data_type::text FROM pg_sequences"
        " WHERE sequencename IN ('transactions_id_seq', 'lots_id_seq', 'allocations_id_seq')"))
    return found | dict(sequences.all())


def test_ledger_ids_and_their_sequences_are_bigint(database):
    with database.engine.connect() as connection:
        types = _types(connection)
    assert len(types) == len(LEDGER_COLUMNS) + 3
    assert set(types.values()) == {"bigint"}


def test_postings_past_the_integer_range_post_and_read_back(coalition, database):
    with database.engine.begin() as connection:
        for table in ("transactions", "lots", "allocations"):
            connection.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {PAST_INTEGER})"))
    earned = expect(earn(coalition, "big-1", "m-big", "500.00"))  # 500 RUB × 0.1 = 50 points
    assert earned["id"] > PAST_INTEGER and earned["lot_id"] > PAST_INTEGER
    burned = expect(burn(coalition, "big-2", "m-big", 20))
    assert burned["allocations"] == [{"lot_id": earned["lot_id"], "issuer_id": "aroma", "points": 20}]
    restored = expect(burn_reversal(coalition, "big-3", "big-2", points=5))  # reverses an allocation id
    assert restored["original_id"] == burned["id"] and restored["points"] == 5
    batch = expect(coalition.post("/api/v1/transactions/batch", json={"transactions": [
        {"external_id": "big-4", "type": "burn", "partner_id": "aroma", "member_id": "m-big",
         "occurred_at": burned["occurred_at"], "points": 10}]}), 200)
    assert batch["results"][0]["status"] == 201
    assert batch["results"][0]["transaction"]["id"] > restored["id"]
    assert expect(coalition.get(f"/api/v1/transactions/{burned['id']}"), 200) == burned
    assert balance(coalition, "m-big")["available"] == 50 - 20 + 5 - 10
    page = expect(coalition.get("/api/v1/transactions", query_string={"cursor": str(earned["id"])}), 200)
    assert [item["external_id"] for item in page["items"]] == ["big-2", "big-3", "big-4"]


def test_the_migration_retypes_a_ledger_that_holds_rows(coalition, database):
    expect(earn(coalition, "m5-1", "m-five", "300.00"))
    expect(burn(coalition, "m5-2", "m-five", 10))
    with database.engine.begin() as connection:
        for guards in reversed(GUARDS):
            migrate(connection, guards, "downgrade")
        migrate(connection, MIGRATION, "downgrade")
        assert set(_types(connection).values()) == {"integer"}
        migrate(connection, MIGRATION, "upgrade")
        for guards in GUARDS:
            migrate(connection, guards, "upgrade")
        assert set(_types(connection).values()) == {"bigint"}
    assert balance(coalition, "m-five")["available"] == 20
    assert len(expect(burn(coalition, "m5-3", "m-five", 5))["allocations"]) == 1
