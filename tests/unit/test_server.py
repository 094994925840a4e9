"""What ``coalition serve`` says once it listens, and how its workers quit."""

import os
import signal
import threading

import pytest
from gunicorn import config

from coalition import server


@pytest.mark.parametrize(
    ("host", "opened"),
    [("0.0.0.0", "http://127.0.0.1:5000"), ("::", "http://[::1]:5000")],
)
def test_a_wildcard_host_is_announced_by_an_address_a_browser_opens(host, opened):
    """It printed http://0.0.0.0:5000, which browsers refuse to open."""
    assert server.banner(host, 5000, "off").splitlines() == [
        f"Coalition on {opened}  (API docs at /api/docs)",
        "Listening on every address of this machine, port 5000",
        "Jobs: off",
    ]


@pytest.mark.parametrize(
    ("host", "opened"),
    [("127.0.0.1", "http://127.0.0.1:8080"), ("10.1.2.3", "http://10.1.2.3:8080"),
     ("fe80::1", "http://[fe80::1]:8080")],
)
def test_one_address_is_announced_as_it_is_served(host, opened):
    assert server.banner(host, 8080, "expiry every 5 min").splitlines() == [
        f"Coalition on {opened}  (API docs at /api/docs)",
        "Jobs: expiry every 5 min",
    ]


def test_a_worker_told_to_quit_does_not_wait_for_its_thread_pool():
    """A Ctrl-C signals a worker twice (the terminal's SIGINT, then the master's SIGQUIT).
    gunicorn's handler shut the thread pool down under the pool's lock, and a signal
    handled while that lock was held, by the first handler or by the worker's loop
    handing the pool a connection, waited for it for ever: held here by the test."""
    worker = server.Worker(1, os.getpid(), [], None, 30, config.Config(), None)
    worker.tpool = worker.get_thread_pool()
    ended = []

    def quit_():
        try:
            worker.handle_quit(signal.SIGQUIT, None)
        except SystemExit as exit_:
            ended.append(exit_.code)

    try:
        with worker.tpool._shutdown_lock:  # as while the loop submits a connection
            quitting = threading.Thread(target=quit_, daemon=True)
            quitting.start()
            quitting.join(timeout=5)
            assert ended == [0], "the worker waited for the pool's lock instead of quitting"
        assert not worker.alive
    finally:
        worker.tpool.shutdown()
        worker.tmp.close()
