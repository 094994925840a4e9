"""Signals a command turns into what it can say: a SIGTERM (``kill``, ``timeout``) stops it
as Ctrl-C does, and the command tells what was kept, instead of ending in silence."""

import signal
from contextlib import contextmanager


@contextmanager
def terminate_as_interrupt():
    """SIGTERM raises KeyboardInterrupt, as Ctrl-C does, until the block ends."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    with handled(interrupt, signal.SIGTERM):
        yield


@contextmanager
def handled(handler, *numbers):
    """These signals given to ``handler`` until the block ends, then to their handlers before."""
    previous = {number: signal.signal(number, handler) for number in numbers}
    try:
        yield
    finally:
        for number, before in previous.items():
            signal.signal(number, before)
