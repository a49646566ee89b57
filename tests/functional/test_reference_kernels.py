"""The reference kernel path — :mod:`numcnn.functional.conv`, ``.pool`` and ``.activation``,
the course's math — against the naive loops of ``tests/references.py``, PyTorch and float64
central differences.

Cases are the ones where peers broke: non-square kernels, padding 0 and asymmetric
``(top, bottom, left, right)`` pads, strides > 1 that leave trailing rows/columns unused,
overlapping pooling windows, tiled windows (the Kronecker up-sampling) and non-tiled ones,
ties in max pooling (the first maximum wins, as in PyTorch), batch size 1.
"""

from __future__ import annotations

import numpy as np
import pytest

import numcnn.functional.activation as RA
import numcnn.functional.conv as RC
import numcnn.functional.pool as RP
from references import (
    avg_pool2d_backward_ref,
    avg_pool2d_ref,
    check_grad,
    conv2d_backward_ref,
    conv2d_ref,
    max_pool2d_ref,
    off_kink,
    tie_free,
)

EPS32 = float(np.finfo(np.float32).eps)  # twice the unit roundoff: a safe margin


def _torch():
    torch = pytest.importorskip("torch")
    return torch, torch.nn.functional


def _symmetric(pads, kernel) -> bool:
    """PyTorch's ``padding=`` can express ``pads`` (symmetric, at most half the window)."""
    pt, pb, pl, pr = pads
    return pt == pb and pl == pr and 2 * pt <= kernel[0] and 2 * pl <= kernel[1]


# ---------------------------------------------------------------------------- convolution
# (N, C, H, W, F, kernel, stride, pads)
CONV_CASES = [
    pytest.param(2, 2, 7, 6, 3, (3, 2), (1, 1), (0, 0, 0, 0), id="nonsquare-pad0"),
    pytest.param(1, 1, 5, 5, 2, (3, 3), (1, 1), (1, 1, 1, 1), id="batch1-pad1"),
    pytest.param(2, 3, 8, 7, 2, (2, 3), (2, 2), (1, 0, 2, 1), id="stride2-asym-pads"),
    pytest.param(1, 2, 10, 8, 3, (3, 3), (3, 2), (0, 0, 0, 0), id="stride-leaves-rows"),
    pytest.param(2, 2, 6, 7, 2, (4, 2), (2, 3), (0, 1, 1, 0), id="stride2x3-asym"),
    pytest.param(2, 3, 5, 5, 4, (5, 5), (1, 1), (0, 0, 0, 0), id="kernel-covers-input"),
    pytest.param(3, 2, 4, 6, 2, (1, 1), (1, 2), (0, 0, 0, 0), id="1x1-stride"),
]


def _conv_data(N, C, H, W, F, k, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((N, C, H, W)), rng.standard_normal((F, C) + k),
            rng.standard_normal(F), rng)


def _torch_conv(x, Wt, b, stride, pads, dy):
    torch, TF = _torch()
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(Wt, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    if pads[0] == pads[1] and pads[2] == pads[3]:
        y = TF.conv2d(xt, wt, bt, stride=stride, padding=(pads[0], pads[2]))
    else:
        pt, pb, pl, pr = pads
        y = TF.conv2d(TF.pad(xt, (pl, pr, pt, pb)), wt, bt, stride=stride)
    y.backward(torch.tensor(dy))
    return y.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()


@pytest.mark.parametrize("N, C, H, W, F, k, stride, pads", CONV_CASES)
def test_conv_forward_and_gradients_match_naive_loops(N, C, H, W, F, k, stride, pads):
    x, Wt, b, rng = _conv_data(N, C, H, W, F, k)
    y, cache = RC.conv2d_forward(x, Wt, b, stride, pads)
    assert cache["kernel"] == "reference"
    ry = conv2d_ref(x, Wt, b, stride, pads)
    assert y.shape == ry.shape and y.dtype == np.float64
    np.testing.assert_allclose(y, ry, rtol=1e-12, atol=1e-13)
    dy = rng.standard_normal(y.shape)
    got = RC.conv2d_backward(dy, cache)
    for name, g, r in zip(("dx", "dW", "db"), got, conv2d_backward_ref(x, Wt, dy, stride, pads)):
        assert g.shape == r.shape and g.dtype == np.float64, name
        np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-13, err_msg=name)


