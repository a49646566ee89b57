"""``RecurrentOp``: ONNX's ``RNN``, ``LSTM`` and ``GRU`` operators as one numcnn layer.

It computes what the ONNX operator computes, with its inputs and outputs:

* input ``X``: (T, N, F) with ``layout=0`` (time first, ONNX's default) or (N, T, F) with
  ``layout=1``; optional extra inputs, in this order, as the ``inputs`` argument lists them:
  ``sequence_lens`` (N,) — sample n has ``sequence_lens[n]`` real steps, the rest is padding
  —, ``initial_h`` and ``initial_c`` — (D, N, H), or (N, D, H) with ``layout=1``;
* outputs ``Y`` (T, D, N, H) (``layout=1``: (N, T, D, H)) — every step's hidden state, zero
  on padding —, ``Y_h`` and, for the LSTM, ``Y_c`` (D, N, H) (``layout=1``: (N, D, H)) — the
  last states; D = 2 for ``direction="bidirectional"``, else 1.

The weights are held in PyTorch's layout and gate order (as numcnn's ``SimpleRNN``, ``LSTM``,
``GRU``): ``W_ih`` (G·H, F), ``W_hh`` (G·H, H), ``b_ih``, ``b_hh`` (G·H,), the LSTM peepholes
``P`` (3, H) rows p_i, p_f, p_o; the reverse direction of a bidirectional layer has the same
keys with ``_reverse`` appended (PyTorch's ``weight_ih_l0_reverse``). The importer converts
ONNX's gate orders (LSTM i, o, f, c; GRU z, r, h) into these.

With ONNX's defaults (activations σ/tanh, no clip, no peepholes, the GRU's
``linear_before_reset=1``) the layer runs numcnn's own recurrent kernels
(:func:`numcnn.functional.recurrent_forward`); any other option runs the cells of
:mod:`numcnn.functional.recurrent_general`. Both back-propagate through time.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..functional import recurrent_backward, recurrent_forward
from ..functional.recurrent import GATES, N_STATES
from ..functional.recurrent_general import (
    Act,
    general_recurrent_backward,
    general_recurrent_forward,
)
from .arithmetic import check_inputs
from .base import LAYERS, Call, Layer

_DEFAULT_ACTS = {"rnn": ["tanh"], "lstm": ["sigmoid", "tanh", "tanh"], "gru": ["sigmoid", "tanh"]}
_OPTIONAL = ("sequence_lens", "initial_h", "initial_c")
_OUTPUTS = ("Y", "Y_h", "Y_c")
_TAKES_ALPHA = {"affine", "leakyrelu", "thresholdedrelu", "scaledtanh", "hardsigmoid", "elu"}
_TAKES_BETA = {"affine", "scaledtanh", "hardsigmoid"}


@LAYERS.register("RecurrentOp")
class RecurrentOp(Layer):
    """An ONNX ``RNN``/``LSTM``/``GRU`` node (see the module docstring for its tensors).

    Args:
        cell: ``"rnn"``, ``"lstm"`` or ``"gru"``. units: H (ONNX ``hidden_size``).
        direction: ``"forward"``, ``"reverse"`` or ``"bidirectional"``.
        layout: 0 (time first) or 1 (batch first).
        activations: activation names per direction, ONNX's (``"Sigmoid"``, ``"Tanh"``,
            ``"Relu"``, ``"LeakyRelu"``, ``"HardSigmoid"``, ``"Elu"``, …); one list for both
            directions or one per direction concatenated; None: the defaults.
        activation_alpha, activation_beta: their constants, in the same order.
        clip: bound on the gates' pre-activations, or None.
        input_forget: the LSTM's forget gate is ``1 − i``. peepholes: the LSTM has ``P``.
        linear_before_reset: the GRU applies the reset gate after the recurrent product
            (PyTorch's cell); ONNX's default is False.
        inputs: which optional inputs follow ``X`` (a subset of ``sequence_lens``,
            ``initial_h``, ``initial_c``, in that order).
        outputs: which of ``Y``, ``Y_h``, ``Y_c`` the layer returns (one: an array; more: a
            tuple in that order).

    >>> layer = RecurrentOp("lstm", 4, layout=1, outputs=["Y_h"])
    >>> layer.output_shape((7, 3))
    (1, 4)
    """

    def __init__(self, cell: str, units: int, direction: str = "forward", layout: int = 0,
                 activations: Any = None, activation_alpha: Any = None,
                 activation_beta: Any = None, clip: float | None = None,
                 input_forget: bool = False, peepholes: bool = False,
                 linear_before_reset: bool = False, inputs: Any = (), outputs: Any = None,
                 **kwargs: Any):
        super().__init__(**kwargs)
        if cell not in GATES:
            raise ValueError(f"cell must be one of {sorted(GATES)}; received cell={cell!r}")
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units <= 0:
            raise ValueError(f"units must be a positive int; received units={units!r}")
        if direction not in ("forward", "reverse", "bidirectional"):
            raise ValueError(f"direction must be 'forward', 'reverse' or 'bidirectional'; "
                             f"received direction={direction!r}")
        if layout not in (0, 1):
            raise ValueError(f"layout must be 0 or 1; received layout={layout!r}")
        self.cell, self.units, self.direction, self.layout = cell, int(units), direction, layout
        n_dir = 2 if direction == "bidirectional" else 1
        per = len(_DEFAULT_ACTS[cell])
        names = list(activations) if activations else _DEFAULT_ACTS[cell] * n_dir
        if len(names) == per and n_dir == 2:
            names = names * 2
        if len(names) != per * n_dir:
            raise ValueError(f"a {direction} {cell} takes {per * n_dir} activations; received "
                             f"{activations!r}")
        self.activations = [str(a) for a in names]
        self.activation_alpha = None if activation_alpha is None else [
            float(a) for a in activation_alpha]
        self.activation_beta = None if activation_beta is None else [
            float(b) for b in activation_beta]
        self._acts = self._make_acts()
        self.clip = None if clip is None else float(clip)
        if self.clip is not None and not self.clip > 0:
            raise ValueError(f"clip must be positive; received clip={clip!r}")
        self.input_forget = bool(input_forget) and cell == "lstm"
        self.peepholes = bool(peepholes) and cell == "lstm"
        self.linear_before_reset = bool(linear_before_reset) and cell == "gru"
        if any(r not in _OPTIONAL for r in inputs) or list(inputs) != sorted(
                inputs, key=_OPTIONAL.index) or ("initial_c" in inputs and cell != "lstm"):
            raise ValueError(f"inputs must be a subset of {_OPTIONAL} in that order "
                             f"(initial_c for the LSTM only); received inputs={inputs!r}")
        self.inputs = tuple(inputs)
        outs = _OUTPUTS[:N_STATES[cell] + 1] if outputs is None else tuple(outputs)
        if not outs or any(o not in _OUTPUTS[:N_STATES[cell] + 1] for o in outs) \
                or list(outs) != sorted(outs, key=_OUTPUTS.index):
            raise ValueError(f"outputs must name some of {_OUTPUTS[:N_STATES[cell] + 1]} in "
                             f"that order; received outputs={outputs!r}")
        self.outputs = outs
        self.per_sample = layout == 1

    def _make_acts(self) -> list[Act]:
        """The activations with their constants: ``activation_alpha`` and
        ``activation_beta`` are consumed in order by the activations that take them."""
        alphas = list(self.activation_alpha or [])
        betas = list(self.activation_beta or [])
        out = []
        for name in self.activations:
            key = name.lower()
            a = alphas.pop(0) if key in _TAKES_ALPHA and alphas else None
            b = betas.pop(0) if key in _TAKES_BETA and betas else None
            out.append(Act(name, a, b))
        return out

    @property
    def n_dirs(self) -> int:
        return 2 if self.direction == "bidirectional" else 1

    def _standard(self) -> bool:
        """ONNX's defaults: numcnn's own kernels compute this cell."""
        per = len(_DEFAULT_ACTS[self.cell])
        names = [a.name for a in self._acts]
        acts_ok = all(names[d * per:(d + 1) * per] == _DEFAULT_ACTS[self.cell] or (
            self.cell == "rnn" and names[d] == "relu") for d in range(self.n_dirs))
        if self.cell == "rnn" and len(set(names)) > 1:
            acts_ok = False  # one activation for both directions on the standard path
        return acts_ok and self.clip is None and not self.peepholes and \
            not self.input_forget and (self.cell != "gru" or self.linear_before_reset)

    # ------------------------------------------------------------------ shapes
    def _main(self, input_shape: Any) -> tuple:
        shapes = input_shape if isinstance(input_shape, list) else [input_shape]
        if len(shapes) != 1 + len(self.inputs):
            raise ValueError(f"{self.display_name}: expected {1 + len(self.inputs)} inputs "
                             f"(X{''.join(', ' + r for r in self.inputs)}); received "
                             f"{len(shapes)}")
        x = tuple(shapes[0])
        if len(x) != 2:
            raise ValueError(f"{self.display_name}: X must have 3 axes ((T, N, F) or (N, T, F) "
                             f"with layout=1); received per-sample shape {x}")
        return x

    def output_shape(self, input_shape: Any) -> Any:
        a, F = self._main(input_shape)  # layout 0: a = N; layout 1: a = T
        D, H = self.n_dirs, self.units
        if self.layout == 0:
            shapes = {"Y": (D, a, H), "Y_h": (a, H), "Y_c": (a, H)}
        else:
            shapes = {"Y": (a, D, H), "Y_h": (D, H), "Y_c": (D, H)}
        out = [shapes[o] for o in self.outputs]
        return out if len(out) > 1 else out[0]

    def _suffixes(self) -> list[str]:
        return ["", "_reverse"][:self.n_dirs]

    def param_shapes(self, input_shape: Any) -> dict[str, tuple[int, ...]]:
        """Per direction: ``W_ih`` (G·H, F), ``W_hh`` (G·H, H), ``b_ih``, ``b_hh`` (G·H,) and
        ``P`` (3, H) with peepholes."""
        F = self._known_dim(self._main(input_shape), 1)
        GH, H = GATES[self.cell] * self.units, self.units
        out: dict[str, tuple[int, ...]] = {}
        for s in self._suffixes():
            out.update({"W_ih" + s: (GH, F), "W_hh" + s: (GH, H), "b_ih" + s: (GH,),
                        "b_hh" + s: (GH,)})
            if self.peepholes:
                out["P" + s] = (3, H)
        return out

    def build(self, input_shape: Any, rng: np.random.Generator | None = None) -> None:
        super().build(input_shape, rng)
        rng = rng if rng is not None else np.random.default_rng()
        k = 1.0 / np.sqrt(self.units)
        for key, shape in self.param_shapes(self.input_shape).items():
            self.add_param(key, rng.uniform(-k, k, shape))

    # ------------------------------------------------------------- computation
    def fprop(self, x: Any, call: Call) -> Any:
        if isinstance(x, (list, tuple)):
            check_inputs(self, x)  # X (T, N, F) and initial_h (D, N, H) differ on axis 0
        else:
            self.check_input(x)
        xs = list(x) if isinstance(x, (list, tuple)) else [x]
        X = xs[0]
        extra = dict(zip(self.inputs, xs[1:]))
        seq = X.transpose(1, 0, 2) if self.layout == 0 else X  # (N, T, F)
        seq = np.ascontiguousarray(seq)
        N, T, _ = seq.shape
        mask = None
        if "sequence_lens" in extra:
            lens = extra["sequence_lens"]
            if lens.shape != (N,) or (lens < 0).any() or (lens > T).any():
                raise ValueError(f"{self.display_name}: sequence_lens must hold {N} lengths "
                                 f"in [0, {T}]; received {lens!r}")
            mask = (np.arange(T)[None, :] < lens[:, None]).astype(seq.dtype)
        n_st = N_STATES[self.cell]
        ys, finals, caches = [], [], []
        for d, s in enumerate(self._suffixes()):
            states = []
            for key in ("initial_h", "initial_c")[:n_st]:
                v = extra.get(key)
                if v is None:
                    states.append(np.zeros((N, self.units), seq.dtype))
                else:
                    states.append(np.ascontiguousarray(v[d] if self.layout == 0 else v[:, d]))
            reverse = self.direction == "reverse" or d == 1
            y, fin, cache = self._run(seq, tuple(states), s, mask, reverse, d, call)
            ys.append(y)
            finals.append(fin)
            caches.append(cache)
        call.cache = (caches, N, T)
        Y = np.stack(ys, axis=2)  # (N, T, D, H)
        if self.layout == 0:
            Y = Y.transpose(1, 2, 0, 3)  # (T, D, N, H)
        outs = {"Y": np.ascontiguousarray(Y)}
        for k, key in enumerate(("Y_h", "Y_c")[:n_st]):
            st = np.stack([f[k] for f in finals], axis=0)  # (D, N, H)
            outs[key] = np.ascontiguousarray(st if self.layout == 0 else st.transpose(1, 0, 2))
        res = [outs[o] for o in self.outputs]
        return tuple(res) if len(res) > 1 else res[0]

    def _params(self, s: str) -> dict[str, np.ndarray]:
        keys = ("W_ih", "W_hh", "b_ih", "b_hh") + (("P",) if self.peepholes else ())
        return {k: self.params[k + s] for k in keys}

    def _run(self, seq, states, s, mask, reverse, d, call):
        p = self._params(s)
        if self._standard():
            act = "relu" if self._acts[d].name == "relu" else "tanh"
            y, fin, cache = recurrent_forward(self.cell, seq, states, p["W_ih"], p["W_hh"],
                                              p["b_ih"], p["b_hh"], mask, reverse, act,
                                              ws=call.ws.child(("dir", d)))
            return y, fin, ("std", cache)
        per = len(_DEFAULT_ACTS[self.cell])
        y, fin, cache = general_recurrent_forward(
            self.cell, seq, states, p, mask, reverse, self._acts[d * per:(d + 1) * per],
            self.clip, self.input_forget, self.linear_before_reset)
        return y, fin, ("general", cache)

    def bprop(self, dy: Any, call: Call, accumulate: bool = False) -> Any:
        caches, N, T = call.cache
        dys = dict(zip(self.outputs, dy if len(self.outputs) > 1 else (dy,)))
        n_st = N_STATES[self.cell]
        need = call.need_dx
        many = bool(self.inputs)  # called on [X, …]: one gradient per input
        flags = list(need) if isinstance(need, (list, tuple)) else \
            [bool(need)] * (1 + len(self.inputs))
        dx = None
        dstates0: list[list[np.ndarray]] = []
        for d, (s, (kind, cache)) in enumerate(zip(self._suffixes(), caches)):
            dY = dys.get("Y")
            dseq = None
            if dY is not None:
                dseq = dY[:, d].transpose(1, 0, 2) if self.layout == 0 else dY[:, :, d]
                dseq = np.ascontiguousarray(dseq)  # (N, T, H)
            dst = []
            for key in ("Y_h", "Y_c")[:n_st]:
                g = dys.get(key)
                dst.append(None if g is None else np.ascontiguousarray(
                    g[d] if self.layout == 0 else g[:, d]))
            if kind == "std":
                dx_d, d0, grads = recurrent_backward(dseq, tuple(dst), cache)
            else:
                dx_d, d0, grads = general_recurrent_backward(dseq, tuple(dst), cache)
            for k, g in grads.items():
                self.store_grad(k + s, g, accumulate)
            dx = dx_d if dx is None else dx + dx_d
            dstates0.append(list(d0))
        if not any(flags):
            return [None] * len(flags) if many else None
        if self.layout == 0:
            dx = dx.transpose(1, 0, 2)
        out: list[Any] = [np.ascontiguousarray(dx) if flags[0] else None]
        for r, f in zip(self.inputs, flags[1:]):
            if not f:
                out.append(None)
            elif r == "sequence_lens":
                out.append(np.zeros((N,), dx.dtype))
            else:
                k = 0 if r == "initial_h" else 1
                st = np.stack([ds[k] for ds in dstates0], axis=0)  # (D, N, H)
                out.append(np.ascontiguousarray(st if self.layout == 0 else
                                                st.transpose(1, 0, 2)))
        return out if many else out[0]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "cell": self.cell, "units": self.units,
                "direction": self.direction, "layout": self.layout,
                "activations": list(self.activations),
                "activation_alpha": self.activation_alpha,
                "activation_beta": self.activation_beta, "clip": self.clip,
                "input_forget": self.input_forget, "peepholes": self.peepholes,
                "linear_before_reset": self.linear_before_reset,
                "inputs": list(self.inputs), "outputs": list(self.outputs)}
