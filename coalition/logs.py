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

FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"  # as gunicorn's
DATE_FORMAT = "%Y-%m-%d %H:%M:%S %z"
# their INFO lines repeat what the service says itself, or come with each /readyz probe
QUIETER = ("apscheduler", "alembic")


def configure() -> None:
    """Log INFO and above to standard error, timestamped; libraries' warnings only."""
    logging.basicConfig(level=logging.INFO, format=FORMAT, datefmt=DATE_FORMAT, force=True)
    for name in QUIETER:
        logging.getLogger(name).setLevel(logging.WARNING)


class Throttled:
    """A logger for what repeats while a condition lasts (the database away: a 503
    for each request, hundreds a second): one line per ``every`` seconds, which
    says how many it folded since the last."""

    def __init__(self, logger: logging.Logger, every: float = 10.0):
        self.logger, self.every = logger, every
        self.quiet_until = 0.0
        self.folded = 0
        self.lock = threading.Lock()

    def error(self, message: str, *args) -> None:
        with self.lock:
            now = time.monotonic()
            if now < self.quiet_until:
                self.folded += 1
                return
            folded, self.folded, self.quiet_until = self.folded, 0, now + self.every
        if folded:
            message += f" (and {folded} like it since the last such line)"
        self.logger.error(message, *args)
