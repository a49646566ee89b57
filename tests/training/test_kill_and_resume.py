"""Kill -9 a training run at any moment, resume it, and end with the same weights, bit for
bit, as a run never interrupted — through the command line, with shuffling, Dropout, the
per-batch cosine schedule, checkpoints every few batches, in two data-parallel processes
(``--distribute local:2``);
the faithful LeNet-5 too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import numcnn

MNIST = os.environ.get("NUMCNN_DATA_DIR")
pytestmark = [
    pytest.mark.mnist,
    pytest.mark.skipif(not (MNIST and os.path.isdir(MNIST)),
                       reason="MNIST not available: set NUMCNN_DATA_DIR to the IDX files"),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="signals as on Linux"),
]


def _command(folder: Path, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "numcnn", "train", "--checkpoint-dir", str(folder),
            "--output", str(folder / "final.npz"), "--verbose", "0", *extra]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["OPENBLAS_NUM_THREADS"] = "1"
    return env


def _run(folder: Path, extra: list[str], resume: bool = False) -> subprocess.CompletedProcess:
    cmd = _command(folder, extra) + (["--resume"] if resume else [])
    return subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300)


def _killed_run(folder: Path, extra: list[str], resume: bool, after: float | None
                ) -> int | None:
    """Start the run, SIGKILL it ``after`` seconds past its next checkpoint (``None``: let it
    finish); returns its exit code (None when it was killed)."""
    cmd = _command(folder, extra) + (["--resume"] if resume else [])
    folder.mkdir(parents=True, exist_ok=True)
    log = folder.parent / f"{folder.name}.stderr"
    with open(log, "ab") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=_env(),
                                start_new_session=True)
    ckpt = folder / "checkpoint.npz"
    start = ckpt.stat().st_mtime if ckpt.exists() else None
    deadline = time.monotonic() + 120
    while after is not None and proc.poll() is None and time.monotonic() < deadline:
        if ckpt.exists() and (start is None or ckpt.stat().st_mtime != start):
            time.sleep(after)
            break
        time.sleep(0.005)
    if after is None:  # let it finish
        proc.wait(timeout=300)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)  # the run and any worker it forked
        proc.wait()
        return None
    assert proc.returncode == 0, log.read_text()
    return proc.returncode


def _weights(path: Path) -> dict[str, np.ndarray]:
    return numcnn.load_model(path).get_weights()


@pytest.mark.parametrize("args", [
    pytest.param(["--train-size", "700", "--validation-size", "100", "--epochs", "2",
                  "--batch-size", "20", "--dropout", "0.3", "--checkpoint-every", "4"],
                 id="lenet5-dropout-cosine"),
    pytest.param(["--train-size", "1400", "--validation-size", "100", "--epochs", "2",
                  "--batch-size", "64", "--dropout", "0.3", "--checkpoint-every", "3",
                  "--distribute", "local:2"],
                 id="lenet5-dropout-cosine-local2"),
    pytest.param(["--model", "lenet5-1998", "--train-size", "250", "--epochs", "2",
                  "--augment", "affine", "--checkpoint-every", "60"],
                 id="lenet5-1998-affine"),
])
def test_sigkill_at_several_points_then_resume_is_bit_identical(tmp_path, args):
    whole = tmp_path / "whole"
    done = _run(whole, args)
    assert done.returncode == 0, done.stderr
    reference = _weights(whole / "final.npz")

    run = tmp_path / "killed"
    kills, code = 0, _killed_run(run, args, resume=False, after=0.05)
    for after in (0.0, 0.15, 0.02, 0.3, 0.1, 0.05):  # kill again and again while resuming
        if code is not None:
            break
        kills += 1
        code = _killed_run(run, args, resume=True, after=after)
    while code is None:  # let it finish
        kills += 1
        code = _killed_run(run, args, resume=True, after=None)
    assert code == 0
    assert kills >= 1, "the run finished before it could be killed: make it longer"
    resumed = _weights(run / "final.npz")
    assert set(resumed) == set(reference)
    for name, w in reference.items():
        assert np.array_equal(resumed[name], w), name
    assert not list(run.glob(".*.part")), "a killed write left a temporary file behind"


def test_sigterm_stops_at_a_batch_saves_and_resumes(tmp_path):
    args = ["--train-size", "1200", "--validation-size", "200", "--epochs", "3",
            "--batch-size", "10", "--dropout", "0.2"]
    whole = tmp_path / "whole"
    assert _run(whole, args).returncode == 0
    run = tmp_path / "term"
    proc = subprocess.Popen(_command(run, args), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=_env())
    ckpt = run / "checkpoint.npz"
    deadline = time.monotonic() + 120
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)  # wait for the end of the first epoch
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "stopped by SIGTERM" in err and "--resume" in err
    assert len(err.strip().splitlines()) == 1  # one line, no traceback
    assert _run(run, args, resume=True).returncode == 0
    reference, resumed = _weights(whole / "final.npz"), _weights(run / "final.npz")
    for name, w in reference.items():
        assert np.array_equal(resumed[name], w), name


def test_resume_refuses_another_command_line(tmp_path):
    args = ["--train-size", "300", "--validation-size", "100", "--batch-size", "50"]
    assert _run(tmp_path, args).returncode == 0
    other = _run(tmp_path, ["--train-size", "300", "--validation-size", "100",
                            "--batch-size", "20"], resume=True)
    assert other.returncode == 1
    assert "disagrees with the checkpoint" in other.stderr and "batch_size: 50" in other.stderr
    again = _run(tmp_path, args)
    assert again.returncode == 1 and "already holds a checkpoint" in again.stderr
    assert len(other.stderr.strip().splitlines()) == 1
