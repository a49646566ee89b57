"""The convolution's forward pass over row fields built a few output columns at a time
(``conv_chunks``) against the naive loops and PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

import numcnn.functional.fast.conv as FC
import numcnn.functional.fast.conv_chunks as CC
from numcnn.functional import conv2d_backward, conv2d_forward
from numcnn.functional.fast import tuning
from references import assert_conv_backward_matches_ref, conv2d_ref


@pytest.fixture
def chunks_always(monkeypatch):
    """Column chunks of 2 output columns for small test shapes: row fields for any row
    width, none kept for the backward pass."""
    monkeypatch.setattr(FC, "MIN_FIELD_COLS", 1)
    monkeypatch.setattr(tuning, "KEEP_FIELD_BYTES", 0)
    monkeypatch.setattr(FC, "chunk_columns", lambda F, K, Wo, N: 2)
    calls = []
    real = CC.chunked_forward

    def spy(*args, **kwargs):
        calls.append(args[9])  # Q
        return real(*args, **kwargs)

    monkeypatch.setattr(FC, "chunked_forward", spy)
    return calls


CASES = [  # N, C, H, W, F, k, stride, pads
    (3, 2, 9, 8, 4, (3, 3), (1, 1), (1, 1, 1, 1)),  # resnet's 3×3, 'same'
    (2, 3, 10, 11, 3, (3, 3), (2, 2), (1, 1, 1, 1)),  # stride 2, odd width: a short chunk
    (2, 2, 9, 10, 3, (3, 2), (2, 3), (1, 1, 0, 2)),  # strides, asymmetric pads
    (1, 1, 7, 9, 2, (5, 5), (1, 1), (2, 2, 2, 2)),  # padding wider than a chunk
    (2, 3, 8, 7, 4, (5, 5), (1, 1), (0, 0, 0, 0)),  # unpadded
]


@pytest.mark.parametrize("relu", [None, "grad"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("N, C, H, W, F, k, stride, pads", CASES)
def test_chunks_match_naive(chunks_always, N, C, H, W, F, k, stride, pads, dtype, relu):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    Wt = rng.standard_normal((F, C, *k)).astype(dtype)
    b = rng.standard_normal(F).astype(dtype)
    y, cache = conv2d_forward(x, Wt, b, stride, pads, relu=relu)
    Wo = y.shape[3]
    assert chunks_always and all(0 < q < Wo for q in chunks_always)  # several chunks ran
    ref = conv2d_ref(x, Wt, b, stride, pads)
    if relu:
        ref = np.maximum(ref, 0)
    tol = 1e-4 if dtype == "float32" else 1e-11
    assert y.dtype == np.dtype(dtype)
    np.testing.assert_allclose(y, ref, rtol=tol, atol=tol)
    dy = rng.standard_normal(y.shape).astype(dtype)
    if relu:  # the fused ReLU's derivative is applied by the backward pass
        dy_ref = dy * (y > 0)
    else:
        dy_ref = dy
    assert_conv_backward_matches_ref(conv2d_backward(dy, cache, need_db=True), x, Wt, dy_ref,
                                     stride, pads, dtype)


def test_resnet20_stage1_shape_uses_chunks_and_matches_torch():
    """resnet20's 16-channel 32×32 layer at batch 64 takes the chunks unpatched."""
    torch = pytest.importorskip("torch")
    assert CC.chunk_columns(16, 144, 32, 64) == 6
    rng = np.random.default_rng(2)
    x = rng.standard_normal((64, 16, 32, 32)).astype(np.float32)
    Wt = (rng.standard_normal((16, 16, 3, 3)) * 0.1).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    y, _ = conv2d_forward(x, Wt, b, (1, 1), (1, 1, 1, 1), relu="forward")
    x64 = torch.tensor(x, dtype=torch.float64)
    ref = torch.relu(torch.nn.functional.conv2d(x64, torch.tensor(Wt, dtype=torch.float64),
                                                torch.tensor(b, dtype=torch.float64),
                                                padding=1)).numpy()
    ref32 = torch.relu(torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(Wt),
                                                  torch.tensor(b), padding=1)).numpy()
    # float32 error within a few times PyTorch's own float32 error against float64
    own = np.abs(ref32 - ref).max()
    assert np.abs(y - ref).max() <= 4 * own + 1e-6


def test_chunk_columns_rule():
    assert CC.chunk_columns(32, 288, 16, 64) == 0  # more kernels than MAX_KERNELS
    assert CC.chunk_columns(16, 144, 4, 64) == 0  # a chunk would hold the whole row
    assert CC.chunk_columns(16, 10**6, 32, 64) == 0  # not even one column is small
    Q = CC.chunk_columns(8, 75, 28, 128)
    assert 0 < Q < 28 and 8 * 75 * Q * 128 <= CC.SMALL_MNK < 8 * 75 * (Q + 1) * 128
