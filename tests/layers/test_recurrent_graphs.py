"""``Bidirectional``, padding masks, stateful layers and save/load (issue 12).

``Bidirectional`` against ``torch.nn.LSTM/GRU/RNN(bidirectional=True)`` (every merge mode
from PyTorch's two halves); variable-length batches through ``Masking`` and stacked layers
against PyTorch on packed sequences (``pack_padded_sequence``); a stateful layer over two
halves of a sequence against one pass over the whole; save → load → predict, with the
carried state."""

from __future__ import annotations

import numpy as np
import pytest

import numcnn
from numcnn.layers import GRU, LSTM, Bidirectional, Dense, Masking, SimpleRNN

torch = pytest.importorskip("torch")
from test_recurrent import NAMES, copy_weights, torch_grads, torch_twin  # noqa: E402

CLASSES = {"lstm": LSTM, "gru": GRU, "rnn": SimpleRNN}


def merge(mode, a, b):
    return {"concat": lambda: torch.cat([a, b], -1), "sum": lambda: a + b,
            "mul": lambda: a * b, "ave": lambda: (a + b) / 2}[mode]()


@pytest.mark.parametrize("path", ["fast", "reference"])
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("mode", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("seqs", [True, False])
def test_bidirectional_matches_torch(path, kind, mode, seqs):
    N, T, F, H = 3, 5, 4, 3
    rng = np.random.default_rng(0)
    layer = Bidirectional(CLASSES[kind](H, return_sequences=seqs, return_state=True),
                          merge_mode=mode, dtype="float64")
    x = rng.standard_normal((N, T, F))
    with numcnn.use_kernels(path):
        outs = layer(x)
    m = torch_twin(kind, F, H, bidirectional=True)
    copy_weights(layer.forward_layer, m)
    copy_weights(layer.backward_layer, m, suffix="_reverse")
    tx = torch.tensor(x, requires_grad=True)
    tout, tfin = m(tx)
    tfin = tfin if kind == "lstm" else (tfin,)
    if seqs:
        yf, yb = tout[..., :H], tout[..., H:]
    else:
        yf, yb = tfin[0][0], tfin[0][1]
    ty = [yf, yb] if mode is None else [merge(mode, yf, yb)]
    tstates = [s[0] for s in tfin] + [s[1] for s in tfin]
    expected = ty + tstates
    assert len(outs) == len(expected)
    for a, b in zip(outs, expected):
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=1e-11, atol=1e-12)
    dys = [rng.standard_normal(o.shape) for o in outs]
    sum((t * torch.tensor(d)).sum() for t, d in zip(expected, dys)).backward()
    dx = layer.backward(tuple(dys))
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-10, atol=1e-11)
    for d, inner, suffix in (("forward", layer.forward_layer, ""),
                             ("backward", layer.backward_layer, "_reverse")):
        for k, g in zip(NAMES, torch_grads(m, 0, suffix)):
            np.testing.assert_allclose(layer.grads[f"{d}_{k}"], g, rtol=1e-10, atol=1e-11)
            assert layer.grads[f"{d}_{k}"] is inner.grads[k]


def padded_batch(rng, N, T, F, lengths):
    x = rng.standard_normal((N, T, F))
    for n, L in enumerate(lengths):
        x[n, L:] = 0.0
    return x


@pytest.mark.parametrize("path", ["fast", "reference"])
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_masked_padding_matches_torch_on_packed_sequences(path, kind):
    """Masking → Bidirectional(return_sequences) → a second layer (the mask travels on) →
    its final state, against PyTorch's packed sequences: outputs and every gradient."""
    from torch.nn.utils.rnn import pack_padded_sequence

    N, T, F, H = 4, 6, 3, 2
    lengths = [6, 2, 4, 1]
    rng = np.random.default_rng(1)
    cls = CLASSES[kind]
    x_in = numcnn.Input((None, F), dtype="float64")
    h = Masking(0.0)(x_in)
    seq = Bidirectional(cls(H, return_sequences=True))(h)
    last = cls(H)(seq)
    model = numcnn.Model(x_in, [last, seq], seed=0)
    model.need_input_grad = True
    bi, top = model.layers[1], model.layers[2]
    m1 = torch_twin(kind, F, H, bidirectional=True)
    m2 = torch_twin(kind, 2 * H, H)
    copy_weights(bi.forward_layer, m1)
    copy_weights(bi.backward_layer, m1, suffix="_reverse")
    copy_weights(top, m2)
    x = padded_batch(rng, N, T, F, lengths)
    tx = torch.tensor(x, requires_grad=True)
    packed = pack_padded_sequence(tx, lengths, batch_first=True, enforce_sorted=False)
    p1, _ = m1(packed)
    _, fin2 = m2(p1)
    t_last = (fin2[0] if kind == "lstm" else fin2)[0]
    t_seq, _ = torch.nn.utils.rnn.pad_packed_sequence(p1, batch_first=True, total_length=T)
    with numcnn.use_kernels(path):
        last_y, seq_y = model.forward(x, training=True)
    np.testing.assert_allclose(last_y, t_last.detach().numpy(), rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(seq_y, t_seq.detach().numpy(), rtol=1e-11, atol=1e-12)
    d_last, d_seq = rng.standard_normal(last_y.shape), rng.standard_normal(seq_y.shape)
    ((t_last * torch.tensor(d_last)).sum() + (t_seq * torch.tensor(d_seq)).sum()).backward()
    dx = model.backward([d_last, d_seq])
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-10, atol=1e-11)
    for k, g in zip(NAMES, torch_grads(m2)):
        np.testing.assert_allclose(top.grads[k], g, rtol=1e-10, atol=1e-11)
    for k, g in zip(NAMES, torch_grads(m1, 0, "_reverse")):
        np.testing.assert_allclose(bi.grads["backward_" + k], g, rtol=1e-10, atol=1e-11)


