"""The ``numcnn`` command line: end to end on MNIST, and its one-line errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from _cli import MNIST_DIR, needs_mnist, run_cli
from numcnn import cli


def test_summary_lenet5_counts_parameters(capsys):
    code, out, err = run_cli(capsys, "summary", "lenet5")
    assert code == 0, err
    # 6·(5·5·1+1) + 16·(5·5·6+1) + 120·(400+1) + 84·(120+1) + 10·(84+1), counted by hand
    expected = 6 * 26 + 16 * 151 + 120 * 401 + 84 * 121 + 10 * 85
    assert expected == 61706
    assert f"Total params: {expected:,}" in out
    assert "Layer (type)" in out and "Output Shape" in out and "Param #" in out


@pytest.mark.parametrize(
    "argv, pattern",
    [
        (["summary", "nosuchnet"], r"unknown model 'nosuchnet'"),
        (["train", "--model", "nosuchnet"], r"unknown model 'nosuchnet'"),
        (["train", "--epochs", "0"], r"--epochs must be a positive int; received '0'"),
        (["train", "--lr", "abc"], r"--lr must be a positive float; received 'abc'"),
        (["train", "--batch-size", "-3"], r"--batch-size must be a positive int"),
        (["evaluate", "/nonexistent/model.npz"], r"no model file at /nonexistent/model.npz"),
        (["frobnicate"], r"invalid choice"),
    ],
)
def test_bad_arguments_give_one_line_on_stderr(capsys, argv, pattern):
    code, out, err = run_cli(capsys, *argv)
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("numcnn: error:")
    assert re.search(pattern, lines[0]), lines[0]
    assert "Traceback" not in err


def test_missing_data_is_one_clear_line(tmp_path, monkeypatch):
    env = dict(os.environ, NUMCNN_DATA_DIR=str(tmp_path), NUMCNN_HOME=str(tmp_path / "cache"),
               NUMCNN_MNIST_MIRROR="http://127.0.0.1:9/")
    proc = subprocess.run(
        [sys.executable, "-m", "numcnn", "train", "--epochs", "1", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode != 0
    err_lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("numcnn: error:")]
    assert len(err_lines) == 1, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == err_lines[0]
    # a named folder that lacks the files is reported, never a reason to download
    assert "MNIST files not found" in err_lines[0] and str(tmp_path) in err_lines[0]
    assert "NUMCNN_DATA_DIR" in err_lines[0] and "could not download" not in err_lines[0]
    assert "Traceback" not in proc.stderr


@needs_mnist
@pytest.mark.mnist
@pytest.mark.slow
def test_train_one_epoch_reaches_97_5_percent_and_round_trips(tmp_path, capsys):
    path = tmp_path / "lenet5.npz"
    code, out, err = run_cli(capsys, "train", "--model", "lenet5", "--epochs", "1",
                             "--seed", "0", "--verbose", "2", "--data-dir", MNIST_DIR,
                             "--output", str(path))
    assert code == 0, err
    assert re.search(r"Epoch 1/1 .*loss: .*accuracy: .*val_loss: .*val_accuracy: ", out)
    acc = float(re.search(r"test accuracy: ([0-9.]+)", out).group(1))
    assert acc >= 0.975, out
    # the saved file is plain arrays: loadable without pickle
    with np.load(path, allow_pickle=False) as f:
        assert "__config__" in f.files
    code, out2, err2 = run_cli(capsys, "evaluate", str(path), "--data-dir", MNIST_DIR)
    assert code == 0, err2
    acc2 = float(re.search(r"test accuracy: ([0-9.]+)", out2).group(1))
    assert acc2 == acc


@needs_mnist
@pytest.mark.mnist
def test_train_with_adam_and_a_cosine_schedule(capsys):
    code, out, err = run_cli(capsys, "train", "--optimizer", "adam", "--lr", "0.002",
                             "--schedule", "cosine", "--train-size", "5500", "--epochs", "2",
                             "--validation-size", "500", "--verbose", "2",
                             "--data-dir", MNIST_DIR)
    assert code == 0, err
    assert "Adam(lr=0.002" in out
    lrs = [float(v) for v in re.findall(r"lr: ([0-9.eE+-]+)", out)]
    assert len(lrs) == 2 and lrs[0] < 0.002 and lrs[1] < 1e-4  # decayed to ~0 by the end
    acc = float(re.search(r"test accuracy: ([0-9.]+)", out).group(1))
    assert acc >= 0.90, out


def test_bench_times_numcnn_alone_on_synthetic_data(capsys):
    code, out, err = run_cli(capsys, "bench", "--steps", "2", "--repeats", "2",
                             "--batch-size", "16", "--synthetic")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0].startswith("model lenet5; numcnn ") and "PyTorch" not in out
    assert lines[1] == "| measure | threads | batch | numcnn median (min–max) |"
    rows = {line.split(" | ")[0].lstrip("| "): line for line in lines[3:]}
    assert set(rows) == {"train s/epoch", "train images/s", "infer images/s (batch 1000)"}
    for line in rows.values():
        med, lo, hi = map(float, re.search(r"\| ([0-9.]+) \(([0-9.]+)–([0-9.]+)\) \|$",
                                           line).groups())
        assert 0 < lo <= med <= hi
    assert "| 1 | 16 |" in rows["train s/epoch"]


def test_bench_builds_a_classic_network_for_mnist_images(capsys):
    # the zoo's resnet20 defaults to 3×32×32 and 10 classes: bench used to build it so and
    # then refuse MNIST's (N, 1, 28, 28) batches
    code, out, err = run_cli(capsys, "bench", "--model", "resnet20", "--steps", "1",
                             "--repeats", "1", "--batch-size", "8", "--synthetic",
                             "--no-inference")
    assert code == 0, err
    assert out.startswith("model resnet20; numcnn ") and "train s/epoch" in out
    code, out, err = run_cli(capsys, "bench", "--model", "alexnet", "--synthetic")
    assert code != 0 and "alexnet accepts images of at least 63×63 pixels" in err
    assert len(err.strip().splitlines()) == 1


def test_bench_help_points_to_the_comparison_with_pytorch(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["bench", "--help"])
    assert e.value.code == 0
    assert "python benchmarks/lenet_vs_torch.py" in " ".join(capsys.readouterr().out.split())
