"""``Bidirectional``: one recurrent layer reads the sequence forwards, a second backwards.

At every step t the output joins what the forward layer has read of ``x_1 … x_t`` with what
the backward layer has read of ``x_T … x_t`` (Schuster & Paliwal 1997), as Keras's
``Bidirectional`` and ``torch.nn.LSTM(bidirectional=True)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import LAYERS, Call, Layer, deserialize, serialize
from .masking import SequenceLayer
from .recurrent import Recurrent

MERGE_MODES = ("concat", "sum", "mul", "ave", None)


@LAYERS.register("Bidirectional")
class Bidirectional(SequenceLayer):
    """Run ``layer`` forwards and a copy of it backwards, and merge their outputs.

    Args:
        layer: a ``SimpleRNN``, ``LSTM`` or ``GRU`` (unbuilt); it becomes ``forward_layer``.
        merge_mode: ``"concat"`` (default: ``[y_fwd, y_bwd]`` on the last axis, 2H
            features), ``"sum"``, ``"mul"``, ``"ave"``, or None (two outputs
            ``(y_fwd, y_bwd)``).
        backward_layer: the layer that reads backwards; by default a copy of ``layer``'s
            config with ``go_backwards`` flipped. Its ``return_sequences`` and
            ``return_state`` must be ``layer``'s.

    With ``return_sequences`` the backward layer's output is put back in time order, so
    ``y[:, t]`` joins both directions' states after reading ``x_t`` (PyTorch's bidirectional
    output). With ``return_state`` the outputs end with the forward layer's final states,
    then the backward layer's. Initial states, as extra inputs, come in that order too:
    ``[x, h_fwd, (c_fwd), h_bwd, (c_bwd)]``.

    Parameters: the two layers' own, as ``forward_W_ih`` … ``backward_b_hh`` (the same
    arrays as ``forward_layer.params["W_ih"]`` …).

    >>> from numcnn.layers import LSTM
    >>> Bidirectional(LSTM(4, return_sequences=True)).output_shape((7, 3))
    (7, 8)
    """

    def __init__(self, layer: Any, merge_mode: str | None = "concat",
                 backward_layer: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        if isinstance(layer, dict):
            layer = deserialize(layer)
        if isinstance(backward_layer, dict):
            backward_layer = deserialize(backward_layer)
        if not isinstance(layer, Recurrent):
            raise TypeError(f"Bidirectional wraps a SimpleRNN, LSTM or GRU; received "
                            f"{type(layer).__name__}")
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"merge_mode must be one of {MERGE_MODES}; received "
                             f"merge_mode={merge_mode!r}")
        if layer.built:
            raise ValueError("Bidirectional needs an unbuilt layer (it builds both directions)")
        if backward_layer is None:
            cfg = serialize(layer)
            cfg["config"] = dict(cfg["config"], go_backwards=not layer.go_backwards,
                                 name=None if layer.name is None else "backward_" + layer.name)
            backward_layer = deserialize(cfg)
        if not isinstance(backward_layer, Recurrent) or backward_layer.built:
            raise TypeError("backward_layer must be an unbuilt SimpleRNN, LSTM or GRU")
        for attr in ("return_sequences", "return_state", "stateful"):
            if getattr(layer, attr) != getattr(backward_layer, attr):
                raise ValueError(f"layer and backward_layer must agree on {attr}; received "
                                 f"{getattr(layer, attr)} and {getattr(backward_layer, attr)}")
        if layer.cell != backward_layer.cell:
            raise ValueError(f"layer and backward_layer must be the same kind of cell; received "
                             f"{type(layer).__name__} and {type(backward_layer).__name__}")
        if layer.units != backward_layer.units:  # one hidden size, as torch's bidirectional
            raise ValueError(f"layer and backward_layer must have the same units; received "
                             f"{layer.units} and {backward_layer.units}")
        self.forward_layer: Recurrent = layer
        self.backward_layer: Recurrent = backward_layer
        self.merge_mode = merge_mode
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state
        if layer.stateful:
            self.per_sample = False
        self.init_roles()

    @property
    def n_states(self) -> int:  # type: ignore[override]
        return 2 * self.forward_layer.n_states

    @property
    def layers(self) -> tuple[Recurrent, Recurrent]:
        return self.forward_layer, self.backward_layer

    # ------------------------------------------------------------------ shapes
    def _inner_shape(self, input_shape: Any) -> Any:
        """The input shape each direction is built for (its own states, the mask as 0/1)."""
        if not isinstance(input_shape, list):
            if self.n_inputs() != 1:
                raise ValueError(f"{self.display_name}: expected a list of {self.n_inputs()} "
                                 "inputs; received one")
            return tuple(input_shape)
        if len(input_shape) != self.n_inputs():
            raise ValueError(f"{self.display_name}: expected {self.n_inputs()} inputs; "
                             f"received {len(input_shape)}")
        main = tuple(input_shape[0])
        k = self.forward_layer.n_states
        out = [main] + [tuple(s) for s in input_shape[1:1 + k]] * self.initial_state_input
        if self.mask_input is not None:
            out.append(main[:1])
        return out if len(out) > 1 else main

    def _set_inner_roles(self) -> None:
        for lay in self.layers:
            lay.initial_state_input = self.initial_state_input
            lay.mask_input = None if self.mask_input is None else "mask"
            lay._roles_known = True

    def output_shape(self, input_shape: Any) -> Any:
        self._set_inner_roles()
        inner = self.forward_layer.output_shape(self._inner_shape(input_shape))
        y, states = (inner[0], inner[1:]) if self.return_state else (inner, [])
        if self.merge_mode is None:
            ys = [y, y]
        elif self.merge_mode == "concat":
            ys = [y[:-1] + (2 * y[-1],)]
        else:
            ys = [y]
        out = ys + list(states) * 2
        return out if len(out) > 1 else out[0]

    def param_shapes(self, input_shape: Any) -> dict[str, tuple[int, ...]]:
        """Each direction's parameters, prefixed ``forward_`` and ``backward_``."""
        self._set_inner_roles()
        shape = self._inner_shape(input_shape)
        return {f"{d}_{k}": v for d, lay in zip(("forward", "backward"), self.layers)
                for k, v in lay.param_shapes(shape).items()}

    def buffer_shapes(self, input_shape: Any) -> dict[str, tuple[int, ...]]:
        self._set_inner_roles()
        shape = self._inner_shape(input_shape)
        return {f"{d}_{k}": v for d, lay in zip(("forward", "backward"), self.layers)
                for k, v in lay.buffer_shapes(shape).items()}

    def build(self, input_shape: Any, rng: np.random.Generator | None = None) -> None:
        Layer.build(self, input_shape, rng)
        rng = rng if rng is not None else np.random.default_rng()
        self._set_inner_roles()
        shape = self._inner_shape(self.input_shape)
        self.params, self.grads, self.buffers = {}, {}, {}
        for d, lay in zip(("forward", "backward"), self.layers):
            if not lay.built:
                lay.set_dtype(self.dtype)
            lay.build(shape, rng)
            for k in lay.params:  # the same arrays: the inner layers compute, we expose
                self.params[f"{d}_{k}"] = lay.params[k]
                self.grads[f"{d}_{k}"] = lay.grads[k]
            for k in lay.buffers:
                self.buffers[f"{d}_{k}"] = lay.buffers[k]

    def set_dtype(self, dtype: Any) -> None:
        super().set_dtype(dtype)
        for lay in self.layers:
            if not lay.built:
                lay.set_dtype(dtype)

    def reset_states(self) -> None:
        """Zero both directions' carried states (stateful layers)."""
        for lay in self.layers:
            lay.reset_states()

    # ------------------------------------------------------------------- calls
    def _inner_input(self, x: np.ndarray, states: Any, mask: Any, k: int) -> Any:
        n = self.forward_layer.n_states
        parts = [x] + (list(states[k * n:(k + 1) * n]) if states is not None else [])
        if mask is not None:
            parts.append(mask.astype(x.dtype))
        return parts if len(parts) > 1 else x

    def _inner_need(self, need: Any, k: int) -> Any:
        if not isinstance(need, (list, tuple)):
            return need
        n = self.forward_layer.n_states
        out = [need[0]]
        if self.initial_state_input:
            out += list(need[1 + k * n:1 + (k + 1) * n])
        if self.mask_input is not None:
            out.append(False)
        return out

    def fprop(self, x: Any, call: Call) -> Any:
        self.check_input(x)
        x, states, mask = self.split_inputs(x)
        outs, calls = [], []
        for k, (d, lay) in enumerate(zip(("forward", "backward"), self.layers)):
            sub = Call(call.training, self._inner_need(self.needs(call), k), call.ws.child(d))
            outs.append(lay.fprop(self._inner_input(x, states, mask, k), sub))
            calls.append(sub)
        (yf, *sf), (yb, *sb) = [o if self.return_state else (o,) for o in outs]
        if self.return_sequences:
            yb = yb[:, ::-1]  # back in time order
        call.cache = (calls, yf, yb)
        if self.merge_mode is None:
            ys = [yf, yb]
        elif self.merge_mode == "concat":
            ys = [np.concatenate([yf, yb], axis=-1)]
        elif self.merge_mode == "sum":
            ys = [yf + yb]
        elif self.merge_mode == "mul":
            ys = [yf * yb]
        else:
            ys = [(yf + yb) * 0.5]
        out = ys + sf + sb
        return tuple(out) if len(out) > 1 else out[0]

    def bprop(self, dy: Any, call: Call, accumulate: bool = False) -> Any:
        calls, yf, yb = call.cache
        dys = list(dy) if isinstance(dy, tuple) else [dy]
        n_y = 2 if self.merge_mode is None else 1
        dmain, dst = dys[:n_y], dys[n_y:]
        if self.merge_mode is None:
            dyf, dyb = dmain
        else:
            d = dmain[0]
            if d is None:
                dyf = dyb = None
            elif self.merge_mode == "concat":
                H = yf.shape[-1]
                dyf, dyb = d[..., :H], d[..., H:]
            elif self.merge_mode == "sum":
                dyf = dyb = d
            elif self.merge_mode == "mul":
                dyf, dyb = d * yb, d * yf
            else:
                dyf = dyb = d * 0.5
        if dyb is not None and self.return_sequences:
            dyb = dyb[:, ::-1]  # into the backward layer's own (reversed) order
        n = self.forward_layer.n_states
        dxs = []
        for k, (lay, sub, dk) in enumerate(zip(self.layers, calls, (dyf, dyb))):
            inner_dy = (dk, *dst[k * n:(k + 1) * n]) if self.return_state else dk
            dxs.append(lay.bprop(inner_dy, sub, accumulate))
        need = self.needs(call)
        if not isinstance(need, (list, tuple)):
            return dxs[0] + dxs[1] if need else None
        fx, bx = (d if isinstance(d, list) else [d] for d in dxs)
        dx = fx[0] + bx[0] if need[0] else None
        states = None
        if self.initial_state_input:
            states = fx[1:1 + n] + bx[1:1 + n]
        return self.input_grads(call, dx, states)

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update(layer=serialize(self.forward_layer), merge_mode=self.merge_mode,
                   backward_layer=serialize(self.backward_layer))
        return self.roles_config(cfg)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Bidirectional:
        return cls.with_roles(config)
