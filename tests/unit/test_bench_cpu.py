"""The benchmark's count of CPU by process tree (bench/cpu.py), against processes that
burn a known amount of it: a figure's split between the service and PostgreSQL is
only as good as this count."""

import os
import subprocess
import sys
import time

import pytest

from bench import cpu

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc (Linux)")

BURN = 0.3  # CPU seconds a burner spends each time it is told to
SLACK = 2 / cpu.TICKS  # two clock ticks: the kernel counts CPU time in ticks
ONCE = 1.5 * BURN  # more would count a burner twice (its start-up costs a few hundredths)
BURNER = """
import os, sys, time
def burn(seconds):
    until = time.process_time() + seconds
    while time.process_time() < until:
        if sys.argv[1] == "user":
            sum(range(10_000))  # arithmetic: user time
        else:
            os.getppid()  # a system call: system time
for line in sys.stdin:  # one burn a line, told by its parent
    burn(float(line))
    print("burnt", flush=True)
"""


def _burner(kind: str = "user", via_shell: bool = False) -> subprocess.Popen:
    """A process that burns BURN of CPU at once, then again each time it is told."""
    command = [sys.executable, "-c", BURNER, kind]
    if via_shell:  # a grandchild: the shell waits for it rather than become it
        command = ["sh", "-c", '"$@"; true', "sh", *command]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    _tell(process)
    return process


def _tell(process: subprocess.Popen) -> None:
    process.stdin.write(f"{BURN}\n")
    process.stdin.flush()
    assert process.stdout.readline() == "burnt\n"


@pytest.mark.parametrize("kind", ["user", "system"])
def test_a_live_process_s_cpu_is_counted_in_its_own_tree_and_its_parent_s(kind):
    with cpu.counted(me=os.getpid()) as started:
        process = _burner(kind)
    try:
        with cpu.counted(burner=process.pid, me=os.getpid()) as burnt:
            _tell(process)
        assert BURN - SLACK <= started["me"] < ONCE
        assert BURN - SLACK <= burnt["burner"] <= burnt["me"] < ONCE  # one reading of both
    finally:
        process.communicate("")


def test_a_grandchild_s_cpu_is_counted_in_the_tree():
    with cpu.counted(me=os.getpid()) as started:
        process = _burner(via_shell=True)
    try:
        assert BURN - SLACK <= started["me"] < ONCE
    finally:
        process.communicate("")


def test_an_ended_child_s_cpu_stays_counted_once_its_parent_has_waited():
    before_ended = cpu.ended_children()
    with cpu.counted(me=os.getpid()) as spent:
        _burner().communicate("")

    assert BURN - SLACK <= spent["me"] < ONCE
    assert BURN - SLACK <= cpu.ended_children() - before_ended < ONCE


def test_counted_gives_what_each_tree_spent_in_the_block_and_none_for_a_process_not_here():
    process = _burner()
    try:
        with cpu.counted(burner=process.pid, nowhere=None, gone=2**22 + 1) as spent:
            _tell(process)
        time.sleep(0.05)
        _tell(process)  # after the block: not counted
        assert BURN - SLACK <= spent["burner"] < BURN + SLACK
        assert spent["nowhere"] is None and spent["gone"] is None
    finally:
        process.communicate("")
