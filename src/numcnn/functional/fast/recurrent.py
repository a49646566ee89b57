"""Fast recurrent kernels: the arithmetic of :mod:`numcnn.functional.recurrent`, re-ordered.

* the input projection of every step is **one product**: the input, time-major
  ``X (T·N, F)``, times ``W_ihᵀ`` gives the input part of all gates of all steps at once;
* each step adds one packed product ``h_{t−1} (N, H) @ W_hhᵀ (H, G·H)`` for all gates and
  applies the gate non-linearities in place on contiguous column blocks (the LSTM's rows are
  re-ordered internally to (i, f, o, g), so its three sigmoids are one block);
* the backward pass writes each step's gate gradients into one (T, N, G·H) buffer, then
  gets ``dW_ih``, ``dW_hh``, the biases and ``dx`` for all steps from **one product each**;
* everything is time-major (``(T, N, ·)``) inside; the output sequence is handed on as an
  (N, T, H) *view* of time-major memory, which a following recurrent layer reads without a
  copy.

Scratch memory comes from the caller's :class:`Workspace`; the cache keeps some of it, so a
later forward call on the same workspace makes the cache stale, which the backward pass
detects (:class:`StaleCacheError`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..recurrent import N_STATES
from .workspace import Workspace, get_workspace


def _perm(cell: str, H: int) -> np.ndarray | None:
    """Row order used inside for the LSTM: (i, f, o, g), so the sigmoids are one block."""
    if cell != "lstm":
        return None
    return np.r_[0:2 * H, 3 * H:4 * H, 2 * H:3 * H]


def _sigmoid_(a: np.ndarray) -> None:
    """``a ← σ(a) = (1 + tanh(a/2)) / 2`` in place."""
    a *= 0.5
    np.tanh(a, out=a)
    a *= 0.5
    a += 0.5


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
    dt = x.dtype
    perm = _perm(cell, H)
    if perm is not None:
        W_ih, W_hh, b_ih, b_hh = W_ih[perm], W_hh[perm], b_ih[perm], b_hh[perm]
    WhhT = np.ascontiguousarray(W_hh.T)  # (H, G·H)
    xt = x.transpose(1, 0, 2)  # (T, N, F)
    if reverse:
        xt = xt[::-1]
    if xt.flags.c_contiguous:
        X = xt  # already time-major (the output of a recurrent layer before this one)
    else:
        X = ws.empty("x", (T, N, F), dt)
        np.copyto(X, xt)
    gen = ws.begin()
    A = ws.empty("gates", (T, N, GH), dt)  # pre-activations, then gate values, then dA
    np.matmul(X.reshape(T * N, F), W_ih.T, out=A.reshape(T * N, GH))  # (T·N, F) @ (F, G·H)
    if cell == "gru":
        A += b_ih
        A[:, :, :2 * H] += b_hh[:2 * H]  # b_hr, b_hz add; b_hn stays inside the reset product
    else:
        A += b_ih + b_hh
    Hs = ws.fresh((T + 1, N, H), dt)  # h_0 … h_T in processing order (the output memory)
    Hs[0] = states[0]
    Cs = HN = TC = None
    tmp = ws.empty("hw", (N, GH), dt)
    u = ws.empty("u", (N, H), dt)
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
        a = A[s]
        if cell == "lstm":
            np.matmul(Hs[s], WhhT, out=tmp)  # (N, H) @ (H, 4H)
            a += tmp
            _sigmoid_(a[:, :3 * H])
            g = a[:, 3 * H:]
            np.tanh(g, out=g)
            c = Cs[s + 1]
            np.multiply(a[:, H:2 * H], Cs[s], out=c)  # f ⊙ c_{t−1}
            np.multiply(a[:, :H], g, out=u)  # i ⊙ g
            c += u
            if keep is not None:
                np.copyto(c, Cs[s], where=keep[s])
            np.tanh(c, out=TC[s])
            np.multiply(a[:, 2 * H:3 * H], TC[s], out=Hs[s + 1])  # o ⊙ tanh(c_t)
        elif cell == "gru":
            np.matmul(Hs[s], WhhT, out=tmp)  # (N, H) @ (H, 3H)
            a[:, :2 * H] += tmp[:, :2 * H]
            _sigmoid_(a[:, :2 * H])
            hn = HN[s]
            np.add(tmp[:, 2 * H:], b_hn, out=hn)  # W_hn h_{t−1} + b_hn
            n = a[:, 2 * H:]
            np.multiply(a[:, :H], hn, out=u)  # r ⊙ (W_hn h + b_hn)
            n += u
            np.tanh(n, out=n)
            h = Hs[s + 1]
            np.subtract(Hs[s], n, out=h)
            h *= a[:, H:2 * H]
            h += n  # n + z ⊙ (h_{t−1} − n) = (1 − z) ⊙ n + z ⊙ h_{t−1}
        else:
            np.matmul(Hs[s], WhhT, out=tmp)  # (N, H) @ (H, H)
            a += tmp
            if activation == "tanh":
                np.tanh(a, out=Hs[s + 1])
            else:
                np.maximum(a, 0, out=Hs[s + 1])
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
             "Cs": Cs, "TC": TC, "HN": HN, "keep": keep,
             "W_ih": W_ih, "W_hh": W_hh, "perm": perm, "reverse": reverse,
             "activation": activation, "shape": x.shape}
    return y, final, cache


def recurrent_backward(dy: np.ndarray | None, dstates: tuple[np.ndarray | None, ...] | None,
                       cache: dict, need_dx: bool = True, need_dstates: bool = True
                       ) -> tuple[Any, Any, dict[str, np.ndarray]]:
    """Same contract as :func:`numcnn.functional.recurrent.recurrent_backward`."""
    ws: Workspace = cache["ws"]
    ws.check(cache["gen"], "recurrent_backward")
    cell = cache["cell"]
    N, T, F = cache["shape"]
    A, Hs, X, keep = cache["A"], cache["Hs"], cache["X"], cache["keep"]
    W_ih, W_hh = cache["W_ih"], cache["W_hh"]
    GH, H = W_hh.shape
    dt = A.dtype
    n_states = N_STATES[cell]
    ds = []
    for k in range(n_states):
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
    t1 = ws.empty("t1", (N, H), dt)
    t2 = ws.empty("t2", (N, H), dt)
    u = ws.empty("bu", (N, H), dt)
    D = ws.empty("dgates", (T, N, GH), dt)  # dL/d(pre-activations) of every step
    DAH = ws.empty("dah", (T, N, GH), dt) if cell == "gru" else D
    if cell == "lstm":
        Cs, TC = cache["Cs"], cache["TC"]
        dc, dc_next = ds[1], ws.empty("dc_next", (N, H), dt)
    if cell == "gru":
        HN = cache["HN"]
    dh_prev = ws.empty("dh_prev", (N, H), dt)
    kh = kc = None
    if keep is not None:
        kh = ws.empty("keep_h", (N, H), dt)
        kc = ws.empty("keep_c", (N, H), dt)
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
        a, da = A[s], D[s]
        if cell == "lstm":
            i, f, o, g = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
            tc = TC[s]
            np.multiply(dh, o, out=u)
            np.multiply(tc, tc, out=t1)
            np.subtract(1, t1, out=t1)
            u *= t1
            dc += u  # dc_t += dh ⊙ o ⊙ (1 − tanh²c_t)
            np.multiply(dh, tc, out=u)  # do
            np.subtract(1, o, out=t1)
            u *= t1
            np.multiply(u, o, out=da[:, 2 * H:3 * H])  # da_o = do ⊙ o(1 − o)
            np.multiply(dc, f, out=dc_next)  # dc_{t−1}
            np.subtract(1, f, out=t1)
            t1 *= f
            t1 *= Cs[s]
            np.multiply(t1, dc, out=da[:, H:2 * H])  # da_f = dc ⊙ c_{t−1} ⊙ f(1 − f)
            np.multiply(dc, i, out=u)  # dg = dc ⊙ i
            np.multiply(dc, g, out=t2)  # di = dc ⊙ g
            np.multiply(g, g, out=t1)
            np.subtract(1, t1, out=t1)
            np.multiply(u, t1, out=da[:, 3 * H:])  # da_g = dg ⊙ (1 − g²)
            np.subtract(1, i, out=t1)
            t1 *= i
            np.multiply(t2, t1, out=da[:, :H])  # da_i = di ⊙ i(1 − i)
            dc, dc_next = dc_next, dc
            np.matmul(da, W_hh, out=dh_prev)  # (N, 4H) @ (4H, H)
        elif cell == "gru":
            r, z, n = a[:, :H], a[:, H:2 * H], a[:, 2 * H:]
            dah = DAH[s]
            np.subtract(Hs[s], n, out=u)
            u *= dh  # dz = dh ⊙ (h_{t−1} − n)
            np.subtract(1, z, out=t1)
            np.multiply(t1, dh, out=t2)  # dn = dh ⊙ (1 − z)
            t1 *= z
            np.multiply(u, t1, out=dah[:, H:2 * H])  # da_z
            np.multiply(n, n, out=t1)
            np.subtract(1, t1, out=t1)
            t2 *= t1  # da_n = dn ⊙ (1 − n²)
            np.multiply(dh, z, out=u)  # the direct path dh ⊙ z
            np.multiply(t2, r, out=dah[:, 2 * H:])  # d(W_hn h + b_hn) = da_n ⊙ r
            np.subtract(1, r, out=t1)
            t1 *= r
            t1 *= HN[s]
            np.multiply(t2, t1, out=dah[:, :H])  # da_r = da_n ⊙ (W_hn h + b_hn) ⊙ r(1 − r)
            np.copyto(da[:, 2 * H:], t2)
            np.copyto(da[:, :2 * H], dah[:, :2 * H])
            np.matmul(dah, W_hh, out=dh_prev)  # (N, 3H) @ (3H, H)
            dh_prev += u
        else:
            hs = Hs[s + 1]
            if cache["activation"] == "tanh":
                np.multiply(hs, hs, out=t1)
                np.subtract(1, t1, out=t1)
                np.multiply(dh, t1, out=da)
            else:
                np.multiply(dh, hs > 0, out=da)
            np.matmul(da, W_hh, out=dh_prev)  # (N, H) @ (H, H)
        if keep is not None:
            dh_prev += kh
            if cell == "lstm":
                dc += kc
        dh, dh_prev = dh_prev, dh
    A2 = D.reshape(T * N, GH)
    D2 = DAH.reshape(T * N, GH)
    Hp = Hs[:T].reshape(T * N, H)
    grads = {"W_ih": A2.T @ X.reshape(T * N, F),  # (G·H, T·N) @ (T·N, F)
             "W_hh": D2.T @ Hp,  # (G·H, T·N) @ (T·N, H)
             "b_ih": A2.sum(axis=0), "b_hh": D2.sum(axis=0)}
    perm = cache["perm"]
    if perm is not None:
        inv = np.argsort(perm)
        grads = {k: v[inv] for k, v in grads.items()}
    dx = None
    if need_dx:
        dxt = ws.fresh((T, N, F), dt)
        np.matmul(A2, W_ih, out=dxt.reshape(T * N, F))  # (T·N, G·H) @ (G·H, F)
        dx = (dxt[::-1] if cache["reverse"] else dxt).transpose(1, 0, 2)
    d0 = None
    if need_dstates:
        d0 = (dh.copy(),) if cell != "lstm" else (dh.copy(), dc.copy())
    return dx, d0, grads
