"""``data_format="channels_last"`` (NHWC): each layer equals its NCHW twin on transposed data,
forward and backward (within rounding: a sum runs in its input's memory order); a
convolution equals TensorFlow's definition written as a loop over an HWIO kernel
(``set_hwio``); a whole model predicts and trains as its NCHW twin; the config round trip;
TensorFlow-style padding; the ONNX export (Transposes around the NCHW nodes) runs in ONNX
Runtime."""

from __future__ import annotations

import numpy as np
import pytest

import numcnn
from numcnn.layers import (
    LAYERS,
    AdaptiveAvgPool2D,
    AdaptiveMaxPool2D,
    AvgPool2D,
    Conv2D,
    Dense,
    GlobalAvgPool2D,
    GlobalMaxPool2D,
    Input,
    LpPool2D,
    MaxPool2D,
    ReLU,
    WeightedPool2D,
)

NHWC, NCHW = (0, 2, 3, 1), (0, 3, 1, 2)

LAYER_CASES = [
    pytest.param(Conv2D, {"out_channels": 3, "kernel_size": 3, "padding": "same"}, id="conv"),
    pytest.param(Conv2D, {"out_channels": 4, "kernel_size": (2, 3), "stride": 2, "groups": 2,
                          "padding": (1, 0, 2, 1), "padding_value": 0.5}, id="conv-groups"),
    pytest.param(MaxPool2D, {"pool_size": 3, "stride": 2, "padding": 1, "ceil_mode": True},
                 id="maxpool"),
    pytest.param(AvgPool2D, {"pool_size": 2, "count_include_pad": False, "padding": 1},
                 id="avgpool"),
    pytest.param(LpPool2D, {"p": 2, "pool_size": 2}, id="lppool"),
    pytest.param(WeightedPool2D, {"pool_size": 3, "stride": 1, "padding": 1}, id="weighted"),
    pytest.param(AdaptiveAvgPool2D, {"output_size": (3, 4)}, id="adaptive-avg"),
    pytest.param(AdaptiveMaxPool2D, {"output_size": (None, 4)}, id="adaptive-max"),
    pytest.param(GlobalAvgPool2D, {}, id="global-avg"),
    pytest.param(GlobalMaxPool2D, {}, id="global-max"),
]


@pytest.mark.parametrize("cls, kwargs", LAYER_CASES)
def test_channels_last_layer_equals_nchw_twin_on_transposed_data(cls, kwargs):
    rng = np.random.default_rng(0)
    N, C, H, W = 2, 4, 7, 6
    first = cls(**kwargs, dtype="float64")
    last = cls(**kwargs, data_format="channels_last", dtype="float64")
    first.build((C, H, W), np.random.default_rng(1))
    last.build((H, W, C), np.random.default_rng(1))
    for k in first.params:
        last.params[k][...] = first.params[k]
    x = rng.standard_normal((N, C, H, W))
    y1 = first.forward(x)
    y2 = last.forward(np.ascontiguousarray(x.transpose(NHWC)))
    assert last.output_shape((H, W, C)) == y2.shape[1:]
    if y1.ndim == 4:
        assert y2.shape == y1.transpose(NHWC).shape
        y2 = y2.transpose(NCHW)
    # equal within rounding: a sum (the global mean) runs in the memory order of its input
    np.testing.assert_allclose(y2, y1, rtol=1e-13, atol=1e-15)
    dy = rng.standard_normal(y1.shape)
    dx1 = first.backward(dy)
    dx2 = last.backward(np.ascontiguousarray(dy.transpose(NHWC)) if dy.ndim == 4 else dy)
    np.testing.assert_allclose(dx2, dx1.transpose(NHWC), rtol=1e-13, atol=1e-15)
    for k in first.grads:
        np.testing.assert_allclose(last.grads[k], first.grads[k], rtol=1e-13, atol=1e-14)


