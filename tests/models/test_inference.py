"""The fused inference path of ``predict`` (numcnn.models.inference) against PyTorch twins.

Each twin is written here from stock ``torch.nn.functional`` operations, layer by layer, with
numcnn's weights copied in; it runs in float64 as the reference and in float32 for the
allowance: numcnn's float32 ``predict`` may be at most 4× as far from the float64 twin as
the float32 twin is, plus 2ε of the output's scale (the reference's own rounding, not a
tuned constant). float64 ``predict`` agrees with the float64 twin to 1e-10 relative.
Also checked: odd batch sizes and batch 1, non-contiguous inputs, two threads giving the
same result as one bit for bit, the unfused graph (``set_fusion(False)``), weights changed
in place between calls, and the models the path leaves to the graph.
"""

from __future__ import annotations

import numpy as np
import pytest

import numcnn
from numcnn import models
from numcnn.layers import (
    Add,
    BatchNorm2D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    MaxPool2D,
    Pad2D,
    RBFOutput,
    ReLU,
    Rescale,
    ScaledTanh,
    Subsampling2D,
    Tanh,
)
from numcnn.models.inference import inference_plan
from numcnn.threads import num_threads

torch = pytest.importorskip("torch")
F = torch.nn.functional
EPS32 = float(np.finfo(np.float32).eps)


def torch_forward(model, x: np.ndarray, dtype) -> np.ndarray:
    """The model's inference output computed by PyTorch, layer by layer, in ``dtype``."""
    def t(a):
        return torch.tensor(np.asarray(a), dtype=dtype)

    h = t(x)
    for lay in model.layers:
        p = lay.params
        if isinstance(lay, Rescale):
            h = h * lay.scale + lay.offset
        elif isinstance(lay, Pad2D):
            pt, pb, pl, pr = lay.padding
            h = F.pad(h, (pl, pr, pt, pb), value=lay.value)
        elif isinstance(lay, Conv2D):
            pt, pb, pl, pr = lay.pads
            h = F.pad(h, (pl, pr, pt, pb), value=lay.padding_value)
            h = F.conv2d(h, t(p["W"]), t(p["b"]) if "b" in p else None, stride=lay.stride)
        elif isinstance(lay, BatchNorm2D):
            gamma, beta = (t(a) for a in lay._gamma_beta())
            h = F.batch_norm(h, t(lay.buffers["running_mean"]), t(lay.buffers["running_var"]),
                             gamma, beta, training=False, eps=lay.eps)
        elif isinstance(lay, ReLU):
            h = F.relu(h)
        elif isinstance(lay, Tanh):
            h = torch.tanh(h)
        elif isinstance(lay, ScaledTanh):
            h = lay.A * torch.tanh(lay.S * h)
        elif isinstance(lay, MaxPool2D):
            h = F.max_pool2d(h, lay.pool_size, lay.stride)
        elif isinstance(lay, Subsampling2D):
            s = F.avg_pool2d(h, lay.pool_size, divisor_override=1)
            h = s * t(p["coef"])[:, None, None] + t(p["b"])[:, None, None]
        elif isinstance(lay, Flatten):
            h = h.flatten(1)
        elif isinstance(lay, Dense):
            h = F.linear(h, t(p["W"]).T, t(p["b"]))
        elif isinstance(lay, Dropout):
            pass
        elif isinstance(lay, RBFOutput):
            h = ((h[:, None, :] - t(p["W"])[None]) ** 2).sum(-1)
        else:
            raise AssertionError(f"no twin for {type(lay).__name__}")
    return h.numpy()


def assert_like_torch(model, x: np.ndarray, got: np.ndarray) -> None:
    """float64: within 1e-10 of the twin; float32: within 4× the float32 twin's error."""
    ref64 = torch_forward(model, x.astype(np.float64), torch.float64)
    if got.dtype == np.float64:
        np.testing.assert_allclose(got, ref64, rtol=1e-10, atol=1e-10 * np.abs(ref64).max())
        return
    assert got.dtype == np.float32
    ref32 = torch_forward(model, x.astype(np.float32), torch.float32).astype(np.float64)
    err = np.abs(got - ref64).max()
    allowed = 4 * np.abs(ref32 - ref64).max() + 2 * EPS32 * np.abs(ref64).max()
    assert err <= allowed, (err, allowed)


