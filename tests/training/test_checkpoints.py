"""The Keras-compatible callbacks: BackupAndRestore, ModelCheckpoint, EarlyStopping,
TerminateOnNaN, CSVLogger — their meaning, their state, and exact resumption."""

from __future__ import annotations

import csv

import numpy as np
import pytest

import numcnn
from numcnn.layers import Dense, Dropout, Flatten, ReLU
from numcnn.training import (
    BackupAndRestore,
    Callback,
    CSVLogger,
    EarlyStopping,
    LearningRateScheduler,
    ModelCheckpoint,
    TerminateOnNaN,
)


def data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 1, 4, 4), dtype=np.float32)
    return x, (x.reshape(n, -1).sum(axis=1) > 8).astype(np.int64) + (x[:, 0, 0, 0] > 0.5)


def model(seed=1):
    m = numcnn.Sequential([Flatten(), Dense(8), ReLU(), Dropout(0.25), Dense(3)],
                          input_shape=(1, 4, 4), seed=seed)
    m.compile(optimizer=numcnn.optimizers.Adam(lr=0.01), loss="softmax_cross_entropy",
              metrics=["accuracy"])
    return m


class Boom(Callback):
    """Raises at a given (epoch, batch): a crash in the middle of training."""

    def __init__(self, epoch, batch):
        self.at = (epoch, batch)

    def on_batch_end(self, batch, logs=None):
        if (self.model.trainer.epoch, batch) == self.at:
            raise RuntimeError("crash")


@pytest.mark.parametrize("save_freq", ["epoch", 3])
def test_backup_and_restore_continues_a_crashed_run_exactly(tmp_path, save_freq):
    x, y = data()
    whole = model()
    whole.fit(x, y, batch_size=8, epochs=3, seed=2, verbose=0,
              callbacks=[LearningRateScheduler("cosine", per_batch=True)])
    crashed = model()
    backup = BackupAndRestore(tmp_path / "bk", save_freq=save_freq)
    with pytest.raises(RuntimeError, match="crash"):
        crashed.fit(x, y, batch_size=8, epochs=3, seed=2, verbose=0,
                    callbacks=[backup, LearningRateScheduler("cosine", per_batch=True),
                               Boom(1, 5)])
    assert (tmp_path / "bk" / "checkpoint.npz").is_file()  # kept: training did not complete
    again = model()  # a fresh process would start from a fresh model, like this
    hist = again.fit(x, y, batch_size=8, epochs=3, seed=2, verbose=0,
                     callbacks=[BackupAndRestore(tmp_path / "bk", save_freq=save_freq),
                                LearningRateScheduler("cosine", per_batch=True)])
    for q, w in whole.get_weights().items():
        assert np.array_equal(again.get_weights()[q], w), q
    assert not (tmp_path / "bk" / "checkpoint.npz").exists()  # completed: backup removed
    assert len(hist.history["loss"]) == 3  # the History was restored with the rest
    np.testing.assert_array_equal(hist.history["loss"], whole.history.history["loss"])


def test_backup_dir_must_be_a_folder(tmp_path):
    (tmp_path / "file").write_text("mine")
    x, y = data()
    with pytest.raises(ValueError, match="not a folder"):
        model().fit(x, y, verbose=0, callbacks=[BackupAndRestore(tmp_path / "file")])
    assert (tmp_path / "file").read_text() == "mine"


def test_model_checkpoint_best_only_and_patterns(tmp_path):
    x, y = data()
    m = model()
    best = ModelCheckpoint(tmp_path / "best.npz", monitor="val_loss", save_best_only=True)
    every = ModelCheckpoint(tmp_path / "m-{epoch:02d}-{val_loss:.3f}.npz")
    hist = m.fit(x[:40], y[:40], batch_size=8, epochs=4, validation_data=(x[40:], y[40:]),
                 verbose=0, seed=0, callbacks=[best, every])
    files = sorted(p.name for p in tmp_path.glob("m-*.npz"))
    assert len(files) == 4 and files[0].startswith("m-01-")
    vl = hist.history["val_loss"]
    assert best.best == pytest.approx(min(vl))
    saved = numcnn.load_model(tmp_path / "best.npz")
    np.testing.assert_allclose(saved.evaluate(x[40:], y[40:])["loss"], min(vl), rtol=1e-6)
    with pytest.raises(ValueError, match="cannot fill"):
        model().fit(x, y, verbose=0, callbacks=[ModelCheckpoint(tmp_path / "{nope}.npz")])


def test_model_checkpoint_every_n_batches(tmp_path):
    x, y = data()
    cp = ModelCheckpoint(tmp_path / "m.npz", save_freq=2, save_weights_only=True)
    model().fit(x, y, batch_size=10, epochs=1, verbose=0, callbacks=[cp])
    assert cp._batches == 6 and (tmp_path / "m.npz").is_file()
    assert numcnn.load_model(tmp_path / "m.npz").optimizer is None  # weights only


