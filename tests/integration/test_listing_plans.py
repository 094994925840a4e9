"""A listing filtered by a rarer type, a period or a time reads what it answers.

Listings page in id order. Filtered by a type that is a small part of the
ledger (bonuses, returns, burn reversals, expiries), by a period, or from a
time, PostgreSQL walked the primary key past every transaction before the
first match, which on a ledger of millions takes seconds
(docs/performance-log.md). Migration 0015 indexes those types by type and id,
and the type is written into the statement, so that the generic plan a
prepared statement comes to can read that partial index too. Migration 0016
indexes a period's transactions by id, and a listing from a time starts at
the lowest id of that time's period and the later ones. A listing by period
is bounded by the period's first and last ids too, and each is read in the
order of that index, which alone holds it: whatever the planner costs a
random page at, no walk of another index starts before the period.
"""

import pytest

from tests.e2e.helpers import bonus, expect
from tests.plans import generic_plan, rows_read, scans, sent

pytestmark = pytest.mark.postgres


def _page_plan(database, statements, ledger: str, *settings: str, analyze: bool = False) -> dict:
    """The generic plan of the page's read among the ``statements`` a listing sent, on
    the rows ``ledger`` inserts and under ``settings``, in a transaction rolled back
    with them and with the statistics ANALYZE takes of them."""
    (plan,) = _page_plans(database, statements, ledger, [settings], analyze=analyze)
    return plan


def _page_plans(database, statements, ledger: str, runs: list, analyze: bool = False) -> list:
    """:func:`_page_plan` under each of ``runs`` (each a list of settings) in turn, on
    the same rows: one transaction, each run's settings put back after it."""
    statement, parameters = next(
        (sql, parameters) for sql, parameters in statements
        if "FROM transactions" in sql and "ORDER BY transactions.id" in sql
    )
    plans = []
    with database.engine.connect() as connection, connection.begin() as transaction:
        connection.exec_driver_sql(ledger)
        connection.exec_driver_sql("ANALYZE transactions")
        for settings in runs:
            connection.exec_driver_sql("SAVEPOINT run")
            for setting in settings:
                connection.exec_driver_sql(f"SET LOCAL {setting}")
            plans.append(generic_plan(connection, statement, parameters, analyze=analyze))
            connection.exec_driver_sql("ROLLBACK TO SAVEPOINT run")
        transaction.rollback()
    return plans


# 20,000 earns of December 2026
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
    # on a ledger where the type is rare, as it is at scale
    plan = _page_plan(database, statements, EARNS, "enable_seqscan = off", "enable_bitmapscan = off")
    assert [index for _, relation, index in scans(plan) if relation == "transactions"] == [
        "ix_transactions_rarer_types"
    ]


# a ledger of 25 monthly periods: 20,000 earns over 2023 and 2024, then 10 in March 2025
MONTHS = """
    INSERT INTO transactions (partner_id, external_id, type, member_id, occurred_at, recorded_at,
        points, shortfall_points, rate_ids, period_id, late, request_hash)
    SELECT 'coalition', 'earn-' || n, 'earn', 'm-1', occurred_at, occurred_at, 1, 0, '[]',
        to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM'), false, ''
    FROM generate_series(1, 20010) AS n,
        LATERAL (SELECT CASE WHEN n <= 20000
                             THEN TIMESTAMPTZ '2023-01-15 12:00Z' + (n - 1) / 834 * INTERVAL '1 month'
                             ELSE TIMESTAMPTZ '2025-03-10 12:00Z' END AS occurred_at) AS dated
"""


# PostgreSQL's default is 4; operators on network storage or disks raise it, and some
# managed services lower it to 1.1. From 8 on, the primary key's walk, costed as if the
# period's rows lay evenly over the ledger, looked cheaper than the index by period and id
RANDOM_PAGE_COSTS = [1, 4, 8, 16, 40]


