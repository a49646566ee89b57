"""The recurrent kernels (issue 12): every step kernel against PyTorch's cells, whole sequences
(both paths) against ``torch.nn.RNN/LSTM/GRU`` — outputs, final states and every gradient,
in float64 — with padding masks against PyTorch on the unpadded sequences, central
differences through time, and the fast path equal to the reference path."""

from __future__ import annotations

import numpy as np
import pytest

import numcnn.functional.fast.recurrent as FR
import numcnn.functional.recurrent as RR
from numcnn.functional import (
    StaleCacheError,
    Workspace,
    gru_step_backward,
    gru_step_forward,
    lstm_step_backward,
    lstm_step_forward,
    recurrent_backward,
    recurrent_forward,
    rnn_step_backward,
    rnn_step_forward,
    use_kernels,
)
from references import check_grad

G = {"rnn": 1, "lstm": 4, "gru": 3}
CELLS = ["rnn", "rnn_relu", "lstm", "gru"]


def _cell(name):
    return ("rnn", "relu") if name == "rnn_relu" else (name, "tanh")


def weights(cell, F, H, rng, dtype=np.float64, scale=0.5):
    g = G[cell]
    return [(scale * rng.standard_normal(s)).astype(dtype)
            for s in ((g * H, F), (g * H, H), (g * H,), (g * H,))]


def torch_module(cell, act, F, H, W):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    if cell == "lstm":
        m = nn.LSTM(F, H, batch_first=True)
    elif cell == "gru":
        m = nn.GRU(F, H, batch_first=True)
    else:
        m = nn.RNN(F, H, nonlinearity=act, batch_first=True)
    m = m.double()
    with torch.no_grad():
        for name, w in zip(("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"), W):
            getattr(m, name).copy_(torch.from_numpy(w))
    return m


def torch_sequence(cell, act, x, states, W, dy, dstates, mask=None, reverse=False):
    """PyTorch's outputs and gradients, one sequence at a time on its unpadded part (the
    padding mask is then ``1`` for the first ``L_n`` steps), reversed for ``reverse``."""
    torch = pytest.importorskip("torch")
    N, T, F = x.shape
    H = W[1].shape[1]
    m = torch_module(cell, act, F, H, W)
    lengths = [T] * N if mask is None else [int(mask[n].sum()) for n in range(N)]
    y = np.zeros((N, T, H))
    dx = np.zeros_like(x)
    finals = [np.zeros((N, H)) for _ in states]
    d0 = [np.zeros((N, H)) for _ in states]
    for n in range(N):
        L = lengths[n]
        idx = list(range(L))[::-1] if reverse else list(range(L))
        xt = torch.tensor(x[n, idx][None], requires_grad=True)
        st = [torch.tensor(s[n][None, None], requires_grad=True) for s in states]
        out, fin = m(xt, tuple(st) if cell == "lstm" else st[0])
        fin = fin if cell == "lstm" else (fin,)
        loss = (out * torch.tensor(dy[n, idx][None])).sum()
        for f, d in zip(fin, dstates):
            loss = loss + (f[0, 0] * torch.tensor(d[n])).sum()
        loss.backward()
        y[n, idx] = out[0].detach().numpy()
        dx[n, idx] = xt.grad[0].numpy()
        for k in range(len(states)):
            finals[k][n] = fin[k][0, 0].detach().numpy()
            d0[k][n] = st[k].grad[0, 0].numpy()
    # the weight gradients of the whole batch: PyTorch summed the per-sequence runs
    torch_grads = {}
    for k, name in zip(("W_ih", "W_hh", "b_ih", "b_hh"),
                       ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")):
        torch_grads[k] = getattr(m, name).grad.numpy().copy()
    return y, finals, dx, d0, torch_grads


def random_case(cell, N, T, F, H, seed, masked=False):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, T, F))
    states = tuple(0.5 * rng.standard_normal((N, H)) for _ in range(2 if cell == "lstm" else 1))
    W = weights(cell, F, H, rng)
    dy = rng.standard_normal((N, T, H))
    dstates = tuple(rng.standard_normal((N, H)) for _ in states)
    mask = None
    if masked:
        lengths = rng.integers(1, T + 1, N)
        lengths[0] = T
        mask = (np.arange(T)[None] < lengths[:, None]).astype(np.float64)
        dy = dy * mask[:, :, None]  # padded outputs are constant zeros: no gradient there
    return x, states, W, dy, dstates, mask


