"""Migration 0009 builds its indexes beside postings in flight without deadlocking them.

An upgrade is one transaction, run while instances of the release before
keep posting. A posting reads its member's lots, then writes transactions
and lots in one statement. An upgrade that waited for a lock on lots while
holding one on transactions would wait on such a posting while the posting
waited on it. Here a unit of work holds what a posting holds after reading
its member's lots; the upgrade must then finish without waiting for it (a
lock timeout turns a wait into an error instead of a hang), and the posting's
write must go through once the upgrade commits.
"""

import pytest
from sqlalchemy import text

from tests.migrations import migrate

pytestmark = pytest.mark.postgres

MIGRATION = "0009_member_balance_indexes.py"
INDEXES = {"ix_lots_member_balance", "ix_transactions_member_burns"}


def _indexes(connection) -> set[str]:
    names = connection.execute(
        text("SELECT indexname FROM pg_indexes WHERE tablename IN ('lots', 'transactions')")
    )
    return set(names.scalars()) & INDEXES


def test_the_upgrade_does_not_wait_for_a_posting_that_has_read_lots(database):
    with database.engine.begin() as connection:
        migrate(connection, MIGRATION, "downgrade")
        assert _indexes(connection) == set()
    try:
        with database.engine.connect() as posting, database.engine.connect() as upgrade:
            posting.execute(text("SELECT count(*) FROM lots WHERE member_id = 'm-any'"))
            upgrade.execute(text("SET LOCAL lock_timeout = '2s'"))
            migrate(upgrade, MIGRATION, "upgrade")
            upgrade.commit()
            posting.execute(text("SET LOCAL lock_timeout = '2s'"))
            posting.execute(text("UPDATE transactions SET points = points WHERE id = -1"))
            posting.execute(text("UPDATE lots SET remaining = remaining WHERE id = -1"))
            posting.commit()
    finally:
        with database.engine.begin() as connection:
            if _indexes(connection) != INDEXES:  # the upgrade failed and rolled back
                migrate(connection, MIGRATION, "upgrade")
    with database.engine.connect() as connection:
        assert _indexes(connection) == INDEXES
