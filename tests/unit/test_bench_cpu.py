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

BURN = 0.3  # CPU seconds each burner spends
TICK = 0.02  # two clock ticks of slack: the kernel counts CPU time in ticks
ONCE = 1.5 * BURN  # more would count a burner twice (its start-up costs a few hundredths)
BURNER = f"""
import sys, time
while time.process_time() < {BURN}:
    sum(range(10_000))  # user time, mostly: a bare loop on the clock is system time
print("burnt", flush=True)
sys.stdin.read()  # stays alive until told
"""


def _burner() -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", BURNER], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline() == "burnt\n"
    return process


def test_a_live_process_s_cpu_is_counted_in_its_own_tree_and_its_parent_s():
    before = cpu.tree_seconds(os.getpid())
    process = _burner()
    try:
        assert BURN - TICK <= cpu.tree_seconds(process.pid) < ONCE
        assert BURN - TICK <= cpu.tree_seconds(os.getpid()) - before < ONCE
    finally:
        process.communicate("")


def test_an_ended_child_s_cpu_stays_counted_once_its_parent_has_waited():
    before_tree, before_ended = cpu.tree_seconds(os.getpid()), cpu.ended_children()
    _burner().communicate("")

    assert BURN - TICK <= cpu.tree_seconds(os.getpid()) - before_tree < ONCE
    assert BURN - TICK <= cpu.ended_children() - before_ended < ONCE


def test_counted_gives_each_tree_s_cpu_in_the_block_and_none_for_a_process_not_here():
    process = _burner()
    try:
        with cpu.counted(burner=process.pid, nowhere=None, gone=2**22 + 1) as spent:
            time.sleep(0.05)  # the burner waits on its input: it spends nothing now
        assert spent["burner"] < TICK
        assert spent["nowhere"] is None and spent["gone"] is None
    finally:
        process.communicate("")
