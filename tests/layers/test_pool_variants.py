"""LpPool2D, WeightedPool2D, GlobalAvgPool2D, GlobalMaxPool2D and AvgPool2D's
``count_include_pad`` against PyTorch, naive loops, closed forms and float64 central
differences."""

from __future__ import annotations

import numpy as np
import pytest

from numcnn.layers import (
    AvgPool2D,
    GlobalAvgPool2D,
    GlobalMaxPool2D,
    LpPool2D,
    WeightedPool2D,
)
from references import (
    avg_pool2d_ref,
    check_grad,
    lp_pool2d_ref,
    pads4,
    tie_free,
    weighted_pool2d_ref,
)

torch = pytest.importorskip("torch")
tF = torch.nn.functional
torch.set_num_threads(1)

# (N, C, H, W, pool, stride) without padding — PyTorch's lp_pool2d has none
LP_CONFIGS = [
    pytest.param(2, 2, 8, 8, 2, None, id="2x2"),
    pytest.param(2, 3, 9, 7, 3, 2, id="overlap-3s2-uneven"),
    pytest.param(1, 2, 7, 8, (2, 3), (1, 2), id="k2x3-s1x2"),
    pytest.param(2, 1, 5, 6, (3, 2), None, id="k3x2-default-stride"),
]


def _tol(dtype):
    return dict(rtol=2e-5, atol=2e-6) if np.dtype(dtype) == np.float32 else dict(
        rtol=1e-11, atol=1e-12)


def _layer(cls, in_shape, dtype, **kw):
    layer = cls(dtype=dtype, **kw)
    layer.build(in_shape)
    return layer


def _lp_input(rng, shape, p):
    x = rng.standard_normal(shape)
    if p != 2 and p != 1:
        x = np.abs(x) + 0.1  # non-even p on negative values gives NaN in PyTorch too
    return x


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("p", [2, 1, 3, 1.5])
@pytest.mark.parametrize("N,C,H,W,pool,stride", LP_CONFIGS)
def test_lppool_sum_form_matches_torch(N, C, H, W, pool, stride, p, dtype):
    rng = np.random.default_rng(1)
    x = _lp_input(rng, (N, C, H, W), p).astype(dtype)
    layer = _layer(LpPool2D, (C, H, W), dtype, p=p, pool_size=pool, stride=stride)
    y = layer.forward(x)
    xt = torch.tensor(x, requires_grad=True)
    yt = tF.lp_pool2d(xt, p, pool, stride)
    assert y.dtype == np.dtype(dtype) and y.shape == tuple(yt.shape)
    np.testing.assert_allclose(y, yt.detach().numpy(), **_tol(dtype))
    dy = rng.standard_normal(y.shape).astype(dtype)
    yt.backward(torch.tensor(dy))
    dx = layer.backward(dy)
    assert dx.dtype == np.dtype(dtype)
    np.testing.assert_allclose(dx, xt.grad.numpy(), **_tol(dtype))


def test_lppool_zero_window_has_zero_gradient_like_torch():
    x = np.ones((1, 1, 4, 4))
    x[0, 0, :2, :2] = 0.0  # one all-zero window
    layer = _layer(LpPool2D, (1, 4, 4), "float64", p=2)
    y = layer.forward(x)
    dx = layer.backward(np.ones_like(y))
    xt = torch.tensor(x, requires_grad=True)
    yt = tF.lp_pool2d(xt, 2, 2)
    yt.backward(torch.ones_like(yt))
    np.testing.assert_allclose(y, yt.detach().numpy())
    np.testing.assert_array_equal(dx[0, 0, :2, :2], 0.0)
    np.testing.assert_allclose(dx, xt.grad.numpy())


@pytest.mark.parametrize("p", [2, 3, 1.5])
@pytest.mark.parametrize("pool,stride,padding", [(2, None, 0), (3, 2, 1), ((3, 2), (2, 1),
                                                                            (1, 0))])
def test_lppool_mean_form_and_padding_against_naive(p, pool, stride, padding):
    rng = np.random.default_rng(2)
    x = _lp_input(rng, (2, 2, 7, 6), p)
    layer = _layer(LpPool2D, (2, 7, 6), "float64", p=p, pool_size=pool, stride=stride,
                   padding=padding, mode="mean")
    pk = (pool, pool) if isinstance(pool, int) else pool
    st = pk if stride is None else ((stride, stride) if isinstance(stride, int) else stride)
    pads = pads4(padding, pk, st, (7, 6))
    ref = lp_pool2d_ref(x, p, pk, st, pads, mean=True)
    np.testing.assert_allclose(layer.forward(x), ref, rtol=1e-12)
    # closed form: mean form = sum form / K^(1/p)
    sum_layer = _layer(LpPool2D, (2, 7, 6), "float64", p=p, pool_size=pool, stride=stride,
                       padding=padding)
    np.testing.assert_allclose(sum_layer.forward(x) / (pk[0] * pk[1]) ** (1 / p), ref,
                               rtol=1e-12)


