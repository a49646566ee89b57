"""ReLU fused into the layer before it (``fuse_relu_into_producer``): a Conv2D, BatchNorm or
Add whose output only a ReLU reads rectifies its own output and applies the ReLU's
derivative in its backward pass, the ReLU handing both on. Checked against PyTorch twins
written here from stock ``torch.nn.functional`` — outputs, the input gradient and every
parameter gradient, float64 and float32, both kernel paths, training and inference — and
against the same model with the fusions switched off; the inspection API still reports
each layer's own output."""

from __future__ import annotations

import numpy as np
import pytest

import numcnn
from numcnn.functional import Workspace
from numcnn.layers import (
    Add,
    BatchNorm2D,
    Conv2D,
    Dense,
    Flatten,
    GlobalAvgPool2D,
    Input,
    MaxPool2D,
    ReLU,
)

torch = pytest.importorskip("torch")
F = torch.nn.functional
torch.set_num_threads(1)


def block(dtype="float64", seed=0):
    """conv → BN → ReLU → conv → BN, + the block input (a 1×1 conv), → ReLU → max pool
    → conv → ReLU → global pool → dense: every producer kind, and one ReLU that also
    feeds a max pooling (the producer then only rectifies)."""
    x = Input((3, 7, 6), dtype=dtype)
    h = ReLU(name="r1")(BatchNorm2D(name="bn1")(Conv2D(4, 3, padding=1, name="c1")(x)))
    h = BatchNorm2D(name="bn2")(Conv2D(4, 3, padding=1, use_bias=False, name="c2")(h))
    s = Conv2D(4, 1, name="proj")(x)
    y = MaxPool2D(2, name="pool")(ReLU(name="r2")(Add(name="add")([h, s])))
    y = ReLU(name="r3")(Conv2D(5, 3, padding=1, name="c3")(y))
    out = Dense(3, name="out")(Flatten()(GlobalAvgPool2D()(y)))
    return numcnn.Model(x, out, seed=seed)


def torch_block(xt, p, training, bn):
    """The same network; ``bn`` holds the running statistics (updated in training)."""
    def norm(h, name):
        rm, rv = bn[name]
        return F.batch_norm(h, rm, rv, p[f"{name}/gamma"], p[f"{name}/beta"], training, 0.1,
                            1e-5)

    h = F.relu(norm(F.conv2d(xt, p["c1/W"], p["c1/b"], padding=1), "bn1"))
    h = norm(F.conv2d(h, p["c2/W"], None, padding=1), "bn2")
    y = F.max_pool2d(F.relu(h + F.conv2d(xt, p["proj/W"], p["proj/b"])), 2)
    y = F.relu(F.conv2d(y, p["c3/W"], p["c3/b"], padding=1))
    return y.mean(dim=(2, 3)) @ p["out/W"] + p["out/b"]


def _twin(model, dtype):
    tt = torch.float64 if dtype == "float64" else torch.float32
    p = {q: torch.tensor(lay.params[k], dtype=tt, requires_grad=True)
         for q, lay, k in model.named_params()}
    bn = {n: (torch.tensor(model.get_layer(n).buffers["running_mean"], dtype=tt),
              torch.tensor(model.get_layer(n).buffers["running_var"], dtype=tt))
          for n in ("bn1", "bn2")}
    return p, bn


def _in_chwn(x):
    out = Workspace().fresh_ordered(x.shape, x.dtype, (1, 2, 3, 0))
    out[...] = x
    return out


def test_the_pass_marks_every_producer_kind():
    model = block()
    assert model.fusions == [("r2", "pool"), ("bn1", "r1"), ("add", "r2"), ("c3", "r3")]
    marks = {model.layer_name(st.layer): m for st, m in zip(model.graph.steps, model._marks)}
    assert marks["bn1"] == "relu_after" and marks["r1"] == "relu_fused"
    assert marks["add"] == "relu_fwd" and marks["r2"] == "relu_fused"  # the pool masks
    assert marks["pool"] == "relu_in"
    assert marks["c3"] == "relu_after" and marks["r3"] == "relu_fused"
    assert marks["c1"] is None and marks["bn2"] is None  # read by a BN / an Add, not a ReLU


