"""Fast recurrent kernels: the arithmetic of :mod:`numcnn.functional.recurrent`, re-ordered.

* **feature-major memory**: a state is stored transposed, ``hᵀ`` (H, N), and a step's gate
  pre-activations are one (G·H, N) block, ``W (G·H, ·) @ [h_{t−1}; x_t; 1]``, in which every
  gate is a contiguous (H, N) block of rows — so every element-wise pass runs on contiguous
  memory and the product writes the gates directly (no strided gate slices, no copy);
* **one product per step for the input and the recurrence**: the right operand of step t is
  the column block ``z_t = [h_{t−1}; x_t; 1]`` (H+F+1, N) — all of them one array ``Z``
  (T+1, H+F+1, N), whose x and ones rows are filled once for the whole sequence and whose
  h rows each step writes — and the left operand ``[W_hh | W_ih | b_ih + b_hh]``. With
  K = F + 1 ≪ H the input projection is a few more columns of a product done anyway,
  cheaper than a separate product of depth F + 1 and an addition per step. The GRU's
  ``W_in x_t + b_in`` stays outside the reset product, so its rows (r, z, n_h) take
  ``[W_hh | W_i(r,z) or 0 | bias]`` and ``W_in x_t + b_in`` is one product for all steps;
* the sigmoid gates' rows are pre-scaled by ½ so one ``tanh`` over all gates gives
  ``tanh(a/2)`` for them (``σ(a) = (1 + tanh(a/2))/2``) and ``tanh(a)`` for the others;
  the LSTM's rows are kept in the order (i, f, o, g) inside so the sigmoids are one block;
* **inference keeps no history**: with ``training=False`` a step's gates and the cell state
  live in one (G·H, N) / two (H, N) buffers that stay in cache, and the cache holds only the
  inputs — a backward pass after it (saliency, a layer called outside ``fit``) runs the
  forward pass again with the history;
* backward: each step's gate gradients overwrite that step's gate values once they are
  read (no second (T, G·H, N) array: less memory traffic), so ``dh_{t−1} = W_hhᵀ D_t`` is
  one product per step; after the loop ``D`` and ``Z`` are re-laid (G·H, T·N) and
  (H+F+1, T·N), and ``dW_hh | dW_ih | db`` is one product for the whole sequence, ``dx``
  another. The LSTM's ``tanh(c_t)`` is recomputed there rather than kept (cheaper than
  writing and reading it back). A second backward pass over the same cache finds the gates
  gone and runs the forward pass again.

Outputs are views of ``Z`` (the h rows): ``y`` (N, T, H) and the final ``h_T`` (N, H) are
transposed views, not C-contiguous. Scratch memory comes from the caller's
:class:`Workspace`; the cache keeps some of it, so a later forward call on the same
workspace makes the cache stale, which the backward pass detects (:class:`StaleCacheError`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..recurrent import N_STATES
from .workspace import Workspace, get_workspace

#: gates that go through a sigmoid, per cell: the first rows in the internal order
_SIGMOID_GATES = {"lstm": 3, "gru": 2, "rnn": 0}


def _internal(cell: str, W: np.ndarray) -> np.ndarray:
    """Rows of ``W`` (G·H, ·) from PyTorch's gate order into the internal one: the LSTM's
    (i, f, g, o) become (i, f, o, g), so its sigmoids are one block; other cells keep
    theirs."""
    if cell != "lstm":
        return W
    H = W.shape[0] // 4
    return np.concatenate([W[:2 * H], W[3 * H:], W[2 * H:3 * H]])


def _weights(cell: str, W_ih, W_hh, b_ih, b_hh):
    """The step product's left operand ``Wz`` (G·H, H+F+1) = ``[W_hh | W_ih | b]`` in the
    internal row order, the sigmoid gates' rows × ½; for the GRU the n rows are
    ``[W_hn | 0 | b_hn]``, and ``Wn`` (H, F+1) = ``[W_in | b_in]``."""
    GH, H = W_hh.shape
    F = W_ih.shape[1]
    Wz = np.empty((GH, H + F + 1), W_ih.dtype)
    Wz[:, :H] = W_hh
    Wz[:, H:H + F] = W_ih
    np.add(b_ih, b_hh, out=Wz[:, H + F])
    Wn = None
    if cell == "gru":
        Wn = np.concatenate([W_ih[2 * H:], b_ih[2 * H:, None]], axis=1)  # (H, F+1)
        Wz[2 * H:, H:H + F] = 0
        Wz[2 * H:, H + F] = b_hh[2 * H:]
    Wz = _internal(cell, Wz)
    Wz[:_SIGMOID_GATES[cell] * H] *= 0.5
    return Wz, Wn


def recurrent_forward(cell: str, x: np.ndarray, states: tuple[np.ndarray, ...],
                      W_ih: np.ndarray, W_hh: np.ndarray, b_ih: np.ndarray, b_hh: np.ndarray,
                      mask: np.ndarray | None = None, reverse: bool = False,
                      activation: str = "tanh", ws: Workspace | None = None,
                      training: bool = True) -> tuple[np.ndarray, tuple, dict]:
    """Same contract as :func:`numcnn.functional.recurrent.recurrent_forward`; ``ws`` is the
    call site's workspace. ``y`` is an (N, T, H) view of feature-major memory. With
    ``training=False`` no per-step history is kept (the backward pass recomputes it)."""
    ws = get_workspace(ws)
    N, T, F = x.shape
    GH, H = W_hh.shape
    K = H + F + 1
    dt = x.dtype
    Wz, Wn = _weights(cell, W_ih, W_hh, b_ih, b_hh)
    gen = ws.begin()
    Z = ws.fresh((T + 1, K, N), dt)  # z_t = [h_{t−1}; x_t; 1] in processing order
    xt = x.transpose(1, 2, 0)  # (T, F, N)
    np.copyto(Z[:T, H:H + F], xt[::-1] if reverse else xt)
    Z[:T, H + F] = 1
    Z[T, H:] = 0  # never read by a product; defined all the same
    Z[0, :H] = states[0].T
    hist = T if training else 1  # steps of gate values kept
    A = ws.empty("gates", (hist, GH, N), dt) if cell != "rnn" else None  # gate values
    u = ws.empty("u", (H, N), dt)
    Cs = TC = NX = None
    nc = T + 1 if training else 2
    if cell == "lstm":
        Cs = ws.empty("c", (nc, H, N), dt)
        Cs[0] = states[1].T
        TC = ws.empty("tanh_c", (1, H, N), dt)  # tanh(c_t): the backward pass recomputes it
    elif cell == "gru":
        NX = ws.empty("n", (T, H, N), dt)  # W_in x_t + b_in, then n_t
        np.matmul(Wn, Z[:T, H:], out=NX)  # (H, F+1) @ (F+1, N) for every step
    keep = None
    if mask is not None:
        mk = mask.T[::-1] if reverse else mask.T  # (T, N) in processing order
        keep = np.ascontiguousarray(mk == 0)[:, None, :]  # (T, 1, N): steps that keep state
    S = GH - H  # LSTM: rows of the three sigmoid gates
    for s in range(T):
        h_prev, h = Z[s, :H], Z[s + 1, :H]
        if cell == "lstm":
            a = A[s % hist]
            np.matmul(Wz, Z[s], out=a)  # (4H, H+F+1) @ (H+F+1, N): every gate at once
            np.tanh(a, out=a)
            sg = a[:S]
            sg *= 0.5
            sg += 0.5  # i, f, o = (1 + tanh(a/2))/2; g = tanh(a)
            c_prev, c = Cs[s % nc], Cs[(s + 1) % nc]
            np.multiply(a[H:2 * H], c_prev, out=c)  # f ⊙ c_{t−1}
            np.multiply(a[:H], a[S:], out=u)  # i ⊙ g
            c += u
            if keep is not None:
                np.copyto(c, c_prev, where=keep[s])
            tc = TC[0]
            np.tanh(c, out=tc)
            np.multiply(a[2 * H:S], tc, out=h)  # o ⊙ tanh(c_t)
        elif cell == "gru":
            a = A[s % hist]
            np.matmul(Wz, Z[s], out=a)  # rows r, z (halved) and W_hn h_{t−1} + b_hn
            rz = a[:2 * H]
            np.tanh(rz, out=rz)
            rz *= 0.5
            rz += 0.5
            n = NX[s]
            np.multiply(a[:H], a[2 * H:], out=u)  # r ⊙ (W_hn h_{t−1} + b_hn)
            n += u
            np.tanh(n, out=n)
            np.subtract(h_prev, n, out=h)
            h *= a[H:2 * H]
            h += n  # n + z ⊙ (h_{t−1} − n) = (1 − z) ⊙ n + z ⊙ h_{t−1}
        else:
            np.matmul(Wz, Z[s], out=h)  # (H, H+F+1) @ (H+F+1, N), straight into z_{t+1}
            if activation == "tanh":
                np.tanh(h, out=h)
            else:
                np.maximum(h, 0, out=h)
        if keep is not None:
            np.copyto(h, h_prev, where=keep[s])
    Y = Z[1:, :H]  # (T, H, N): h_1 … h_T
    if keep is not None:
        Y = np.multiply(Y, ~keep, out=ws.fresh((T, H, N), dt))  # masked steps output zeros
    y = (Y[::-1] if reverse else Y).transpose(2, 0, 1)  # (N, T, H) view, time order
    final = (Z[T, :H].T,) if cell != "lstm" else (Z[T, :H].T, Cs[T % nc].T.copy())
    inputs = (cell, x, states, W_ih, W_hh, b_ih, b_hh, mask, reverse, activation)
    if not training:  # the inputs only: a backward pass recomputes the history
        return y, final, {"kernel": "fast", "inputs": inputs, "ws": ws}
    cache = {"kernel": "fast", "cell": cell, "ws": ws, "gen": gen, "Z": Z, "A": A, "Cs": Cs,
             "NX": NX, "keep": keep, "reverse": reverse, "activation": activation, "shape": x.shape,
             "inputs": inputs, "spent": False}
    return y, final, cache


def _lstm_step_back(a, da, dh, dc, dc_next, c_prev, tc, m3, s3, t1, u) -> None:
    """One LSTM step backward on the gate block ``a`` (4H, N), rows (i, f, o, g): the gate
    gradients into ``da`` (which may be ``a`` itself: every gate is read before it is
    overwritten), ``dc_{t−1}`` into ``dc_next`` (``dc`` gains the tanh path). ``m3``, ``s3``
    are (3H, N) scratch for the three sigmoid gates at once."""
    H = dh.shape[0]
    S = 3 * H
    i, f, o, g = a[:H], a[H:2 * H], a[2 * H:S], a[S:]
    np.multiply(dh, o, out=u)
    np.multiply(tc, tc, out=t1)
    np.subtract(1, t1, out=t1)
    u *= t1
    dc += u  # dc_t += dh ⊙ o ⊙ (1 − tanh²c_t)
    np.subtract(1, a[:S], out=s3)
    s3 *= a[:S]  # σ'(a) = σ(1 − σ) for i, f, o
    np.multiply(dc, g, out=m3[:H])  # di = dc ⊙ g
    np.multiply(dc, c_prev, out=m3[H:2 * H])  # df = dc ⊙ c_{t−1}
    np.multiply(dh, tc, out=m3[2 * H:])  # do = dh ⊙ tanh(c_t)
    np.multiply(dc, f, out=dc_next)  # dc_{t−1} = dc ⊙ f
    np.multiply(g, g, out=t1)
    np.subtract(1, t1, out=t1)
    np.multiply(dc, i, out=u)  # dg = dc ⊙ i
    np.multiply(m3, s3, out=da[:S])  # da_i, da_f, da_o
    np.multiply(u, t1, out=da[S:])  # da_g = dg ⊙ (1 − g²)


def _gru_step_back(a, n, da, dan, dh, h_prev, direct, t1, t2, u) -> None:
    """One GRU step backward: ``a`` (3H, N) holds r, z and ``W_hn h + b_hn``, ``n`` the
    candidate. The recurrent-side gradients ``[da_r; da_z; da_n ⊙ r]`` go into ``da`` (which
    may be ``a`` itself: each block is read before it is overwritten), the input-side
    ``da_n`` into ``dan``, ``dh ⊙ z`` into ``direct``."""
    H = dh.shape[0]
    r, z, hn = a[:H], a[H:2 * H], a[2 * H:]
    np.subtract(h_prev, n, out=u)
    u *= dh  # dz = dh ⊙ (h_{t−1} − n)
    np.multiply(dh, z, out=direct)  # the direct path dh ⊙ z
    np.subtract(1, z, out=t1)
    np.multiply(t1, dh, out=t2)  # dn = dh ⊙ (1 − z)
    t1 *= z
    np.multiply(u, t1, out=da[H:2 * H])  # da_z
    np.multiply(n, n, out=t1)
    np.subtract(1, t1, out=t1)
    np.multiply(t2, t1, out=dan)  # da_n = dn ⊙ (1 − n²)
    np.subtract(1, r, out=t1)
    t1 *= r
    t1 *= hn
    np.multiply(dan, r, out=da[2 * H:])  # d(W_hn h + b_hn) = da_n ⊙ r
    np.multiply(dan, t1, out=da[:H])  # da_r = da_n ⊙ (W_hn h + b_hn) ⊙ r(1 − r)


def _rows(ws: Workspace, a: np.ndarray, T: int) -> np.ndarray:
    """``a`` (T, R, N) re-laid as (R, T·N): the weight gradients' products contract over
    steps and samples at once."""
    R, N = a.shape[1:]
    out = ws.fresh((R, T, N), a.dtype)
    np.copyto(out, a[:T].transpose(1, 0, 2))
    return out.reshape(R, T * N)


def recurrent_backward(dy: np.ndarray | None, dstates: tuple[np.ndarray | None, ...] | None,
                       cache: dict, need_dx: bool = True, need_dstates: bool = True
                       ) -> tuple[Any, Any, dict[str, np.ndarray]]:
    """Same contract as :func:`numcnn.functional.recurrent.recurrent_backward`.

    Each step's gate gradients go into a (G·H, N) block, so ``dh_{t−1}`` is one product per
    step; ``dW_hh | dW_ih | db`` is one product for all steps and ``dx`` another."""
    ws: Workspace = cache["ws"]
    if "gen" in cache:
        ws.check(cache["gen"], "recurrent_backward")
    if "gen" not in cache or cache["spent"]:
        # an inference-mode forward pass, or a second backward pass over gate values that
        # the first overwrote with their gradients: run the forward pass again
        *args, activation = cache["inputs"]
        cache = recurrent_forward(*args, activation=activation, ws=ws)[2]
    cell = cache["cell"]
    N, T, F = cache["shape"]
    Z, A, keep = cache["Z"], cache["A"], cache["keep"]
    W_ih, W_hh = (_internal(cell, W) for W in cache["inputs"][3:5])  # unscaled
    GH, H = W_hh.shape
    dt = Z.dtype
    B = ws.empty("back", (16, H, N), dt)  # per-step scratch, (H, N) blocks
    dh, dh_prev, dc, dc_next, t1, t2, u, kh, kc, direct = B[:10]
    m3, s3 = B[10:13].reshape(3 * H, N), B[13:16].reshape(3 * H, N)
    for d, k in ((dh, 0), (dc, 1)):
        if k < N_STATES[cell]:
            if dstates is None or dstates[k] is None:
                d.fill(0)
            else:
                np.copyto(d, dstates[k].T)
    dY = None
    if dy is not None:
        dY = ws.empty("dy", (T, H, N), dt)
        np.copyto(dY, dy.transpose(1, 2, 0)[::-1] if cache["reverse"] else
                  dy.transpose(1, 2, 0))
    # dL/d(the step product), per step: over the gate values, which each step reads first
    D = A if cell != "rnn" else ws.empty("dgates", (T, GH, N), dt)
    cache["spent"] = D is A
    DN = ws.empty("dn", (T, H, N), dt) if cell == "gru" else None  # the GRU's input-side da_n
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
        if cell == "lstm":
            np.tanh(cache["Cs"][s + 1], out=t2)  # tanh(c_t), recomputed: cheaper than kept
            _lstm_step_back(A[s], D[s], dh, dc, dc_next, cache["Cs"][s], t2, m3, s3, t1, u)
            dc, dc_next = dc_next, dc
            np.matmul(W_hh.T, D[s], out=dh_prev)  # (H, 4H) @ (4H, N)
        elif cell == "gru":
            _gru_step_back(A[s], cache["NX"][s], D[s], DN[s], dh, Z[s, :H], direct, t1, t2,
                           u)
            np.matmul(W_hh.T, D[s], out=dh_prev)  # (H, 3H) @ (3H, N)
            dh_prev += direct
        else:
            h = Z[s + 1, :H]
            if cache["activation"] == "tanh":
                np.multiply(h, h, out=t1)
                np.subtract(1, t1, out=t1)
                np.multiply(dh, t1, out=D[s])
            else:
                np.multiply(dh, h > 0, out=D[s])
            np.matmul(W_hh.T, D[s], out=dh_prev)  # (H, H) @ (H, N)
        if keep is not None:
            dh_prev += kh
            if cell == "lstm":
                dc += kc
        dh, dh_prev = dh_prev, dh
    Dr, Zr = _rows(ws, D, T), _rows(ws, Z, T)  # (G·H, T·N), (H+F+1, T·N)
    dWz = Dr @ Zr.T  # (G·H, T·N) @ (T·N, H+F+1): dW_hh | dW_ih | db
    dWz = _internal(cell, dWz)  # back to PyTorch's gate order: the swap is its own inverse
    db = dWz[:, H + F]
    grads = {"W_ih": dWz[:, H:H + F], "W_hh": dWz[:, :H], "b_ih": db.copy(), "b_hh": db.copy()}
    DNr = None
    if cell == "gru":  # the n rows of W_ih and b_ih from the input-side da_n
        DNr = _rows(ws, DN, T)
        dWn = DNr @ Zr[H:].T  # (H, T·N) @ (T·N, F+1)
        grads["W_ih"][2 * H:] = dWn[:, :F]
        grads["b_ih"][2 * H:] = dWn[:, F]
    dx = None
    if need_dx:
        dxt = ws.fresh((F, T, N), dt)
        dxr = dxt.reshape(F, T * N)
        if cell == "gru":
            np.matmul(W_ih[:2 * H].T, Dr[:2 * H], out=dxr)  # (F, 2H) @ (2H, T·N)
            dxr += W_ih[2 * H:].T @ DNr
        else:
            np.matmul(W_ih.T, Dr, out=dxr)  # (F, G·H) @ (G·H, T·N)
        dx = (dxt[:, ::-1] if cache["reverse"] else dxt).transpose(2, 1, 0)
    d0 = None
    if need_dstates:
        d0 = (dh.T.copy(),) if cell != "lstm" else (dh.T.copy(), dc.T.copy())
    return dx, d0, grads
