"""The processes the service starts beside its own (the scheduler beside gunicorn's
master, an import's workers) end when the process that started them is gone,
however it ended: killed outright, nothing else would end them. Signals a process
must not take while it starts others are held meanwhile, and its children start
ignoring them."""

import os
import signal
import threading
import time
from contextlib import contextmanager

PARENT_CHECK_SECONDS = 1.0


def until_parent_gone(parent_pid: int) -> None:
    """Return once this process's parent is no longer ``parent_pid``: it ended, and the
    process was handed to another."""
    while os.getppid() == parent_pid:
        time.sleep(PARENT_CHECK_SECONDS)


def exit_with_parent(parent_pid: int) -> None:
    """End this process as soon as ``parent_pid`` is gone, from a thread of its own: a
    pool's worker (an import's, as the pool's initializer), whose work is the parent's
    to give. What it was writing rolls back with its connection; importing the file
    again posts it."""
    threading.Thread(target=_exit_once_gone, args=(parent_pid,), daemon=True).start()


def _exit_once_gone(parent_pid: int) -> None:
    until_parent_gone(parent_pid)
    os._exit(1)


@contextmanager
def signals_held(numbers: set[signal.Signals]):
    """These signals ignored, which a process spawned meanwhile keeps from its first
    instruction (ignored by an initializer, a Ctrl-C reached a worker still importing
    the service, which died with a traceback); and blocked, so that one meanwhile is
    not lost but held (as Linux holds a blocked signal even while it is ignored) and
    raised here once the handler is back. The spawning process must have one thread
    then, as an import's has: another, not blocking them, would be given one and drop
    it."""
    signal.pthread_sigmask(signal.SIG_BLOCK, numbers)
    previous = {number: signal.signal(number, signal.SIG_IGN) for number in numbers}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, numbers)
