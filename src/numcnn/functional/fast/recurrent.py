"""Fast recurrent kernels: the arithmetic of :mod:`numcnn.functional.recurrent`, re-ordered.

* **gate-major memory**: every gate's pre-activations for all steps are one (T·N, H) block,
  the gates stacked as (G, T, N, H), so each step's element-wise work runs on whole
  contiguous (N, H) blocks (column slices of a packed (N, G·H) row run about 3× slower);
* the input projection of all steps and gates is **one batched product** of the time-major
  input ``X (T·N, F+1)`` — a column of ones carries the biases — with the G gates' weights;
* each step adds one packed product ``h_{t−1} (N, H) @ W_hhᵀ (H, G·H)`` for all gates (one
  product is faster than G smaller ones; its (N, G·H) rows are read gate by gate);
* the sigmoid gates' rows are pre-scaled by ½ so one ``tanh`` over all gates gives
  ``tanh(a/2)`` for them (``σ(a) = (1 + tanh(a/2))/2``) and ``tanh(a)`` for the others;
* the backward pass writes each step's gate gradients into packed (T, N, G·H) memory, so
  ``dh_{t−1}`` is one product per step, and ``dW_ih`` with the bias (the ones column),
  ``dW_hh`` and ``dx`` are one product each for all steps;
* everything is time-major inside; the output sequence is handed on as an (N, T, H) *view* of
  time-major memory.

Scratch memory comes from the caller's :class:`Workspace`; the cache keeps some of it, so a
later forward call on the same workspace makes the cache stale, which the backward pass
detects (:class:`StaleCacheError`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..recurrent import N_STATES
from .workspace import Workspace, get_workspace

#: gates that go through a sigmoid, per cell, in the internal order
_SIGMOID_GATES = {"lstm": 3, "gru": 2, "rnn": 0}


def _perm(cell: str, H: int) -> np.ndarray | None:
    """Row order used inside for the LSTM: (i, f, o, g), so the sigmoids are one block."""
    if cell != "lstm":
        return None
    return np.r_[0:2 * H, 3 * H:4 * H, 2 * H:3 * H]


def _weights(cell: str, W_ih, W_hh, b_ih, b_hh):
    """The forward weights: ``Wx (G, F+1, H)`` gate-major (the last row the summed biases,
    ``b_hn`` left out for the GRU) and ``Wh (H, G·H)``, sigmoid gates scaled by ½; and the
    unscaled ``W_ih``/``W_hh`` (in the internal row order) for the backward pass."""
    GH, H = W_hh.shape
    G = GH // H
    perm = _perm(cell, H)
    if perm is not None:
        W_ih, W_hh, b_ih, b_hh = W_ih[perm], W_hh[perm], b_ih[perm], b_hh[perm]
    b = b_ih + b_hh
    if cell == "gru":
        b = b_ih.copy()
        b[:2 * H] += b_hh[:2 * H]
    scale = np.ones(GH, W_ih.dtype)
    scale[:_SIGMOID_GATES[cell] * H] = 0.5
    Wx = np.concatenate([W_ih, b[:, None]], axis=1) * scale[:, None]  # (G·H, F+1)
    Wx = np.ascontiguousarray(Wx.reshape(G, H, -1).transpose(0, 2, 1))  # (G, F+1, H)
    Wh = np.ascontiguousarray((W_hh * scale[:, None]).T)  # (H, G·H): one product per step
    return Wx, Wh, W_ih, W_hh, b_hh, perm


def _gates_(a: np.ndarray, n_sig: int) -> None:
    """In place: ``tanh`` over every gate, then ``(1 + t)/2`` for the first ``n_sig``."""
    np.tanh(a, out=a)
    if n_sig:
        s = a[:n_sig]
        s *= 0.5
        s += 0.5


def recurrent_forward(cell: str, x: np.ndarray, states: tuple[np.ndarray, ...],
                      W_ih: np.ndarray, W_hh: np.ndarray, b_ih: np.ndarray, b_hh: np.ndarray,
                      mask: np.ndarray | None = None, reverse: bool = False,
                      activation: str = "tanh", ws: Workspace | None = None
                      ) -> tuple[np.ndarray, tuple, dict]:
    """Same contract as :func:`numcnn.functional.recurrent.recurrent_forward`; ``ws`` is the
    call site's workspace. ``y`` is an (N, T, H) view of time-major memory."""
    ws = get_workspace(ws)
    N, T, F = x.shape
    GH, H = W_hh.shape
    G = GH // H
    dt = x.dtype
    Wx, Wh, W_ih, W_hh, b_hh, perm = _weights(cell, W_ih, W_hh, b_ih, b_hh)
    gen = ws.begin()
    X = ws.empty("x", (T, N, F + 1), dt)  # time-major input in processing order, then 1
    xt = x.transpose(1, 0, 2)
    np.copyto(X[:, :, :F], xt[::-1] if reverse else xt)
    X[:, :, F] = 1
    A = ws.empty("gates", (G, T, N, H), dt)  # pre-activations, then the gates' values
    np.matmul(X.reshape(T * N, F + 1), Wx, out=A.reshape(G, T * N, H))  # (T·N, F+1) @ (F+1, H)
    Hs = ws.fresh((T + 1, N, H), dt)  # h_0 … h_T in processing order (the output memory)
    Hs[0] = states[0]
    Cs = HN = TC = None
    hw = ws.empty("hw", (N, GH), dt)
    tmp = hw.reshape(N, G, H).transpose(1, 0, 2)  # (G, N, H) view of the packed product
    u = ws.empty("u", (N, H), dt)
    n_sig = _SIGMOID_GATES[cell]
    if cell == "lstm":
        Cs = ws.empty("c", (T + 1, N, H), dt)
        Cs[0] = states[1]
        TC = ws.empty("tanh_c", (T, N, H), dt)
    elif cell == "gru":
        HN = ws.empty("hn", (T, N, H), dt)
        b_hn = b_hh[2 * H:]
    keep = None
    if mask is not None:
        mk = mask.T[::-1] if reverse else mask.T  # (T, N) in processing order
        keep = np.ascontiguousarray(mk == 0)[:, :, None]  # (T, N, 1): steps that keep state
    for s in range(T):
        a = A[:, s]  # (G, N, H), each gate a contiguous block
        np.matmul(Hs[s], Wh, out=hw)  # (N, H) @ (H, G·H): every gate at once
        if cell == "lstm":
            a += tmp
            _gates_(a, n_sig)  # i, f, o, g
            c = Cs[s + 1]
            np.multiply(a[1], Cs[s], out=c)  # f ⊙ c_{t−1}
            np.multiply(a[0], a[3], out=u)  # i ⊙ g
            c += u
            if keep is not None:
                np.copyto(c, Cs[s], where=keep[s])
            np.tanh(c, out=TC[s])
            np.multiply(a[2], TC[s], out=Hs[s + 1])  # o ⊙ tanh(c_t)
        elif cell == "gru":
            rz = a[:2]
            rz += tmp[:2]
            _gates_(rz, 2)
            hn = HN[s]
            np.add(tmp[2], b_hn, out=hn)  # W_hn h_{t−1} + b_hn
            n = a[2]
            np.multiply(a[0], hn, out=u)  # r ⊙ (W_hn h + b_hn)
            n += u
            np.tanh(n, out=n)
            h = Hs[s + 1]
            np.subtract(Hs[s], n, out=h)
            h *= a[1]
            h += n  # n + z ⊙ (h_{t−1} − n) = (1 − z) ⊙ n + z ⊙ h_{t−1}
        else:
            a += tmp
            if activation == "tanh":
                np.tanh(a[0], out=Hs[s + 1])
            else:
                np.maximum(a[0], 0, out=Hs[s + 1])
        if keep is not None:
            np.copyto(Hs[s + 1], Hs[s], where=keep[s])
    if keep is not None:
        Y = ws.fresh((T, N, H), dt)
        np.multiply(Hs[1:], ~keep, out=Y)  # masked steps output zeros
    else:
        Y = Hs[1:]
    y = (Y[::-1] if reverse else Y).transpose(1, 0, 2)  # (N, T, H) view, time order
    final = (Hs[T],) if cell != "lstm" else (Hs[T], Cs[T].copy())
    cache = {"kernel": "fast", "cell": cell, "ws": ws, "gen": gen, "X": X, "A": A, "Hs": Hs,
             "Cs": Cs, "TC": TC, "HN": HN, "keep": keep, "W_ih": W_ih, "W_hh": W_hh,
             "perm": perm, "reverse": reverse, "activation": activation, "shape": x.shape}
    return y, final, cache


