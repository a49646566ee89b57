"""BatchNorm1D/2D, LocalResponseNorm and Dropout against PyTorch, closed forms and float64
central differences."""

from __future__ import annotations

import numpy as np
import pytest

import numcnn
from numcnn.layers import (
    BatchNorm1D,
    BatchNorm2D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    LocalResponseNorm,
)
from references import check_grad

torch = pytest.importorskip("torch")
torch.set_num_threads(1)


def _tol(dtype):
    return dict(rtol=3e-5, atol=3e-5) if np.dtype(dtype) == np.float32 else dict(
        rtol=1e-10, atol=1e-11)


def _torch_bn(cls, C, momentum, eps, affine, gamma, beta, dtype):
    tdt = torch.float32 if np.dtype(dtype) == np.float32 else torch.float64
    bn = cls(C, eps=eps, momentum=momentum, affine=affine).to(tdt)
    if affine:
        with torch.no_grad():
            bn.weight.copy_(torch.tensor(gamma))
            bn.bias.copy_(torch.tensor(beta))
    return bn


BN_CASES = [
    pytest.param(BatchNorm2D, torch.nn.BatchNorm2d, (4, 3, 5, 6), 0.1, 1e-5, True, id="2d"),
    pytest.param(BatchNorm2D, torch.nn.BatchNorm2d, (1, 2, 3, 4), 0.3, 1e-3, True,
                 id="2d-batch1"),
    pytest.param(BatchNorm2D, torch.nn.BatchNorm2d, (3, 2, 4, 4), 0.1, 1e-5, False,
                 id="2d-noaffine"),
    pytest.param(BatchNorm1D, torch.nn.BatchNorm1d, (8, 5), 0.1, 1e-5, True, id="1d-NF"),
    pytest.param(BatchNorm1D, torch.nn.BatchNorm1d, (3, 4, 6), 0.25, 1e-4, True, id="1d-NCL"),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cls,tcls,shape,momentum,eps,affine", BN_CASES)
def test_batchnorm_train_eval_and_running_stats_match_torch(cls, tcls, shape, momentum, eps,
                                                            affine, dtype):
    rng = np.random.default_rng(0)
    C = shape[1]
    layer = cls(momentum=momentum, eps=eps, affine=affine, dtype=dtype)
    layer.build(shape[1:])
    gamma = rng.uniform(0.5, 1.5, C).astype(dtype)
    beta = rng.standard_normal(C).astype(dtype)
    if affine:
        layer.params["gamma"][...] = gamma
        layer.params["beta"][...] = beta
    tbn = _torch_bn(tcls, C, momentum, eps, affine, gamma, beta, dtype)
    tbn.train()
    for step in range(4):  # several training steps: forward, backward, running stats
        x = (rng.standard_normal(shape) * (1 + step) + step).astype(dtype)
        dy = rng.standard_normal(shape).astype(dtype)
        y = layer.forward(x, training=True)
        xt = torch.tensor(x, requires_grad=True)
        yt = tbn(xt)
        yt.backward(torch.tensor(dy))
        assert y.dtype == np.dtype(dtype)
        np.testing.assert_allclose(y, yt.detach().numpy(), **_tol(dtype))
        dx = layer.backward(dy)
        assert dx.dtype == np.dtype(dtype)
        np.testing.assert_allclose(dx, xt.grad.numpy(), **_tol(dtype))
        if affine:
            np.testing.assert_allclose(layer.grads["gamma"], tbn.weight.grad.numpy(),
                                       **_tol(dtype))
            np.testing.assert_allclose(layer.grads["beta"], tbn.bias.grad.numpy(),
                                       **_tol(dtype))
            tbn.weight.grad = None
            tbn.bias.grad = None
        np.testing.assert_allclose(layer.buffers["running_mean"], tbn.running_mean.numpy(),
                                   **_tol(dtype))
        np.testing.assert_allclose(layer.buffers["running_var"], tbn.running_var.numpy(),
                                   **_tol(dtype))
        assert layer.buffers["running_var"].dtype == np.dtype(dtype)
    # inference uses the running statistics (and does not change them)
    tbn.eval()
    x = rng.standard_normal(shape).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    rm = layer.buffers["running_mean"].copy()
    y = layer.forward(x, training=False)
    np.testing.assert_array_equal(layer.buffers["running_mean"], rm)
    xt = torch.tensor(x, requires_grad=True)
    yt = tbn(xt)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), **_tol(dtype))
    np.testing.assert_allclose(layer.backward(dy), xt.grad.numpy(), **_tol(dtype))
    if affine:
        np.testing.assert_allclose(layer.grads["gamma"], tbn.weight.grad.numpy(), **_tol(dtype))
        np.testing.assert_allclose(layer.grads["beta"], tbn.bias.grad.numpy(), **_tol(dtype))


