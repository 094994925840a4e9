"""The database refuses to change or delete what the ledger only ever appends.

The code never updates a transaction, an allocation, a final statement or
the record of changes, nor any column of a lot but its remaining points, nor
a closed period's settlement (``coalition/db/models.py``): corrections are
reversals, and a statement downloads as the same bytes for good (SPEC §6,
§7). Triggers hold the database to that as well, so that no later code, no
migration and no hand-typed SQL can do it by mistake: such a statement fails
and its transaction writes nothing. Each fires only on what is refused (an
``UPDATE OF`` the guarded columns, a ``DELETE``), so a posting, which
inserts and sets lots' remaining points, runs none of them. ``TRUNCATE`` is
not guarded: it empties a database, it does not edit one.

Creating a trigger locks its table against writes for an instant; postings
in flight finish first, and new ones wait that instant.

A migration that must rewrite such rows drops the trigger, and creates it
again, in its own transaction.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

LOT_COLUMNS = (
    "id, transaction_id, member_id, issuer_id, points, earned_at, available_at, expires_at"
)
PERIOD_COLUMNS = 'id, start, "end", closed_at, settlement'

#: table: (the columns an update may not name, None for every column; why), in the
#: order a posting's write first locks them (a statement psycopg has prepared locks
#: lots first: a deadlock with it has the upgrade run again, coalition.db.migrate)
GUARDED = {
    "transactions": (None, "a transaction is never changed: a correction is a reversal"),
    "lots": (LOT_COLUMNS, "a lot changes only in its remaining points"),
    "allocations": (None, "an allocation is never changed"),
    "periods": (PERIOD_COLUMNS, "the settlement of a closed period is never changed"),
    "statements": (None, "a final statement is never changed"),
    "changes": (None, "the record of changes is never changed"),
}


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        op.execute(
            """
            CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '% on %: %', TG_OP, TG_TABLE_NAME, TG_ARGV[0];
            END
            $$
            """
        )
    for table, (columns, why) in GUARDED.items():
        update = "UPDATE" if columns is None else f"UPDATE OF {columns}"
        if postgresql:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE {update} OR DELETE ON {table}"
                f" FOR EACH ROW EXECUTE FUNCTION refuse_change('{why}')"
            )
        else:  # one event per SQLite trigger
            for event, name in ((update, "update"), ("DELETE", "delete")):
                op.execute(
                    f"CREATE TRIGGER {table}_append_only_{name} BEFORE {event} ON {table}"
                    f" BEGIN SELECT RAISE(ABORT, '{event.split()[0]} on {table}: {why}'); END"
                )


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table in GUARDED:
        if postgresql:
            op.execute(f"DROP TRIGGER {table}_append_only ON {table}")
        else:
            for name in ("update", "delete"):
                op.execute(f"DROP TRIGGER {table}_append_only_{name}")
    if postgresql:
        op.execute("DROP FUNCTION refuse_change()")