def test_an_explicit_mask_input_equals_masking():
    N, T, F, H = 3, 5, 2, 4
    rng = np.random.default_rng(2)
    x = padded_batch(rng, N, T, F, [5, 3, 1])
    mask = np.any(x != 0, axis=-1).astype(np.float32)
    a_in = numcnn.Input((None, F))
    a = numcnn.Model(a_in, GRU(H)(Masking()(a_in)), seed=0)
    b_in, m_in = numcnn.Input((None, F)), numcnn.Input((None,))
    b = numcnn.Model([b_in, m_in], GRU(H)(b_in, mask=m_in), seed=0)
    b.set_weights(a.get_weights())
    x = x.astype(np.float32)
    np.testing.assert_allclose(a.predict(x), b.predict([x, mask]), rtol=1e-6)
    # on arrays the mask may be boolean or integer (the ids of Embedding(mask_zero=True))
    layer = b.layers[0]
    for m in (mask.astype(bool), mask.astype(np.int64)):
        np.testing.assert_array_equal(layer(x, mask=m), layer(x, mask=mask))
    # padding after the end changes nothing
    longer = np.concatenate([x, np.zeros((N, 3, F), np.float32)], axis=1)
    np.testing.assert_allclose(a.predict(longer), a.predict(x), rtol=1e-6)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_stateful_over_two_halves_equals_one_pass(kind, tmp_path):
    N, T, F, H = 3, 8, 2, 4
    rng = np.random.default_rng(3)
    cls = CLASSES[kind]
    x_in = numcnn.Input((None, F))
    state_model = numcnn.Model(x_in, cls(H, return_sequences=True, stateful=True,
                                         batch_size=N)(x_in), seed=0)
    plain_in = numcnn.Input((None, F))
    plain = numcnn.Model(plain_in, cls(H, return_sequences=True)(plain_in), seed=0)
    plain.set_weights({k: v for k, v in state_model.get_weights().items()
                       if k.split("/")[-1] not in ("h", "c")})
    x = rng.standard_normal((N, T, F)).astype(np.float32)
    whole = plain.predict(x)
    first = state_model.predict(x[:, :3])
    layer = state_model.layers[0]
    assert set(layer.buffers) == ({"h", "c"} if kind == "lstm" else {"h"})
    np.testing.assert_array_equal(layer.buffers["h"], first[:, -1])
    numcnn.save_model(state_model, tmp_path / "stateful.npz")  # the carried state is saved
    second = state_model.predict(x[:, 3:])
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), whole, rtol=1e-5,
                               atol=1e-6)
    resumed = numcnn.load_model(tmp_path / "stateful.npz")
    np.testing.assert_allclose(resumed.predict(x[:, 3:]), second, rtol=1e-6, atol=1e-7)
    layer.reset_states()
    np.testing.assert_allclose(state_model.predict(x[:, :3]), first, rtol=1e-6)
    with pytest.raises(ValueError, match="batch_size=3"):
        state_model.predict(x[:2])


def test_stateful_layer_trains_by_truncated_bptt():
    """Gradients stop at the batch boundary: the carried state is a constant."""
    N, F, H = 2, 3, 4
    rng = np.random.default_rng(4)
    x_in = numcnn.Input((None, F), dtype="float64")
    model = numcnn.Model(x_in, Dense(1)(LSTM(H, stateful=True, batch_size=N)(x_in)), seed=0)
    model.compile("sgd", "mse", metrics=[])
    x, y = rng.standard_normal((N, 5, F)), rng.standard_normal((N, 1))
    model.fit(x, y, epochs=2, batch_size=N, shuffle=False, verbose=0)
    assert np.abs(model.layers[0].buffers["h"]).sum() > 0


