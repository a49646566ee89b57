"""What users of the former ``fit(processes=K)`` relied on, on ``distribute="local:K"``:
LeNet-5 against PyTorch step by step, exact resumption (epoch boundary and mid-epoch),
callbacks that replace the inputs, BatchNorm per replica, the deprecated alias, threads
that no longer fork, and clear refusals."""

from __future__ import annotations

import os
import sys
import warnings

import numpy as np
import pytest

import numcnn
from numcnn import Sequential, optimizers, threads
from numcnn.layers import BatchNorm2D, Conv2D, Dense, Dropout, Flatten, ReLU
from numcnn.losses import Loss
from numcnn.models import lenet5
from numcnn.training import BackupAndRestore, Callback

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="local data-parallel training forks (Linux)")


def torch_twin(model, torch):
    """The PyTorch module of numcnn's ``lenet5`` with the same float64 weights."""
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 6, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(6, 16, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
        torch.nn.Linear(400, 120), torch.nn.ReLU(), torch.nn.Linear(120, 84), torch.nn.ReLU(),
        torch.nn.Linear(84, 10),
    ).double()
    ours = [layer for layer in model.layers if layer.params]
    theirs = [m for m in net if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        for a, t in zip(ours, theirs):
            W = a.params["W"]
            t.weight.copy_(torch.tensor(W if W.ndim == 4 else W.T))
            t.bias.copy_(torch.tensor(a.params["b"]))
    return net, ours, theirs


def test_lenet5_on_two_processes_follows_torch_sgd_step_by_step():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    rng = np.random.default_rng(2)
    x, y = rng.random((40, 1, 28, 28)), rng.integers(0, 10, 40)
    model = lenet5(seed=0, dtype="float64")
    model.compile(optimizer=optimizers.SGD(lr=0.05, momentum=0.9),
                  loss="softmax_cross_entropy", metrics=["accuracy"])
    net, ours, theirs = torch_twin(model, torch)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    # batches of 16, 16 and 8, in order: shards of 8/8, 8/8 and 4/4
    hist = model.fit(x, y, batch_size=16, shuffle=False, verbose=0, distribute="local:2")
    losses, hits = [], 0
    for s in range(0, 40, 16):
        opt.zero_grad()
        logits = net(torch.tensor(x[s:s + 16]))
        loss = torch.nn.functional.cross_entropy(logits, torch.tensor(y[s:s + 16]))
        loss.backward()
        opt.step()
        losses.append(loss.item() * len(logits))
        hits += int((logits.argmax(1).numpy() == y[s:s + 16]).sum())
    assert hist.history["loss"][0] == pytest.approx(sum(losses) / 40, rel=1e-10)
    assert hist.history["accuracy"][0] == pytest.approx(hits / 40)
    for a, t in zip(ours, theirs):
        W = t.weight.detach().numpy()
        np.testing.assert_allclose(a.params["W"], W if W.ndim == 4 else W.T, rtol=1e-9,
                                   atol=1e-12)
        np.testing.assert_allclose(a.params["b"], t.bias.detach().numpy(), rtol=1e-9,
                                   atol=1e-12)


def dropout_model():
    m = Sequential([Flatten(), Dense(8), ReLU(), Dropout(0.3), Dense(3)],
                   input_shape=(1, 4, 4), seed=2, dtype="float64")
    m.compile(optimizer=optimizers.Adam(lr=0.01), loss="softmax_cross_entropy")
    return m


def test_a_run_resumed_at_an_epoch_boundary_equals_the_uninterrupted_run(tmp_path):
    rng = np.random.default_rng(11)
    x, y = rng.random((64, 1, 4, 4)), rng.integers(0, 3, 64)
    whole = dropout_model()
    whole.fit(x, y, batch_size=16, epochs=2, seed=3, verbose=0, distribute="local:2")
    one = dropout_model()  # and one process: the same masks, the same weights
    one.fit(x, y, batch_size=16, epochs=2, seed=3, verbose=0)
    half = dropout_model()
    half.fit(x, y, batch_size=16, epochs=1, seed=3, verbose=0, distribute="local:2")
    numcnn.save_model(half, tmp_path / "half.npz")
    resumed = numcnn.load_model(tmp_path / "half.npz")
    resumed.fit(x, y, batch_size=16, epochs=2, initial_epoch=1, seed=3, verbose=0,
                distribute="local:3")  # another number of processes
    for q, w in whole.get_weights().items():
        assert np.abs(w - one.get_weights()[q]).max() <= 1e-12, q
        assert np.abs(w - resumed.get_weights()[q]).max() <= 1e-12, q


def test_a_crash_mid_epoch_then_backup_and_restore_equals_the_uninterrupted_run(tmp_path):
    rng = np.random.default_rng(5)
    x, y = rng.random((256, 1, 4, 4)), rng.integers(0, 3, 256)

    class Crash(Callback):
        def on_batch_end(self, batch, logs=None):
            if (self.model.trainer.epoch, batch) == (1, 2):
                raise RuntimeError("crash")

    fit = {"batch_size": 64, "epochs": 3, "seed": 4, "verbose": 0, "distribute": "local:2"}
    whole = dropout_model()
    whole.fit(x, y, **fit)
    crashed = dropout_model()
    with pytest.raises(RuntimeError, match="crash"):
        crashed.fit(x, y, callbacks=[BackupAndRestore(tmp_path, save_freq=2), Crash()], **fit)
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)  # every forked process was collected
    again = dropout_model()
    again.fit(x, y, callbacks=[BackupAndRestore(tmp_path, save_freq=2)], **fit)
    for q, w in whole.get_weights().items():
        assert np.array_equal(w, again.get_weights()[q]), q