@pytest.mark.parametrize(
    "query",
    [
        {"period_id": "2025-03"},
        {"from": "2025-03-05T00:00:00Z"},
        # as a partner's key lists: its own transactions alone, by the index by partner and id
        {"period_id": "2025-03", "partner_id": "coalition"},
    ],
)
@pytest.mark.parametrize("order", ["oldest", "newest"])
def test_a_listing_of_a_later_period_or_time_reads_no_earlier_period(operator, database, query, order):
    # SPEC §7: every transaction dated from a time is in its period or a later one
    with sent(database.engine) as statements:
        expect(operator.get("/api/v1/transactions", query_string={**query, "order": order}), 200)
    plans = _page_plans(
        database,
        statements,
        MONTHS,
        [[f"random_page_cost = {cost}"] for cost in RANDOM_PAGE_COSTS],
        analyze=True,
    )
    found = {cost: plan["Actual Rows"] for cost, plan in zip(RANDOM_PAGE_COSTS, plans)}
    assert found == dict.fromkeys(RANDOM_PAGE_COSTS, 10)
    # the 10 of March 2025 and a row or none for each probe of a period's first or last
    # id, not the 20,000 before (40,021 from a time, where the probe of each period's first
    # id walked the key from the ledger's first transaction), whatever a random page costs
    read = {cost: rows_read(plan, "transactions") for cost, plan in zip(RANDOM_PAGE_COSTS, plans)}
    assert {cost: rows for cost, rows in read.items() if rows >= 100} == {}


# 100,000 transactions: bonuses, each with its lot, and burns, each spending from the
# bonus before it; the lots and allocations lie in no order of their transactions, as a
# ledger's lots come to once burns, returns and expiries have changed them
SCATTERED = """
    INSERT INTO members (id, created_at) VALUES ('m-scattered', now());
    INSERT INTO transactions (id, partner_id, external_id, type, member_id, occurred_at,
        recorded_at, points, shortfall_points, rate_ids, period_id, late, request_hash)
    SELECT 1000 + n, 'coalition', 'scattered-' || n,
        CASE WHEN mod(n, 2) = 1 THEN 'bonus' ELSE 'burn' END, 'm-scattered', now(), now(),
        CASE WHEN mod(n, 2) = 1 THEN 10 ELSE -5 END, 0, '[]', '2026-06', false, ''
    FROM generate_series(1, 100000) AS n;
    INSERT INTO lots (id, transaction_id, member_id, issuer_id, points, remaining, earned_at,
        available_at, expires_at)
    SELECT 1000 + n, 1000 + n, 'm-scattered', 'coalition', 10, 5, now(), now(),
        now() + interval '1 year'
    FROM generate_series(1, 100000, 2) AS n ORDER BY md5(n::text);
    INSERT INTO allocations (id, transaction_id, type, lot_id, issuer_id, redeemer_id, points,
        period_id)
    SELECT 1000 + n, 1000 + n, 'burn', 1000 + n - 1, 'coalition', 'coalition', -5, '2026-06'
    FROM generate_series(2, 100000, 2) AS n ORDER BY md5(n::text);
    ANALYZE transactions, lots, allocations
"""


def test_a_pages_lots_and_allocations_are_read_for_the_page_alone(operator, database):
    expect(bonus(operator, "b-1", "m-1", 10))
    with sent(database.engine) as statements:
        expect(operator.get("/api/v1/transactions", query_string={"limit": 10}), 200)
    reads = {
        table: next(
            (sql, parameters)
            for sql, parameters in statements
            if f"FROM {table} WHERE" in " ".join(sql.split())
        )
        for table in ("lots", "allocations")
    }
    # a page of 1,000 from the middle of the ledger: 500 bonuses and 500 burns
    ids = list(range(51001, 52001))
    read = {}
    with database.engine.connect() as connection, connection.begin() as transaction:
        connection.exec_driver_sql(SCATTERED)
        for table, (statement, parameters) in reads.items():
            page = {**parameters, "ids": ids, "first": ids[0], "last": ids[-1]}
            (plan,) = connection.exec_driver_sql(
                f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", page
            ).scalar_one()
            read[table] = rows_read(plan["Plan"], table)
        transaction.rollback()
    # the page's own 500 of each, not the 50,000 of the whole ledger
    assert read == {"lots": 500, "allocations": 500}
