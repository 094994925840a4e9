"""An allocation leaves its transaction's sum only to a check that will see it.

0022 had an allocation's check leave the sum to its transaction's own check
whenever the transaction was written by the same database transaction. That
check may have run already, though: ``SET CONSTRAINTS ... IMMEDIATE`` runs
the checks queued so far there and then (as an operator types to see a
check's verdict before the commit, and as the tests do), and an allocation
added to the transaction after it, its lot showing it, was then summed by no
check and committed with the transaction's sum wrong, where 0021 refused it.

A transaction's check runs at the earliest when the statement that inserted
it ends, so it sees every allocation that statement inserted beside it; the
service writes a unit of work's transactions, lots and allocations in one
statement (:mod:`coalition.db.writes`). An allocation's check therefore
leaves the sum only when its row and its transaction's were written by the
same statement (same ``xmin``, same ``cmin``), and sums it otherwise, as 0021
did: an allocation added by a later statement, or by hand. It reads its own
row to tell, one row more an allocation: a burn from N lots still reads
about 4 N rows at commit, not N × N. What writes a transaction and its
allocations in separate statements is summed per allocation again, as
under 0021: ``coalition db copy``, which copies table by table, read
4,010,000 allocation rows to copy a burn from 2,000 lots (8,000 under
0022; a few seconds, once). (A frozen transaction keeps its
``xmin`` and ``cmin``; one 2³² transactions old whose both happened to match a
hand-typed allocation's would have that allocation's lot checked, not its
transaction's sum.)

Replacing the function changes only the catalog: instant. Its search path
is pinned again, as 0018 pinned it.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06
"""

import importlib.util
from pathlib import Path

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def _0022():
    """Migration 0022, whose function this one writes again with another allocation check
    (its ``_replace``: the function, then its search path pinned)."""
    path = Path(__file__).with_name("0022_a_burn_is_summed_once.py")
    spec = importlib.util.spec_from_file_location("migration_0022", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SUMMED_UNLESS_WRITTEN_BESIDE_IT = """
            IF NOT EXISTS (
                SELECT FROM transactions, allocations
                WHERE transactions.id = NEW.transaction_id AND allocations.id = NEW.id
                    AND transactions.xmin = allocations.xmin
                    AND transactions.cmin = allocations.cmin
            ) THEN
                PERFORM check_moved(NEW.transaction_id);
            END IF;"""


def upgrade() -> None:
    _0022()._replace(SUMMED_UNLESS_WRITTEN_BESIDE_IT)


def downgrade() -> None:
    migration = _0022()
    migration._replace(migration.SUMMED_UNLESS_WRITTEN_NOW)