@pytest.mark.parametrize("N, C, H, W, F, k, stride, pads", CONV_CASES)
def test_conv_forward_and_gradients_match_torch(N, C, H, W, F, k, stride, pads):
    x, Wt, b, rng = _conv_data(N, C, H, W, F, k, seed=1)
    y, cache = RC.conv2d_forward(x, Wt, b, stride, pads)
    dy = rng.standard_normal(y.shape)
    ty, tdx, tdW, tdb = _torch_conv(x, Wt, b, stride, pads, dy)
    np.testing.assert_allclose(y, ty, rtol=1e-12, atol=1e-13)
    for name, g, r in zip(("dx", "dW", "db"), RC.conv2d_backward(dy, cache), (tdx, tdW, tdb)):
        np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-13, err_msg=name)


@pytest.mark.parametrize("need", [(True, False, False), (False, True, False),
                                  (False, False, True), (False, True, True)],
                         ids=["dx", "dW", "db", "dW+db"])
def test_conv_backward_computes_only_what_is_asked(need):
    x, Wt, b, rng = _conv_data(2, 2, 7, 6, 3, (3, 2))
    stride, pads = (2, 1), (1, 0, 0, 1)
    y, cache = RC.conv2d_forward(x, Wt, b, stride, pads)
    dy = rng.standard_normal(y.shape)
    got = RC.conv2d_backward(dy, cache, *need)
    for flag, g, r in zip(need, got, conv2d_backward_ref(x, Wt, dy, stride, pads)):
        if flag:
            np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-13)
        else:
            assert g is None


