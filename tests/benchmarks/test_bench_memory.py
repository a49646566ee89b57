"""The memory probes of the benchmark, checked against what child processes say of themselves
and against allocations of known size (Linux ``/proc``). The benchmark lives in
``benchmarks/`` (``memory.py``, ``bench.py``), which ``conftest.py`` puts on ``sys.path``."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

import bench
import memory

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/smaps_rollup"),
                                reason="needs Linux /proc/<pid>/smaps_rollup")

# a child that starts a grandchild, prints both pids, touches 64 MiB, then waits for stdin
SCRIPT = """
import subprocess, sys
grand = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                         stdin=subprocess.PIPE)
print(grand.pid, flush=True)
sys.stdin.readline()
block = bytearray(64 << 20)
for i in range(0, len(block), 4096):
    block[i] = 1
print("touched", flush=True)
sys.stdin.readline()
grand.stdin.close(); grand.wait()
"""


def test_process_tree_and_pss_follow_real_processes():
    with subprocess.Popen([sys.executable, "-c", SCRIPT], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) as child:
        _check_tree_and_pss(child)
    assert memory.pss_mib(child.pid) == 0.0  # gone: nothing to count


def _check_tree_and_pss(child):
    try:
        grand = int(child.stdout.readline())
        tree = memory.process_tree(child.pid)
        assert tree[0] == child.pid and grand in tree and os.getpid() not in tree
        before = memory.pss_mib(child.pid)
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "touched"
        time.sleep(0.05)
        grown = memory.pss_mib(child.pid) - before
        assert 60 <= grown <= 72  # the 64 MiB block, and little else
        assert memory.status_mib("VmHWM", child.pid) >= 64
    finally:
        child.stdin.write("\n")
        child.stdin.flush()


@pytest.mark.parametrize("threads", [1, 2])
def test_measure_memory_counts_data_parallel_workers(threads):
    got = memory.measure_memory("numcnn", "lenet5", 32, 40, threads, None, True,
                                interval=0.005)
    # the synthetic set alone is 60,000 float32 images of 28x28 = 179 MiB, resident
    assert got["base_mib"] > 179 and got["peak_mib"] >= got["base_mib"]
    assert got["pss_peak_mib"] > 179
    # a forked worker shares the dataset, so PSS stays well below two full copies
    assert got["pss_peak_mib"] < got["peak_mib"] + 150


def test_memory_rows_and_summary_labels(capsys, monkeypatch):
    fake = {"base_mib": 100.0, "peak_mib": 150.0, "pss_peak_mib": 140.0}
    monkeypatch.setattr(bench, "measure_memory", lambda *a, **k: dict(fake))
    rows = bench.run_bench(threads=(1,), batch_sizes=(), steps=2, repeats=1, inference=False,
                           memory=True, synthetic=True, torch=False)
    assert [r["measure"] for r in rows] == list(bench.SHORT)
    assert [r["numcnn"] for r in rows] == [[150.0], [50.0], [140.0]]
