"""Data-parallel training over MPI equals one process (``mpiexec -n 2`` and ``-n 3``).

Each test launches ``mpiexec -n K python mpi_equal.py`` (oversubscribed on a small machine):
every rank trains over MPI and alone on the full global batches, and compares parameters
after every step (float64, SGD with momentum and Adam, Dropout, an uneven last batch). The
negative control switches the allreduce off and must see the difference. Without mpi4py or
mpiexec the tests skip, except under CI (``CI=1``), where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).parent
SCRIPT = HERE / "mpi_equal.py"
TIMEOUT = 120
MNIST_DIR = os.environ.get("NUMCNN_DATA_DIR")


def mpiexec() -> str:
    """The ``mpiexec`` to launch with; skips (fails under CI=1) when MPI is missing."""
    why = None
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        why = "mpi4py is not installed (pip install 'numcnn[mpi]')"
    exe = shutil.which("mpiexec")
    if exe is None and why is None:
        why = "no mpiexec on PATH (pip install mpich, or a system MPI)"
    if why is not None:
        if os.environ.get("CI") == "1":
            pytest.fail(f"CI=1 needs the MPI tests to run: {why}")
        pytest.skip(why)
    return exe


def launch(k: int, *argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    env.setdefault("NUMCNN_MPI_TIMEOUT", "30")  # no test waits on a lost rank for long
    cmd = [mpiexec(), "-n", str(k), *argv]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, env=env,
                              cwd=cwd)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{' '.join(cmd)} did not finish in {TIMEOUT} s: {e.stderr!r}")


def result(proc: subprocess.CompletedProcess) -> dict:
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert len(lines) == 1, (proc.returncode, proc.stdout, proc.stderr)
    return json.loads(lines[0])


@pytest.mark.parametrize("case", ["dense", "resnet"])
@pytest.mark.parametrize("k", [2, 3])
def test_every_step_equals_one_process_on_the_global_batch(k, case):
    """dense: two Dropouts; resnet: a residual block with SyncBatchNorm2D (parameters and
    running statistics)."""
    proc = launch(k, sys.executable, str(SCRIPT), "--case", case)
    out = result(proc)
    assert proc.returncode == 0, (out, proc.stderr)
    assert out["size"] == k
    for opt in ("sgd", "adam"):
        assert out[opt]["steps"] == 6  # 2 epochs of 21 samples in batches of 8
        assert out[opt]["max_diff"] <= 1e-12, out
        assert out[opt]["log_diff"] <= 1e-12, out  # the epochs' loss, accuracy, val_*
        assert out[opt]["rank_spread"] == 0.0, out  # every rank holds the same model


def test_negative_control_without_the_allreduce_the_runs_differ():
    proc = launch(2, sys.executable, str(SCRIPT), "--no-allreduce")
    out = result(proc)
    assert proc.returncode == 3, (out, proc.stderr)
    for opt in ("sgd", "adam"):
        assert out[opt]["max_diff"] > 1e-3, out
        assert out[opt]["rank_spread"] > 1e-3, out


def test_per_replica_batchnorm_is_not_one_process():
    """What SyncBatchNorm2D is for: BatchNorm2D normalises each rank's shard on its own."""
    proc = launch(2, sys.executable, str(SCRIPT), "--case", "resnet-bn")
    out = result(proc)
    assert proc.returncode == 3, (out, proc.stderr)
    assert min(out["sgd"]["max_diff"], out["adam"]["max_diff"]) > 1e-3, out


@pytest.mark.skipif(not (MNIST_DIR and os.path.isdir(MNIST_DIR)),
                    reason="MNIST not available: set NUMCNN_DATA_DIR to the folder with the "
                           "IDX files")
@pytest.mark.mnist
def test_cli_under_mpiexec_writes_one_model_equal_to_one_process(tmp_path):
    args = ["train", "--model", "lenet5", "--epochs", "1", "--train-size", "600",
            "--validation-size", "100", "--batch-size", "50", "--seed", "3"]
    cli = [sys.executable, "-m", "numcnn.cli"]
    (tmp_path / "two").mkdir()
    two = launch(2, *cli, *args, "--output", "model.npz", cwd=tmp_path / "two")
    assert two.returncode == 0, two.stderr
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["model.npz"]
    assert two.stdout.count("Saved model to") == 1  # rank 0 alone reports and writes
    one = subprocess.run([*cli, *args, "--output", str(tmp_path / "one.npz")],
                         capture_output=True, text=True, timeout=TIMEOUT,
                         env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    assert one.returncode == 0, one.stderr
    accuracy = [ln for ln in one.stdout.splitlines() if ln.startswith("Test loss")]
    assert accuracy and accuracy[0] in two.stdout.splitlines()
    a, b = np.load(tmp_path / "one.npz"), np.load(tmp_path / "two" / "model.npz")
    assert sorted(a.files) == sorted(b.files)
    for key in a.files:
        if a[key].dtype.kind == "f":
            # float32 weights after 10 steps whose gradients were summed in another order:
            # each step's rounding (~6e-8 relative) grows a little through the momentum
            scale = float(np.abs(a[key]).max()) or 1.0
            assert np.abs(a[key] - b[key]).max() <= 1e-5 * scale, key
        else:
            assert np.array_equal(a[key], b[key]), key


@pytest.mark.skipif(not (MNIST_DIR and os.path.isdir(MNIST_DIR)),
                    reason="MNIST not available: set NUMCNN_DATA_DIR to the folder with the "
                           "IDX files")
@pytest.mark.mnist
def test_a_sweep_as_one_mpmd_job_runs_independent_trainings(tmp_path):
    """docs/distributed.md's sweep recipe: `mpiexec -n 1 A : -n 1 B`, each run with
    --distribute local:1 so the two do not form one data-parallel job."""
    base = [sys.executable, "-m", "numcnn.cli", "train", "--model", "lenet5", "--epochs", "1",
            "--train-size", "400", "--validation-size", "100", "--batch-size", "50",
            "--distribute", "local:1", "--verbose", "0"]
    proc = launch(1, *base, "--lr", "0.02", "--output", "lr0.02.npz", ":", "-n", "1", *base,
                  "--lr", "0.05", "--output", "lr0.05.npz", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("Saved model to") == 2
    a, b = np.load(tmp_path / "lr0.02.npz"), np.load(tmp_path / "lr0.05.npz")
    assert any(a[k].dtype.kind == "f" and not np.array_equal(a[k], b[k]) for k in a.files)
