"""Recurrent cells with ONNX's options, forward and backward through time: any activation
functions, a clip on the pre-activations, LSTM peepholes and coupled input/forget gates,
and the GRU whose reset gate multiplies the state *before* the recurrent product
(ONNX's default ``linear_before_reset = 0``).

:mod:`.recurrent` holds the cells as PyTorch defines them (what numcnn's ``SimpleRNN``,
``LSTM`` and ``GRU`` compute). ONNX's ``RNN``, ``LSTM`` and ``GRU`` operators add options;
this module writes those cells out, one step at a time, in the same weight layout (PyTorch's
gate order: LSTM rows i, f, g, o; GRU rows r, z, n). With ``f``, ``g``, ``h`` the activations
(defaults σ, tanh, tanh), ``a`` a gate's pre-activation clipped to ``[−clip, clip]``:

* RNN: ``h_t = f(a)``, ``a = W_ih x_t + b_ih + W_hh h_{t−1} + b_hh``;
* LSTM: ``i = f(a_i + p_i ⊙ c_{t−1})``, ``f_t = f(a_f + p_f ⊙ c_{t−1})`` (or ``1 − i`` with
  ``input_forget``), ``g = g(a_g)``, ``c_t = f_t ⊙ c_{t−1} + i ⊙ g``,
  ``o = f(a_o + p_o ⊙ c_t)``, ``h_t = o ⊙ h(c_t)``;
* GRU: ``r = f(a_r)``, ``z = f(a_z)``, ``n = g(W_in x + b_in + W_hn (r ⊙ h_{t−1}) + b_hn)``
  (``linear_before_reset``: ``… + r ⊙ (W_hn h_{t−1} + b_hn)``, PyTorch's cell),
  ``h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}``.

A padding mask keeps the state on masked steps and outputs zeros there, as in
:func:`.recurrent.recurrent_forward`; with ``reverse`` the sequence is read from its end.
The backward pass differentiates each line above (the clip passes no gradient where it
clipped; a peephole adds its path to the cell state's gradient).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .recurrent import sigmoid

#: ONNX activation name -> (f(a, α, β), f'(a, y, α, β)) with y = f(a)
Activation = tuple[Callable[..., np.ndarray], Callable[..., np.ndarray]]
ACTIVATIONS: dict[str, Activation] = {
    "sigmoid": (lambda a, al, be: sigmoid(a), lambda a, y, al, be: y * (1 - y)),
    "tanh": (lambda a, al, be: np.tanh(a), lambda a, y, al, be: 1 - y * y),
    "relu": (lambda a, al, be: np.maximum(a, 0), lambda a, y, al, be: (a > 0).astype(a.dtype)),
    "affine": (lambda a, al, be: al * a + be, lambda a, y, al, be: np.full_like(a, al)),
    "leakyrelu": (lambda a, al, be: np.where(a > 0, a, al * a),
                  lambda a, y, al, be: np.where(a > 0, 1, al).astype(a.dtype)),
    "thresholdedrelu": (lambda a, al, be: np.where(a > al, a, 0),
                        lambda a, y, al, be: (a > al).astype(a.dtype)),
    "scaledtanh": (lambda a, al, be: al * np.tanh(be * a),
                   lambda a, y, al, be: al * be * (1 - np.tanh(be * a) ** 2)),
    "hardsigmoid": (lambda a, al, be: np.clip(al * a + be, 0, 1),
                    lambda a, y, al, be: al * ((al * a + be > 0) & (al * a + be < 1))),
    "elu": (lambda a, al, be: np.where(a > 0, a, al * (np.exp(np.minimum(a, 0)) - 1)),
            lambda a, y, al, be: np.where(a > 0, 1, y + al).astype(a.dtype)),
    "softsign": (lambda a, al, be: a / (1 + np.abs(a)),
                 lambda a, y, al, be: 1 / (1 + np.abs(a)) ** 2),
    "softplus": (lambda a, al, be: np.logaddexp(0, a), lambda a, y, al, be: sigmoid(a)),
}
#: α, β when ONNX gives none
DEFAULT_ALPHA_BETA = {"leakyrelu": (0.01, 0.0), "thresholdedrelu": (1.0, 0.0),
                      "hardsigmoid": (0.2, 0.5), "elu": (1.0, 0.0)}


class Act:
    """One activation with its constants: ``act(a) -> y``, ``act.grad(a, y) -> f'(a)``."""

    def __init__(self, name: str, alpha: float | None = None, beta: float | None = None):
        key = name.lower()
        if key not in ACTIVATIONS:
            raise ValueError(f"unknown activation {name!r}; known: {sorted(ACTIVATIONS)}")
        da, db = DEFAULT_ALPHA_BETA.get(key, (1.0, 0.0))
        self.name = key
        self.alpha = da if alpha is None else float(alpha)
        self.beta = db if beta is None else float(beta)
        self.f, self.df = ACTIVATIONS[key]

    def __call__(self, a: np.ndarray) -> np.ndarray:
        return self.f(a, a.dtype.type(self.alpha), a.dtype.type(self.beta)).astype(a.dtype)

    def grad(self, a: np.ndarray, y: np.ndarray) -> np.ndarray:
        return self.df(a, y, a.dtype.type(self.alpha), a.dtype.type(self.beta)).astype(a.dtype)