@pytest.mark.parametrize("N, C, H, W, F, k, stride, pads", CONV_CASES[:4])
def test_conv_float32_keeps_dtype_within_the_rounding_bound(N, C, H, W, F, k, stride, pads):
    """float32 results differ from the exact (float64) values of the same float32 inputs by
    at most the worst-case rounding of an n-term dot product, ``n·ε·Σ|terms|``, whatever the
    summation order or the machine."""
    x, Wt, b, rng = _conv_data(N, C, H, W, F, k, seed=2)
    x, Wt, b = (a.astype(np.float32) for a in (x, Wt, b))
    dy = rng.standard_normal(RC.conv2d_forward(x, Wt, b, stride, pads)[0].shape)
    dy = dy.astype(np.float32)
    y, cache = RC.conv2d_forward(x, Wt, b, stride, pads)
    grads = RC.conv2d_backward(dy, cache)
    assert y.dtype == np.float32 and all(g.dtype == np.float32 for g in grads)
    x64, W64, b64, dy64 = (a.astype(np.float64) for a in (x, Wt, b, dy))
    exact = [conv2d_ref(x64, W64, b64, stride, pads),
             *conv2d_backward_ref(x64, W64, dy64, stride, pads)]
    scale = [conv2d_ref(abs(x64), abs(W64), abs(b64), stride, pads),
             *conv2d_backward_ref(abs(x64), abs(W64), abs(dy64), stride, pads)]
    terms = [C * k[0] * k[1] + 1, F * k[0] * k[1], y.size // F, y.size // F]
    for name, g, e, s, n in zip(("y", "dx", "dW", "db"), [y, *grads], exact, scale, terms):
        err = np.abs(g.astype(np.float64) - e)
        assert np.all(err <= (n + 2) * EPS32 * s + 1e-30), name


@pytest.mark.parametrize("N, C, H, W, F, k, stride, pads", [
    (2, 2, 5, 4, 2, (3, 2), (2, 1), (1, 0, 0, 1)),
    (1, 1, 4, 5, 2, (2, 3), (1, 2), (0, 0, 0, 0)),
])
def test_conv_gradcheck_float64(N, C, H, W, F, k, stride, pads):
    x, Wt, b, rng = _conv_data(N, C, H, W, F, k, seed=3)
    y, cache = RC.conv2d_forward(x, Wt, b, stride, pads)
    R = rng.standard_normal(y.shape)

    def loss():
        return float((RC.conv2d_forward(x, Wt, b, stride, pads)[0] * R).sum())

    dx, dW, db = RC.conv2d_backward(R, cache)
    check_grad(loss, x, dx)
    check_grad(loss, Wt, dW)
    check_grad(loss, b, db)


# -------------------------------------------------------------------------------- pooling
# (shape, pool, stride, pads, tiled): tiled windows take the Kronecker up-sampling path
POOL_CASES = [
    pytest.param((2, 2, 6, 6), (2, 2), (2, 2), (0, 0, 0, 0), True, id="2x2-tiled"),
    pytest.param((1, 1, 6, 4), (3, 2), (3, 2), (0, 0, 0, 0), True, id="3x2-tiled-batch1"),
    pytest.param((2, 1, 7, 7), (3, 3), (2, 2), (0, 0, 0, 0), False, id="3x3s2-overlap"),
    pytest.param((1, 2, 7, 6), (3, 2), (2, 1), (1, 1, 1, 0), False, id="overlap-asym-pads"),
    pytest.param((2, 1, 7, 9), (2, 2), (2, 2), (0, 0, 0, 0), False, id="2x2-unused-tail"),
    pytest.param((1, 2, 8, 7), (2, 3), (3, 2), (0, 1, 1, 1), False, id="gaps-and-overlap"),
    pytest.param((2, 1, 6, 6), (2, 2), (2, 2), (1, 1, 1, 1), False, id="2x2-pad1"),
]


@pytest.fixture
def kron_calls(monkeypatch):
    """Count the calls of the Kronecker up-sampling (the tiled-window backward)."""
    calls = []
    real = RP.upsample

    def spy(d, pool):
        calls.append(pool)
        return real(d, pool)

    monkeypatch.setattr(RP, "upsample", spy)
    return calls


def _pool_input(shape, ties, rng):
    if ties:  # small integers: many tied maxima inside and across windows
        return rng.integers(0, 3, shape).astype(np.float64)
    return tie_free(shape, rng)


def _torch_max_pool(x, pool, stride, pads, dy):
    torch, TF = _torch()
    xt = torch.tensor(x, requires_grad=True)
    if _symmetric(pads, pool):
        y = TF.max_pool2d(xt, pool, stride, padding=(pads[0], pads[2]))
    else:
        pt, pb, pl, pr = pads
        y = TF.max_pool2d(TF.pad(xt, (pl, pr, pt, pb), value=-float("inf")), pool, stride)
    y.backward(torch.tensor(dy))
    return y.detach().numpy(), xt.grad.numpy()


def _torch_avg_pool(x, pool, stride, pads, count_include_pad, dy):
    torch, TF = _torch()
    xt = torch.tensor(x, requires_grad=True)
    if _symmetric(pads, pool):
        y = TF.avg_pool2d(xt, pool, stride, padding=(pads[0], pads[2]),
                          count_include_pad=count_include_pad)
    else:  # window sums over the zero-padded input, divided by the window counts
        pt, pb, pl, pr = pads
        y = TF.avg_pool2d(TF.pad(xt, (pl, pr, pt, pb)), pool, stride)
        if not count_include_pad:
            ones = TF.pad(torch.ones_like(xt), (pl, pr, pt, pb))
            y = y / TF.avg_pool2d(ones, pool, stride)
    y.backward(torch.tensor(dy))
    return y.detach().numpy(), xt.grad.numpy()


@pytest.mark.parametrize("ties", [False, True], ids=["tie-free", "ties"])
@pytest.mark.parametrize("shape, pool, stride, pads, tiled", POOL_CASES)
def test_max_pool_matches_naive_loops_and_torch(shape, pool, stride, pads, tiled, ties,
                                                kron_calls):
    rng = np.random.default_rng(4)
    x = _pool_input(shape, ties, rng)
    y, cache = RP.max_pool2d_forward(x, pool, stride, pads)
    assert cache["kernel"] == "reference"
    ry, rdx = max_pool2d_ref(x, pool, stride, pads)
    np.testing.assert_array_equal(y, ry)
    dy = rng.standard_normal(y.shape)
    dx = RP.max_pool2d_backward(dy, cache)
    assert bool(kron_calls) == tiled
    assert dx.shape == x.shape and dx.dtype == np.float64
    np.testing.assert_allclose(dx, rdx(dy), rtol=1e-14, atol=0)
    ty, tdx = _torch_max_pool(x, pool, stride, pads, dy)
    np.testing.assert_array_equal(y, ty)
    np.testing.assert_allclose(dx, tdx, rtol=1e-14, atol=0)


@pytest.mark.parametrize("shape, pool, stride, pads, tiled", POOL_CASES)
def test_max_pool_relu_backward_is_pool_backward_times_relu_derivative(shape, pool, stride,
                                                                       pads, tiled):
    rng = np.random.default_rng(5)
    z = rng.integers(-2, 3, shape).astype(np.float64)  # ties at positive values
    z[:, :, :3, :3] = -1.0  # and windows of zeros only after the ReLU
    x = np.maximum(z, 0)
    y, cache = RP.max_pool2d_forward(x, pool, stride, pads)
    dy = rng.standard_normal(y.shape)
    dz = RP.max_pool2d_backward(dy, cache, relu=True)
    dx = max_pool2d_ref(x, pool, stride, pads)[1](dy)
    assert np.any(dx[z <= 0] != 0)  # gradient routed to zeros of the ReLU: relu matters
    np.testing.assert_allclose(dz, dx * (z > 0), rtol=1e-14, atol=0)
    # the same cache still gives the plain pooling gradient afterwards
    np.testing.assert_allclose(RP.max_pool2d_backward(dy, cache), dx, rtol=1e-14, atol=0)


@pytest.mark.parametrize("count_include_pad", [True, False], ids=["incl-pad", "excl-pad"])
@pytest.mark.parametrize("shape, pool, stride, pads, tiled", POOL_CASES)
def test_avg_pool_matches_naive_loops_and_torch(shape, pool, stride, pads, tiled,
                                                count_include_pad, kron_calls):
    rng = np.random.default_rng(6)
    x = rng.standard_normal(shape)
    y, cache = RP.avg_pool2d_forward(x, pool, stride, pads, count_include_pad)
    assert cache["kernel"] == "reference"
    np.testing.assert_allclose(y, avg_pool2d_ref(x, pool, stride, pads, count_include_pad),
                               rtol=1e-12, atol=1e-14)
    dy = rng.standard_normal(y.shape)
    dx = RP.avg_pool2d_backward(dy, cache)
    assert bool(kron_calls) == tiled
    rdx = avg_pool2d_backward_ref(x.shape, dy, pool, stride, pads, count_include_pad)
    assert dx.shape == x.shape and dx.dtype == np.float64
    np.testing.assert_allclose(dx, rdx, rtol=1e-12, atol=1e-14)
    ty, tdx = _torch_avg_pool(x, pool, stride, pads, count_include_pad, dy)
    np.testing.assert_allclose(y, ty, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dx, tdx, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("shape, pool, stride, pads, tiled", POOL_CASES)
def test_pooling_float32_keeps_dtype(shape, pool, stride, pads, tiled):
    rng = np.random.default_rng(7)
    x = tie_free(shape, rng).astype(np.float32)
    dy = rng.standard_normal(RP.max_pool2d_forward(x, pool, stride, pads)[0].shape)
    dy = dy.astype(np.float32)
    y, cache = RP.max_pool2d_forward(x, pool, stride, pads)
    dx = RP.max_pool2d_backward(dy, cache)
    assert y.dtype == dx.dtype == np.float32
    ry, rdx = max_pool2d_ref(x, pool, stride, pads)
    np.testing.assert_array_equal(y, ry)  # a maximum is exact
    # routed values are exact; overlapping windows add at most kh·kw of them
    bound = pool[0] * pool[1] * EPS32 * max_pool2d_ref(x, pool, stride, pads)[1](abs(dy))
    assert np.all(np.abs(dx - rdx(dy.astype(np.float64))) <= bound)
    for cip in (True, False):
        y, cache = RP.avg_pool2d_forward(x, pool, stride, pads, cip)
        dx = RP.avg_pool2d_backward(dy, cache)
        assert y.dtype == dx.dtype == np.float32
        n = pool[0] * pool[1] + 2
        exact = avg_pool2d_ref(x.astype(np.float64), pool, stride, pads, cip)
        scale = avg_pool2d_ref(abs(x.astype(np.float64)), pool, stride, pads, cip)
        assert np.all(np.abs(y - exact) <= n * EPS32 * scale)
        exact = avg_pool2d_backward_ref(x.shape, dy.astype(np.float64), pool, stride, pads, cip)
        scale = avg_pool2d_backward_ref(x.shape, abs(dy.astype(np.float64)), pool, stride,
                                        pads, cip)
        assert np.all(np.abs(dx - exact) <= n * EPS32 * scale)


@pytest.mark.parametrize("shape, pool, stride, pads, tiled", POOL_CASES)
def test_pooling_gradcheck_float64(shape, pool, stride, pads, tiled):
    rng = np.random.default_rng(8)
    x = tie_free(shape, rng)  # gaps of about 0.01 ≫ the finite-difference step
    y, mcache = RP.max_pool2d_forward(x, pool, stride, pads)
    R = rng.standard_normal(y.shape)
    dx_max = RP.max_pool2d_backward(R, mcache)
    check_grad(lambda: float((RP.max_pool2d_forward(x, pool, stride, pads)[0] * R).sum()),
               x, dx_max)
    for cip in (True, False):
        _, acache = RP.avg_pool2d_forward(x, pool, stride, pads, cip)
        dx_avg = RP.avg_pool2d_backward(R, acache)
        check_grad(lambda c=cip: float(
            (RP.avg_pool2d_forward(x, pool, stride, pads, c)[0] * R).sum()), x, dx_avg)


# ---------------------------------------------------------------------------- activations


def test_relu_matches_torch_including_the_kink():
    torch, _ = _torch()
    rng = np.random.default_rng(9)
    x = off_kink((2, 3, 4, 5), rng)
    x[0, 0, 0, :3] = 0.0  # the derivative at 0 is 0, as in PyTorch
    y, cache = RA.relu_forward(x)
    dy = rng.standard_normal(x.shape)
    dx = RA.relu_backward(dy, cache)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.relu(xt)
    yt.backward(torch.tensor(dy))
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(dx, xt.grad.numpy())
    np.testing.assert_array_equal(dx, np.where(x > 0, dy, 0.0))


@pytest.mark.parametrize("A, S", [(1.0, 1.0), (1.7159, 2.0 / 3.0), (2.0, 0.5)])
def test_tanh_matches_torch_and_central_differences(A, S):
    torch, _ = _torch()
    rng = np.random.default_rng(10)
    x = rng.standard_normal((2, 3, 4, 3)) * 2
    y, t = RA.tanh_forward(x, A, S)
    dy = rng.standard_normal(x.shape)
    dx = RA.tanh_backward(dy, t, A, S)
    xt = torch.tensor(x, requires_grad=True)
    yt = A * torch.tanh(S * xt)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-15)
    xs = x[:1, :1].copy()
    check_grad(lambda: float((RA.tanh_forward(xs, A, S)[0] * dy[:1, :1]).sum()), xs,
               RA.tanh_backward(dy[:1, :1], RA.tanh_forward(xs, A, S)[1], A, S))


def test_sigmoid_matches_torch_without_overflow():
    torch, _ = _torch()
    rng = np.random.default_rng(11)
    x = np.concatenate([rng.standard_normal(20) * 3, [-800.0, -50.0, 0.0, 50.0, 800.0]])
    y, cache = RA.sigmoid_forward(x)  # warnings are errors: no overflow in exp
    dy = rng.standard_normal(x.shape)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.sigmoid(xt)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(RA.sigmoid_backward(dy, cache), xt.grad.numpy(), rtol=1e-12,
                               atol=1e-300)


def test_leaky_relu_matches_torch():
    torch, TF = _torch()
    rng = np.random.default_rng(12)
    x = off_kink((3, 7), rng)
    y, cache = RA.leaky_relu_forward(x, 0.1)
    dy = rng.standard_normal(x.shape)
    xt = torch.tensor(x, requires_grad=True)
    yt = TF.leaky_relu(xt, 0.1)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-15)
    np.testing.assert_allclose(RA.leaky_relu_backward(dy, cache), xt.grad.numpy(),
                               rtol=1e-15)


@pytest.mark.parametrize("axis", [1, -1])
def test_softmax_and_log_softmax_match_torch_for_extreme_logits(axis):
    torch, _ = _torch()
    rng = np.random.default_rng(13)
    x = rng.standard_normal((4, 5, 3)) * 3
    x[0] += 1000.0  # the shift by the maximum keeps exp finite
    x[1, :, 0] = -1000.0
    y, cache = RA.softmax_forward(x.copy(), axis)
    dy = rng.standard_normal(x.shape)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.softmax(xt, dim=axis)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(RA.softmax_backward(dy, cache, axis), xt.grad.numpy(),
                               rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(RA.log_softmax(x, axis),
                               torch.log_softmax(torch.tensor(x), dim=axis).numpy(),
                               rtol=1e-12, atol=1e-12)
