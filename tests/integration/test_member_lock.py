"""The member lock on PostgreSQL: burns of one member queue, rows naming the member do not.

A burn locks its member, then reads and spends the lots. Another unit of
work inserting a row that names the member (an earn's lot) has PostgreSQL
check the foreign key with ``SELECT 1 FROM members … FOR KEY SHARE``. Under
``FOR UPDATE`` that check waited for the burn; two batches, each burning for
a member the other earned for, then deadlocked. ``FOR NO KEY UPDATE`` lets
the check through and still makes a second burn wait. Each step here runs
with a lock timeout, so a wait shows up as an error instead of a hang.
"""

from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from coalition.db import models
from coalition.db.writes import Writes
from coalition.services import members

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
        assert members.lock(session, {MEMBER}) == {MEMBER}
        yield database


def _other_transaction(database, sql: str) -> None:
    with database.engine.connect() as other:
        other.execute(text("SET LOCAL lock_timeout = '1s'"))
        other.execute(text(sql), {"member": MEMBER})
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
            members.lock(session, {MEMBER, "m-other"})
