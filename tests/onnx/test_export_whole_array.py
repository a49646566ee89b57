"""The whole-array layers (what the ONNX import builds) exported back, beyond the contract
examples: ONNX's recurrent operator with every optional input and output in both layouts,
max pooling's indices, ``ceil_mode`` on dilated windows, padding modes with cropping, the
tied dense layer — run in ONNX Runtime against numcnn as ``export_harness`` does."""

from __future__ import annotations

import numpy as np
import pytest
from export_harness import check_model, infer, normal_inputs, run_onnx

import numcnn
from numcnn.layers import Dense, Input, PadND, PoolND, RecurrentOp, ReLU
from numcnn.layers.tied import DenseTranspose
from numcnn.onnx.exporter import to_onnx

T, F, H = 5, 3, 4


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_recurrent_op_with_lengths_and_states_batch_first(cell, direction):
    D = 2 if direction == "bidirectional" else 1
    states = ["initial_h", "initial_c"][:2 if cell == "lstm" else 1]
    layer = RecurrentOp(cell, H, direction=direction, layout=1,
                        inputs=["sequence_lens"] + states,
                        linear_before_reset=cell == "gru" and direction != "reverse")
    x, lens = Input((T, F)), Input(())
    hs = [Input((D, H)) for _ in states]
    ys = layer([x, lens] + hs)
    model = numcnn.Model([x, lens] + hs, list(ys), seed=1)

    def make(rng, n, dtype):
        return ([rng.standard_normal((n, T, F)).astype(dtype),
                 rng.integers(0, T + 1, n).astype(dtype)]
                + [rng.standard_normal((n, D, H)).astype(dtype) for _ in states])

    info = check_model(model, make)
    node = [n for n in info["proto"].graph.node if n.op_type in ("RNN", "LSTM", "GRU")]
    assert len(node) == 1 and node[0].name == "recurrentop"


def test_recurrent_op_time_first_with_options():
    """layout 0 (axis 0 is time, not the batch), peepholes, input_forget, clip, and
    activations that are not the defaults."""
    layer = RecurrentOp("lstm", H, layout=0, peepholes=True, input_forget=True, clip=2.5,
                        activations=["HardSigmoid", "Tanh", "Softsign"],
                        activation_alpha=[0.25], activation_beta=[0.5],
                        inputs=["initial_h"])
    x, h0 = Input((3, F)), Input((3, H))  # X (T, N=3, F), initial_h (D=1, N=3, H)
    model = numcnn.Model([x, h0], list(layer([x, h0])), seed=2)
    proto = to_onnx(model)
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((T, 3, F)).astype(np.float32),
          rng.standard_normal((1, 3, H)).astype(np.float32)]
    got, _ = run_onnx(proto, xs)
    for g, r in zip(got, infer(model, xs)):
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("storage_order", [0, 1])
def test_max_pool_indices(storage_order):
    x = Input((2, 7, 6))
    y, idx = PoolND("max", (3, 2), stride=2, padding=(1, 0, 1, 1), ceil_mode=True,
                    return_indices=True, storage_order=storage_order)(x)
    model = numcnn.Model(x, [y, idx], seed=3)
    check_model(model, normal_inputs([(2, 7, 6)]), float64=False)


@pytest.mark.parametrize("kind", ["max", "avg", "lp"])
def test_dilated_ceil_mode_pools(kind):
    x = Input((2, 9, 8))
    layer = PoolND(kind, (3, 2), stride=(2, 3), dilation=(2, 1), padding=(1, 0, 1, 1),
                   ceil_mode=True, count_include_pad=True, p=2.5)
    check_model(numcnn.Model(x, layer(x), seed=4), normal_inputs([(2, 9, 8)]))


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
def test_padding_modes_with_cropping(mode):
    x = Input((5, 4))
    y = PadND((0, -1, 3, 0, 2, -2), mode=mode, value=0.25)(x)  # crop and pad, both ends
    check_model(numcnn.Model(x, y, seed=5), normal_inputs([(5, 4)]))


def test_tied_dense_shares_one_initializer():
    x = Input((6,))
    enc = Dense(3, name="encoder")
    h = ReLU()(enc(x))
    model = numcnn.Model(x, [h, DenseTranspose(enc, name="decoder")(h)], seed=6)
    proto = to_onnx(model)  # no float64 twin: a tied layer has no config to rebuild from
    inits = [i.name for i in proto.graph.initializer]
    assert "encoder/W" in inits and not any("owner_W" in n for n in inits)
    for opset in (9, 17):
        xs = [np.random.default_rng(opset).standard_normal((7, 6)).astype(np.float32)]
        got, _ = run_onnx(to_onnx(model, opset), xs)
        for g, r in zip(got, infer(model, xs)):
            np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-6)