def tf_conv2d_loop(x, K, b, stride, pads):
    """TensorFlow's conv2d by its definition, NHWC input, HWIO kernel:
    y[n, p, q, f] = Σ_{i, j, c} xp[n, p·sh + i, q·sw + j, c] · K[i, j, c, f] + b[f]."""
    t, bo, left, r = pads
    xp = np.pad(x, ((0, 0), (t, bo), (left, r), (0, 0)))
    kh, kw, C, F = K.shape
    sh, sw = stride
    Ho, Wo = (xp.shape[1] - kh) // sh + 1, (xp.shape[2] - kw) // sw + 1
    y = np.zeros((x.shape[0], Ho, Wo, F))
    for n in range(x.shape[0]):
        for p in range(Ho):
            for q in range(Wo):
                for f in range(F):
                    s = b[f]
                    for i in range(kh):
                        for j in range(kw):
                            for c in range(C):
                                s += xp[n, p * sh + i, q * sw + j, c] * K[i, j, c, f]
                    y[n, p, q, f] = s
    return y


def test_hwio_kernels_compute_tensorflows_convolution():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 6, 5, 3))
    K = rng.standard_normal((3, 2, 3, 4))  # (kh, kw, C, F)
    b = rng.standard_normal(4)
    layer = Conv2D(4, (3, 2), stride=(2, 1), padding=[[0, 0], [1, 1], [0, 1], [0, 0]],
                   data_format="channels_last", dtype="float64")
    layer.build((6, 5, 3))
    layer.set_hwio(K, b)
    np.testing.assert_array_equal(layer.get_hwio(), K)
    np.testing.assert_allclose(layer.forward(x), tf_conv2d_loop(x, K, b, (2, 1), (1, 1, 0, 1)),
                               rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match=r"expected an HWIO kernel of shape \(3, 2, 3, 4\); "
                                         r"received shape \(4, 3, 3, 2\)"):
        layer.set_hwio(K.transpose(3, 2, 0, 1))
    with pytest.raises(ValueError, match="build the layer before set_hwio"):
        Conv2D(4, 3).set_hwio(K)


def _model(fmt, seed=0, dtype="float64"):
    shape = (8, 7, 3) if fmt == "channels_last" else (3, 8, 7)
    inp = Input(shape, dtype=dtype, data_format=fmt)
    h = Conv2D(4, 3, padding="same", data_format=fmt, dtype=dtype, name="c1")(inp)
    h = ReLU(dtype=dtype)(h)
    h = MaxPool2D(2, data_format=fmt, dtype=dtype)(h)
    h = Conv2D(5, 2, data_format=fmt, dtype=dtype, name="c2")(h)
    h = GlobalAvgPool2D(data_format=fmt, dtype=dtype)(h)
    out = Dense(3, dtype=dtype, name="d")(h)
    return numcnn.Model(inp, out, seed=seed)


def test_a_channels_last_model_predicts_and_trains_as_its_nchw_twin():
    first, last = _model("channels_first"), _model("channels_last", seed=1)
    last.set_weights(first.get_weights())
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 3, 8, 7))
    xl = np.ascontiguousarray(x.transpose(NHWC))
    np.testing.assert_allclose(last.predict(xl), first.predict(x), rtol=1e-12, atol=1e-13)
    y = rng.integers(0, 3, 6)
    for m, data in ((first, x), (last, xl)):
        m.compile(optimizer=numcnn.optimizers.get("sgd", lr=0.1, momentum=0.9))
        m.fit(data, y, batch_size=3, epochs=2, shuffle=False, verbose=0)
    w1, w2 = first.get_weights(), last.get_weights()
    assert sorted(w1) == sorted(w2)
    for k in w1:
        np.testing.assert_allclose(w2[k], w1[k], rtol=1e-10, atol=1e-12, err_msg=k)


def test_config_round_trip():
    m = _model("channels_last")
    again = numcnn.Model.from_config(m.get_config())
    again.set_weights(m.get_weights())
    x = np.random.default_rng(4).standard_normal((2, 8, 7, 3))
    np.testing.assert_array_equal(again.predict(x), m.predict(x))
    cfg = Conv2D(2, 3, data_format="channels_last").get_config()
    assert cfg["data_format"] == "channels_last"
    assert LAYERS.lookup("Conv2D").from_config(cfg).data_format == "channels_last"
    assert "data_format" not in Conv2D(2, 3).get_config()  # old configs unchanged


