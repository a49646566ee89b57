"""ReLU → MaxPool2D: where a ReLU's output feeds only a max pooling, the graph pass
``fuse_relu_maxpool`` lets the pooling apply ReLU's derivative at pooled resolution and the
ReLU hand the gradient on. The gradients must equal PyTorch's ReLU + max pooling, ties and
all-zero windows included, and the pass must not apply where the ReLU output has another
reader (the fan-out defect of the old weak-reference fusion: input gradients off by 1.93)."""

from __future__ import annotations

import numpy as np
import pytest

import numcnn
from numcnn.functional import Workspace
from numcnn.layers import Add, Concatenate, Conv2D, MaxPool2D, ReLU
from numcnn.models import Sequential

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

CONFIGS = [  # (pool, stride, padding)
    pytest.param(2, None, 0, id="2x2-tiled"),
    pytest.param(3, 2, 1, id="3x3-s2-pad1-overlap"),
    pytest.param((2, 3), (1, 2), 0, id="2x3-s1x2-overlap"),
    pytest.param(2, None, 1, id="2x2-pad1"),
]


def _in_chwn(x: np.ndarray) -> np.ndarray:
    """Same values, batch-innermost memory (the layout conv layers hand on)."""
    out = Workspace().fresh_ordered(x.shape, x.dtype, (1, 2, 3, 0))
    out[...] = x
    return out


def _torch_relu_pool(x, dy, pool, stride, padding):
    xt = torch.tensor(x, requires_grad=True)
    y = torch.nn.functional.max_pool2d(torch.relu(xt), pool, stride or pool, padding)
    y.backward(torch.tensor(dy))
    return y.detach().numpy(), xt.grad.numpy()


