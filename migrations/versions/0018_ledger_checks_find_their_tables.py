"""The ledger's checks (0017) read the ledger's tables whatever a session's search path.

0017's functions name lots, allocations and transactions, and one another,
as the search path of the session that commits finds them. A session with
another path could not commit a write to the ledger at all, or would check
other tables. Scripts written by ``pg_dump``, and ``pg_restore``, set the
path empty, so restoring data alone into the schema failed (``function
check_lot(bigint) does not exist``; a full restore makes the triggers after
the data), as did a repair typed after ``SET search_path = ''``; and a
temporary table called ``lots`` (temporary tables come first in any path)
made the check read it, so that an UPDATE of the real lots breaking their
sum committed. Each function now finds its tables in the schema the
ledger's lots are in, then in ``pg_temp`` last, whatever the session's path
(PostgreSQL's advice for functions that must not be misled by it, "Writing
SECURITY DEFINER Functions Safely").

Setting the path at each call costs nothing beyond the noise: 126.7 µs of
PostgreSQL's CPU a batch item against 125.0 without, 30 batches of 1,000
each; single posts spread wider between runs than any difference
(docs/performance-log.md, "0017's cost, counted in CPU").

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05
"""

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

CHECKS = ("row_adds_up()", "check_lot(bigint)", "check_moved(bigint)")


def upgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name != "postgresql":
        return
    schema = connection.exec_driver_sql(
        "SELECT relnamespace::regnamespace::text FROM pg_class WHERE oid = 'lots'::regclass"
    ).scalar_one()  # quoted where it must be
    for function in CHECKS:
        op.execute(f"ALTER FUNCTION {function} SET search_path = {schema}, pg_temp")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for function in CHECKS:
        op.execute(f"ALTER FUNCTION {function} RESET search_path")