def test_save_load_predict_with_states_masks_and_bidirectional(tmp_path):
    F, H = 3, 4
    x_in = numcnn.Input((None, F))
    h0, c0 = numcnn.Input((H,)), numcnn.Input((H,))
    masked = Masking(-1.0)(x_in)
    seq = Bidirectional(GRU(H, return_sequences=True), merge_mode="sum")(masked)
    y, h, c = LSTM(H, return_state=True, go_backwards=True)(seq, initial_state=[h0, c0])
    r = SimpleRNN(2, activation="relu")(seq)
    model = numcnn.Model([x_in, h0, c0], [Dense(2)(y), h, c, r], seed=5)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 6, F)).astype(np.float32)
    x[1, 4:] = -1.0
    xs = [x, rng.standard_normal((4, H)).astype(np.float32),
          rng.standard_normal((4, H)).astype(np.float32)]
    numcnn.save_model(model, tmp_path / "rnn.npz")
    loaded = numcnn.load_model(tmp_path / "rnn.npz")
    for a, b in zip(model.predict(xs), loaded.predict(xs)):
        np.testing.assert_array_equal(a, b)
    assert loaded.get_layer("bidirectional").backward_layer.go_backwards
    cfg = loaded.get_layer("lstm").get_config()
    assert cfg["initial_state_input"] and cfg["mask_input"] == {"mask_value": -1.0}


def test_bidirectional_arguments():
    with pytest.raises(TypeError, match="SimpleRNN, LSTM or GRU"):
        Bidirectional(Dense(3))
    with pytest.raises(ValueError, match="merge_mode"):
        Bidirectional(LSTM(3), merge_mode="max")
    with pytest.raises(ValueError, match="return_sequences"):
        Bidirectional(LSTM(3), backward_layer=LSTM(3, return_sequences=True))
    # halves of different sizes built but declared twice the forward size (a Dense after
    # them was built for 6 inputs and received 7): refused, one hidden size as torch's
    with pytest.raises(ValueError, match="same units; received 3 and 4"):
        Bidirectional(LSTM(3), backward_layer=LSTM(4, go_backwards=True))
    b = Bidirectional(LSTM(3, name="enc"))
    assert b.backward_layer.go_backwards and not b.forward_layer.go_backwards
    assert b.backward_layer.name == "backward_enc"


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_bidirectional_with_initial_states_and_padding_matches_torch(kind):
    """Initial states for both directions as extra inputs, a padded batch (the mask as an
    input), the last states only: against PyTorch's packed bidirectional module."""
    from torch.nn.utils.rnn import pack_padded_sequence

    N, T, F, H = 3, 5, 2, 3
    lengths = [5, 2, 3]
    n_states = 2 if kind == "lstm" else 1
    rng = np.random.default_rng(6)
    layer = Bidirectional(CLASSES[kind](H, return_state=True), merge_mode="concat",
                          dtype="float64")
    x = padded_batch(rng, N, T, F, lengths)
    mask = (np.arange(T)[None] < np.array(lengths)[:, None]).astype(np.float64)
    states = [rng.standard_normal((N, H)) for _ in range(2 * n_states)]
    outs = layer(x, initial_state=states, mask=mask)
    m = torch_twin(kind, F, H, bidirectional=True)
    copy_weights(layer.forward_layer, m)
    copy_weights(layer.backward_layer, m, suffix="_reverse")
    tx = torch.tensor(x, requires_grad=True)
    # PyTorch's states: (2, N, H), direction-major; ours: forward h (, c), backward h (, c)
    ts = [torch.tensor(np.stack([states[k], states[n_states + k]]), requires_grad=True)
          for k in range(n_states)]
    packed = pack_padded_sequence(tx, lengths, batch_first=True, enforce_sorted=False)
    _, tfin = m(packed, tuple(ts) if kind == "lstm" else ts[0])
    tfin = tfin if kind == "lstm" else (tfin,)
    expected = [torch.cat([tfin[0][0], tfin[0][1]], -1)]
    expected += [tfin[k][0] for k in range(n_states)] + [tfin[k][1] for k in range(n_states)]
    for a, b in zip(outs, expected):
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=1e-11, atol=1e-12)
    dys = [rng.standard_normal(o.shape) for o in outs]
    sum((t * torch.tensor(d)).sum() for t, d in zip(expected, dys)).backward()
    grads = layer.backward(tuple(dys))
    np.testing.assert_allclose(grads[0], tx.grad.numpy(), rtol=1e-10, atol=1e-11)
    for k in range(n_states):
        np.testing.assert_allclose(grads[1 + k], ts[k].grad.numpy()[0], rtol=1e-10,
                                   atol=1e-11)
        np.testing.assert_allclose(grads[1 + n_states + k], ts[k].grad.numpy()[1],
                                   rtol=1e-10, atol=1e-11)
    assert grads[-1] is None  # the mask
    for k, g in zip(NAMES, torch_grads(m, 0, "_reverse")):
        np.testing.assert_allclose(layer.grads["backward_" + k], g, rtol=1e-10, atol=1e-11)
