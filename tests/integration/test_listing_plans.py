"""A listing of one of the rarer transaction types pages through their own index.

Listings page in id order. Filtered by a type that is a small part of the
ledger (bonuses, returns, burn reversals, expiries), PostgreSQL walked the
primary key past every other transaction to the first match, which on a
ledger of millions takes seconds (docs/performance.md). Migration 0015
indexes those types by type and id; the type is written into the statement,
so that the generic plan a prepared statement comes to can read that
partial index too.
"""

import pytest

from tests.e2e.helpers import bonus, expect
from tests.plans import generic_plan, scans, sent

pytestmark = pytest.mark.postgres

# 20,000 earns, in the test's transaction (rolled back with the statistics ANALYZE takes)
EARNS = """
    INSERT INTO transactions (partner_id, external_id, type, member_id, occurred_at, recorded_at,
        points, shortfall_points, rate_ids, period_id, late, request_hash)
    SELECT 'coalition', 'earn-' || n, 'earn', 'm-1', now(), now(), 1, 0, '[]', '2026-12', false, ''
    FROM generate_series(1, 20000) AS n
"""


@pytest.mark.parametrize("kind", ["bonus", "earn_reversal", "burn_reversal", "expiry"])
def test_a_listing_of_a_rarer_type_reads_its_index(operator, database, client, kind):
    expect(bonus(operator, "b-1", "m-1", 10))
    with sent(database.engine) as statements:
        page = operator.get("/api/v1/transactions", query_string={"type": kind, "limit": 10})
    assert len(expect(page, 200)["items"]) == (kind == "bonus")
    (statement, parameters), *_ = [
        (sql, parameters) for sql, parameters in statements
        if "FROM transactions" in sql and "ORDER BY transactions.id" in sql
    ]
    with database.engine.connect() as connection, connection.begin() as transaction:
        connection.exec_driver_sql(EARNS)  # a ledger where the type is rare, as it is at scale
        connection.exec_driver_sql("ANALYZE transactions")
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        connection.exec_driver_sql("SET LOCAL enable_bitmapscan = off")
        plan = generic_plan(connection, statement, parameters)
        transaction.rollback()
    assert [index for _, relation, index in scans(plan) if relation == "transactions"] == [
        "ix_transactions_rarer_types"
    ]