# --------------------------------------------------------------------------- step kernels
@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("N,F,H", [(1, 1, 1), (3, 4, 5), (2, 7, 3)])
def test_step_kernels_match_torch_cells(name, N, F, H):
    torch = pytest.importorskip("torch")
    cell, act = _cell(name)
    rng = np.random.default_rng(N * 100 + F * 10 + H)
    x = rng.standard_normal((N, F))
    h = rng.standard_normal((N, H))
    c = rng.standard_normal((N, H))
    W = weights(cell, F, H, rng)
    if cell == "lstm":
        tc = torch.nn.LSTMCell(F, H).double()
    elif cell == "gru":
        tc = torch.nn.GRUCell(F, H).double()
    else:
        tc = torch.nn.RNNCell(F, H, nonlinearity=act).double()
    with torch.no_grad():
        for p, w in zip((tc.weight_ih, tc.weight_hh, tc.bias_ih, tc.bias_hh), W):
            p.copy_(torch.from_numpy(w))
    tx, th, tcs = (torch.tensor(a, requires_grad=True) for a in (x, h, c))
    dh = rng.standard_normal((N, H))
    dc = rng.standard_normal((N, H))
    if cell == "lstm":
        h1, c1, cache = lstm_step_forward(x, h, c, *W)
        th1, tc1 = tc(tx, (th, tcs))
        ((th1 * torch.tensor(dh)).sum() + (tc1 * torch.tensor(dc)).sum()).backward()
        np.testing.assert_allclose(c1, tc1.detach().numpy(), rtol=1e-12, atol=1e-13)
        dx, dhp, dcp, *g = lstm_step_backward(dh, dc, cache)
        np.testing.assert_allclose(dcp, tcs.grad.numpy(), rtol=1e-11, atol=1e-12)
    else:
        if cell == "gru":
            h1, cache = gru_step_forward(x, h, *W)
        else:
            h1, cache = rnn_step_forward(x, h, *W, activation=act)
        th1 = tc(tx, th)
        (th1 * torch.tensor(dh)).sum().backward()
        step = gru_step_backward if cell == "gru" else rnn_step_backward
        dx, dhp, *g = step(dh, cache)
    np.testing.assert_allclose(h1, th1.detach().numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(dhp, th.grad.numpy(), rtol=1e-11, atol=1e-12)
    for got, p in zip(g, (tc.weight_ih, tc.weight_hh, tc.bias_ih, tc.bias_hh)):
        np.testing.assert_allclose(got, p.grad.numpy(), rtol=1e-11, atol=1e-12)


# ------------------------------------------------------------------------ whole sequences
SEQ_CASES = [  # (N, T, F, H, masked, reverse)
    (1, 1, 3, 4, False, False),
    (3, 1, 2, 3, False, True),
    (1, 6, 2, 3, False, False),
    (4, 5, 3, 2, False, True),
    (5, 7, 4, 6, True, False),
    (5, 7, 4, 6, True, True),
    (3, 4, 1, 1, True, False),
]


@pytest.mark.parametrize("path", ["reference", "fast"])
@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("N,T,F,H,masked,reverse", SEQ_CASES)
def test_sequence_matches_torch(path, name, N, T, F, H, masked, reverse):
    cell, act = _cell(name)
    x, states, W, dy, dstates, mask = random_case(cell, N, T, F, H, N * T + F + H, masked)
    ty, tfin, tdx, td0, tgrads = torch_sequence(cell, act, x, states, W, dy, dstates, mask,
                                                reverse)
    with use_kernels(path):
        y, fin, cache = recurrent_forward(cell, x, states, *W, mask=mask, reverse=reverse,
                                          activation=act, ws=Workspace())
    assert cache["kernel"] == path
    np.testing.assert_allclose(y, ty, rtol=1e-11, atol=1e-12)
    for a, b in zip(fin, tfin):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12)
    dx, d0, grads = recurrent_backward(dy, dstates, cache)
    np.testing.assert_allclose(dx, tdx, rtol=1e-10, atol=1e-11)
    for a, b in zip(d0, td0):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-11)
    for k in tgrads:
        np.testing.assert_allclose(grads[k], tgrads[k], rtol=1e-10, atol=1e-11, err_msg=k)


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("masked", [False, True])
def test_gradients_through_time_by_central_differences(name, masked):
    cell, act = _cell(name)
    N, T, F, H = 2, 4, 3, 2
    x, states, W, dy, dstates, mask = random_case(cell, N, T, F, H, 7, masked)
    if act == "relu":
        x += np.sign(x) * 0.3  # keep pre-activations off the kink

    def loss():
        y, fin, _ = RR.recurrent_forward(cell, x, states, *W, mask=mask, activation=act)
        return float((y * dy).sum() + sum((f * d).sum() for f, d in zip(fin, dstates)))

    _, _, cache = RR.recurrent_forward(cell, x, states, *W, mask=mask, activation=act)
    dx, d0, grads = RR.recurrent_backward(dy, dstates, cache)
    check_grad(loss, x, dx)
    for s, d in zip(states, d0):
        check_grad(loss, s, d)
    for w, k in zip(W, ("W_ih", "W_hh", "b_ih", "b_hh")):
        check_grad(loss, w, grads[k])


