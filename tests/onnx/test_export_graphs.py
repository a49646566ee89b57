"""Graphs beyond one layer: nested and shared models, several inputs and outputs, free
sizes, pooling windows that hang off the end (``ceil_mode``) in every position, the
metadata, the node names — and the refusals: what cannot be exported says which layer
and why, and nothing is written."""

from __future__ import annotations

import json

import numpy as np
import pytest
from export_harness import check_model, normal_inputs, run_onnx

import numcnn
from numcnn.layers import (
    AdaptiveAvgPool2D,
    Add,
    AvgPool2D,
    Concatenate,
    Conv2D,
    Dense,
    Flatten,
    Input,
    Layer,
    LocalResponseNorm,
    MaxPool2D,
    ReLU,
    TimeDistributed,
)
from numcnn.models import lenet5, lenet5_1998
from numcnn.onnx.converters import DEFAULT_OPSET, ExportError
from numcnn.onnx.exporter import export, supported_opsets, to_onnx


@pytest.mark.parametrize("kind", ["max", "avg", "avg_exclude"])
def test_ceil_mode_windows_everywhere(kind):
    """Every input size 4–9 with windows 2–3, strides 1–3 and padding up to half the
    window: a last window inside, overhanging, or starting in the padding (dropped)."""
    sizes = range(4, 10)
    xs = [Input((2, n, n)) for n in sizes]
    outs = []
    for x in xs:
        for k in (2, 3):
            for s in (1, 2, 3):
                for p in range(k // 2 + 1):
                    if kind == "max":
                        pool = MaxPool2D(k, stride=s, padding=p, ceil_mode=True)
                    else:
                        pool = AvgPool2D(k, stride=s, padding=p, ceil_mode=True,
                                         count_include_pad=kind == "avg")
                    outs.append(Flatten()(pool(x)))
    model = numcnn.Model(xs, Concatenate()(outs), seed=0)
    check_model(model, normal_inputs([(2, n, n) for n in sizes]), float64=False)


def test_nested_and_shared_models_several_inputs_and_outputs():
    inner_x = Input((3, 8, 8))
    block = numcnn.Model(inner_x, ReLU()(Conv2D(3, 3, padding=1, name="conv")(inner_x)),
                         name="block")
    a, b = Input((3, 8, 8), name="left"), Input((3, 8, 8), name="right")
    ya, yb = block(a), block(b)  # one block, its weights shared by two calls
    shared = Dense(4, name="head")
    outs = [shared(Flatten()(ya)), shared(Flatten()(yb)), Add(name="sum")([ya, yb])]
    model = numcnn.Model([a, b], outs, seed=1)
    info = check_model(model, normal_inputs([(3, 8, 8)] * 2))
    proto = info["proto"]
    names = [n.name for n in proto.graph.node]
    assert {"block/conv", "block[1]/conv", "head", "head[1]", "sum"} <= set(names)
    assert [i.name for i in proto.graph.input] == ["left", "right"]
    # the second call's output is named by its call, in numcnn as in ONNX
    assert model.output_names == ["head", "head[1]", "sum"]
    assert [o.name for o in proto.graph.output] == ["head", "head[1]", "sum"]
    weights = {i.name for i in proto.graph.initializer}
    assert {"block/conv/W", "head/W"} <= weights and "block[1]/conv/W" not in weights


def test_free_sizes_stay_free():
    """(N, 3, H, W) with H, W free: convolutions with "same" padding, global pooling and
    adaptive pooling to 1 need no size; the batch and the sizes are graph dimensions."""
    x = Input((3, None, None))
    h = ReLU()(Conv2D(4, 3, padding="same")(x))
    h = MaxPool2D(2)(Conv2D(4, 3, stride=2, padding="same")(h))
    h = AdaptiveAvgPool2D(1)(LocalResponseNorm(3)(h))
    model = numcnn.Model(x, Dense(2)(Flatten()(h)), seed=2)
    proto = to_onnx(model)
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["N", 3, "input_0_2", "input_0_3"]
    for hw in ((9, 7), (16, 5)):
        xx = np.random.default_rng(0).standard_normal((2, 3) + hw).astype(np.float32)
        got, _ = run_onnx(proto, [xx])
        np.testing.assert_allclose(got[0], model.predict(xx), rtol=1e-5, atol=1e-5)


def test_ceil_mode_on_free_sizes_at_opset_22():
    x = Input((2, None, None))
    h = MaxPool2D(3, stride=2, padding=1, ceil_mode=True)(x)
    y = AvgPool2D(2, stride=2, padding=1, ceil_mode=True)(h)
    model = numcnn.Model(x, y, seed=0)
    proto = to_onnx(model, supported_opsets()[-1])
    for n in (5, 6, 7, 8, 9):
        xx = np.random.default_rng(n).standard_normal((2, 2, n, n + 1)).astype(np.float32)
        got, _ = run_onnx(proto, [xx])
        np.testing.assert_allclose(got[0], model.predict(xx), rtol=1e-6, atol=1e-6)


def test_time_distributed_over_a_free_length():
    x = Input((None, 1, 6, 6))
    h = TimeDistributed(Flatten())(TimeDistributed(MaxPool2D(2))(
        TimeDistributed(Conv2D(2, 3, padding=1))(x)))
    model = numcnn.Model(x, TimeDistributed(Dense(3))(h), seed=3)
    proto = to_onnx(model)
    for T in (1, 4):
        xx = np.random.default_rng(T).standard_normal((3, T, 1, 6, 6)).astype(np.float32)
        got, _ = run_onnx(proto, [xx])
        np.testing.assert_allclose(got[0], model.predict(xx), rtol=1e-5, atol=1e-5)


def test_fixed_batch_and_default_opset(tmp_path):
    model = lenet5(seed=0)
    proto = to_onnx(model, dynamic_batch=False)
    assert proto.opset_import[0].version == DEFAULT_OPSET
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    assert proto.ir_version <= 8  # the oldest IR that opset allows: older runtimes load it
    path = export(model, tmp_path / "m.onnx", opset=supported_opsets()[-1])
    import onnx

    assert onnx.load(str(path)).opset_import[0].version == supported_opsets()[-1]


def test_outputs_whose_axis_0_is_not_the_batch():
    """A stored array or a shape as a model output: its axis 0 is its own, so a fixed batch
    size does not fix it."""
    x = Input((4,))
    model = numcnn.Model(x, [Dense(2)(x), numcnn.layers.Constant((3, 2))(x),
                             numcnn.layers.ShapeOf()(x)], seed=0)
    model.layers[1].buffers["value"][...] = np.arange(6).reshape(3, 2)
    a = np.ones((1, 4), np.float32)
    for dynamic in (True, False):
        got, _ = run_onnx(to_onnx(model, dynamic_batch=dynamic), [a])
        want = model.forward(a)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-6)


