"""Grouped convolution (``Conv2D(groups=G)``): both kernel paths against PyTorch's
``conv2d(groups=G)`` and the naive loop reference, float64 central differences, the layer's
arguments, parameters, configuration, saving and its Gauss–Newton rule."""

from __future__ import annotations

import numpy as np
import pytest

import numcnn
from numcnn.functional import conv2d_backward, conv2d_forward, use_kernels
from numcnn.layers import Conv2D, Flatten
from numcnn.layers.base import Call
from numcnn.layers.gauss_newton import rule_for
from references import (
    assert_float32_close,
    check_grad,
    grouped_conv2d_backward_ref,
    grouped_conv2d_ref,
)

# (N, C, H, W, F, kernel, stride, pads, groups)
CASES = {
    "two-columns": (2, 4, 9, 8, 6, (3, 3), (1, 1), (1, 1, 1, 1), 2),
    "depthwise-s2x1-asym": (2, 3, 8, 9, 3, (3, 2), (2, 1), (1, 0, 2, 1), 3),
    "depthwise-x2-s1x2": (1, 3, 7, 7, 6, (2, 3), (1, 2), (0, 1, 1, 0), 3),
    "g3-one-map-each-s3": (2, 6, 10, 9, 3, (4, 4), (3, 3), (0, 0, 0, 0), 3),
    "g2-whole-kernel": (3, 4, 5, 5, 6, (5, 5), (1, 1), (0, 0, 0, 0), 2),
    "g4-batch1": (1, 4, 6, 5, 4, (3, 3), (1, 1), (0, 0, 0, 0), 4),
}


def _data(case, dtype, seed=0):
    N, C, H, W, F, k, stride, pads, G = CASES[case]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W))
    Wt = rng.standard_normal((F, C // G) + k)
    b = rng.standard_normal(F)
    return x.astype(dtype), Wt.astype(dtype), b.astype(dtype), stride, pads, G


def torch_grouped(x, W, b, stride, pads, groups, dy):
    """PyTorch's forward and autograd backward: ``(y, dx, dW, db)`` in the inputs' dtype."""
    torch = pytest.importorskip("torch")
    tF = torch.nn.functional
    xt, Wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, W, b))
    pt, pb, pl, pr = pads
    y = tF.conv2d(tF.pad(xt, (pl, pr, pt, pb)), Wt, bt, stride=stride, groups=groups)
    y.backward(torch.tensor(dy))
    return tuple(a.detach().numpy() for a in (y, xt.grad, Wt.grad, bt.grad))


def _terms(case):
    N, C, H, W, F, k, stride, pads, G = CASES[case]
    Ho = (H + pads[0] + pads[1] - k[0]) // stride[0] + 1
    Wo = (W + pads[2] + pads[3] - k[1]) // stride[1] + 1
    kk = k[0] * k[1]
    return (C // G * kk + 1, F // G * kk, N * Ho * Wo, N * Ho * Wo)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("path", ["fast", "reference"])
@pytest.mark.parametrize("case", list(CASES))
def test_grouped_conv_matches_torch(case, path, dtype):
    pytest.importorskip("torch")
    x, Wt, b, stride, pads, G = _data(case, dtype)
    with use_kernels(path):
        y, cache = conv2d_forward(x, Wt, b, stride, pads, groups=G)
    assert cache["kernel"] == path and cache["groups"] == G
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
    got = (y, *conv2d_backward(dy, cache))
    ref = torch_grouped(x, Wt, b, stride, pads, G, dy)
    names = ("y", "dx", "dW", "db")
    if dtype == "float64":
        for g, r, name in zip(got, ref, names):
            assert g.dtype == np.float64 and g.shape == r.shape, name
            np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-10, err_msg=name)
        return
    # float32: the allowance is PyTorch's own float32 error against its float64 result
    a64 = [a.astype(np.float64) for a in (x, Wt, b, dy)]
    ref64 = torch_grouped(*a64[:3], stride, pads, G, a64[3])
    scale = torch_grouped(*(np.abs(a) for a in a64[:3]), stride, pads, G, np.abs(a64[3]))
    for i, name in enumerate(names):
        assert_float32_close(got[i], ref[i], ref64[i], scale[i], _terms(case)[i], name)


