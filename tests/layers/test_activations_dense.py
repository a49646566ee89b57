"""Activations, Dense and Flatten: forward/backward against PyTorch, the naive dense loop
and float64 central differences."""

from __future__ import annotations

import numpy as np
import pytest

from numcnn.layers import Dense, Flatten, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from references import check_grad, dense_ref, off_kink

torch = pytest.importorskip("torch")
tF = torch.nn.functional
torch.set_num_threads(1)

ACTIVATIONS = [
    pytest.param(lambda: ReLU, torch.relu, id="relu"),
    pytest.param(lambda: LeakyReLU, lambda t: tF.leaky_relu(t, 0.01), id="leaky-default"),
    pytest.param(lambda: (lambda **k: LeakyReLU(alpha=0.2, **k)),
                 lambda t: tF.leaky_relu(t, 0.2), id="leaky-0.2"),
    pytest.param(lambda: Sigmoid, torch.sigmoid, id="sigmoid"),
    pytest.param(lambda: Tanh, torch.tanh, id="tanh"),
    pytest.param(lambda: Softmax, lambda t: torch.softmax(t, dim=1), id="softmax"),
]


def _close(a, ref, dtype):
    assert a.dtype == np.dtype(dtype), a.dtype
    assert a.shape == ref.shape
    tol = 1e-6 if np.dtype(dtype) == np.float32 else 1e-12
    np.testing.assert_allclose(a, ref, rtol=tol, atol=tol)


def _torch_fwd_bwd(fn, x, dy):
    xt = torch.tensor(x, requires_grad=True)
    y = fn(xt)
    y.backward(torch.tensor(dy))
    return y.detach().numpy(), xt.grad.numpy()


@pytest.mark.parametrize("shape", [(3, 7), (1, 2, 4, 5)], ids=["flat", "nchw"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("make,tfn", ACTIVATIONS)
def test_activation_matches_torch(make, tfn, dtype, shape):
    rng = np.random.default_rng(0)
    x = (3 * off_kink(shape, rng)).astype(dtype)
    layer = make()(dtype=dtype)
    layer.build(shape[1:])
    y = layer.forward(x)
    dy = rng.standard_normal(shape).astype(dtype)
    ty, tdx = _torch_fwd_bwd(tfn, x, dy)
    _close(y, ty, dtype)
    _close(layer.backward(dy), tdx, dtype)


@pytest.mark.parametrize("make,tfn", ACTIVATIONS)
def test_activation_gradcheck_float64(make, tfn):
    rng = np.random.default_rng(1)
    x = 2 * off_kink((3, 2, 3, 4), rng)
    layer = make()(dtype="float64")
    layer.build(x.shape[1:])
    R = rng.standard_normal(x.shape)
    layer.forward(x)
    dx = layer.backward(R)
    check_grad(lambda: float((layer.forward(x) * R).sum()), x, dx, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sigmoid_is_stable_at_extremes(dtype):
    x = np.array([[-1000.0, -100.0, 0.0, 100.0, 1000.0]], dtype=dtype)
    layer = Sigmoid(dtype=dtype)
    layer.build((5,))
    y = layer.forward(x)  # warnings are errors: an overflow would fail here
    assert y.dtype == np.dtype(dtype)
    assert y[0, 0] == 0.0 and y[0, -1] == 1.0 and y[0, 2] == 0.5
    assert np.all(np.isfinite(y))
    dx = layer.backward(np.ones_like(x))
    assert dx.dtype == np.dtype(dtype)
    assert dx[0, 0] == 0.0 and dx[0, -1] == 0.0 and dx[0, 2] == 0.25


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softmax_is_stable_for_large_logits(dtype):
    x = np.array([[1000.0, 0.0, -1000.0], [500.0, 500.0, 500.0]], dtype=dtype)
    layer = Softmax(dtype=dtype)
    layer.build((3,))
    y = layer.forward(x)
    assert y.dtype == np.dtype(dtype)
    ty = torch.softmax(torch.tensor(x), dim=1).numpy()
    np.testing.assert_allclose(y, ty, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-6)


def test_relu_gradient_at_zero_is_zero_like_torch():
    x = np.array([[-1.0, 0.0, 1.0]])
    layer = ReLU(dtype="float64")
    layer.build((3,))
    layer.forward(x)
    _, tdx = _torch_fwd_bwd(torch.relu, x, np.ones_like(x))
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), tdx)


# ---------------------------------------------------------------------------- Dense


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("N", [1, 5])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dense_matches_torch_linear(dtype, N, use_bias):
    rng = np.random.default_rng(2)
    layer = Dense(4, use_bias=use_bias, dtype=dtype)
    layer.build((7,), rng)
    x = rng.standard_normal((N, 7)).astype(dtype)
    W = layer.params["W"]
    b = layer.params["b"] if use_bias else None
    if use_bias:
        b[...] = rng.standard_normal(4)
    y = layer.forward(x)
    assert y.shape == (N, 4)
    np.testing.assert_allclose(y, dense_ref(x, W, b), rtol=1e-5)
    dy = rng.standard_normal(y.shape).astype(dtype)

    xt = torch.tensor(x, requires_grad=True)
    lin = torch.nn.Linear(7, 4, bias=use_bias, dtype=getattr(torch, dtype))
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(W.T))  # numcnn W is (in, units) = torch weight.T
        if use_bias:
            lin.bias.copy_(torch.tensor(b))
    ty = lin(xt)
    ty.backward(torch.tensor(dy))
    _close(y, ty.detach().numpy(), dtype)
    _close(layer.backward(dy), xt.grad.numpy(), dtype)
    _close(layer.grads["W"], lin.weight.grad.numpy().T, dtype)
    if use_bias:
        _close(layer.grads["b"], lin.bias.grad.numpy(), dtype)
    else:
        assert "b" not in layer.params


