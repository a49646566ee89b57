"""Every class of bad input to the command line ends in one line on stderr and a non-zero
status, checked before any training; the message names what was expected and what was
received (issue 10, "Bad input"). Silent wrong results are errors or explicit warnings."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from _cli import MNIST_DIR, QUICK, needs_mnist, one_error_line, run_cli

# -- output paths: checked before training, never replaced ---------------------------------

@needs_mnist
@pytest.mark.parametrize("target, expected", [
    ("/dev/full", "is a character device"),
    ("/dev/null", "is a character device"),
    ("{tmp}", "is a folder; expected a file name"),
    ("{tmp}/fifo", "is a FIFO"),
    ("{tmp}/broken", "is a broken symbolic link"),
    ("", "the path is empty"),
    ("/proc/version", "cannot create a file in the folder /proc"),
])
def test_output_paths_are_refused_before_training(capsys, tmp_path, target, expected):
    os.mkfifo(tmp_path / "fifo")
    os.symlink(tmp_path / "nowhere", tmp_path / "broken")
    target = target.format(tmp=tmp_path)
    before = os.lstat(target) if target and os.path.lexists(target) else None
    code, out, err = run_cli(capsys, "train", *QUICK, "--output", target)
    assert code == 1
    assert expected in one_error_line(err)
    assert "Training" not in out  # refused before any work
    if before is not None:  # the thing at that path is untouched
        after = os.lstat(target)
        assert (after.st_mode, after.st_ino, after.st_rdev) == \
            (before.st_mode, before.st_ino, before.st_rdev)


@needs_mnist
def test_checkpoint_dir_that_is_a_file_is_refused(capsys, tmp_path):
    f = tmp_path / "file"
    f.write_text("mine")
    code, out, err = run_cli(capsys, "train", *QUICK, "--checkpoint-dir", str(f))
    assert code == 1 and "--checkpoint-dir" in one_error_line(err)
    assert f.read_text() == "mine"


# -- a diverging run -------------------------------------------------------------------------

@needs_mnist
def test_a_diverging_run_is_one_line_without_warnings(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "numcnn", "train", *QUICK, "--lr", "1e6", "--schedule",
         "constant", "--output", str(tmp_path / "m.npz")],
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, NUMCNN_DATA_DIR=MNIST_DIR))
    assert proc.returncode == 1
    line = one_error_line(proc.stderr)
    assert "loss became nan" in line and "lower the learning rate" in line
    assert not (tmp_path / "m.npz").exists()  # no model saved from a blown-up run


@needs_mnist
def test_numcnn_debug_keeps_the_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "numcnn", "train", *QUICK, "--output", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, NUMCNN_DATA_DIR=MNIST_DIR, NUMCNN_DEBUG="1"))
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "is a folder" in proc.stderr


def test_out_of_memory_is_one_line(capsys, monkeypatch):
    from numcnn.training import runs

    def run(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(runs, "run", run)
    code, out, err = run_cli(capsys, "train", "--verbose", "0")
    assert code == 1
    assert "out of memory; use a smaller --batch-size" in one_error_line(err)


def test_an_unexpected_exception_is_still_one_line(capsys, monkeypatch):
    from numcnn.training import runs

    def run(*args, **kwargs):
        raise KeyError("surprise")

    monkeypatch.setattr(runs, "run", run)
    code, out, err = run_cli(capsys, "train", "--verbose", "0")
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("numcnn: internal error: KeyError")
    assert "NUMCNN_DEBUG=1" in lines[0]


# -- options a model would ignore ------------------------------------------------------------

@needs_mnist
@pytest.mark.parametrize("argv, expected", [
    (["--model", "lenet5-1998", "--optimizer", "adam"],
     "--optimizer: not used by --model lenet5-1998"),
    (["--model", "lenet5-1998", "--lr", "0.1"], "--lr: not used by --model lenet5-1998"),
    (["--model", "lenet5-1998", "--dropout", "0.5"], "--dropout"),
    (["--optimizer", "sdlm"], "--optimizer sdlm needs curvature estimates"),
    (["--augment", "affine"], "--augment is only supported with --model lenet5-1998; "
                              "received --model lenet5"),
    (["--checkpoint-every", "3"], "--checkpoint-every needs --checkpoint-dir"),
    (["--resume"], "--resume needs --checkpoint-dir"),
    (["--validation-size", "400"], "--validation-size must be below 300; received 400"),
    (["--dropout", "1.5"], "received rate=1.5"),
    (["--schedule", "step:step_size=-1"], "step_size must be a positive int; received"),
    (["--optimizer", "nosuch"], "unknown optimizer 'nosuch'; expected one of: "),
    (["--loss", "nosuch"], "unknown loss 'nosuch'; expected one of: "),
])
def test_ignored_or_contradictory_options_are_errors(capsys, argv, expected):
    code, out, err = run_cli(capsys, "train", *QUICK, *argv)
    assert code != 0
    assert expected in one_error_line(err)
    assert "Training" not in out


# -- threads above the core count ------------------------------------------------------------

@needs_mnist
def test_threads_above_the_core_count_warn(capsys, monkeypatch, tmp_path):
    from numcnn.training import runs

    monkeypatch.setattr(runs, "cores", lambda: 1)
    code, out, err = run_cli(capsys, "train", *QUICK, "--threads", "2", "--epochs", "1",
                             "--output", str(tmp_path / "m.npz"))
    assert code == 0, err
    warning = [ln for ln in err.splitlines() if ln.startswith("numcnn: warning:")]
    assert len(warning) == 1
    assert "--threads 2 is more than the 1 core(s)" in warning[0]
    code, out, err = run_cli(capsys, "evaluate", str(tmp_path / "m.npz"), "--threads", "3")
    assert code == 0 and "--threads 3 is more than the 1 core(s)" in err


# -- data ------------------------------------------------------------------------------------

def test_a_data_dir_without_the_files_names_the_folder_and_the_files(capsys, tmp_path,
                                                                    monkeypatch):
    monkeypatch.delenv("NUMCNN_DATA_DIR", raising=False)
    monkeypatch.setenv("NUMCNN_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("NUMCNN_MNIST_MIRROR", "http://127.0.0.1:9/")
    (tmp_path / "mnist.zip").write_bytes(b"PK")  # the files, but not under their names
    code, out, err = run_cli(capsys, "train", "--verbose", "0", "--data-dir", str(tmp_path))
    assert code == 1
    line = one_error_line(err)
    assert str(tmp_path) in line
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        assert name in line
    assert "could not download" not in line  # a named folder is not a reason to download
    assert not (tmp_path / "cache").exists()


def test_evaluate_on_an_empty_set_is_an_error():
    from numcnn.models import lenet5

    model = lenet5()
    model.compile(optimizer="sgd", loss="softmax_cross_entropy", metrics=["accuracy"])
    with pytest.raises(ValueError, match="empty"):
        model.evaluate(np.zeros((0, 1, 28, 28), np.float32), np.zeros(0, np.int64))


def test_a_batch_larger_than_the_data_is_the_full_batch():
    from numcnn.models import lenet5

    rng = np.random.default_rng(0)
    x = rng.random((40, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 40)
    weights = []
    for batch in (40, 10 ** 6):
        model = lenet5(seed=1)
        model.compile(optimizer="sgd", loss="softmax_cross_entropy")
        history = model.fit(x, y, batch_size=batch, epochs=2, shuffle=False, verbose=0)
        assert len(history.history["loss"]) == 2
        weights.append(model.get_weights())
    assert weights[0].keys() == weights[1].keys()
    assert all(np.array_equal(weights[0][k], weights[1][k]) for k in weights[0])


# -- damaged model files through the command line --------------------------------------------

def _write_config_only(path, config):
    np.savez(path, __config__=np.array(json.dumps(config)))


@pytest.mark.parametrize("config, expected", [
    ({"format": 2}, "model"),
    ([1, 2, 3], "must be a JSON object; received list"),
    ({"format": 2, "model": {"class_name": "Sequential", "config": {"layers": [
        {"class_name": "Dense", "config": {"units": 10 ** 12}}],
        "input_shape": [10 ** 6]}}}, "budget"),
    ({"format": 2, "model": {"class_name": "NoSuchModel", "config": {}}}, "NoSuchModel"),
])
def test_damaged_model_configs_are_one_line(capsys, tmp_path, config, expected):
    path = tmp_path / "bad.npz"
    _write_config_only(path, config)
    for command in (["evaluate", str(path)], ["summary", str(path)]):
        code, out, err = run_cli(capsys, *command)
        assert code == 1
        line = one_error_line(err)
        assert str(path) in line and expected in line, line


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_damaged_model_bytes_are_one_line(capsys, tmp_path, damage):
    from numcnn.io.saving import save_model
    from numcnn.models import lenet5

    path = tmp_path / "m.npz"
    save_model(lenet5(), path)
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2],
                      "garbage": bytes(np.random.default_rng(0).integers(0, 256, 4096,
                                                                          dtype=np.uint8)),
                      "empty": b""}[damage])
    code, out, err = run_cli(capsys, "evaluate", str(path))
    assert code == 1
    assert str(path) in one_error_line(err)


@needs_mnist
@pytest.mark.parametrize("argv, expected", [
    (["--checkpoint-dir", ""], "--checkpoint-dir: the path is empty"),
    (["--schedule", ""], "--schedule: the spec is empty"),
    (["--optimizer", "adam", "--momentum", "0.5"], "--momentum: not used by --optimizer adam"),
    (["--output", "newdir/"], "names a folder (it ends with a slash)"),
])
def test_empty_or_ignored_values_are_errors_not_silence(capsys, argv, expected):
    code, out, err = run_cli(capsys, "train", *QUICK, *argv)
    assert code == 1 and expected in one_error_line(err)
    assert "Training" not in out


def _damage_checkpoint_meta(path, change):
    import zipfile

    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    import io as _io

    config = json.loads(np.load(_io.BytesIO(members["__config__.npy"])).item())
    change(config["extra"]["checkpoint"])
    buf = _io.BytesIO()
    np.save(buf, np.array(json.dumps(config)))
    members["__config__.npy"] = buf.getvalue()
    with zipfile.ZipFile(path, "w") as z:
        for n, data in members.items():
            z.writestr(n, data)


@needs_mnist
@pytest.mark.parametrize("change, expected", [
    (lambda m: m["run"].update(settings=[1, 2]), "'run.settings' must be an object"),
    (lambda m: m.update(callbacks="x"), "'callbacks' must be a list"),
    (lambda m: m["callbacks"].append(3), "callback entry"),
    (lambda m: m["callbacks"][-1].update(state="x"), "callback entry"),
    (lambda m: [e.update(state={"history": 5}) for e in m["callbacks"]
                if e["class"] == "History"], "the state of callback"),
])
def test_damaged_checkpoint_metadata_is_one_line_naming_the_file(capsys, tmp_path, change,
                                                                 expected):
    args = ["train", *QUICK, "--batch-size", "50", "--checkpoint-dir", str(tmp_path)]
    assert run_cli(capsys, *args)[0] == 0
    _damage_checkpoint_meta(tmp_path / "checkpoint.npz", change)
    code, out, err = run_cli(capsys, *args, "--resume")
    line = one_error_line(err)
    assert code == 1 and "checkpoint.npz" in line and expected in line, line


def test_fit_with_empty_validation_data_is_an_error():
    """(It reported val_loss 0.0000 and val_accuracy 0.0000: a silent wrong result.)"""
    from numcnn.models import lenet5

    model = lenet5()
    model.compile(optimizer="sgd", loss="softmax_cross_entropy", metrics=["accuracy"])
    x, y = np.zeros((4, 1, 28, 28), np.float32), np.zeros(4, np.int64)
    with pytest.raises(ValueError, match="validation_data.*empty dataset"):
        model.fit(x, y, validation_data=(x[:0], y[:0]), verbose=0)