def test_bad_data_formats_and_tf_paddings_are_refused():
    with pytest.raises(ValueError, match="data_format must be 'channels_first' or "
                                         "'channels_last'; received data_format='NHWC'"):
        Conv2D(2, 3, data_format="NHWC")
    with pytest.raises(ValueError, match=r"pads the batch or channel axis; expected "
                                         r"\[\[0, 0\], \[t, b\], \[l, r\], \[0, 0\]\]"):
        MaxPool2D(2, padding=[[0, 0], [1, 1], [1, 1], [1, 0]], data_format="channels_last")
    with pytest.raises(ValueError, match=r"expects an image shape \(H, W, C\)"):
        Input((5, 3), data_format="channels_last")
    layer = Conv2D(2, 3, padding=[[0, 0], [0, 0], [1, 2], [0, 1]])  # NCHW's TF form
    assert layer.padding == (1, 2, 0, 1)
    with pytest.raises(ValueError, match=r"expected a \(H, W, C\) input shape"):
        Conv2D(2, 3, data_format="channels_last").output_shape((4, 4))


def test_onnx_export_wraps_the_layers_in_transposes():
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from numcnn.onnx.exporter import to_onnx

    m = _model("channels_last", dtype="float32")  # ONNX Runtime has no float64 Conv
    proto = to_onnx(m)
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("Transpose") == 7 and "Conv" in ops  # in and out of 3 layers, in of 1
    x = np.random.default_rng(5).standard_normal((3, 8, 7, 3)).astype(np.float32)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    m64 = _model("channels_last")
    m64.set_weights({k: v.astype(np.float64) for k, v in m.get_weights().items()})
    exact = m64.predict(x.astype(np.float64))
    ours = m.predict(x)
    # within 4x numcnn's own float32 error against the float64 twin (+ a few ulps)
    tol = 4 * np.abs(ours - exact).max() + 4 * np.finfo(np.float32).eps * np.abs(exact).max()
    np.testing.assert_allclose(got, exact, rtol=0, atol=tol)


def test_gauss_newton_diagonal_equals_the_nchw_twins():
    """SDLM's rule on a channels-last Conv2D: h and d2x as the NCHW twin's (d2x in NHWC)."""
    from numcnn.layers.base import Call
    from numcnn.layers.gauss_newton import rule_for

    rng = np.random.default_rng(6)
    first = Conv2D(3, 3, stride=2, padding=1, padding_value=0.5, dtype="float64")
    last = Conv2D(3, 3, stride=2, padding=1, padding_value=0.5, data_format="channels_last",
                  dtype="float64")
    first.build((2, 7, 6), np.random.default_rng(1))
    last.build((7, 6, 2))
    last.params["W"][...] = first.params["W"]
    last.params["b"][...] = first.params["b"]
    x = rng.standard_normal((2, 2, 7, 6))
    c1, c2 = Call(training=True), Call(training=True)
    first.fprop(x, c1)
    last.fprop(np.ascontiguousarray(x.transpose(NHWC)), c2)
    d2y = rng.random((2, 3, 4, 3))
    d2x1, h1 = rule_for(first)(first, d2y, c1)
    d2x2, h2 = rule_for(last)(last, np.ascontiguousarray(d2y.transpose(NHWC)), c2)
    np.testing.assert_allclose(d2x2, d2x1.transpose(NHWC), rtol=1e-13, atol=1e-15)
    for k in h1:
        np.testing.assert_allclose(h2[k], h1[k], rtol=1e-13, atol=1e-14)


def test_counts_equal_the_nchw_twins():
    """MACs, parameters and connections do not depend on the layout (c1: 4·8·7·3·9 MACs)."""
    first, last = _model("channels_first"), _model("channels_last")
    assert last.count_macs() == first.count_macs() > 4 * 8 * 7 * 3 * 9
    assert last.count_params() == first.count_params()
    c1 = last.get_layer("c1")
    assert c1.count_connections((8, 7, 3)) == first.get_layer("c1").count_connections((3, 8, 7))
