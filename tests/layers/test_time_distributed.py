"""``TimeDistributed`` against its PyTorch twin (the wrapped module on ``x.flatten(0, 1)``,
output unflattened), float64 numerical gradients, shared weights, graphs with a free T,
save/load, summary, refused wrappings, and the Gauss–Newton rule."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

import numcnn
from numcnn.layers import (
    BatchNorm2D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    Input,
    MaxPool2D,
    ReLU,
    TimeDistributed,
    gauss_newton,
)
from numcnn.models import count_macs, layer_macs
from references import check_grad, off_kink

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def twin(module, x):
    """PyTorch's reshape-based TimeDistributed: fold T into the batch and back."""
    N, T = x.shape[:2]
    y = module(x.flatten(0, 1))
    return y.unflatten(0, (N, T))


def _conv_twin(layer):
    m = torch.nn.Conv2d(layer.params["W"].shape[1], layer.params["W"].shape[0],
                        layer.kernel_size, stride=layer.stride, padding=0,
                        dtype=torch.float64)
    with torch.no_grad():
        m.weight.copy_(torch.tensor(layer.params["W"]))
        m.bias.copy_(torch.tensor(layer.params["b"]))
    return m


@pytest.mark.parametrize("N, T", [(2, 3), (1, 1), (3, 2)])
def test_conv2d_per_step_matches_torch(N, T):
    rng = np.random.default_rng(0)
    conv = Conv2D(4, (3, 2), stride=(2, 1), dtype="float64")
    td = TimeDistributed(conv)
    x = rng.standard_normal((N, T, 2, 7, 6))
    y = td(x, training=True)
    m = _conv_twin(conv)
    xt = torch.tensor(x, requires_grad=True)
    yt = twin(m, xt)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    dx = td.backward(dy)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(td.grads["W"], m.weight.grad.numpy(), rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(td.grads["b"], m.bias.grad.numpy(), rtol=1e-11, atol=1e-12)
    assert td.params is conv.params and td.grads is conv.grads  # one set of weights


@pytest.mark.parametrize("layer, module, shape", [
    (lambda: Dense(4, dtype="float64"), None, (3, 5)),
    (lambda: MaxPool2D(2, stride=1, dtype="float64"), lambda: torch.nn.MaxPool2d(2, 1),
     (2, 3, 4, 5)),
    (lambda: ReLU(dtype="float64"), lambda: torch.nn.ReLU(), (4, 3)),
    (lambda: Flatten(dtype="float64"), lambda: torch.nn.Flatten(), (3, 2, 2, 3)),
])
def test_other_layers_per_step_match_torch(layer, module, shape):
    rng = np.random.default_rng(1)
    inner = layer()
    td = TimeDistributed(inner)
    x = off_kink((2,) + shape, rng)
    y = td(x, training=True)
    if module is None:  # Dense: torch.nn.Linear with W transposed
        m = torch.nn.Linear(shape[-1], inner.units, dtype=torch.float64)
        with torch.no_grad():
            m.weight.copy_(torch.tensor(inner.params["W"].T))
            m.bias.copy_(torch.tensor(inner.params["b"]))
    else:
        m = module()
    xt = torch.tensor(x, requires_grad=True)
    yt = twin(m, xt)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(td.backward(dy), xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    if module is None:
        np.testing.assert_allclose(td.grads["W"], m.weight.grad.numpy().T, rtol=1e-11)


@pytest.mark.parametrize("training", [False, True])
def test_batchnorm_per_step_matches_torch(training):
    """Inference: the running statistics applied to each step; training: statistics over all
    N·T steps (the folded batch), as Keras's TimeDistributed(BatchNormalization)."""
    rng = np.random.default_rng(2)
    bn = BatchNorm2D(momentum=0.2, dtype="float64")
    td = TimeDistributed(bn)
    x = rng.standard_normal((2, 3, 3, 4, 4))
    td.build(x.shape[1:], rng)
    bn.buffers["running_mean"][...] = rng.standard_normal(3)
    bn.buffers["running_var"][...] = rng.random(3) + 0.5
    bn.params["gamma"][...] = rng.random(3) + 0.5
    bn.params["beta"][...] = rng.standard_normal(3)
    m = torch.nn.BatchNorm2d(3, momentum=0.2, dtype=torch.float64)
    with torch.no_grad():
        m.running_mean.copy_(torch.tensor(bn.buffers["running_mean"]))
        m.running_var.copy_(torch.tensor(bn.buffers["running_var"]))
        m.weight.copy_(torch.tensor(bn.params["gamma"]))
        m.bias.copy_(torch.tensor(bn.params["beta"]))
    m.train(training)
    xt = torch.tensor(x, requires_grad=True)
    yt = twin(m, xt)
    y = td.forward(x, training=training)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(bn.buffers["running_mean"], m.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(bn.buffers["running_var"], m.running_var.numpy(), rtol=1e-12)
    dy = rng.standard_normal(y.shape)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(td.backward(dy), xt.grad.numpy(), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(td.grads["gamma"], m.weight.grad.numpy(), rtol=1e-10)
    assert not td.per_sample  # BatchNorm mixes the samples: no data-parallel split


def test_numerical_gradients():
    rng = np.random.default_rng(3)
    td = TimeDistributed(Conv2D(2, 2, padding=1, dtype="float64"))
    x = rng.standard_normal((2, 3, 1, 3, 3))
    td.build(x.shape[1:], rng)
    dy = rng.standard_normal((2,) + td.output_shape(x.shape[1:]))

    def loss():
        return float((td.forward(x) * dy).sum())

    td.forward(x)
    dx = td.backward(dy)
    check_grad(loss, x, dx)
    check_grad(loss, td.params["W"], td.grads["W"].copy())
    check_grad(loss, td.params["b"], td.grads["b"].copy())


def _model(T=None):
    inp = Input((T, 1, 8, 8), dtype="float64")
    h = TimeDistributed(Conv2D(3, 3, padding=1), name="conv")(inp)
    h = TimeDistributed(MaxPool2D(2))(h)
    h = TimeDistributed(Flatten())(h)
    out = TimeDistributed(Dense(2), name="head")(h)
    return numcnn.Model(inp, out, seed=0)


def test_a_graph_with_a_free_length_runs_any_length_and_round_trips(tmp_path):
    model = _model()
    conv = model.get_layer("conv").layer
    assert model.output_shape() == (None, 2)
    assert set(model.trainable_params()) == {"conv/W", "conv/b", "head/W", "head/b"}
    rng = np.random.default_rng(4)
    for T in (1, 4):
        x = rng.standard_normal((3, T, 1, 8, 8))
        y = model.predict(x)
        assert y.shape == (3, T, 2) and y.flags.c_contiguous
        # each step alone through the same layers
        for t in range(T):
            h = conv.forward(x[:, t])
            h = MaxPool2D(2, dtype="float64").forward(h).reshape(3, -1)
            head = model.get_layer("head").layer
            np.testing.assert_allclose(y[:, t], h @ head.params["W"] + head.params["b"],
                                       rtol=1e-12, atol=1e-12)
    numcnn.save_model(model, tmp_path / "m.npz")
    back = numcnn.load_model(tmp_path / "m.npz")
    x = rng.standard_normal((2, 5, 1, 8, 8))
    np.testing.assert_array_equal(back.predict(x), model.predict(x))
    cfg = back.get_layer("conv").get_config()
    assert cfg["layer"]["class_name"] == "Conv2D" and cfg["layer"]["config"]["out_channels"] == 3


def test_summary_counts_parameters_and_macs_per_step():
    fixed = _model(T=4)
    per_step = layer_macs(Conv2D(3, 3, padding=1), (1, 8, 8)) + 48 * 2
    assert count_macs(fixed) == 4 * per_step
    lines = []
    _model().summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "TimeDistributed" in text and "?" in text  # MACs unknown for a free T
    assert fixed.count_params() == (3 * 9 + 3) + (48 * 2 + 2)


def test_training_learns_through_the_wrapper():
    """A per-step target (the sum of the step's image) is learnt, and gradients reach the
    wrapped convolution."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((64, 3, 1, 8, 8))
    y = x.sum(axis=(2, 3, 4))[..., None] / 8
    inp = Input((None, 1, 8, 8), dtype="float64")
    h = TimeDistributed(Conv2D(2, 3, padding=1))(inp)
    h = TimeDistributed(Flatten())(h)
    out = TimeDistributed(Dense(1))(h)
    model = numcnn.Model(inp, out, seed=0)
    model.compile(optimizer=numcnn.optimizers.Adam(lr=0.01), loss="mse", metrics=[])
    w0 = model.get_weights()["timedistributed/W"].copy()
    hist = model.fit(x, y, batch_size=16, epochs=20, verbose=0, seed=0)
    assert hist.history["loss"][-1] < 0.02 * hist.history["loss"][0]
    assert not np.allclose(model.get_weights()["timedistributed/W"], w0)


def test_a_built_layer_keeps_its_weights_and_shares_them():
    rng = np.random.default_rng(6)
    dense = Dense(3, dtype="float64")
    dense.build((4,), rng)
    W = dense.params["W"].copy()
    inp = Input((None, 4), dtype="float64")
    model = numcnn.Model(inp, TimeDistributed(dense)(inp), seed=1)
    np.testing.assert_array_equal(dense.params["W"], W)  # not re-drawn by the model's seed
    x = rng.standard_normal((2, 3, 4))
    np.testing.assert_allclose(model.predict(x), x @ W + dense.params["b"], rtol=1e-12)
    with pytest.raises(ValueError, match="built for steps of shape"):
        TimeDistributed(dense).build((2, 5))


def test_trainable_follows_the_wrapped_layer():
    inner = Dense(2)
    td = TimeDistributed(inner)
    td.trainable = False
    assert inner.trainable is False
    assert TimeDistributed(Dense(2, trainable=False)).trainable is False


@pytest.mark.parametrize("make, error, pattern", [
    (lambda: TimeDistributed(Dropout(0.5)), TypeError, "needs no wrapper"),
    (lambda: TimeDistributed(numcnn.Sequential([Dense(2)])), TypeError, "not a model"),
    (lambda: TimeDistributed("dense"), TypeError, "wraps a layer; received str"),
    (lambda: TimeDistributed(Dense(2)).output_shape((5,)), ValueError, "at least one axis"),
    (lambda: TimeDistributed.from_config({"layer": 3}), ValueError, "must be a layer spec"),
    (lambda: TimeDistributed(Dense(2, dtype="float32"), dtype="float64").build((2, 3)),
     None, None),
])
def test_refused_wrappings(make, error, pattern):
    if error is None:
        make()  # an unbuilt layer follows the wrapper's dtype
        return
    with pytest.raises(error, match=pattern):
        make()


def test_dtype_of_a_built_layer_must_agree():
    d = Dense(2)
    d.build((3,))
    with pytest.raises(ValueError, match="built as float32"):
        TimeDistributed(d, dtype="float64")


def test_gauss_newton_rule_is_the_wrapped_rule_on_folded_steps():
    rng = np.random.default_rng(7)
    conv = Conv2D(2, 2, dtype="float64")
    td = TimeDistributed(conv)
    x = rng.standard_normal((2, 3, 1, 4, 4))
    call = numcnn.layers.Call(False, True)
    td.build(x.shape[1:], rng)
    y = td.fprop(x, call)
    d2y = rng.random(y.shape)
    d2x, h = gauss_newton.rule_for(td)(td, d2y, call)
    call2 = numcnn.layers.Call(False, True)
    conv.fprop(x.reshape(6, 1, 4, 4), call2)
    d2x_ref, h_ref = gauss_newton.rule_for(conv)(conv, d2y.reshape(6, 2, 3, 3), call2)
    np.testing.assert_allclose(d2x, d2x_ref.reshape(x.shape), rtol=1e-12)
    for k in h_ref:
        np.testing.assert_allclose(h[k], h_ref[k], rtol=1e-12)


def _file_with_config(path, config: str) -> None:
    import io
    import zipfile

    buf = io.BytesIO()
    np.save(buf, np.array(config))
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("__config__.npy", buf.getvalue())


def _saved_config(tmp_path, model) -> str:
    import io
    import zipfile

    numcnn.save_model(model, tmp_path / "ok.npz")
    with zipfile.ZipFile(tmp_path / "ok.npz") as z:
        return str(np.load(io.BytesIO(z.read("__config__.npy")), allow_pickle=False)[()])


def test_a_hostile_wrapped_layer_is_refused_before_it_allocates(tmp_path):
    """A model file is untrusted: the memory a wrapped layer's constructor would take
    (WeightedPool2D's window) is bounded like a bare layer's, and so is the nesting."""
    inp = Input((3, 1, 8, 8))
    model = numcnn.Model(inp, TimeDistributed(numcnn.layers.WeightedPool2D(3))(inp))
    text = _saved_config(tmp_path, model)
    _file_with_config(tmp_path / "big.npz",
                      text.replace('"pool_size": [3, 3]', '"pool_size": [200000, 200000]'))
    with pytest.raises(numcnn.io.ModelFileError, match=r"\(wrapped layer\): building the "
                                                        r"model would allocate at least"):
        numcnn.load_model(tmp_path / "big.npz")
    doc = json.loads(text)
    entry = next(e for e in doc["model"]["config"]["layers"]
                 if e["class_name"] == "TimeDistributed")
    spec = {"class_name": "Dense", "config": {"units": 2}}
    for _ in range(40):
        spec = {"class_name": "TimeDistributed", "config": {"layer": spec}}
    entry["config"] = spec["config"]
    _file_with_config(tmp_path / "deep.npz", json.dumps(doc))
    with pytest.raises(numcnn.io.ModelFileError, match="wrapped more than 32 deep"):
        numcnn.load_model(tmp_path / "deep.npz")


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="data-parallel training forks worker processes (Linux)")
def test_data_parallel_training_equals_one_process():
    """TimeDistributed(Conv2D) → LSTM, two processes: the same weights as one (up to the
    rounding of the split sums); the wrapper's per_sample is the wrapped layer's."""
    rng = np.random.default_rng(8)
    x, y = rng.standard_normal((64, 3, 1, 6, 6)), rng.integers(0, 3, 64)
    weights = []
    for processes in (1, 2):  # distribute="local:K"
        inp = Input((None, 1, 6, 6), dtype="float64")
        h = TimeDistributed(Flatten())(TimeDistributed(Conv2D(2, 3))(inp))
        model = numcnn.Model(inp, Dense(3)(numcnn.layers.LSTM(4)(h)), seed=0)
        model.compile(optimizer=numcnn.optimizers.SGD(lr=0.1, clipnorm=0.5),
                      loss="softmax_cross_entropy")
        model.fit(x, y, batch_size=32, epochs=2, verbose=0, seed=0,
                  distribute=f"local:{processes}")
        weights.append(model.get_weights())
    for k, v in weights[0].items():
        np.testing.assert_allclose(weights[1][k], v, rtol=1e-10, atol=1e-13, err_msg=k)
