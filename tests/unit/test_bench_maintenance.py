"""The benchmark's note of autovacuum's work while a figure ran (bench/maintenance.py):
it is what says whether a figure shared the machine with the database's own upkeep."""

from bench import maintenance, report

QUIET = ({"lots": (1, 2), "transactions": (0, 1)}, set())


def test_a_run_that_ended_between_the_snapshots_is_seen_by_its_tables_counts():
    after = ({"lots": (2, 2), "transactions": (0, 3)}, set())
    assert maintenance._work(QUIET, after) == ["analyze transactions", "vacuum lots"]


def test_a_run_still_going_at_either_snapshot_is_seen_as_its_worker_says():
    started = (QUIET[0], {"vacuum analyze allocations"})
    still = (QUIET[0], {"analyze lots"})
    assert maintenance._work(started, still) == ["analyze lots", "vacuum analyze allocations"]


def test_no_work_and_a_table_made_meanwhile_without_any_is_none():
    after = ({**QUIET[0], "bench_ceiling": (0, 0)}, set())
    assert maintenance._work(QUIET, after) == []
    assert report.autovacuum({"(a)": [], "(d)": []}) == "none"


def test_a_table_made_meanwhile_and_vacuumed_is_seen():
    after = ({**QUIET[0], "bench_ceiling": (1, 0)}, set())
    assert maintenance._work(QUIET, after) == ["vacuum bench_ceiling"]


def test_the_note_names_each_figure_that_shared_the_machine_with_it():
    noted = report.autovacuum({"(a)": [], "(d)": ["analyze lots", "vacuum lots"], "(e)": ["x"]})
    assert noted == "(d) analyze lots, vacuum lots; (e) x"
