"""Graph models against PyTorch twins written here from stock ``torch.nn.functional``.

float64 throughout, outputs and every gradient: an Inception-style block where one ReLU
output feeds a max-pooling branch and convolution branches that are concatenated; a
residual block that adds into an earlier activation; a layer called twice (shared weights);
a two-output model trained with a loss per output and ``loss_weights``; nested models.
"""

from __future__ import annotations

import numpy as np
import pytest

import numcnn
from numcnn import optimizers
from numcnn.layers import (
    Add,
    Average,
    Concatenate,
    Conv2D,
    Dense,
    Flatten,
    GlobalAvgPool2D,
    Input,
    MaxPool2D,
    Multiply,
    ReLU,
    Subtract,
    Tanh,
)

torch = pytest.importorskip("torch")
F = torch.nn.functional
torch.set_num_threads(1)

TOL = dict(rtol=1e-10, atol=1e-12)


def t(a, grad=False):
    return torch.tensor(np.asarray(a), dtype=torch.float64, requires_grad=grad)


def twin_params(model):
    """``{qualified name: torch leaf tensor}`` holding copies of the model's parameters."""
    return {q: t(lay.params[k], grad=True) for q, lay, k in model.named_params()}


def check_grads(model, tp):
    for q, lay, k in model.named_params():
        np.testing.assert_allclose(lay.grads[k], tp[q].grad.numpy(), err_msg=q, **TOL)


def run_both(model, torch_fn, x, seed=1):
    """Forward both with training=True, back-propagate the same random ``dy``; compare the
    outputs, the input gradient and every parameter gradient."""
    rng = np.random.default_rng(seed)
    model.need_input_grad = True
    y = model.forward(x, training=True)
    ys = y if isinstance(y, list) else [y]
    dys = [rng.standard_normal(a.shape) for a in ys]
    dx = model.backward(dys if isinstance(y, list) else dys[0])
    tp = twin_params(model)
    xt = t(x, grad=True)
    out = torch_fn(xt, tp)
    outs = out if isinstance(out, (list, tuple)) else [out]
    torch.autograd.backward(list(outs), [t(d) for d in dys])
    for a, b in zip(ys, outs):
        np.testing.assert_allclose(a, b.detach().numpy(), **TOL)
    np.testing.assert_allclose(dx, xt.grad.numpy(), **TOL)
    check_grads(model, tp)
    return model


# -------------------------------------------------------------------------- Inception


def inception(seed=0):
    x = Input((3, 8, 8), dtype="float64")
    r = ReLU(name="r")(Conv2D(4, 3, padding=1, name="stem")(x))
    a = Conv2D(2, 1, name="pool_proj")(MaxPool2D(3, stride=1, padding=1, name="pool")(r))
    b = Conv2D(3, 1, name="b1x1")(r)
    c = Conv2D(2, 3, padding=1, name="b3x3")(ReLU()(Conv2D(2, 1, name="b3x3_reduce")(r)))
    cat = Concatenate(axis=1, name="cat")([b, c, a])
    return numcnn.Model(x, Dense(5, name="head")(GlobalAvgPool2D()(cat)), seed=seed)


def inception_torch(x, p):
    r = F.relu(F.conv2d(x, p["stem/W"], p["stem/b"], padding=1))
    a = F.conv2d(F.max_pool2d(r, 3, 1, 1), p["pool_proj/W"], p["pool_proj/b"])
    b = F.conv2d(r, p["b1x1/W"], p["b1x1/b"])
    c = F.conv2d(F.relu(F.conv2d(r, p["b3x3_reduce/W"], p["b3x3_reduce/b"])), p["b3x3/W"],
                 p["b3x3/b"], padding=1)
    cat = torch.cat([b, c, a], 1)
    return cat.mean(dim=(2, 3)) @ p["head/W"] + p["head/b"]


def test_inception_block_with_a_relu_feeding_pool_and_conv_branches():
    model = inception()
    # the ReLU output r has four readers: not fused with the pooling; each ReLU is its
    # convolution's only reader: the convolution rectifies its output
    assert model.fusions == [("stem", "r"), ("b3x3_reduce", "relu")]
    x = np.random.default_rng(0).standard_normal((4, 3, 8, 8))
    run_both(model, inception_torch, x)
    text = model.summary(print_fn=lambda s: None)
    assert "Connected to" in text and "b1x1, b3x3, pool_proj" in text


