"""Progress display: Keras's verbose meanings, written where the issue says."""

from __future__ import annotations

import io

import numpy as np
import pytest

import numcnn
from numcnn.layers import Dense, Flatten
from numcnn.training.progress import Progress, resolve_verbose


def tiny_model():
    m = numcnn.Sequential([Flatten(), Dense(3)], input_shape=(1, 2, 2), seed=0)
    m.compile(optimizer=numcnn.optimizers.SGD(0.1), loss="softmax_cross_entropy")
    return m


def tiny_data(n=40):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 1, 2, 2)).astype(np.float32), rng.integers(0, 3, n)


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_auto_is_bar_on_a_terminal_and_lines_otherwise():
    assert resolve_verbose("auto", FakeTTY()) == 1
    assert resolve_verbose("auto", io.StringIO()) == 2
    with pytest.raises(ValueError, match="verbose must be 'auto', 0, 1 or 2; received"):
        resolve_verbose(3)


def test_verbose_2_prints_one_line_per_epoch(capsys):
    x, y = tiny_data()
    tiny_model().fit(x, y, batch_size=8, epochs=3, verbose=2, seed=0)
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert [ln.split(" - ")[0] for ln in lines] == ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"]
    assert all("img/s" in ln and "loss: " in ln and "accuracy: " in ln for ln in lines)
    assert err == ""


def test_verbose_0_is_silent(capsys):
    x, y = tiny_data()
    tiny_model().fit(x, y, batch_size=8, epochs=2, verbose=0, seed=0)
    assert capsys.readouterr() == ("", "")


def test_live_bar_shows_rate_eta_and_metrics():
    bar = FakeTTY()
    p = Progress(epochs=1, steps=4, samples=32, verbose=1, bar_stream=bar)
    p.refresh = 0.0
    p.epoch_begin(0)
    for step in range(4):
        p.batch_end(step, 8 * (step + 1), {"loss": 1.0 / (step + 1), "accuracy": 0.5})
    p.epoch_end(0, {"loss": 0.25, "accuracy": 0.5})
    text = bar.getvalue()
    assert text.startswith("Epoch 1/1\n")
    updates = text.split("\r")[1:]
    assert len(updates) == 5  # four batch redraws and the final epoch line
    assert "1/4 [" in updates[0] and "ETA" in updates[0] and "img/s" in updates[0]
    assert "loss: 1.0000" in updates[0] and "loss: 0.2500" in updates[3]
    assert updates[-1].startswith("4/4 [" + "=" * Progress.width + "]")
    assert text.endswith("\n")


def test_history_records_what_callbacks_log_and_cosine_reads_the_run_length():
    from numcnn.training import LearningRateScheduler

    x, y = tiny_data()
    m = tiny_model()
    h = m.fit(x, y, batch_size=8, epochs=4, verbose=0, seed=0,
              callbacks=[LearningRateScheduler("cosine")])  # no epochs=: taken from fit
    # cosine annealing, PyTorch's closed form: η₀ (1 + cos(π e / T)) / 2 with η₀ = 0.1, T = 4
    import math

    expected = [0.1 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]
    assert h.history["lr"] == pytest.approx(expected)


def test_per_batch_schedule_follows_the_fractional_epoch():
    from numcnn.training import Callback, LearningRateScheduler

    class Record(Callback):
        def __init__(self):
            self.lrs = []

        def on_batch_end(self, batch, logs=None):
            self.lrs.append(self.model.optimizer.lr)

    x, y = tiny_data(40)
    rec = Record()
    tiny_model().fit(x, y, batch_size=10, epochs=2, verbose=0, seed=0,
                     callbacks=[LearningRateScheduler("cosine", per_batch=True), rec])
    import math

    # Keras-style per-step cosine decay, written out: 8 batches over T = 2 epochs, η₀ = 0.1
    expected = [0.1 * (1 + math.cos(math.pi * (k / 4) / 2)) / 2 for k in range(8)]
    assert rec.lrs == pytest.approx(expected)
