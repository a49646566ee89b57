"""ONNX files are untrusted input (issue 14): damaged, lying or hostile files give a clear
``OnnxImportError`` — naming what was expected and what was found — within a memory
bound, and external data is read only when asked for and only inside the model's folder."""

from __future__ import annotations

import os
import tracemalloc

import numpy as np
import pytest

import numcnn.onnx
from numcnn.models import lenet5
from numcnn.onnx.import_checks import OnnxImportError

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def _save(model, path):
    path.write_bytes(model.SerializeToString())
    return path


def _relu_model(inputs=None, nodes=None, inits=(), out="y"):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])
    y = helper.make_tensor_value_info(out, TensorProto.FLOAT, None)
    nodes = nodes or [helper.make_node("Relu", ["x"], ["y"], name="relu")]
    g = helper.make_graph(nodes, "g", inputs or [x], [y], initializer=list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture(scope="module")
def lenet_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("lenet") / "lenet.onnx"
    numcnn.onnx.export(lenet5(seed=0), path)
    return path.read_bytes()


def test_truncated_files_are_refused(lenet_bytes, tmp_path):
    path = tmp_path / "cut.onnx"
    for cut in np.linspace(0, len(lenet_bytes) - 1, 12).astype(int):
        path.write_bytes(lenet_bytes[:cut])
        with pytest.raises(OnnxImportError):
            numcnn.onnx.load(path)


@pytest.mark.parametrize("content, match", [
    (b"", "holds no ONNX graph"),
    (b"\xff" * 64, "not a valid ONNX file"),
    (b"PK\x03\x04" + b"\x00" * 60, "not a valid ONNX file|holds no ONNX graph"),
])
def test_foreign_bytes_are_refused(content, match, tmp_path):
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    with pytest.raises(OnnxImportError, match=match):
        numcnn.onnx.load(path)


def test_a_missing_file_or_a_folder_is_named(tmp_path):
    with pytest.raises(OnnxImportError, match="cannot read"):
        numcnn.onnx.load(tmp_path / "nothing.onnx")
    with pytest.raises(OnnxImportError, match="not a regular file"):
        numcnn.onnx.load(tmp_path)


def test_the_size_budget_is_checked_before_reading(lenet_bytes, tmp_path, monkeypatch):
    path = tmp_path / "big.onnx"
    path.write_bytes(lenet_bytes)
    monkeypatch.setenv("NUMCNN_MAX_MODEL_BYTES", "1K")
    with pytest.raises(OnnxImportError, match="more than the budget of 1024 bytes"):
        numcnn.onnx.load(path)


def test_giant_declared_shapes_are_refused_without_allocating(tmp_path):
    """Dimensions that promise 4·10¹² bytes while the file holds 4: refused with the
    check of what the file stores, never allocated."""
    lie = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[1_000_000, 1_000_000],
                      raw_data=b"\x00" * 4)
    nodes = [helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")]
    path = _save(_relu_model(nodes=nodes, inits=[lie]), tmp_path / "lie.onnx")
    tracemalloc.start()
    try:
        with pytest.raises(OnnxImportError, match="more than the budget"):
            numcnn.onnx.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20  # well under what the dimensions declare
    small = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[3, 5],
                        raw_data=b"\x00" * 8)
    path = _save(_relu_model(nodes=nodes, inits=[small]), tmp_path / "short.onnx")
    with pytest.raises(OnnxImportError, match="need 60 bytes; the file stores 8"):
        numcnn.onnx.load(path)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 100_000, 100_000])
    path = _save(_relu_model(inputs=[x]), tmp_path / "wide.onnx")
    with pytest.raises(OnnxImportError, match="values per sample"):
        numcnn.onnx.load(path)
    shape = numpy_helper.from_array(np.array([10**6, 10**6], np.int64), "s")
    nodes = [helper.make_node("ConstantOfShape", ["s"], ["z"], name="fill"),
             helper.make_node("Add", ["x", "z"], ["y"], name="add")]
    path = _save(_relu_model(nodes=nodes, inits=[shape]), tmp_path / "fill.onnx")
    with pytest.raises(OnnxImportError, match="larger than the budget"):
        numcnn.onnx.load(path)