def test_dense_gradcheck_float64():
    rng = np.random.default_rng(3)
    layer = Dense(5, dtype="float64", bias_initializer="normal")
    layer.build((6,), rng)
    x = rng.standard_normal((3, 6))
    R = rng.standard_normal((3, 5))
    layer.forward(x)
    dx = layer.backward(R)
    dW, db = layer.grads["W"].copy(), layer.grads["b"].copy()

    def loss():
        return float((layer.forward(x) * R).sum())

    check_grad(loss, x, dx, rtol=1e-6, atol=1e-7)
    check_grad(loss, layer.params["W"], dW, rtol=1e-6, atol=1e-7)
    check_grad(loss, layer.params["b"], db, rtol=1e-6, atol=1e-7)


def test_dense_rejects_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match="units=0"):
        Dense(0)
    with pytest.raises(ValueError, match="Flatten"):
        Dense(3).build((2, 4, 4))
    layer = Dense(3)
    layer.build((4,))
    with pytest.raises(ValueError, match="shape"):
        layer.forward(np.zeros((2, 5), np.float32))


# -------------------------------------------------------------------------- Flatten


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_flatten_matches_torch(dtype):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 4, 5)).astype(dtype)
    layer = Flatten(dtype=dtype)
    layer.build(x.shape[1:])
    y = layer.forward(x)
    assert layer.output_shape(x.shape[1:]) == (60,)
    dy = rng.standard_normal(y.shape).astype(dtype)
    ty, tdx = _torch_fwd_bwd(lambda t: torch.flatten(t, 1), x, dy)
    _close(y, ty, dtype)
    _close(layer.backward(dy), tdx, dtype)


def test_flatten_gradcheck_float64():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 2, 3, 2))
    layer = Flatten(dtype="float64")
    layer.build(x.shape[1:])
    R = rng.standard_normal((2, 12))
    layer.forward(x)
    dx = layer.backward(R)
    check_grad(lambda: float((layer.forward(x) * R).sum()), x, dx, rtol=1e-6, atol=1e-7)
