"""Classification losses: on class scores (N, K) one value per sample (``N`` below), on
binary outputs and ±1 margins one value per element (``M``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..functional import log_softmax
from .base import (
    EPSILON,
    LOSSES,
    Loss,
    check_range,
    check_same_shape,
    class_targets,
    elementwise_targets,
    sign_targets,
    times,
)


def _target_rows(z: np.ndarray, y_true: np.ndarray, who: str, soft_range: bool = False
                 ) -> np.ndarray:
    """Targets (N, K) in ``z``'s dtype: soft/one-hot float rows as given, labels one-hot."""
    n, k = z.shape
    if y_true.ndim == 2 and y_true.dtype.kind == "f":
        check_same_shape(z, y_true, who)
        if soft_range:
            check_range(y_true, 0, 1, "target rows", who)
        return y_true.astype(z.dtype, copy=False)
    t = class_targets(y_true, n, k, who)
    target = np.zeros_like(z)
    target[np.arange(n), t] = 1
    return target


@LOSSES.register("softmax_cross_entropy")
class SoftmaxCrossEntropy(Loss):
    """Fused softmax + cross-entropy on **logits** ``z`` (not probabilities).

    ``ℓ_n = −log softmax(z_n)[t_n]``, ``L = (1/N) Σ_n ℓ_n`` and
    ``dL/dz = (softmax(z) − onehot(t)) / N``. Targets are integer labels (N,) or one-hot
    rows (N, K). With soft targets (rows that sum to 1 but are not one-hot) the loss is
    ``ℓ_n = −Σ_k y_nk log softmax(z_n)_k``. Equals PyTorch's ``F.cross_entropy(z, t)``.
    """

    sample_mean = True
    class_scores = True
    value_axes = 1

    def _values(self, z, y_true):
        if z.ndim != 2:
            raise ValueError(f"softmax_cross_entropy: expected logits (N, K); received {z.shape}")
        logp = log_softmax(z, axis=1)
        target = _target_rows(z, y_true, "softmax_cross_entropy")
        self._cache = (logp, target)
        return -(target * logp).sum(axis=1)

    def _grad(self, c):
        logp, target = self._cache
        return times(np.exp(logp) * target.sum(axis=1, keepdims=True) - target, c)


@LOSSES.register("nll", "negative_log_likelihood")
class NLL(Loss):
    """Negative log-likelihood on **log-probabilities** ``ℓ`` (N, K) (e.g. a log-softmax).

    ``L = −(1/N) Σ_n ℓ[n, t_n]``; ``dL/dℓ[n, k] = −1[k = t_n] / N``. Targets are integer
    labels (N,) in [0, K) (or one-hot rows). Log-probabilities must be ≤ 0. Equals PyTorch's
    ``F.nll_loss``.

    >>> round(NLL()(np.log(np.array([[0.5, 0.5], [0.25, 0.75]])), np.array([0, 1])), 6)
    0.490415
    """

    sample_mean = True
    class_scores = True
    value_axes = 1

    def _values(self, logp, y_true):
        if logp.ndim != 2:
            raise ValueError(f"nll: expected log-probabilities (N, K); received {logp.shape}")
        n, k = logp.shape
        t = class_targets(y_true, n, k, "nll")
        check_range(logp, -np.inf, 0, "log-probabilities y_pred", "nll")
        self._cache = (logp.shape, logp.dtype, t)
        return -logp[np.arange(n), t]

    def _grad(self, c):
        shape, dtype, t = self._cache
        g = np.zeros(shape, dtype=dtype)
        g[np.arange(shape[0]), t] = -1.0
        return times(g, c)


@LOSSES.register("categorical_cross_entropy", "categorical_crossentropy",
                 "sparse_categorical_crossentropy")
