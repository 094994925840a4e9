"""PostgreSQL refuses, at commit, a ledger whose rows do not add up (migration 0017).

In :func:`small_month`, m1's lot holds 2468 − 2345 = 123 points and m1's burn
of 2345 has one allocation of −2345 from it. Each write below breaks one of
the two sums (a lot holds its points plus its allocations; a burn's
allocations add up to its points): its transaction must fail with
``check_violation`` and leave every table as it was. A write that keeps
both, in statements whose order leaves them broken in between, commits.
The upgrade to 0017 refuses a ledger broken already, and runs again when
PostgreSQL makes it a deadlock's victim. The checks read the ledger's own
tables whatever the committing session's search path (0018).
"""

from datetime import timedelta
from decimal import Decimal

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from coalition.db import migrate as schema
from coalition.db import models
from coalition.db.writes import Writes
from coalition.domain.errors import Conflict
from tests.conftest import days_ago
from tests.e2e.helpers import expect
from tests.e2e.settlement_world import add_partner, small_month
from tests.integration.test_faults import Faults
from tests.integration.test_writes import AT, transaction_columns
from tests.migrations import migrate
from tests.plans import read_so_far

pytestmark = pytest.mark.postgres

MIGRATIONS = (
    "0017_ledger_adds_up.py", "0018_ledger_checks_find_their_tables.py", "0022_a_burn_is_summed_once.py",
    "0023_summed_once_beside_its_transaction.py",
)
HEAD = "0026"  # what an upgrade from 0016 reaches (0019 and 0021 add their columns and 0024
# and 0025 their indexes if not there, 0020, 0022 and 0023 make their trigger and function again,
# 0026 its table if not there and moves the counts only if the column is still there)

LOT_BROKEN = "does not hold its points plus what its allocations moved"
MOVED_BROKEN = "do not add up to its points"
NEW_BURN = 9_000_001
NEW_EARN = 9_000_002


@pytest.fixture
def m1(operator, database):
    """m1's lot id and its burn's id, after the small month."""
    small_month(operator)
    with database.engine.connect() as connection:
        lot_id = connection.execute(text("SELECT id FROM lots WHERE member_id = 'm1'")).scalar_one()
        burn_id = connection.execute(
            text("SELECT id FROM transactions WHERE external_id = 'm1-burn'")
        ).scalar_one()
    return lot_id, burn_id


def _ledger(database) -> dict[str, list]:
    with database.engine.connect() as connection:
        return {
            table: connection.execute(text(f"SELECT * FROM {table} ORDER BY id")).all()
            for table in ("transactions", "lots", "allocations")
        }


def _allocation(transaction_id: int, lot_id: int, points: int):
    return {
        "id": [9_000_001],
        "transaction_id": [transaction_id],
        "type": ["burn"],
        "lot_id": [lot_id],
        "issuer_id": ["skyair"],
        "redeemer_id": ["aroma"],
        "points": [points],
        "value_rate": [Decimal("0.01")],
        "reverses_id": [None],
        "period_id": ["2026-03"],
    }


def _earned(connection, remaining: int) -> Writes:
    """An earn of 25 points for m1 and its new lot, holding ``remaining``, queued to write."""
    lot = {
        "id": [NEW_EARN], "transaction_id": [NEW_EARN], "member_id": ["m1"], "issuer_id": ["skyair"],
        "points": [25], "remaining": [remaining],
        "earned_at": [AT], "available_at": [AT], "expires_at": [AT + timedelta(days=365)],
    }
    return Writes(connection).insert(
        models.Transaction.__table__, transaction_columns([NEW_EARN], partner_id="skyair", member_id="m1")
    ).insert(models.Lot.__table__, lot)


def _moved(kind: str, points: int) -> dict[str, list]:
    return transaction_columns(
        [NEW_BURN], type=kind, partner_id="aroma", member_id="m1", points=points,
        amount=None, currency=None, fee_rate=None, rate_ids=(), late=False,
    )


def _failure(database, write) -> DBAPIError:
    """The database's error that refused ``write(connection)``'s transaction."""
    with pytest.raises(DBAPIError) as refused, database.engine.begin() as connection:
        write(connection)
    return refused.value


def _refused(database, write) -> str:
    """The message of the check that refused ``write(connection)``'s transaction."""
    failure = _failure(database, write)
    assert failure.orig.sqlstate == "23514"  # check_violation
    return str(failure)


def test_a_lot_whose_remaining_points_change_alone_is_refused(m1, database):
    lot_id, _ = m1
    before = _ledger(database)

    message = _refused(database, lambda connection: connection.execute(
        text("UPDATE lots SET remaining = remaining - 1 WHERE id = :id"), {"id": lot_id}))

    assert f"lot {lot_id} {LOT_BROKEN}" in message
    assert _ledger(database) == before


