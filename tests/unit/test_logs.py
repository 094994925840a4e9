"""What the service logs: a condition repeating on every request once per interval, saying how
many it folded; what a job run did."""

import logging
from datetime import UTC, datetime

from coalition import jobs, logs


def test_repeated_errors_are_one_line_per_interval_with_the_count_folded(caplog):
    start = datetime(2026, 11, 30, 13, 20, 5, tzinfo=UTC).timestamp()
    clock = [start]
    throttled = logs.Throttled(logging.getLogger("test.throttled"), every=10.0,
                               clock=lambda: clock[0], wall=lambda: clock[0])
    with caplog.at_level(logging.ERROR, logger="test.throttled"):
        for _ in range(5):
            throttled.error("answered 503: %s", "away")  # one line, four folded
        clock[0] = start + 9.9
        throttled.error("answered 503: %s", "away")  # still within 10 s of the line: five folded
        clock[0] = start + 10.0
        throttled.error("answered 503: %s", "away")
        clock[0] = start + 25.0
        throttled.error("answered 503: %s", "back and away again")
    assert [record.getMessage() for record in caplog.records] == [
        "answered 503: away",
        "answered 503: away (and 5 like it since 13:20:05 UTC)",
        "answered 503: back and away again",
    ]


def test_the_interval_is_kept_on_a_clock_that_does_not_step_back(caplog):
    """On the wall clock, a step back of an hour (NTP) silenced every line for that hour."""
    steady, wall = [500.0], [datetime(2026, 11, 30, 14, 0, tzinfo=UTC).timestamp()]
    throttled = logs.Throttled(logging.getLogger("test.stepped"), every=10.0,
                               clock=lambda: steady[0], wall=lambda: wall[0])
    with caplog.at_level(logging.ERROR, logger="test.stepped"):
        throttled.error("answered 503")
        wall[0] -= 3600
        steady[0] += 60
        throttled.error("answered 503")
    assert len(caplog.records) == 2


def test_a_quantity_is_said_in_the_singular_for_one_alone():
    assert [logs.quantity(n, "period") for n in (0, 1, 2, 1000)] == [
        "0 periods", "1 period", "2 periods", "1,000 periods"]


def test_an_auto_close_of_many_periods_names_the_first_and_last_without_claiming_those_between():
    closed = [f"2026-11-{day:02}" for day in (1, 2, 3, 7, 8, 9)]  # a close by hand took 4–6
    assert jobs._closed(closed) == "closed 6 periods: 2026-11-01 … 2026-11-09"
    assert jobs._closed(closed[:2]) == "closed 2 periods: 2026-11-01, 2026-11-02"
    assert jobs._closed(closed[:1]) == "closed 2026-11-01"
    assert jobs._closed([]) == "no period due"


def test_serve_announces_each_job_with_how_often_it_runs():
    # SPEC §9: the expiry job runs hourly; auto-close checks every 15 minutes (operations.md)
    assert jobs.schedule() == "expiry every hour, auto-close every 15 minutes"
