"""``SimpleRNN``, ``LSTM``, ``GRU`` (issue 12) against ``torch.nn.RNN/LSTM/GRU``: outputs, final
states and every gradient in float64, over random configurations (T = 1, batch 1,
``return_sequences`` on and off, initial states, ``go_backwards``), on both kernel paths; the
layers in graphs (two stacked layers against a two-layer PyTorch module, free sequence
length); float64 central differences through a whole model."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import numcnn
from numcnn.layers import GRU, LSTM, Dense, SimpleRNN
from references import check_grad

torch = pytest.importorskip("torch")

KINDS = {"rnn": (SimpleRNN, {"activation": "tanh"}), "rnn_relu": (SimpleRNN,
                                                                 {"activation": "relu"}),
         "lstm": (LSTM, {}), "gru": (GRU, {})}
NAMES = ("W_ih", "W_hh", "b_ih", "b_hh")
TORCH_NAMES = ("weight_ih_l{}", "weight_hh_l{}", "bias_ih_l{}", "bias_hh_l{}")


def torch_twin(kind, F, H, num_layers=1, bidirectional=False):
    nn = torch.nn
    kw = dict(batch_first=True, num_layers=num_layers, bidirectional=bidirectional)
    if kind.startswith("rnn"):
        m = nn.RNN(F, H, nonlinearity=KINDS[kind][1]["activation"], **kw)
    else:
        m = {"lstm": nn.LSTM, "gru": nn.GRU}[kind](F, H, **kw)
    return m.double()


def copy_weights(layer, module, level=0, suffix="", prefix=""):
    with torch.no_grad():
        for k, t in zip(NAMES, TORCH_NAMES):
            getattr(module, t.format(level) + suffix).copy_(
                torch.from_numpy(layer.params[prefix + k]))


def torch_grads(module, level=0, suffix=""):
    return [getattr(module, t.format(level) + suffix).grad.numpy() for t in TORCH_NAMES]


CASES = list(itertools.product(
    ["rnn", "rnn_relu", "lstm", "gru"],
    [(1, 1, 2, 3), (3, 5, 4, 2), (2, 6, 1, 5)],  # N, T, F, H
    [False, True],  # return_sequences
    [False, True],  # initial states
    [False, True],  # go_backwards
))


@pytest.mark.parametrize("path", ["fast", "reference"])
@pytest.mark.parametrize("kind,dims,seqs,init,backwards", CASES)
def test_layer_matches_torch(path, kind, dims, seqs, init, backwards):
    N, T, F, H = dims
    rng = np.random.default_rng(abs(hash((kind, dims, seqs, init, backwards))) % 2**32)
    cls, kw = KINDS[kind]
    layer = cls(H, return_sequences=seqs, return_state=True, go_backwards=backwards,
                dtype="float64", **kw)
    n_states = 2 if kind == "lstm" else 1
    x = rng.standard_normal((N, T, F))
    states = [0.5 * rng.standard_normal((N, H)) for _ in range(n_states)]
    with numcnn.use_kernels(path):
        out = layer([x, *states] if init else x)
    y, fin = out[0], out[1:]
    m = torch_twin(kind, F, H)
    copy_weights(layer, m)
    tx = torch.tensor(x[:, ::-1].copy() if backwards else x, requires_grad=True)
    ts = [torch.tensor(s[None], requires_grad=True) for s in states]
    if init:
        tout, tfin = m(tx, tuple(ts) if kind == "lstm" else ts[0])
    else:
        tout, tfin = m(tx)
    tfin = tfin if kind == "lstm" else (tfin,)
    ty = tout if seqs else tfin[0][0]
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-11, atol=1e-12)
    for a, b in zip(fin, tfin):
        np.testing.assert_allclose(a, b[0].detach().numpy(), rtol=1e-11, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    dfin = [rng.standard_normal((N, H)) for _ in fin]
    loss = (ty * torch.tensor(dy)).sum() + sum((f[0] * torch.tensor(d)).sum()
                                              for f, d in zip(tfin, dfin))
    loss.backward()
    grads = layer.backward((dy, *dfin))
    dx = grads[0] if init else grads
    tdx = tx.grad.numpy()[:, ::-1] if backwards else tx.grad.numpy()
    np.testing.assert_allclose(dx, tdx, rtol=1e-10, atol=1e-11)
    if init:
        for d, t in zip(grads[1:], ts):
            np.testing.assert_allclose(d, t.grad.numpy()[0], rtol=1e-10, atol=1e-11)
    for k, g in zip(NAMES, torch_grads(m)):
        np.testing.assert_allclose(layer.grads[k], g, rtol=1e-10, atol=1e-11, err_msg=k)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_two_stacked_layers_in_a_graph_match_a_two_layer_torch_module(kind):
    N, T, F, H = 3, 6, 4, 5
    cls, kw = KINDS[kind]
    x_in = numcnn.Input((None, F), dtype="float64")
    h1 = cls(H, return_sequences=True, **kw)(x_in)
    h2 = cls(H, **kw)(h1)  # the last state
    model = numcnn.Model(x_in, Dense(2)(h2), seed=0)
    model.need_input_grad = True
    m = torch_twin(kind, F, H, num_layers=2)
    for level in range(2):
        copy_weights(model.layers[level], m, level)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((N, T, F))
    dense = model.layers[2]
    tx = torch.tensor(x, requires_grad=True)
    tout, _ = m(tx)
    W, b = torch.tensor(dense.params["W"], requires_grad=True), torch.tensor(dense.params["b"])
    ty = tout[:, -1] @ W + b
    y = model.forward(x, training=True)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-11, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    (ty * torch.tensor(dy)).sum().backward()
    dx = model.backward(dy)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-10, atol=1e-11)
    for level in range(2):
        for k, g in zip(NAMES, torch_grads(m, level)):
            np.testing.assert_allclose(model.layers[level].grads[k], g, rtol=1e-10,
                                       atol=1e-11)
    np.testing.assert_allclose(dense.grads["W"], W.grad.numpy(), rtol=1e-10, atol=1e-11)
    # the time length is free: the same model reads sequences of another length
    assert model.predict(rng.standard_normal((2, 9, F))).shape == (2, 2)


def test_gradients_through_a_model_by_central_differences():
    F, H = 2, 3
    x_in = numcnn.Input((None, F), dtype="float64")
    h0 = numcnn.Input((H,), dtype="float64")
    c0 = numcnn.Input((H,), dtype="float64")
    seq, h, c = LSTM(H, return_sequences=True, return_state=True)([x_in, h0, c0])
    g = GRU(H, go_backwards=True)(seq)
    r = SimpleRNN(2, return_sequences=True)(seq)
    model = numcnn.Model([x_in, h0, c0], [Dense(1)(g), r, c], seed=3)
    model.need_input_grad = True
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((2, 4, F)), rng.standard_normal((2, H)),
          rng.standard_normal((2, H))]
    outs = model.forward(xs, training=True)
    dys = [rng.standard_normal(o.shape) for o in outs]

    def loss():
        return float(sum((o * d).sum() for o, d in zip(model.forward(xs), dys)))

    model.forward(xs, training=True)
    dxs = model.backward(dys)
    for x, d in zip(xs, dxs):
        check_grad(loss, x, d)
    for _q, lay, k in model.named_params():
        check_grad(loss, lay.params[k], lay.grads[k].copy())


def test_arguments_are_checked_at_construction():
    with pytest.raises(ValueError, match="units"):
        LSTM(0)
    with pytest.raises(ValueError, match="activation"):
        SimpleRNN(3, activation="sigmoid")
    with pytest.raises(ValueError, match="batch_size"):
        GRU(3, stateful=True)
    with pytest.raises(TypeError, match="return_sequences"):
        LSTM(3, return_sequences="yes")
    layer = LSTM(3)
    with pytest.raises(ValueError, match=r"\(T, F\)"):
        layer.build((4,))
    with pytest.raises(ValueError, match="initial state"):
        LSTM(3)(np.zeros((2, 4, 1), np.float32), initial_state=[np.zeros((2, 3), np.float32)])
