"""``numcnn train --clipnorm X --clipvalue Y``: bad values are one line on stderr, the
settings reach the optimizer, the saved model and the checkpoint, and a resume with other
clip settings is refused."""

from __future__ import annotations

import pytest

import numcnn
from _cli import QUICK, needs_mnist, one_error_line, run_cli


@pytest.mark.parametrize("flag", ["--clipnorm", "--clipvalue"])
@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf", "-inf", "abc", "1e999", ""])
def test_bad_clip_values_are_one_line(capsys, flag, value):
    code, out, err = run_cli(capsys, "train", *QUICK, f"{flag}={value}")
    assert code == 2
    line = one_error_line(err)
    assert f"{flag} must be a positive float; received {value!r}" in line
    assert "Training" not in out


@needs_mnist
def test_clip_options_are_refused_by_the_1998_protocol(capsys):
    code, out, err = run_cli(capsys, "train", *QUICK, "--model", "lenet5-1998",
                             "--clipnorm", "1", "--clipvalue", "0.5")
    assert code != 0
    assert "--clipnorm, --clipvalue: not used by --model lenet5-1998" in one_error_line(err)


@needs_mnist
def test_train_with_clipping_reaches_the_optimizer_and_the_saved_model(capsys, tmp_path):
    path = tmp_path / "m.npz"
    code, out, err = run_cli(capsys, "train", *QUICK, "--optimizer", "adam", "--lr", "0.002",
                             "--clipnorm", "1.5", "--clipvalue", "0.05", "--output", str(path))
    assert code == 0, err
    assert "Adam(lr=0.002, clipnorm=1.5, clipvalue=0.05" in out
    model = numcnn.load_model(path)
    assert (model.optimizer.clipnorm, model.optimizer.clipvalue) == (1.5, 0.05)


@needs_mnist
def test_resume_with_other_clip_settings_is_refused(capsys, tmp_path):
    args = ["train", *QUICK, "--batch-size", "100", "--checkpoint-dir", str(tmp_path),
            "--clipnorm", "2"]
    assert run_cli(capsys, *args)[0] == 0
    code, out, err = run_cli(capsys, *args[:-1], "3", "--resume")
    assert code != 0
    assert "clipnorm: 2.0 in the checkpoint, 3.0 now" in one_error_line(err)
    code, out, err = run_cli(capsys, *args[:-2], "--resume")
    assert "clipnorm: 2.0 in the checkpoint, None now" in one_error_line(err)
    assert run_cli(capsys, *args, "--resume")[0] == 0
