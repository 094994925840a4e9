"""Migration 0026 moves a closed period's kept KPI counts from the period's row to
``closed_period_counts``, and a downgrade moves them back.

The month is ``small_month``'s: m1 earns at skyair and burns at aroma, m2 earns at
aroma and burns at skyair, so 2 members are active in the coalition and 2 at aroma.
The counts kept are doctored first (one more active member everywhere: 3 and 3),
so an answer with the doctored figures after the migration was read from what it
moved, and one with the hand-worked figures was counted again because it lost them.
"""

from sqlalchemy import inspect, text

from coalition.services import kpi_counts
from tests.e2e.settlement_world import close, small_month
from tests.e2e.test_api_kpis import doctor_kept_counts, kept_kpi_counts, partner, period
from tests.migrations import migrate

MIGRATION = "0026_closed_period_counts_apart.py"


def _active_members(operator, month) -> tuple[int, int]:
    figures = period(operator, month)
    return figures["coalition"]["active_members"], partner(figures, "aroma")["active_members"]


def _kept_on_the_periods(connection) -> list[tuple]:
    return connection.execute(text("SELECT id, activity FROM periods")).all()


def _closed_with_doctored_counts(operator, database) -> tuple[str, str]:
    """The month closed and counted, its kept counts doctored (3 and 3): its id and them."""
    month = small_month(operator)
    close(operator, month)
    period(operator, month)
    doctor_kept_counts(database, month, version=kpi_counts.COUNTS_VERSION)
    return month, kept_kpi_counts(database, month)


def test_the_counts_kept_move_to_their_table_and_back(operator, database):
    month, kept = _closed_with_doctored_counts(operator, database)
    with database.engine.begin() as connection:
        migrate(connection, MIGRATION, "downgrade")
        assert "closed_period_counts" not in inspect(connection).get_table_names()
        assert _kept_on_the_periods(connection) == [(month, kept)]
        migrate(connection, MIGRATION, "upgrade")
        assert "activity" not in {column["name"] for column in inspect(connection).get_columns("periods")}
    assert kept_kpi_counts(database, month) == kept
    assert _active_members(operator, month) == (3, 3)


def test_a_period_without_kept_counts_is_counted_after_the_move(operator, database):
    month = small_month(operator)
    close(operator, month)
    with database.engine.begin() as connection:
        migrate(connection, MIGRATION, "downgrade")
        assert _kept_on_the_periods(connection) == [(month, None)]
        migrate(connection, MIGRATION, "upgrade")
    assert kept_kpi_counts(database, month) is None
    assert _active_members(operator, month) == (2, 2)
    assert kept_kpi_counts(database, month) is not None


def test_run_again_on_a_schema_it_made_the_upgrade_moves_nothing(operator, database):
    # a schema stamped back to an earlier revision by hand upgrades through 0026 again
    month, kept = _closed_with_doctored_counts(operator, database)
    with database.engine.begin() as connection:
        migrate(connection, MIGRATION, "upgrade")
    assert kept_kpi_counts(database, month) == kept
    assert _active_members(operator, month) == (3, 3)