@pytest.mark.parametrize("chwn", [False, True], ids=["nchw", "chwn"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("pool, stride, padding", CONFIGS)
def test_relu_then_maxpool_gradient_matches_torch_with_ties(pool, stride, padding, dtype, chwn):
    rng = np.random.default_rng(0)
    # small integers: all-zero windows after the ReLU, and ties at positive values
    x = rng.integers(-2, 3, (3, 2, 9, 8)).astype(dtype)
    net = Sequential([ReLU(), MaxPool2D(pool, stride=stride, padding=padding)],
                     input_shape=(2, 9, 8), dtype=dtype)
    net.need_input_grad = True
    y = net.forward(_in_chwn(x) if chwn else x, training=True)
    assert net.fusions == [("relu", "maxpool2d")]  # the shortcut is in use
    assert [c.fused for c in net._tape] == ["relu_out", "relu_in"]
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = net.backward(dy)
    ty, tdx = _torch_relu_pool(x, dy, pool, stride, padding)
    np.testing.assert_array_equal(y, ty)
    assert dx.dtype == np.dtype(dtype) and dx.shape == x.shape
    # routed values are copied, not computed: exact, except sums where windows overlap
    np.testing.assert_allclose(dx, tdx, rtol=1e-6, atol=0)
    assert np.all(dx[x <= 0] == 0)


def test_conv_relu_pool_stack_matches_torch():
    rng = np.random.default_rng(1)
    net = Sequential([Conv2D(4, 3, padding=1), ReLU(), MaxPool2D(2)], input_shape=(2, 8, 8),
                     seed=0)
    net.need_input_grad = True
    x = rng.standard_normal((5, 2, 8, 8)).astype(np.float32)
    y = net.forward(x, training=True)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = net.backward(dy)
    conv = torch.nn.Conv2d(2, 4, 3, padding=1)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(net.layers[0].params["W"]))
        conv.bias.copy_(torch.from_numpy(net.layers[0].params["b"]))
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.max_pool2d(torch.relu(conv(xt)), 2)
    yt.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(net.layers[0].grads["W"], conv.weight.grad.numpy(),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(net.layers[0].grads["b"], conv.bias.grad.numpy(),
                               rtol=1e-4, atol=1e-5)


def test_standalone_relu_always_masks():
    rng = np.random.default_rng(2)
    relu = ReLU()
    x = rng.standard_normal((2, 2, 6, 6)).astype(np.float32)
    relu(x, training=True)
    other = rng.standard_normal(x.shape).astype(np.float32)
    np.testing.assert_array_equal(relu.backward(other), np.where(x > 0, other, 0))


@pytest.mark.parametrize("merge", ["add", "concat"])
def test_no_fusion_when_the_relu_output_has_another_reader(merge):
    """A ReLU output read by a max pooling *and* another branch whose gradients are summed:
    the pass must leave it alone and every gradient must be PyTorch's."""
    rng = np.random.default_rng(3)
    x = numcnn.Input((2, 6, 6), dtype="float64")
    h = ReLU()(Conv2D(3, 3, padding=1)(x))
    a = MaxPool2D(3, stride=1, padding=1)(h)  # same shape as h
    out = Add()([a, h]) if merge == "add" else Concatenate()([a, h])
    model = numcnn.Model(x, out, seed=0)
    model.need_input_grad = True
    assert model.fusions == [("conv2d", "relu")]  # only the convolution rectifies
    xv = rng.standard_normal((4, 2, 6, 6))
    y = model.forward(xv, training=True)
    dy = rng.standard_normal(y.shape)
    dx = model.backward(dy)
    conv = model.layers[0]
    xt = torch.tensor(xv, requires_grad=True)
    Wt = torch.tensor(conv.params["W"], requires_grad=True)
    bt = torch.tensor(conv.params["b"], requires_grad=True)
    ht = torch.relu(torch.nn.functional.conv2d(xt, Wt, bt, padding=1))
    at = torch.nn.functional.max_pool2d(ht, 3, 1, 1)
    yt = at + ht if merge == "add" else torch.cat([at, ht], 1)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(conv.grads["W"], Wt.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_maxpool_on_a_non_relu_input_routes_plain_gradient():
    rng = np.random.default_rng(3)
    net = Sequential([Conv2D(1, 1, use_bias=False), MaxPool2D(2)], input_shape=(1, 4, 4))
    net.layers[0].params["W"][...] = 1.0
    net.need_input_grad = True
    assert net.fusions == []
    x = -np.abs(rng.standard_normal((1, 1, 4, 4))).astype(np.float32) - 0.5  # all negative
    y = net.forward(x, training=True)
    dx = net.backward(np.ones_like(y))
    assert dx.sum() == y.size  # nothing masked: every window routes its gradient


def test_fusion_can_be_switched_off_and_gives_the_same_gradients():
    rng = np.random.default_rng(5)
    net = Sequential([Conv2D(3, 3), ReLU(), MaxPool2D(2)], input_shape=(2, 9, 9), seed=1,
                     dtype="float64")
    x = rng.standard_normal((3, 2, 9, 9))
    y = net.forward(x, training=True)
    dy = rng.standard_normal(y.shape)
    net.backward(dy)
    fused = net.layers[0].grads["W"].copy()
    assert "Fused" in net.summary(print_fn=lambda s: None)
    net.set_fusion(False)
    assert net.fusions == [] and "Fused" not in net.summary(print_fn=lambda s: None)
    net.forward(x, training=True)
    net.backward(dy)
    np.testing.assert_allclose(net.layers[0].grads["W"], fused, rtol=1e-13, atol=1e-14)


@pytest.fixture
def always_winners(monkeypatch):
    """Keep the 2×2 forward comparisons for inputs of any size."""
    import numcnn.functional.fast.pool as FP

    monkeypatch.setattr(FP, "WINNERS_MIN_BYTES", 0)


@pytest.mark.parametrize("after_relu", [False, True], ids=["plain", "after-relu"])
@pytest.mark.parametrize("chwn", [False, True], ids=["nchw", "chwn"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("H, W", [(8, 8), (9, 7)])
def test_maxpool_2x2_kept_winners_match_torch_with_ties(always_winners, H, W, dtype, chwn,
                                                        after_relu):
    rng = np.random.default_rng(4)
    # small integers: ties inside most windows, at zero and at positive/negative values
    x = rng.integers(-2, 3, (4, 3, H, W)).astype(dtype)
    layers = ([ReLU()] if after_relu else []) + [MaxPool2D(2)]
    net = Sequential(layers, input_shape=(3, H, W), dtype=dtype)
    net.need_input_grad = True
    y = net.forward(_in_chwn(x) if chwn else x, training=True)
    assert net._tape[-1].cache["knockout"] is not None  # the comparisons were kept
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = net.backward(dy)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.max_pool2d(torch.relu(xt) if after_relu else xt, 2)
    yt.backward(torch.tensor(dy))
    np.testing.assert_array_equal(y, yt.detach().numpy())
    assert dx.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(dx, xt.grad.numpy())  # routed copies: exact


def test_maxpool_kept_winners_not_used_in_inference(always_winners):
    pool = MaxPool2D(2)
    pool.build((1, 4, 4))
    pool.need_input_grad = True
    pool.forward(np.zeros((1, 1, 4, 4), np.float32), training=False)
    assert pool._last_call.cache["knockout"] is None


def test_maxpool_routes_a_nan_window_to_its_nan_like_torch(always_winners):
    # a NaN window (y = NaN) sends its gradient to the NaN, as PyTorch's max_pool2d does
    x = np.arange(32, dtype=np.float32).reshape(2, 1, 4, 4)
    x[0, 0, 1, 1] = np.nan
    pool = MaxPool2D(2)
    pool.build((1, 4, 4))
    pool.need_input_grad = True
    y = pool.forward(x, training=True)
    assert np.isnan(y[0, 0, 0, 0]) and pool._last_call.cache["knockout"] is not None
    dx = pool.backward(np.ones_like(y))
    xt = torch.tensor(x, requires_grad=True)
    torch.nn.functional.max_pool2d(xt, 2).backward(torch.ones(y.shape))
    np.testing.assert_array_equal(dx, xt.grad.numpy())
    assert dx[0, 0, 1, 1] == 1 and dx.sum() == y.size  # every window routes its 1
