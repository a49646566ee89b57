"""Training curves: a real ``fit`` with a CSVLogger, drawn from the History and from the
file, shows exactly the logged values (read independently with the csv module), the
learning rate on a second axis; damaged logs are clear errors."""

from __future__ import annotations

import csv

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import numcnn  # noqa: E402
from numcnn.layers import Dense, Flatten  # noqa: E402
from numcnn.training import CSVLogger, LearningRateScheduler  # noqa: E402
from numcnn.viz import curves as curves_module  # noqa: E402
from numcnn.viz import plot_history, read_csv_log  # noqa: E402


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Four epochs of a small classifier with validation and a step-decayed rate."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((96, 1, 4, 4)).astype(np.float32)
    y = (x.reshape(96, -1).sum(axis=1) > 0).astype(np.int64)
    model = numcnn.Sequential([Flatten(), Dense(2)], input_shape=(1, 4, 4), seed=0)
    model.compile(optimizer=numcnn.optimizers.SGD(lr=0.1), metrics=["accuracy"])
    path = tmp_path_factory.mktemp("log") / "run.csv"
    history = model.fit(x[:64], y[:64], batch_size=16, epochs=4, verbose=0, seed=0,
                        validation_data=(x[64:], y[64:]),
                        callbacks=[LearningRateScheduler("step:step_size=1,gamma=0.1"),
                                   CSVLogger(path)])  # the scheduler logs "lr" first
    return history, path


def lines_of(fig):
    return {ln.get_label(): ln for ax in fig.axes for ln in ax.get_lines()}


def test_curves_from_the_csv_file_are_its_values(run):
    _, path = run
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4
    fig = plot_history(path)
    lines = lines_of(fig)
    assert {"loss", "val_loss", "accuracy", "val_accuracy", "lr"} <= set(lines)
    for name, line in lines.items():
        np.testing.assert_array_equal(line.get_xdata(), [int(r["epoch"]) + 1 for r in rows])
        np.testing.assert_allclose(line.get_ydata(), [float(r[name]) for r in rows],
                                   rtol=1e-12)
    assert lines["val_loss"].get_linestyle() == "--" and lines["loss"].get_linestyle() == "-"
    loss_ax = lines["loss"].axes
    lr_ax = lines["lr"].axes
    assert lr_ax is not loss_ax and lr_ax.bbox.bounds == loss_ax.bbox.bounds  # a twin axis
    assert lr_ax.get_yscale() == "log"  # 0.1, 0.01, 1e-3, 1e-4: mostly decades below
    assert lines["accuracy"].axes is lines["val_accuracy"].axes is not loss_ax


def test_history_object_gives_the_same_curves(run):
    history, path = run
    from_file = lines_of(plot_history(path))
    from_history = lines_of(plot_history(history))
    assert set(from_file) == set(from_history)
    for name in from_file:
        np.testing.assert_allclose(from_history[name].get_ydata(),
                                   history.history[name], rtol=1e-12)
        np.testing.assert_array_equal(from_history[name].get_xdata(),
                                      from_file[name].get_xdata())


def test_metric_selection_and_no_lr(run):
    history, _ = run
    fig = plot_history(history, metrics=["accuracy"], lr=False)
    assert set(lines_of(fig)) == {"accuracy", "val_accuracy"}
    with pytest.raises(ValueError, match="no metric 'f1' in the log; it has: loss, accuracy"):
        plot_history(history, metrics=["f1"])


def test_a_plain_dict_counts_epochs_from_one():
    fig = plot_history({"loss": [3.0, 2.0, 1.5], "lr": [0.1, 0.1, 0.05]})
    lines = lines_of(fig)
    np.testing.assert_array_equal(lines["loss"].get_xdata(), [1, 2, 3])
    assert lines["lr"].axes.get_yscale() == "linear"
    cosine = 0.05 * (1 + np.cos(np.pi * np.arange(1, 11) / 10)) / 2  # ends at 0
    fig = plot_history({"loss": np.linspace(1, 0.1, 10), "lr": cosine})
    assert lines_of(fig)["lr"].axes.get_yscale() == "linear"


@pytest.mark.parametrize("text, pattern", [
    ("", r"an empty file"),
    ("epoch,loss\n", r"a header but no rows"),
    ("epoch,loss\n0,0.5\n1,abc\n", r"line 3, column 'loss': not a number: 'abc'"),
    ("epoch,loss\n0,0.5,7\n", r"line 2: 3 fields; the header has 2"),
    ("epoch,loss,loss\n0,1,2\n", r"line 1: expected a header of distinct column names"),
])
def test_damaged_logs_are_clear_errors(tmp_path, text, pattern):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=pattern):
        plot_history(path)


def test_binary_and_oversized_files_are_refused(tmp_path, monkeypatch):
    path = tmp_path / "x.csv"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match="not a text CSV file"):
        read_csv_log(path)
    path.write_text("epoch,loss\n" + "0,1.0\n" * 50)
    monkeypatch.setattr(curves_module, "MAX_LOG_BYTES", 100)
    with pytest.raises(ValueError, match="a training log of more than 100 bytes is refused"):
        read_csv_log(path)
    with pytest.raises(FileNotFoundError, match="no training log at"):
        read_csv_log(tmp_path / "missing.csv")


def test_empty_fields_are_nan_and_semicolons_work(tmp_path):
    path = tmp_path / "k.csv"
    path.write_text("epoch;loss;val_loss\n0;1.5;\n1;1.0;1.2\n")
    cols = read_csv_log(path)
    assert cols["loss"] == [1.5, 1.0] and np.isnan(cols["val_loss"][0])
    assert cols["val_loss"][1] == 1.2
