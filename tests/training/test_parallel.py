"""Data-parallel training (``fit(processes=k)``): part gradients combined across forked
processes must equal the full-batch gradient PyTorch computes, step after step."""

from __future__ import annotations

import multiprocessing
import os
import sys

import numpy as np
import pytest

import numcnn
from numcnn import Sequential, optimizers, threads
from numcnn.layers import BatchNorm2D, Conv2D, Dense, Dropout, Flatten, Layer, ReLU
from numcnn.losses import Loss
from numcnn.models import lenet5
from numcnn.training import Callback
from numcnn.training.parallel import MIN_PART, DataParallel, split_sizes

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="data-parallel training forks worker processes (Linux)")


def torch_twin(model):
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


def data(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 1, 28, 28)), rng.integers(0, 10, n)


def compiled_lenet5():
    model = lenet5(seed=0, dtype="float64")
    model.compile(optimizer=optimizers.SGD(lr=0.05, momentum=0.9),
                  loss="softmax_cross_entropy", metrics=["accuracy"])
    return model


def test_split_sizes_are_balanced_and_complete():
    assert split_sizes(10, 3) == [4, 3, 3]
    assert split_sizes(1, 2) == [1, 0]
    for m in range(0, 40):
        for parts in (2, 3, 5):
            sizes = split_sizes(m, parts)
            assert sum(sizes) == m and max(sizes) - min(sizes) <= 1
            assert sizes == sorted(sizes, reverse=True)  # the main process gets the most


