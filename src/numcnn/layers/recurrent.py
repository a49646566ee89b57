"""Recurrent layers: ``SimpleRNN``, ``LSTM`` and ``GRU`` over (N, T, F) sequences.

Thin classes over :func:`numcnn.functional.recurrent_forward` (the cells' equations and the
back-propagation through time are written out in :mod:`numcnn.functional.recurrent`). The
weights are PyTorch's, in its layout and gate order, so ``W_ih``/``W_hh``/``b_ih``/``b_hh``
copy to and from ``torch.nn.RNN/LSTM/GRU`` (``weight_ih_l0`` …) unchanged.

What a layer reads and returns:

* input ``x`` (N, T, F), batch first; ``T`` may be free (``Input((None, F))``);
* initial states as extra inputs, ``layer([x, h0])`` (``[x, h0, c0]`` for the LSTM) or
  ``layer(x, initial_state=[h0, c0])``, each (N, H); zeros otherwise;
* a padding mask (see :mod:`.masking`): from a ``Masking`` layer before it, or
  ``layer(x, mask=m)`` with ``m`` (N, T), 1 for a real step;
* output: the last state ``h_T`` (N, H), or every step's ``h_t`` (N, T, H) with
  ``return_sequences``; with ``return_state`` also the final states, ``(y, h_T)`` or
  ``(y, h_T, c_T)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..functional import recurrent_backward, recurrent_forward
from ..functional.recurrent import GATES, N_STATES
from .base import LAYERS, Call
from .masking import SequenceLayer
from .node import Shape, format_shape


def _flag(value: Any, what: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{what} must be True or False; received {what}={value!r}")
    return bool(value)


class Recurrent(SequenceLayer):
    """Base of the recurrent layers (the arguments common to all three).

    Args:
        units: H, the size of the hidden state.
        return_sequences: output every step's state (N, T, H), not only the last (N, H).
        return_state: also output the final states (h, and c for the LSTM).
        go_backwards: read the sequence from its end; the output sequence is then in the
            reversed order too (as Keras).
        stateful: carry the final states of a batch over as the initial states of the next
            (truncated back-propagation through time): they live in ``buffers`` (``"h"``,
            ``"c"``), so checkpoints and ``state_dict`` keep them; ``reset_states()`` zeroes
            them. Needs ``batch_size``; gradients stop at the batch boundary.
        batch_size: the fixed batch size of a stateful layer.

    Weights (PyTorch's initialisation, uniform in ``±1/√H``): ``params["W_ih"]`` (G·H, F),
    ``params["W_hh"]`` (G·H, H), ``params["b_ih"]``, ``params["b_hh"]`` (G·H,).
    """

    cell = "rnn"

    def __init__(self, units: int, return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, stateful: bool = False,
                 batch_size: int | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units <= 0:
            raise ValueError(f"units must be a positive int; received units={units!r}")
        self.units = int(units)
        self.return_sequences = _flag(return_sequences, "return_sequences")
        self.return_state = _flag(return_state, "return_state")
        self.go_backwards = _flag(go_backwards, "go_backwards")
        self.stateful = _flag(stateful, "stateful")
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(
                batch_size, (int, np.integer)) or batch_size <= 0):
            raise ValueError(f"batch_size must be a positive int; received "
                             f"batch_size={batch_size!r}")
        if self.stateful and batch_size is None:
            raise ValueError("stateful=True needs the batch size: give batch_size=N (the state "
                             "of sample i carries over to sample i of the next batch)")
        self.batch_size = None if batch_size is None else int(batch_size)
        if self.stateful:
            self.per_sample = False  # a batch's state flows into the next batch
        self.init_roles()

    # ------------------------------------------------------------------ shapes
    @property
    def n_states(self) -> int:
        return N_STATES[self.cell]

    def _main_shape(self, input_shape: Any) -> Shape:
        if isinstance(input_shape, list):
            if len(input_shape) != self.n_inputs():
                raise ValueError(f"{self.display_name}: expected {self.n_inputs()} inputs "
                                 f"(x{', the initial states' * self.initial_state_input}"
                                 f"{', the mask' * (self.mask_input is not None)}); received "
                                 f"{len(input_shape)}")
            main = tuple(input_shape[0])
        else:
            if self.n_inputs() != 1:
                raise ValueError(f"{self.display_name}: expected a list of "
                                 f"{self.n_inputs()} inputs; received one")
            main = tuple(input_shape)
        if len(main) != 2:
            raise ValueError(f"{self.display_name}: expected a (T, F) sequence input shape "
                             f"(batch first: N, T, F); received {main}")
        if isinstance(input_shape, list) and self.initial_state_input:
            for s in input_shape[1:1 + self.n_states]:
                if len(s) != 1 or s[0] not in (None, self.units):
                    raise ValueError(f"{self.display_name}: an initial state must have shape "
                                     f"(N, {self.units}); received {format_shape(tuple(s))}")
        return main

    def output_shape(self, input_shape: Any) -> Any:
        T, _ = self._main_shape(input_shape)
        y = (T, self.units) if self.return_sequences else (self.units,)
        if self.return_state:
            return [y] + [(self.units,)] * self.n_states
        return y

    def param_shapes(self, input_shape: Any) -> dict[str, tuple[int, ...]]:
        """``W_ih`` (G·H, F), ``W_hh`` (G·H, H), ``b_ih`` and ``b_hh`` (G·H,)."""
        main = self._main_shape(input_shape)
        F = self._known_dim(main, 1)
        GH = GATES[self.cell] * self.units
        return {"W_ih": (GH, F), "W_hh": (GH, self.units), "b_ih": (GH,), "b_hh": (GH,)}

    def buffer_shapes(self, input_shape: Any) -> dict[str, tuple[int, ...]]:
        """The carried states of a stateful layer, (batch_size, H) each."""
        self._main_shape(input_shape)
        if not self.stateful:
            return {}
        return {k: (self.batch_size, self.units) for k in ("h", "c")[:self.n_states]}

    def build(self, input_shape: Any, rng: np.random.Generator | None = None) -> None:
        super().build(input_shape, rng)
        rng = rng if rng is not None else np.random.default_rng()
        k = 1.0 / np.sqrt(self.units)  # PyTorch's U(−1/√H, 1/√H) for every weight
        for key, shape in self.param_shapes(self.input_shape).items():
            self.add_param(key, rng.uniform(-k, k, shape))
        for key, shape in self.buffer_shapes(self.input_shape).items():
            self.buffers[key] = np.zeros(shape, dtype=self.dtype)

    def reset_states(self) -> None:
        """Zero the carried states of a stateful layer."""
        for b in self.buffers.values():
            b.fill(0)

    def fprop(self, x: Any, call: Call) -> Any:
        self.check_input(x)
        x, states, mask = self.split_inputs(x)
        N, T, _ = x.shape
        if T == 0:
            raise ValueError(f"{self.display_name}: a sequence needs at least one step; "
                             f"received {x.shape}")
        if states is None:
            if self.stateful:
                if N != self.batch_size:
                    raise ValueError(f"{self.display_name}: a stateful layer takes batches of "
                                     f"batch_size={self.batch_size}; received {N}")
                states = [self.buffers[k].copy() for k in ("h", "c")[:self.n_states]]
            else:
                states = [np.zeros((N, self.units), self.dtype)] * self.n_states
        p = self.params
        y, final, cache = recurrent_forward(self.cell, x, tuple(states), p["W_ih"], p["W_hh"],
                                            p["b_ih"], p["b_hh"], mask, self.go_backwards,
                                            getattr(self, "activation", "tanh"), call.ws,
                                            call.training)
        if self.stateful and self.initial_state_input is False:
            for k, s in zip(("h", "c"), final):
                self.buffers[k][...] = s
        call.cache = cache
        if not self.return_sequences:
            out = final[0]
        else:
            out = y[:, ::-1] if self.go_backwards else y
        if self.return_state:
            return (out, *final)
        return out

    def bprop(self, dy: Any, call: Call, accumulate: bool = False) -> Any:
        dys = list(dy) if self.return_state else [dy]
        dout = dys[0]
        dstates = dys[1:] if self.return_state else [None] * self.n_states
        dseq = None
        if dout is not None:
            if self.return_sequences:
                dseq = dout[:, ::-1] if self.go_backwards else dout
            else:
                dstates[0] = dout if dstates[0] is None else dstates[0] + dout
        need = self.needs(call)
        needs = list(need) if isinstance(need, (list, tuple)) else [bool(need)]
        need_states = self.initial_state_input and any(needs[1:1 + self.n_states])
        dx, d0, grads = recurrent_backward(dseq, tuple(dstates), call.cache,
                                           need_dx=needs[0], need_dstates=need_states)
        for k, g in grads.items():
            self.store_grad(k, g, accumulate)
        return self.input_grads(call, dx, d0)

    # ------------------------------------------------------------------ config
    def count_connections(self, input_shape: Any) -> int | None:
        return None

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update(units=self.units, return_sequences=self.return_sequences,
                   return_state=self.return_state, go_backwards=self.go_backwards,
                   stateful=self.stateful, batch_size=self.batch_size)
        return self.roles_config(cfg)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Recurrent:
        return cls.with_roles(config)


@LAYERS.register("SimpleRNN", "RNN")
class SimpleRNN(Recurrent):
    """The simple (Elman) RNN, as ``torch.nn.RNN``: ``h_t = f(W_ih x_t + b_ih + W_hh h_{t−1}
    + b_hh)`` — the course's ``s_t = f(U·x_t + W·s_{t−1})`` with ``U = W_ih``, ``W = W_hh``.

    Args:
        units: H. activation: ``"tanh"`` (default) or ``"relu"``. The rest: see
            :class:`Recurrent`.

    Shape:
        (N, T, F) → (N, H), or (N, T, H) with ``return_sequences``. G = 1.

    >>> import numpy as np
    >>> SimpleRNN(4, return_sequences=True)(np.zeros((2, 5, 3), np.float32)).shape
    (2, 5, 4)
    """

    cell = "rnn"

    def __init__(self, units: int, activation: str = "tanh", **kwargs: Any):
        super().__init__(units, **kwargs)
        if activation not in ("tanh", "relu"):
            raise ValueError(f"activation must be 'tanh' or 'relu'; received "
                             f"activation={activation!r}")
        self.activation = activation

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "activation": self.activation}


@LAYERS.register("LSTM")
class LSTM(Recurrent):
    """Long short-term memory, as ``torch.nn.LSTM`` (Hochreiter & Schmidhuber 1997, with the
    forget gate of Gers et al. 2000). Gates in PyTorch's order i, f, g, o (G = 4)::

        i_t = σ(W_ii x_t + b_ii + W_hi h_{t−1} + b_hi)     input gate   (course: i_t)
        f_t = σ(W_if x_t + b_if + W_hf h_{t−1} + b_hf)     forget gate  (course: f_t)
        g_t = tanh(W_ig x_t + b_ig + W_hg h_{t−1} + b_hg)  candidate    (course: c̃_t)
        o_t = σ(W_io x_t + b_io + W_ho h_{t−1} + b_ho)     output gate  (course: o_t)
        c_t = f_t ⊙ c_{t−1} + i_t ⊙ g_t,   h_t = o_t ⊙ tanh(c_t)

    Args: see :class:`Recurrent`. Shape: (N, T, F) → (N, H) or (N, T, H); with
    ``return_state`` the outputs are ``(y, h_T, c_T)``.

    >>> layer = LSTM(8); layer.build((None, 3)); layer.params["W_ih"].shape
    (32, 3)
    """

    cell = "lstm"


@LAYERS.register("GRU")
class GRU(Recurrent):
    """Gated recurrent unit, as ``torch.nn.GRU`` (Cho et al. 2014). Gates r, z, n (G = 3),
    with ``b_hn`` inside the reset product as PyTorch (Keras's ``reset_after=True``)::

        r_t = σ(W_ir x_t + b_ir + W_hr h_{t−1} + b_hr)     reset gate
        z_t = σ(W_iz x_t + b_iz + W_hz h_{t−1} + b_hz)     update gate
        n_t = tanh(W_in x_t + b_in + r_t ⊙ (W_hn h_{t−1} + b_hn))
        h_t = (1 − z_t) ⊙ n_t + z_t ⊙ h_{t−1}

    Args: see :class:`Recurrent`. Shape: (N, T, F) → (N, H) or (N, T, H).

    >>> layer = GRU(8); layer.build((None, 3)); layer.params["W_hh"].shape
    (24, 8)
    """

    cell = "gru"
