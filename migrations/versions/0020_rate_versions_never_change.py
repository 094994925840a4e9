"""The database refuses to change or delete a rate version.

Rates are versions kept for ever (SPEC §5): a new version replaces an old one
from its ``effective_from``, a promo ends by its ``effective_to``, a threshold
is withdrawn by a version of 0, and the code never updates or deletes a rate
row. Each process's catalog (``coalition/services/catalog.py``) now relies on
it: after a change it reads only the versions added since its last copy, so a
version changed by hand would be seen by no running instance. Triggers hold
the database to it, as migration 0014 does for the ledger: such a statement
fails and its transaction writes nothing. ``TRUNCATE`` is not guarded (it
empties a database; the catalog finds its copy gone and reads every version).

Creating a trigger locks the table against writes for an instant; a rate
being added finishes first.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06
"""

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

WHY = "a rate version is never changed: a new version replaces it"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":  # refuse_change() is migration 0014's
        # run again, it changes nothing: the upgrade's lock tests stamp a live service's
        # database back to an earlier revision (CREATE OR REPLACE TRIGGER is PostgreSQL 14's)
        op.execute("DROP TRIGGER IF EXISTS rates_append_only ON rates")
        op.execute(
            "CREATE TRIGGER rates_append_only BEFORE UPDATE OR DELETE ON rates"
            f" FOR EACH ROW EXECUTE FUNCTION refuse_change('{WHY}')"
        )
    else:  # one event per SQLite trigger
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER rates_append_only_{event.lower()} BEFORE {event} ON rates"
                f" BEGIN SELECT RAISE(ABORT, '{event} on rates: {WHY}'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER rates_append_only ON rates")
    else:
        for event in ("update", "delete"):
            op.execute(f"DROP TRIGGER rates_append_only_{event}")