@pytest.mark.parametrize("path", ["fast", "reference"])
@pytest.mark.parametrize("case", ["two-columns", "depthwise-s2x1-asym", "depthwise-x2-s1x2",
                                  "g3-one-map-each-s3"])
def test_grouped_conv_matches_naive_loops(case, path):
    x, Wt, b, stride, pads, G = _data(case, np.float64, seed=2)
    with use_kernels(path):
        y, cache = conv2d_forward(x, Wt, b, stride, pads, groups=G)
    np.testing.assert_allclose(y, grouped_conv2d_ref(x, Wt, b, stride, pads, G),
                               rtol=1e-10, atol=1e-10)
    dy = np.random.default_rng(3).standard_normal(y.shape)
    for got, ref in zip(conv2d_backward(dy, cache),
                        grouped_conv2d_backward_ref(x, Wt, dy, stride, pads, G)):
        np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-10)


def test_groups_one_is_the_plain_convolution():
    x, Wt, b, stride, pads, _ = _data("two-columns", np.float64)
    Wt = np.random.default_rng(4).standard_normal((6, 4, 3, 3))
    for path in ("fast", "reference"):
        with use_kernels(path):
            y, _ = conv2d_forward(x, Wt, b, stride, pads, groups=1)
        np.testing.assert_allclose(y, grouped_conv2d_ref(x, Wt, b, stride, pads, 1),
                                   rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------------------- the layer


def _torch_module_run(W, b, x, dy, dtype, take_abs=False):
    """``torch.nn.Conv2d(9, 6, (3, 2), stride=(2, 1), padding=1, groups=3)`` holding ``W``
    and ``b`` (as its ``weight`` and ``bias``: the same shapes) on ``x``: ``(y, dx, dW,
    db)``. ``take_abs``: every argument by its absolute value (the sums of |terms|)."""
    torch = pytest.importorskip("torch")
    f = np.abs if take_abs else (lambda a: a)
    net = torch.nn.Conv2d(9, 6, (3, 2), stride=(2, 1), padding=1, groups=3)
    net = net.to(torch.float64 if dtype == "float64" else torch.float32)
    assert tuple(net.weight.shape) == W.shape and tuple(net.bias.shape) == b.shape
    with torch.no_grad():
        net.weight.copy_(torch.tensor(f(W).astype(dtype)))
        net.bias.copy_(torch.tensor(f(b).astype(dtype)))
    xt = torch.tensor(f(x).astype(dtype), requires_grad=True)
    yt = net(xt)
    yt.backward(torch.tensor(f(dy).astype(dtype)))
    return tuple(a.detach().numpy() for a in (yt, xt.grad, net.weight.grad, net.bias.grad))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("path", ["fast", "reference"])
def test_conv2d_layer_with_groups_matches_torch_module(path, dtype):
    pytest.importorskip("torch")
    layer = Conv2D(6, (3, 2), stride=(2, 1), padding=1, groups=3, dtype=dtype)
    layer.build((9, 7, 6), np.random.default_rng(0))
    assert layer.params["W"].shape == (6, 3, 3, 2) and layer.params["b"].shape == (6,)
    x = np.random.default_rng(1).standard_normal((2, 9, 7, 6)).astype(dtype)
    with use_kernels(path):
        y = layer.forward(x, training=True)
        dy = np.random.default_rng(2).standard_normal(y.shape).astype(dtype)
        dx = layer.backward(dy)
    got = (y, dx, layer.grads["W"], layer.grads["b"])
    W, b = layer.params["W"], layer.params["b"]
    ref = _torch_module_run(W, b, x, dy, dtype)
    if dtype == "float64":
        for g, r in zip(got, ref):
            assert g.dtype == np.float64
            np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-10)
        return
    ref64 = _torch_module_run(W, b, x, dy, "float64")
    scale = _torch_module_run(W, b, x, dy, "float64", take_abs=True)
    Ho, Wo = y.shape[2:]
    terms = (3 * 6 + 1, 2 * 6, 2 * Ho * Wo, 2 * Ho * Wo)
    for i, name in enumerate(("y", "dx", "dW", "db")):
        assert_float32_close(got[i], ref[i], ref64[i], scale[i], terms[i], name)