def _lstm_step_back(a, da, dh, dc, dc_next, c_prev, tc, m3, s3, t1, u) -> None:
    """One LSTM step backward on contiguous gate blocks ``a = (i, f, o, g)``: the gate
    gradients into ``da``, ``dc_{t−1}`` into ``dc_next`` (``dc`` gains the tanh path).
    ``m3``, ``s3`` are (3, N, H) scratch for the three sigmoid gates at once."""
    i, f, o, g = a
    np.multiply(dh, o, out=u)
    np.multiply(tc, tc, out=t1)
    np.subtract(1, t1, out=t1)
    u *= t1
    dc += u  # dc_t += dh ⊙ o ⊙ (1 − tanh²c_t)
    np.subtract(1, a[:3], out=s3)
    s3 *= a[:3]  # σ'(a) = σ(1 − σ) for i, f, o
    np.multiply(dc, g, out=m3[0])  # di = dc ⊙ g
    np.multiply(dc, c_prev, out=m3[1])  # df = dc ⊙ c_{t−1}
    np.multiply(dh, tc, out=m3[2])  # do = dh ⊙ tanh(c_t)
    np.multiply(m3, s3, out=da[:3])  # da_i, da_f, da_o
    np.multiply(dc, f, out=dc_next)  # dc_{t−1} = dc ⊙ f
    np.multiply(g, g, out=t1)
    np.subtract(1, t1, out=t1)
    np.multiply(dc, i, out=u)  # dg = dc ⊙ i
    np.multiply(u, t1, out=da[3])  # da_g = dg ⊙ (1 − g²)


