"""The processes the service starts beside its own (the scheduler beside gunicorn's
master, an import's workers) end when the process that started them is gone,
however it ended: killed outright, nothing else would end them."""

import os
import time

PARENT_CHECK_SECONDS = 1.0


def until_parent_gone(parent_pid: int) -> None:
    """Return once this process's parent is no longer ``parent_pid``: it ended, and the
    process was handed to another."""
    while os.getppid() == parent_pid:
        time.sleep(PARENT_CHECK_SECONDS)
