"""The row-by-row input gradient of ``conv2d_backward`` (kernel-column sum inside the matrix
product, used for stride 1 along the width) against the naive loops and PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

import numcnn.functional.fast.conv as FC
from numcnn.functional import conv2d_backward, conv2d_forward
from references import assert_conv_backward_matches_ref


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "N, C, H, W, F, k, stride, pads",
    [
        (3, 6, 14, 14, 16, (5, 5), (1, 1), (0, 0, 0, 0)),  # LeNet-5 C3
        (2, 3, 9, 8, 4, (3, 2), (2, 1), (1, 0, 2, 1)),  # row stride 2, asymmetric pads
        (2, 3, 7, 9, 2, (2, 4), (3, 1), (0, 0, 3, 0)),
        (1, 4, 5, 5, 2, (5, 5), (1, 1), (2, 2, 2, 2)),
    ],
)
def test_row_gemm_input_gradient_matches_naive(N, C, H, W, F, k, stride, pads, dtype):
    Wo = (W + pads[2] + pads[3] - k[1]) // stride[1] + 1
    assert FC._use_row_gemm(C, F, k[0], k[1], Wo, W + pads[2] + pads[3], stride)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    Wt = rng.standard_normal((F, C, *k)).astype(dtype)
    y, cache = conv2d_forward(x, Wt, None, stride, pads)
    dy = rng.standard_normal(y.shape).astype(dtype)
    assert_conv_backward_matches_ref(conv2d_backward(dy, cache), x, Wt, dy, stride, pads,
                                     dtype)


def test_row_gemm_lenet_c3_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((16, 6, 14, 14)).astype(np.float32)
    Wt = (rng.standard_normal((16, 6, 5, 5)) * 0.1).astype(np.float32)
    y, cache = conv2d_forward(x, Wt, None)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx, _, _ = conv2d_backward(dy, cache)
    xt = torch.tensor(x, requires_grad=True)
    torch.nn.functional.conv2d(xt, torch.tensor(Wt)).backward(torch.tensor(dy))
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "N, C, H, W, F, k, stride, pads",
    [
        (2, 16, 8, 8, 8, (3, 3), (2, 2), (1, 1, 1, 1)),  # ResNet's stride-2 3×3
        (2, 4, 7, 9, 3, (3, 3), (2, 2), (1, 1, 1, 1)),  # odd sizes: phases of 5 and 4
        (1, 3, 9, 11, 2, (2, 5), (1, 3), (0, 1, 2, 0)),  # kw > sw: phases of 2, 2, 1 taps
        (2, 8, 6, 6, 4, (1, 1), (2, 2), (0, 0, 0, 0)),  # 1×1 stride 2: odd columns get 0
        (3, 2, 8, 10, 3, (3, 2), (1, 4), (1, 1, 0, 1)),  # sw > kw: phases without taps
        (2, 6, 7, 8, 4, (3, 3), (2, 2), (0, 1, 0, 1)),  # "same" padding at stride 2
    ],
)
def test_row_gemm_input_gradient_at_width_strides_matches_naive(
        N, C, H, W, F, k, stride, pads, dtype, monkeypatch):
    """Width strides split the padded columns into phases, each its own product."""
    monkeypatch.setattr(FC, "_use_row_gemm", lambda *args: True)
    calls = []
    rows = FC._dx_by_rows
    monkeypatch.setattr(FC, "_dx_by_rows", lambda *a: calls.append(1) or rows(*a))
    rng = np.random.default_rng(3)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    Wt = rng.standard_normal((F, C, *k)).astype(dtype)
    y, cache = conv2d_forward(x, Wt, None, stride, pads)
    dy = rng.standard_normal(y.shape).astype(dtype)
    assert_conv_backward_matches_ref(conv2d_backward(dy, cache), x, Wt, dy, stride, pads,
                                     dtype)
    assert calls == [1]


def test_row_gemm_stride2_matches_torch():
    """ResNet-20's 16 → 32 stride-2 layer, batch 8, against PyTorch's input gradient."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((8, 16, 32, 32)).astype(np.float32)
    Wt = (rng.standard_normal((32, 16, 3, 3)) * 0.1).astype(np.float32)
    y, cache = conv2d_forward(x, Wt, None, (2, 2), (1, 1, 1, 1))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx, dW, _ = conv2d_backward(dy, cache)
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(Wt, requires_grad=True)
    torch.nn.functional.conv2d(xt, wt, stride=2, padding=1).backward(torch.tensor(dy))
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dW, wt.grad.numpy(), rtol=1e-4, atol=1e-3)
