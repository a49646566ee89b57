"""``DenseTranspose``: a dense layer that borrows the transpose of another ``Dense``'s weights
(tied weights, as in the tied sparse autoencoder)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Call, Layer
from .core import Dense
from .node import Shape


class DenseTranspose(Layer):
    """``y = x Wᵀ + b`` with ``W`` the ``(in, out)`` kernel of another :class:`Dense` (the
    *owner*): this layer maps the owner's output space back to its input space and has only
    its own bias ``b``.

    Backward: ``dx = dy W`` and ``db = Σ_n dy``; the kernel's gradient ``dyᵀ x`` (out, in)
    is **added** into the owner's ``grads["W"]``, so the owner must come *after* this layer
    in the graph (its backward pass runs first and writes that gradient) — the order of a
    tied autoencoder whose decoder owns the weights and whose encoder is the transpose.
    The owner's W is one parameter, updated once by the optimizer.

    Not registered by name: a layer holding a reference to another layer has no JSON
    config (``get_config`` raises). Keep such a model's weights with ``get_weights`` /
    ``state_dict``.

    Args:
        owner: the built :class:`Dense` whose ``W`` (in, units) is shared.
        use_bias: add a bias of ``in`` values.
    """

    def __init__(self, owner: Dense, use_bias: bool = True, **kwargs: Any):
        super().__init__(**kwargs)
        if not isinstance(owner, Dense) or not owner.built:
            raise TypeError(f"DenseTranspose needs a built Dense layer to share the weights "
                            f"of; received {owner!r}")
        self.owner = owner
        self.use_bias = bool(use_bias)
        self.units = int(owner.params["W"].shape[0])

    def output_shape(self, input_shape: Shape) -> Shape:
        width = self.owner.params["W"].shape[1]
        if tuple(input_shape) != (width,):
            raise ValueError(f"{self.display_name}: expected input of shape ({width},), the "
                             f"units of {self.owner.display_name}; received "
                             f"{tuple(input_shape)}")
        return (self.units,)

    def param_shapes(self, input_shape: Shape) -> dict[str, tuple[int, ...]]:
        self.output_shape(input_shape)
        return {"b": (self.units,)} if self.use_bias else {}

    def build(self, input_shape: Shape, rng: np.random.Generator | None = None) -> None:
        super().build(input_shape, rng)
        if self.use_bias:
            self.add_param("b", np.zeros(self.units))

    def fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        self.check_input(x)
        call.cache = x
        y = x @ self.owner.params["W"].T  # (N, units_owner) @ (units_owner, in_owner)
        if self.use_bias:
            y += self.params["b"]
        return y

    def bprop(self, dy: np.ndarray, call: Call, accumulate: bool = False) -> np.ndarray | None:
        x = call.cache
        self.owner.grads["W"] += dy.T @ x  # (in_owner, N) @ (N, units_owner)
        if self.use_bias:
            self.store_grad("b", dy.sum(axis=0), accumulate)
        if not call.need_dx:
            return None
        return dy @ self.owner.params["W"]  # (N, in_owner) @ (in_owner, units_owner)

    def get_config(self) -> dict[str, Any]:
        raise ValueError(f"{self.display_name} shares the weights of "
                         f"{self.owner.display_name} and has no JSON config; save the "
                         "model's weights (get_weights / state_dict) instead")

    def __repr__(self) -> str:
        return f"DenseTranspose(owner={self.owner.display_name!r})"
