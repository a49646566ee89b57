"""What ``numcnn.onnx.load`` makes of a graph (issue 14): the shape idioms folded at
import, layers named after the nodes, which constants train, and a model that everything
else in numcnn works on (summary, intermediates, save and load, fit)."""

from __future__ import annotations

import numpy as np
import pytest

import numcnn
import numcnn.onnx
from numcnn.onnx.import_checks import OnnxImportError

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def _model(nodes, inputs, outputs, inits=(), opset=17, path=None):
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    if path is not None:
        path.write_bytes(m.SerializeToString())
    return m


def _vi(name, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def _init(name, value):
    return numpy_helper.from_array(np.asarray(value), name)


def test_the_view_idiom_folds_into_a_reshape_that_keeps_the_batch(tmp_path):
    """``x.view(x.size(0), -1)`` as PyTorch writes it: Shape → Gather → Unsqueeze →
    Concat → Reshape becomes one numcnn Reshape, for any batch size."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
             helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
             helper.make_node("Concat", ["n1", "minus1"], ["target"], axis=0),
             helper.make_node("Reshape", ["x", "target"], ["flat"], name="/view/Reshape"),
             helper.make_node("MatMul", ["flat", "W"], ["y"], name="/fc/MatMul")]
    W = np.random.default_rng(0).standard_normal((24, 3)).astype(np.float32)
    inits = [_init("zero", np.int64(0)), _init("axes", np.array([0])),
             _init("minus1", np.array([-1])), _init("W", W)]
    _model(nodes, [_vi("x", ["N", 2, 3, 4])], [_vi("y", ["N", 3])], inits,
           path=tmp_path / "view.onnx")
    model = numcnn.onnx.load(tmp_path / "view.onnx")
    names = [lay.name for lay in model.layers]
    assert names == ["view.Reshape", "fc.MatMul"]
    assert type(model.get_layer("view.Reshape")).__name__ == "Reshape"
    assert type(model.get_layer("fc.MatMul")).__name__ == "Dense"
    for n in (1, 5):
        x = np.random.default_rng(n).standard_normal((n, 2, 3, 4)).astype(np.float32)
        np.testing.assert_allclose(model.predict(x), x.reshape(n, -1) @ W, rtol=1e-5,
                                   atol=1e-6)


def test_shape_as_an_output_is_measured_at_run_time(tmp_path):
    nodes = [helper.make_node("Shape", ["x"], ["s"], start=0),
             helper.make_node("Relu", ["x"], ["y"])]
    _model(nodes, [_vi("x", ["N", 3])], [_vi("y", ["N", 3]), _vi("s", [2], TensorProto.INT64)],
           path=tmp_path / "shape.onnx")
    import numcnn.onnx.backend as backend
    for n in (2, 6):
        x = np.ones((n, 3), np.float32)
        y, s = backend.prepare(onnx.load(tmp_path / "shape.onnx")).run([x])
        assert s.dtype == np.int64 and s.tolist() == [n, 3]


def test_batch_sized_zeros_become_a_fill_layer(tmp_path):
    """``torch.zeros(x.size(0), 3) + x``: ConstantOfShape of a shape holding the batch."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("ConstantOfShape", ["s"], ["z"],
                              value=numpy_helper.from_array(np.array([0.5], np.float32))),
             helper.make_node("Add", ["x", "z"], ["y"])]
    _model(nodes, [_vi("x", ["N", 3])], [_vi("y", ["N", 3])], path=tmp_path / "fill.onnx")
    model = numcnn.onnx.load(tmp_path / "fill.onnx")
    assert "Fill" in [type(lay).__name__ for lay in model.layers]
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.testing.assert_array_equal(model.predict(x), x + 0.5)


def test_initializers_train_and_constant_nodes_do_not(tmp_path):
    nodes = [helper.make_node("Add", ["x", "bias"], ["a"], name="add_bias"),
             helper.make_node("Constant", [], ["two"],
                              value=numpy_helper.from_array(np.float32(2.0))),
             helper.make_node("Mul", ["a", "two"], ["y"], name="double")]
    _model(nodes, [_vi("x", ["N", 3])], [_vi("y", ["N", 3])],
           [_init("bias", np.array([1, 2, 3], np.float32))], path=tmp_path / "m.onnx")
    model = numcnn.onnx.load(tmp_path / "m.onnx")
    assert model.get_layer("add_bias").trainable
    assert not model.get_layer("double").trainable
    assert sorted(model.trainable_params()) == ["add_bias/c"]
    x = np.zeros((2, 3), np.float32)
    np.testing.assert_array_equal(model.predict(x), [[2, 4, 6], [2, 4, 6]])
    model.compile("sgd", "mse", metrics=[])
    model.fit(x, np.zeros((2, 3), np.float32), batch_size=2, verbose=0)
    assert not np.array_equal(model.get_layer("add_bias").params["c"], [1, 2, 3])
    np.testing.assert_array_equal(model.get_layer("double").params["c"], [2.0])


