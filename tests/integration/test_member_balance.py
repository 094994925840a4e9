"""The database's sum of a member's balance agrees with the domain rule, lot by lot.

``coalition.domain.lots.balance`` is the rule (SPEC §6); the balance endpoint
asks the database to apply it (``aggregates.member_balance``) so as not to
read every lot, in the same statement as the lifetime totals. Random lots, with expiry and hold ends on the boundaries
(now, the 90-day horizon, shared expiry dates), go into a transaction that is
rolled back; both answers must be equal. Lots are dated a microsecond either side of
those boundaries too, as postings are (a till's clock, the service's), and some hold as
many points as a posting may carry.
"""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert

from coalition.db import aggregates, models
from coalition.domain import lots as lots_domain
from coalition.domain import money
from coalition.services import catalog
from tests.plans import analyze_a_ledger_of_many_members, generic_plan, scans, sent

AT = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
EDGES = [timedelta(0), timedelta(days=90)]  # now, and the end of the expiring horizon
MICROSECOND = timedelta(microseconds=1)
OFFSETS = st.one_of(
    st.sampled_from([timedelta(0), timedelta(days=90), timedelta(days=90, seconds=1), -timedelta(seconds=1)]),
    st.sampled_from([edge + sign * MICROSECOND for edge in EDGES for sign in (1, -1)]),
    st.integers(-3 * 24, 200 * 24).map(lambda hours: timedelta(hours=hours)),
)
LOTS = st.lists(
    st.tuples(
        st.integers(0, 50) | st.integers(0, money.MAX_POINTS - 20),
        st.integers(1, 20),
        OFFSETS,
        OFFSETS,
        st.integers(1, 400),
    ),
    max_size=12,
)


def _write(connection, lots: list[tuple]) -> list[lots_domain.Lot]:
    connection.execute(insert(models.Member), [{"id": "m-balance", "created_at": AT}])
    written = []
    for number, (remaining, extra, until_expiry, until_available, age_days) in enumerate(lots, start=1):
        earned_at = AT - timedelta(days=age_days)
        connection.execute(insert(models.Transaction), [{
            "id": number, "partner_id": "coalition", "external_id": f"b-{number}", "type": "bonus",
            "member_id": "m-balance", "occurred_at": earned_at, "recorded_at": earned_at,
            "points": remaining + extra, "shortfall_points": 0, "rate_ids": (),
            "period_id": "2026-06", "late": False, "request_hash": ""}])
        lot = lots_domain.Lot(number, "coalition", remaining + extra, remaining, earned_at,
                              AT + until_available, AT + until_expiry)
        connection.execute(insert(models.Lot), [{
            "id": lot.id, "transaction_id": number, "member_id": "m-balance", "issuer_id": lot.issuer_id,
            "points": lot.points, "remaining": lot.remaining, "earned_at": lot.earned_at,
            "available_at": lot.available_at, "expires_at": lot.expires_at}])
        written.append(lot)
    return written


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lots=LOTS)
def test_the_database_sums_a_balance_as_the_domain_rule_does(database, lots):
    with database.engine.connect() as connection:
        transaction = connection.begin()
        try:
            written = _write(connection, lots)
            summed, generation = aggregates.member_balance(connection, "m-balance", AT)
            stranger, same_generation = aggregates.member_balance(connection, "m-nobody", AT)
            stamped = connection.exec_driver_sql(catalog.GENERATION_QUERY).scalar_one()
        finally:
            transaction.rollback()
    assert summed.current == lots_domain.balance(written, AT)
    assert summed.earned == sum(lot.points for lot in written)
    assert summed.burned == 0
    assert stranger is None
    assert generation == same_generation == stamped


@pytest.mark.postgres
def test_a_balance_is_read_from_indexes_alone(database):
    """Migrations 0009 and 0024 give the balance covering indexes of every column it reads: with
    scans of the tables themselves ruled out, PostgreSQL answers the very
    statement a lookup sends from the indexes alone, in the generic plan a
    prepared statement comes to (psycopg prepares a statement after a few
    runs). A column added to the statement but not to the indexes, or burn
    types sent as parameters (which the partial index could not be proven to
    cover), would send each lookup to a heap page per lot again.

    The planner is shown a ledger of many members, analyzed in the test's
    transaction. The narrower indexes by member are set aside (DROP INDEX
    rolls back too): on a table autovacuum has not yet seen, the planner
    expects a heap fetch per row from either index and may take the
    narrower; on a vacuumed ledger the covering ones are cheaper."""
    with database.engine.connect() as connection, connection.begin() as transaction:
        _write(connection, [(5, 5, timedelta(days=30), -timedelta(days=1), 10)])
        analyze_a_ledger_of_many_members(connection)
        connection.exec_driver_sql("DROP INDEX ix_lots_member, ix_transactions_member")
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        connection.exec_driver_sql("SET LOCAL enable_bitmapscan = off")
        with sent(connection) as statements:
            aggregates.member_balance(connection, "m-balance", AT)
        ((statement, parameters),) = statements
        plan = generic_plan(connection, statement, parameters)
        transaction.rollback()
    read = {(node, relation) for node, relation, _ in scans(plan)}
    ledger = {(node, relation) for node, relation in read if relation != "settings"}
    assert {relation for _, relation in ledger} == {"members", "lots", "transactions"}
    assert {node for node, _ in ledger} == {"Index Only Scan"}
    assert "settings" in {relation for _, relation in read}  # its one row: the generation


def test_on_sqlite_a_balance_reads_a_members_burns_and_returns_by_their_partial_indexes(database):
    """SQLite reads a partial index only for a term written as its condition is: the
    returns' sum, asked as ``type IN ('earn_reversal')`` of an index on ``type =
    'earn_reversal'`` (0024), went through every transaction of the member's instead."""
    if database.engine.dialect.name != "sqlite":
        return  # PostgreSQL's plan: test_a_balance_is_read_from_indexes_alone
    with database.engine.connect() as connection, connection.begin() as transaction:
        _write(connection, [(5, 5, timedelta(days=30), -timedelta(days=1), 10)])
        with sent(connection) as statements:
            aggregates.member_balance(connection, "m-balance", AT)
        ((statement, parameters),) = statements
        plan = [row[3] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)]
        transaction.rollback()
    assert sorted(step for step in plan if " transactions " in step) == [
        "SEARCH transactions USING INDEX ix_transactions_member_burns (member_id=?)",
        "SEARCH transactions USING INDEX ix_transactions_member_returns (member_id=?)",
    ]