# --------------------------------------------------------------------------- residual


def residual(seed=0):
    x = Input((2, 6, 6), dtype="float64")
    h = ReLU(name="h")(Conv2D(3, 3, padding=1, name="c0")(x))
    r = Conv2D(3, 3, padding=1, name="c2")(ReLU()(Conv2D(3, 3, padding=1, name="c1")(h)))
    y = ReLU()(Add(name="skip")([h, r]))  # adds into the earlier activation h
    return numcnn.Model(x, Dense(4, name="out")(Flatten()(MaxPool2D(2)(y))), seed=seed)


def residual_torch(x, p):
    h = F.relu(F.conv2d(x, p["c0/W"], p["c0/b"], padding=1))
    r = F.conv2d(F.relu(F.conv2d(h, p["c1/W"], p["c1/b"], padding=1)), p["c2/W"], p["c2/b"],
                 padding=1)
    y = F.max_pool2d(F.relu(h + r), 2)
    return y.flatten(1) @ p["out/W"] + p["out/b"]


def test_residual_block_adds_into_an_earlier_activation():
    model = residual()
    # the last ReLU feeds only the pooling: fused; h has two readers: not fused with a
    # pooling, but c0 alone feeds h (and c1 its ReLU): they rectify their outputs; the Add
    # alone feeds the last ReLU: it rectifies its output (the pooling masks the gradient)
    assert model.fusions == [("relu_1", "maxpool2d"), ("c0", "h"), ("c1", "relu"),
                             ("skip", "relu_1")]
    assert [m for m in model._marks if m] == ["relu_after", "relu_fused", "relu_after",
                                              "relu_fused", "relu_fwd", "relu_fused",
                                              "relu_in"]
    x = np.random.default_rng(1).standard_normal((3, 2, 6, 6))
    run_both(model, residual_torch, x)


def test_residual_block_on_the_reference_path_equals_the_fast_path():
    model = residual()
    x = np.random.default_rng(2).standard_normal((3, 2, 6, 6))
    with numcnn.use_kernels("reference"):
        run_both(model, residual_torch, x)


# ------------------------------------------------------------------ shared layers


def test_a_layer_called_twice_shares_weights_and_adds_both_gradients():
    x = Input((3, 7, 7), dtype="float64")
    conv = Conv2D(3, 3, padding=1, name="shared")
    y = conv(ReLU()(conv(x)))  # the same kernels applied twice in a row
    d = Dense(2, name="d")
    f = Flatten()(y)
    model = numcnn.Model(x, Add()([d(f), d(Tanh()(f))]), seed=3)  # the same Dense twice
    assert len(conv._nodes) == 2 and len(d._nodes) == 2
    assert model.count_params() == (3 * 27 + 3) + (147 * 2 + 2)

    def fn(xt, p):
        y = F.conv2d(F.relu(F.conv2d(xt, p["shared/W"], p["shared/b"], padding=1)),
                     p["shared/W"], p["shared/b"], padding=1)
        f = y.flatten(1)
        return (f @ p["d/W"] + p["d/b"]) + (torch.tanh(f) @ p["d/W"] + p["d/b"])

    run_both(model, fn, np.random.default_rng(3).standard_normal((2, 3, 7, 7)))
    text = model.summary(print_fn=lambda s: None)
    assert "shared[1] (Conv2D)" in text and "d[1] (Dense)" in text and "shared" in text


def test_merge_layers_against_torch():
    x = Input((4,), dtype="float64")
    a, b, c = Dense(3, name="a")(x), Dense(3, name="b")(x), Dense(3, name="c")(x)
    outs = [Multiply()([a, b, c]), Subtract()([a, c]), Average()([a, b, c]),
            Concatenate(axis=-1)([a, b])]
    model = numcnn.Model(x, outs, seed=4)

    def fn(xt, p):
        a, b, c = (xt @ p[f"{n}/W"] + p[f"{n}/b"] for n in "abc")
        return [a * b * c, a - c, (a + b + c) / 3, torch.cat([a, b], 1)]

    run_both(model, fn, np.random.default_rng(4).standard_normal((5, 4)))