# ------------------------------------------------------------------- fast == reference
def _both_paths(cell, act, x, states, W, dy, dstates, mask, reverse):
    """Every output and gradient of the reference and the fast path, in one flat list each."""
    ref = RR.recurrent_forward(cell, x, states, *W, mask=mask, reverse=reverse,
                               activation=act)
    fast = FR.recurrent_forward(cell, x, states, *W, mask=mask, reverse=reverse,
                                activation=act, ws=Workspace())
    rb = RR.recurrent_backward(dy, dstates, ref[2])
    fb = FR.recurrent_backward(dy, dstates, fast[2])
    flat = [[r[0], *r[1], b[0], *b[1], *(b[2][k] for k in NAMES)] for r, b in ((ref, rb),
                                                                            (fast, fb))]
    return flat[0], flat[1]


NAMES = ("W_ih", "W_hh", "b_ih", "b_hh")


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("masked,reverse,with_dy", [(False, False, True), (True, True, True),
                                                     (True, False, False),
                                                     (False, True, False)])
def test_fast_equals_reference(name, masked, reverse, with_dy):
    """float64: equal to 1e-12. float32: the fast path's error from the float64 result is at
    most 4× the reference path's own float32 error plus a few ε of the value's scale."""
    cell, act = _cell(name)
    x, states, W, dy, dstates, mask = random_case(cell, 6, 9, 5, 7, 3, masked)
    dy = dy if with_dy else None
    ref64, fast64 = _both_paths(cell, act, x, states, W, dy, dstates, mask, reverse)
    for a, b in zip(fast64, ref64):
        assert a.dtype == b.dtype == np.float64 and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12 * np.abs(b).max())

    def f32(a):
        return None if a is None else a.astype(np.float32)

    ref32, fast32 = _both_paths(cell, act, f32(x), tuple(map(f32, states)),
                                [f32(w) for w in W], f32(dy), tuple(map(f32, dstates)),
                                mask, reverse)
    eps = float(np.finfo(np.float32).eps)
    for a, r, e in zip(fast32, ref32, ref64):
        assert a.dtype == r.dtype == np.float32 and a.shape == e.shape
        err_ref = np.abs(r - e).max()
        err_fast = np.abs(a - e)
        assert err_fast.max() <= 4 * err_ref + 16 * eps * np.abs(e).max() + 1e-30


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("masked,reverse", [(False, False), (True, True)])
def test_inference_mode_matches_torch_and_backward_recomputes(name, masked, reverse):
    """``training=False`` keeps no per-step history (the cache holds the inputs only); its
    outputs are PyTorch's, and a backward pass after it recomputes the history and gives
    PyTorch's gradients."""
    cell, act = _cell(name)
    x, states, W, dy, dstates, mask = random_case(cell, 4, 6, 3, 5, 11, masked)
    ty, tfin, tdx, td0, tgrads = torch_sequence(cell, act, x, states, W, dy, dstates, mask,
                                                reverse)
    y, fin, cache = FR.recurrent_forward(cell, x, states, *W, mask=mask, reverse=reverse,
                                         activation=act, ws=Workspace(), training=False)
    assert not {"Z", "A", "Cs", "TC", "NX"} & set(cache)  # no per-step history kept
    np.testing.assert_allclose(y, ty, rtol=1e-11, atol=1e-12)
    for a, b in zip(fin, tfin):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12)
    dx, d0, grads = FR.recurrent_backward(dy, dstates, cache)
    np.testing.assert_allclose(dx, tdx, rtol=1e-10, atol=1e-11)
    for a, b in zip(d0, td0):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-11)
    for k in tgrads:
        np.testing.assert_allclose(grads[k], tgrads[k], rtol=1e-10, atol=1e-11, err_msg=k)


