"""``RecurrentOp`` (ONNX's RNN/LSTM/GRU as a layer) against ``torch.nn.RNN/LSTM/GRU``
(both layouts, both directions, initial states, padded sequences), its ONNX-only cells
against the equations written as loops here, and every gradient against PyTorch or central
differences."""

from __future__ import annotations

import numpy as np
import pytest

from numcnn.layers import RecurrentOp
from references import check_grad

torch = pytest.importorskip("torch")
nn = torch.nn
_TORCH = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def _twin(cell, layer, F, H, bidirectional):
    net = _TORCH[cell](F, H, bidirectional=bidirectional).double()
    with torch.no_grad():
        for s in ["", "_reverse"][:1 + bidirectional]:
            for k in ("W_ih", "W_hh", "b_ih", "b_hh"):
                name = {"W_ih": "weight_ih_l0", "W_hh": "weight_hh_l0", "b_ih": "bias_ih_l0",
                        "b_hh": "bias_hh_l0"}[k] + s
                getattr(net, name).copy_(torch.tensor(layer.params[k + s]))
    return net


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
@pytest.mark.parametrize("layout", [0, 1])
def test_matches_torch_with_initial_states(cell, direction, layout):
    rng = np.random.default_rng(0)
    T, N, F, H = 5, 3, 2, 4
    D = 2 if direction == "bidirectional" else 1
    n_st = 2 if cell == "lstm" else 1
    roles = ["initial_h", "initial_c"][:n_st]
    layer = RecurrentOp(cell, H, direction, layout, linear_before_reset=True, inputs=roles,
                        dtype="float64")
    x = rng.standard_normal((T, N, F))
    states = [rng.standard_normal((D, N, H)) for _ in roles]
    xs = [x.transpose(1, 0, 2).copy() if layout else x] + [
        s.transpose(1, 0, 2).copy() if layout else s for s in states]
    layer.build([a.shape[1:] for a in xs], rng)
    outs = layer.forward(xs, training=True)
    net = _twin(cell, layer, F, H, D == 2)
    xt = torch.tensor(x, requires_grad=True)
    st = [torch.tensor(s, requires_grad=True) for s in states]
    yt, hn = net(xt, tuple(st) if cell == "lstm" else st[0])
    hn = hn if cell == "lstm" else (hn,)
    Y = yt.reshape(T, N, D, H).permute(0, 2, 1, 3)  # ONNX layout 0: (T, D, N, H)
    refs = [Y] + list(hn)
    if layout:
        refs = [Y.permute(2, 0, 1, 3)] + [h.permute(1, 0, 2) for h in hn]
    for got, ref in zip(outs, refs):
        np.testing.assert_allclose(got, ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    dys = [rng.standard_normal(o.shape) for o in outs]
    torch.autograd.backward(refs, [torch.tensor(d) for d in dys])
    dxs = layer.backward(tuple(dys))
    np.testing.assert_allclose(dxs[0], xt.grad.numpy().transpose(1, 0, 2) if layout
                               else xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    for d, s in zip(dxs[1:], st):
        g = s.grad.numpy()
        np.testing.assert_allclose(d, g.transpose(1, 0, 2) if layout else g, rtol=1e-10,
                                   atol=1e-12)
    np.testing.assert_allclose(layer.grads["W_hh"], net.weight_hh_l0.grad.numpy(),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_sequence_lens_equal_packed_sequences(cell):
    rng = np.random.default_rng(1)
    T, N, F, H = 6, 4, 3, 2
    lens = np.array([6, 2, 4, 1])
    layer = RecurrentOp(cell, H, "bidirectional", 1, linear_before_reset=True,
                        inputs=["sequence_lens"], dtype="float64")
    x = rng.standard_normal((N, T, F))
    layer.build([(T, F), ()], rng)
    outs = layer([x, lens.astype(np.float64)])
    net = _twin(cell, layer, F, H, True)
    packed = nn.utils.rnn.pack_padded_sequence(torch.tensor(x), torch.tensor(lens),
                                               batch_first=True, enforce_sorted=False)
    yp, hn = net(packed)
    yt, _ = nn.utils.rnn.pad_packed_sequence(yp, batch_first=True, total_length=T)
    h = hn[0] if cell == "lstm" else hn
    np.testing.assert_allclose(outs[0], yt.reshape(N, T, 2, H).detach().numpy(), rtol=1e-10,
                               atol=1e-12)
    np.testing.assert_allclose(outs[1], h.permute(1, 0, 2).detach().numpy(), rtol=1e-10)


def gru_before_reset_ref(x, h, W, R, bw, br):
    """ONNX's default GRU (linear_before_reset = 0), gates in numcnn's order r, z, n:
    ``n = tanh(W_n x + b_Wn + R_n (r ⊙ h) + b_Rn)``."""
    H = h.shape[1]
    sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    ys = []
    for t in range(x.shape[1]):
        r = sig(x[:, t] @ W[:H].T + bw[:H] + h @ R[:H].T + br[:H])
        z = sig(x[:, t] @ W[H:2 * H].T + bw[H:2 * H] + h @ R[H:2 * H].T + br[H:2 * H])
        n = np.tanh(x[:, t] @ W[2 * H:].T + bw[2 * H:] + (r * h) @ R[2 * H:].T + br[2 * H:])
        h = (1 - z) * n + z * h
        ys.append(h)
    return np.stack(ys, 1), h


def lstm_peephole_ref(x, h, c, W, R, b, P):
    """The LSTM with peepholes, gates i, f, g, o: ``o`` reads the new cell state."""
    H = h.shape[1]
    sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    ys = []
    for t in range(x.shape[1]):
        a = x[:, t] @ W.T + h @ R.T + b
        i = sig(a[:, :H] + P[0] * c)
        f = sig(a[:, H:2 * H] + P[1] * c)
        c = f * c + i * np.tanh(a[:, 2 * H:3 * H])
        o = sig(a[:, 3 * H:] + P[2] * c)
        h = o * np.tanh(c)
        ys.append(h)
    return np.stack(ys, 1), h, c


def test_onnx_cells_match_their_equations():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4, 2))
    gru = RecurrentOp("gru", 5, layout=1, dtype="float64")
    gru.build((4, 2), rng)
    p = gru.params
    Y, Yh = gru(x)
    ref_y, ref_h = gru_before_reset_ref(x, np.zeros((3, 5)), p["W_ih"], p["W_hh"], p["b_ih"],
                                        p["b_hh"])
    np.testing.assert_allclose(Y[:, :, 0], ref_y, rtol=1e-12)
    np.testing.assert_allclose(Yh[:, 0], ref_h, rtol=1e-12)
    lstm = RecurrentOp("lstm", 3, layout=1, peepholes=True, dtype="float64")
    lstm.build((4, 2), rng)
    q = lstm.params
    Y, Yh, Yc = lstm(x)
    ref_y, ref_h, ref_c = lstm_peephole_ref(x, np.zeros((3, 3)), np.zeros((3, 3)), q["W_ih"],
                                            q["W_hh"], q["b_ih"] + q["b_hh"], q["P"])
    np.testing.assert_allclose(Y[:, :, 0], ref_y, rtol=1e-12)
    np.testing.assert_allclose(Yc[:, 0], ref_c, rtol=1e-12)


@pytest.mark.parametrize("kwargs", [
    dict(cell="gru", direction="bidirectional"),
    dict(cell="lstm", peepholes=True, direction="reverse"),
    dict(cell="lstm", clip=0.8, input_forget=True),
    dict(cell="rnn", activations=["HardSigmoid"], activation_alpha=[0.3],
         activation_beta=[0.4]),
    dict(cell="gru", activations=["Elu", "Softsign"], clip=1.2),
])
def test_onnx_options_back_propagate_exactly(kwargs):
    rng = np.random.default_rng(3)
    layer = RecurrentOp(units=3, layout=1, inputs=["sequence_lens", "initial_h"],
                        dtype="float64", **kwargs)
    D = layer.n_dirs
    x = rng.standard_normal((2, 4, 2))
    h0 = rng.standard_normal((2, D, 3))
    lens = np.array([4.0, 3.0])
    layer.build([(4, 2), (), (D, 3)], rng)
    outs = layer.forward([x, lens, h0], training=True)
    dys = [rng.standard_normal(o.shape) for o in outs]

    def loss():
        return float(sum((o * d).sum() for o, d in zip(layer.forward([x, lens, h0]), dys)))

    dx, _, dh0 = layer.backward(tuple(dys))
    grads = {k: g.copy() for k, g in layer.grads.items()}
    check_grad(loss, x, dx)
    check_grad(loss, h0, dh0)
    for k in grads:
        check_grad(loss, layer.params[k], grads[k])


def test_the_general_cells_equal_numcnns_kernels_on_the_defaults():
    """A clip that never clips sends the LSTM through the general cells: same numbers."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 5, 2))
    std = RecurrentOp("lstm", 4, "bidirectional", 1, dtype="float64")
    gen = RecurrentOp("lstm", 4, "bidirectional", 1, clip=1e6, dtype="float64")
    assert std._standard() and not gen._standard()
    std.build((5, 2), rng)
    gen.build((5, 2), rng)
    for k in std.params:
        gen.params[k][...] = std.params[k]
    a, b = std.forward(x, training=True), gen.forward(x, training=True)
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, rtol=1e-12)
    dys = tuple(rng.standard_normal(o.shape) for o in a)
    np.testing.assert_allclose(std.backward(dys), gen.backward(dys), rtol=1e-10, atol=1e-12)
    for k in std.grads:
        np.testing.assert_allclose(std.grads[k], gen.grads[k], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("bad, match", [
    (dict(cell="cnn", units=2), "cell must be one of"),
    (dict(cell="gru", units=2, direction="both"), "direction must be"),
    (dict(cell="rnn", units=2, activations=["Tanh", "Tanh"]), "takes 1 activations"),
    (dict(cell="gru", units=2, inputs=["initial_c"]), "inputs must be a subset"),
    (dict(cell="rnn", units=2, outputs=["Y_c"]), "outputs must name"),
    (dict(cell="lstm", units=2, activations=["Swish", "Tanh", "Tanh"]), "unknown activation"),
])
def test_bad_arguments_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        RecurrentOp(**bad)
