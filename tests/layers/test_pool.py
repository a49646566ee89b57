"""MaxPool2D / AvgPool2D (and their kernels) against PyTorch, naive loops and float64
central differences; the tie rule of max pooling; argument validation."""

from __future__ import annotations

import numpy as np
import pytest

from numcnn.functional import (
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)
from numcnn.layers import AvgPool2D, MaxPool2D
from references import avg_pool2d_ref, check_grad, max_pool2d_ref, pads4, tie_free

torch = pytest.importorskip("torch")
tF = torch.nn.functional
torch.set_num_threads(1)

# (N, C, H, W, pool, stride, padding); stride None = defaults to the pool size
CONFIGS = [
    pytest.param(2, 2, 9, 9, 3, 2, 0, id="overlap-3s2"),
    pytest.param(2, 2, 8, 7, 3, 2, 1, id="overlap-3s2-pad1"),
    pytest.param(2, 2, 8, 9, (2, 3), None, 0, id="nonsquare-default-stride"),
    pytest.param(1, 3, 7, 7, 2, None, 0, id="batch1-uneven"),
    pytest.param(2, 1, 9, 8, (3, 2), (1, 2), (1, 0), id="k3x2-s1x2-pad10"),
    pytest.param(1, 2, 6, 5, 2, 2, 1, id="k2-pad1-uneven"),
    pytest.param(2, 2, 11, 10, (3, 3), (3, 2), 0, id="s3x2-uneven"),
]