def test_batchnorm_training_output_is_normalised():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((16, 3, 4, 4)) * 5 + 2
    bn = BatchNorm2D(dtype="float64")
    bn.build((3, 4, 4))
    y = bn.forward(x, training=True)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), x.var(axis=(0, 2, 3)) / (
        x.var(axis=(0, 2, 3)) + 1e-5), rtol=1e-12)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("cls,shape", [(BatchNorm2D, (3, 2, 3, 4)), (BatchNorm1D, (5, 4)),
                                       (BatchNorm1D, (2, 3, 5))])
def test_batchnorm_gradient_check_float64(cls, shape, training):
    rng = np.random.default_rng(2)
    layer = cls(dtype="float64", momentum=0.0)  # momentum 0 keeps the running stats fixed
    layer.build(shape[1:])
    C = shape[1]
    layer.params["gamma"][...] = rng.uniform(0.5, 1.5, C)
    layer.params["beta"][...] = rng.standard_normal(C)
    layer.buffers["running_mean"][...] = rng.standard_normal(C)
    layer.buffers["running_var"][...] = rng.uniform(0.5, 2.0, C)
    x = rng.standard_normal(shape)
    R = rng.standard_normal(shape)

    def loss():
        return float((layer.forward(x, training=training) * R).sum())

    layer.forward(x, training=training)
    dx = layer.backward(R)
    grads = {k: v.copy() for k, v in layer.grads.items()}
    check_grad(loss, x, dx, rtol=1e-6, atol=1e-8)
    for k in ("gamma", "beta"):
        check_grad(loss, layer.params[k], grads[k], rtol=1e-6, atol=1e-8)


def test_batchnorm_buffers_are_non_trainable_in_summary_and_saved(tmp_path):
    model = numcnn.Sequential([Conv2D(4, 3), BatchNorm2D(), Flatten(), BatchNorm1D(),
                               Dense(3)], input_shape=(1, 6, 6), seed=0)
    bn2, bn1 = model.layers[1], model.layers[3]
    assert bn2.count_params() == 8 and bn2.count_non_trainable() == 8
    assert bn1.count_params() == 2 * 64 and bn1.count_non_trainable() == 2 * 64
    assert model.count_non_trainable() == 8 + 128
    text = model.summary(print_fn=lambda s: None)
    assert "Non-trainable params: 136" in text
    x = np.random.default_rng(0).standard_normal((5, 1, 6, 6)).astype(np.float32)
    model.forward(x, training=True)  # moves the running statistics
    path = tmp_path / "bn.npz"
    numcnn.save_model(model, path)
    back = numcnn.load_model(path)
    for a, b in zip((bn2, bn1), (back.layers[1], back.layers[3])):
        for k in ("running_mean", "running_var"):
            np.testing.assert_array_equal(a.buffers[k], b.buffers[k])
    np.testing.assert_array_equal(back.forward(x), model.forward(x))


def test_batchnorm_errors():
    with pytest.raises(ValueError, match="momentum"):
        BatchNorm2D(momentum=1.5)
    with pytest.raises(ValueError, match="eps"):
        BatchNorm1D(eps=0)
    bn = BatchNorm1D()
    bn.build((4,))
    with pytest.raises(ValueError, match="more than 1 value"):
        bn.forward(np.zeros((1, 4), np.float32), training=True)
    with pytest.raises(ValueError, match="dimensions"):
        BatchNorm2D().build((4, 5))


