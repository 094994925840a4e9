"""A Ctrl-C while an import spawns its workers: held until they are spawned, then
raised in the import; the workers spawned meanwhile ignore it from their start."""

import subprocess
import sys

from coalition.services.imports import _sigint_held

# in a process of one thread, as the import's is when it spawns its workers
CTRL_C_WHILE_HELD = """
import os, signal, time
from coalition.services.imports import _sigint_held
try:
    with _sigint_held():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)  # time for the signal to arrive, and for its handler to run if it did
        print("held")
    print("lost")
except KeyboardInterrupt:
    print("raised")
print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)
"""


def _python(code: str) -> list[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()


def test_a_ctrl_c_while_the_workers_are_spawned_is_raised_once_they_are():
    assert _python(CTRL_C_WHILE_HELD) == ["held", "raised", "True"]


def test_a_process_spawned_meanwhile_ignores_ctrl_c_from_its_start():
    with _sigint_held():
        child = subprocess.Popen(
            [sys.executable, "-c", "import signal; print(signal.getsignal(signal.SIGINT).name)"],
            stdout=subprocess.PIPE, text=True)
    assert child.communicate(timeout=30)[0].strip() == "SIG_IGN"
