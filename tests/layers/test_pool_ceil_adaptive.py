"""MaxPool2D / AvgPool2D with ``ceil_mode`` and AdaptiveAvgPool2D / AdaptiveMaxPool2D (issue
11) against PyTorch, naive loops (``references.py``) and float64 central differences, on
both kernel paths; output sizes (exhaustively against PyTorch), shape-only walks, argument
errors, the ReLU → max-pooling fusion with ``ceil_mode``, save and load.

float32 results are held to the error a float32 computation may have: a maximum is exact;
a sum of ``K`` terms is within ``(K + 2)·ε₃₂·Σ|terms|`` of the float64 result (PyTorch's or
the naive loop's, in float64).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import numcnn
from numcnn.functional import output_size
from numcnn.io import ModelFileError
from numcnn.layers import (
    AdaptiveAvgPool2D,
    AdaptiveMaxPool2D,
    AvgPool2D,
    Conv2D,
    Dense,
    Flatten,
    MaxPool2D,
    ReLU,
)
from numcnn.layers.gauss_newton import rule_for
from numcnn.models import Sequential
from references import adaptive_pool2d_ref, check_grad, pool2d_ceil_ref, tie_free

torch = pytest.importorskip("torch")
tF = torch.nn.functional
torch.set_num_threads(1)

PATHS = ["fast", "reference"]

# (N, C, H, W, pool, stride, padding): every one has windows hanging off the end in ceil mode
CEIL_CONFIGS = [
    pytest.param(2, 2, 10, 10, 3, 2, 0, id="googlenet-3s2-even"),
    pytest.param(2, 2, 9, 11, 3, 2, 1, id="3s2-pad1-uneven"),
    pytest.param(1, 3, 7, 8, 2, None, 0, id="2x2-batch1-odd"),
    pytest.param(2, 1, 5, 5, 2, 2, 1, id="pad1-last-start-dropped"),
    pytest.param(2, 2, 8, 7, (3, 2), (2, 3), (1, 0), id="k3x2-s2x3-pad10"),
    pytest.param(2, 1, 9, 10, (2, 3), (3, 2), 0, id="stride-gt-window"),
    pytest.param(1, 2, 2, 3, 3, 2, 0, id="window-larger-than-input"),
    pytest.param(2, 2, 6, 6, 3, 3, 1, id="tiled-3-pad1"),
]

# (N, C, H, W, output_size)
ADAPTIVE_CONFIGS = [
    pytest.param(2, 3, 13, 13, (6, 6), id="alexnet-13-to-6"),
    pytest.param(2, 2, 5, 7, (3, 4), id="uneven-5x7-to-3x4"),
    pytest.param(1, 2, 2, 3, (5, 4), id="upsample-2x3-to-5x4"),
    pytest.param(2, 2, 8, 8, (4, 2), id="divisible-8-to-4x2"),
    pytest.param(2, 2, 7, 7, 7, id="identity-7"),
    pytest.param(2, 1, 9, 6, (3, None), id="none-keeps-width"),
    pytest.param(1, 2, 1, 1, (3, 2), id="one-pixel"),
    pytest.param(2, 2, 10, 9, 1, id="global"),
]


def _t(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _within(got, exact, scale, terms, dtype):
    """``got`` has ``dtype`` and lies within ``(terms + 2)·ε·scale`` of the float64 ``exact``."""
    assert got.dtype == np.dtype(dtype), got.dtype
    assert got.shape == exact.shape, (got.shape, exact.shape)
    eps = np.finfo(dtype).eps
    err = np.abs(got.astype(np.float64) - exact)
    bound = (terms + 2) * eps * np.asarray(scale) + 1e-300
    assert np.all(err <= bound), f"max error {err.max():.3g}, bound {bound.max():.3g}"


def _torch_pool(kind, x, dy, **kw):
    """PyTorch's result and input gradient in float64 (the exact reference)."""
    xt = torch.tensor(np.asarray(x, np.float64), requires_grad=True)
    fn = {"max": tF.max_pool2d, "avg": tF.avg_pool2d, "amax": tF.adaptive_max_pool2d,
          "aavg": tF.adaptive_avg_pool2d}[kind]
    y = fn(xt, **kw)
    y.backward(torch.tensor(np.asarray(dy, np.float64)))
    return y.detach().numpy(), xt.grad.numpy()


