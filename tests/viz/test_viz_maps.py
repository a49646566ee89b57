"""Feature-map figures: the activations they show equal a naive computation of the layers,
each map is drawn with the documented colour scaling (read back from the canvas pixels),
graph models work, and bad requests get clear errors."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import matplotlib  # noqa: E402
from viz_pixels import drawn_rgb, expected_rgb, images_by_label  # noqa: E402

import numcnn  # noqa: E402
from numcnn.layers import Add, Conv2D, Dense, Flatten, Input, MaxPool2D, ReLU  # noqa: E402
from numcnn.viz import feature_maps, plot_feature_maps  # noqa: E402
from references import conv2d_ref, dense_ref, max_pool2d_ref  # noqa: E402


def tiny(dtype="float64"):
    return numcnn.Sequential(
        [Conv2D(3, 3, padding=1, name="conv"), ReLU(name="relu"), MaxPool2D(2, name="pool"),
         Flatten(name="flat"), Dense(4, name="out")],
        input_shape=(2, 6, 6), seed=0, dtype=dtype)


def reference(model, x):
    """The layers computed by the naive loops of tests/references.py."""
    conv = model.get_layer("conv").params
    y = conv2d_ref(x[None], conv["W"], conv["b"], pads=(1, 1, 1, 1))
    r = np.maximum(y, 0)
    p, _ = max_pool2d_ref(r, (2, 2), (2, 2))
    dense = model.get_layer("out").params
    out = dense_ref(p.reshape(1, -1), dense["W"], dense["b"])
    return {"conv": y[0], "relu": r[0], "pool": p[0], "out": out[0]}


@pytest.fixture
def model_and_input():
    rng = np.random.default_rng(3)
    return tiny(), rng.standard_normal((2, 6, 6))


def test_feature_maps_equal_the_naive_layers(model_and_input):
    model, x = model_and_input
    maps = feature_maps(model, x, "conv,relu,pool,out")
    ref = reference(model, x)
    assert list(maps) == ["conv", "relu", "pool", "out"]
    for name, a in ref.items():
        np.testing.assert_allclose(maps[name], a, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("scale", ["map", "layer", "all"])
def test_each_map_is_drawn_with_the_documented_scaling(model_and_input, scale):
    model, x = model_and_input
    ref = reference(model, x)
    fig = plot_feature_maps(model, x, layers=["conv", "pool", "out"], scale=scale,
                            cmap="viridis", panel_size=1.2)
    ims = images_by_label(fig)
    everything = np.concatenate([ref[n].ravel() for n in ("conv", "pool", "out")])
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())
    cmap = matplotlib.colormaps["viridis"]
    for name in ("conv", "pool"):
        for c in range(3):
            im = ims[f"{name}[{c}]"]
            a = ref[name][c]
            np.testing.assert_allclose(im.get_array(), a, rtol=1e-12, atol=1e-12)
            lo, hi = {"map": (a.min(), a.max()), "layer": (ref[name].min(), ref[name].max()),
                      "all": (everything.min(), everything.max())}[scale]
            np.testing.assert_allclose(im.get_clim(), (lo, hi), rtol=1e-12)
            got = drawn_rgb(fig, im, pixels)
            want = expected_rgb(a, cmap, lo, hi)
            assert np.abs(got - want).max() <= 2, (name, c, np.abs(got - want).max())
    strip = ims["out"]  # a vector output: one strip of 4 cells
    np.testing.assert_allclose(strip.get_array(), ref["out"].reshape(1, 4), rtol=1e-12)
    lo, hi = strip.get_clim()
    if scale == "all":
        np.testing.assert_allclose((lo, hi), (everything.min(), everything.max()))
    else:
        np.testing.assert_allclose((lo, hi), (ref["out"].min(), ref["out"].max()))
    got = drawn_rgb(fig, strip, pixels)
    assert np.abs(got - expected_rgb(ref["out"].reshape(1, 4), cmap, lo, hi)).max() <= 2


def test_the_input_and_its_channels_are_shown(model_and_input):
    model, x = model_and_input
    fig = plot_feature_maps(model, x, layers=["relu"])
    ims = images_by_label(fig)
    for c in range(2):
        np.testing.assert_array_equal(ims[f"input[{c}]"].get_array(), x[c])
    assert ims["input[0]"].get_clim() == (x[0].min(), x[0].max())
    titles = [t.get_text() for sf in fig.subfigs for t in [sf._suptitle] if t is not None]
    assert "input — 2@6×6" in titles and "relu — 3@6×6" in titles


def test_a_constant_map_gets_the_bottom_colour():
    model = numcnn.Sequential([Conv2D(2, 3, padding=1, name="conv")], input_shape=(1, 5, 5),
                              seed=0, dtype="float64")
    model.get_layer("conv").params["W"][1] = 0.0  # map 1 is its bias everywhere
    model.get_layer("conv").params["b"][1] = 0.7
    fig = plot_feature_maps(model, np.ones((1, 5, 5)), cmap="viridis", panel_size=1.5)
    im = images_by_label(fig)["conv[1]"]
    np.testing.assert_array_equal(im.get_array(), np.full((5, 5), 0.7))
    got = drawn_rgb(fig, im)
    bottom = np.round(np.asarray(matplotlib.colormaps["viridis"](0.0))[:3] * 255)
    assert np.abs(got - bottom).max() <= 2


def test_rgb_input_is_drawn_as_colour():
    model = numcnn.Sequential([Conv2D(2, 3, name="conv")], input_shape=(3, 6, 6), seed=0)
    x = np.random.default_rng(0).random((3, 6, 6)).astype(np.float32)
    ims = images_by_label(plot_feature_maps(model, x))
    want = ((x - x.min()) / (x.max() - x.min())).transpose(1, 2, 0)
    np.testing.assert_allclose(ims["input"].get_array(), want, rtol=1e-6)


def test_graph_models_with_branches_and_a_nested_model():
    rng = np.random.default_rng(1)
    block = numcnn.Sequential([Conv2D(2, 3, padding=1, name="inner"), ReLU()],
                              input_shape=(2, 7, 7), name="block", dtype="float64")
    x_in = Input((1, 7, 7), dtype="float64")
    a = Conv2D(2, 3, padding=1, name="a")(x_in)
    b = Conv2D(2, 3, padding=1, name="b")(x_in)
    s = Add(name="sum")([a, b])
    y = block(s)
    model = numcnn.Model(x_in, Dense(3, name="head")(Flatten()(y)), seed=0)
    x = rng.standard_normal((1, 7, 7))
    maps = feature_maps(model, x, ["sum", "block"])
    pa, pb = model.get_layer("a").params, model.get_layer("b").params
    want_sum = (conv2d_ref(x[None], pa["W"], pa["b"], pads=(1, 1, 1, 1))
                + conv2d_ref(x[None], pb["W"], pb["b"], pads=(1, 1, 1, 1)))[0]
    np.testing.assert_allclose(maps["sum"], want_sum, rtol=1e-12, atol=1e-12)
    pi = block.get_layer("inner").params
    want_block = np.maximum(conv2d_ref(want_sum[None], pi["W"], pi["b"], pads=(1, 1, 1, 1)),
                            0)[0]
    np.testing.assert_allclose(maps["block"], want_block, rtol=1e-12, atol=1e-12)
    fig = plot_feature_maps(model, x)  # default: every image-shaped layer
    ims = images_by_label(fig)
    assert {"a[0]", "b[1]", "sum[0]", "block[1]"} <= set(ims)
    np.testing.assert_allclose(ims["block[1]"].get_array(), want_block[1], rtol=1e-12)


def test_max_maps_shows_the_first_ones_and_says_so():
    model = numcnn.Sequential([Conv2D(20, 3, name="wide")], input_shape=(1, 6, 6), seed=0)
    fig = plot_feature_maps(model, np.zeros((1, 6, 6), np.float32), max_maps=5, cols=5)
    ims = images_by_label(fig)
    assert {f"wide[{c}]" for c in range(5)} <= set(ims) and "wide[5]" not in ims
    assert any("first 5 of 20" in sf._suptitle.get_text() for sf in fig.subfigs)


@pytest.mark.parametrize("kwargs, pattern", [
    ({"layers": "conv,nope"}, r"no layer named 'nope' in .*; its layers: conv, relu, pool, "
                              r"flat, out"),
    ({"layers": []}, r"no layer names"),
    ({"scale": "global"}, r"scale must be one of"),
    ({"cols": 0}, r"cols must be a positive int"),
    ({"cmap": "no_such_map"}, r"unknown colour map 'no_such_map'"),
])
def test_bad_requests_are_clear_errors(model_and_input, kwargs, pattern):
    model, x = model_and_input
    with pytest.raises(ValueError, match=pattern):
        plot_feature_maps(model, x, **kwargs)


def test_wrong_input_shape_names_both_shapes(model_and_input):
    model, _ = model_and_input
    with pytest.raises(ValueError, match=r"takes inputs of shape \(2, 6, 6\); received "
                                         r"\(1, 6, 6\)"):
        feature_maps(model, np.zeros((1, 6, 6)))
    with pytest.raises(ValueError, match="NaN"):
        feature_maps(model, np.full((2, 6, 6), np.nan))


def test_lenet1998_f6_is_drawn_as_the_12x7_picture_the_rbf_compares():
    model = numcnn.models.get("lenet5-1998", seed=0, dtype="float64")
    x = np.random.default_rng(2).uniform(0, 255, (1, 28, 28))
    fig = plot_feature_maps(model, x, layers="F6,f_F6,output")
    ims = images_by_label(fig)
    a = model.intermediates(x[None], ["f_F6", "output"])
    np.testing.assert_allclose(ims["f_F6"].get_array(), a["f_F6"][0].reshape(12, 7),
                               rtol=1e-12)
    assert ims["F6"].get_array().shape == (12, 7)
    np.testing.assert_allclose(ims["output"].get_array(), a["output"][0].reshape(1, 10),
                               rtol=1e-12)
    labels = [t.get_text() for t in ims["output"].axes.get_xticklabels()]
    assert labels == [str(k) for k in range(10)]  # ten units, numbered
    assert any("f_F6 — (84) as 12×7" == sf._suptitle.get_text() for sf in fig.subfigs)


def test_explicit_shapes_and_their_errors(model_and_input):
    model, x = model_and_input
    ims = images_by_label(plot_feature_maps(model, x, layers="out", shapes={"out": (2, 2)}))
    np.testing.assert_allclose(ims["out"].get_array(), reference(model, x)["out"].reshape(2, 2))
    with pytest.raises(ValueError, match=r"cannot draw 4 values as \(3, 2\)"):
        plot_feature_maps(model, x, layers="out", shapes={"out": (3, 2)})
