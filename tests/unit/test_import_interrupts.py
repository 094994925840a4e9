"""A Ctrl-C while an import spawns its workers: held until they are spawned, then
raised in the import; the workers spawned meanwhile ignore it from their start.

Each case runs in a Python of its own: the import's process has one thread when it
spawns its workers, and Python's own SIGINT handler (a test worker ignores SIGINT).
"""

import subprocess
import sys

PREAMBLE = """
import os, signal, subprocess, sys, time
from coalition.processes import signals_held
signal.signal(signal.SIGINT, signal.default_int_handler)  # as a terminal starts a command
SAY_SIGINT = [sys.executable, "-c", "import signal; print(signal.getsignal(signal.SIGINT) == signal.SIG_IGN)"]
"""

CTRL_C_WHILE_HELD = """
try:
    with signals_held({signal.SIGINT}):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)  # time for the signal to arrive, and for its handler to run if it did
        print("held")
    print("lost")
except KeyboardInterrupt:
    print("raised")
print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)
"""

SPAWNED_WHILE_HELD = """
with signals_held({signal.SIGINT}):
    subprocess.run(SAY_SIGINT, check=True)
subprocess.run(SAY_SIGINT, check=True)
"""


def _python(code: str) -> list[str]:
    return subprocess.run(
        [sys.executable, "-c", PREAMBLE + code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.splitlines()


def test_a_ctrl_c_while_the_workers_are_spawned_is_raised_once_they_are():
    assert _python(CTRL_C_WHILE_HELD) == ["held", "raised", "True"]


def test_a_process_spawned_meanwhile_ignores_ctrl_c_from_its_start():
    ignored_meanwhile, ignored_after = _python(SPAWNED_WHILE_HELD)
    assert (ignored_meanwhile, ignored_after) == ("True", "False")