class Shift(Callback):
    """Replaces the training inputs every epoch with a shift drawn from the data-order
    generator (as AffineDistortions does): every process draws the same."""

    def on_epoch_begin(self, epoch, logs=None):
        trainer = self.model.trainer
        self.base = getattr(self, "base", trainer.x[0])
        trainer.x = [self.base + trainer.rng.standard_normal()]


def test_a_callback_that_replaces_the_inputs_trains_as_one_process():
    rng = np.random.default_rng(6)
    x, y = rng.random((48, 1, 4, 4)), rng.integers(0, 3, 48)
    runs = []
    for distribute in ("local:1", "local:2"):
        m = dropout_model()
        m.fit(x, y, batch_size=16, epochs=3, seed=1, verbose=0, callbacks=[Shift()],
              distribute=distribute)
        runs.append(m.get_weights())
    for q, w in runs[0].items():
        assert np.abs(w - runs[1][q]).max() <= 1e-12, q


def test_batchnorm_trains_per_replica():
    """BatchNorm2D is accepted (statistics of each shard: another result than one process,
    documented); the run trains and the processes end."""
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 1, 6, 6)), rng.integers(0, 3, 64)
    runs = []
    for distribute in ("local:1", "local:2"):
        m = Sequential([Conv2D(2, 3), BatchNorm2D(), ReLU(), Flatten(), Dense(3)],
                       input_shape=(1, 6, 6), seed=0, dtype="float64")
        m.compile(optimizer="sgd", loss="softmax_cross_entropy")
        m.fit(x, y, batch_size=32, epochs=1, seed=0, verbose=0, distribute=distribute)
        runs.append(m.get_weights())
    assert any(np.abs(w - runs[1][q]).max() > 1e-9 for q, w in runs[0].items())