@pytest.mark.parametrize("path", ["fast", "reference"])
@pytest.mark.parametrize("C,F,k,stride,padding,G", [
    (4, 6, (3, 2), 1, 1, 2),
    (3, 3, 3, 2, "same", 3),            # depthwise
    (2, 4, (2, 3), (2, 1), (0, 1, 2, 1), 2),  # depthwise with multiplier 2
    (6, 6, 3, 1, "same", 3),            # 12x11 input: random directions for x
])
def test_grouped_conv2d_gradcheck_float64(path, C, F, k, stride, padding, G):
    rng = np.random.default_rng(11)
    H, W = (12, 11) if C == 6 else (6, 7)
    layer = Conv2D(F, k, stride=stride, padding=padding, groups=G, dtype="float64",
                   bias_initializer="normal")
    layer.build((C, H, W), rng)
    x = rng.standard_normal((2, C, H, W))
    R = rng.standard_normal((2,) + layer.output_shape((C, H, W)))

    def loss():
        return float((layer.forward(x) * R).sum())

    with use_kernels(path):
        layer.forward(x)
        dx = layer.backward(R)
        dW, db = layer.grads["W"].copy(), layer.grads["b"].copy()
        check_grad(loss, x, dx, rtol=1e-6, atol=1e-7)
        check_grad(loss, layer.params["W"], dW, rtol=1e-6, atol=1e-7)
        check_grad(loss, layer.params["b"], db, rtol=1e-6, atol=1e-7)


def test_alexnet_paper_conv2_parameter_count():
    """AlexNet's second layer, two columns: 256 kernels of 5×5 over 48 of the 96 maps."""
    conv = Conv2D(256, 5, padding=2, groups=2)
    shapes = conv.param_shapes((96, 27, 27))
    assert shapes == {"W": (256, 48, 5, 5), "b": (256,)}
    conv.build((96, 27, 27))
    assert conv.count_params() == 256 * 48 * 25 + 256 == 307_456
    assert conv.count_connections((96, 27, 27)) == 27 * 27 * 307_456


def test_depthwise_weights_and_fans():
    conv = Conv2D(8, 3, groups=8, kernel_initializer="he_uniform")
    conv.build((8, 10, 10), np.random.default_rng(0))
    assert conv.params["W"].shape == (8, 1, 3, 3)
    # he_uniform bound √(6/fan_in) with fan_in = C/G·kh·kw = 9 (PyTorch's fan)
    assert np.abs(conv.params["W"]).max() <= np.sqrt(6 / 9)
    assert np.abs(conv.params["W"]).max() > np.sqrt(6 / 72)