def _t(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _close(a, ref, dtype):
    assert a.dtype == np.dtype(dtype), a.dtype
    assert a.shape == ref.shape, (a.shape, ref.shape)
    tol = 1e-6 if np.dtype(dtype) == np.float32 else 1e-12
    np.testing.assert_allclose(a, ref, rtol=tol, atol=tol)


def torch_pool(kind, x, pool, stride, pad, dy, count_include_pad=True):
    xt = torch.tensor(x, requires_grad=True)
    if kind == "max":
        y = tF.max_pool2d(xt, pool, stride, pad)
    else:
        y = tF.avg_pool2d(xt, pool, stride, pad, count_include_pad=count_include_pad)
    y.backward(torch.tensor(dy))
    return y.detach().numpy(), xt.grad.numpy()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("N,C,H,W,pool,stride,padding", CONFIGS)
def test_maxpool_layer_matches_torch(N, C, H, W, pool, stride, padding, dtype):
    rng = np.random.default_rng(0)
    x = tie_free((N, C, H, W), rng).astype(dtype)
    layer = MaxPool2D(pool, stride, padding, dtype=dtype)
    layer.build((C, H, W))
    y = layer.forward(x)
    assert y.shape[1:] == layer.output_shape((C, H, W))
    dy = rng.standard_normal(y.shape).astype(dtype)
    s = _t(pool) if stride is None else _t(stride)
    ty, tdx = torch_pool("max", x, _t(pool), s, _t(padding), dy)
    _close(y, ty, dtype)
    _close(layer.backward(dy), tdx, dtype)


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("N,C,H,W,pool,stride,padding", CONFIGS)
def test_avgpool_layer_matches_torch(N, C, H, W, pool, stride, padding, dtype,
                                     count_include_pad):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    layer = AvgPool2D(pool, stride, padding, count_include_pad=count_include_pad, dtype=dtype)
    layer.build((C, H, W))
    y = layer.forward(x)
    assert y.shape[1:] == layer.output_shape((C, H, W))
    dy = rng.standard_normal(y.shape).astype(dtype)
    s = _t(pool) if stride is None else _t(stride)
    ty, tdx = torch_pool("avg", x, _t(pool), s, _t(padding), dy, count_include_pad)
    _close(y, ty, dtype)
    _close(layer.backward(dy), tdx, dtype)


@pytest.mark.parametrize(
    "pool,stride,pads",
    [
        ((3, 3), (2, 2), (0, 1, 1, 0)),
        ((2, 3), (1, 2), (1, 0, 0, 1)),
        ((3, 2), (2, 1), (1, 1, 0, 1)),
    ],
)
def test_pool_kernels_asymmetric_padding_match_naive(pool, stride, pads):
    rng = np.random.default_rng(2)
    x = tie_free((2, 2, 7, 6), rng)
    y, cache = max_pool2d_forward(x, pool, stride, pads)
    ry, rdx_fn = max_pool2d_ref(x, pool, stride, pads)
    np.testing.assert_array_equal(y, ry)
    dy = rng.standard_normal(y.shape)
    np.testing.assert_allclose(max_pool2d_backward(dy, cache), rdx_fn(dy), rtol=1e-12)
    for cip in (True, False):
        y, cache = avg_pool2d_forward(x, pool, stride, pads, count_include_pad=cip)
        np.testing.assert_allclose(y, avg_pool2d_ref(x, pool, stride, pads, cip), rtol=1e-12)


def test_maxpool_with_negative_inputs_and_padding_never_picks_the_pad():
    x = -1.0 - tie_free((1, 1, 4, 4), np.random.default_rng(3), 0, 1)
    layer = MaxPool2D(3, 2, 1, dtype="float64")
    layer.build((1, 4, 4))
    y = layer.forward(x)
    assert np.all(y < -1.0 + 1e-12)
    ty, _ = torch_pool("max", x, (3, 3), (2, 2), (1, 1), np.ones(y.shape))
    np.testing.assert_array_equal(y, ty)


# ------------------------------------------------------------------------------ ties


@pytest.mark.parametrize("pool,stride", [((2, 2), (2, 2)), ((3, 3), (2, 2)), ((2, 3), (1, 1))])
def test_maxpool_ties_go_to_first_max_like_torch(pool, stride):
    rng = np.random.default_rng(4)
    # all-equal input: every window is a full tie
    x_const = np.full((1, 2, 6, 7), 0.5)
    # few distinct values: many ties inside overlapping windows
    x_few = rng.integers(0, 3, size=(2, 2, 6, 7)).astype(np.float64)
    for x in (x_const, x_few):
        y, cache = max_pool2d_forward(x, pool, stride)
        dy = rng.standard_normal(y.shape)
        ty, tdx = torch_pool("max", x, pool, stride, 0, dy)
        np.testing.assert_array_equal(y, ty)
        dx = max_pool2d_backward(dy, cache)
        np.testing.assert_allclose(dx, tdx, rtol=1e-12, atol=1e-12)
        _, rdx_fn = max_pool2d_ref(x, pool, stride)
        np.testing.assert_allclose(dx, rdx_fn(dy), rtol=1e-12, atol=1e-12)


def test_maxpool_tie_gradient_goes_to_top_left_of_window():
    x = np.ones((1, 1, 4, 4))
    y, cache = max_pool2d_forward(x, (2, 2), (2, 2))
    dx = max_pool2d_backward(np.ones_like(y), cache)
    expected = np.zeros((4, 4))
    expected[::2, ::2] = 1
    np.testing.assert_array_equal(dx[0, 0], expected)


# ------------------------------------------------------------------- gradient checks


@pytest.mark.parametrize(
    "pool,stride,padding", [(3, 2, 1), ((2, 3), None, 0), ((3, 2), (1, 2), (1, 0))]
)
def test_maxpool_gradcheck_float64(pool, stride, padding):
    rng = np.random.default_rng(5)
    layer = MaxPool2D(pool, stride, padding, dtype="float64")
    layer.build((2, 7, 8))
    x = tie_free((2, 2, 7, 8), rng)
    R = rng.standard_normal((2,) + layer.output_shape((2, 7, 8)))
    layer.forward(x)
    dx = layer.backward(R)
    check_grad(lambda: float((layer.forward(x) * R).sum()), x, dx, eps=1e-6, rtol=1e-6,
               atol=1e-7, max_elementwise=300)


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("pool,stride,padding", [(3, 2, 1), ((2, 3), None, (1, 1))])
def test_avgpool_gradcheck_float64(pool, stride, padding, count_include_pad):
    rng = np.random.default_rng(6)
    layer = AvgPool2D(pool, stride, padding, count_include_pad=count_include_pad,
                      dtype="float64")
    layer.build((2, 6, 7))
    x = rng.standard_normal((2, 2, 6, 7))
    R = rng.standard_normal((2,) + layer.output_shape((2, 6, 7)))
    layer.forward(x)
    dx = layer.backward(R)
    check_grad(lambda: float((layer.forward(x) * R).sum()), x, dx, rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------------------- validation


def test_stride_defaults_to_pool_size():
    assert MaxPool2D((2, 3)).stride == (2, 3)
    assert AvgPool2D(3).output_shape((1, 9, 10)) == (1, 3, 3)


def test_same_padding_pool_shape():
    layer = MaxPool2D(3, 2, "same")
    assert layer.output_shape((1, 7, 8)) == (1, 4, 4)
    assert pads4("same", (3, 3), (2, 2), (7, 8)) == (1, 1, 0, 1)


@pytest.mark.parametrize(
    "cls,kwargs,match",
    [
        (MaxPool2D, {"pool_size": 0}, "pool_size"),
        (MaxPool2D, {"pool_size": 2, "stride": (0, 1)}, r"stride=\(0, 1\)"),
        (AvgPool2D, {"pool_size": 2, "padding": -1}, "padding"),
        (AvgPool2D, {"pool_size": (2, 2, 2)}, "pool_size"),
    ],
)
def test_pool_rejects_bad_arguments(cls, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        cls(**kwargs)


def test_pool_rejects_padding_larger_than_half_window():
    with pytest.raises(ValueError, match="padding"):
        MaxPool2D(2, padding=2).build((1, 8, 8))