def _gru_step_back(a, da, dhn, dh, h_prev, hn, direct, t1, t2, u) -> None:
    """One GRU step backward on contiguous gate blocks ``a = (r, z, n)``: input-side gate
    gradients into ``da``, ``d(W_hn h + b_hn)`` into ``dhn``, ``dh ⊙ z`` into ``direct``."""
    r, z, n = a
    np.subtract(h_prev, n, out=u)
    u *= dh  # dz = dh ⊙ (h_{t−1} − n)
    np.subtract(1, z, out=t1)
    np.multiply(t1, dh, out=t2)  # dn = dh ⊙ (1 − z)
    t1 *= z
    np.multiply(u, t1, out=da[1])  # da_z
    np.multiply(n, n, out=t1)
    np.subtract(1, t1, out=t1)
    np.multiply(t2, t1, out=da[2])  # da_n = dn ⊙ (1 − n²)
    np.multiply(dh, z, out=direct)  # the direct path dh ⊙ z
    np.multiply(da[2], r, out=dhn)  # d(W_hn h + b_hn) = da_n ⊙ r
    np.subtract(1, r, out=t1)
    t1 *= r
    t1 *= hn
    np.multiply(da[2], t1, out=da[0])  # da_r = da_n ⊙ (W_hn h + b_hn) ⊙ r(1 − r)