def test_an_allocation_its_lot_does_not_show_is_refused(m1, database):
    lot_id, burn_id = m1
    before = _ledger(database)

    message = _refused(database, lambda connection: Writes(connection).insert(
        models.Allocation.__table__, _allocation(burn_id, lot_id, -1)).run())

    assert f"lot {lot_id} {LOT_BROKEN}" in message  # the allocation checks its lot first
    assert _ledger(database) == before


def test_a_new_lot_spent_without_its_remaining_points_set_is_refused(m1, database):
    # an earn's lot of 25 written whole, and a burn of 5 from it that leaves it at 25
    before = _ledger(database)

    def write(connection):
        _earned(connection, remaining=25).insert(models.Transaction.__table__, _moved("burn", -5)).insert(
            models.Allocation.__table__, _allocation(NEW_BURN, NEW_EARN, -5)
        ).run()

    assert f"lot {NEW_EARN} {LOT_BROKEN}" in _refused(database, write)
    assert _ledger(database) == before


def test_a_burn_whose_allocations_do_not_add_up_is_refused(m1, database):
    # the lot shows the extra allocation (123 − 1 = 122 = 2468 − 2345 − 1): only the burn is off
    lot_id, burn_id = m1
    before = _ledger(database)

    def write(connection):
        Writes(connection).insert(
            models.Allocation.__table__, _allocation(burn_id, lot_id, -1)
        ).update(models.Lot.__table__, "remaining", [lot_id], [122]).run()

    assert f"transaction {burn_id} {MOVED_BROKEN}" in _refused(database, write)
    assert _ledger(database) == before


def test_a_lot_written_short_of_its_points_is_refused(m1, database):
    # an earn of 25 whose new lot holds 24 and nothing moved from it
    before = _ledger(database)

    message = _refused(database, lambda connection: _earned(connection, remaining=24).run())

    assert f"lot {NEW_EARN} {LOT_BROKEN}" in message
    assert _ledger(database) == before


@pytest.mark.parametrize("kind, points", [
    ("burn", -5), ("burn_reversal", 5), ("earn_reversal", -5), ("expiry", -5),
])
def test_a_transaction_that_moves_points_with_no_allocation_is_refused(m1, database, kind, points):
    before = _ledger(database)

    message = _refused(database, lambda connection: Writes(connection).insert(
        models.Transaction.__table__, _moved(kind, points)).run())

    assert f"transaction {NEW_BURN} {MOVED_BROKEN}" in message
    assert _ledger(database) == before


def test_the_sums_are_checked_at_commit_not_at_each_statement(m1, database):
    # a burn of 5 from m1's lot in three statements; after the second, the lot is off by 5
    lot_id, _ = m1
    with database.engine.begin() as connection:
        Writes(connection).insert(models.Transaction.__table__, _moved("burn", -5)).run()
        Writes(connection).insert(
            models.Allocation.__table__, _allocation(NEW_BURN, lot_id, -5)
        ).run()
        Writes(connection).update(models.Lot.__table__, "remaining", [lot_id], [118]).run()

    with database.engine.connect() as connection:
        remaining = connection.execute(
            text("SELECT remaining FROM lots WHERE id = :id"), {"id": lot_id}
        ).scalar_one()
    assert remaining == 123 - 5


@pytest.mark.parametrize("elsewhere", [
    "SET LOCAL search_path = ''",  # as pg_dump's scripts and pg_restore set it
    "CREATE TEMPORARY TABLE lots (id bigint, points bigint, remaining bigint) ON COMMIT DROP",
])
def test_the_checks_read_the_ledger_whatever_the_sessions_search_path(m1, database, elsewhere):
    # an empty path found no check_lot at all; a temporary table called lots comes first in
    # any path, and the check read it
    lot_id, _ = m1
    with database.engine.connect() as connection:
        schema = connection.execute(text("SELECT current_schema()")).scalar_one()
    before = _ledger(database)

    def write(points: int):
        def update(connection):
            connection.execute(text(elsewhere))
            connection.execute(text(f'UPDATE "{schema}".lots SET remaining = :points WHERE id = :id'),
                               {"points": points, "id": lot_id})
        return update

    assert f"lot {lot_id} {LOT_BROKEN}" in _refused(database, write(122))
    with database.engine.begin() as connection:
        write(123)(connection)  # its points plus its allocations: 2468 − 2345
    assert _ledger(database) == before