def test_reusing_layers_in_a_second_model_keeps_their_weights():
    first = numcnn.Sequential([Dense(4), ReLU(), Dense(2)], input_shape=(3,), seed=0)
    before = first.get_weights()
    x = Input((3,))
    second = numcnn.Model(x, first.layers[2](first.layers[1](first.layers[0](x))), seed=99)
    for q, w in before.items():
        np.testing.assert_array_equal(second.get_weights()[q], w)
    xs = np.random.default_rng(5).standard_normal((4, 3)).astype(np.float32)
    np.testing.assert_array_equal(second.predict(xs), first.predict(xs))
    wrapped = numcnn.Sequential([first, Dense(1)], seed=7)  # a model inside another
    wrapped.build((3,))
    np.testing.assert_array_equal(first.layers[0].params["W"], before["dense/W"])


# ------------------------------------------------------------------ two outputs


def two_heads():
    x = Input((6,), dtype="float64")
    h = Tanh()(Dense(5, name="trunk")(x))
    return numcnn.Model(x, [Dense(3, name="cls")(h), Dense(2, name="reg")(h)], seed=5)


def test_two_outputs_with_a_loss_each_and_loss_weights_follow_torch_sgd():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((24, 6))
    labels = rng.integers(0, 3, 24)
    target = rng.standard_normal((24, 2))
    model = two_heads()
    assert model.output_names == ["cls", "reg"]
    model.compile(optimizer=optimizers.SGD(lr=0.1, momentum=0.9),
                  loss=["softmax_cross_entropy", "mse"], loss_weights=[1.0, 0.3],
                  metrics=["accuracy"])
    p = twin_params(model)
    opt = torch.optim.SGD(p.values(), lr=0.1, momentum=0.9)
    hist = model.fit(x, {"cls": labels, "reg": target}, batch_size=8, epochs=1,
                     shuffle=False, verbose=0)
    totals, parts = [], []
    for s in range(0, 24, 8):
        opt.zero_grad()
        h = torch.tanh(t(x[s:s + 8]) @ p["trunk/W"] + p["trunk/b"])
        ce = F.cross_entropy(h @ p["cls/W"] + p["cls/b"], torch.tensor(labels[s:s + 8]))
        mse = F.mse_loss(h @ p["reg/W"] + p["reg/b"], t(target[s:s + 8]))
        loss = ce + 0.3 * mse
        loss.backward()
        opt.step()
        totals.append(loss.item())
        parts.append((ce.item(), mse.item()))
    for q, w in model.get_weights().items():
        np.testing.assert_allclose(w, p[q].detach().numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=q)
    logs = {k: v[0] for k, v in hist.history.items()}
    assert logs["loss"] == pytest.approx(np.mean(totals), rel=1e-12)
    assert logs["cls_loss"] == pytest.approx(np.mean([a for a, _ in parts]), rel=1e-12)
    assert logs["reg_loss"] == pytest.approx(np.mean([b for _, b in parts]), rel=1e-12)
    assert "cls_accuracy" in logs and "reg_accuracy" in logs
    preds = model.predict(x)
    assert isinstance(preds, list) and [a.shape for a in preds] == [(24, 3), (24, 2)]
    scores = model.evaluate(x, [labels, target])
    assert set(scores) == {"loss", "cls_loss", "reg_loss", "cls_accuracy", "reg_accuracy"}


def test_an_output_without_a_loss_gets_no_gradient():
    rng = np.random.default_rng(7)
    model = two_heads()
    model.compile(optimizer="sgd", loss={"cls": "softmax_cross_entropy"}, metrics=[])
    w_reg = model.get_layer("reg").params["W"].copy()
    model.fit(rng.standard_normal((8, 6)), {"cls": rng.integers(0, 3, 8)}, batch_size=4,
              verbose=0)
    np.testing.assert_array_equal(model.get_layer("reg").params["W"], w_reg)
    assert not np.any(model.get_layer("reg").grads["W"])  # zeroed, not stale


# ------------------------------------------------------------------ nested models


