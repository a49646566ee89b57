"""A sweep as one MPI job (``numcnn.training.distributed.sweep_groups``, MPI's own process
groups): ``mpiexec -n 4`` split into 2 data-parallel groups of 2 ranks (and ``-n 3`` into
2 + 1), each group training its own learning rate; each group's run equals the same run
alone after every step, and the two runs differ from each other."""

from __future__ import annotations

import re
import sys

import pytest
from test_mpi import HERE, launch, result


@pytest.mark.parametrize("k,sizes", [(4, [2, 2]), (3, [2, 1])])
def test_each_group_of_a_sweep_equals_its_run_alone(k, sizes):
    proc = launch(k, sys.executable, str(HERE / "mpi_sweep.py"))
    out = result(proc)
    assert proc.returncode == 0, (out, proc.stderr)
    assert [g["size"] for g in out["groups"]] == sizes
    assert [g["lr"] for g in out["groups"]] == [0.05, 0.2]
    for g in out["groups"]:
        assert g["max_diff"] <= 1e-12, out  # after each of the 6 steps
        assert g["rank_spread"] == 0.0, out
    assert out["apart"] > 1e-3, out  # two runs, not one


def test_sweep_groups_refuses_more_groups_than_ranks():
    proc = launch(2, sys.executable, "-c", "from numcnn.training.distributed import "
                  "sweep_groups; sweep_groups(3)")
    assert proc.returncode != 0
    assert "groups must be an int from 1 to the 2 rank(s) of this job; received 3" \
        in proc.stderr, proc.stderr


def test_the_example_writes_one_model_per_group(tmp_path):
    example = HERE.parent.parent / "examples" / "mpi_sweep.py"
    proc = launch(4, sys.executable, str(example), "--synthetic", "--train-size", "512",
                  "--lr", "0.02", "0.05", "--out-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    # mpiexec forwards each rank's output as it comes: two groups' lines may run together
    # on one line, so the reports are found by pattern, not line by line
    groups = sorted(re.findall(r"group (\d+) \((\d+) ranks\):", proc.stdout))
    assert groups == [("0", "2"), ("1", "2")], proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep_lr0.02.npz",
                                                          "sweep_lr0.05.npz"]