def test_wrong_types_are_named(tmp_path):
    strings = helper.make_tensor_value_info("x", TensorProto.STRING, ["N", 3])
    with pytest.raises(OnnxImportError, match="element type 8"):
        numcnn.onnx.load(_save(_relu_model(inputs=[strings]), tmp_path / "s.onnx"))
    node = helper.make_node("LeakyRelu", ["x"], ["y"], name="leaky", alpha="high")
    with pytest.raises(OnnxImportError, match="attribute 'alpha' must be of type float"):
        numcnn.onnx.load(_save(_relu_model(nodes=[node]), tmp_path / "a.onnx"))
    W = numpy_helper.from_array(np.ones(3, np.float32), "W")
    conv = helper.make_node("Conv", ["x", "W"], ["y"], name="conv")
    with pytest.raises(OnnxImportError, match="Conv node 'conv'.*kernel W of rank 3"):
        numcnn.onnx.load(_save(_relu_model(nodes=[conv], inits=[W]), tmp_path / "c.onnx"))
    typed = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[3, 2],
                        int64_data=[1, 2, 3, 4, 5, 6])
    mm = helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")
    with pytest.raises(OnnxImportError, match="need 6 values; the file stores 0"):
        numcnn.onnx.load(_save(_relu_model(nodes=[mm], inits=[typed]), tmp_path / "t.onnx"))


def test_cycles_undefined_and_twice_defined_values_are_named(tmp_path):
    nodes = [helper.make_node("Relu", ["x", "b"], ["a"], name="first"),
             helper.make_node("Relu", ["a"], ["b"], name="second"),
             helper.make_node("Relu", ["b"], ["y"], name="third")]
    with pytest.raises(OnnxImportError, match="cycle through node 'first'"):
        numcnn.onnx.load(_save(_relu_model(nodes=nodes), tmp_path / "cycle.onnx"))
    nodes = [helper.make_node("Add", ["x", "ghost"], ["y"], name="add")]
    with pytest.raises(OnnxImportError, match="reads 'ghost', which no node"):
        numcnn.onnx.load(_save(_relu_model(nodes=nodes), tmp_path / "ghost.onnx"))
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="one"),
             helper.make_node("Relu", ["x"], ["y"], name="two")]
    with pytest.raises(OnnxImportError, match="'y' is defined twice"):
        numcnn.onnx.load(_save(_relu_model(nodes=nodes), tmp_path / "twice.onnx"))


def test_an_unsupported_operator_names_the_operator_node_and_opset(tmp_path):
    nodes = [helper.make_node("Erf", ["x"], ["y"], name="gelu_part")]
    with pytest.raises(OnnxImportError, match=r"Erf node 'gelu_part' \(opset 17\): the "
                                              r"operator Erf is not supported"):
        numcnn.onnx.load(_save(_relu_model(nodes=nodes), tmp_path / "erf.onnx"))
    other = _relu_model(nodes=[helper.make_node("Foo", ["x"], ["y"], domain="com.acme")])
    other.opset_import.append(helper.make_opsetid("com.acme", 1))
    with pytest.raises(OnnxImportError, match="domain 'com.acme'"):
        numcnn.onnx.load(_save(other, tmp_path / "acme.onnx"))


def _external_model(folder, location, data=None, length=None):
    W = np.arange(6, dtype=np.float32).reshape(3, 2)
    t = numpy_helper.from_array(W, "W")
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", "0"),
                 ("length", str(W.nbytes if length is None else length))):
        entry = t.external_data.add()
        entry.key, entry.value = k, v
    if data is not None:
        (folder / data).write_bytes(W.tobytes())
    nodes = [helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")]
    return _save(_relu_model(nodes=nodes, inits=[t]), folder / "model.onnx"), W


def test_external_data_is_refused_unless_asked_for(tmp_path):
    path, W = _external_model(tmp_path, "weights.bin", data="weights.bin")
    with pytest.raises(OnnxImportError, match="external data is refused unless asked for"):
        numcnn.onnx.load(path)
    model = numcnn.onnx.load(path, allow_external_data=True)
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(model.predict(x), x @ W)


@pytest.mark.parametrize("location, match", [
    ("../secret.bin", "must be a relative path inside"),
    ("/etc/passwd", "must be a relative path inside"),
    ("", "must be a relative path inside"),
    ("missing.bin", "not a regular file inside"),
    ("link.bin", "not a regular file inside"),
])
def test_external_data_cannot_reach_outside_the_models_folder(location, match, tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (tmp_path / "secret.bin").write_bytes(b"\x00" * 24)
    os.symlink(tmp_path / "secret.bin", folder / "link.bin")
    path, _ = _external_model(folder, location)
    with pytest.raises(OnnxImportError, match=match):
        numcnn.onnx.load(path, allow_external_data=True)


def test_external_data_must_hold_what_the_tensor_declares(tmp_path):
    path, _ = _external_model(tmp_path, "weights.bin", data="weights.bin", length=8)
    with pytest.raises(OnnxImportError, match="does not hold the 24 bytes"):
        numcnn.onnx.load(path, allow_external_data=True)
