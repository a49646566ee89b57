"""``Masking``: mark the padding steps of variable-length sequences, and how masks travel.

A batch of sequences of different lengths is padded to one length ``T``; the padding steps
must not change a recurrent layer's state. ``Masking(mask_value)`` marks every time step
whose features all equal ``mask_value`` as padding (as Keras): its output is its input with
those steps set to zero, and a recurrent layer (or ``Bidirectional``) called on that output
skips them — it keeps its state through them and outputs zeros there, so its final state is
the state after each sequence's last real step (PyTorch's ``pack_padded_sequence``).

How the mask reaches the recurrent layer (the graph engine passes arrays, not masks): when a
recurrent layer is called on a tensor that carries a mask, it adds the tensor the mask is
computed from — the input of the ``Masking`` layer — to its own inputs, and computes the
mask from it on every run, ``m[n, t] = any_f(x[n, t, f] ≠ mask_value)``. A recurrent layer
with ``return_sequences=True`` passes its input's mask on to its output, so stacked layers
are all masked, and so do the layers that act on each step alone (``Layer.keeps_mask``:
``TimeDistributed``, the element-wise activations, ``Dropout``); any other layer drops the
mask (a ``Flatten`` or a merge after a masked LSTM sees the zeros of the padding steps). A
mask may also be given explicitly: ``LSTM(8)(x, mask=m)`` with ``m`` of shape (T,) per
sample, 1 for a real step and 0 for padding.

**Losses.** When a model output carries a mask, ``fit`` and ``evaluate`` keep the mask's
source array of each run and pass the mask to that output's loss, which then averages over
the real steps only (``Σ_real ℓ / #real``, PyTorch's ``ignore_index`` mean) — so a
sequence tagger ``Embedding(mask_zero=True) → LSTM(return_sequences=True) →
TimeDistributed(Dense(K))`` trains on its real tokens — and the metrics count the real steps
only. Such a model trains in one process (its batches would split unevenly into parts).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import LAYERS, Call, Layer
from .node import Shape, SymbolicTensor, is_symbolic, mask_source


def compute_mask(src: np.ndarray, mask_value: float | None) -> np.ndarray:
    """The (N, T) boolean mask (True = a real step) from a mask source array."""
    if mask_value is None:
        if src.ndim != 2:
            raise ValueError(f"a mask must have shape (N, T); received {src.shape}")
        return src != 0
    return np.any(src != mask_value, axis=-1)


@LAYERS.register("Masking")
class Masking(Layer):
    """Mark the time steps whose features all equal ``mask_value`` as padding.

    ``y[n, t] = x[n, t] · m[n, t]`` with ``m[n, t] = any_f(x[n, t, f] ≠ mask_value)``; the
    recurrent layers called on ``y`` skip the steps with ``m = 0`` (see the module docstring).

    Args:
        mask_value: the padding value (default 0.0).

    Shape:
        (N, T, F) → (N, T, F). Backward: ``dx = dy · m``.

    >>> import numpy as np
    >>> x = np.array([[[1.0], [2.0], [0.0]]], dtype=np.float32)
    >>> Masking()(x)[0, :, 0]
    array([1., 2., 0.], dtype=float32)
    """

    def __init__(self, mask_value: float = 0.0, **kwargs: Any):
        super().__init__(**kwargs)
        if isinstance(mask_value, bool) or not isinstance(mask_value, (int, float)) \
                or not np.isfinite(mask_value):
            raise ValueError(f"mask_value must be a finite number; received "
                             f"mask_value={mask_value!r}")
        self.mask_value = float(mask_value)
        self._mask_of: dict[int, tuple[SymbolicTensor, float | None]] = {}

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 2:
            raise ValueError(f"{self.display_name}: expected a (T, F) sequence input shape; "
                             f"received {tuple(input_shape)}")
        return tuple(input_shape)

    def call_symbolic(self, inputs: Any, rng: np.random.Generator | None = None) -> Any:
        out = super().call_symbolic(inputs, rng)
        self._mask_of[id(out)] = (inputs, self.mask_value)
        return out

    def fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        self.check_input(x)
        m = compute_mask(x, self.mask_value)[:, :, None]  # (N, T, 1)
        call.cache = m
        return x * m

    def bprop(self, dy: np.ndarray, call: Call, accumulate: bool = False) -> np.ndarray | None:
        return dy * call.cache if call.need_dx else None

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mask_value": self.mask_value}


class SequenceLayer(Layer):
    """Base of the layers that read a sequence with optional initial states and a mask
    (the recurrent layers and ``Bidirectional``): how a call's inputs are laid out.

    A call's inputs are ``x``, then (``initial_state_input``) the ``n_states`` initial
    states, then (``mask_input``) the mask source: ``"mask"`` for an explicit 0/1 (T,)
    input, ``{"mask_value": v}`` for the input of a ``Masking`` layer. The first call fixes
    the layout; the config keeps it, so a saved graph calls the layer the same way.
    """

    n_states = 0
    return_sequences = False

    def init_roles(self) -> None:
        self.initial_state_input = False
        self.mask_input: Any = None
        self._roles_known = False
        self._mask_of: dict[int, Any] = {}

    def n_inputs(self) -> int:
        return 1 + self.n_states * self.initial_state_input + (self.mask_input is not None)

    def __call__(self, x: Any, training: bool = False, initial_state: Any = None,
                 mask: Any = None) -> Any:
        """``layer(x)``, ``layer(x, initial_state=[...], mask=m)`` or ``layer([x, *states])``,
        on arrays or symbolic tensors."""
        inputs = list(x) if isinstance(x, (list, tuple)) else [x]
        if self._roles_known and initial_state is None and mask is None and len(inputs) > 1:
            out = super().__call__(inputs, training)  # the full list, laid out as declared
            self._propagate_mask(inputs, out)
            return out
        if initial_state is not None:
            inputs += list(initial_state) if isinstance(initial_state, (list, tuple)) \
                else [initial_state]
        has_states = len(inputs) > 1
        mask_value = None
        if mask is None and is_symbolic(inputs[0]):
            src = mask_source(inputs[0])
            if src is not None:
                mask, mask_value = src
        if has_states and len(inputs) != 1 + self.n_states:
            raise ValueError(f"{self.display_name}: expected {self.n_states} initial "
                             f"state(s); received {len(inputs) - 1}")
        if mask is not None:
            inputs.append(mask)
        if not self._roles_known:
            self.initial_state_input = has_states
            self.mask_input = None if mask is None else (
                "mask" if mask_value is None else {"mask_value": float(mask_value)})
            self._roles_known = True
        elif has_states != self.initial_state_input or (mask is None) != (
                self.mask_input is None):
            raise ValueError(f"{self.display_name}: every call must give the same inputs as "
                             f"the first (initial states: {self.initial_state_input}, mask: "
                             f"{self.mask_input is not None})")
        out = super().__call__(inputs if len(inputs) > 1 else inputs[0], training)
        self._propagate_mask(inputs, out)
        return out

    def _propagate_mask(self, inputs: list, out: Any) -> None:
        """A masked layer returning sequences hands its mask on to its output tensor."""
        if self.mask_input is None or not self.return_sequences or not is_symbolic(inputs[0]):
            return
        value = None if self.mask_input == "mask" else self.mask_input["mask_value"]
        first = out[0] if isinstance(out, tuple) else out
        self._mask_of[id(first)] = (inputs[-1], value)

    def check_input(self, x: Any) -> None:
        """As :meth:`Layer.check_input`, except that a mask input may hold any real or
        boolean dtype (ids of an ``Embedding(mask_zero=True)``, a 0/1 integer mask)."""
        if isinstance(x, (list, tuple)) and self.mask_input is not None and len(x) > 1:
            m = x[-1]
            if not isinstance(m, np.ndarray) or m.dtype.kind not in "biuf":
                raise TypeError(f"{self.display_name}: the mask must be a numeric array; "
                                f"received {type(m).__name__}"
                                f"{'' if not isinstance(m, np.ndarray) else ' of ' + str(m.dtype)}")
            x = list(x[:-1]) + [m.astype(self.dtype, copy=False)]
        super().check_input(x)

    def split_inputs(self, x: Any) -> tuple[np.ndarray, list[np.ndarray] | None, Any]:
        """``(x, initial states or None, (N, T) boolean mask or None)`` of a call."""
        if not isinstance(x, (list, tuple)):
            return x, None, None
        states = list(x[1:1 + self.n_states]) if self.initial_state_input else None
        mask = None
        if self.mask_input is not None:
            v = None if self.mask_input == "mask" else self.mask_input["mask_value"]
            mask = compute_mask(x[-1], v)
            if mask.shape != x[0].shape[:2]:
                raise ValueError(f"{self.display_name}: the mask must have shape "
                                 f"{x[0].shape[:2]}; received {mask.shape}")
        return x[0], states, mask

    def needs(self, call: Call) -> Any:
        """The call's ``need_dx`` as one flag (one input) or a list of flags (a list)."""
        need = call.need_dx
        if isinstance(need, (list, tuple)) or self.n_inputs() == 1:
            return need
        return [bool(need)] * (self.n_inputs() - (self.mask_input is not None)) + [False] * (
            self.mask_input is not None)

    def input_grads(self, call: Call, dx: Any, dstates: Any) -> Any:
        """What ``bprop`` returns: ``dx``, or a list with the states' gradients and None for
        the mask, as the call's ``need_dx`` asks."""
        need = self.needs(call)
        if not isinstance(need, (list, tuple)):
            return dx if need else None
        out = [dx if need[0] else None]
        if self.initial_state_input:
            ds = list(dstates) if dstates is not None else [None] * self.n_states
            out += [d if n else None for d, n in zip(ds, need[1:1 + self.n_states])]
        if self.mask_input is not None:
            out.append(None)  # a mask has no gradient
        return out

    def roles_config(self, cfg: dict[str, Any]) -> dict[str, Any]:
        if self.initial_state_input:
            cfg["initial_state_input"] = True
        if self.mask_input is not None:
            cfg["mask_input"] = self.mask_input
        return cfg

    @classmethod
    def with_roles(cls, config: dict[str, Any]) -> Any:
        """``cls(**config)`` with the input layout of :meth:`roles_config` restored."""
        config = dict(config)
        state_in = config.pop("initial_state_input", False)
        mask_in = config.pop("mask_input", None)
        if not isinstance(state_in, bool):
            raise ValueError(f"initial_state_input must be true or false; received "
                             f"{state_in!r}")
        if not (mask_in is None or mask_in == "mask" or (
                isinstance(mask_in, dict) and set(mask_in) == {"mask_value"}
                and isinstance(mask_in["mask_value"], (int, float))
                and not isinstance(mask_in["mask_value"], bool))):
            raise ValueError(f"mask_input must be null, 'mask' or {{'mask_value': v}}; "
                             f"received {mask_in!r}")
        layer = cls(**config)
        layer.initial_state_input = state_in
        layer.mask_input = mask_in
        layer._roles_known = bool(state_in or mask_in is not None)
        return layer
