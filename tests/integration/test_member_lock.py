"""The member lock on PostgreSQL: burns of one member queue, rows naming the member do not.

A burn locks its member, then reads and spends the lots. Another unit of
work inserting a row that names the member (an earn's lot) has PostgreSQL
check the foreign key with ``SELECT 1 FROM members … FOR KEY SHARE``. Under
``FOR UPDATE`` that check waited for the burn; two batches, each burning for
a member the other earned for, then deadlocked. ``FOR NO KEY UPDATE`` lets
the check through and still makes a second burn wait; and members are
locked in their ids' order, wherever their rows lie. Each step here runs
with a lock timeout, so a wait shows up as an error instead of a hang.
"""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from coalition.db import ledger_reads, models
from coalition.db.writes import Writes
from tests.threads import until_waiting_on_locks

pytestmark = pytest.mark.postgres

MEMBER = "m-locked"
FOREIGN_KEY_CHECK = "SELECT 1 FROM ONLY members x WHERE id = :member FOR KEY SHARE OF x"


@pytest.fixture
def locked(database):
    """The member, committed, then locked as a burn locks it, until the test ends."""
    with database.engine.begin() as connection:
        Writes(connection).insert(
            models.Member.__table__, {"id": [MEMBER], "created_at": [datetime.now(UTC)]}
        ).run()
    with database.transaction() as session:
        assert ledger_reads.lock_members(session, {MEMBER}) == {MEMBER}
        yield database


def _other_transaction(database, sql: str, member: str = MEMBER) -> None:
    with database.engine.connect() as other:
        other.execute(text("SET LOCAL lock_timeout = '1s'"))
        other.execute(text(sql), {"member": member})
        other.rollback()


def test_a_foreign_key_check_on_a_locked_member_does_not_wait(locked):
    _other_transaction(locked, FOREIGN_KEY_CHECK)


def test_a_second_burn_of_a_locked_member_waits(locked):
    with pytest.raises(OperationalError, match="lock timeout"):
        _other_transaction(locked, "SELECT id FROM members WHERE id = :member FOR NO KEY UPDATE")


def test_a_second_lock_through_the_service_waits(locked):
    with locked.transaction() as session:
        session.execute(text("SET LOCAL lock_timeout = '1s'"))
        with pytest.raises(OperationalError, match="lock timeout"):
            ledger_reads.lock_members(session, {MEMBER, "m-other"})


def test_the_service_locks_members_in_id_order_wherever_their_rows_lie(database):
    """Burns and reversals of crossing members lock them in one order, their ids', or
    two chunks could each hold a member the other waits for. The rows here lie on disk
    in the reverse of their ids' order, and are many, so a plan that read them in the
    table's order would lock them so. The member written first is held elsewhere: a lock
    of all of them must hold every other one while it waits."""
    ids = [f"m-order-{number:03d}" for number in range(300)]
    with database.engine.begin() as connection:
        Writes(connection).insert(
            models.Member.__table__,
            {"id": ids[::-1], "created_at": [datetime.now(UTC)] * len(ids)},
        ).run()
    lock_statement = "SELECT id FROM members WHERE id = :member FOR NO KEY UPDATE"

    def lock_all():
        with database.transaction() as session:
            session.execute(text("SET LOCAL lock_timeout = '30s'"))
            return ledger_reads.lock_members(session, set(ids))

    with ThreadPoolExecutor(max_workers=1) as pool, database.engine.connect() as holder:
        holder.execute(text(lock_statement), {"member": ids[-1]})
        locking = pool.submit(lock_all)
        until_waiting_on_locks(database.engine, 1, unless=locking.done)
        with pytest.raises(OperationalError, match="lock timeout"):
            _other_transaction(database, lock_statement, ids[0])
        holder.rollback()
        assert locking.result(timeout=30) == set(ids)
