"""``numcnn export model.npz model.onnx [--opset N] [--fixed-batch]``: the file it writes runs
in ONNX Runtime with numcnn's outputs; every error is one line and leaves nothing behind."""

from __future__ import annotations

import os

import numpy as np
import pytest
from export_harness import run_onnx

import numcnn
from _cli import one_error_line, run_cli
from numcnn.layers import LSTM, Input
from numcnn.models import lenet5

onnx = pytest.importorskip("onnx")




@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "model.npz"
    model = lenet5(seed=0)
    numcnn.save_model(model, path, extra={"dataset": "mnist", "pixel_scale": 1 / 255})
    return path, model


@pytest.mark.parametrize("opset", [None, 9])
def test_export_writes_a_graph_onnxruntime_runs(capsys, tmp_path, saved, opset):
    path, model = saved
    out = tmp_path / "model.onnx"
    code, text, err = run_cli(capsys, "export", path, out,
                              *(() if opset is None else ("--opset", opset)))
    assert code == 0, err
    assert text.startswith(f"wrote {out}") and "input input_0 (N, 1, 28, 28)" in text
    proto = onnx.load(str(out))
    assert proto.opset_import[0].version == (opset or 17)
    x = np.random.default_rng(0).random((5, 1, 28, 28), dtype=np.float32)
    got, _ = run_onnx(proto, [x])
    np.testing.assert_allclose(got[0], model.predict(x), rtol=1e-4, atol=1e-5)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert '"kind": "mnist_digit"' in meta["numcnn.preprocessing"]


def test_fixed_batch(capsys, tmp_path, saved):
    out = tmp_path / "m.onnx"
    code, text, _ = run_cli(capsys, "export", saved[0], out, "--fixed-batch")
    assert code == 0 and "(1, 1, 28, 28)" in text
    assert onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1


@pytest.mark.parametrize("args,expected,code", [
    (("{tmp}/missing.npz", "{tmp}/m.onnx"), "no model file at", 1),
    (("{tmp}/notes.txt", "{tmp}/m.onnx"), "not a readable numcnn model file", 1),
    (("{model}", "{tmp}/m.onnx", "--opset", "8"), "opset must be an int from 9 to", 1),
    (("{model}", "{tmp}/m.onnx", "--opset", "999"), "opset must be an int from 9 to", 1),
    (("{model}", "{tmp}/m.onnx", "--opset", "x"), "--opset must be an int; received 'x'", 2),
    (("{model}", "{tmp}"), "is a folder; expected a file name", 1),
    (("{model}", "{model}"), "would replace the model file itself", 1),
    (("{model}",), "the following arguments are required: output", 2),
])
def test_errors_are_one_line_and_write_nothing(capsys, tmp_path, saved, args, expected, code):
    (tmp_path / "notes.txt").write_text("not a model")
    before = sorted(os.listdir(tmp_path))
    stamp = os.stat(saved[0]).st_mtime_ns
    argv = [a.format(tmp=tmp_path, model=saved[0]) for a in args]
    got, _, err = run_cli(capsys, "export", *argv)
    assert got == code
    assert expected in one_error_line(err)
    assert sorted(os.listdir(tmp_path)) == before
    assert os.stat(saved[0]).st_mtime_ns == stamp


def test_a_layer_that_cannot_be_exported_is_named(capsys, tmp_path):
    x = Input((4, 3))
    model = numcnn.Model(x, LSTM(2, stateful=True, batch_size=3, name="memory")(x))
    numcnn.save_model(model, tmp_path / "m.npz")
    code, _, err = run_cli(capsys, "export", tmp_path / "m.npz", tmp_path / "m.onnx")
    assert code == 1
    assert "cannot export layer 'memory' (LSTM): stateful=True" in one_error_line(err)
    assert not (tmp_path / "m.onnx").exists()
