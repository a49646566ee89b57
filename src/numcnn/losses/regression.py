"""Regression losses: element-wise values ``ℓ(d)`` of ``d = ŷ − y`` (and ``half_sse``, one
value per sample). Below, ``M`` is the number of values the ``"mean"`` averages."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import (
    EPSILON,
    LOSSES,
    Loss,
    check_range,
    check_same_shape,
    elementwise_targets,
    one_hot_like,
    times,
)


@LOSSES.register("mse", "mean_squared_error")
class MSE(Loss):
    """Mean squared error ``L = mean((ŷ − y)²)`` over all elements; ``dL/dŷ = 2(ŷ − y)/M``.

    Integer class labels (N,) are one-hot encoded when ``y_pred`` is (N, K), so a classifier
    can be trained with MSE as in the course. ``MSE(reduction="sum", scale=0.5)`` is the
    course's ``E = ½ Σ (ŷ − y)²`` with gradient ``ŷ − y``.

    >>> MSE(reduction="sum", scale=0.5)(np.array([1.0, 3.0]), np.array([0.0, 1.0]))
    2.5
    """

    sample_mean = True
    class_scores = True

    def _values(self, y_pred, y_true):
        y_true = one_hot_like(y_pred, y_true, "mse")
        check_same_shape(y_pred, y_true, "mse")
        diff = y_pred - y_true.astype(y_pred.dtype, copy=False)
        self._cache = diff
        return diff * diff

    def _grad(self, c):
        return times(self._cache, 2 * c)


@LOSSES.register("half_sse", "half_sum_squared_error")
class HalfSSE(Loss):
    """Half the sum of squared errors of each sample, averaged over the batch (UFLDL's and
    the course's reconstruction cost)::

        ℓ_n = ½ ‖ŷ_n − y_n‖² = ½ Σ_{features} (ŷ − y)²        one value per sample
        L   = (1/N) Σ_n ℓ_n                                  dL/dŷ = (ŷ − y) / N

    ``reduction="sum"`` gives the course's batch cost ``E = ½ Σ_n Σ (ŷ − y)²`` (gradient
    ``ŷ − y``) and equals ``mse(reduction="sum", scale=0.5)``; ``"none"`` returns the N
    values ``ℓ_n``. Integer class labels (N,) are one-hot encoded for an output (N, K).
    With a mask, each real step is a sample.

    >>> HalfSSE()(np.array([[1.0, 3.0], [0.0, 0.0]]), np.array([[0.0, 1.0], [0.0, 2.0]]))
    2.25
    """

    sample_mean = True
    value_axes = "sample"

    def _values(self, y_pred, y_true):
        y_true = one_hot_like(y_pred, y_true, "half_sse")
        check_same_shape(y_pred, y_true, "half_sse")
        diff = y_pred - y_true.astype(y_pred.dtype, copy=False)
        self._cache = diff
        d2 = diff.reshape(len(diff), -1)  # (N, features); an output (N,): one each
        return np.einsum("ij,ij->i", d2, d2) * diff.dtype.type(0.5)  # (N,)

    def _grad(self, c):
        return times(self._cache, c)


@LOSSES.register("mae", "mean_absolute_error", "l1")
class MAE(Loss):
    """Mean absolute error ``L = mean|ŷ − y|``; ``dL/dŷ = sign(ŷ − y) / M``.

    The sub-gradient at ``ŷ = y`` is 0, as in PyTorch's ``F.l1_loss``.

    >>> MAE()(np.array([1.0, 2.0]), np.array([0.0, 4.0]))
    1.5
    """

    sample_mean = True

    def _values(self, y_pred, y_true):
        diff = y_pred - elementwise_targets(y_pred, y_true, "mae")
        self._cache = diff
        return np.abs(diff)

    def _grad(self, c):
        return times(np.sign(self._cache), c)


@LOSSES.register("msle", "mean_squared_logarithmic_error")
class MSLE(Loss):
    """Mean squared logarithmic error (Keras's form).

    ``L = mean( (log(1 + max(ŷ, ε)) − log(1 + max(y, ε)))² )`` with ``ε = 1e-7``;
    ``dL/dŷ = 2 (a − b) / ((1 + ŷ) M)`` where ``ŷ ≥ ε`` and 0 where the clip is active
    (``a``, ``b`` the two logs). Targets must be ≥ 0; negative predictions are clipped, not
    rejected, so a network may pass through them while training.

    >>> round(MSLE()(np.array([np.e - 1]), np.array([0.0])), 6)
    1.0
    """

    sample_mean = True

    def _values(self, y_pred, y_true):
        y = elementwise_targets(y_pred, y_true, "msle")
        check_range(y, 0, np.inf, "targets", "msle")
        eps = y_pred.dtype.type(EPSILON)
        yp = np.maximum(y_pred, eps)
        diff = np.log1p(yp) - np.log1p(np.maximum(y, eps))
        self._cache = (diff, yp, y_pred >= eps)
        return diff * diff

    def _grad(self, c):
        diff, yp, active = self._cache
        return times(diff / (1 + yp) * active, 2 * c)


@LOSSES.register("mape", "mean_absolute_percentage_error")
class MAPE(Loss):
    """Mean absolute percentage error, in percent (Keras's form).

    ``L = 100 · mean( |ŷ − y| / max(|y|, ε) )`` with ``ε = 1e-7``;
    ``dL/dŷ = 100 · sign(ŷ − y) / (max(|y|, ε) M)``.

    >>> MAPE()(np.array([110.0, 45.0]), np.array([100.0, 50.0]))
    10.0
    """

    sample_mean = True

    def _values(self, y_pred, y_true):
        y = elementwise_targets(y_pred, y_true, "mape")
        diff = y_pred - y
        denom = np.maximum(np.abs(y), y_pred.dtype.type(EPSILON))
        self._cache = (diff, denom)
        return np.abs(diff) / denom * y_pred.dtype.type(100)

    def _grad(self, c):
        diff, denom = self._cache
        return times(np.sign(diff) / denom, 100 * c)


@LOSSES.register("smooth_l1")
class SmoothL1(Loss):
    """Smooth L1 loss (Fast R-CNN), PyTorch's ``F.smooth_l1_loss(…, beta=β)``.

    With ``d = ŷ − y``: ``ℓ(d) = 0.5 d²/β`` if ``|d| < β`` else ``|d| − 0.5 β``;
    ``L = mean ℓ(d)``; ``dL/dŷ = clip(d/β, −1, 1) / M`` (``sign(d)/M`` when β = 0, where the
    loss is L1).

    Args:
        beta: the width β ≥ 0 of the quadratic zone.

    >>> SmoothL1()(np.array([0.5, 3.0]), np.array([0.0, 0.0]))
    1.3125
    """

    sample_mean = True

    def __init__(self, beta: float = 1.0, **kwargs: Any):
        super().__init__(**kwargs)
        if not beta >= 0:
            raise ValueError(f"beta must be >= 0; received beta={beta!r}")
        self.beta = float(beta)

    def _values(self, y_pred, y_true):
        d = y_pred - elementwise_targets(y_pred, y_true, "smooth_l1")
        self._cache = d
        a = np.abs(d)
        if self.beta == 0:
            return a
        beta = d.dtype.type(self.beta)
        return np.where(a < beta, 0.5 * d * d / beta, a - 0.5 * beta)

    def _grad(self, c):
        d = self._cache
        if self.beta == 0:
            g = np.sign(d)
        else:
            g = np.clip(d / d.dtype.type(self.beta), -1, 1)
        return times(g, c)

    def get_config(self):
        return {"beta": self.beta, **super().get_config()}


@LOSSES.register("huber")
class Huber(Loss):
    """Huber loss, PyTorch's ``F.huber_loss(…, delta=δ)`` (= δ × smooth L1 with β = δ).

    With ``d = ŷ − y``: ``ℓ(d) = 0.5 d²`` if ``|d| < δ`` else ``δ (|d| − 0.5 δ)``;
    ``L = mean ℓ(d)``; ``dL/dŷ = clip(d, −δ, δ) / M``.

    Args:
        delta: the threshold δ > 0.

    >>> Huber()(np.array([0.5, 3.0]), np.array([0.0, 0.0]))
    1.3125
    """

    sample_mean = True

    def __init__(self, delta: float = 1.0, **kwargs: Any):
        super().__init__(**kwargs)
        if not delta > 0:
            raise ValueError(f"delta must be positive; received delta={delta!r}")
        self.delta = float(delta)

    def _values(self, y_pred, y_true):
        d = y_pred - elementwise_targets(y_pred, y_true, "huber")
        self._cache = d
        a = np.abs(d)
        delta = d.dtype.type(self.delta)
        return np.where(a < delta, 0.5 * d * d, delta * (a - 0.5 * delta))

    def _grad(self, c):
        d = self._cache
        delta = d.dtype.type(self.delta)
        return times(np.clip(d, -delta, delta), c)

    def get_config(self):
        return {"delta": self.delta, **super().get_config()}
