"""SyncBatchNorm1D/2D against PyTorch's BatchNorm on the whole batch: alone (one process)
and split across ranks that share their statistics (threads standing in for MPI ranks)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from numcnn.layers import SyncBatchNorm1D, SyncBatchNorm2D
from numcnn.training.distributed import Communicator, split_sizes

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

CASES = [
    pytest.param(SyncBatchNorm2D, torch.nn.BatchNorm2d, (7, 3, 4, 5), id="2d"),
    pytest.param(SyncBatchNorm1D, torch.nn.BatchNorm1d, (7, 5), id="1d-NF"),
    pytest.param(SyncBatchNorm1D, torch.nn.BatchNorm1d, (7, 4, 6), id="1d-NCL"),
]


def _tol(dtype):
    return dict(rtol=3e-5, atol=3e-5) if np.dtype(dtype) == np.float32 else dict(
        rtol=1e-10, atol=1e-11)


def _pair(cls, tcls, C, dtype, rng):
    gamma = rng.uniform(0.5, 1.5, C).astype(dtype)
    beta = rng.standard_normal(C).astype(dtype)
    tbn = tcls(C, eps=1e-4, momentum=0.2).to(torch.float64 if dtype == "float64"
                                              else torch.float32)
    with torch.no_grad():
        tbn.weight.copy_(torch.tensor(gamma))
        tbn.bias.copy_(torch.tensor(beta))
    return gamma, beta, tbn


def _layer(cls, shape, dtype, gamma, beta):
    layer = cls(momentum=0.2, eps=1e-4, dtype=dtype)
    layer.build(shape[1:])
    layer.params["gamma"][...] = gamma
    layer.params["beta"][...] = beta
    return layer


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cls,tcls,shape", CASES)
def test_alone_it_is_batchnorm(cls, tcls, shape, dtype):
    rng = np.random.default_rng(0)
    gamma, beta, tbn = _pair(cls, tcls, shape[1], dtype, rng)
    layer = _layer(cls, shape, dtype, gamma, beta)
    for step in range(3):
        x = (rng.standard_normal(shape) * (1 + step) + step).astype(dtype)
        dy = rng.standard_normal(shape).astype(dtype)
        xt = torch.tensor(x, requires_grad=True)
        yt = tbn(xt)
        yt.backward(torch.tensor(dy))
        np.testing.assert_allclose(layer.forward(x, training=True), yt.detach().numpy(),
                                   **_tol(dtype))
        np.testing.assert_allclose(layer.backward(dy), xt.grad.numpy(), **_tol(dtype))
        np.testing.assert_allclose(layer.grads["gamma"], tbn.weight.grad.numpy(), **_tol(dtype))
        np.testing.assert_allclose(layer.grads["beta"], tbn.bias.grad.numpy(), **_tol(dtype))
        tbn.weight.grad = tbn.bias.grad = None
        np.testing.assert_allclose(layer.buffers["running_var"], tbn.running_var.numpy(),
                                   **_tol(dtype))
    tbn.eval()
    x = rng.standard_normal(shape).astype(dtype)
    np.testing.assert_allclose(layer.forward(x, training=False),
                               tbn(torch.tensor(x)).detach().numpy(), **_tol(dtype))


class ThreadComm(Communicator):
    """Ranks as threads: an allreduce sums every rank's buffer in rank order."""

    def __init__(self, rank, shared):
        self.rank, self.size, self.shared = rank, len(shared["slots"]), shared

    def allreduce_sum(self, buf):
        slots, barrier = self.shared["slots"], self.shared["barrier"]
        slots[self.rank] = buf.copy()
        barrier.wait()
        total = sum(slots[1:], slots[0].copy())
        barrier.wait()
        buf[...] = total


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("cls,tcls,shape", CASES)
def test_split_across_ranks_it_is_batchnorm_of_the_whole_batch(cls, tcls, shape, k):
    """Rank r gets rows m_r of the batch and the upstream gradient of its share of the
    loss, (m/m_r)·dy; its dx times m_r/m is PyTorch's dx on those rows, and Σ_r (m_r/m)·dγ_r
    PyTorch's dγ (what the gradient allreduce forms)."""
    dtype = "float64"
    rng = np.random.default_rng(1)
    gamma, beta, tbn = _pair(cls, tcls, shape[1], dtype, rng)
    x = rng.standard_normal(shape) * 2 + 1
    dy = rng.standard_normal(shape)
    xt = torch.tensor(x, requires_grad=True)
    yt = tbn(xt)
    yt.backward(torch.tensor(dy))
    m = shape[0]
    bounds = np.cumsum([0, *split_sizes(m, k)])
    shared = {"slots": [None] * k, "barrier": threading.Barrier(k)}
    out = [None] * k

    def rank(r):
        lo, hi = int(bounds[r]), int(bounds[r + 1])
        layer = _layer(cls, shape, dtype, gamma, beta)
        layer.distributed = (ThreadComm(r, shared), lo, hi, m)
        y = layer.forward(x[lo:hi], training=True)
        dx = layer.backward(dy[lo:hi] * (m / (hi - lo)))
        w = (hi - lo) / m
        out[r] = (y, dx * w, layer.grads["gamma"] * w, layer.grads["beta"] * w,
                  layer.buffers["running_mean"], layer.buffers["running_var"])

    threads = [threading.Thread(target=rank, args=(r,)) for r in range(k)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    tol = _tol(dtype)
    np.testing.assert_allclose(np.concatenate([o[0] for o in out]), yt.detach().numpy(), **tol)
    np.testing.assert_allclose(np.concatenate([o[1] for o in out]), xt.grad.numpy(), **tol)
    np.testing.assert_allclose(sum(o[2] for o in out), tbn.weight.grad.numpy(), **tol)
    np.testing.assert_allclose(sum(o[3] for o in out), tbn.bias.grad.numpy(), **tol)
    for o in out:  # every rank's running statistics are those of the whole batch
        np.testing.assert_allclose(o[4], tbn.running_mean.numpy(), **tol)
        np.testing.assert_allclose(o[5], tbn.running_var.numpy(), **tol)
