"""Every layer numcnn has, exported alone (the examples of the layer contract test,
``tests/layer_examples.py``) and run in ONNX Runtime at the oldest and newest opset it
exports at, on batches of 1 and 7 through one session (the batch is dynamic): the outputs
equal numcnn's within its own float32 error, and the float64 export within 1e-10."""

from __future__ import annotations

import numpy as np
import pytest
from export_harness import check_model, run_onnx

import numcnn
from layer_examples import LAYER_EXAMPLES
from numcnn.layers import LAYERS, Input
from numcnn.onnx.converters import CONVERTERS, ExportError, converters
from numcnn.onnx.exporter import to_onnx

#: layers that are not converted as such: the graph's inputs, and models (written inline)
NOT_CONVERTED = {"InputLayer", "Model", "Sequential"}

#: layers other work is adding while this is written: until their converters exist,
#: exporting them must be refused clearly
PENDING: set[str] = set()


CASES = [(name, k) for name in sorted(LAYER_EXAMPLES) for k in range(len(LAYER_EXAMPLES[name]))
         if {c.layer for c in converters()} and LAYERS.lookup(name) in CONVERTERS]


def one_layer_model(name: str, k: int):
    """``Input → layer → output`` for example ``k`` of layer ``name``, with random running
    statistics for batch normalisation (so inference mode is really tested)."""
    example = LAYER_EXAMPLES[name][k]
    kwargs, shape = example[0], example[1]
    opts = example[2] if len(example) > 2 else {}
    layer = LAYERS.lookup(name)(**kwargs)
    shapes = shape if isinstance(shape, list) else [shape]
    xs = [Input(s) for s in shapes]
    y = layer(xs if isinstance(shape, list) else xs[0])
    model = numcnn.Model(xs if isinstance(shape, list) else xs[0],
                         list(y) if isinstance(y, tuple) else y, seed=k)
    rng = np.random.default_rng(k)
    for lay in model.leaf_layers():
        for key, buf in lay.buffers.items():
            buf[...] = rng.uniform(0.5, 2.0, buf.shape) if "var" in key else \
                rng.standard_normal(buf.shape)
    make = opts.get("make_input")

    def inputs(rng: np.random.Generator, n: int, dtype) -> list[np.ndarray]:
        if make is not None:
            return [make(rng, (n,) + tuple(s), dtype) for s in shapes]
        out = [rng.standard_normal((n,) + tuple(s)).astype(dtype) for s in shapes]
        if type(layer).__name__ == "Masking":  # some padding steps, anywhere
            pad = rng.random((n, shapes[0][0])) < 0.4
            out[0][pad] = kwargs.get("mask_value", 0.0)
        return out

    return model, inputs


@pytest.mark.parametrize("name,k", CASES, ids=[f"{n}-{k}" for n, k in CASES])
def test_layer_exports_and_runs_in_onnxruntime(name, k):
    model, inputs = one_layer_model(name, k)
    info = check_model(model, inputs)
    assert "onnxruntime" in info["runtimes"]
    proto = info["proto"]
    layer_name = model.layer_name(model.layers[0])
    assert any(n.name == layer_name for n in proto.graph.node), \
        [n.name for n in proto.graph.node]
    assert all(n.name.startswith(layer_name) for n in proto.graph.node)


def test_every_layer_has_a_converter_or_a_clear_refusal():
    classes = {c.__name__ for c in LAYERS._items.values()} - NOT_CONVERTED
    have = {c.name for c in converters()}
    assert classes - have <= PENDING, sorted(classes - have - PENDING)
    assert have - {"DenseTranspose"} <= classes  # DenseTranspose has no config: unregistered
    for conv in CONVERTERS.values():
        assert 9 <= conv.min_opset <= conv.max_opset and conv.ops
    for name in sorted(LAYER_EXAMPLES):
        if LAYERS.lookup(name).__name__ in classes - have:
            model, _ = one_layer_model(name, 0)
            label = model.layer_name(model.layers[0])
            with pytest.raises(ExportError, match=f"cannot export layer '{label}' "
                                                  r"\(\w+\): numcnn has no ONNX converter"):
                to_onnx(model)


def test_input_straight_to_output():
    x = Input((3,))
    model = numcnn.Model(x, x)
    proto = to_onnx(model)
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    got, _ = run_onnx(proto, [a])
    np.testing.assert_array_equal(got[0], a)