@pytest.mark.parametrize("kwargs,match", [
    ({"groups": 0}, r"groups must be a positive int; received groups=0"),
    ({"groups": -2}, r"received groups=-2"),
    ({"groups": 1.5}, r"received groups=1.5"),
    ({"groups": True}, r"received groups=True"),
    ({"groups": "2"}, r"received groups='2'"),
    ({"groups": 4}, r"out_channels must be divisible by groups; received out_channels=6, "
                    r"groups=4"),
    ({"groups": 2, "connection_table": np.ones((4, 6), bool)},
     r"connection_table and groups=2 cannot be combined"),
])
def test_conv2d_rejects_bad_groups(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Conv2D(6, 3, **kwargs)


def test_conv2d_rejects_input_channels_not_divisible_by_groups():
    conv = Conv2D(6, 3, groups=3)
    msg = r"the 4 input channels must be divisible by groups=3"
    with pytest.raises(ValueError, match=msg):
        conv.output_shape((4, 8, 8))
    with pytest.raises(ValueError, match=msg):
        conv.param_shapes((4, 8, 8))
    with pytest.raises(ValueError, match=msg):
        conv.build((4, 8, 8))
    assert conv.output_shape((None, 8, 8)) == (6, 6, 6)  # channels unknown: not yet refused


@pytest.mark.parametrize("path", ["fast", "reference"])
def test_functional_conv_rejects_mismatched_groups(path):
    x = np.zeros((1, 4, 5, 5))
    with use_kernels(path):
        with pytest.raises(ValueError, match=r"kernel expects 6 input channels \(2 per group "
                                             r"× groups=3\); input has 4"):
            conv2d_forward(x, np.zeros((3, 2, 3, 3)), None, groups=3)
        with pytest.raises(ValueError, match=r"the 3 kernels must split into groups=2"):
            conv2d_forward(x, np.zeros((3, 2, 3, 3)), None, groups=2)
        with pytest.raises(ValueError, match=r"groups must be a positive int"):
            conv2d_forward(x, np.zeros((3, 4, 3, 3)), None, groups=0)


def test_grouped_conv2d_config_and_save_round_trip(tmp_path):
    conv = Conv2D(6, 3, groups=2, name="g")
    assert conv.get_config()["groups"] == 2
    assert "groups" not in Conv2D(6, 3).get_config()  # configs of ungrouped layers unchanged
    assert Conv2D.from_config(conv.get_config()).groups == 2
    model = numcnn.Sequential([conv, Flatten()], input_shape=(4, 5, 5), seed=0)
    x = np.random.default_rng(0).standard_normal((2, 4, 5, 5)).astype(np.float32)
    path = tmp_path / "g.npz"
    numcnn.save_model(model, path)
    back = numcnn.load_model(path)
    assert back.get_layer("g").groups == 2
    assert back.get_layer("g").params["W"].shape == (6, 2, 3, 3)
    np.testing.assert_array_equal(back.predict(x), model.predict(x))


def test_grouped_conv2d_equals_a_block_diagonal_connection_table():
    """A grouped convolution is the ungrouped one whose table connects each group's maps
    to its own kernels only: outputs, gradients and Gauss–Newton curvatures agree."""
    C, F, G = 6, 4, 2
    grouped = Conv2D(F, 3, padding=1, groups=G, dtype="float64")
    grouped.build((C, 5, 6), np.random.default_rng(0))
    table = np.zeros((C, F), bool)
    for g in range(G):
        table[g * 3 : (g + 1) * 3, g * 2 : (g + 1) * 2] = True
    dense = Conv2D(F, 3, padding=1, connection_table=table, dtype="float64")
    dense.build((C, 5, 6), np.random.default_rng(1))
    full = np.zeros((F, C, 3, 3))
    for f in range(F):
        g = f // 2
        full[f, g * 3 : (g + 1) * 3] = grouped.params["W"][f]
    dense.params["W"][...] = full
    dense.params["b"][...] = grouped.params["b"]
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, C, 5, 6))
    dy = rng.standard_normal((3, F, 5, 6))
    d2y = rng.random((3, F, 5, 6))
    for path in ("fast", "reference"):
        with use_kernels(path):
            cg, cd = Call(True), Call(True)
            y = grouped.fprop(x, cg)
            np.testing.assert_allclose(y, dense.fprop(x, cd), rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(grouped.bprop(dy, cg), dense.bprop(dy, cd), rtol=1e-12,
                                       atol=1e-12)
            for f in range(F):
                g = f // 2
                np.testing.assert_allclose(grouped.grads["W"][f],
                                           dense.grads["W"][f, g * 3 : (g + 1) * 3],
                                           rtol=1e-12, atol=1e-12)
            cg, cd = Call(True), Call(True)
            grouped.fprop(x, cg)
            dense.fprop(x, cd)
            d2x_g, h_g = rule_for(grouped)(grouped, d2y, cg)
            d2x_d, h_d = rule_for(dense)(dense, d2y, cd)
        np.testing.assert_allclose(d2x_g, d2x_d, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(h_g["b"], h_d["b"], rtol=1e-12)
        for f in range(F):
            g = f // 2
            np.testing.assert_allclose(h_g["W"][f], h_d["W"][f, g * 3 : (g + 1) * 3],
                                       rtol=1e-12, atol=1e-12)