def test_lppool_mean_form_p1_is_average_and_large_p_tends_to_max():
    rng = np.random.default_rng(3)
    x = np.abs(rng.standard_normal((1, 2, 6, 6))) + 0.1
    avg = x.reshape(1, 2, 3, 2, 3, 2).mean(axis=(3, 5))
    mx = x.reshape(1, 2, 3, 2, 3, 2).max(axis=(3, 5))
    y1 = _layer(LpPool2D, (2, 6, 6), "float64", p=1, mode="mean").forward(x)
    np.testing.assert_allclose(y1, avg, rtol=1e-12)
    y64 = _layer(LpPool2D, (2, 6, 6), "float64", p=64, mode="mean").forward(x)
    assert np.all(y64 <= mx + 1e-12) and np.all(y64 >= mx * 4 ** (-1 / 64) - 1e-12)


def test_lppool_abs_input_is_the_true_norm():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 2, 6, 6))
    for p in (1, 3):
        y = _layer(LpPool2D, (2, 6, 6), "float64", p=p, pool_size=3, abs_input=True).forward(x)
        np.testing.assert_allclose(y, lp_pool2d_ref(x, p, (3, 3), (3, 3), use_abs=True),
                                   rtol=1e-12)
        win = x.reshape(2, 2, 2, 3, 2, 3).transpose(0, 1, 2, 4, 3, 5).reshape(2, 2, 2, 2, 9)
        np.testing.assert_allclose(y, np.linalg.norm(win, ord=p, axis=-1), rtol=1e-12)
    # p = 1 without abs is PyTorch's signed sum
    y = _layer(LpPool2D, (2, 6, 6), "float64", p=1, pool_size=3).forward(x)
    np.testing.assert_allclose(y, tF.lp_pool2d(torch.tensor(x), 1, 3).numpy(), rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("pool,stride,padding", [(3, 2, 1), ((3, 2), (1, 2), (1, 1)),
                                                 (2, 2, 1)])
def test_avgpool_count_include_pad_matches_torch(pool, stride, padding, count_include_pad,
                                                 dtype):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 2, 7, 6)).astype(dtype)
    layer = _layer(AvgPool2D, (2, 7, 6), dtype, pool_size=pool, stride=stride,
                   padding=padding, count_include_pad=count_include_pad)
    y = layer.forward(x)
    xt = torch.tensor(x, requires_grad=True)
    yt = tF.avg_pool2d(xt, pool, stride, padding, count_include_pad=count_include_pad)
    assert y.dtype == np.dtype(dtype)
    np.testing.assert_allclose(y, yt.detach().numpy(), **_tol(dtype))
    dy = rng.standard_normal(y.shape).astype(dtype)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(layer.backward(dy), xt.grad.numpy(), **_tol(dtype))


def test_avgpool_count_include_pad_changes_border_only():
    x = np.ones((1, 1, 4, 4))
    yin = _layer(AvgPool2D, (1, 4, 4), "float64", pool_size=3, stride=1, padding=1,
                 count_include_pad=True).forward(x)
    yex = _layer(AvgPool2D, (1, 4, 4), "float64", pool_size=3, stride=1, padding=1,
                 count_include_pad=False).forward(x)
    np.testing.assert_allclose(yex, 1.0)  # real inputs only: a constant stays constant
    assert yin[0, 0, 0, 0] == pytest.approx(4 / 9) and yin[0, 0, 1, 1] == 1.0
    np.testing.assert_allclose(yin, avg_pool2d_ref(x, (3, 3), (1, 1), (1, 1, 1, 1)))


# ---------------------------------------------------------------------- WeightedPool2D


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("pool,stride,padding,sigma", [
    (3, None, 0, 1.0), (3, 2, 1, 0.7), ((3, 2), (1, 2), (1, 0), 1.5), (5, 2, 2, 2.0)])
def test_weighted_pool_matches_naive(pool, stride, padding, sigma, dtype):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 2, 9, 8)).astype(dtype)
    layer = _layer(WeightedPool2D, (2, 9, 8), dtype, pool_size=pool, stride=stride,
                   padding=padding, sigma=sigma)
    pk = (pool, pool) if isinstance(pool, int) else pool
    st = pk if stride is None else ((stride, stride) if isinstance(stride, int) else stride)
    ref = weighted_pool2d_ref(x, pk, st, pads4(padding, pk, st, (9, 8)), sigma)
    y = layer.forward(x)
    assert y.dtype == np.dtype(dtype)
    np.testing.assert_allclose(y, ref, **_tol(dtype))


