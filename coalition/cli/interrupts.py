"""Signals a command turns into what it can say: a SIGTERM (``kill``, ``timeout``) or a
SIGHUP (the terminal it runs in closed: an SSH session lost) stops it as Ctrl-C does, and
the command tells what was kept, instead of ending in silence."""

import signal
from contextlib import contextmanager


def stopping() -> tuple[signal.Signals, ...]:
    """The signals besides Ctrl-C's SIGINT that stop a command as Ctrl-C does: its output,
    redirected to a file, then says what was kept (a hangup ended an import in silence,
    leaving no line to go on from). Not SIGHUP in a command started ignoring it, as
    ``nohup`` starts one so that it outlives the terminal it was started in: caught, a
    hangup stopped the import and the close that nohup was there to keep going."""
    if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN:
        return (signal.SIGTERM,)
    return (signal.SIGTERM, signal.SIGHUP)


@contextmanager
def terminate_as_interrupt():
    """SIGTERM and SIGHUP (:func:`stopping`) raise KeyboardInterrupt, as Ctrl-C does, until
    the block ends."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    with handled(interrupt, *stopping()):
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
