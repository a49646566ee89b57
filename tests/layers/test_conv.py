"""Conv2D and functional conv2d: forward and backward against PyTorch, the naive loop
reference, float64 central differences and the course's published worked examples."""

from __future__ import annotations

import numpy as np
import pytest

from numcnn.functional import conv2d_backward, conv2d_forward, output_size, resolve_padding
from numcnn.layers import Conv2D
from references import (
    check_grad,
    conv2d_backward_ref,
    conv2d_ref,
    pads4,
)

torch = pytest.importorskip("torch")
tF = torch.nn.functional
torch.set_num_threads(1)

# (N, C, H, W, F, kernel, stride, padding)
CONFIGS = [
    pytest.param(2, 1, 7, 9, 3, (3, 5), 1, 0, id="k3x5-p0"),
    pytest.param(1, 3, 8, 8, 4, 3, 1, 1, id="batch1-p1"),
    pytest.param(2, 2, 9, 7, 3, (3, 5), 1, (1, 2), id="k3x5-pair"),
    pytest.param(2, 2, 8, 9, 2, 3, (2, 1), (0, 2, 1, 0), id="asym4-s2x1"),
    pytest.param(2, 3, 9, 10, 2, (3, 4), 1, "same", id="same-s1-evenk"),
    pytest.param(1, 2, 10, 11, 3, 3, 2, "same", id="same-s2"),
    pytest.param(2, 1, 11, 9, 2, (5, 3), (2, 3), "same", id="same-s2x3"),
    pytest.param(2, 2, 10, 9, 3, 4, 3, "valid", id="valid-uneven-s3"),
    pytest.param(1, 1, 7, 7, 1, 3, 2, 1, id="c1-f1-s2"),
    pytest.param(2, 3, 6, 5, 2, (2, 3), (3, 2), (2, 1), id="s3x2-pair"),
    # the kernel covers the whole (padded) input, as LeNet-5's C5: the im2col-free path
    pytest.param(3, 4, 5, 5, 6, 5, 1, 0, id="whole-C5"),
    pytest.param(1, 2, 3, 4, 3, (3, 4), 2, 0, id="whole-batch1-s2"),
    pytest.param(2, 2, 3, 2, 3, (5, 4), 1, (1, 1, 1, 1), id="whole-padded"),
]


def _as_int_stride(stride):
    return (stride, stride) if isinstance(stride, int) else tuple(stride)


def _as_kernel(k):
    return (k, k) if isinstance(k, int) else tuple(k)