def test_a_downgrade_of_0018_leaves_the_checks_to_the_sessions_search_path(m1, database):
    lot_id, _ = m1

    def break_it(connection):
        connection.execute(text("SET LOCAL search_path = ''"))
        connection.execute(text("UPDATE public.lots SET remaining = 122 WHERE id = :id"), {"id": lot_id})

    with database.engine.begin() as connection:
        migrate(connection, MIGRATIONS[1], "downgrade")
    try:  # undefined_function: check_lot, looked for nowhere
        assert _failure(database, break_it).orig.sqlstate == "42883"
    finally:
        with database.engine.begin() as connection:
            migrate(connection, MIGRATIONS[1], "upgrade")
    assert LOT_BROKEN in _refused(database, break_it)


def _without_checks(connection) -> None:
    """The schema as 0016 left it."""
    for filename in reversed(MIGRATIONS):
        migrate(connection, filename, "downgrade")
    connection.execute(text("UPDATE alembic_version SET version_num = '0016'"))


def _with_checks(connection) -> None:
    for filename in MIGRATIONS:
        migrate(connection, filename, "upgrade")
    connection.execute(text("UPDATE alembic_version SET version_num = :head"), {"head": HEAD})


def test_a_downgrade_takes_the_checks_away_and_an_upgrade_brings_them_back(m1, database):
    lot_id, _ = m1

    def take_one(connection):
        connection.execute(
            text("UPDATE lots SET remaining = remaining - 1 WHERE id = :id"), {"id": lot_id}
        )

    with database.engine.begin() as connection:
        _without_checks(connection)
    try:
        with database.engine.begin() as connection:
            take_one(connection)
    finally:
        with database.engine.begin() as connection:  # put back, or the upgrade would refuse
            connection.execute(text("UPDATE lots SET remaining = 123 WHERE id = :id"), {"id": lot_id})
            _with_checks(connection)

    assert LOT_BROKEN in _refused(database, take_one)


def _checks(connection) -> int:
    return connection.execute(
        text("SELECT count(*) FROM pg_trigger WHERE tgname LIKE '%\\_add\\_up'")
    ).scalar_one()


def test_an_upgrade_made_a_deadlocks_victim_runs_again(database):
    # as when a posting in flight, its statement prepared, holds lots and waits for
    # transactions while the upgrade holds transactions and waits for lots
    with database.engine.begin() as connection:
        _without_checks(connection)
    faults = Faults(database.engine)

    def victim(statement):
        if "CREATE CONSTRAINT TRIGGER lots_add_up" in statement and not faults.failed:
            return psycopg.errors.DeadlockDetected("injected: deadlock detected")
        return None

    try:
        with faults.armed(victim):
            assert schema.upgrade(database) == {"0016"}
        assert len(faults.failed) == 1
    finally:
        faults.remove()
        with database.engine.begin() as connection:
            if not _checks(connection):
                _with_checks(connection)
    with database.engine.connect() as connection:
        assert _checks(connection) == 4
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD


def test_an_upgrade_refuses_a_ledger_that_does_not_add_up_already(m1, database):
    # m1's lot one point short, and a burn of 5 with no allocation
    lot_id, _ = m1
    with database.engine.begin() as connection:
        _without_checks(connection)
        connection.execute(text("UPDATE lots SET remaining = remaining - 1 WHERE id = :id"), {"id": lot_id})
        Writes(connection).insert(models.Transaction.__table__, _moved("burn", -5)).run()
    try:
        with pytest.raises(Conflict) as refused:
            schema.upgrade(database)
        assert (f"the ledger does not add up already (lots {lot_id}; transactions {NEW_BURN}):"
                in refused.value.message)
        with database.engine.connect() as connection:
            assert _checks(connection) == 0
            assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0016"
    finally:  # the burn given its allocation, the lot 2468 − 2345 − 5 = 118: it adds up
        with database.engine.begin() as connection:
            Writes(connection).insert(
                models.Allocation.__table__, _allocation(NEW_BURN, lot_id, -5)
            ).update(models.Lot.__table__, "remaining", [lot_id], [118]).run()
        upgraded = schema.upgrade(database)
    assert upgraded == {"0016"}
    with database.engine.connect() as connection:
        assert _checks(connection) == 4