@pytest.mark.parametrize("name", CELLS)
def test_fast_backward_twice_over_one_forward(name):
    """The fast backward pass writes the gate gradients over the gate values once it has read
    them; a second backward pass over the same cache (another dy) must still be exact."""
    cell, act = _cell(name)
    x, states, W, dy, dstates, mask = random_case(cell, 3, 5, 4, 3, 5, True)
    fast = FR.recurrent_forward(cell, x, states, *W, mask=mask, activation=act,
                                ws=Workspace())
    ref = RR.recurrent_forward(cell, x, states, *W, mask=mask, activation=act)
    for k in (1.0, -2.5):
        got = FR.recurrent_backward(k * dy, dstates, fast[2])
        want = RR.recurrent_backward(k * dy, dstates, ref[2])
        for a, b in zip([got[0], *got[1], *(got[2][n] for n in NAMES)],
                        [want[0], *want[1], *(want[2][n] for n in NAMES)]):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12 * np.abs(b).max())


def test_fast_cache_goes_stale_when_the_workspace_is_reused():
    x, states, W, dy, dstates, _ = random_case("lstm", 2, 3, 2, 2, 0)
    ws = Workspace()
    _, _, cache = FR.recurrent_forward("lstm", x, states, *W, ws=ws)
    FR.recurrent_forward("lstm", x, states, *W, ws=ws)
    with pytest.raises(StaleCacheError):
        FR.recurrent_backward(dy, dstates, cache)


def test_fast_outputs_survive_later_calls():
    """Outputs and input gradients are fresh memory: the next call does not overwrite them."""
    x, states, W, dy, dstates, _ = random_case("gru", 64, 30, 8, 64, 1)
    x, W = x.astype(np.float32), [w.astype(np.float32) for w in W]
    states = tuple(s.astype(np.float32) for s in states)
    ws = Workspace()
    y, fin, cache = FR.recurrent_forward("gru", x, states, *W, ws=ws)
    dx, _, _ = FR.recurrent_backward(dy.astype(np.float32), None, cache)
    keep = (y.copy(), fin[0].copy(), dx.copy())
    y2, _, cache2 = FR.recurrent_forward("gru", 2 * x, states, *W, ws=ws)
    FR.recurrent_backward(dy.astype(np.float32), None, cache2)
    for a, b in zip((y, fin[0], dx), keep):
        np.testing.assert_array_equal(a, b)