def _clip(a: np.ndarray, clip: float | None) -> tuple[np.ndarray, Any]:
    """``a`` clipped to ``[−clip, clip]`` and the mask where the gradient passes (1 when
    no clip)."""
    if clip is None:
        return a, 1
    return np.clip(a, -clip, clip), (np.abs(a) <= clip).astype(a.dtype)


def _step(cell, x, states, p, acts, clip, opts):
    """One step: ``(new_states, cache)``; ``p`` holds W_ih, W_hh, b_ih, b_hh (and P)."""
    h = states[0]
    H = h.shape[1]
    if cell == "rnn":
        a, m = _clip(x @ p["W_ih"].T + p["b_ih"] + h @ p["W_hh"].T + p["b_hh"], clip)
        y = acts[0](a)
        return (y,), (x, h, a, m, y)
    if cell == "lstm":
        c = states[1]
        a = x @ p["W_ih"].T + p["b_ih"] + h @ p["W_hh"].T + p["b_hh"]  # (N, 4H): i f g o
        P = p.get("P")
        ai, af, ag = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H]
        if P is not None:
            ai, af = ai + P[0] * c, af + P[1] * c
        ai, mi = _clip(ai, clip)
        af, mf = _clip(af, clip)
        ag, mg = _clip(ag, clip)
        i = acts[0](ai)
        f = 1 - i if opts["input_forget"] else acts[0](af)
        g = acts[1](ag)
        c_new = f * c + i * g
        ao = a[:, 3 * H:] + (P[2] * c_new if P is not None else 0)
        ao, mo = _clip(ao, clip)
        o = acts[0](ao)
        hc = acts[2](c_new)
        return (o * hc, c_new), (x, h, c, ai, af, ag, ao, mi, mf, mg, mo, i, f, g, o, c_new, hc)
    ax = x @ p["W_ih"].T + p["b_ih"]  # (N, 3H): r z n, input side
    W_hh, b_hh = p["W_hh"], p["b_hh"]
    ahrz = h @ W_hh[:2 * H].T + b_hh[:2 * H]
    ar, mr = _clip(ax[:, :H] + ahrz[:, :H], clip)
    az, mz = _clip(ax[:, H:2 * H] + ahrz[:, H:], clip)
    r, z = acts[0](ar), acts[0](az)
    if opts["linear_before_reset"]:
        hn = h @ W_hh[2 * H:].T + b_hh[2 * H:]
        an = ax[:, 2 * H:] + r * hn
    else:
        hn = (r * h) @ W_hh[2 * H:].T + b_hh[2 * H:]
        an = ax[:, 2 * H:] + hn
    an, mn = _clip(an, clip)
    n = acts[1](an)
    return ((1 - z) * n + z * h,), (x, h, ar, az, an, mr, mz, mn, r, z, n, hn)


def _step_backward(cell, ds, cache, p, acts, opts, g):
    """Backward of one step for ``ds = dL/d(new states)``: adds into the gradients ``g`` and
    returns ``(dx, dstates_prev)``."""
    if cell == "rnn":
        x, h, a, m, y = cache
        da = ds[0] * acts[0].grad(a, y) * m
        _linear_grads(g, da, x, h, da)
        return da @ p["W_ih"], (da @ p["W_hh"],)
    if cell == "lstm":
        x, h, c, ai, af, ag, ao, mi, mf, mg, mo, i, f, gg, o, c_new, hc = cache
        dh, dc = ds
        P = p.get("P")
        dao = dh * hc * acts[0].grad(ao, o) * mo
        dc = dc + dh * o * acts[2].grad(c_new, hc)
        if P is not None:
            dc = dc + dao * P[2]
        di, dgg, df = dc * gg, dc * i, dc * c
        dc_prev = dc * f
        if opts["input_forget"]:
            di, daf = di - df, np.zeros_like(df)
        else:
            daf = df * acts[0].grad(af, f) * mf
        dai = di * acts[0].grad(ai, i) * mi
        dag = dgg * acts[1].grad(ag, gg) * mg
        if P is not None:
            dc_prev = dc_prev + dai * P[0] + daf * P[1]
            g["P"] += np.stack([(dai * c).sum(0), (daf * c).sum(0), (dao * c_new).sum(0)])
        da = np.concatenate([dai, daf, dag, dao], axis=1)  # (N, 4H)
        _linear_grads(g, da, x, h, da)
        return da @ p["W_ih"], (da @ p["W_hh"], dc_prev)
    x, h, ar, az, an, mr, mz, mn, r, z, n, hn = cache
    dh = ds[0]
    H = h.shape[1]
    W_hh = p["W_hh"]
    dn = dh * (1 - z)
    dz = dh * (h - n)
    dh_prev = dh * z
    dan = dn * acts[1].grad(an, n) * mn
    daz = dz * acts[0].grad(az, z) * mz
    if opts["linear_before_reset"]:
        dhn = dan * r
        dr = dan * hn
        rec_in = h
    else:
        dhn = dan  # dL/d(W_hn (r ⊙ h) + b_hn)
        drh = dhn @ W_hh[2 * H:]
        dr = drh * h
        dh_prev = dh_prev + drh * r
        rec_in = r * h
    dar = dr * acts[0].grad(ar, r) * mr
    dax = np.concatenate([dar, daz, dan], axis=1)
    g["W_ih"] += dax.T @ x
    g["b_ih"] += dax.sum(0)
    drz = np.concatenate([dar, daz], axis=1)
    g["W_hh"][:2 * H] += drz.T @ h
    g["W_hh"][2 * H:] += dhn.T @ rec_in
    g["b_hh"] += np.concatenate([drz.sum(0), dhn.sum(0)])
    dh_prev = dh_prev + drz @ W_hh[:2 * H]
    if opts["linear_before_reset"]:
        dh_prev = dh_prev + dhn @ W_hh[2 * H:]
    return dax @ p["W_ih"], (dh_prev,)


