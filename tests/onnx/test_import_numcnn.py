"""numcnn → ONNX → numcnn (issue 14): models of the zoo and recurrent graphs written by
``numcnn.onnx.export`` and read back by ``numcnn.onnx.load`` compute the same outputs and,
after one ``fit`` step, hold the same weights as the originals.

In float64 the copy equals the original to 1e-10 (the same layers, in places other
layers computing the same function: ``Gemm`` → ``Dense``, a Bidirectional LSTM → one
``RecurrentOp``); in float32 it is as close to the float64 original as the float32 original
is (4× its error, plus a few ulps of the output's magnitude).
"""

from __future__ import annotations

import numpy as np
import pytest

import numcnn
import numcnn.onnx
from numcnn.layers import GRU, LSTM, Bidirectional, Dense, Input
from numcnn.models import lenet5, lenet5_1998, resnet20

pytest.importorskip("onnx")
EPS32 = float(np.finfo(np.float32).eps)


def _recurrent(dtype):
    x = Input((5, 3), dtype=dtype)
    y = Bidirectional(LSTM(4, return_sequences=True))(x)
    y = Dense(2)(GRU(3)(y))
    return numcnn.Model(x, y, seed=0)


MODELS = {
    "lenet5": lambda dtype: lenet5(seed=0, dtype=dtype),
    "lenet5_1998": lambda dtype: lenet5_1998(seed=0, dtype=dtype),
    "resnet20": lambda dtype: resnet20(seed=0, dtype=dtype),
    "recurrent": _recurrent,
}
KEYS = {"forward_": "", "backward_": "_reverse"}  # Bidirectional's keys -> RecurrentOp's


def _key(name):
    """The imported model's name of an original weight."""
    layer, key = name.split("/")
    for old, suffix in KEYS.items():
        if key.startswith(old):
            return f"{layer}/{key[len(old):]}{suffix}"
    return name


def _data(model, n, rng):
    return rng.standard_normal((n,) + tuple(model.input_shape))


def _randomise_statistics(model, rng):
    for layer in model.leaf_layers():
        if "running_var" in layer.buffers:
            layer.buffers["running_mean"][...] = rng.uniform(-0.3, 0.3,
                                                             layer.buffers["running_mean"].shape)
            layer.buffers["running_var"][...] = rng.uniform(0.5, 1.5,
                                                            layer.buffers["running_var"].shape)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_round_trip_outputs(name, tmp_path):
    rng = np.random.default_rng(0)
    m64 = MODELS[name]("float64")
    _randomise_statistics(m64, rng)
    m32 = MODELS[name]("float32")
    m32.set_weights({k: v.astype(np.float32) for k, v in m64.get_weights().items()})
    numcnn.onnx.export(m64, tmp_path / "m64.onnx")
    numcnn.onnx.export(m32, tmp_path / "m32.onnx")
    c64 = numcnn.onnx.load(tmp_path / "m64.onnx")
    c32 = numcnn.onnx.load(tmp_path / "m32.onnx")
    assert c64.dtype == np.float64 and c32.dtype == np.float32
    for n in (1, 7):
        x = _data(m64, n, rng)
        ref64 = m64.predict(x)
        ref32 = m32.predict(x.astype(np.float32))
        scale = max(float(np.abs(ref64).max()), 1.0)
        np.testing.assert_allclose(c64.predict(x), ref64, rtol=0, atol=1e-10 * scale)
        got = c32.predict(x.astype(np.float32))
        assert got.dtype == np.float32
        allowed = 4 * float(np.abs(ref32 - ref64).max()) + 16 * EPS32 * scale
        assert float(np.abs(got - ref64).max()) <= allowed


@pytest.mark.parametrize("name", ["lenet5", "recurrent"])
def test_round_trip_fit_step(name, tmp_path):
    rng = np.random.default_rng(1)
    model = MODELS[name]("float64")
    _randomise_statistics(model, rng)
    numcnn.onnx.export(model, tmp_path / "m.onnx")
    copy = numcnn.onnx.load(tmp_path / "m.onnx")
    before = model.get_weights()
    imported = copy.get_weights()
    assert {_key(k) for k in before} == set(imported)
    for k, v in before.items():
        np.testing.assert_array_equal(imported[_key(k)], v, err_msg=k)
    x = _data(model, 6, rng)
    out = model.output_shape()
    if name == "recurrent":
        y, loss = rng.standard_normal((6,) + tuple(out)), "mse"
    else:
        y, loss = rng.integers(0, out[0], 6), "softmax_cross_entropy"
    for m in (model, copy):
        m.compile(numcnn.optimizers.SGD(lr=0.05, momentum=0.9), loss, metrics=[])
        m.fit(x, y, batch_size=3, epochs=1, shuffle=False, verbose=0)
    after = copy.get_weights()
    trained = model.get_weights()
    assert sum(not np.array_equal(v, before[k]) for k, v in trained.items()) > len(before) // 2
    for k, v in trained.items():
        np.testing.assert_allclose(after[_key(k)], v, rtol=1e-10, atol=1e-12, err_msg=k)


def test_round_trip_fit_step_float32_resnet20(tmp_path):
    """A float64 BatchNorm's ε is folded into the variance by the exporter (ONNX keeps ε in
    float32), which changes training; in float32 ε is exact: after one SGD step the copy's
    weights are as close to the float64 original's as the float32 original's are."""
    rng = np.random.default_rng(2)
    m64 = resnet20(seed=0, dtype="float64")
    _randomise_statistics(m64, rng)
    m32 = resnet20(seed=0, dtype="float32")
    m32.set_weights({k: v.astype(np.float32) for k, v in m64.get_weights().items()})
    numcnn.onnx.export(m32, tmp_path / "m.onnx")
    copy = numcnn.onnx.load(tmp_path / "m.onnx")
    x = _data(m64, 4, rng)
    y = rng.integers(0, 10, 4)
    for m in (m64, m32, copy):
        m.compile(numcnn.optimizers.SGD(lr=0.05), "softmax_cross_entropy", metrics=[])
        m.fit(x.astype(m.dtype), y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    w64, w32, wc = m64.get_weights(), m32.get_weights(), copy.get_weights()
    for k, ref in w64.items():
        own = float(np.abs(w32[k] - ref).max())
        err = float(np.abs(wc[k] - ref).max())
        assert err <= 4 * own + 16 * EPS32 * max(float(np.abs(ref).max()), 1.0), k
