"""Activity penalties: identity layers that add a term of their input to the training loss.

``SparsityPenalty(ρ, β)`` is the sparse autoencoder's KL term (UFLDL; course 002's review of
the sparse autoencoder): for hidden activations ``a`` (N, units) in [0, 1],

    ρ̂_j = (1/N) Σ_n a_nj                                      (the batch's mean activation)
    P   = β Σ_j KL(ρ ‖ ρ̂_j),  KL(ρ ‖ ρ̂) = ρ log(ρ/ρ̂) + (1 − ρ) log((1 − ρ)/(1 − ρ̂))
    ∂P/∂a_nj = (β/N) (−ρ/ρ̂_j + (1 − ρ)/(1 − ρ̂_j))

``ActivityRegularization(l1, l2)`` is Keras's layer with tf.keras's batch-size scaling:
``P = (1/N) Σ (l1 |a| + l2 a²)``, ``∂P/∂a = (l1 sign(a) + 2 l2 a)/N``.

How the term reaches the loss: ``fprop`` returns its input unchanged and keeps the term's
value in the call (``penalty_value(call)``); the trainer adds the values of every such call
of a forward pass to the batch's loss and reports them under the layer's ``log_name``
(``sparsity_loss``, ``activity_regularization_loss``); ``bprop`` returns ``dy + ∂P/∂a``, so
the gradient reaches every layer before it. (The gradient flows back only along a path to
an output that has a loss, as any gradient does.) Both terms depend on the whole batch
(ρ̂ is a batch mean), so a model holding one trains in one process (``per_sample`` False:
``fit(distribute=...)`` refuses it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import LAYERS, Call, Layer


def kl_sparsity(a: np.ndarray, rho: float, beta: float) -> tuple[float, np.ndarray]:
    """``(β Σ_j KL(ρ ‖ ρ̂_j), ρ̂)`` for activations ``a`` (N, …): every per-sample element
    is a unit ``j``, ``ρ̂_j`` its mean over the batch (computed in float64).

    >>> round(kl_sparsity(np.array([[0.5], [0.5]]), 0.5, 3.0)[0], 12)  # ρ̂ = ρ: no penalty
    0.0
    """
    rho_hat = a.mean(axis=0, dtype=np.float64)
    with np.errstate(divide="ignore"):
        kl = rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat))
    return float(beta * kl.sum()), rho_hat


class PenaltyLayer(Layer):
    """An identity layer whose calls carry a loss term of their input (see the module
    docstring). Subclasses implement ``_penalty(x) -> (value, ∂P/∂x)``."""

    per_sample = False
    #: the key of the training logs the term is reported under (summed over layers)
    log_name = "penalty_loss"

    def fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        self.check_input(x)
        value, grad = self._penalty(x)
        call.cache = (value, grad)
        return x

    def bprop(self, dy: np.ndarray, call: Call, accumulate: bool = False) -> np.ndarray | None:
        if not call.need_dx:
            return None
        return dy + call.cache[1]  # (N, …): the loss's gradient plus the penalty's

    @property
    def last_call(self) -> Call | None:
        """The call of the latest :meth:`forward` (for ``penalty_value``)."""
        return self._last_call

    def penalty_value(self, call: Call) -> float:
        """The term this call adds to the loss."""
        return call.cache[0]

    def _penalty(self, x: np.ndarray) -> tuple[float, np.ndarray]:  # pragma: no cover
        raise NotImplementedError


def _check_number(name: str, value: Any, lo: float, hi: float, open_lo: bool) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.integer,
                                                            np.floating))
    ok = ok and (lo < value if open_lo else lo <= value) and value < hi
    if not ok:
        left = "(" if open_lo else "["
        raise ValueError(f"{name} must be a number in {left}{lo}, {hi}); received "
                         f"{name}={value!r}")
    return float(value)


@LAYERS.register("SparsityPenalty")
class SparsityPenalty(PenaltyLayer):
    """The sparse autoencoder's sparsity term ``β Σ_j KL(ρ ‖ ρ̂_j)`` on activations in [0, 1].

    ``ρ̂_j`` is unit ``j``'s mean activation over the batch — over the whole training set
    with full-batch training (``fit(batch_size=None)``, UFLDL's setting), else over each
    mini-batch. Place it right after the sigmoid whose activations should be sparse.
    Forward: ``y = a``; backward: ``dx = dy + (β/N)(−ρ/ρ̂_j + (1 − ρ)/(1 − ρ̂_j))``. A ρ̂
    of exactly 0 or 1 makes the term infinite (``fit`` then reports divergence).

    Args:
        rho: the target activation ρ ∈ (0, 1) (UFLDL: 0.01–0.1).
        beta: the weight β ≥ 0 of the term (UFLDL: 3).

    Shape:
        any (N, …) → the same; every per-sample element is a unit.

    >>> layer = SparsityPenalty(rho=0.1, beta=3.0)
    >>> _ = layer(np.array([[0.2], [0.4]]))  # ρ̂ = 0.3
    >>> round(layer.penalty_value(layer.last_call), 6)  # 3 (0.1 log(1/3) + 0.9 log(9/7))
    0.348965
    """

    log_name = "sparsity_loss"

    def __init__(self, rho: float = 0.05, beta: float = 3.0, **kwargs: Any):
        super().__init__(**kwargs)
        self.rho = _check_number("rho", rho, 0.0, 1.0, open_lo=True)
        self.beta = _check_number("beta", beta, 0.0, np.inf, open_lo=False)

    def _penalty(self, x):
        if x.size and not (0 <= x.min() and x.max() <= 1):
            raise ValueError(f"{self.display_name}: expected activations in [0, 1] (a "
                             f"sigmoid's output); received values in [{x.min()}, {x.max()}]")
        value, rho_hat = kl_sparsity(x, self.rho, self.beta)
        n = x.shape[0]
        with np.errstate(divide="ignore"):
            d = self.beta * (-self.rho / rho_hat + (1 - self.rho) / (1 - rho_hat)) / n
        return value, np.broadcast_to(d.astype(x.dtype), x.shape)  # same for every sample

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rho": self.rho, "beta": self.beta}


@LAYERS.register("ActivityRegularization")
class ActivityRegularization(PenaltyLayer):
    """Keras's ``ActivityRegularization``: ``P = (1/N) Σ (l1 |a| + l2 a²)`` over the batch's
    activations (tf.keras divides by the batch size), ``∂P/∂a = (l1 sign(a) + 2 l2 a)/N``.

    Args:
        l1, l2: the factors ≥ 0.

    >>> layer = ActivityRegularization(l1=0.5, l2=1.0)
    >>> _ = layer(np.array([[1.0, -2.0], [0.0, 1.0]]))
    >>> layer.penalty_value(layer.last_call)  # (0.5·4 + 6) / 2
    4.0
    """

    log_name = "activity_regularization_loss"

    def __init__(self, l1: float = 0.0, l2: float = 0.0, **kwargs: Any):
        super().__init__(**kwargs)
        self.l1 = _check_number("l1", l1, 0.0, np.inf, open_lo=False)
        self.l2 = _check_number("l2", l2, 0.0, np.inf, open_lo=False)

    def _penalty(self, x):
        n = max(x.shape[0], 1)
        flat = x.reshape(-1).astype(np.float64)
        value = (self.l1 * np.abs(flat).sum() + self.l2 * np.dot(flat, flat)) / n
        dt = x.dtype.type
        grad = (np.sign(x) * dt(self.l1) + x * dt(2 * self.l2)) * dt(1.0 / n)
        return float(value), grad

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "l1": self.l1, "l2": self.l2}