class CategoricalCrossEntropy(Loss):
    """Cross-entropy on **probabilities** ``p`` (N, K) (e.g. after a softmax layer).

    ``L = −(1/N) Σ_n Σ_k y_nk log max(p_nk, ε)`` with ``ε = 1e-7`` (Keras's clip, but only
    from below, and without Keras's re-normalisation of each row); ``dL/dp_nk =
    −y_nk / (N p_nk)`` where ``p_nk ≥ ε``, 0 where the clip is active. Targets are integer
    labels (N,), one-hot rows, or soft rows (N, K). For logits use ``softmax_cross_entropy``.
    Keras's ``sparse_categorical_crossentropy`` (probabilities, integer labels) is an alias.
    Equals ``F.nll_loss(torch.log(p.clamp_min(1e-7)), t)`` for labels.

    >>> round(CategoricalCrossEntropy()(np.array([[0.2, 0.8]]), np.array([1])), 6)
    0.223144
    """

    sample_mean = True
    class_scores = True
    value_axes = 1

    def _values(self, p, y_true):
        who = "categorical_cross_entropy"
        if p.ndim != 2:
            raise ValueError(f"{who}: expected probabilities (N, K); received {p.shape}")
        check_range(p, 0, 1, "probabilities y_pred", who)
        target = _target_rows(p, y_true, who, soft_range=True)
        eps = p.dtype.type(EPSILON)
        pc = np.maximum(p, eps)
        self._cache = (pc, target, p >= eps)
        return -(target * np.log(pc)).sum(axis=1)

    def _grad(self, c):
        pc, target, active = self._cache
        return times(target / pc * active, -c)


@LOSSES.register("binary_cross_entropy", "binary_crossentropy", "bce", "logistic")
class BinaryCrossEntropy(Loss):
    """Logistic loss on **probabilities** ``p ∈ [0, 1]`` (e.g. after a sigmoid).

    ``L = −mean( y · max(log p, −100) + (1 − y) · max(log(1 − p), −100) )`` and
    ``dL/dp = (p − y) / (max(p (1 − p), 1e-12) · M)`` — PyTorch's ``F.binary_cross_entropy``
    guards, exactly. Targets ``y ∈ [0, 1]`` (soft labels allowed); labels (N,) are accepted
    for outputs (N, 1). For logits prefer :class:`BinaryCrossEntropyWithLogits`.

    >>> round(BinaryCrossEntropy()(np.array([0.5]), np.array([1.0])), 6)
    0.693147
    """

    sample_mean = True

    def _values(self, p, y_true):
        y = elementwise_targets(p, y_true, "binary_cross_entropy")
        check_range(p, 0, 1, "probabilities y_pred", "binary_cross_entropy")
        check_range(y, 0, 1, "targets", "binary_cross_entropy")
        floor = p.dtype.type(-100)
        with np.errstate(divide="ignore"):
            log_p = np.maximum(np.log(p), floor)
            log_q = np.maximum(np.log1p(-p), floor)
        self._cache = (p, y)
        return -(y * log_p + (1 - y) * log_q)

    def _grad(self, c):
        p, y = self._cache
        denom = np.maximum(p * (1 - p), p.dtype.type(1e-12))
        return times((p - y) / denom, c)


@LOSSES.register("binary_cross_entropy_with_logits", "sigmoid_cross_entropy")
class BinaryCrossEntropyWithLogits(Loss):
    """Fused sigmoid + logistic loss on **logits** ``z``.

    ``L = mean( max(z, 0) − z·y + log(1 + e^{−|z|}) )`` (= ``−y log σ(z) − (1−y) log(1−σ(z))``
    without overflow) and ``dL/dz = (σ(z) − y) / M``. Targets ``y ∈ [0, 1]``. Equals
    PyTorch's ``F.binary_cross_entropy_with_logits``.

    >>> round(BinaryCrossEntropyWithLogits()(np.array([0.0]), np.array([1.0])), 6)
    0.693147
    """

    sample_mean = True

    def _values(self, z, y_true):
        y = elementwise_targets(z, y_true, "binary_cross_entropy_with_logits")
        check_range(y, 0, 1, "targets", "binary_cross_entropy_with_logits")
        self._cache = (z, y)
        return np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))

    def _grad(self, c):
        z, y = self._cache
        e = np.exp(-np.abs(z))  # in (0, 1]: σ(z) without overflow
        sig = np.where(z >= 0, 1 / (1 + e), e / (1 + e))
        return times(sig - y, c)