def test_weighted_pool_properties():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1, 1, 6, 6))
    const = np.full((1, 1, 6, 6), 2.5)
    w3 = _layer(WeightedPool2D, (1, 6, 6), "float64", pool_size=3)
    np.testing.assert_allclose(w3.forward(const), 2.5)  # weights sum to 1
    assert w3.weights[1, 1] == w3.weights.max() and w3.weights[0, 0] == w3.weights.min()
    w2 = _layer(WeightedPool2D, (1, 6, 6), "float64", pool_size=2, sigma=0.3)
    np.testing.assert_allclose(w2.forward(x), x.reshape(1, 1, 3, 2, 3, 2).mean(axis=(3, 5)))
    wide = _layer(WeightedPool2D, (1, 6, 6), "float64", pool_size=3, sigma=1e4)
    np.testing.assert_allclose(wide.forward(x), tF.avg_pool2d(torch.tensor(x), 3).numpy(),
                               rtol=1e-6)


# --------------------------------------------------------------------- global pooling


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_global_pools_match_torch(dtype):
    rng = np.random.default_rng(8)
    x = tie_free((3, 4, 5, 6), rng).astype(dtype)
    dy = rng.standard_normal((3, 4)).astype(dtype)
    for cls, tfn, npfn in [(GlobalAvgPool2D, tF.adaptive_avg_pool2d, np.mean),
                           (GlobalMaxPool2D, tF.adaptive_max_pool2d, np.max)]:
        layer = _layer(cls, (4, 5, 6), dtype)
        y = layer.forward(x)
        assert y.shape == (3, 4) and y.dtype == np.dtype(dtype)
        np.testing.assert_allclose(y, npfn(x, axis=(2, 3)), **_tol(dtype))
        xt = torch.tensor(x, requires_grad=True)
        yt = tfn(xt, 1).flatten(1)
        yt.backward(torch.tensor(dy))
        np.testing.assert_allclose(y, yt.detach().numpy(), **_tol(dtype))
        dx = layer.backward(dy)
        assert dx.dtype == np.dtype(dtype)
        np.testing.assert_allclose(dx, xt.grad.numpy(), **_tol(dtype))


def test_global_max_ties_go_to_first_maximum():
    x = np.zeros((1, 1, 2, 3))
    x[0, 0, 0, 2] = x[0, 0, 1, 0] = 1.0
    layer = _layer(GlobalMaxPool2D, (1, 2, 3), "float64")
    layer.forward(x)
    dx = layer.backward(np.array([[5.0]]))
    expected = np.zeros_like(x)
    expected[0, 0, 0, 2] = 5.0
    np.testing.assert_array_equal(dx, expected)


# ------------------------------------------------------------------- gradient checks


GRAD_CASES = [
    (LpPool2D, {"p": 2, "pool_size": 3, "stride": 2, "padding": 1}, "normal"),
    (LpPool2D, {"p": 3, "pool_size": (2, 3), "stride": (1, 2), "mode": "mean"}, "positive"),
    (LpPool2D, {"p": 1.5, "pool_size": 2, "abs_input": True}, "normal"),
    (LpPool2D, {"p": 1, "pool_size": 2, "stride": 1}, "normal"),
    (WeightedPool2D, {"pool_size": 3, "stride": 2, "padding": 1, "sigma": 0.8}, "normal"),
    (WeightedPool2D, {"pool_size": (2, 3), "stride": 1}, "normal"),
    (GlobalAvgPool2D, {}, "normal"),
    (GlobalMaxPool2D, {}, "tie_free"),
]


@pytest.mark.parametrize("cls,kwargs,kind", GRAD_CASES,
                         ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(GRAD_CASES)])
def test_gradient_check_float64(cls, kwargs, kind):
    rng = np.random.default_rng(9)
    shape = (2, 2, 6, 7)
    if kind == "tie_free":
        x = tie_free(shape, rng)
    else:
        x = rng.standard_normal(shape)
        # keep |x| away from 0 so |x|^p (p < 2) stays smooth at the finite-difference scale
        x = np.where(x >= 0, x + 0.1, x - 0.1)
        if kind == "positive":
            x = np.abs(x)
    layer = _layer(cls, shape[1:], "float64", **kwargs)
    y = layer.forward(x)
    R = rng.standard_normal(y.shape)

    def loss():
        return float((layer.forward(x) * R).sum())

    layer.forward(x)
    dx = layer.backward(R)
    check_grad(loss, x, dx, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("cls,kwargs", [
    (LpPool2D, {"p": 0.5}), (LpPool2D, {"p": float("inf")}), (LpPool2D, {"mode": "max"}),
    (WeightedPool2D, {"sigma": 0}), (WeightedPool2D, {"sigma": -1.0}),
])
def test_bad_arguments(cls, kwargs):
    with pytest.raises(ValueError, match="received"):
        cls(**kwargs)