def test_nested_sequential_in_float64_keeps_float64_everywhere():
    inner = numcnn.Sequential([Conv2D(2, 3), ReLU(), numcnn.Sequential([Conv2D(2, 1)])])
    model = numcnn.Sequential([inner, Flatten(), Dense(3)], input_shape=(1, 6, 6),
                              dtype="float64", seed=0)
    for q, lay, k in model.named_params():
        assert lay.params[k].dtype == np.float64, q
    assert [q for q, _, _ in model.named_params()] == [
        "sequential/conv2d/W", "sequential/conv2d/b", "sequential/sequential/conv2d/W",
        "sequential/sequential/conv2d/b", "dense/W", "dense/b"]
    x = np.random.default_rng(8).standard_normal((2, 1, 6, 6))
    out = model.predict(x)
    assert out.dtype == np.float64

    def fn(xt, p):
        h = F.relu(F.conv2d(xt, p["sequential/conv2d/W"], p["sequential/conv2d/b"]))
        h = F.conv2d(h, p["sequential/sequential/conv2d/W"], p["sequential/sequential/conv2d/b"])
        return h.flatten(1) @ p["dense/W"] + p["dense/b"]

    run_both(model, fn, x)
    assert model.get_layer("sequential/sequential/conv2d") is inner.layers[2].layers[0]


def test_a_model_called_twice_inside_a_graph():
    enc = numcnn.Sequential([Dense(3, name="e")], input_shape=(4,), dtype="float64", seed=1)
    a, b = Input((4,), dtype="float64", name="a"), Input((4,), dtype="float64", name="b")
    model = numcnn.Model([a, b], Add()([enc(a), enc(b)]))
    rng = np.random.default_rng(9)
    xa, xb = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    y = model.forward([xa, xb], training=True)
    dy = rng.standard_normal(y.shape)
    model.backward(dy)
    W = t(enc.layers[0].params["W"], grad=True)
    bb = t(enc.layers[0].params["b"], grad=True)
    yt = (t(xa) @ W + bb) + (t(xb) @ W + bb)
    yt.backward(t(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), **TOL)
    np.testing.assert_allclose(enc.layers[0].grads["W"], W.grad.numpy(), **TOL)
    np.testing.assert_allclose(enc.layers[0].grads["b"], bb.grad.numpy(), **TOL)
    np.testing.assert_allclose(model.predict({"a": xa, "b": xb}), y, **TOL)


# ------------------------------------------------------------------ building errors


def test_clear_errors_when_building_graphs():
    x = Input((3, 8, 8))
    with pytest.raises(ValueError, match="disconnected"):
        numcnn.Model(x, Conv2D(2, 3)(Input((3, 8, 8))))
    with pytest.raises(ValueError, match="same shape"):
        Add()([Conv2D(2, 3)(x), Conv2D(2, 1)(x)])
    with pytest.raises(ValueError, match="except on axis"):
        Concatenate()([Conv2D(2, 3)(x), Conv2D(2, 1)(x)])
    with pytest.raises(TypeError, match="dtype"):
        Conv2D(2, 3, dtype="float64")(x)
    dense = Dense(3)
    dense(Input((5,)))
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 5\)"):
        dense(Input((6,)))
    a = Dense(2, name="same")
    with pytest.raises(ValueError, match="unique"):
        y = Input((2,))
        numcnn.Model(y, Dense(2, name="same")(a(y)))
    with pytest.raises(TypeError, match="holds no data"):
        np.asarray(x)
    with pytest.raises(ValueError, match="no layer named"):
        numcnn.Model(x, Flatten()(x)).get_layer("nope")


def test_free_dimensions_and_summary_before_data():
    x = Input((1, None, None))
    h = MaxPool2D(2)(ReLU()(Conv2D(4, 3, padding="same")(x)))
    model = numcnn.Model(x, GlobalAvgPool2D()(h), seed=0)
    assert model.output_shape() == (4,)
    text = model.summary(print_fn=lambda s: None)
    assert "(None, 4, None, None)" in text
    for size in (8, 13):
        out = model.predict(np.ones((2, 1, size, size), np.float32))
        assert out.shape == (2, 4)