def test_early_stopping_keras_semantics():
    m = model()

    class Feed(Callback):  # sets val_loss from a script before EarlyStopping sees it
        def __init__(self, values):
            self.values = values

        def on_epoch_end(self, epoch, logs=None):
            logs["val_loss"] = self.values[epoch]

    x, y = data()
    losses = [1.0, 0.8, 0.79, 0.81, 0.7, 0.9, 0.95, 0.99, 1.0]
    es = EarlyStopping(monitor="val_loss", patience=3, min_delta=0.05,
                       restore_best_weights=True)
    snapshots = {}

    class Snap(Callback):
        def on_epoch_end(self, epoch, logs=None):
            snapshots[epoch] = self.model.get_weights()

    hist = m.fit(x, y, epochs=9, verbose=0, callbacks=[Feed(losses), es, Snap()])
    # improvements beyond min_delta: 1.0 (epoch 0), 0.8 (1), 0.7 (4); then 3 epochs without
    assert es.best == 0.7 and es.best_epoch == 4 and es.stopped_epoch == 7
    assert len(hist.history["loss"]) == 8
    for q, w in snapshots[4].items():  # the best epoch's weights are back
        np.testing.assert_array_equal(m.get_weights()[q], w)
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=-1)


def test_terminate_on_nan_stops_instead_of_raising():
    import warnings

    x, y = data()
    m = model()
    m.compile(optimizer=numcnn.optimizers.SGD(lr=1e30), loss="softmax_cross_entropy")
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        hist = m.fit(x, y, batch_size=5, epochs=3, verbose=0, callbacks=[TerminateOnNaN()])
        assert len(hist.history["loss"]) == 1 and not np.isfinite(hist.history["loss"][0])
        with pytest.raises(FloatingPointError, match="lower the learning rate"):
            m.fit(x, y, batch_size=5, epochs=1, verbose=0)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_csv_logger_writes_and_appends_and_truncates_on_restore(tmp_path):
    x, y = data()
    path = tmp_path / "log.csv"
    model().fit(x, y, epochs=2, verbose=0, callbacks=[CSVLogger(path)])
    rows = read_csv(path)
    assert rows[0] == ["epoch", "accuracy", "loss"] and [r[0] for r in rows[1:]] == ["0", "1"]
    model().fit(x, y, epochs=3, initial_epoch=2, verbose=0,
                callbacks=[CSVLogger(path, append=True)])
    rows = read_csv(path)
    assert [r[0] for r in rows[1:]] == ["0", "1", "2"]
    logger = CSVLogger(path, append=True)
    logger.load_state_dict({"rows": 1})  # as a checkpoint taken after the first epoch
    model().fit(x, y, epochs=2, initial_epoch=1, verbose=0, callbacks=[logger])
    assert [r[0] for r in read_csv(path)[1:]] == ["0", "1"]
    with pytest.raises(ValueError, match="folder"):
        model().fit(x, y, verbose=0, callbacks=[CSVLogger(tmp_path)])


def test_special_files_are_never_replaced(tmp_path):
    import os

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    x, y = data()
    with pytest.raises(ValueError, match="FIFO"):
        model().fit(x, y, verbose=0, callbacks=[ModelCheckpoint(fifo)])
    with pytest.raises(ValueError, match="character device"):
        model().fit(x, y, verbose=0, callbacks=[CSVLogger("/dev/null")])
    assert fifo.exists()


def test_early_stopping_state_and_best_weights_survive_a_crash(tmp_path):
    """A run with EarlyStopping(restore_best_weights) crashed after its best epoch and resumed
    from the backup stops at the same epoch with the same weights as an uninterrupted one:
    the best weights travel in the checkpoint as arrays."""
    x, y = data()
    val = (x[40:], y[40:])

    def callbacks(*extra):
        return [*extra, EarlyStopping(monitor="loss", patience=2, min_delta=0.02,
                                      restore_best_weights=True)]

    whole = model()
    ref = callbacks()
    hw = whole.fit(x[:40], y[:40], batch_size=8, epochs=30, validation_data=val, seed=3,
                   verbose=0, callbacks=ref)
    stopped = ref[-1].stopped_epoch
    assert 2 < stopped < 29  # it does stop early, after an improvement or two
    crashed = model()
    with pytest.raises(RuntimeError, match="crash"):
        crashed.fit(x[:40], y[:40], batch_size=8, epochs=30, validation_data=val, seed=3,
                    verbose=0, callbacks=callbacks(BackupAndRestore(tmp_path / "bk"),
                                                   Boom(stopped, 2)))
    again = model()
    cbs = callbacks(BackupAndRestore(tmp_path / "bk"))
    ha = again.fit(x[:40], y[:40], batch_size=8, epochs=30, validation_data=val, seed=3,
                   verbose=0, callbacks=cbs)
    assert cbs[-1].stopped_epoch == stopped and cbs[-1].best_epoch == ref[-1].best_epoch
    assert ha.history["val_loss"] == hw.history["val_loss"]
    for q, w in whole.get_weights().items():
        assert np.array_equal(again.get_weights()[q], w), q