def test_metadata_records_preprocessing_and_output(tmp_path):
    model = lenet5_1998(seed=0)
    numcnn.save_model(model, tmp_path / "m.npz", extra={"dataset": "mnist", "pixel_scale": 1.0})
    loaded = numcnn.load_model(tmp_path / "m.npz")
    meta = {p.key: p.value for p in to_onnx(loaded).metadata_props}
    assert meta["numcnn.output"] == "rbf"
    pre = json.loads(meta["numcnn.preprocessing"])
    assert pre["kind"] == "mnist_digit" and pre["pixel_scale"] == 1.0
    assert json.loads(meta["numcnn.saved_extra"])["dataset"] == "mnist"
    assert to_onnx(lenet5(seed=0)).producer_name == "numcnn"


class Doubler(Layer):
    """A layer numcnn knows nothing about (no converter)."""

    def fprop(self, x, call):
        return 2 * x


class MyConv(Conv2D):
    """A subclass that may compute something else than Conv2D."""


@pytest.mark.parametrize("layer,why", [
    (Doubler(name="twice"), r"'twice' \(Doubler\): numcnn has no ONNX converter"),
    (MyConv(2, 3, name="mine"), r"'mine' \(MyConv\): it is a subclass of Conv2D"),
])
def test_unknown_layers_are_refused_and_nothing_is_written(tmp_path, layer, why):
    x = Input((1, 6, 6))
    model = numcnn.Model(x, Flatten()(layer(ReLU()(x))))
    path = tmp_path / "m.onnx"
    with pytest.raises(ExportError, match=why):
        export(model, path)
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments_say_what_was_expected(tmp_path):
    model = lenet5(seed=0)
    top = supported_opsets()[-1]
    for bad in (8, top + 1, "17", 17.0, True):
        with pytest.raises(ValueError, match=rf"opset must be an int from 9 to {top}; received"):
            to_onnx(model, bad)
    with pytest.raises(TypeError, match="export takes a numcnn model .*received Conv2D"):
        to_onnx(Conv2D(2, 3))
    with pytest.raises(TypeError, match="dynamic_batch must be True or False"):
        to_onnx(model, dynamic_batch="yes")
    with pytest.raises(ValueError, match="is not built"):
        to_onnx(numcnn.Sequential([Dense(2)]))
    with pytest.raises(ValueError, match="is a folder"):
        export(model, tmp_path)
    x = Input((1, None, None))
    m = numcnn.Model(x, MaxPool2D(3, stride=2, ceil_mode=True, name="pool")(x))
    with pytest.raises(ExportError, match=r"'pool' \(MaxPool2D\): ceil_mode on an input of "
                                          r"free size .* opset 22"):
        to_onnx(m, 21)
    free = Input((1, None, None))
    m = numcnn.Model(free, AdaptiveAvgPool2D(3, name="adapt")(free))
    with pytest.raises(ExportError, match=r"'adapt' .* fixed input size"):
        to_onnx(m)


def test_the_package_function_stays_callable():
    """Importing the exporter module must not hide the function ``numcnn.onnx.export``."""
    import numcnn.onnx
    import numcnn.onnx.exporter as module

    assert numcnn.onnx.export is not module and callable(numcnn.onnx.export)
    assert numcnn.onnx.exporter is module
