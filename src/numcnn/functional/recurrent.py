"""Recurrent cells — RNN, LSTM, GRU — one time step at a time, and back-propagation through time.

The course's RNN feeds the hidden layer's previous output back into it: with ``U`` the input
weights, ``W`` the recurrent weights and ``f`` the activation,

    s_t = f(U·x_t + W·s_{t−1}),        o_t = g(V·s_t)

(``s`` is the hidden state, called ``h`` here, and the output layer ``V`` is whatever layer
follows). numcnn stores the weights in PyTorch's layout so they move to and from PyTorch
unchanged: ``W_ih`` (G·H, F) is the course's ``U`` for all G gates stacked, ``W_hh`` (G·H, H)
its ``W``, and ``b_ih``, ``b_hh`` (G·H,) two biases (PyTorch keeps two; their sum is the one
bias of the course). Row blocks of the stacked matrices, in PyTorch's gate order:

* **RNN** (G = 1):  ``h_t = f(W_ih x_t + b_ih + W_hh h_{t−1} + b_hh)``, f = tanh or ReLU;
* **LSTM** (G = 4, gates i, f, g, o)::

      i_t = σ(W_ii x_t + b_ii + W_hi h_{t−1} + b_hi)      input gate
      f_t = σ(W_if x_t + b_if + W_hf h_{t−1} + b_hf)      forget gate
      g_t = tanh(W_ig x_t + b_ig + W_hg h_{t−1} + b_hg)   candidate (the course's c̃_t)
      o_t = σ(W_io x_t + b_io + W_ho h_{t−1} + b_ho)      output gate
      c_t = f_t ⊙ c_{t−1} + i_t ⊙ g_t                       cell state
      h_t = o_t ⊙ tanh(c_t)

* **GRU** (G = 3, gates r, z, n; ``b_hn`` inside the reset product, as PyTorch)::

      r_t = σ(W_ir x_t + b_ir + W_hr h_{t−1} + b_hr)      reset gate
      z_t = σ(W_iz x_t + b_iz + W_hz h_{t−1} + b_hz)      update gate
      n_t = tanh(W_in x_t + b_in + r_t ⊙ (W_hn h_{t−1} + b_hn))
      h_t = (1 − z_t) ⊙ n_t + z_t ⊙ h_{t−1}

**Back-propagation through time.** The loss reaches ``h_t`` along two paths: from the output
at step t (``dy_t``) and from step t+1 through the recurrence (``dh_t`` carried back). A step's
backward pass takes their sum, returns the gradient carried on to ``h_{t−1}`` (and ``c_{t−1}``),
and its contributions to ``dW_ih, dW_hh, db_ih, db_hh``, which add up over the steps because
every step uses the same weights.

**Padding mask.** With a mask ``m_t ∈ {0, 1}`` per sequence, a masked step keeps the state:
``h_t = m_t·h̃_t + (1 − m_t)·h_{t−1}`` (``h̃_t`` the cell's new state, and ``c_t`` alike) and
outputs zeros, so right-padded sequences give the states and outputs of the unpadded ones —
what ``torch.nn.utils.rnn.pack_padded_sequence`` computes.

This module is the readable reference path; :mod:`numcnn.functional.fast.recurrent` computes
the same numbers with one product for the input projection of all steps and packed gate
buffers, and :func:`numcnn.functional.recurrent_forward` chooses between them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: gates per cell (rows of W_ih / W_hh are G·H)
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
#: states per cell: h, and c for the LSTM
N_STATES = {"rnn": 1, "lstm": 2, "gru": 1}


def sigmoid(a: np.ndarray) -> np.ndarray:
    """``σ(a) = 1 / (1 + e^{−a})``, evaluated as ``(1 + tanh(a/2)) / 2`` (never overflows)."""
    return 0.5 * np.tanh(0.5 * a) + 0.5


# ------------------------------------------------------------------------------ RNN
def rnn_step_forward(x: np.ndarray, h: np.ndarray, W_ih: np.ndarray, W_hh: np.ndarray,
                     b_ih: np.ndarray, b_hh: np.ndarray, activation: str = "tanh"
                     ) -> tuple[np.ndarray, tuple]:
    """One step of the simple RNN: ``h_t = f(W_ih x_t + b_ih + W_hh h_{t−1} + b_hh)``.

    Args:
        x: x_t, (N, F). h: h_{t−1}, (N, H). W_ih: (H, F). W_hh: (H, H). b_ih, b_hh: (H,).
        activation: ``"tanh"`` or ``"relu"``.

    Returns:
        ``(h_t, cache)``, h_t of shape (N, H).
    """
    a = x @ W_ih.T + b_ih + h @ W_hh.T + b_hh  # (N, F) @ (F, H) + (N, H) @ (H, H)
    h_new = np.tanh(a) if activation == "tanh" else np.maximum(a, 0)
    return h_new, (x, h, W_ih, W_hh, h_new, activation)


def rnn_step_backward(dh: np.ndarray, cache: tuple) -> tuple[np.ndarray, ...]:
    """Backward of :func:`rnn_step_forward` for ``dh = dL/dh_t`` (both paths summed).

    ``da = dh ⊙ f'(a)`` with ``f'(a) = 1 − h_t²`` (tanh) or ``1[h_t > 0]`` (ReLU), then
    ``dx = da W_ih``, ``dh_{t−1} = da W_hh``, ``dW_ih = daᵀ x``, ``dW_hh = daᵀ h_{t−1}``,
    ``db_ih = db_hh = Σ_n da``.

    Returns:
        ``(dx, dh_prev, dW_ih, dW_hh, db_ih, db_hh)``.
    """
    x, h, W_ih, W_hh, h_new, activation = cache
    da = dh * (1 - h_new * h_new) if activation == "tanh" else dh * (h_new > 0)
    db = da.sum(axis=0)
    return da @ W_ih, da @ W_hh, da.T @ x, da.T @ h, db, db.copy()


# ----------------------------------------------------------------------------- LSTM
def lstm_step_forward(x: np.ndarray, h: np.ndarray, c: np.ndarray, W_ih: np.ndarray,
                      W_hh: np.ndarray, b_ih: np.ndarray, b_hh: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, tuple]:
    """One LSTM step (gates i, f, g, o as PyTorch; the equations in the module docstring).

    Args:
        x: x_t, (N, F). h, c: h_{t−1}, c_{t−1}, (N, H). W_ih: (4H, F). W_hh: (4H, H).
        b_ih, b_hh: (4H,).

    Returns:
        ``(h_t, c_t, cache)``.
    """
    H = h.shape[1]
    a = x @ W_ih.T + b_ih + h @ W_hh.T + b_hh  # (N, 4H): the four gates' pre-activations
    i = sigmoid(a[:, :H])
    f = sigmoid(a[:, H:2 * H])
    g = np.tanh(a[:, 2 * H:3 * H])
    o = sigmoid(a[:, 3 * H:])
    c_new = f * c + i * g
    tc = np.tanh(c_new)
    h_new = o * tc
    return h_new, c_new, (x, h, c, W_ih, W_hh, i, f, g, o, tc)


def lstm_step_backward(dh: np.ndarray, dc: np.ndarray, cache: tuple) -> tuple[np.ndarray, ...]:
    """Backward of :func:`lstm_step_forward` for ``dh = dL/dh_t`` and ``dc = dL/dc_t`` (the
    part carried from step t+1).

    ``do = dh ⊙ tanh(c_t)``, ``dc_t += dh ⊙ o ⊙ (1 − tanh²(c_t))``, then
    ``di = dc_t ⊙ g``, ``df = dc_t ⊙ c_{t−1}``, ``dg = dc_t ⊙ i``, ``dc_{t−1} = dc_t ⊙ f``;
    each gate's pre-activation gradient multiplies by σ' = σ(1 − σ) or tanh' = 1 − tanh²,
    and the four stacked give ``da`` (N, 4H), from which ``dx = da W_ih``,
    ``dh_{t−1} = da W_hh``, ``dW_ih = daᵀ x``, ``dW_hh = daᵀ h_{t−1}``, ``db = Σ_n da``.

    Returns:
        ``(dx, dh_prev, dc_prev, dW_ih, dW_hh, db_ih, db_hh)``.
    """
    x, h, c, W_ih, W_hh, i, f, g, o, tc = cache
    do = dh * tc
    dc = dc + dh * o * (1 - tc * tc)
    di, df, dg, dc_prev = dc * g, dc * c, dc * i, dc * f
    da = np.concatenate([di * i * (1 - i), df * f * (1 - f), dg * (1 - g * g),
                         do * o * (1 - o)], axis=1)  # (N, 4H)
    db = da.sum(axis=0)
    return da @ W_ih, da @ W_hh, dc_prev, da.T @ x, da.T @ h, db, db.copy()


# ------------------------------------------------------------------------------ GRU
def gru_step_forward(x: np.ndarray, h: np.ndarray, W_ih: np.ndarray, W_hh: np.ndarray,
                     b_ih: np.ndarray, b_hh: np.ndarray) -> tuple[np.ndarray, tuple]:
    """One GRU step (gates r, z, n as PyTorch; the equations in the module docstring).

    Args:
        x: x_t, (N, F). h: h_{t−1}, (N, H). W_ih: (3H, F). W_hh: (3H, H). b_ih, b_hh: (3H,).

    Returns:
        ``(h_t, cache)``.
    """
    H = h.shape[1]
    ax = x @ W_ih.T + b_ih  # (N, 3H): the input's part of each gate
    ah = h @ W_hh.T + b_hh  # (N, 3H): the recurrent part, b_hn included
    r = sigmoid(ax[:, :H] + ah[:, :H])
    z = sigmoid(ax[:, H:2 * H] + ah[:, H:2 * H])
    hn = ah[:, 2 * H:]  # W_hn h_{t−1} + b_hn, kept for the backward pass
    n = np.tanh(ax[:, 2 * H:] + r * hn)
    h_new = (1 - z) * n + z * h
    return h_new, (x, h, W_ih, W_hh, r, z, n, hn)


def gru_step_backward(dh: np.ndarray, cache: tuple) -> tuple[np.ndarray, ...]:
    """Backward of :func:`gru_step_forward` for ``dh = dL/dh_t``.

    ``dn = dh ⊙ (1 − z)``, ``dz = dh ⊙ (h_{t−1} − n)``, ``dh_{t−1} = dh ⊙ z + …``;
    ``da_n = dn ⊙ (1 − n²)`` reaches the input part directly and the recurrent part through
    the reset gate: ``d(W_hn h + b_hn) = da_n ⊙ r``, ``dr = da_n ⊙ (W_hn h + b_hn)``. The
    input-side gradients ``[da_r, da_z, da_n]`` give ``dx``, ``dW_ih``, ``db_ih``; the
    recurrent-side ``[da_r, da_z, da_n ⊙ r]`` give ``dh_{t−1}``, ``dW_hh``, ``db_hh``.

    Returns:
        ``(dx, dh_prev, dW_ih, dW_hh, db_ih, db_hh)``.
    """
    x, h, W_ih, W_hh, r, z, n, hn = cache
    dn = dh * (1 - z)
    dz = dh * (h - n)
    dan = dn * (1 - n * n)
    dar = dan * hn * r * (1 - r)
    daz = dz * z * (1 - z)
    dax = np.concatenate([dar, daz, dan], axis=1)  # (N, 3H), input side
    dah = np.concatenate([dar, daz, dan * r], axis=1)  # (N, 3H), recurrent side
    dh_prev = dh * z + dah @ W_hh
    return dax @ W_ih, dh_prev, dax.T @ x, dah.T @ h, dax.sum(axis=0), dah.sum(axis=0)


# ------------------------------------------------------------------- whole sequences
def _step_forward(cell: str, x_t, states, W_ih, W_hh, b_ih, b_hh, activation):
    if cell == "lstm":
        h, c, cache = lstm_step_forward(x_t, states[0], states[1], W_ih, W_hh, b_ih, b_hh)
        return (h, c), cache
    if cell == "gru":
        h, cache = gru_step_forward(x_t, states[0], W_ih, W_hh, b_ih, b_hh)
    else:
        h, cache = rnn_step_forward(x_t, states[0], W_ih, W_hh, b_ih, b_hh, activation)
    return (h,), cache


def _step_backward(cell: str, dstates, cache):
    """``(dx, dstates_prev, (dW_ih, dW_hh, db_ih, db_hh))`` of one step."""
    if cell == "lstm":
        dx, dh, dc, *g = lstm_step_backward(dstates[0], dstates[1], cache)
        return dx, (dh, dc), g
    step = gru_step_backward if cell == "gru" else rnn_step_backward
    dx, dh, *g = step(dstates[0], cache)
    return dx, (dh,), g


def recurrent_forward(cell: str, x: np.ndarray, states: tuple[np.ndarray, ...],
                      W_ih: np.ndarray, W_hh: np.ndarray, b_ih: np.ndarray, b_hh: np.ndarray,
                      mask: np.ndarray | None = None, reverse: bool = False,
                      activation: str = "tanh") -> tuple[np.ndarray, tuple, dict]:
    """Run a cell over a whole sequence, step after step.

    Args:
        cell: ``"rnn"``, ``"lstm"`` or ``"gru"``.
        x: (N, T, F), batch first.
        states: the initial states, ``(h_0,)`` or ``(h_0, c_0)`` for the LSTM, each (N, H).
        W_ih, W_hh, b_ih, b_hh: the weights in PyTorch's layout (see the module docstring).
        mask: None, or (N, T) with 1 for a real step and 0 for padding: a masked step keeps
            the state and outputs zeros.
        reverse: run from t = T−1 down to 0 (the backward direction of a bidirectional
            layer); ``y[:, t]`` is still the output after reading ``x_t``.
        activation: the simple RNN's ``"tanh"`` or ``"relu"``.

    Returns:
        ``(y, final_states, cache)``: y (N, T, H) the output of every step, final_states the
        states after the last step read.
    """
    N, T, _ = x.shape
    H = W_hh.shape[1]
    y = np.zeros((N, T, H), dtype=x.dtype)
    steps = []
    if mask is not None:
        mask = np.asarray(mask).astype(x.dtype)  # 1 = a real step, 0 = padding
    order = range(T - 1, -1, -1) if reverse else range(T)
    for t in order:
        new, cache = _step_forward(cell, x[:, t], states, W_ih, W_hh, b_ih, b_hh, activation)
        if mask is not None:
            m = mask[:, t, None].astype(x.dtype)  # (N, 1)
            new = tuple(m * s_new + (1 - m) * s for s_new, s in zip(new, states))
            y[:, t] = m * new[0]
        else:
            y[:, t] = new[0]
        steps.append((t, cache))
        states = new
    return y, states, {"kernel": "reference", "cell": cell, "steps": steps, "mask": mask,
                       "shape": x.shape, "dtype": x.dtype, "W_ih": W_ih, "W_hh": W_hh}


def recurrent_backward(dy: np.ndarray | None, dstates: tuple[np.ndarray | None, ...] | None,
                       cache: dict, need_dx: bool = True, need_dstates: bool = True
                       ) -> tuple[Any, Any, dict[str, np.ndarray]]:
    """Back-propagation through time for :func:`recurrent_forward`.

    Args:
        dy: dL/dy, (N, T, H), or None when only the final states are used.
        dstates: dL/d(final states) (entries may be None), or None.
        cache: from the forward pass.

    Returns:
        ``(dx, dstates0, grads)``: dx (N, T, F) (None unless ``need_dx``), the gradients of
        the initial states (None unless ``need_dstates``) and ``{"W_ih", "W_hh", "b_ih",
        "b_hh"}``.
    """
    N, T, F = cache["shape"]
    dt = cache["dtype"]
    mask = cache["mask"]
    W_ih, W_hh = cache["W_ih"], cache["W_hh"]
    H = W_hh.shape[1]
    n_states = N_STATES[cache["cell"]]
    ds = [np.zeros((N, H), dt) if dstates is None or dstates[k] is None else dstates[k]
          for k in range(n_states)]
    dx = np.zeros((N, T, F), dt)
    grads = {"W_ih": np.zeros_like(W_ih), "W_hh": np.zeros_like(W_hh),
             "b_ih": np.zeros(W_hh.shape[0], dt), "b_hh": np.zeros(W_hh.shape[0], dt)}
    for t, step_cache in reversed(cache["steps"]):
        if dy is not None:
            dh_out = dy[:, t] if mask is None else dy[:, t] * mask[:, t, None]
            ds[0] = ds[0] + dh_out
        if mask is not None:
            m = mask[:, t, None].astype(dt)
            keep = [(1 - m) * d for d in ds]  # what a masked step passes straight through
            ds = [m * d for d in ds]
        dx_t, ds_prev, g = _step_backward(cache["cell"], ds, step_cache)
        if mask is not None:
            ds_prev = [a + b for a, b in zip(ds_prev, keep)]
        ds = list(ds_prev)
        dx[:, t] = dx_t
        for key, gk in zip(("W_ih", "W_hh", "b_ih", "b_hh"), g):
            grads[key] += gk
    return (dx if need_dx else None), (tuple(ds) if need_dstates else None), grads
