"""Convolution on "row fields" (every input row with its kw column shifts, built once and
shared by the forward and backward passes) against the naive loops and PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

import numcnn.functional.fast.conv as FC
from numcnn.functional import conv2d_backward, conv2d_forward
from references import assert_conv_backward_matches_ref, conv2d_ref


@pytest.fixture
def fields_always(monkeypatch):
    """Use the row fields for any row width (they need >= MIN_FIELD_COLS columns)."""
    monkeypatch.setattr(FC, "MIN_FIELD_COLS", 1)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "N, C, H, W, F, k, stride, pads",
    [
        (3, 1, 9, 8, 4, (3, 2), (1, 1), (0, 0, 0, 0)),
        (2, 1, 7, 7, 3, (5, 5), (1, 1), (2, 2, 2, 2)),  # LeNet-5 C1 in small
        (2, 1, 10, 9, 2, (3, 3), (2, 3), (1, 0, 2, 1)),  # strides, asymmetric pads
        (1, 1, 6, 5, 3, (2, 3), (1, 2), (0, 1, 0, 0)),
        (2, 3, 8, 7, 4, (5, 5), (1, 1), (0, 0, 0, 0)),  # several channels: (i, c, j) order
        (2, 2, 9, 10, 3, (3, 2), (2, 3), (1, 1, 0, 2)),
    ],
)
def test_row_fields_match_naive(fields_always, N, C, H, W, F, k, stride, pads, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    Wt = rng.standard_normal((F, C, *k)).astype(dtype)
    b = rng.standard_normal(F).astype(dtype)
    y, cache = conv2d_forward(x, Wt, b, stride, pads)
    assert cache["fields"] is not None
    tol = 1e-4 if dtype == "float32" else 1e-11
    assert y.dtype == np.dtype(dtype)
    np.testing.assert_allclose(y, conv2d_ref(x, Wt, b, stride, pads), rtol=tol, atol=tol)
    dy = rng.standard_normal(y.shape).astype(dtype)
    assert_conv_backward_matches_ref(conv2d_backward(dy, cache), x, Wt, dy, stride, pads,
                                     dtype)


def test_row_fields_lenet_c1_batch_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = rng.random((32, 1, 28, 28), dtype=np.float32)  # 28 * 32 = 896 columns per row
    Wt = (rng.standard_normal((6, 1, 5, 5)) * 0.2).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    y, cache = conv2d_forward(x, Wt, b, (1, 1), (2, 2, 2, 2))
    assert cache["fields"] is not None
    dy = rng.standard_normal(y.shape).astype(np.float32)
    _, dW, db = conv2d_backward(dy, cache, need_dx=False)
    Wtt = torch.tensor(Wt, requires_grad=True)
    btt = torch.tensor(b, requires_grad=True)
    yt = torch.nn.functional.conv2d(torch.tensor(x), Wtt, btt, padding=2)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dW, Wtt.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(db, btt.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_row_fields_lenet_c3_batch_matches_torch(fields_always):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x = rng.random((16, 6, 14, 14), dtype=np.float32)  # 10 * 16 = 160 columns per row
    Wt = (rng.standard_normal((16, 6, 5, 5)) * 0.1).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    y, cache = conv2d_forward(x, Wt, b)
    assert cache["fields"] is not None
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx, dW, db = conv2d_backward(dy, cache)
    xt = torch.tensor(x, requires_grad=True)
    Wtt = torch.tensor(Wt, requires_grad=True)
    btt = torch.tensor(b, requires_grad=True)
    yt = torch.nn.functional.conv2d(xt, Wtt, btt)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dW, Wtt.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(db, btt.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_row_fields_not_used_beyond_their_size_limit(monkeypatch):
    monkeypatch.setattr(FC, "MAX_FIELD_BYTES", 1000)
    x = np.zeros((32, 2, 12, 12), np.float32)
    _, cache = conv2d_forward(x, np.zeros((3, 2, 3, 3), np.float32), None)
    assert cache["fields"] is None


def test_row_fields_not_used_for_narrow_rows():
    x = np.zeros((1, 1, 28, 28), np.float32)  # batch 1: 28 columns per row
    _, cache = conv2d_forward(x, np.zeros((6, 1, 5, 5), np.float32), None, (1, 1), (2,) * 4)
    assert cache["fields"] is None