def recurrent_backward(dy: np.ndarray | None, dstates: tuple[np.ndarray | None, ...] | None,
                       cache: dict, need_dx: bool = True, need_dstates: bool = True
                       ) -> tuple[Any, Any, dict[str, np.ndarray]]:
    """Same contract as :func:`numcnn.functional.recurrent.recurrent_backward`.

    The gate gradients go into packed (T, N, G·H) memory (each step's gates written as
    column blocks), so ``dh_{t−1}`` is one product per step and ``dW_ih`` (with the bias),
    ``dW_hh`` and ``dx`` one product each for all steps."""
    ws: Workspace = cache["ws"]
    ws.check(cache["gen"], "recurrent_backward")
    cell = cache["cell"]
    N, T, F = cache["shape"]
    A, Hs, X, keep = cache["A"], cache["Hs"], cache["X"], cache["keep"]
    W_ih, W_hh = cache["W_ih"], cache["W_hh"]
    GH, H = W_hh.shape
    G = GH // H
    dt = A.dtype
    ds = []
    for k in range(N_STATES[cell]):
        d = ws.empty(f"d{k}", (N, H), dt)
        if dstates is None or dstates[k] is None:
            d.fill(0)
        else:
            np.copyto(d, dstates[k])
        ds.append(d)
    dh = ds[0]
    dY = None
    if dy is not None:
        dY = dy.transpose(1, 0, 2)  # (T, N, H)
        if cache["reverse"]:
            dY = dY[::-1]
    t1, t2, u = (ws.empty(k, (N, H), dt) for k in ("t1", "t2", "bu"))
    D = ws.empty("dgates", (T, N, GH), dt)  # dL/d(pre-activations), packed per step
    DH = D  # the recurrent side's gate gradients (the GRU's differ in the n block)
    dh_prev = ws.empty("dh_prev", (N, H), dt)
    if cell == "lstm":
        Cs, TC = cache["Cs"], cache["TC"]
        dc, dc_next = ds[1], ws.empty("dc_next", (N, H), dt)
        m3, s3 = ws.empty("m3", (3, N, H), dt), ws.empty("s3", (3, N, H), dt)
    elif cell == "gru":
        HN = cache["HN"]
        DH = ws.empty("dgates_h", (T, N, GH), dt)
        direct = ws.empty("direct", (N, H), dt)
    if keep is not None:
        kh, kc = ws.empty("keep_h", (N, H), dt), ws.empty("keep_c", (N, H), dt)
    for s in range(T - 1, -1, -1):
        if dY is not None:
            if keep is None:
                dh += dY[s]
            else:
                np.copyto(u, dY[s])
                np.copyto(u, 0, where=keep[s])
                dh += u
        if keep is not None:  # a masked step hands its gradient straight to step t−1
            np.multiply(dh, keep[s], out=kh)
            np.copyto(dh, 0, where=keep[s])
            if cell == "lstm":
                np.multiply(dc, keep[s], out=kc)
                np.copyto(dc, 0, where=keep[s])
        a = A[:, s]
        da = D[s].reshape(N, G, H).transpose(1, 0, 2)  # (G, N, H) view of packed memory
        if cell == "lstm":
            _lstm_step_back(a, da, dh, dc, dc_next, Cs[s], TC[s], m3, s3, t1, u)
            dc, dc_next = dc_next, dc
            np.matmul(D[s], W_hh, out=dh_prev)  # (N, 4H) @ (4H, H)
        elif cell == "gru":
            dah = DH[s].reshape(N, G, H).transpose(1, 0, 2)
            _gru_step_back(a, da, dah[2], dh, Hs[s], HN[s], direct, t1, t2, u)
            dah[:2] = da[:2]
            np.matmul(DH[s], W_hh, out=dh_prev)  # (N, 3H) @ (3H, H)
            dh_prev += direct
        else:
            hs = Hs[s + 1]
            if cache["activation"] == "tanh":
                np.multiply(hs, hs, out=t1)
                np.subtract(1, t1, out=t1)
                np.multiply(dh, t1, out=D[s])
            else:
                np.multiply(dh, hs > 0, out=D[s])
            np.matmul(D[s], W_hh, out=dh_prev)  # (N, H) @ (H, H)
        if keep is not None:
            dh_prev += kh
            if cell == "lstm":
                dc += kc
        dh, dh_prev = dh_prev, dh
    D2, DH2 = D.reshape(T * N, GH), DH.reshape(T * N, GH)
    dWx = D2.T @ X.reshape(T * N, F + 1)  # (G·H, T·N) @ (T·N, F+1): dW_ih and db_ih
    dW_hh = DH2.T @ Hs[:T].reshape(T * N, H)  # (G·H, T·N) @ (T·N, H)
    db_hh = dWx[:, F].copy() if cell != "gru" else DH2.sum(axis=0)
    grads = {"W_ih": np.ascontiguousarray(dWx[:, :F]), "W_hh": dW_hh, "b_ih": dWx[:, F].copy(),
             "b_hh": db_hh}
    perm = cache["perm"]
    if perm is not None:
        inv = np.argsort(perm)
        grads = {k: v[inv] for k, v in grads.items()}
    dx = None
    if need_dx:
        dxt = ws.fresh((T, N, F), dt)
        np.matmul(D2, W_ih, out=dxt.reshape(T * N, F))  # (T·N, G·H) @ (G·H, F)
        dx = (dxt[::-1] if cache["reverse"] else dxt).transpose(1, 0, 2)
    d0 = None
    if need_dstates:
        d0 = (dh.copy(),) if cell != "lstm" else (dh.copy(), dc.copy())
    return dx, d0, grads