def _linear_grads(g, da_x, x, h, da_h):
    g["W_ih"] += da_x.T @ x
    g["W_hh"] += da_h.T @ h
    g["b_ih"] += da_x.sum(0)
    g["b_hh"] += da_h.sum(0)


def general_recurrent_forward(cell: str, x: np.ndarray, states: tuple, params: dict,
                              mask: np.ndarray | None = None, reverse: bool = False,
                              activations: list[Act] | None = None, clip: float | None = None,
                              input_forget: bool = False, linear_before_reset: bool = False
                              ) -> tuple[np.ndarray, tuple, dict]:
    """Run a cell with ONNX's options over a sequence.

    Args:
        cell: ``"rnn"``, ``"lstm"`` or ``"gru"``. x: (N, T, F).
        states: ``(h_0,)`` or ``(h_0, c_0)``, each (N, H).
        params: ``W_ih``, ``W_hh``, ``b_ih``, ``b_hh`` in PyTorch's layout and gate order,
            and for peepholes ``P`` (3, H), rows p_i, p_f, p_o.
        mask: (N, T), 1 for a real step, or None. reverse: read from t = T − 1 down.
        activations: the cell's :class:`Act` list (RNN: [f]; LSTM: [f, g, h]; GRU: [f, g]).
        clip: bound on every gate pre-activation, or None.
        input_forget: LSTM forget gate ``1 − i``. linear_before_reset: the GRU variant.

    Returns:
        ``(y, final_states, cache)``, y (N, T, H) with ``y[:, t]`` the output at step t.
    """
    N, T, _ = x.shape
    H = params["W_hh"].shape[1]
    opts = {"input_forget": bool(input_forget), "linear_before_reset": bool(linear_before_reset)}
    y = np.zeros((N, T, H), dtype=x.dtype)
    m = None if mask is None else np.asarray(mask).astype(x.dtype)
    steps = []
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        new, cache = _step(cell, x[:, t], states, params, activations, clip, opts)
        if m is not None:
            mt = m[:, t, None]
            new = tuple(mt * s_new + (1 - mt) * s for s_new, s in zip(new, states))
            y[:, t] = mt * new[0]
        else:
            y[:, t] = new[0]
        steps.append((t, cache))
        states = new
    return y, states, {"cell": cell, "steps": steps, "mask": m, "shape": x.shape,
                       "params": params, "acts": activations, "opts": opts}


def general_recurrent_backward(dy: np.ndarray | None, dstates: tuple | None, cache: dict
                               ) -> tuple[np.ndarray, tuple, dict]:
    """``(dx, dstates0, grads)`` of :func:`general_recurrent_forward` (grads keyed like
    ``params``)."""
    N, T, F = cache["shape"]
    p, m = cache["params"], cache["mask"]
    H = p["W_hh"].shape[1]
    dt = p["W_hh"].dtype
    n_states = 2 if cache["cell"] == "lstm" else 1
    ds = [np.zeros((N, H), dt) if dstates is None or dstates[k] is None else dstates[k]
          for k in range(n_states)]
    g = {k: np.zeros_like(v) for k, v in p.items()}
    dx = np.zeros((N, T, F), dt)
    for t, step in reversed(cache["steps"]):
        if dy is not None:
            ds[0] = ds[0] + (dy[:, t] if m is None else dy[:, t] * m[:, t, None])
        keep = None
        if m is not None:
            mt = m[:, t, None]
            keep = [(1 - mt) * d for d in ds]
            ds = [mt * d for d in ds]
        dx_t, prev = _step_backward(cache["cell"], ds, step, p, cache["acts"], cache["opts"], g)
        ds = [a + b for a, b in zip(prev, keep)] if keep is not None else list(prev)
        dx[:, t] = dx_t
    return dx, tuple(ds), g