def _run(layer, x, path, seed=0, dy=None):
    """Forward (training) and backward of ``layer`` on ``path``; also returns ``dy``."""
    with numcnn.use_kernels(path):
        y = layer.forward(x, training=True)
        assert y.shape[1:] == layer.output_shape(x.shape[1:])
        if dy is None:
            dy = np.random.default_rng(seed).standard_normal(y.shape).astype(x.dtype)
        dx = layer.backward(dy)
    assert (layer._last_call.cache["kernel"] == path
            or not isinstance(layer, (MaxPool2D, AvgPool2D)))
    return y, dx, dy


# ------------------------------------------------------------------ output sizes


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_output_size_matches_torch_for_every_small_case(ceil_mode):
    """Every n ≤ 11, k ≤ 5, s ≤ 4, p ≤ k/2: the same size as PyTorch, or both refuse."""
    for n in range(1, 12):
        for k in range(1, 6):
            for s in range(1, 5):
                for p in range(k // 2 + 1):
                    try:
                        want = tuple(tF.max_pool2d(torch.zeros(1, 1, n, n), k, s, p,
                                                   ceil_mode=ceil_mode).shape[2:])
                    except RuntimeError:
                        want = None
                    layer = MaxPool2D(k, s, p, ceil_mode=ceil_mode)
                    if want is None or 0 in want:
                        with pytest.raises(ValueError, match="too small"):
                            layer.output_shape((1, n, n))
                        continue
                    assert output_size(n, k, s, p, p, ceil_mode) == want[0], (n, k, s, p)
                    assert layer.output_shape((1, n, n)) == (1,) + want, (n, k, s, p)


def test_ceil_mode_examples_from_the_classic_nets():
    # GoogLeNet (torchvision): 112 -> 56 -> 28 -> 14 -> 7 with 3x3 stride-2 ceil pools
    pool = MaxPool2D(3, stride=2, ceil_mode=True)
    assert [pool.output_shape((1, n, n))[1] for n in (112, 56, 28, 14)] == [56, 28, 14, 7]
    assert MaxPool2D(3, stride=2).output_shape((1, 112, 112)) == (1, 55, 55)
    # the last window must start inside the input or its left padding: 5 + 2·1, k=2, s=2
    assert AvgPool2D(2, 2, 1, ceil_mode=True).output_shape((1, 5, 5)) == (1, 3, 3)
    assert output_size(5, 2, 2, 1, 1, ceil_mode=True) == 3  # not ⌈5/2⌉ + 1 = 4


def test_free_sizes_stay_free_and_same_padding_agrees():
    assert MaxPool2D(3, 2, ceil_mode=True).output_shape((4, None, 9)) == (4, None, None)
    for n in range(1, 12):
        same = MaxPool2D(3, 2, "same", ceil_mode=True)
        assert same.output_shape((1, n, n)) == MaxPool2D(3, 2, "same").output_shape((1, n, n))
    assert MaxPool2D(3, 2, "same", ceil_mode=True).output_shape((1, None, None)) == (1, None,
                                                                                     None)


# ---------------------------------------------------------------- ceil_mode vs torch


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("N,C,H,W,pool,stride,padding", CEIL_CONFIGS)
def test_maxpool_ceil_mode_matches_torch(N, C, H, W, pool, stride, padding, dtype, path):
    rng = np.random.default_rng(0)
    x = tie_free((N, C, H, W), rng).astype(dtype)
    layer = MaxPool2D(pool, stride, padding, ceil_mode=True, dtype=dtype)
    layer.build((C, H, W))
    y, dx, dy = _run(layer, x, path)
    s = _t(pool) if stride is None else _t(stride)
    kw = dict(kernel_size=_t(pool), stride=s, padding=_t(padding), ceil_mode=True)
    ty, tdx = _torch_pool("max", x, dy, **kw)
    np.testing.assert_array_equal(y, ty.astype(dtype))  # a maximum is exact
    _, sdx = _torch_pool("max", x, abs(dy), **kw)
    _within(dx, tdx, sdx, _t(pool)[0] * _t(pool)[1], dtype)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("count_include_pad", [True, False], ids=["incl-pad", "excl-pad"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("N,C,H,W,pool,stride,padding", CEIL_CONFIGS)
def test_avgpool_ceil_mode_matches_torch(N, C, H, W, pool, stride, padding, dtype,
                                         count_include_pad, path):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    layer = AvgPool2D(pool, stride, padding, count_include_pad=count_include_pad,
                      ceil_mode=True, dtype=dtype)
    layer.build((C, H, W))
    y, dx, dy = _run(layer, x, path)
    s = _t(pool) if stride is None else _t(stride)
    kw = dict(kernel_size=_t(pool), stride=s, padding=_t(padding), ceil_mode=True,
              count_include_pad=count_include_pad)
    ty, tdx = _torch_pool("avg", x, dy, **kw)
    sy, sdx = _torch_pool("avg", abs(x), abs(dy), **kw)
    K = _t(pool)[0] * _t(pool)[1]
    _within(y, ty, sy, K, dtype)
    _within(dx, tdx, sdx, K, dtype)


@pytest.mark.parametrize("path", PATHS)
def test_avgpool_ceil_divisors_are_torchs(path):
    """A constant input shows the divisors: windows hanging off the end count only their
    part inside the padded input (count_include_pad) or inside the input."""
    x = np.ones((1, 1, 5, 5))
    for cip in (True, False):
        layer = AvgPool2D(3, 2, 1, count_include_pad=cip, ceil_mode=True, dtype="float64")
        with numcnn.use_kernels(path):
            y = layer.forward(x)
        ty, _ = _torch_pool("avg", x, np.ones(y.shape), kernel_size=3, stride=2, padding=1,
                            ceil_mode=True, count_include_pad=cip)
        np.testing.assert_allclose(y, ty, rtol=1e-15)
    layer = AvgPool2D(3, 2, ceil_mode=True, dtype="float64")  # 2x2 input, 3x3 window
    with numcnn.use_kernels(path):
        y = layer.forward(np.arange(4.0).reshape(1, 1, 2, 2))
    assert y.shape == (1, 1, 1, 1) and y[0, 0, 0, 0] == 1.5  # (0+1+2+3) / 4, as PyTorch


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    "pool,stride,pads",
    [((3, 3), (2, 2), (0, 1, 1, 0)), ((2, 3), (2, 2), (1, 0, 0, 1)),
     ((3, 2), (2, 3), (1, 1, 0, 1)), ((2, 2), (3, 3), (0, 0, 1, 0))],
)
def test_ceil_mode_with_asymmetric_padding_matches_naive_loops(pool, stride, pads, path):
    """PyTorch has no asymmetric padding; the naive loops count the windows one by one."""
    rng = np.random.default_rng(2)
    x = tie_free((2, 2, 8, 7), rng)
    for kind, cls, extra in (("max", MaxPool2D, [{}]),
                             ("avg", AvgPool2D, [{"count_include_pad": c}
                                                 for c in (True, False)])):
        for kw in extra:
            layer = cls(pool, stride, pads, ceil_mode=True, dtype="float64", **kw)
            y, dx, dy = _run(layer, x, path)
            ry, rdx = pool2d_ceil_ref(x, kind, pool, stride, pads, True,
                                      kw.get("count_include_pad", True))
            np.testing.assert_allclose(y, ry, rtol=1e-13, atol=1e-15)
            np.testing.assert_allclose(dx, rdx(dy), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("path", PATHS)
def test_maxpool_ceil_ties_go_to_the_first_maximum_like_torch(path):
    rng = np.random.default_rng(3)
    for x in (np.full((1, 2, 7, 7), 0.5), rng.integers(0, 3, (2, 2, 7, 8)).astype(float)):
        layer = MaxPool2D(3, 2, 1, ceil_mode=True, dtype="float64")
        y, dx, dy = _run(layer, x, path)
        ty, tdx = _torch_pool("max", x, dy, kernel_size=3, stride=2, padding=1,
                              ceil_mode=True)
        np.testing.assert_array_equal(y, ty)
        np.testing.assert_allclose(dx, tdx, rtol=1e-14, atol=1e-15)


def test_ceil_mode_false_is_the_default_and_unchanged():
    rng = np.random.default_rng(4)
    x = tie_free((2, 2, 9, 9), rng)
    for a, b in ((MaxPool2D(3, 2), MaxPool2D(3, 2, ceil_mode=False)),
                 (AvgPool2D(3, 2, 1), AvgPool2D(3, 2, 1, ceil_mode=False))):
        a.set_dtype("float64")
        b.set_dtype("float64")
        assert a.ceil_mode is False and a.get_config()["ceil_mode"] is False
        np.testing.assert_array_equal(a.forward(x), b.forward(x))
    # with windows that fit exactly, ceil_mode changes nothing
    np.testing.assert_array_equal(MaxPool2D(3, 2, dtype="float64").forward(x),
                                  MaxPool2D(3, 2, ceil_mode=True, dtype="float64").forward(x))


# ---------------------------------------------------------------- adaptive vs torch


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("N,C,H,W,out", ADAPTIVE_CONFIGS)
def test_adaptive_avgpool_matches_torch(N, C, H, W, out, dtype, path):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    layer = AdaptiveAvgPool2D(out, dtype=dtype)
    layer.build((C, H, W))
    y, dx, dy = _run(layer, x, path)
    ty, tdx = _torch_pool("aavg", x, dy, output_size=out)
    sy, sdx = _torch_pool("aavg", abs(x), abs(dy), output_size=out)
    K = (H // y.shape[2] + 2) * (W // y.shape[3] + 2)  # terms per window, generously
    _within(y, ty, sy, K, dtype)
    _within(dx, tdx, sdx, K, dtype)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("N,C,H,W,out", ADAPTIVE_CONFIGS)
def test_adaptive_maxpool_matches_torch(N, C, H, W, out, dtype, path):
    rng = np.random.default_rng(6)
    x = tie_free((N, C, H, W), rng).astype(dtype)
    layer = AdaptiveMaxPool2D(out, dtype=dtype)
    layer.build((C, H, W))
    y, dx, dy = _run(layer, x, path)
    ty, tdx = _torch_pool("amax", x, dy, output_size=out)
    np.testing.assert_array_equal(y, ty.astype(dtype))
    _, sdx = _torch_pool("amax", x, abs(dy), output_size=out)
    _within(dx, tdx, sdx, 4, dtype)  # a winner shared by at most 4 overlapping windows


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("H,W,out", [(7, 9, (3, 4)), (4, 4, (2, 2)), (3, 2, (5, 3))])
def test_adaptive_maxpool_ties_go_to_the_first_maximum_like_torch(H, W, out, path):
    rng = np.random.default_rng(7)
    for x in (np.ones((1, 2, H, W)), rng.integers(0, 3, (2, 2, H, W)).astype(float)):
        layer = AdaptiveMaxPool2D(out, dtype="float64")
        y, dx, dy = _run(layer, x, path)
        ty, tdx = _torch_pool("amax", x, dy, output_size=out)
        np.testing.assert_array_equal(y, ty)
        np.testing.assert_allclose(dx, tdx, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("kind,cls", [("avg", AdaptiveAvgPool2D), ("max", AdaptiveMaxPool2D)])
def test_adaptive_pools_match_naive_loops(kind, cls, path):
    rng = np.random.default_rng(8)
    for H, W, out in ((11, 6, (4, 5)), (3, 3, (4, 2)), (6, 9, (3, 3))):
        x = tie_free((2, 2, H, W), rng)
        y, dx, dy = _run(cls(out, dtype="float64"), x, path)
        ry, rdx = adaptive_pool2d_ref(x, kind, out)
        np.testing.assert_allclose(y, ry, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(dx, rdx(dy), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("path", PATHS)
def test_one_adaptive_layer_takes_inputs_of_any_size(path):
    layer = AdaptiveAvgPool2D((2, 3), dtype="float64")
    layer.build((2, None, None))
    assert layer.output_shape((2, None, None)) == (2, 2, 3)
    assert AdaptiveAvgPool2D((None, 3)).output_shape((2, None, None)) == (2, None, 3)
    rng = np.random.default_rng(9)
    for H, W in ((4, 6), (7, 5), (1, 2)):
        x = rng.standard_normal((2, 2, H, W))
        y, dx, dy = _run(layer, x, path)
        ty, tdx = _torch_pool("aavg", x, dy, output_size=(2, 3))
        np.testing.assert_allclose(y, ty, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(dx, tdx, rtol=1e-13, atol=1e-15)


def test_adaptive_pools_take_the_fast_kernel_only_where_windows_tile():
    x = np.random.default_rng(10).standard_normal((2, 3, 8, 6)).astype(np.float32)
    for cls in (AdaptiveAvgPool2D, AdaptiveMaxPool2D):
        for out, fast in (((4, 3), True), ((2, 6), True), ((3, 4), False), ((8, 6), True)):
            layer = cls(out)
            layer.forward(x)
            assert layer._last_call.cache["kernel"] == ("fast" if fast else "reference")
            with numcnn.use_kernels("reference"):
                layer.forward(x)
            assert layer._last_call.cache["kernel"] == "reference"


# ------------------------------------------------------------- gradient checks


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("pool,stride,padding", [(3, 2, 1), ((2, 3), (3, 2), 0), (3, 2, 0)])
def test_maxpool_ceil_gradcheck_float64(pool, stride, padding, path):
    rng = np.random.default_rng(11)
    layer = MaxPool2D(pool, stride, padding, ceil_mode=True, dtype="float64")
    layer.build((2, 8, 7))
    x = tie_free((2, 2, 8, 7), rng)
    R = rng.standard_normal((2,) + layer.output_shape((2, 8, 7)))
    with numcnn.use_kernels(path):
        layer.forward(x, training=True)
        dx = layer.backward(R)
        check_grad(lambda: float((layer.forward(x) * R).sum()), x, dx, eps=1e-6, rtol=1e-6,
                   atol=1e-7, max_elementwise=300)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("pool,stride,padding", [(3, 2, 1), ((2, 3), (3, 2), (1, 0))])
def test_avgpool_ceil_gradcheck_float64(pool, stride, padding, count_include_pad, path):
    rng = np.random.default_rng(12)
    layer = AvgPool2D(pool, stride, padding, count_include_pad=count_include_pad,
                      ceil_mode=True, dtype="float64")
    layer.build((2, 6, 8))
    x = rng.standard_normal((2, 2, 6, 8))
    R = rng.standard_normal((2,) + layer.output_shape((2, 6, 8)))
    with numcnn.use_kernels(path):
        layer.forward(x, training=True)
        dx = layer.backward(R)
        check_grad(lambda: float((layer.forward(x) * R).sum()), x, dx, rtol=1e-6, atol=1e-7,
                   max_elementwise=300)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("cls", [AdaptiveAvgPool2D, AdaptiveMaxPool2D])
@pytest.mark.parametrize("H,W,out", [(7, 9, (3, 4)), (2, 3, (3, 5)), (6, 6, (3, 2))])
def test_adaptive_gradcheck_float64(cls, H, W, out, path):
    rng = np.random.default_rng(13)
    layer = cls(out, dtype="float64")
    layer.build((2, H, W))
    x = tie_free((2, 2, H, W), rng)
    R = rng.standard_normal((2,) + layer.output_shape((2, H, W)))
    with numcnn.use_kernels(path):
        layer.forward(x, training=True)
        dx = layer.backward(R)
        check_grad(lambda: float((layer.forward(x) * R).sum()), x, dx, rtol=1e-6, atol=1e-7,
                   max_elementwise=300)


# ------------------------------------------------------------ fusion, models, files


@pytest.mark.parametrize("chwn", [False, True], ids=["nchw", "chwn"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_relu_then_ceil_maxpool_fusion_matches_torch(dtype, chwn):
    """The fused backward stays exact: a window hanging off the end still has a real
    winner (it starts inside the input), so 1[x > 0] = 1[y > 0] where δ is routed."""
    rng = np.random.default_rng(14)
    x = rng.integers(-2, 3, (3, 2, 10, 9)).astype(dtype)
    net = Sequential([ReLU(), MaxPool2D(3, stride=2, padding=1, ceil_mode=True)],
                     input_shape=(2, 10, 9), dtype=dtype)
    net.need_input_grad = True
    if chwn:
        x = np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
    y = net.forward(x, training=True)
    assert net.fusions == [("relu", "maxpool2d")]
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = net.backward(dy)
    xt = torch.tensor(np.asarray(x), requires_grad=True)
    yt = tF.max_pool2d(torch.relu(xt), 3, 2, 1, ceil_mode=True)
    yt.backward(torch.tensor(dy))
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-6, atol=0)
    unfused = Sequential([ReLU(), MaxPool2D(3, stride=2, padding=1, ceil_mode=True)],
                         input_shape=(2, 10, 9), dtype=dtype, fuse=False)
    unfused.need_input_grad = True
    unfused.forward(x, training=True)
    np.testing.assert_array_equal(unfused.backward(dy), dx)


def _small_net(seed=0):
    """A net built for any input size: the adaptive pooling fixes the classifier's input."""
    return Sequential([Conv2D(4, 3, padding=1), ReLU(), MaxPool2D(3, 2, ceil_mode=True),
                       AvgPool2D(2, 2, 1, count_include_pad=False, ceil_mode=True),
                       AdaptiveAvgPool2D((2, 3)), Flatten(), Dense(5)],
                      input_shape=(1, None, None), seed=seed)


def test_a_model_with_free_input_size_runs_saves_and_loads(tmp_path):
    net = _small_net()
    assert net.layers[-1].params["W"].shape == (4 * 2 * 3, 5)
    rng = np.random.default_rng(15)
    xs = [rng.standard_normal((2, 1, H, W)).astype(np.float32) for H, W in
          ((12, 12), (9, 13), (5, 6))]
    ys = [net.predict(x) for x in xs]
    assert all(y.shape == (2, 5) for y in ys)
    path = tmp_path / "net.npz"
    numcnn.save_model(net, path)
    back = numcnn.load_model(path)
    cfgs = [layer.get_config() for layer in back.layers]
    assert cfgs[2]["ceil_mode"] is True and cfgs[4]["output_size"] == [2, 3]
    for x, y in zip(xs, ys):
        np.testing.assert_array_equal(back.predict(x), y)


@pytest.mark.parametrize("layer,key,value,match", [
    (4, "output_size", [0, 3], "output_size must be positive"),
    (2, "ceil_mode", "yes", "ceil_mode must be True or False"),
    (4, "output_size", [10**9, 10**9], "more than"),  # walked by shapes: nothing allocated
])
def test_a_saved_config_with_bad_pooling_arguments_is_refused(tmp_path, layer, key, value,
                                                               match):
    path = tmp_path / "net.npz"
    numcnn.save_model(_small_net(), path)
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    cfg = json.loads(str(arrays["__config__"]))
    cfg["model"]["config"]["layers"][layer]["config"][key] = value
    arrays["__config__"] = np.array(json.dumps(cfg))
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ModelFileError, match=match):
        numcnn.load_model(tmp_path / "bad.npz")


def test_pooling_layers_have_no_gauss_newton_rule_and_say_so():
    for layer in (MaxPool2D(2, ceil_mode=True), AvgPool2D(2, ceil_mode=True),
                  AdaptiveAvgPool2D(2), AdaptiveMaxPool2D(2)):
        with pytest.raises(NotImplementedError, match=type(layer).__name__):
            rule_for(layer)


# ----------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "cls,kwargs,match",
    [
        (AdaptiveAvgPool2D, {"output_size": 0}, r"positive; received output_size=0"),
        (AdaptiveAvgPool2D, {"output_size": (3, -1)}, r"received output_size=\(3, -1\)"),
        (AdaptiveMaxPool2D, {"output_size": (2, 2, 2)}, "an int or a pair"),
        (AdaptiveMaxPool2D, {"output_size": 2.5}, r"received output_size=2\.5"),
        (AdaptiveAvgPool2D, {"output_size": True}, "an int or a pair"),
        (MaxPool2D, {"pool_size": 2, "ceil_mode": "yes"}, "ceil_mode must be True or False"),
        (AvgPool2D, {"pool_size": 2, "ceil_mode": 1}, r"received ceil_mode=1"),
    ],
)
def test_bad_arguments_are_refused_with_what_was_received(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


def test_inputs_too_small_are_refused_with_a_clear_message():
    with pytest.raises(ValueError, match=r"MaxPool2D: input \(2, 2\) is too small.*ceil_mode"):
        MaxPool2D(4, 2, ceil_mode=True).output_shape((1, 2, 2))
    with pytest.raises(ValueError, match=r"input \(1, 5\) is too small"):
        AvgPool2D(3, 2, ceil_mode=True).build((1, 1, 5))
    assert MaxPool2D(3, 2, ceil_mode=True).output_shape((1, 2, 2)) == (1, 1, 1)  # as torch
    with pytest.raises(ValueError, match=r"expected a \(C, H, W\) input shape"):
        AdaptiveAvgPool2D(2).output_shape((3, 4))
    layer = AdaptiveMaxPool2D(2)
    layer.build((3, None, None))
    with pytest.raises(ValueError, match="expected input of shape"):
        layer.forward(np.zeros((1, 4, 5, 5), np.float32))