def test_an_imported_model_is_an_ordinary_model(tmp_path):
    """summary, intermediates, save_model/load_model (the new layers' configs round-trip)."""
    rng = np.random.default_rng(3)
    W = rng.standard_normal((4, 2, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"], name="conv1d", pads=[1, 1],
                              dilations=[2]),
             helper.make_node("Transpose", ["c"], ["t"], name="swap", perm=[0, 2, 1]),
             helper.make_node("LogSoftmax", ["t"], ["y"], name="logp", axis=-1)]
    _model(nodes, [_vi("x", ["N", 2, 9])], [_vi("y", ["N", 7, 4])], [_init("W", W)],
           path=tmp_path / "m.onnx")
    model = numcnn.onnx.load(tmp_path / "m.onnx")
    text = model.summary(print_fn=lambda s: None)
    assert "conv1d (ConvND)" in text and "logp (AxisSoftmax)" in text
    x = rng.standard_normal((3, 2, 9)).astype(np.float32)
    mid = model.intermediates(x, ["conv1d"])["conv1d"]
    assert mid.shape == (3, 4, 7)
    numcnn.save_model(model, tmp_path / "m.npz")
    again = numcnn.load_model(tmp_path / "m.npz")
    np.testing.assert_array_equal(again.predict(x), model.predict(x))


def test_a_graph_of_constants_or_of_unknown_rank_is_refused(tmp_path):
    nodes = [helper.make_node("Constant", [], ["y"],
                              value=numpy_helper.from_array(np.ones(3, np.float32)))]
    _model(nodes, [], [_vi("y", [3])], path=tmp_path / "const.onnx")
    with pytest.raises(OnnxImportError, match="no input that its outputs depend on"):
        numcnn.onnx.load(tmp_path / "const.onnx")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, None)
    _model([helper.make_node("Relu", ["x"], ["y"])], [x], [_vi("y", None)],
           path=tmp_path / "norank.onnx")
    with pytest.raises(OnnxImportError, match="declares no shape"):
        numcnn.onnx.load(tmp_path / "norank.onnx")


def test_weights_must_be_constants(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "W"], ["y"], name="conv")]
    _model(nodes, [_vi("x", ["N", 1, 5, 5]), _vi("W", [2, 1, 3, 3])], [_vi("y", None)],
           path=tmp_path / "w.onnx")
    with pytest.raises(OnnxImportError, match=r"the kernel W \(input 1, 'W'\) must be a "
                                              "constant"):
        numcnn.onnx.load(tmp_path / "w.onnx")


def test_dtype_follows_the_inputs_or_the_caller(tmp_path):
    _model([helper.make_node("Relu", ["x"], ["y"])], [_vi("x", ["N", 2], TensorProto.DOUBLE)],
           [_vi("y", ["N", 2], TensorProto.DOUBLE)], path=tmp_path / "d.onnx")
    assert numcnn.onnx.load(tmp_path / "d.onnx").dtype == np.float64
    assert numcnn.onnx.load(tmp_path / "d.onnx", dtype="float32").dtype == np.float32


def lrn_onnx_ref(x, size, alpha, beta, bias):
    """ONNX's LRN: the window runs from c − ⌊(size − 1)/2⌋ to c + ⌈(size − 1)/2⌉."""
    C = x.shape[1]
    out = np.empty_like(x)
    for c in range(C):
        lo, hi = max(0, c - (size - 1) // 2), min(C, c + -(-(size - 1) // 2) + 1)
        s = (x[:, lo:hi] ** 2).sum(axis=1)
        out[:, c] = x[:, c] / (bias + alpha / size * s) ** beta
    return out


@pytest.mark.parametrize("size", [3, 4])
def test_lrn_windows_of_both_parities(size, tmp_path):
    node = helper.make_node("LRN", ["x"], ["y"], size=size, alpha=0.3, beta=0.75, bias=2.0)
    _model([node], [_vi("x", ["N", 6, 2, 2], TensorProto.DOUBLE)],
           [_vi("y", ["N", 6, 2, 2], TensorProto.DOUBLE)], path=tmp_path / "lrn.onnx")
    model = numcnn.onnx.load(tmp_path / "lrn.onnx")
    x = np.random.default_rng(size).standard_normal((3, 6, 2, 2))
    np.testing.assert_allclose(model.predict(x), lrn_onnx_ref(x, size, 0.3, 0.75, 2.0),
                               rtol=1e-12)


def test_softmax_before_opset_13_flattens_the_trailing_axes(tmp_path):
    node = helper.make_node("Softmax", ["x"], ["y"], axis=1)
    _model([node], [_vi("x", ["N", 3, 4], TensorProto.DOUBLE)],
           [_vi("y", ["N", 3, 4], TensorProto.DOUBLE)], opset=11, path=tmp_path / "s.onnx")
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    flat = x.reshape(2, 12)
    ref = np.exp(flat - flat.max(1, keepdims=True))
    ref = (ref / ref.sum(1, keepdims=True)).reshape(2, 3, 4)
    np.testing.assert_allclose(numcnn.onnx.load(tmp_path / "s.onnx").predict(x), ref,
                               rtol=1e-12)
