"""Ledger ids as BIGINT on PostgreSQL: transactions, lots and allocations.

Their ids and the columns that refer to them were INTEGER, whose sequences
stop at 2,147,483,647: a sustained 1,000 transactions a second, each with a
lot or allocations, would exhaust them in under a month, and every id a
rolled-back posting drew is gone too. The sequences become BIGINT along
with the columns.

Each table is rewritten under an exclusive lock, with its indexes: on a
large ledger this takes minutes, during which postings wait. SQLite needs
nothing: its INTEGER keys already hold 64 bits.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

#: Per table, its id and the columns that refer to a ledger id.
LEDGER_IDS = {
    "transactions": ("id", "original_id"),
    "lots": ("id", "transaction_id"),
    "allocations": ("id", "transaction_id", "lot_id", "reverses_id"),
}


def _retype(sql_type: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, columns in LEDGER_IDS.items():
        changes = ", ".join(f"ALTER COLUMN {column} TYPE {sql_type}" for column in columns)
        op.execute(f"ALTER TABLE {table} {changes}")
        op.execute(
            "DO $$ BEGIN EXECUTE format('ALTER SEQUENCE %s AS " + sql_type + "',"
            f" pg_get_serial_sequence('{table}', 'id')); END $$"
        )


def upgrade() -> None:
    _retype("bigint")


def downgrade() -> None:
    _retype("integer")  # refused by PostgreSQL once any id is past INTEGER's range