def test_processes_k_is_a_deprecated_alias_of_local_k():
    rng = np.random.default_rng(0)
    x, y = rng.random((48, 1, 4, 4)), rng.integers(0, 3, 48)
    runs = []
    for kwargs in ({"distribute": "local:2"}, {"processes": 2}):
        m = dropout_model()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            m.fit(x, y, batch_size=16, epochs=1, seed=0, verbose=0, **kwargs)
        assert [str(w.message) for w in caught if w.category is DeprecationWarning] == (
            ["fit(processes=2) is deprecated: use distribute='local:2' (the same 2 symmetric "
             "local processes)"] if "processes" in kwargs else [])
        runs.append(m.get_weights())
    for q, w in runs[0].items():
        assert np.array_equal(w, runs[1][q]), q
    with pytest.raises(ValueError, match="fit.processes=2. is distribute='local:2'; received "
                                         "distribute='local:3'"):
        m.fit(x, y, verbose=0, processes=2, distribute="local:3")
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="processes must be a positive int or None"):
            m.fit(x, y, verbose=0, processes=bad)


def test_set_num_threads_no_longer_forks():
    seen = []

    class Probe(Callback):
        def on_batch_end(self, batch, logs=None):
            seen.append(self.model.trainer.sync)

    m = dropout_model()
    with threads.num_threads(2):
        m.fit(np.zeros((64, 1, 4, 4)), np.zeros(64, np.int64), batch_size=32, verbose=0,
              callbacks=[Probe()])
    assert seen == [None, None]
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


class SumLoss(Loss):
    """A loss summed (not averaged) over samples: shards cannot be size-weighted."""

    def _forward(self, y_pred, y_true):
        self._cache = y_pred
        return float(y_pred.sum())

    def _backward(self):
        return np.ones_like(self._cache)


def test_what_cannot_be_sharded_is_refused_before_forking():
    x, y = np.zeros((8, 1, 4, 4)), np.zeros(8, np.int64)
    m = dropout_model()
    m.compile(optimizer="sgd", loss=SumLoss())
    with pytest.raises(ValueError, match=r"distribute='local:2'\): the loss SumLoss does not "
                                         r"declare itself a mean over samples"):
        m.fit(x, y, verbose=0, distribute="local:2")
    sparse = Sequential([Flatten(), Dense(4), numcnn.layers.SparsityPenalty(0.1, 1.0),
                         Dense(3)], input_shape=(1, 4, 4), seed=0)
    sparse.compile(optimizer="sgd", loss="softmax_cross_entropy")
    with pytest.raises(ValueError, match="mixes the samples of a batch"):
        sparse.fit(x, y, verbose=0, distribute="local:2")
    with pytest.raises(ValueError, match="a batch of 1 sample.s. cannot be shared by 2"):
        m.compile(optimizer="sgd", loss="softmax_cross_entropy")
        m.fit(np.zeros((9, 1, 4, 4)), np.zeros(9, np.int64), batch_size=4, verbose=0,
              distribute="local:2")
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


def test_threaded_predict_before_local_training_does_not_hang_the_children(monkeypatch):
    """predict at 2 threads makes a process-wide thread pool; the forked ranks have none of
    its threads, so their sharded validation must not queue work on the inherited pool (it
    hung until NUMCNN_MPI_TIMEOUT). The validation figures equal one process's evaluate."""
    monkeypatch.setenv("NUMCNN_MPI_TIMEOUT", "20")
    rng = np.random.default_rng(4)
    x, y = rng.random((1536, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 1536)
    model = lenet5(seed=1)
    model.compile(optimizer="sgd", loss="softmax_cross_entropy", metrics=["accuracy"])
    with threads.num_threads(2):
        model.predict(x[:1024])  # the parent's pool is made and used
        hist = model.fit(x[:512], y[:512], validation_data=(x[512:], y[512:]), epochs=1,
                         batch_size=128, verbose=0, distribute="local:2")
        scores = model.evaluate(x[512:], y[512:])
    assert hist.history["val_accuracy"][0] == pytest.approx(scores["accuracy"], abs=1e-12)
    assert hist.history["val_loss"][0] == pytest.approx(scores["loss"], rel=1e-5)