def _burn_of_every_lot(connection, member: str, lots: list[int]) -> Writes:
    """A burn of one point from each of ``lots`` (each holding one), queued to write."""
    count = len(lots)
    allocations = {
        "id": list(range(9_000_001, 9_000_001 + count)), "transaction_id": [NEW_BURN] * count,
        "type": ["burn"] * count, "lot_id": lots, "issuer_id": ["coalition"] * count,
        "redeemer_id": ["aroma"] * count, "points": [-1] * count,
        "value_rate": [Decimal("0.01")] * count, "reverses_id": [None] * count,
        "period_id": ["2026-03"] * count,
    }
    transaction = transaction_columns(
        [NEW_BURN], type="burn", partner_id="aroma", member_id=member, points=-count,
        amount=None, currency=None, fee_rate=None, rate_ids=(), late=False,
    )
    return Writes(connection).insert(models.Transaction.__table__, transaction).insert(
        models.Allocation.__table__, allocations
    ).update(models.Lot.__table__, "remaining", lots, [0] * count)


def test_a_burn_from_many_lots_is_checked_reading_each_allocation_a_few_times(operator, database):
    # 200 lots of a point each, all burned at once. Each allocation's check summed every
    # allocation of its burn: 200 × 200 rows read, and a burn from 19,700 lots took 47 s to
    # commit. The burn, written in the same statement, is summed once, by its own check.
    count = 200
    add_partner(operator, "aroma", "Кофейня Арома", "cafe", "RUB")
    expect(operator.post("/api/v1/transactions/batch", json={"transactions": [
        {"external_id": f"b{n}", "type": "bonus", "partner_id": "coalition", "member_id": "many",
         "occurred_at": days_ago(3), "points": 1, "reason": "referral"} for n in range(count)
    ]}), 200)
    with database.engine.connect() as connection:
        lots = connection.execute(text("SELECT id FROM lots ORDER BY id")).scalars().all()
    assert len(lots) == count

    with database.engine.begin() as connection:
        # the checks planned by their indexes, as on a ledger of any size: on one this small
        # PostgreSQL may read the whole table for each instead, and did once the table had
        # statistics (ANALYZE, or autovacuum, after the test's reset): 100,300 rows, which
        # says nothing of how many times each allocation is summed. Each planned afresh: a
        # plan the session cached before (the batch's checks of its lots) keeps its scans.
        connection.execute(text("SET LOCAL enable_seqscan = off"))
        connection.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
        _burn_of_every_lot(connection, "many", lots).run()
        before = read_so_far(connection, "allocations")
        connection.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))  # the checks, run now
        read = read_so_far(connection, "allocations") - before

    # each lot's allocations twice (its allocation's check, its update's), the burn's once,
    # and each allocation once more, its check telling it was written beside its burn (0023):
    # 4 × 200, each check reading the rows it sums
    assert 4 * count <= read < 6 * count
    with database.engine.connect() as connection:
        assert connection.execute(text("SELECT sum(remaining) FROM lots")).scalar_one() == 0


def _burn_of_five(connection, lot_id: int, taken: int, left: int) -> None:
    """A new burn of 5 points written in one statement with an allocation taking ``taken``
    from ``lot_id``, and the lot then holding ``left``."""
    Writes(connection).insert(models.Transaction.__table__, _moved("burn", -5)).insert(
        models.Allocation.__table__, _allocation(NEW_BURN, lot_id, -taken)
    ).update(models.Lot.__table__, "remaining", [lot_id], [left]).run()


def test_a_burn_whose_allocations_do_not_add_up_is_refused_in_the_commit_that_writes_it(
    m1, database
):
    # a new burn of 5 whose allocation takes 4 from m1's lot, which shows the 4: the lot adds
    # up, the burn does not; its allocation leaves the burn to the burn's own check
    lot_id, _ = m1
    before = _ledger(database)

    def write(connection):
        _burn_of_five(connection, lot_id, taken=4, left=119)

    assert f"transaction {NEW_BURN} {MOVED_BROKEN}" in _refused(database, write)
    assert _ledger(database) == before


def test_an_allocation_added_after_its_burns_check_has_run_is_refused(m1, database):
    # a burn of 5 from m1's lot, checked at once (SET CONSTRAINTS ... IMMEDIATE, as an operator
    # does to see a check's verdict before the commit); then, in the same commit, a second
    # allocation of 1 to the same burn, which its lot shows (123 − 5 − 1 = 117): the burn's
    # check has run already, so the allocation's own must sum the burn
    lot_id, _ = m1
    before = _ledger(database)

    def write(connection):
        _burn_of_five(connection, lot_id, taken=5, left=118)
        connection.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))
        connection.execute(text("SET CONSTRAINTS ALL DEFERRED"))
        Writes(connection).insert(
            models.Allocation.__table__, {**_allocation(NEW_BURN, lot_id, -1), "id": [9_000_002]}
        ).update(models.Lot.__table__, "remaining", [lot_id], [117]).run()

    assert f"transaction {NEW_BURN} {MOVED_BROKEN}" in _refused(database, write)
    assert _ledger(database) == before