def test_model_config_round_trip_and_save_load(tmp_path):
    model = inception()
    clone = numcnn.Model.from_config(model.get_config())
    assert [q for q, _, _ in clone.named_params()] == [q for q, _, _ in model.named_params()]
    clone.set_weights(model.get_weights())
    x = np.random.default_rng(10).standard_normal((2, 3, 8, 8))
    np.testing.assert_array_equal(clone.predict(x), model.predict(x))
    numcnn.save_model(model, tmp_path / "inception.npz")
    loaded = numcnn.load_model(tmp_path / "inception.npz")
    assert type(loaded) is numcnn.Model
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_a_shared_layer_whose_later_call_reads_a_later_tensor_round_trips(tmp_path):
    """``h = c(x); y = c(relu(h))``: the config lists c before relu, yet c's second call
    reads relu's output; from_config and load_model run calls when their inputs exist.
    Checked against the same network written with torch (shared weight matrix)."""
    x = Input((4,), dtype="float64")
    c = Dense(4, name="c")
    h = c(x)
    y = c(ReLU(name="r")(h))
    model = numcnn.Model(x, y, seed=3)
    data = np.random.default_rng(4).standard_normal((5, 4))
    W, b = (model.get_layer("c").params[k] for k in ("W", "b"))
    direct = F.linear(torch.relu(F.linear(t(data), t(W).T, t(b))), t(W).T, t(b))  # W: in×out
    np.testing.assert_allclose(model.predict(data), direct.numpy(), **TOL)
    config = model.get_config()
    names = [spec["name"] for spec in config["layers"]]
    assert names.index("c") < names.index("r")  # the order that used to fail
    clone = numcnn.Model.from_config(config)
    clone.set_weights(model.get_weights())
    np.testing.assert_array_equal(clone.predict(data), model.predict(data))
    numcnn.save_model(model, tmp_path / "shared.npz")
    np.testing.assert_array_equal(numcnn.load_model(tmp_path / "shared.npz").predict(data),
                                  model.predict(data))


def test_layers_listed_in_any_order_load_and_a_missing_tensor_is_named(tmp_path):
    model = inception()
    config = model.get_config()
    x = np.random.default_rng(11).standard_normal((2, 3, 8, 8))
    config["layers"] = config["layers"][::-1]  # the inputs last
    clone = numcnn.Model.from_config(config)
    clone.set_weights(model.get_weights())
    np.testing.assert_array_equal(clone.predict(x), model.predict(x))
    config["layers"] = [s for s in config["layers"] if s["class_name"] != "ReLU"]
    with pytest.raises(ValueError, match="reads a tensor that no layer makes"):
        numcnn.Model.from_config(config)


def test_a_shared_layer_giving_two_outputs_has_two_names_and_two_losses():
    """The same Dense called on two inputs, both calls outputs: the names were both 'head',
    so the second output's loss overwrote the first's in the history. Each per-output loss
    must equal the mean squared error computed here from the initial weights (one batch:
    the logged loss is the forward pass before the update)."""
    a, b = Input((3,)), Input((3,))
    head = Dense(2, name="head")
    model = numcnn.Model([a, b], [head(a), head(b)], seed=3)
    assert model.output_names == ["head", "head[1]"]
    model.compile(optimizer=optimizers.SGD(lr=0.1), loss="mse", metrics=[])
    rng = np.random.default_rng(0)
    xa, xb = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    ya, yb = rng.standard_normal((4, 2)), rng.standard_normal((4, 2))
    W, bias = (np.array(head.params[k], np.float64) for k in ("W", "b"))
    want = [np.mean((xa @ W + bias - ya) ** 2), np.mean((xb @ W + bias - yb) ** 2)]
    hist = model.fit([xa.astype(np.float32), xb.astype(np.float32)],
                     [ya.astype(np.float32), yb.astype(np.float32)], batch_size=4, epochs=1,
                     shuffle=False, verbose=0)
    assert hist.history["head_loss"][0] == pytest.approx(want[0], rel=1e-5)
    assert hist.history["head[1]_loss"][0] == pytest.approx(want[1], rel=1e-5)
    assert hist.history["loss"][0] == pytest.approx(sum(want), rel=1e-5)
