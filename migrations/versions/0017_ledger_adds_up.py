"""PostgreSQL checks, as each transaction commits, that the ledger's rows add up.

Two sums hold across rows (``coalition.domain.lots``): a lot holds its
points plus what its allocations moved (a burn takes, a burn reversal puts
back, a return takes what the lot still holds of its claim, an expiry what
is left), and a burn's, a reversal's or an expiry's allocations add up to
its points (a return's to what it took, its shortfall apart). The ledger's
code keeps them, and the reference-model test checks them after every
step; constraint triggers hold the database to them as well, as the
append-only triggers (0014) do for what is never changed, so that no later
code, no migration and no hand-typed SQL can break them: a commit that
would is refused with ``check_violation`` and writes nothing.

The checks are deferred to the commit, when a unit of work's transaction,
lots and allocations are all in place, however many statements wrote them.
Each fires for a row written: a lot's remaining points set, an allocation,
a transaction of a type that moves points, and a lot inserted short of its
points (one inserted whole has nothing to add up yet; an allocation from
it in the same commit checks it). A lot's check sums its allocations
through a new index of allocations by lot; a transaction's, through the
index by transaction (0001): a few rows whatever the ledger's size. They
cost PostgreSQL 18–20 µs of CPU a batch item of the benchmark's mix, 5–6 %
of an item's CPU in all, and 50 µs an expired lot, so that the expiry job
expires 32–41 % fewer lots a second (docs/performance-log.md, "0017's
cost, counted in CPU").

The rows a ledger holds already are checked once, first, in two GROUP BYs
(they only read: postings wait for them only when the same upgrade applies
an earlier migration first, whose locks it then holds): a ledger that does
not add up is not upgraded, its first broken lots and transactions named,
rather than have every later posting from a broken lot refused at its
commit (and a close that expires it, and so every close after it). With
the index, the upgrade took 9 s on 5.4 million transactions, 3.5 million
lots and 3.4 million allocations, nearly all of it the check.

SQLite has no deferred triggers, and its writes run one by one, so a check
at each statement would refuse the half-written unit of work; there the
ledger's code and its tests keep the sums alone. PostgreSQL is the
production database (SPEC §2).

Building the index takes a SHARE lock on allocations: postings wait for it
(0.8 s at 3.4 million allocations), reads do not. A bulk load run as a
replica (``session_replication_role``, as the benchmark's) fires no trigger.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05
"""

from alembic import op

from coalition.domain.errors import Conflict

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

MOVES_POINTS = "('burn', 'burn_reversal', 'earn_reversal', 'expiry')"

#: The rows that break either sum already, in set form: the check, once, of a ledger
#: written before the triggers (some of each kind; ids in order)
BROKEN = {
    "lots": """
        SELECT lots.id FROM lots
        LEFT JOIN (SELECT lot_id, sum(points) AS moved FROM allocations GROUP BY lot_id) AS a
            ON a.lot_id = lots.id
        WHERE lots.remaining <> lots.points + coalesce(a.moved, 0) ORDER BY lots.id LIMIT 10
    """,
    "transactions": f"""
        SELECT transactions.id FROM transactions
        LEFT JOIN (SELECT transaction_id, sum(points) AS moved FROM allocations
                   GROUP BY transaction_id) AS a ON a.transaction_id = transactions.id
        WHERE transactions.type IN {MOVES_POINTS} AND transactions.points <> coalesce(a.moved, 0)
        ORDER BY transactions.id LIMIT 10
    """,
}

FUNCTIONS = f"""
    CREATE FUNCTION check_lot(checked bigint) RETURNS void LANGUAGE plpgsql AS $$
    BEGIN
        IF EXISTS (
            SELECT FROM lots WHERE id = checked AND remaining <> points
                + (SELECT coalesce(sum(points), 0) FROM allocations WHERE lot_id = checked)
        ) THEN
            RAISE EXCEPTION 'lot % does not hold its points plus what its allocations moved',
                checked USING ERRCODE = 'check_violation';
        END IF;
    END
    $$;
    CREATE FUNCTION check_moved(checked bigint) RETURNS void LANGUAGE plpgsql AS $$
    BEGIN
        IF EXISTS (
            SELECT FROM transactions WHERE id = checked AND type IN {MOVES_POINTS}
                AND points <> (SELECT coalesce(sum(points), 0) FROM allocations
                               WHERE transaction_id = checked)
        ) THEN
            RAISE EXCEPTION 'the allocations of transaction % do not add up to its points',
                checked USING ERRCODE = 'check_violation';
        END IF;
    END
    $$;
    CREATE FUNCTION row_adds_up() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_TABLE_NAME = 'lots' THEN
            PERFORM check_lot(NEW.id);
        ELSIF TG_TABLE_NAME = 'allocations' THEN
            PERFORM check_lot(NEW.lot_id);
            PERFORM check_moved(NEW.transaction_id);
        ELSIF TG_TABLE_NAME = 'transactions' THEN
            PERFORM check_moved(NEW.id);
        ELSE
            RAISE EXCEPTION 'row_adds_up() checks lots, allocations and transactions, not %',
                TG_TABLE_NAME;
        END IF;
        RETURN NULL;
    END
    $$;
"""


def upgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name != "postgresql":
        return
    broken = {
        table: connection.exec_driver_sql(sql).scalars().all() for table, sql in BROKEN.items()
    }
    if any(broken.values()):
        named = "; ".join(
            f"{table} {', '.join(map(str, ids))}" for table, ids in broken.items() if ids
        )
        raise Conflict(
            f"the ledger does not add up already ({named}): upgrade once it does"
            " (docs/operations.md, the ledger's sums)"
        )
    op.execute(FUNCTIONS)
    # the tables in the order a posting's write first locks them; a statement psycopg has
    # prepared locks lots first, and a deadlock with it has the upgrade run again
    # (coalition.db.migrate.upgrade)
    op.execute(
        f"""
        CREATE CONSTRAINT TRIGGER transactions_add_up AFTER INSERT ON transactions
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.type IN {MOVES_POINTS})
            EXECUTE FUNCTION row_adds_up();
        CREATE CONSTRAINT TRIGGER lots_add_up AFTER UPDATE OF remaining ON lots
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION row_adds_up();
        CREATE CONSTRAINT TRIGGER new_lots_add_up AFTER INSERT ON lots
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.remaining <> NEW.points)
            EXECUTE FUNCTION row_adds_up();
        """
    )
    op.create_index("ix_allocations_lot", "allocations", ["lot_id"])
    op.execute(
        """
        CREATE CONSTRAINT TRIGGER allocations_add_up AFTER INSERT ON allocations
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION row_adds_up();
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        DROP TRIGGER transactions_add_up ON transactions;
        DROP TRIGGER new_lots_add_up ON lots;
        DROP TRIGGER lots_add_up ON lots;
        DROP TRIGGER allocations_add_up ON allocations;
        DROP FUNCTION row_adds_up(), check_moved(bigint), check_lot(bigint);
        """
    )
    op.drop_index("ix_allocations_lot", "allocations")