def torch_conv(x, W, b, stride, pads, dy):
    """PyTorch forward and autograd backward, with explicit (t, b, l, r) padding via F.pad."""
    xt = torch.tensor(x, requires_grad=True)
    Wt = torch.tensor(W, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    pt, pb, pl, pr = pads
    if pt == pb and pl == pr:
        y = tF.conv2d(xt, Wt, bt, stride=stride, padding=(pt, pl))
    else:
        y = tF.conv2d(tF.pad(xt, (pl, pr, pt, pb)), Wt, bt, stride=stride)
    y.backward(torch.tensor(dy))
    return (y.detach().numpy(), xt.grad.numpy(), Wt.grad.numpy(), bt.grad.numpy())


def _data(N, C, H, W, F, k, dtype, seed=0):
    rng = np.random.default_rng(seed)
    kh, kw = k
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    Wt = rng.standard_normal((F, C, kh, kw)).astype(dtype)
    b = rng.standard_normal(F).astype(dtype)
    return x, Wt, b


def _close(a, ref, dtype):
    assert a.dtype == np.dtype(dtype), a.dtype
    assert a.shape == ref.shape, (a.shape, ref.shape)
    if np.dtype(dtype) == np.float32:
        scale = max(float(np.abs(ref).max()), 1.0)
        np.testing.assert_allclose(a, ref, rtol=1e-5, atol=1e-5 * scale)
    else:
        np.testing.assert_allclose(a, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("N,C,H,W,F,k,stride,padding", CONFIGS)
def test_functional_conv2d_matches_torch(N, C, H, W, F, k, stride, padding, dtype):
    k, stride = _as_kernel(k), _as_int_stride(stride)
    x, Wt, b = _data(N, C, H, W, F, k, dtype)
    pads = pads4(padding, k, stride, (H, W))
    y, cache = conv2d_forward(x, Wt, b, stride, pads)
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
    ty, tdx, tdW, tdb = torch_conv(x, Wt, b, stride, pads, dy)
    _close(y, ty, dtype)
    dx, dW, db = conv2d_backward(dy, cache)
    _close(dx, tdx, dtype)
    _close(dW, tdW, dtype)
    _close(db, tdb, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("N,C,H,W,F,k,stride,padding", CONFIGS)
def test_conv2d_layer_matches_torch(N, C, H, W, F, k, stride, padding, dtype):
    layer = Conv2D(F, k, stride=stride, padding=padding, dtype=dtype)
    layer.build((C, H, W), np.random.default_rng(0))
    k2, s2 = _as_kernel(k), _as_int_stride(stride)
    x, Wt, b = _data(N, C, H, W, F, k2, dtype, seed=3)
    layer.params["W"][...] = Wt
    layer.params["b"][...] = b
    y = layer.forward(x)
    assert y.shape[1:] == layer.output_shape((C, H, W))
    dy = np.random.default_rng(4).standard_normal(y.shape).astype(dtype)
    ty, tdx, tdW, tdb = torch_conv(x, Wt, b, s2, pads4(padding, k2, s2, (H, W)), dy)
    _close(y, ty, dtype)
    dx = layer.backward(dy)
    _close(dx, tdx, dtype)
    _close(layer.grads["W"], tdW, dtype)
    _close(layer.grads["b"], tdb, dtype)


@pytest.mark.parametrize("N,C,H,W,F,k,stride,padding", CONFIGS)
def test_resolve_padding_matches_tf_rule(N, C, H, W, F, k, stride, padding):
    k, stride = _as_kernel(k), _as_int_stride(stride)
    assert resolve_padding(padding, k, stride, (H, W)) == pads4(padding, k, stride, (H, W))


@pytest.mark.parametrize("n,s", [(9, 1), (10, 2), (11, 2), (7, 3), (5, 1)])
def test_same_output_is_ceil_n_over_s(n, s):
    layer = Conv2D(1, (3, 4), stride=s, padding="same")
    assert layer.output_shape((1, n, n)) == (1, -(-n // s), -(-n // s))


def test_same_stride1_odd_kernel_matches_torch_same():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 2, 7, 6))
    Wt = rng.standard_normal((3, 2, 3, 5))
    y, _ = conv2d_forward(x, Wt, None, (1, 1), resolve_padding("same", (3, 5), (1, 1), (7, 6)))
    ty = tF.conv2d(torch.tensor(x), torch.tensor(Wt), padding="same").numpy()
    np.testing.assert_allclose(y, ty, rtol=1e-10, atol=1e-10)


NAIVE_CONFIGS = [CONFIGS[i] for i in (0, 3, 5, 6, 7, 9)]


@pytest.mark.parametrize("N,C,H,W,F,k,stride,padding", NAIVE_CONFIGS)
def test_functional_conv2d_matches_naive_loops(N, C, H, W, F, k, stride, padding):
    k, stride = _as_kernel(k), _as_int_stride(stride)
    x, Wt, b = _data(N, C, H, W, F, k, np.float64, seed=7)
    pads = pads4(padding, k, stride, (H, W))
    y, cache = conv2d_forward(x, Wt, b, stride, pads)
    np.testing.assert_allclose(y, conv2d_ref(x, Wt, b, stride, pads), rtol=1e-10, atol=1e-10)
    dy = np.random.default_rng(8).standard_normal(y.shape)
    dx, dW, db = conv2d_backward(dy, cache)
    rdx, rdW, rdb = conv2d_backward_ref(x, Wt, dy, stride, pads)
    np.testing.assert_allclose(dx, rdx, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dW, rdW, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(db, rdb, rtol=1e-10, atol=1e-10)


def test_backward_flags_skip_gradients():
    x, Wt, b = _data(1, 2, 5, 5, 2, (3, 3), np.float64)
    y, cache = conv2d_forward(x, Wt, b)
    dx, dW, db = conv2d_backward(np.ones_like(y), cache, need_dx=False, need_db=False)
    assert dx is None and db is None and dW is not None
    rdx, rdW, _ = conv2d_backward_ref(x, Wt, np.ones_like(y))
    np.testing.assert_allclose(dW, rdW, rtol=1e-10)


# ------------------------------------------------------------------- gradient checks


@pytest.mark.parametrize(
    "C,H,W,F,k,stride,padding",
    [
        (2, 5, 6, 2, (3, 2), 1, 1),
        (1, 7, 6, 2, 3, 2, "same"),
        (2, 6, 7, 2, (2, 3), (2, 1), (0, 1, 2, 1)),
        (3, 12, 11, 2, (3, 4), (2, 1), "same"),  # x has 792 values: random directions
    ],
)
def test_conv2d_layer_gradcheck_float64(C, H, W, F, k, stride, padding):
    rng = np.random.default_rng(11)
    layer = Conv2D(F, k, stride=stride, padding=padding, dtype="float64",
                   bias_initializer="normal")
    layer.build((C, H, W), rng)
    x = rng.standard_normal((2, C, H, W))
    R = rng.standard_normal((2,) + layer.output_shape((C, H, W)))

    def loss():
        return float((layer.forward(x) * R).sum())

    layer.forward(x)
    dx = layer.backward(R)
    dW, db = layer.grads["W"].copy(), layer.grads["b"].copy()
    check_grad(loss, x, dx, rtol=1e-6, atol=1e-7)
    check_grad(loss, layer.params["W"], dW, rtol=1e-6, atol=1e-7)
    check_grad(loss, layer.params["b"], db, rtol=1e-6, atol=1e-7)


# -------------------------------------------------- the course's published examples

COURSE_X = np.array([[1, 2, 3, 0], [0, 1, 2, 3], [3, 0, 1, 2], [2, 3, 0, 1]], np.float32)
COURSE_K = np.array([[2, 0, 1], [0, 1, 2], [1, 0, 2]], np.float32)


def test_course_example_valid():
    y, _ = conv2d_forward(COURSE_X[None, None], COURSE_K[None, None], None)
    np.testing.assert_array_equal(y[0, 0], [[15, 16], [6, 15]])
    assert y.dtype == np.float32


def test_course_example_same_padded_with_ones():
    xp = np.pad(COURSE_X, 1, constant_values=1.0)
    y, _ = conv2d_forward(xp[None, None], COURSE_K[None, None], None)
    expected = [[11, 15, 13, 9], [7, 15, 16, 15], [13, 6, 15, 11], [13, 13, 7, 9]]
    np.testing.assert_array_equal(y[0, 0], expected)


def test_course_binary_example_through_layer():
    x = np.array(
        [[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]],
        np.float32,
    )
    k = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]], np.float32)
    layer = Conv2D(1, 3)
    layer.build((1, 5, 5))
    layer.params["W"][...] = k
    y = layer.forward(x[None, None])
    np.testing.assert_array_equal(y[0, 0], [[4, 3, 4], [2, 4, 3], [2, 3, 4]])


def test_course_output_size_formula():
    assert output_size(7, 3, 2, 1) == 4
    assert output_size(32, 5, 1, 0) == 28
    assert output_size(28, 5, 1, 2) == 28


# ----------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"out_channels": 0, "kernel_size": 3}, "out_channels"),
        ({"out_channels": 2, "kernel_size": 0}, "kernel_size"),
        ({"out_channels": 2, "kernel_size": 3, "stride": (0, 1)}, r"stride=\(0, 1\)"),
        ({"out_channels": 2, "kernel_size": 3, "padding": -1}, "padding"),
        ({"out_channels": 2, "kernel_size": 3, "padding": "full"}, "padding"),
        ({"out_channels": 2, "kernel_size": 3, "dtype": "int32"}, "dtype"),
    ],
)
def test_conv2d_rejects_bad_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        Conv2D(**kwargs)


def test_conv2d_rejects_wrong_input():
    layer = Conv2D(2, 3)
    layer.build((1, 5, 5))
    with pytest.raises(ValueError, match="shape"):
        layer.forward(np.zeros((1, 2, 5, 5), np.float32))
    with pytest.raises(TypeError, match="dtype"):
        layer.forward(np.zeros((1, 1, 5, 5), np.float64))
    with pytest.raises(ValueError):
        Conv2D(2, 7).output_shape((1, 5, 5))