# ------------------------------------------------------------------ LocalResponseNorm


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("size,alpha,beta,k,shape", [
    (5, 1e-4, 0.75, 1.0, (2, 7, 3, 3)),
    (2, 0.5, 0.6, 2.0, (2, 5, 2, 3)),
    (4, 1.0, 1.2, 1.0, (3, 6, 4)),
    (1, 0.3, 0.5, 1.5, (2, 3, 2, 2)),
    (8, 2.0, 0.75, 1.0, (1, 3, 2, 2)),  # window wider than the channel axis
])
def test_lrn_matches_torch(size, alpha, beta, k, shape, dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    layer = LocalResponseNorm(size, alpha, beta, k, dtype=dtype)
    layer.build(shape[1:])
    y = layer.forward(x)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.LocalResponseNorm(size, alpha, beta, k)(xt)
    yt.backward(torch.tensor(dy))
    assert y.dtype == np.dtype(dtype)
    np.testing.assert_allclose(y, yt.detach().numpy(), **_tol(dtype))
    dx = layer.backward(dy)
    assert dx.dtype == np.dtype(dtype)
    np.testing.assert_allclose(dx, xt.grad.numpy(), **_tol(dtype))


@pytest.mark.parametrize("size", [1, 3, 4])
def test_lrn_gradient_check_float64(size):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 5, 2, 3))
    R = rng.standard_normal(x.shape)
    layer = LocalResponseNorm(size, alpha=0.8, beta=0.9, k=1.2, dtype="float64")
    layer.build(x.shape[1:])

    def loss():
        return float((layer.forward(x) * R).sum())

    layer.forward(x)
    check_grad(loss, x, layer.backward(R), rtol=1e-6, atol=1e-8)


def test_lrn_closed_form_single_channel_window():
    x = np.array([[[[2.0]], [[3.0]]]])  # (1, 2, 1, 1)
    layer = LocalResponseNorm(1, alpha=0.5, beta=1.0, k=1.0, dtype="float64")
    layer.build((2, 1, 1))
    np.testing.assert_allclose(layer.forward(x)[0, :, 0, 0], [2 / (1 + 0.5 * 4),
                                                             3 / (1 + 0.5 * 9)])


# ---------------------------------------------------------------------------- Dropout


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dropout_inference_is_identity_and_training_preserves_mean(dtype):
    rate = 0.3
    d = Dropout(rate, seed=0, dtype=dtype)
    d.build((1000,))
    x = np.random.default_rng(5).uniform(1, 2, (200, 1000)).astype(dtype)
    y = d.forward(x, training=False)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(d.backward(x), x)
    y = d.forward(x, training=True)
    assert y.dtype == np.dtype(dtype)
    dropped = y == 0
    assert abs(dropped.mean() - rate) < 0.005  # 200k Bernoulli draws: sd ≈ 0.001
    np.testing.assert_allclose(y[~dropped], x[~dropped] / (1 - rate), rtol=1e-6)
    np.testing.assert_allclose(y.mean(), x.mean(), rtol=0.01)
    # gradient uses the same mask
    dy = np.random.default_rng(6).standard_normal(x.shape).astype(dtype)
    dx = d.backward(dy)
    assert dx.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(dx == 0, dropped | (dy == 0))
    np.testing.assert_allclose(dx[~dropped], dy[~dropped] / (1 - rate), rtol=1e-6)


def test_dropout_seed_reproducible_masks_fresh_and_gradcheck():
    x = np.random.default_rng(7).standard_normal((4, 10))
    a, b = Dropout(0.5, seed=3, dtype="float64"), Dropout(0.5, seed=3, dtype="float64")
    a.build((10,))
    b.build((10,))
    ya1, yb1 = a.forward(x, training=True), b.forward(x, training=True)
    np.testing.assert_array_equal(ya1, yb1)
    ya2 = a.forward(x, training=True)
    assert not np.array_equal(ya1 == 0, ya2 == 0)  # a new mask each call
    # the mask is a constant of the last forward: gradient of Σ R·(x·mask) is R·mask
    mask = ya2 / x
    R = np.random.default_rng(8).standard_normal(x.shape)
    dx = a.backward(R)
    check_grad(lambda: float((x * mask * R).sum()), x, dx)
    assert Dropout(0.0).get_config()["rate"] == 0.0
    with pytest.raises(ValueError, match="rate"):
        Dropout(1.0)
    with pytest.raises(ValueError, match="rate"):
        Dropout(-0.1)