@LOSSES.register("hinge")
class Hinge(Loss):
    """Hinge loss for labels ±1 (SVM): ``L = mean( max(0, 1 − y·ŷ) )``.

    ``dL/dŷ = −y · 1[y·ŷ < 1] / M`` (sub-gradient 0 at the kink ``y·ŷ = 1``). Labels must be
    exactly −1 or +1; labels (N,) are accepted for outputs (N, 1).

    >>> Hinge()(np.array([0.5, -2.0]), np.array([1, -1]))
    0.25
    """

    sample_mean = True

    def _values(self, y_pred, y_true):
        y = sign_targets(y_pred, y_true, "hinge")
        margin = 1 - y * y_pred
        self._cache = (y, margin > 0)
        return np.maximum(margin, 0)

    def _grad(self, c):
        y, active = self._cache
        return times(y * active, -c)


@LOSSES.register("multiclass_hinge", "multi_margin")
class MulticlassHinge(Loss):
    """Multi-class hinge loss in the Weston–Watkins form of PyTorch's ``MultiMarginLoss``.

    For scores ``x`` (N, K) and labels ``t``::

        h_ni = max(0, margin − x[n, t_n] + x[n, i])          (i ≠ t_n)
        L    = (1/N) Σ_n (1/K) Σ_{i ≠ t_n} h_ni^p
        dL/dx[n, i]   =  p·h_ni^{p−1}·1[h_ni > 0] / (N K)      (i ≠ t_n)
        dL/dx[n, t_n] = −Σ_{i ≠ t_n} dL/dx[n, i]

    Note the division by K (every class, as PyTorch), not K − 1; ``reduction="none"`` gives
    the per-sample ``(1/K) Σ_i h_ni^p``. Crammer–Singer's variant (the max instead of the
    sum over i) is not implemented.

    Args:
        margin: the margin (> 0). p: 1 (hinge) or 2 (squared hinge).

    >>> round(MulticlassHinge()(np.array([[0.1, 0.2, 0.4, 0.8]]), np.array([3])), 6)
    0.325
    """

    sample_mean = True
    class_scores = True
    value_axes = 1

    def __init__(self, margin: float = 1.0, p: int = 1, **kwargs: Any):
        super().__init__(**kwargs)
        if p not in (1, 2):
            raise ValueError(f"p must be 1 or 2; received p={p!r}")
        if not margin > 0:
            raise ValueError(f"margin must be positive; received margin={margin!r}")
        self.margin = float(margin)
        self.p = int(p)

    def _values(self, x, y_true):
        if x.ndim != 2:
            raise ValueError(f"multiclass_hinge: expected scores (N, K); received {x.shape}")
        n, k = x.shape
        t = class_targets(y_true, n, k, "multiclass_hinge")
        rows = np.arange(n)
        h = x - x[rows, t][:, None] + x.dtype.type(self.margin)
        np.maximum(h, 0, out=h)
        h[rows, t] = 0
        self._cache = (h, t)
        return (h if self.p == 1 else h * h).sum(axis=1) / x.dtype.type(k)

    def _grad(self, c):
        h, t = self._cache
        n, k = h.shape
        g = (h > 0).astype(h.dtype) if self.p == 1 else 2 * h
        g[np.arange(n), t] = -g.sum(axis=1)
        return times(g, c / k)

    def get_config(self):
        return {"margin": self.margin, "p": self.p, **super().get_config()}


@LOSSES.register("exponential")
class Exponential(Loss):
    """Exponential loss of AdaBoost for labels ±1: ``L = mean( e^{−y·ŷ} )``.

    ``dL/dŷ = −y · e^{−y·ŷ} / M``. No guard: ``y·ŷ`` below about −88 (float32) overflows to
    infinity, which ``fit`` reports as a diverged loss.

    >>> Exponential()(np.array([0.0, 0.0]), np.array([1, -1]))
    1.0
    """

    sample_mean = True

    def _values(self, y_pred, y_true):
        y = sign_targets(y_pred, y_true, "exponential")
        e = np.exp(-y * y_pred)
        self._cache = (y, e)
        return e

    def _grad(self, c):
        y, e = self._cache
        return times(y * e, -c)
