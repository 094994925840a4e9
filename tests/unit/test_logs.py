"""A condition that repeats on every request is logged once per interval, saying how many it folded."""

import logging

from coalition import logs


def test_repeated_errors_are_one_line_per_interval_with_the_count_folded(monkeypatch, caplog):
    clock = [100.0]
    monkeypatch.setattr(logs.time, "monotonic", lambda: clock[0])
    throttled = logs.Throttled(logging.getLogger("test.throttled"), every=10.0)
    with caplog.at_level(logging.ERROR, logger="test.throttled"):
        for _ in range(5):
            throttled.error("answered 503: %s", "away")  # one line, four folded
        clock[0] = 109.9
        throttled.error("answered 503: %s", "away")  # still quiet: five folded
        clock[0] = 110.0
        throttled.error("answered 503: %s", "away")
        clock[0] = 125.0
        throttled.error("answered 503: %s", "back and away again")
    assert [record.getMessage() for record in caplog.records] == [
        "answered 503: away",
        "answered 503: away (and 5 like it since the last such line)",
        "answered 503: back and away again",
    ]