@pytest.mark.parametrize("kernels", ["fast", "reference"])
@pytest.mark.parametrize("chwn", [False, True], ids=["nchw", "chwn"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fused_block_trains_like_torch(dtype, chwn, kernels):
    rng = np.random.default_rng(1)
    model = block(dtype)
    model.need_input_grad = True
    p, bn = _twin(model, dtype)  # before the running statistics move
    x = rng.standard_normal((4, 3, 7, 6)).astype(dtype)
    with numcnn.use_kernels(kernels):
        y = model.forward(_in_chwn(x) if chwn else x, training=True)
        dy = rng.standard_normal(y.shape).astype(dtype)
        dx = model.backward(dy)
    tt = p["c1/W"].dtype
    xt = torch.tensor(x, dtype=tt, requires_grad=True)
    yt = torch_block(xt, p, True, bn)
    yt.backward(torch.tensor(dy, dtype=tt))
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == "float64" else dict(rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(y, yt.detach().numpy(), **tol)
    np.testing.assert_allclose(dx, xt.grad.numpy(), **tol)
    for q, lay, k in model.named_params():
        np.testing.assert_allclose(lay.grads[k], p[q].grad.numpy(), err_msg=q, **tol)
    for n in ("bn1", "bn2"):  # the running statistics moved as PyTorch's did
        np.testing.assert_allclose(model.get_layer(n).buffers["running_var"],
                                   bn[n][1].numpy(), **tol)


@pytest.mark.parametrize("kernels", ["fast", "reference"])
def test_fused_block_infers_like_torch(kernels):
    rng = np.random.default_rng(2)
    model = block()
    for n in ("bn1", "bn2"):  # running statistics that are not the initial ones
        model.get_layer(n).buffers["running_mean"][...] = rng.standard_normal(4)
        model.get_layer(n).buffers["running_var"][...] = rng.random(4) + 0.5
    x = rng.standard_normal((5, 3, 7, 6))
    with numcnn.use_kernels(kernels):
        y = model.predict(x, batch_size=5)
    p, bn = _twin(model, "float64")
    with torch.no_grad():
        yt = torch_block(torch.tensor(x), p, False, bn)
    np.testing.assert_allclose(y, yt.numpy(), rtol=1e-10, atol=1e-12)


def test_fusion_off_gives_the_same_numbers():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 3, 7, 6))
    results = []
    for fuse in (True, False):
        model = block()
        model.set_fusion(fuse)
        model.need_input_grad = True
        y = model.forward(x, training=True)
        dx = model.backward(np.ones_like(y))
        results.append((y, dx, {q: lay.grads[k].copy() for q, lay, k in model.named_params()}))
    (y1, dx1, g1), (y2, dx2, g2) = results
    np.testing.assert_allclose(y1, y2, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(dx1, dx2, rtol=1e-13, atol=1e-14)
    for q in g1:
        np.testing.assert_allclose(g1[q], g2[q], rtol=1e-13, atol=1e-14, err_msg=q)


def test_intermediates_report_each_layers_own_output():
    """The fused producer's slot holds rectified values; asking for it runs unfused."""
    rng = np.random.default_rng(4)
    model = block()
    x = rng.standard_normal((2, 3, 7, 6))
    got = model.intermediates(x, ["bn1", "r1", "add", "c3"])
    p, bn = _twin(model, "float64")
    with torch.no_grad():
        xt = torch.tensor(x)
        c1 = F.conv2d(xt, p["c1/W"], p["c1/b"], padding=1)
        bn1 = F.batch_norm(c1, *bn["bn1"], p["bn1/gamma"], p["bn1/beta"], False)
    np.testing.assert_allclose(got["bn1"], bn1.numpy(), rtol=1e-12, atol=1e-12)
    assert (got["bn1"] < 0).any()  # not rectified
    np.testing.assert_allclose(got["r1"], np.maximum(got["bn1"], 0), rtol=0, atol=0)
    assert (got["add"] < 0).any() and (got["c3"] < 0).any()
    y = model.predict(x)  # and the fused run after it still gives the same output
    with numcnn.use_kernels("reference"):
        np.testing.assert_allclose(y, model.predict(x), rtol=1e-12, atol=1e-12)


def test_predict_folds_batchnorm_into_the_convolution(monkeypatch):
    """Inference without a tape: the BatchNorm after a convolution it alone reads is folded
    into the convolution's kernels and bias (no BatchNorm kernel runs); with a tape
    (``forward``, which a backward pass may follow) it is not."""
    import numcnn.layers.norm as D

    rng = np.random.default_rng(5)
    model = block()
    for n in ("bn1", "bn2"):
        model.get_layer(n).buffers["running_mean"][...] = rng.standard_normal(4)
        model.get_layer(n).buffers["running_var"][...] = rng.random(4) + 0.5
    marks = {model.layer_name(st.layer): m for st, m in zip(model.graph.steps,
                                                             model._infer_marks)}
    assert marks["c1"][:3:2] == ("bn_fold", "forward") and marks["bn1"] == "bn_folded"
    assert marks["c2"] == ("bn_fold", model.get_layer("bn2"), None)
    calls = []
    bn = D.batch_norm_forward
    monkeypatch.setattr(D, "batch_norm_forward", lambda *a, **k: calls.append(1) or bn(*a, **k))
    x = rng.standard_normal((3, 3, 7, 6))
    y = model.predict(x)
    assert calls == []
    y_tape = model.forward(x)  # records a tape: the BatchNorms run
    assert len(calls) == 2
    np.testing.assert_allclose(y, y_tape, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_folded_grouped_conv_with_bias_infers_like_torch(dtype):
    rng = np.random.default_rng(6)
    x_in = Input((4, 6, 6), dtype=dtype)
    h = BatchNorm2D(name="bn")(Conv2D(6, 3, padding=1, groups=2, name="c")(x_in))
    model = numcnn.Model(x_in, ReLU()(h), seed=0)
    bn = model.get_layer("bn")
    bn.params["gamma"][...] = rng.standard_normal(6)
    bn.params["beta"][...] = rng.standard_normal(6)
    bn.buffers["running_mean"][...] = rng.standard_normal(6)
    bn.buffers["running_var"][...] = rng.random(6) + 0.5
    assert model._infer_marks[0][0] == "bn_fold"
    x = rng.standard_normal((5, 4, 6, 6)).astype(dtype)
    y = model.predict(x)
    c = model.get_layer("c")
    xt = torch.tensor(x, dtype=torch.float64)
    with torch.no_grad():
        z = F.conv2d(xt, torch.tensor(c.params["W"], dtype=torch.float64),
                     torch.tensor(c.params["b"], dtype=torch.float64), padding=1, groups=2)
        yt = F.relu(F.batch_norm(z, *(torch.tensor(bn.buffers[k], dtype=torch.float64)
                                      for k in ("running_mean", "running_var")),
                                 torch.tensor(bn.params["gamma"], dtype=torch.float64),
                                 torch.tensor(bn.params["beta"], dtype=torch.float64), False))
    # float32: a few roundings of the folded kernels and of the sums of 18 products
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == "float64" else dict(rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y, yt.numpy(), **tol)
