"""``numcnn.onnx.backend`` as an ``onnx.backend.base.Backend`` (issue 14): the functions
ONNX's tools call, inputs in weight slots, element types, devices."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
import numcnn.onnx.backend as backend  # noqa: E402
from numcnn.onnx.import_checks import OnnxImportError  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402

torch = pytest.importorskip("torch")


def test_the_module_is_a_backend():
    from onnx.backend.base import Backend

    assert issubclass(backend.NumcnnBackend, Backend)
    for name in ("prepare", "run_model", "run_node", "supports_device", "is_compatible"):
        assert callable(getattr(backend, name))
    assert backend.supports_device("CPU")
    assert not backend.supports_device("CUDA")
    assert not backend.supports_device("TPU:3")


def _conv_model():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 1, 5, 5])
    W = helper.make_tensor_value_info("W", TensorProto.FLOAT, [3, 1, 3, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 3, 3])
    node = helper.make_node("Conv", ["x", "W"], ["y"], pads=[1, 1, 1, 1], strides=[2, 2])
    return helper.make_model(helper.make_graph([node], "conv", [x, W], [y]),
                             opset_imports=[helper.make_opsetid("", 17)])


def test_weights_given_as_inputs_are_taken_per_run():
    """The kernel is a graph input: each run builds (or reuses) the model for its value."""
    rng = np.random.default_rng(0)
    rep = backend.prepare(_conv_model())
    assert rep.constant_names == {"W"}
    x = rng.standard_normal((2, 1, 5, 5)).astype(np.float32)
    for _ in range(2):
        W = rng.standard_normal((3, 1, 3, 3)).astype(np.float32)
        (y,) = rep.run([x, W])
        ref = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(W), stride=2,
                                         padding=1).numpy()
        np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6)
    assert len(rep._cache) == 2
    rep.run({"x": x, "W": W})  # by name, the same weights: the cached model
    assert len(rep._cache) == 2
    out = backend.run_model(_conv_model(), [x, W])
    np.testing.assert_array_equal(out.y, y)


def test_run_node_and_integer_tensors():
    node = helper.make_node("Add", ["a", "b"], ["c"])
    a = np.array([100, -100, 7], np.int8)
    b = np.array([100, -100, 1], np.int8)
    (c,) = backend.run_node(node, [a, b])
    assert c.dtype == np.int8
    np.testing.assert_array_equal(c, a + b)  # wraps around as int8 arithmetic does
    node = helper.make_node("Div", ["a", "b"], ["c"])
    (q,) = backend.run_node(node, [np.array([7, -7], np.int32), np.array([2, 2], np.int32)])
    np.testing.assert_array_equal(q, [3, -3])  # ONNX truncates toward zero
    (s,) = backend.run_node(helper.make_node("Softmax", ["x"], ["y"], axis=0),
                            [np.array([[1.0, 2.0], [3.0, 5.0]])])
    assert s.dtype == np.float64
    np.testing.assert_allclose(s, torch.softmax(torch.tensor([[1.0, 2.0], [3.0, 5.0]],
                                                             dtype=torch.float64), 0).numpy())


def test_other_devices_and_too_many_inputs_are_refused():
    with pytest.raises(OnnxImportError, match="runs on the CPU"):
        backend.prepare(_conv_model(), "CUDA")
    rep = backend.prepare(_conv_model())
    with pytest.raises(ValueError, match="takes 2 inputs"):
        rep.run([np.zeros((2, 1, 5, 5), np.float32)] * 3)
