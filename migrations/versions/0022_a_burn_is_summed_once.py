"""A transaction written in the commit that writes its allocations is summed once.

0017's check of an allocation summed every allocation of its transaction,
for each allocation: a burn from N lots read N × N rows as it committed. A
member who earns a little every day holds thousands of lots, and a burn of
most of such a balance is one allocation a lot: from 4,700 lots it took
4.1 s to commit, from 19,700 lots 47 s, holding the member and the calendar
locked all along (docs/performance-log.md, "Members with many lots").

A transaction that moves points is summed by its own check, queued when it
is inserted and run at the same commit as its allocations' checks. An
allocation's check therefore leaves the sum to it when the transaction was
written by this same database transaction (its ``xmin`` is this
transaction's id), and sums it only for an allocation added to a
transaction committed before: SQL typed by hand, which is what the check
is there for. A transaction written in a subtransaction has a ``xmin`` of
its own and is summed by each allocation, as before: slower, never
unchecked. (A frozen row keeps its ``xmin``, so a transaction 2³² ids
old could pass for one written now, for one database transaction: a
hand-typed allocation added to it then would have its lot checked, not
its transaction's sum.) The lot's check is unchanged: it reads the lot's
own few allocations.

Replacing the function changes only the catalog: instant, and run again it
makes the same function. Its search path is pinned again, as 0018 pinned
it (``CREATE OR REPLACE`` sets a function's settings anew).

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06
"""

from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def _row_adds_up(allocation_checks_its_transaction: str) -> str:
    return f"""
    CREATE OR REPLACE FUNCTION row_adds_up() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_TABLE_NAME = 'lots' THEN
            PERFORM check_lot(NEW.id);
        ELSIF TG_TABLE_NAME = 'allocations' THEN
            PERFORM check_lot(NEW.lot_id);
            {allocation_checks_its_transaction}
        ELSIF TG_TABLE_NAME = 'transactions' THEN
            PERFORM check_moved(NEW.id);
        ELSE
            RAISE EXCEPTION 'row_adds_up() checks lots, allocations and transactions, not %',
                TG_TABLE_NAME;
        END IF;
        RETURN NULL;
    END
    $$
    """


SUMMED_UNLESS_WRITTEN_NOW = """
            IF NOT EXISTS (
                SELECT FROM transactions
                WHERE id = NEW.transaction_id AND xmin = pg_current_xact_id()::xid
            ) THEN
                PERFORM check_moved(NEW.transaction_id);
            END IF;"""
ALWAYS_SUMMED = "PERFORM check_moved(NEW.transaction_id);"


def _replace(body: str) -> None:
    connection = op.get_bind()
    if connection.dialect.name != "postgresql":
        return
    schema = connection.exec_driver_sql(
        "SELECT relnamespace::regnamespace::text FROM pg_class WHERE oid = 'lots'::regclass"
    ).scalar_one()  # quoted where it must be
    op.execute(_row_adds_up(body))
    op.execute(f"ALTER FUNCTION row_adds_up() SET search_path = {schema}, pg_temp")


def upgrade() -> None:
    _replace(SUMMED_UNLESS_WRITTEN_NOW)


def downgrade() -> None:
    _replace(ALWAYS_SUMMED)
