"""Saliency equals the numerical gradient of the class score (float64) and PyTorch's input
gradient; the deconvnet projection equals a naive unpool-rectify-transposed-convolution
written with the loops of tests/references.py, and PyTorch with its ReLUs' backward
replaced by a rectification (Zeiler & Fergus 2014)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from viz_pixels import images_by_label  # noqa: E402

import numcnn  # noqa: E402
from numcnn.layers import (  # noqa: E402
    Add,
    BatchNorm2D,
    Concatenate,
    Conv2D,
    Dense,
    Flatten,
    Input,
    MaxPool2D,
    ReLU,
)
from numcnn.viz import deconv_projection, plot_deconv, plot_saliency, saliency  # noqa: E402
from references import (  # noqa: E402
    check_grad,
    conv2d_backward_ref,
    conv2d_ref,
    max_pool2d_ref,
    tie_free,
)


def with_stats(model, seed=1):
    """Give BatchNorm layers non-trivial running statistics and affine parameters."""
    rng = np.random.default_rng(seed)
    for layer in model.leaf_layers():
        for store in (layer.buffers, layer.params if isinstance(layer, BatchNorm2D) else {}):
            for v in store.values():
                v[...] = rng.uniform(0.5, 1.5, v.shape)
    return model


def sequential():
    return with_stats(numcnn.Sequential(
        [Conv2D(3, 3, padding=1), BatchNorm2D(), ReLU(), MaxPool2D(2), Flatten(), Dense(4)],
        input_shape=(2, 6, 6), seed=0, dtype="float64"))


def graph():
    x = Input((1, 6, 6), dtype="float64")
    a = Conv2D(2, 3, padding=1, name="a")(x)
    b = Conv2D(2, 3, padding=1, name="b")(x)
    s = ReLU(name="r")(Add(name="sum")([a, b]))
    inner = numcnn.Sequential([Conv2D(2, 3, padding=1, name="ic"), ReLU()], name="inner",
                              input_shape=(2, 6, 6), dtype="float64")
    cat = Concatenate(name="cat")([inner(s), s])
    y = Dense(3, name="head")(Flatten()(MaxPool2D(2, name="pool")(cat)))
    return numcnn.Model(x, y, seed=0)


@pytest.mark.parametrize("make", [sequential, graph], ids=["sequential", "graph"])
@pytest.mark.parametrize("target", [None, 1])
def test_saliency_is_the_numerical_gradient_of_the_score(make, target):
    model = make()
    rng = np.random.default_rng(4)
    x = tie_free(model.input_shape, rng)
    out = model.predict(x[None])[0]
    c = int(np.argmax(out)) if target is None else target
    g = saliency(model, x, target)
    assert g.shape == x.shape and g.dtype == np.float64
    check_grad(lambda: model.predict(x[None])[0, c], x, g, rtol=1e-6, atol=1e-8)


def test_saliency_of_lenet1998_is_the_gradient_of_minus_the_penalty():
    model = numcnn.models.get("lenet5-1998", seed=0, dtype="float64")
    x = np.random.default_rng(5).uniform(0, 255, (1, 28, 28))
    out = model.predict(x[None])[0]
    c = int(np.argmin(out))  # the smallest penalty is the predicted class
    g = saliency(model, x)
    # penalties near 84 (round-off 1e-14) against gradients near 1e-6, grey levels in
    # [0, 255]: a step of 0.1 grey level keeps round-off and truncation below 1e-6 relative
    check_grad(lambda: -model.predict(x[None])[0, c], x, g, eps=0.1, rtol=1e-6, atol=1e-13,
               max_elementwise=0, n_dirs=4)


def test_a_batch_takes_one_target_per_sample():
    model = sequential()
    xs = np.random.default_rng(6).standard_normal((3, 2, 6, 6))
    g = saliency(model, xs, target=np.array([0, 3, 2]))
    for n, c in enumerate([0, 3, 2]):
        np.testing.assert_allclose(g[n], saliency(model, xs[n], c), rtol=1e-12)


def test_saliency_equals_pytorch_input_gradient():
    torch = pytest.importorskip("torch")
    model = numcnn.models.lenet5(seed=0, dtype="float64")
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 6, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(6, 16, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
        torch.nn.Linear(400, 120), torch.nn.ReLU(), torch.nn.Linear(120, 84), torch.nn.ReLU(),
        torch.nn.Linear(84, 10)).double()
    ours = [lay for lay in model.layers if lay.params]
    theirs = [m for m in net if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        for a, t in zip(ours, theirs):
            W = a.params["W"]
            t.weight.copy_(torch.tensor(W if W.ndim == 4 else W.T))  # Dense W is (in, units)
            t.bias.copy_(torch.tensor(a.params["b"]))
    x = np.random.default_rng(7).random((1, 28, 28))
    xt = torch.tensor(x[None], requires_grad=True)
    logits = net(xt)
    c = int(logits.argmax())
    logits[0, c].backward()
    np.testing.assert_allclose(saliency(model, x), xt.grad.numpy()[0], rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------- the deconvnet
def small_convnet():
    return numcnn.Sequential(
        [Conv2D(3, 3, padding=1, name="c1"), ReLU(name="r1"), MaxPool2D(2, name="p1"),
         Conv2D(4, 2, name="c2"), ReLU(name="r2")],
        input_shape=(2, 8, 8), seed=0, dtype="float64")


def naive_projection(model, x, layer, channel, keep, rule):
    """Forward with the naive loops, keep one activation (or map), then down: at a ReLU
    rectify (deconvnet), mask and rectify (guided) or mask (gradient); unpool through the
    recorded switches; the transposed convolution with the same kernels."""
    W1, b1 = model.get_layer("c1").params["W"], model.get_layer("c1").params["b"]
    W2, b2 = model.get_layer("c2").params["W"], model.get_layer("c2").params["b"]
    y1 = conv2d_ref(x[None], W1, b1, pads=(1, 1, 1, 1))
    a1 = np.maximum(y1, 0)
    p1, unpool = max_pool2d_ref(a1, (2, 2), (2, 2))
    y2 = conv2d_ref(p1, W2, b2)
    a2 = np.maximum(y2, 0)
    acts = {"c1": y1, "r1": a1, "p1": p1, "c2": y2, "r2": a2}
    a = acts[layer]
    seed = np.zeros_like(a)
    if keep == "map":
        seed[0, channel] = a[0, channel]
    else:
        i, j = np.unravel_index(np.argmax(a[0, channel]), a.shape[2:])
        seed[0, channel, i, j] = a[0, channel, i, j]

    def relu_back(s, pre):
        if rule == "deconvnet":
            return np.maximum(s, 0)
        if rule == "guided":
            return np.maximum(s * (pre > 0), 0)
        return s * (pre > 0)

    order = ["r2", "c2", "p1", "r1", "c1"]
    s = seed
    for name in order[order.index(layer):]:
        if name == "r2":
            s = relu_back(s, y2)
        elif name == "c2":
            s = conv2d_backward_ref(p1, W2, s)[0]
        elif name == "p1":
            s = unpool(s)
        elif name == "r1":
            s = relu_back(s, y1)
        else:
            s = conv2d_backward_ref(x[None], W1, s, pads=(1, 1, 1, 1))[0]
    return s[0]


@pytest.mark.parametrize("rule", ["deconvnet", "guided", "gradient"])
@pytest.mark.parametrize("layer, keep", [("r2", "max"), ("r2", "map"), ("p1", "max"),
                                         ("c2", "map"), ("r1", "max")])
def test_projection_equals_the_naive_deconvnet(rule, layer, keep):
    model = small_convnet()
    x = tie_free((2, 8, 8), np.random.default_rng(8))
    for channel in range(3):
        got = deconv_projection(model, x, layer, channel, keep=keep, rule=rule)
        want = naive_projection(model, x, layer, channel, keep, rule)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    if rule == "deconvnet" and layer == "r2":  # rectifying is not masking: the views differ
        grad = deconv_projection(model, x, layer, 0, keep=keep, rule="gradient")
        assert not np.allclose(got, grad)


def test_default_channel_is_the_strongest_map():
    model = small_convnet()
    x = tie_free((2, 8, 8), np.random.default_rng(9))
    a = model.intermediates(x[None], ["r2"])["r2"][0]
    strongest = int(np.argmax(a.reshape(4, -1).max(axis=1)))
    np.testing.assert_array_equal(deconv_projection(model, x, "r2"),
                                  deconv_projection(model, x, "r2", strongest))


def test_gradient_rule_in_a_graph_is_the_numerical_gradient():
    model = graph()
    x = tie_free((1, 6, 6), np.random.default_rng(10))
    a = model.intermediates(x[None], ["cat"])["cat"][0]
    seed = np.zeros_like(a)
    seed[1] = a[1]  # keep="map" of channel 1 (the inner model's second map)
    got = deconv_projection(model, x, "cat", 1, keep="map", rule="gradient")
    check_grad(lambda: float((model.intermediates(x[None], ["cat"])["cat"][0] * seed).sum()),
               x, got, rtol=1e-6, atol=1e-9)


def test_deconvnet_equals_pytorch_with_rectifying_relus():
    torch = pytest.importorskip("torch")
    model = small_convnet()
    net = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.MaxPool2d(2), torch.nn.Conv2d(3, 4, 2),
                              torch.nn.ReLU()).double()
    with torch.no_grad():
        for ours, t in zip(("c1", "c2"), (net[0], net[3])):
            t.weight.copy_(torch.tensor(model.get_layer(ours).params["W"]))
            t.bias.copy_(torch.tensor(model.get_layer(ours).params["b"]))
    for m in (net[1], net[4]):  # the deconvnet's rectification in place of ReLU's derivative
        m.register_full_backward_hook(lambda mod, gin, gout: (gout[0].clamp(min=0),))
    x = tie_free((2, 8, 8), np.random.default_rng(11))
    xt = torch.tensor(x[None], requires_grad=True)
    a = net(xt)
    k = int(a[0, 2].argmax())
    seed = torch.zeros_like(a)
    seed.view(1, 4, -1)[0, 2, k] = a.view(1, 4, -1)[0, 2, k].detach()
    a.backward(seed)
    np.testing.assert_allclose(deconv_projection(model, x, "r2", 2), xt.grad.numpy()[0],
                               rtol=1e-10, atol=1e-12)


def test_pictures_show_the_computed_arrays():
    model = small_convnet()
    x = tie_free((2, 8, 8), np.random.default_rng(12))
    a = model.intermediates(x[None], ["r2"])["r2"][0].reshape(4, -1).max(axis=1)
    dead = [c for c in range(4) if a[c] <= 0]  # a map with no activation projects to 0
    ims = images_by_label(plot_deconv(model, x, "r2", channels=[0, 1, 2, 3]))
    for c in range(4):
        p = deconv_projection(model, x, "r2", c)
        np.testing.assert_allclose(ims[f"deconv[{c}]"].get_array(), p.sum(axis=0), rtol=1e-12)
        m = np.abs(p.sum(axis=0)).max()
        assert ims[f"deconv[{c}]"].get_clim() == ((-m, m) if c not in dead else (-1, 1))
    strongest = [int(c) for c in np.argsort(-a, kind="stable")[:2]]
    assert sorted(images_by_label(plot_deconv(model, x, "r2", top=2))) == sorted(
        ["input"] + [f"deconv[{c}]" for c in strongest])
    np.testing.assert_array_equal(ims["input"].get_array(), x.mean(axis=0))
    seq = sequential()
    x = tie_free((2, 6, 6), np.random.default_rng(13))
    ims = images_by_label(plot_saliency(seq, x, target=2))
    g = saliency(seq, x, 2)
    np.testing.assert_allclose(ims["saliency"].get_array(), np.abs(g).max(axis=0), rtol=1e-12)
    assert ims["saliency"].get_clim() == (0, np.abs(g).max())
    np.testing.assert_allclose(ims["gradient"].get_array(), g.sum(axis=0), rtol=1e-12)


@pytest.mark.parametrize("kwargs, pattern", [
    ({"layer": "zz"}, r"no layer named 'zz' in .*; its layers: c1, r1, p1, c2, r2"),
    ({"layer": "r2", "channel": 4}, r"channel must be in \[0, 4\)"),
    ({"layer": "r2", "rule": "lrp"}, r"rule must be one of"),
    ({"layer": "r2", "keep": "all"}, r"keep must be 'max' or 'map'"),
])
def test_bad_projection_requests(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        deconv_projection(small_convnet(), np.zeros((2, 8, 8)), **kwargs)


def test_bad_saliency_targets():
    with pytest.raises(ValueError, match=r"target must be class numbers in \[0, 4\)"):
        saliency(sequential(), np.zeros((2, 6, 6)), target=4)