def lenet(name: str, dtype: str):
    """The zoo model with non-zero biases (the modern net's start at 0)."""
    model = (models.lenet5 if name == "lenet5" else models.lenet5_1998)(seed=3, dtype=dtype)
    rng = np.random.default_rng(8)
    for lay in model.layers:
        if "b" in lay.params:
            lay.params["b"][...] = rng.normal(scale=0.1, size=lay.params["b"].shape)
    return model


def images(n: int, name: str, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).random((n, 1, 28, 28))
    return x * 255 if name == "lenet5-1998" else x  # the 1998 net reads grey levels


@pytest.mark.parametrize("name", ["lenet5", "lenet5-1998"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", [1, 7, 64, 131])
def test_lenets_predict_like_their_torch_twins(name, dtype, n):
    model = lenet(name, dtype)
    assert inference_plan(model) is not None
    x = images(n, name).astype(dtype)
    got = model.predict(x)
    assert got.shape == (n, 10) and got.dtype == np.dtype(dtype) and got.flags.c_contiguous
    assert_like_torch(model, x, got)


@pytest.mark.parametrize("name", ["lenet5", "lenet5-1998"])
def test_fused_path_equals_the_unfused_graph(name):
    """The same model with its fusions off runs the training graph layer by layer."""
    model = lenet(name, "float32")
    x = images(45, name).astype(np.float32)
    fused = model.predict(x)
    model.set_fusion(False)
    assert inference_plan(model) is None
    plain = model.predict(x)
    ref64 = torch_forward(model, x.astype(np.float64), torch.float64)
    ref32 = torch_forward(model, x, torch.float32).astype(np.float64)
    allowed = 4 * np.abs(ref32 - ref64).max() + 2 * EPS32 * np.abs(ref64).max()
    assert np.abs(fused - plain).max() <= 2 * allowed
    assert not np.array_equal(fused, np.zeros_like(fused))


@pytest.mark.parametrize("name", ["lenet5", "lenet5-1998"])
def test_non_contiguous_input_and_batch_sizes(name):
    model = lenet(name, "float32")
    big = images(2 * 75, name).astype(np.float32)
    x = big[::2]  # every other image: a strided view
    assert not x.flags.c_contiguous
    got = model.predict(x, batch_size=10)
    assert_like_torch(model, np.ascontiguousarray(x), got)
    np.testing.assert_array_equal(got, model.predict(np.ascontiguousarray(x), batch_size=10))
    # (N, H, W) is accepted for a one-channel model, as by the graph
    np.testing.assert_array_equal(model.predict(x[:, 0], batch_size=10), got)


@pytest.mark.parametrize("name", ["lenet5", "lenet5-1998"])
@pytest.mark.parametrize("n", [1, 33, 500, 1001])
def test_two_threads_give_the_one_thread_result(name, n):
    model = lenet(name, "float32")
    x = images(n, name, seed=1).astype(np.float32)
    with num_threads(1):
        one = model.predict(x)
    with num_threads(2):
        two = model.predict(x)
    np.testing.assert_array_equal(one, two)
    assert_like_torch(model, x, two)


def test_weights_changed_in_place_are_seen():
    """The folds are recomputed every call: an optimizer step (in place) or set_weights."""
    model = lenet("lenet5-1998", "float32")
    x = images(9, "lenet5-1998").astype(np.float32)
    before = model.predict(x)
    c3 = model.get_layer("C3")
    c3.params["W"] *= np.float32(1.5)
    model.get_layer("S2").params["coef"] += np.float32(0.1)
    after = model.predict(x)
    assert np.abs(after - before).max() > 1e-3
    assert_like_torch(model, x, after)
    weights = model.get_weights()
    weights["F6/b"] = weights["F6/b"] + 0.5
    model.set_weights(weights)
    assert_like_torch(model, x, model.predict(x))


def small_net(kind: str, dtype: str = "float64"):
    """Patterns beyond the LeNets: BatchNorm folding, stride 2 with pooling (the im2col
    blocks), no pooling, a tanh before a max pooling, max pooling before the ReLU."""
    rng = np.random.default_rng(5)
    if kind == "bn":
        layers = [Conv2D(5, 3, padding=1), BatchNorm2D(), ReLU(), MaxPool2D(2), Flatten(),
                  Dense(7)]
        shape = (2, 12, 10)
    elif kind == "stride2":
        layers = [Conv2D(4, 3, stride=2, padding=1), ReLU(), MaxPool2D(2), Conv2D(6, 2),
                  Tanh(), Flatten(), Dense(3)]
        shape = (3, 17, 21)
    elif kind == "pool_then_relu":
        layers = [Pad2D(1, value=0.25), Conv2D(3, 3), MaxPool2D(2), ReLU(), Conv2D(4, 3),
                  Tanh(), MaxPool2D(2), Flatten(), Dropout(0.5), Dense(5), ReLU(), Dense(2)]
        shape = (1, 14, 14)
    else:
        raise ValueError(kind)
    model = numcnn.Sequential(layers, input_shape=shape, seed=4, dtype=dtype)
    if kind == "bn":
        bn = model.layers[1]
        bn.buffers["running_mean"][...] = rng.normal(size=5)
        bn.buffers["running_var"][...] = rng.uniform(0.5, 2.0, size=5)
        bn.params["gamma"][...] = rng.uniform(0.5, 1.5, size=5)
        bn.params["beta"][...] = rng.normal(size=5)
    return model, shape


@pytest.mark.parametrize("kind", ["bn", "stride2", "pool_then_relu"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_other_patterns_like_torch(kind, dtype):
    model, shape = small_net(kind, dtype)
    assert inference_plan(model) is not None
    x = np.random.default_rng(2).normal(size=(13,) + shape).astype(dtype)
    assert_like_torch(model, x, model.predict(x, batch_size=6))


def test_models_left_to_the_graph():
    """A graph (not a chain), channels-last, and unknown layers run as before."""
    x = numcnn.Input((1, 8, 8))
    h = Conv2D(2, 3, padding=1)(x)
    graph = numcnn.Model(x, Flatten()(Add()([h, Conv2D(2, 3, padding=1)(x)])), seed=0)
    last = numcnn.Sequential([Conv2D(2, 3, data_format="channels_last"), Flatten()],
                             input_shape=(8, 8, 1), seed=0)
    for model in (graph, last):
        assert inference_plan(model) is None
    a = np.random.default_rng(0).random((3, 1, 8, 8))
    assert graph.predict(a.astype(np.float32)).shape == (3, 128)


def test_bad_input_still_refused_clearly():
    model = lenet("lenet5", "float32")
    with pytest.raises(ValueError, match="expected input of shape"):
        model.predict(np.zeros((2, 1, 27, 28), np.float32))
    bad = np.zeros((2, 1, 28, 28), np.float32)
    bad[1, 0, 3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.predict(bad)
    assert model.predict(np.zeros((0, 1, 28, 28), np.float32)).shape == (0, 10)


def test_evaluate_uses_the_fused_outputs():
    """``evaluate``'s loss and accuracy equal torch's cross-entropy and argmax accuracy on
    the twin's outputs (float64), with the fused path in use."""
    model = lenet("lenet5", "float64")
    model.compile(numcnn.optimizers.SGD(0.1), "softmax_cross_entropy", metrics=["accuracy"])
    x = images(77, "lenet5")
    y = np.random.default_rng(4).integers(0, 10, 77)
    assert inference_plan(model) is not None
    logs = model.evaluate(x, y, batch_size=20)
    z = torch.tensor(torch_forward(model, x, torch.float64))
    loss = float(F.cross_entropy(z, torch.tensor(y)))
    acc = float((z.argmax(1).numpy() == y).mean())
    assert logs["loss"] == pytest.approx(loss, rel=1e-10)
    assert logs["accuracy"] == pytest.approx(acc)
