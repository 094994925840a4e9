"""Migration 0019 names the key each transaction was posted through: a downgrade takes
the column away with what it held, and an upgrade brings it back on a ledger that has
transactions, which then read as posted through no key (as every one before 0019)."""

from sqlalchemy import inspect, text

from tests.e2e.helpers import earn, expect, setup_coalition
from tests.migrations import migrate

MIGRATION = "0019_transactions_name_their_key.py"


def _columns(connection) -> set[str]:
    return {column["name"] for column in inspect(connection).get_columns("transactions")}


def _posted(connection) -> list[tuple]:
    return connection.execute(text("SELECT external_id, key_id FROM transactions")).all()


def test_a_downgrade_takes_the_key_away_and_an_upgrade_brings_the_column_back_empty(database, operator):
    setup_coalition(operator)
    posted = expect(earn(operator, "t1", "m1", "350.00"))
    with database.engine.connect() as connection:
        assert _posted(connection) == [("t1", posted["key_id"])]
    with database.engine.begin() as connection:
        migrate(connection, MIGRATION, "downgrade")
        assert "key_id" not in _columns(connection)
        assert connection.execute(text("SELECT external_id FROM transactions")).scalars().all() == ["t1"]
        migrate(connection, MIGRATION, "upgrade")
    with database.engine.connect() as connection:
        assert _posted(connection) == [("t1", None)]
    assert expect(operator.get(f"/api/v1/transactions/{posted['id']}"), 200)["key_id"] is None