@pytest.mark.parametrize("m,processes", [(16, 2), (15, 2), (7, 3), (1, 2)])
def test_part_gradients_combine_to_the_full_batch_gradient(m, processes):
    x, y = data(40)
    idx = np.random.default_rng(1).permutation(40)[:m]  # positions in the whole set
    model = compiled_lenet5()
    net, ours, theirs = torch_twin(model)
    logits = net(torch.tensor(x[idx]))
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor(y[idx]))
    loss.backward()

    with DataParallel(model.trainer, [x], [y], processes) as dp:
        value, parts, outs = dp.forward_backward(idx, [x[idx]], [y[idx]])
    out = outs[0]
    assert parts == [value]

    assert value == pytest.approx(loss.item(), rel=1e-12)
    np.testing.assert_allclose(out, logits.detach().numpy(), rtol=1e-10, atol=1e-12)
    for a, t in zip(ours, theirs):
        gW = t.weight.grad.numpy()
        np.testing.assert_allclose(a.grads["W"], gW if gW.ndim == 4 else gW.T,
                                   rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(a.grads["b"], t.bias.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_fit_with_two_processes_follows_torch_sgd_step_by_step():
    x, y = data(40, seed=2)
    model = compiled_lenet5()
    net, ours, theirs = torch_twin(model)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    # batches of 16, 16 and 8, in order: parts of 8/8, 8/8 and 4/4
    hist = model.fit(x, y, batch_size=16, shuffle=False, verbose=0, processes=2)
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
    assert hist.history["accuracy"][0] == pytest.approx(hits / 40)  # outputs kept in order
    for a, t in zip(ours, theirs):
        W = t.weight.detach().numpy()
        np.testing.assert_allclose(a.params["W"], W if W.ndim == 4 else W.T, rtol=1e-9,
                                   atol=1e-12)
        np.testing.assert_allclose(a.params["b"], t.bias.detach().numpy(), rtol=1e-9,
                                   atol=1e-12)


def test_shuffled_fit_matches_one_process_to_rounding():
    x, y = data(25, seed=3)  # batches 10, 10, 5: unequal parts in the last one
    one, two = compiled_lenet5(), compiled_lenet5()
    h1 = one.fit(x, y, batch_size=10, epochs=2, seed=4, verbose=0, processes=1)
    h2 = two.fit(x, y, batch_size=10, epochs=2, seed=4, verbose=0, processes=2)
    np.testing.assert_allclose(h2.history["loss"], h1.history["loss"], rtol=1e-10)
    for p1, p2 in zip(one.trainable_params().values(), two.trainable_params().values()):
        np.testing.assert_allclose(p2, p1, rtol=1e-9, atol=1e-12)


def test_set_num_threads_trains_with_that_many_processes():
    workers = []

    class Probe(Callback):
        def on_batch_end(self, batch, logs=None):
            workers.append(sorted(p.name for p in multiprocessing.active_children()))

    x, y = data(2 * 2 * MIN_PART)
    model = compiled_lenet5()
    with threads.num_threads(2):
        model.fit(x, y, batch_size=2 * MIN_PART, verbose=0, callbacks=[Probe()])
        assert workers == [["numcnn-data-parallel-1"]] * 2
        assert multiprocessing.active_children() == []  # stopped when fit returns
        workers.clear()  # parts smaller than MIN_PART: one process
        model.fit(x, y, batch_size=2 * MIN_PART - 1, verbose=0, callbacks=[Probe()])
        assert workers == [[], [], []]
    workers.clear()
    model.fit(x, y, batch_size=2 * MIN_PART, verbose=0, callbacks=[Probe()])  # 1 thread
    assert workers == [[], []]

    bn = Sequential([Conv2D(2, 3), BatchNorm2D(), ReLU(), Flatten(), Dense(10)],
                    input_shape=(1, 28, 28), seed=0)
    bn.compile(optimizer="sgd", loss="softmax_cross_entropy")
    workers.clear()
    with threads.num_threads(2):  # BatchNorm couples the batch: one process, 2 BLAS threads
        bn.fit(x.astype(np.float32), y, batch_size=2 * MIN_PART, verbose=0,
               callbacks=[Probe()])
    assert workers == [[], []]
    with pytest.raises(ValueError, match="BatchNorm2D mixes the samples"):
        bn.fit(x.astype(np.float32), y, batch_size=4, verbose=0, processes=2)


def test_dropout_parts_draw_their_own_masks_reproducibly():
    def run():
        model = Sequential([Flatten(), Dropout(0.5, seed=1), Dense(3)], input_shape=(1, 4, 4),
                           seed=0)
        model.compile(optimizer="sgd", loss="softmax_cross_entropy")
        x = np.ones((8, 1, 4, 4), np.float32)  # identical samples in both halves
        with DataParallel(model.trainer, [x], [np.zeros(8, np.int64)], 2) as dp:
            return dp.forward_backward(np.arange(8), [x], [np.zeros(8, np.int64)])[2][0]

    out = run()
    assert not np.array_equal(out[:4], out[4:])  # not a copy of the main process's masks
    np.testing.assert_array_equal(run(), out)  # same seed, same masks


class SumLoss(Loss):
    """A loss summed (not averaged) over samples: parts cannot be size-weighted."""

    def _forward(self, y_pred, y_true):
        self._cache = y_pred
        return float(y_pred.sum())

    def _backward(self):
        return np.ones_like(self._cache)


class InWorker(Layer):
    """Identity, except in a forked worker: raise, or kill the process."""

    def __init__(self, action, **kwargs):
        super().__init__(**kwargs)
        self.action, self.main_pid = action, os.getpid()

    def fprop(self, x, call):
        if os.getpid() != self.main_pid:
            if self.action == "exit":
                os._exit(7)
            raise ArithmeticError("raised inside the worker")
        return x

    def bprop(self, dy, call, accumulate=False):
        return dy


def tiny(*middle):
    model = Sequential([Flatten(), *middle, Dense(2)], input_shape=(1, 2, 2), seed=0)
    model.compile(optimizer="sgd", loss="softmax_cross_entropy")
    return model, np.zeros((8, 1, 2, 2), np.float32), np.zeros(8, np.int64)


def test_worker_failures_are_reported_and_workers_stopped():
    model, x, y = tiny(InWorker("raise"))
    with pytest.raises(RuntimeError, match="worker 1 failed(.|\n)*ArithmeticError: raised inside"):
        model.fit(x, y, batch_size=4, verbose=0, processes=2)
    model, x, y = tiny(InWorker("exit"))
    with pytest.raises(RuntimeError, match=r"worker 1 exited unexpectedly \(exit code 7\)"):
        model.fit(x, y, batch_size=4, verbose=0, processes=2)
    assert multiprocessing.active_children() == []


def test_bad_processes_and_ineligible_losses_are_refused():
    model, x, y = tiny()
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="processes must be a positive int or None"):
            model.fit(x, y, verbose=0, processes=bad)
    model.compile(optimizer="sgd", loss=SumLoss())
    with pytest.raises(ValueError, match=r"SumLoss does not declare .*Loss.batch_mean"):
        model.fit(x, y, verbose=0, processes=2)
    with pytest.raises(ValueError, match="processes must be an int >= 2"):
        DataParallel(model.trainer, [x], [y], 1)
    assert numcnn.losses.SoftmaxCrossEntropy.batch_mean and not SumLoss.batch_mean


def test_data_parallel_run_with_dropout_resumes_exactly(tmp_path):
    """Workers' Dropout streams are derived at every batch from (rank, epoch, step, the
    data-order generator at the epoch's start), which a checkpoint at the epoch boundary
    restores."""
    rng = np.random.default_rng(11)
    x = rng.random((64, 1, 4, 4), dtype=np.float32)
    y = rng.integers(0, 3, 64)

    def model():
        m = Sequential([Flatten(), Dense(8), ReLU(), Dropout(0.3), Dense(3)],
                       input_shape=(1, 4, 4), seed=2)
        m.compile(optimizer=numcnn.optimizers.Adam(lr=0.01), loss="softmax_cross_entropy")
        return m

    whole = model()
    whole.fit(x, y, batch_size=16, epochs=2, seed=3, verbose=0, processes=2)
    half = model()
    half.fit(x, y, batch_size=16, epochs=1, seed=3, verbose=0, processes=2)
    numcnn.save_model(half, tmp_path / "half.npz")
    resumed = numcnn.load_model(tmp_path / "half.npz")
    resumed.fit(x, y, batch_size=16, epochs=2, initial_epoch=1, seed=3, verbose=0,
                processes=2)
    for q, w in whole.get_weights().items():
        assert np.array_equal(w, resumed.get_weights()[q]), q


def test_data_parallel_run_resumes_exactly_from_the_middle_of_an_epoch(tmp_path):
    """A crash in the middle of an epoch, then BackupAndRestore: the workers' masks of the
    remaining batches are those of the uninterrupted run (they are seeded per step)."""
    from numcnn.training import BackupAndRestore, Callback

    rng = np.random.default_rng(5)
    x = rng.random((256, 1, 4, 4), dtype=np.float32)
    y = rng.integers(0, 3, 256)

    def model():
        m = Sequential([Flatten(), Dense(8), ReLU(), Dropout(0.3), Dense(3)],
                       input_shape=(1, 4, 4), seed=2)
        m.compile(optimizer=numcnn.optimizers.Adam(lr=0.01), loss="softmax_cross_entropy")
        return m

    class Crash(Callback):
        def on_batch_end(self, batch, logs=None):
            if (self.model.trainer.epoch, batch) == (1, 2):
                raise RuntimeError("crash")

    fit = {"batch_size": 64, "epochs": 3, "seed": 4, "verbose": 0, "processes": 2}
    whole = model()
    whole.fit(x, y, **fit)
    crashed = model()
    with pytest.raises(RuntimeError, match="crash"):
        crashed.fit(x, y, callbacks=[BackupAndRestore(tmp_path, save_freq=2), Crash()], **fit)
    again = model()
    again.fit(x, y, callbacks=[BackupAndRestore(tmp_path, save_freq=2)], **fit)
    for q, w in whole.get_weights().items():
        assert np.array_equal(w, again.get_weights()[q]), q


def test_a_callback_that_replaces_the_inputs_is_refused_in_data_parallel_runs():
    from numcnn.training import Callback

    class Replace(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.model.trainer.x = [a + 0 for a in self.model.trainer.x]

    model, x, y = tiny()
    x = np.zeros((128, 1, 2, 2), np.float32)
    with pytest.raises(ValueError, match="data-parallel workers cannot see"):
        model.fit(x, np.zeros(128, np.int64), batch_size=64, verbose=0, processes=2,
                  callbacks=[Replace()])
    assert multiprocessing.active_children() == []
