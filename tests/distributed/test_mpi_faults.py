"""Faults and resuming under ``mpiexec``: a rank that raises, dies or hangs ends the whole job
within a bounded time with a clear message; a run killed mid-epoch resumes from rank 0's
backup with another number of ranks and ends where one uninterrupted process ends."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from test_mpi import launch

SCRIPT = str(Path(__file__).parent / "mpi_faults.py")


def timed(k, *argv, cwd=None):
    start = time.monotonic()
    proc = launch(k, sys.executable, SCRIPT, *argv, cwd=cwd)
    return proc, time.monotonic() - start


def test_a_rank_that_raises_stops_every_rank_with_its_message(tmp_path):
    proc, took = timed(2, "--mode", "raise", "--backup", str(tmp_path / "b"))
    assert proc.returncode != 0
    assert "numcnn: MPI rank 1 of 2: RuntimeError: injected fault; stopping every rank" \
        in proc.stderr, proc.stderr
    assert took < 30


def test_a_killed_rank_ends_the_job(tmp_path):
    """mpiexec (MPICH's hydra) sees the rank die and ends the others at once."""
    proc, took = timed(2, "--mode", "kill", "--backup", str(tmp_path / "b"))
    assert proc.returncode != 0
    assert "BAD TERMINATION" in proc.stdout + proc.stderr
    assert took < 30


def test_a_hung_rank_makes_the_others_give_up_after_the_timeout(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMCNN_MPI_TIMEOUT", "2")
    proc, took = timed(2, "--mode", "stop", "--backup", str(tmp_path / "b"))
    assert proc.returncode != 0
    assert "numcnn: MPI rank 0 of 2: waited 2 s for the allreduce" in proc.stderr, proc.stderr
    assert "another rank died or hangs (the bound is NUMCNN_MPI_TIMEOUT=2 s)" in proc.stderr
    assert took < 30


def test_killed_run_resumes_with_another_number_of_ranks(tmp_path):
    backup = tmp_path / "b"
    proc, _ = timed(2, "--mode", "kill", "--backup", str(backup))
    assert proc.returncode != 0
    assert (backup / "checkpoint.npz").is_file()  # rank 0's, after 6 of 12 batches
    proc, _ = timed(3, "--backup", str(backup), "--out", str(tmp_path / "resumed.npy"))
    assert proc.returncode == 0, proc.stderr
    assert "batches 6" in proc.stdout  # the 6 batches after the backup, not all 12
    assert not (backup / "checkpoint.npz").exists()  # removed when training completed
    ref = subprocess.run([sys.executable, SCRIPT, "--distribute", "local:1", "--out",
                          str(tmp_path / "ref.npy")], capture_output=True, text=True,
                         timeout=120, env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    assert ref.returncode == 0, ref.stderr
    assert "batches 12" in ref.stdout
    got, want = np.load(tmp_path / "resumed.npy"), np.load(tmp_path / "ref.npy")
    assert np.abs(got - want).max() <= 1e-12


def test_a_stop_requested_on_one_rank_stops_every_rank_after_the_same_batch(tmp_path):
    """As a signal handler on one rank: the request travels with the next allreduce (one
    batch later), every rank stops there, and the run resumes to one process's result."""
    backup = tmp_path / "b"
    proc, _ = timed(3, "--mode", "request", "--backup", str(backup))
    assert proc.returncode == 0, proc.stderr
    # mpiexec forwards the ranks' output as it comes: lines of two ranks may run together
    stops = sorted(re.findall(r"rank \d+ stopped at epoch \d+ step \d+: (?:True|False)",
                              proc.stdout))
    assert stops == [f"rank {r} stopped at epoch 2 step 0: True" for r in range(3)], stops
    proc, _ = timed(2, "--backup", str(backup), "--out", str(tmp_path / "resumed.npy"))
    assert proc.returncode == 0, proc.stderr
    assert "batches 4" in proc.stdout  # the last epoch
    ref = subprocess.run([sys.executable, SCRIPT, "--distribute", "local:1", "--out",
                          str(tmp_path / "ref.npy")], capture_output=True, text=True,
                         timeout=120, env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    assert ref.returncode == 0, ref.stderr
    got, want = np.load(tmp_path / "resumed.npy"), np.load(tmp_path / "ref.npy")
    assert np.abs(got - want).max() <= 1e-12
