"""The service's log: one format for every process of ``coalition serve``, and a line
for a condition that repeats on every request folded into one now and then.

Without a configured handler, Python prints a library's warnings bare (no time,
level or process) and drops its info lines, and Flask adds a handler of its own
at the first unhandled error, so the format changed midway. ``serve`` configures
the root logger once, in the gunicorn master before it forks, so the workers and
the scheduler write alike; gunicorn's access log stays on standard output.
"""

import logging
import threading
import time
from datetime import UTC, datetime

FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"  # as gunicorn's
DATE_FORMAT = "%Y-%m-%d %H:%M:%S %z"
# their INFO lines repeat what the service says itself, or come with each /readyz probe
QUIETER = ("apscheduler", "alembic")


def quantity(number: int, noun: str) -> str:
    """``1 lot``, ``2 lots``, ``1,000 lots``: a count as the log and the commands say it."""
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def configure() -> None:
    """Log INFO and above to standard error, timestamped; libraries' warnings only."""
    logging.basicConfig(level=logging.INFO, format=FORMAT, datefmt=DATE_FORMAT, force=True)
    for name in QUIETER:
        logging.getLogger(name).setLevel(logging.WARNING)


class Throttled:
    """A logger for what repeats while a condition lasts (the database away: a 503
    for each request, hundreds a second): one line per ``every`` seconds, which
    says how many it folded since the one before, and when that was."""

    def __init__(
        self, logger: logging.Logger, every: float = 10.0, clock=time.monotonic, wall=time.time
    ):
        # the interval on a clock that never steps back; the wall clock only to say when
        self.logger, self.every, self.clock, self.wall = logger, every, clock, wall
        self.last = None  # (clock, wall) when the last line was written
        self.folded = 0
        self.lock = threading.Lock()

    def error(self, message: str, *args) -> None:
        with self.lock:
            now = self.clock()
            if self.last is not None and now < self.last[0] + self.every:
                self.folded += 1
                return
            last, folded, self.last, self.folded = self.last, self.folded, (now, self.wall()), 0
        if folded:
            since = datetime.fromtimestamp(last[1], UTC).strftime("%H:%M:%S UTC")
            message += f" (and {folded} like it since {since})"
        self.logger.error(message, *args)
