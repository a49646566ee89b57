"""``ConvND``, ``ConvTranspose`` and ``PoolND`` against PyTorch's 1-, 2- and 3-d
functions and naive loops, and their gradients against central differences."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from numcnn.layers import ConvND, ConvTranspose, PoolND
from references import assert_float32_close, check_grad, tie_free

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _torch_pad(x, pads, value=0.0):
    """``(begin₁ … begin_d, end₁ … end_d)`` as ``F.pad`` wants it (last axis first)."""
    d = len(pads) // 2
    width = []
    for a in reversed(range(d)):
        width += [pads[a], pads[d + a]]
    return F.pad(x, width, value=value)


CONV = [  # d, C, F, kernel, stride, dilation, pads, groups, size
    (1, 2, 4, (3,), (2,), (2,), (1, 2), 2, (9,)),
    (2, 3, 2, (2, 3), (1, 2), (2, 1), (0, 1, 2, 0), 1, (6, 7)),
    (2, 4, 4, (3, 3), (2, 2), (1, 1), (1, 1, 1, 1), 4, (5, 5)),
    (3, 2, 3, (2, 1, 2), (1, 1, 2), (1, 2, 1), (1, 0, 0, 0, 1, 1), 1, (3, 4, 4)),
]


@pytest.mark.parametrize("d, C, Fo, kernel, stride, dil, pads, groups, size", CONV)
def test_conv_nd_matches_torch(d, C, Fo, kernel, stride, dil, pads, groups, size):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, C) + size)
    layer = ConvND(Fo, kernel, stride, dil, pads, groups, dtype="float64")
    layer.build((C,) + size, rng)
    layer.params["b"][...] = rng.standard_normal(Fo)
    y = layer.forward(x, training=True)
    xt = torch.tensor(x, requires_grad=True)
    Wt = torch.tensor(layer.params["W"], requires_grad=True)
    bt = torch.tensor(layer.params["b"], requires_grad=True)
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[d]
    yt = conv(_torch_pad(xt, pads), Wt, bt, stride=stride, dilation=dil, groups=groups)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    yt.backward(torch.tensor(dy))
    dx = layer.backward(dy)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.grads["W"], Wt.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.grads["b"], bt.grad.numpy(), rtol=1e-12, atol=1e-12)
    check_grad(lambda: float((layer.forward(x) * dy).sum()), x, dx)
    check_grad(lambda: float((layer.forward(x) * dy).sum()), layer.params["W"],
               layer.grads["W"].copy())


def test_conv_nd_float32_error_is_the_references():
    rng = np.random.default_rng(1)
    d, C, Fo, kernel, stride, dil, pads, groups, size = CONV[3]
    x = rng.standard_normal((2, C) + size)
    layer = ConvND(Fo, kernel, stride, dil, pads, groups, use_bias=False, dtype="float32")
    layer.build((C,) + size, rng)
    W = layer.params["W"].astype(np.float64)
    y = layer(x.astype(np.float32))
    ref64 = F.conv3d(_torch_pad(torch.tensor(x), pads), torch.tensor(W), stride=stride,
                     dilation=dil).numpy()
    ref32 = F.conv3d(_torch_pad(torch.tensor(x, dtype=torch.float32), pads),
                     torch.tensor(W, dtype=torch.float32), stride=stride, dilation=dil).numpy()
    scale = F.conv3d(_torch_pad(torch.tensor(np.abs(x)), pads), torch.tensor(np.abs(W)),
                     stride=stride, dilation=dil).numpy()
    assert_float32_close(y, ref32, ref64, scale, C * int(np.prod(kernel)), "ConvND")


def conv_transpose_ref(x, W, b, stride, dil, pads, out_pad, groups):
    """Naive loops: every input value times every tap, added where the tap lands; then the
    padding cut (a negative amount adds zeros)."""
    N, C, *spatial = x.shape
    Fg, kernel = W.shape[1], W.shape[2:]
    d = len(kernel)
    full = [s * (n - 1) + r * (k - 1) + 1 + op
            for n, k, s, r, op in zip(spatial, kernel, stride, dil, out_pad)]
    y = np.zeros((N, Fg * groups, *full))
    for n, c in itertools.product(range(N), range(C)):
        g = c // (C // groups)
        for j in itertools.product(*(range(m) for m in spatial)):
            for o in itertools.product(*(range(k) for k in kernel)):
                pos = tuple(jj * s + oo * r for jj, oo, s, r in zip(j, o, stride, dil))
                for f in range(Fg):
                    y[(n, g * Fg + f) + pos] += x[(n, c) + j] * W[(c, f) + o]
    out = []
    for a in range(d):
        lo, hi = pads[a], full[a] - pads[d + a]
        out.append((lo, hi))
    big = np.zeros((N, Fg * groups) + tuple(hi - lo for lo, hi in out))
    src = tuple(slice(max(lo, 0), min(hi, f)) for (lo, hi), f in zip(out, full))
    dst = tuple(slice(s.start - lo, s.stop - lo) for s, (lo, _) in zip(src, out))
    big[(slice(None), slice(None)) + dst] = y[(slice(None), slice(None)) + src]
    if b is not None:
        big += b.reshape((-1,) + (1,) * d)
    return big


CONV_T = [  # d, C, F, kernel, stride, dilation, pads, output_padding, groups, size
    (1, 2, 4, (3,), (2,), (1,), (1, 1), (1,), 2, (4,)),
    (2, 2, 3, (3, 2), (2, 1), (1, 2), (1, 0, 0, 1), (1, 0), 1, (3, 4)),
    (2, 4, 2, (2, 2), (2, 2), (1, 1), (-1, 0, 1, -2), (0, 1), 2, (2, 3)),
    (3, 1, 2, (2, 2, 1), (1, 2, 1), (2, 1, 1), (0, 0, 0, 0, 1, 0), (0, 1, 0), 1, (2, 2, 3)),
]


@pytest.mark.parametrize("d, C, Fo, kernel, stride, dil, pads, out_pad, groups, size", CONV_T)
def test_conv_transpose_matches_loops_and_torch(d, C, Fo, kernel, stride, dil, pads, out_pad,
                                                groups, size):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, C) + size)
    layer = ConvTranspose(Fo, kernel, stride, dil, pads, out_pad, groups, dtype="float64")
    layer.build((C,) + size, rng)
    layer.params["b"][...] = rng.standard_normal(Fo)
    W, b = layer.params["W"], layer.params["b"]
    y = layer.forward(x, training=True)
    ref = conv_transpose_ref(x, W, b, stride, dil, pads, out_pad, groups)
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)
    assert y.shape[1:] == layer.output_shape((C,) + size)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    if min(pads) >= 0 and pads[:d] == pads[d:]:  # PyTorch pads both ends alike
        xt = torch.tensor(x, requires_grad=True)
        Wt = torch.tensor(W, requires_grad=True)
        fn = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[d]
        yt = fn(xt, Wt, torch.tensor(b), stride=stride, padding=pads[:d],
                output_padding=out_pad, groups=groups, dilation=dil)
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
        yt.backward(torch.tensor(dy))
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(layer.grads["W"], Wt.grad.numpy(), rtol=1e-12, atol=1e-12)
    check_grad(lambda: float((layer.forward(x) * dy).sum()), x, dx)
    check_grad(lambda: float((layer.forward(x) * dy).sum()), layer.params["W"],
               layer.grads["W"].copy())
    np.testing.assert_allclose(layer.grads["b"], dy.sum(axis=(0,) + tuple(range(2, dy.ndim))))


def pool_ref(x, kind, kernel, stride, dil, pads, ceil, include, p=2.0):
    """Naive windows: each output's taps listed one by one (padding −∞ for max, 0 else)."""
    N, C, *spatial = x.shape
    d = len(kernel)
    out = []
    for a in range(d):
        span = spatial[a] + pads[a] + pads[d + a] - dil[a] * (kernel[a] - 1) - 1
        m = (-(-span // stride[a]) if ceil else span // stride[a]) + 1
        if ceil and (m - 1) * stride[a] >= spatial[a] + pads[a]:
            m -= 1
        out.append(m)
    y = np.zeros((N, C) + tuple(out))
    for j in itertools.product(*(range(m) for m in out)):
        vals, count = [], 0
        for o in itertools.product(*(range(k) for k in kernel)):
            pos = [jj * s + oo * r - pads[a] for a, (jj, oo, s, r)
                   in enumerate(zip(j, o, stride, dil))]
            inside = all(0 <= q < n for q, n in zip(pos, spatial))
            in_padded = all(-pads[a] <= q < spatial[a] + pads[d + a] for a, q in enumerate(pos))
            if inside:
                vals.append(x[(slice(None), slice(None)) + tuple(pos)])
            count += inside or (include and in_padded)
        v = np.stack(vals)
        if kind == "max":
            y[(slice(None), slice(None)) + j] = v.max(0)
        elif kind == "avg":
            y[(slice(None), slice(None)) + j] = v.sum(0) / max(count, 1)
        else:
            y[(slice(None), slice(None)) + j] = (np.abs(v) ** p).sum(0) ** (1 / p)
    return y


POOL = [  # kind, kernel, stride, dilation, pads, ceil, include, size
    ("max", (3,), (2,), (2,), (2, 1), True, False, (9,)),
    ("max", (2, 3), (2, 1), (1, 2), (1, 0, 0, 2), False, False, (5, 6)),
    ("max", (2, 2, 2), (2, 2, 2), (1, 1, 1), (0, 0, 0, 1, 1, 1), True, False, (3, 4, 5)),
    ("avg", (3,), (2,), (1,), (1, 2), True, True, (8,)),
    ("avg", (3, 2), (2, 2), (2, 1), (2, 1, 0, 1), True, False, (7, 5)),
    ("avg", (2, 2, 2), (1, 2, 2), (1, 1, 1), (1, 0, 1, 0, 1, 1), False, True, (3, 3, 4)),
    ("lp", (2, 3), (1, 2), (1, 1), (0, 1, 1, 0), False, False, (4, 5)),
    ("lp", (3,), (2,), (2,), (0, 0), True, False, (8,)),
]


@pytest.mark.parametrize("kind, kernel, stride, dil, pads, ceil, include, size", POOL)
def test_pool_nd_matches_naive_windows_and_gradients(kind, kernel, stride, dil, pads, ceil,
                                                     include, size):
    rng = np.random.default_rng(3)
    x = tie_free((2, 3) + size, rng)
    layer = PoolND(kind, kernel, stride, dil, pads, ceil, include, p=3.0, dtype="float64")
    y = layer(x)
    np.testing.assert_allclose(y, pool_ref(x, kind, kernel, stride, dil, pads, ceil, include,
                                           3.0), rtol=1e-12, atol=1e-12)
    assert y.shape[1:] == layer.output_shape((3,) + size)
    layer.forward(x, training=True)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    check_grad(lambda: float((layer.forward(x) * dy).sum()), x, dx)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_pool_nd_matches_torch_with_indices(d):
    rng = np.random.default_rng(4)
    x = tie_free((2, 3) + (7,) * d, rng)
    layer = PoolND("max", (3,) * d, 2, 2, (1,) * (2 * d), ceil_mode=True,
                   return_indices=True, dtype="float64")
    y, idx = layer(x)
    fn = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[d]
    xt = torch.tensor(x, requires_grad=True)
    yt, it = fn(xt, 3, 2, 1, dilation=2, ceil_mode=True, return_indices=True)
    np.testing.assert_array_equal(y, yt.detach().numpy())
    maps = np.arange(6).reshape(2, 3, *(1,) * d) * 7 ** d  # ONNX counts n and c in
    np.testing.assert_array_equal(idx, it.numpy() + maps)
    dy = rng.standard_normal(y.shape)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(layer.backward((dy, None)), xt.grad.numpy(), rtol=1e-12)
    for kind, fn_avg in (("avg", {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[d]),):
        for include in (False, True):
            avg = PoolND(kind, (3,) * d, 2, 1, (1,) * (2 * d), True, include, dtype="float64")
            ref = fn_avg(torch.tensor(x), 3, 2, 1, ceil_mode=True, count_include_pad=include)
            np.testing.assert_allclose(avg(x), ref.numpy(), rtol=1e-12)


def test_column_major_indices_swap_the_spatial_axes():
    rng = np.random.default_rng(5)
    x = tie_free((1, 2, 4, 5), rng)
    _, idx0 = PoolND("max", (2, 2), 2, return_indices=True, dtype="float64")(x)
    _, idx1 = PoolND("max", (2, 2), 2, return_indices=True, storage_order=1,
                     dtype="float64")(x)
    c, hw = np.divmod(idx0, 20)
    h, w = np.divmod(hw, 5)
    np.testing.assert_array_equal(idx1, c * 20 + w * 4 + h)


@pytest.mark.parametrize("bad, match", [
    (dict(kind="sum", pool_size=(2,)), "kind must be"),
    (dict(kind="max", pool_size=(2, 0)), "pool_size must be at least 1"),
    (dict(kind="lp", pool_size=(2,), p=0.5), "p must be a finite number"),
    (dict(kind="avg", pool_size=(2,), return_indices=True), "return_indices needs"),
    (dict(kind="max", pool_size=(2, 2), padding=(1, 1)), "padding must have 4 entries"),
])
def test_pool_nd_refuses_bad_arguments(bad, match):
    with pytest.raises(ValueError, match=match):
        PoolND(**bad)


def test_windows_refuse_inputs_of_the_wrong_rank_or_too_small():
    with pytest.raises(ValueError, match="a 2-d window expects"):
        ConvND(2, (3, 3)).output_shape((1, 5))
    with pytest.raises(ValueError, match="too small"):
        PoolND("max", (4,)).output_shape((1, 3))
    with pytest.raises(ValueError, match="divisible by groups"):
        ConvTranspose(4, (2,), groups=2).output_shape((3, 5))
