"""The recurrent layers as ONNX ``RNN``/``LSTM``/``GRU`` nodes, run in ONNX Runtime against
numcnn: every cell, both reading directions, last state or every step, the final states,
initial states as inputs, padding masks anywhere in a sequence (from ``Masking``, an
explicit mask input, ``Embedding(mask_zero=True)``; an all-padding sequence too), free
sequence lengths, and ``Bidirectional`` with every merge mode — as one bidirectional node
or, when its halves differ, two."""

from __future__ import annotations

import pytest
from export_harness import check_model, normal_inputs

import numcnn
from numcnn.layers import (
    GRU,
    LSTM,
    Bidirectional,
    Dense,
    Embedding,
    Input,
    Masking,
    SimpleRNN,
    TimeDistributed,
)
from numcnn.onnx.converters import ExportError
from numcnn.onnx.exporter import to_onnx

T, F, H = 5, 3, 4
CELLS = {"rnn": lambda **kw: SimpleRNN(H, **kw),
         "rnn_relu": lambda **kw: SimpleRNN(H, activation="relu", **kw),
         "lstm": lambda **kw: LSTM(H, **kw), "gru": lambda **kw: GRU(H, **kw)}


def padded(mask_value: float = 0.0):
    """Sequences (N, T, F) with padding steps anywhere — left, middle, right — and the
    second sequence all padding (zero real steps)."""
    def make(rng, n, dtype):
        x = rng.standard_normal((n, T, F)).astype(dtype)
        pad = rng.random((n, T)) < 0.4
        if n > 1:
            pad[1] = True
        x[pad] = mask_value
        return [x]
    return make


def graph_ops(info):
    return [n.op_type for n in info["proto"].graph.node]


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("seq,back", [(False, False), (True, False), (False, True),
                                      (True, True)])
def test_cell_directions_and_states(cell, seq, back):
    x = Input((T, F))
    ys = CELLS[cell](return_sequences=seq, go_backwards=back, return_state=True)(x)
    info = check_model(numcnn.Model(x, list(ys), seed=1), normal_inputs([(T, F)]))
    op = {"rnn": "RNN", "rnn_relu": "RNN", "lstm": "LSTM", "gru": "GRU"}[cell]
    assert graph_ops(info).count(op) == 1


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_initial_states_are_inputs(cell):
    x = Input((T, F))
    states = [Input((H,)) for _ in range(2 if cell == "lstm" else 1)]
    y = CELLS[cell](return_sequences=True)(x, initial_state=states)
    model = numcnn.Model([x] + states, y, seed=2)
    info = check_model(model, normal_inputs([(T, F)] + [(H,)] * len(states)))
    assert len(info["proto"].graph.input) == 1 + len(states)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("seq,back", [(True, False), (False, True), (True, True)])
def test_masking_anywhere_in_the_sequence(cell, seq, back):
    x = Input((T, F))
    y = CELLS[cell](return_sequences=seq, go_backwards=back, return_state=True)(
        Masking(0.0)(x))
    info = check_model(numcnn.Model(x, list(y), seed=3), padded(0.0))
    assert info["opsets"][0] == 11
    assert {"ScatterElements", "GatherElements" if seq else "CumSum"} <= set(graph_ops(info))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_all_padding_keeps_the_initial_state(cell):
    """A sequence with no real step ends in its initial state (numcnn's recurrence; ONNX
    Runtime outputs zeros for ``sequence_lens`` 0, so the graph puts the state back)."""
    x = Input((T, F))
    states = [Input((H,)) for _ in range(2 if cell == "lstm" else 1)]
    ys = CELLS[cell](return_state=True)(Masking(0.0)(x), initial_state=states)
    model = numcnn.Model([x] + states, list(ys), seed=9)

    def make(rng, n, dtype):
        return padded()(rng, n, dtype) + [rng.standard_normal((n, H)).astype(dtype)
                                          for _ in states]

    info = check_model(model, make)
    assert "Where" in graph_ops(info)


def test_explicit_mask_input_and_free_length():
    x, m = Input((None, F)), Input((None,))
    y = LSTM(H, return_sequences=True)(x, mask=m)
    model = numcnn.Model([x, m], TimeDistributed(Dense(2))(y), seed=4)

    def make(rng, n, dtype):
        mask = (rng.random((n, 6)) < 0.7).astype(dtype)
        return [rng.standard_normal((n, 6, F)).astype(dtype), mask]

    check_model(model, make)


def test_embedding_mask_zero_tagger():
    ids = Input((T,))
    h = GRU(H, return_sequences=True)(Embedding(7, F, mask_zero=True)(ids))
    model = numcnn.Model(ids, TimeDistributed(Dense(3))(h), seed=5)

    def make(rng, n, dtype):
        tok = rng.integers(1, 7, (n, T))
        tok[:, -2:] = 0  # right padding, then a padding step in the middle too
        tok[0, 1] = 0
        return [tok.astype(dtype)]

    check_model(model, make)


@pytest.mark.parametrize("merge", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("seq", [False, True])
def test_bidirectional_one_node(merge, seq):
    x = Input((T, F))
    y = Bidirectional(LSTM(H, return_sequences=seq, return_state=True), merge_mode=merge)(x)
    info = check_model(numcnn.Model(x, list(y), seed=6), normal_inputs([(T, F)]))
    node = [n for n in info["proto"].graph.node if n.op_type == "LSTM"]
    assert len(node) == 1 and node[0].name == "bidirectional"
    assert any(a.name == "direction" and a.s == b"bidirectional" for a in node[0].attribute)


@pytest.mark.parametrize("cell", ["rnn_relu", "gru"])
def test_bidirectional_with_states_and_mask(cell):
    x = Input((T, F))
    states = [Input((H,)), Input((H,))]
    layer = Bidirectional(CELLS[cell](return_sequences=True), merge_mode="concat")
    y = layer(Masking(0.0)(x), initial_state=states)
    model = numcnn.Model([x] + states, y, seed=7)

    def make(rng, n, dtype):
        return padded()(rng, n, dtype) + [rng.standard_normal((n, H)).astype(dtype)
                                          for _ in states]

    check_model(model, make)


@pytest.mark.parametrize("seq", [False, True])
def test_bidirectional_whose_halves_differ_is_two_nodes(seq):
    x = Input((T, F))
    a = Bidirectional(LSTM(H, return_sequences=seq), backward_layer=LSTM(
        H, return_sequences=seq), merge_mode="concat")(x)  # both halves read forwards
    b = Bidirectional(GRU(H, return_sequences=seq, go_backwards=True), merge_mode="sum")(x)
    info = check_model(numcnn.Model(x, [a, b], seed=8), normal_inputs([(T, F)]))
    ops = graph_ops(info)
    assert ops.count("LSTM") == 2 and ops.count("GRU") == 2


def test_stateful_layer_is_refused_naming_it():
    x = Input((T, F))
    model = numcnn.Model(x, LSTM(H, stateful=True, batch_size=2, name="memory")(x))
    with pytest.raises(ExportError, match=r"layer 'memory' \(LSTM\): stateful=True"):
        to_onnx(model)


def test_a_mask_below_opset_11_is_refused():
    x = Input((T, F))
    model = numcnn.Model(x, GRU(H, name="tagger")(Masking()(x)))
    with pytest.raises(ExportError, match=r"'masking' \(Masking\).* opset 9"):
        to_onnx(model, 9)
    m = Input((T,))
    model = numcnn.Model([x, m], GRU(H, name="tagger")(x, mask=m))
    with pytest.raises(ExportError, match=r"'tagger' \(GRU\): a padding mask .* opset 11"):
        to_onnx(model, 10)
