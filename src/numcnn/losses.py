"""Loss functions: ``forward(y_pred, y_true) -> float`` and ``backward() -> dL/dy_pred``.

Every loss is the mean over the batch (and over output elements for the element-wise ones),
and ``backward`` returns the gradient with respect to *its own first input* ``y_pred``, in
``y_pred``'s dtype. Below, ``M`` is the number of elements averaged over (``y_pred.size``
for the element-wise losses) and ``N`` the batch size for the per-sample ones.

Guards against ``log 0`` and division by 0 (each docstring states its own):

- ``binary_cross_entropy`` follows PyTorch: each ``log`` is clamped at −100 and the
  gradient's denominator ``p(1 − p)`` at 1e-12;
- ``categorical_cross_entropy``, ``msle`` and ``mape`` follow Keras: the argument of ``log``
  or the divisor is clipped from below at ``EPSILON = 1e-7``;
- ``binary_cross_entropy_with_logits`` and ``softmax_cross_entropy`` take logits and use the
  log-sum-exp form, which needs no guard.

Bad inputs raise ``ValueError``/``TypeError``: shape mismatch, probabilities outside [0, 1],
log-probabilities above 0, class labels out of range or not integers, labels other than ±1
for the margin losses.

**Sequences.** The classification losses (``softmax_cross_entropy``, ``nll``,
``categorical_cross_entropy``, ``multiclass_hinge``, and ``mse`` with class labels) also take
per-step scores ``(N, T, K)`` — classes on the last axis, as Keras — with labels ``(N, T)``
or one-hot ``(N, T, K)``: the loss is the mean over all ``N·T`` steps, PyTorch's
``F.cross_entropy(z.permute(0, 2, 1), t)``. The element-wise losses take any shape already.

**Masks.** ``forward(y_pred, y_true, mask=m)`` with a boolean ``m`` of shape
``y_pred.shape[:m.ndim]`` (usually ``(N, T)``, True for a real step) averages over the real
steps only: the loss is the loss of the real steps taken as one batch, ``Σ_real ℓ / #real``
(PyTorch's ``ignore_index`` mean, Keras's masked mean), and the gradient is zero on the
padding. With no real step the loss is 0 and so is the gradient. ``fit`` and ``evaluate``
pass the mask of an output that carries one (see :mod:`numcnn.layers.masking`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._registry import Registry
from .functional import log_softmax

LOSSES = Registry("loss")


class Loss:
    """Base class. Subclasses implement ``_forward`` and ``_backward``.

    ``batch_mean`` (class attribute): True when the loss of a batch is the mean over its
    samples of a per-sample quantity, so the gradient of a batch is the size-weighted mean
    of its parts' gradients — what data-parallel ``fit(processes=...)`` relies on. Every
    built-in loss is such a mean; a custom loss is assumed not to be until it says so.
    """

    batch_mean = False
    #: True for the losses on class scores ``(N, K)``: scores ``(N, T, K)`` are then read as
    #: ``N·T`` rows (see the module docstring)
    class_scores = False

    def __init__(self) -> None:
        self._cache: Any = None
        self._layout: Any = None  # how forward reshaped or masked y_pred (undone by backward)

    def forward(self, y_pred: np.ndarray, y_true: np.ndarray, mask: Any = None) -> float:
        who = type(self).__name__
        if not isinstance(y_pred, np.ndarray) or y_pred.dtype.kind != "f":
            raise TypeError(f"{who}: y_pred must be a float array; received "
                            f"{getattr(y_pred, 'dtype', type(y_pred))}")
        y_true = np.asarray(y_true)
        self._layout = None
        if mask is not None:
            mask = _check_mask(mask, y_pred, y_true, who)
            self._layout = ("mask", y_pred.shape, mask, y_pred.dtype)
            if not mask.any():  # nothing to average: loss 0, gradient 0
                self._cache = ()
                return 0.0
            y_pred, y_true = y_pred[mask], y_true[mask]
        if self.class_scores and y_pred.ndim > 2:
            shape, k = y_pred.shape, y_pred.shape[-1]
            lead = shape[:-1]
            if y_true.shape not in (lead, shape):
                raise ValueError(f"{who}: expected labels {lead} or one-hot targets {shape} "
                                 f"for scores {shape}; received {y_true.shape}")
            y_pred = y_pred.reshape(-1, k)
            y_true = y_true.reshape(-1, k) if y_true.shape == shape else y_true.reshape(-1)
            if self._layout is None:
                self._layout = ("rows", shape)
        return float(self._forward(y_pred, y_true))

    __call__ = forward

    def backward(self) -> np.ndarray:
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward() called before forward()")
        layout = getattr(self, "_layout", None)
        if layout is None:
            return self._backward()
        if layout[0] == "rows":
            return self._backward().reshape(layout[1])
        _, shape, mask, dtype = layout
        if isinstance(self._cache, tuple) and self._cache == ():
            return np.zeros(shape, dtype=dtype)
        g = self._backward()
        full = np.zeros(shape, dtype=g.dtype)
        full[mask] = g.reshape((-1,) + shape[mask.ndim:])
        return full

    def _forward(self, y_pred: np.ndarray, y_true: np.ndarray) -> float:  # pragma: no cover
        raise NotImplementedError

    def _backward(self) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _check_mask(mask: Any, y_pred: np.ndarray, y_true: np.ndarray, who: str) -> np.ndarray:
    """A loss's mask as a boolean array of shape ``y_pred.shape[:m.ndim]`` (which ``y_true``
    must share), or a ``ValueError``/``TypeError`` naming what was received."""
    m = np.asarray(mask)
    if m.dtype.kind not in "biuf":
        raise TypeError(f"{who}: the mask must be a boolean or 0/1 array; received dtype "
                        f"{m.dtype}")
    if m.ndim == 0 or m.ndim > y_pred.ndim or m.shape != y_pred.shape[:m.ndim]:
        raise ValueError(f"{who}: the mask must have the leading shape of y_pred "
                         f"{y_pred.shape}, e.g. {y_pred.shape[:2]}; received {m.shape}")
    if y_true.shape[:m.ndim] != m.shape:
        raise ValueError(f"{who}: targets {y_true.shape} do not match the mask {m.shape}: "
                         f"each masked step needs its target")
    if m.dtype.kind != "b":
        if not np.isin(m, (0, 1)).all():
            raise ValueError(f"{who}: a numeric mask must hold only 0 and 1")
        m = m != 0
    return m


def class_targets(y_true: np.ndarray, n: int, k: int, who: str) -> np.ndarray:
    """Integer labels (N,) from integer labels or one-hot/probability rows (N, K).

    Raises a clear error for a wrong shape or labels outside ``[0, K)``.
    """
    if y_true.ndim == 2:
        if y_true.shape != (n, k):
            raise ValueError(f"{who}: expected one-hot targets of shape {(n, k)}; received "
                             f"{y_true.shape}")
        return y_true.argmax(axis=1)
    if y_true.shape != (n,):
        raise ValueError(f"{who}: expected integer labels of shape ({n},); received {y_true.shape}")
    if y_true.dtype.kind not in "iu":
        if y_true.dtype.kind == "f" and np.all(y_true == np.round(y_true)):
            y_true = y_true.astype(np.int64)
        else:
            raise TypeError(f"{who}: labels must be integers; received dtype {y_true.dtype}")
    if n and (y_true.min() < 0 or y_true.max() >= k):
        raise ValueError(
            f"{who}: labels must be in [0, {k}); received values in "
            f"[{y_true.min()}, {y_true.max()}]"
        )
    return y_true


def check_same_shape(y_pred: np.ndarray, y_true: np.ndarray, who: str) -> None:
    if y_pred.shape != y_true.shape:
        raise ValueError(
            f"{who}: y_pred and y_true must have the same shape; received {y_pred.shape} "
            f"and {y_true.shape}"
        )


@LOSSES.register("softmax_cross_entropy")
class SoftmaxCrossEntropy(Loss):
    """Fused softmax + cross-entropy on **logits** ``z`` (not probabilities).

    ``L = −(1/N) Σ_n log softmax(z_n)[t_n]`` and ``dL/dz = (softmax(z) − onehot(t)) / N``.
    Targets are integer labels (N,) or one-hot rows (N, K). With soft targets (rows that sum
    to 1 but are not one-hot) the loss is ``−(1/N) Σ_n Σ_k y_nk log softmax(z_n)_k``.
    Equals PyTorch's ``F.cross_entropy(z, t)``.
    """

    batch_mean = True
    class_scores = True

    def _forward(self, z, y_true):
        if z.ndim != 2:
            raise ValueError(f"softmax_cross_entropy: expected logits (N, K); received {z.shape}")
        n, k = z.shape
        logp = log_softmax(z, axis=1)
        if y_true.ndim == 2 and y_true.dtype.kind == "f":
            check_same_shape(z, y_true, "softmax_cross_entropy")
            target = y_true.astype(z.dtype, copy=False)
        else:
            t = class_targets(y_true, n, k, "softmax_cross_entropy")
            target = np.zeros_like(z)
            target[np.arange(n), t] = 1
        self._cache = (logp, target)
        return -(target * logp).sum() / n

    def _backward(self):
        logp, target = self._cache
        n = logp.shape[0]
        return ((np.exp(logp) * target.sum(axis=1, keepdims=True) - target) / n).astype(
            logp.dtype, copy=False
        )


@LOSSES.register("mse", "mean_squared_error")
class MSE(Loss):
    """Mean squared error ``L = mean((ŷ − y)²)`` over all elements; ``dL/dŷ = 2(ŷ − y)/M``.

    Integer class labels (N,) are one-hot encoded when ``y_pred`` is (N, K), so a classifier
    can be trained with MSE as in the course.
    """

    batch_mean = True
    class_scores = True

    def _forward(self, y_pred, y_true):
        if y_true.shape != y_pred.shape and y_pred.ndim == 2 and y_true.ndim == 1:
            t = class_targets(y_true, *y_pred.shape, "mse")
            y_true = np.zeros_like(y_pred)
            y_true[np.arange(len(t)), t] = 1
        check_same_shape(y_pred, y_true, "mse")
        diff = y_pred - y_true.astype(y_pred.dtype, copy=False)
        self._cache = diff
        return np.mean(diff * diff)

    def _backward(self):
        diff = self._cache
        return diff * diff.dtype.type(2.0 / diff.size)



#: Lower clip used by the Keras-convention guards (``keras.backend.epsilon()``).
EPSILON = 1e-7


def check_range(a: np.ndarray, lo: float, hi: float, what: str, who: str) -> None:
    """Raise unless every value of ``a`` lies in ``[lo, hi]`` (NaN fails too)."""
    if a.size:
        mn, mx = a.min(), a.max()
        if not (lo <= mn and mx <= hi):
            raise ValueError(f"{who}: {what} must be in [{lo}, {hi}]; received values in "
                             f"[{mn}, {mx}]")


def elementwise_targets(y_pred: np.ndarray, y_true: np.ndarray, who: str) -> np.ndarray:
    """Targets of ``y_pred``'s shape and dtype; labels (N,) are accepted for outputs (N, 1)."""
    if y_pred.ndim == 2 and y_pred.shape[1] == 1 and y_true.shape == (y_pred.shape[0],):
        y_true = y_true.reshape(-1, 1)
    check_same_shape(y_pred, y_true, who)
    if y_true.dtype.kind not in "fiub":
        raise TypeError(f"{who}: targets must be numeric; received dtype {y_true.dtype}")
    return y_true.astype(y_pred.dtype, copy=False)


def sign_targets(y_pred: np.ndarray, y_true: np.ndarray, who: str) -> np.ndarray:
    """Targets that must be exactly −1 or +1 (margin losses)."""
    y = elementwise_targets(y_pred, y_true, who)
    if y.size and not np.all((y == 1) | (y == -1)):
        bad = np.unique(y[(y != 1) & (y != -1)])[:5]
        raise ValueError(f"{who}: labels must be -1 or +1; received values such as {bad}")
    return y


def _scale(a: np.ndarray, c: float) -> np.ndarray:
    """``a · c`` with ``c`` cast to ``a``'s dtype (a float64 scalar would promote float32)."""
    return a * a.dtype.type(c)


@LOSSES.register("mae", "mean_absolute_error", "l1")
class MAE(Loss):
    """Mean absolute error ``L = mean|ŷ − y|``; ``dL/dŷ = sign(ŷ − y) / M``.

    The sub-gradient at ``ŷ = y`` is 0, as in PyTorch's ``F.l1_loss``.

    >>> MAE()(np.array([1.0, 2.0]), np.array([0.0, 4.0]))
    1.5
    """

    batch_mean = True

    def _forward(self, y_pred, y_true):
        diff = y_pred - elementwise_targets(y_pred, y_true, "mae")
        self._cache = diff
        return np.mean(np.abs(diff))

    def _backward(self):
        diff = self._cache
        return _scale(np.sign(diff), 1.0 / diff.size)


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

    batch_mean = True

    def _forward(self, y_pred, y_true):
        y = elementwise_targets(y_pred, y_true, "msle")
        check_range(y, 0, np.inf, "targets", "msle")
        eps = y_pred.dtype.type(EPSILON)
        yp = np.maximum(y_pred, eps)
        diff = np.log1p(yp) - np.log1p(np.maximum(y, eps))
        self._cache = (diff, yp, y_pred >= eps)
        return np.mean(diff * diff)

    def _backward(self):
        diff, yp, active = self._cache
        return _scale(diff / (1 + yp) * active, 2.0 / diff.size)


@LOSSES.register("mape", "mean_absolute_percentage_error")
class MAPE(Loss):
    """Mean absolute percentage error, in percent (Keras's form).

    ``L = 100 · mean( |ŷ − y| / max(|y|, ε) )`` with ``ε = 1e-7``;
    ``dL/dŷ = 100 · sign(ŷ − y) / (max(|y|, ε) M)``.

    >>> MAPE()(np.array([110.0, 45.0]), np.array([100.0, 50.0]))
    10.0
    """

    batch_mean = True

    def _forward(self, y_pred, y_true):
        y = elementwise_targets(y_pred, y_true, "mape")
        diff = y_pred - y
        denom = np.maximum(np.abs(y), y_pred.dtype.type(EPSILON))
        self._cache = (diff, denom)
        return 100.0 * np.mean(np.abs(diff) / denom)

    def _backward(self):
        diff, denom = self._cache
        return _scale(np.sign(diff) / denom, 100.0 / diff.size)


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

    batch_mean = True

    def _forward(self, p, y_true):
        y = elementwise_targets(p, y_true, "binary_cross_entropy")
        check_range(p, 0, 1, "probabilities y_pred", "binary_cross_entropy")
        check_range(y, 0, 1, "targets", "binary_cross_entropy")
        floor = p.dtype.type(-100)
        with np.errstate(divide="ignore"):
            log_p = np.maximum(np.log(p), floor)
            log_q = np.maximum(np.log1p(-p), floor)
        self._cache = (p, y)
        return -np.mean(y * log_p + (1 - y) * log_q)

    def _backward(self):
        p, y = self._cache
        denom = np.maximum(p * (1 - p), p.dtype.type(1e-12))
        return _scale((p - y) / denom, 1.0 / p.size)


@LOSSES.register("binary_cross_entropy_with_logits", "sigmoid_cross_entropy")
class BinaryCrossEntropyWithLogits(Loss):
    """Fused sigmoid + logistic loss on **logits** ``z``.

    ``L = mean( max(z, 0) − z·y + log(1 + e^{−|z|}) )`` (= ``−y log σ(z) − (1−y) log(1−σ(z))``
    without overflow) and ``dL/dz = (σ(z) − y) / M``. Targets ``y ∈ [0, 1]``. Equals
    PyTorch's ``F.binary_cross_entropy_with_logits``.

    >>> round(BinaryCrossEntropyWithLogits()(np.array([0.0]), np.array([1.0])), 6)
    0.693147
    """

    batch_mean = True

    def _forward(self, z, y_true):
        y = elementwise_targets(z, y_true, "binary_cross_entropy_with_logits")
        check_range(y, 0, 1, "targets", "binary_cross_entropy_with_logits")
        self._cache = (z, y)
        return np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))

    def _backward(self):
        z, y = self._cache
        e = np.exp(-np.abs(z))  # in (0, 1]: σ(z) without overflow
        sig = np.where(z >= 0, 1 / (1 + e), e / (1 + e))
        return _scale(sig - y, 1.0 / z.size)


@LOSSES.register("nll", "negative_log_likelihood")
class NLL(Loss):
    """Negative log-likelihood on **log-probabilities** ``ℓ`` (N, K) (e.g. a log-softmax).

    ``L = −(1/N) Σ_n ℓ[n, t_n]``; ``dL/dℓ[n, k] = −1[k = t_n] / N``. Targets are integer
    labels (N,) in [0, K) (or one-hot rows). Log-probabilities must be ≤ 0. Equals PyTorch's
    ``F.nll_loss``.

    >>> round(NLL()(np.log(np.array([[0.5, 0.5], [0.25, 0.75]])), np.array([0, 1])), 6)
    0.490415
    """

    batch_mean = True
    class_scores = True

    def _forward(self, logp, y_true):
        if logp.ndim != 2:
            raise ValueError(f"nll: expected log-probabilities (N, K); received {logp.shape}")
        n, k = logp.shape
        t = class_targets(y_true, n, k, "nll")
        check_range(logp, -np.inf, 0, "log-probabilities y_pred", "nll")
        self._cache = (logp.shape, logp.dtype, t)
        return -logp[np.arange(n), t].sum() / n

    def _backward(self):
        shape, dtype, t = self._cache
        g = np.zeros(shape, dtype=dtype)
        g[np.arange(shape[0]), t] = -1.0 / shape[0]
        return g


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

    batch_mean = True
    class_scores = True

    def _forward(self, p, y_true):
        who = "categorical_cross_entropy"
        if p.ndim != 2:
            raise ValueError(f"{who}: expected probabilities (N, K); received {p.shape}")
        n, k = p.shape
        check_range(p, 0, 1, "probabilities y_pred", who)
        if y_true.ndim == 2 and y_true.dtype.kind == "f":
            check_same_shape(p, y_true, who)
            check_range(y_true, 0, 1, "target rows", who)
            target = y_true.astype(p.dtype, copy=False)
        else:
            t = class_targets(y_true, n, k, who)
            target = np.zeros_like(p)
            target[np.arange(n), t] = 1
        eps = p.dtype.type(EPSILON)
        pc = np.maximum(p, eps)
        self._cache = (pc, target, p >= eps)
        return -(target * np.log(pc)).sum() / n

    def _backward(self):
        pc, target, active = self._cache
        return _scale(target / pc * active, -1.0 / pc.shape[0])


@LOSSES.register("hinge")
class Hinge(Loss):
    """Hinge loss for labels ±1 (SVM): ``L = mean( max(0, 1 − y·ŷ) )``.

    ``dL/dŷ = −y · 1[y·ŷ < 1] / M`` (sub-gradient 0 at the kink ``y·ŷ = 1``). Labels must be
    exactly −1 or +1; labels (N,) are accepted for outputs (N, 1).

    >>> Hinge()(np.array([0.5, -2.0]), np.array([1, -1]))
    0.25
    """

    batch_mean = True

    def _forward(self, y_pred, y_true):
        y = sign_targets(y_pred, y_true, "hinge")
        margin = 1 - y * y_pred
        self._cache = (y, margin > 0)
        return np.mean(np.maximum(margin, 0))

    def _backward(self):
        y, active = self._cache
        return _scale(y * active, -1.0 / y.size)


@LOSSES.register("multiclass_hinge", "multi_margin")
class MulticlassHinge(Loss):
    """Multi-class hinge loss in the Weston–Watkins form of PyTorch's ``MultiMarginLoss``.

    For scores ``x`` (N, K) and labels ``t``::

        h_ni = max(0, margin − x[n, t_n] + x[n, i])          (i ≠ t_n)
        L    = (1/N) Σ_n (1/K) Σ_{i ≠ t_n} h_ni^p
        dL/dx[n, i]   =  p·h_ni^{p−1}·1[h_ni > 0] / (N K)      (i ≠ t_n)
        dL/dx[n, t_n] = −Σ_{i ≠ t_n} dL/dx[n, i]

    Note the division by K (every class, as PyTorch), not K − 1. Crammer–Singer's variant
    (the max instead of the sum over i) is not implemented.

    Args:
        margin: the margin (> 0). p: 1 (hinge) or 2 (squared hinge).

    >>> round(MulticlassHinge()(np.array([[0.1, 0.2, 0.4, 0.8]]), np.array([3])), 6)
    0.325
    """

    batch_mean = True
    class_scores = True

    def __init__(self, margin: float = 1.0, p: int = 1):
        super().__init__()
        if p not in (1, 2):
            raise ValueError(f"p must be 1 or 2; received p={p!r}")
        if not margin > 0:
            raise ValueError(f"margin must be positive; received margin={margin!r}")
        self.margin = float(margin)
        self.p = int(p)

    def _forward(self, x, y_true):
        if x.ndim != 2:
            raise ValueError(f"multiclass_hinge: expected scores (N, K); received {x.shape}")
        n, k = x.shape
        t = class_targets(y_true, n, k, "multiclass_hinge")
        rows = np.arange(n)
        h = x - x[rows, t][:, None] + x.dtype.type(self.margin)
        np.maximum(h, 0, out=h)
        h[rows, t] = 0
        self._cache = (h, t)
        return (h if self.p == 1 else h * h).sum() / (n * k)

    def _backward(self):
        h, t = self._cache
        n, k = h.shape
        g = (h > 0).astype(h.dtype) if self.p == 1 else 2 * h
        g[np.arange(n), t] = -g.sum(axis=1)
        return _scale(g, 1.0 / (n * k))

    def get_config(self):
        return {"margin": self.margin, "p": self.p}


@LOSSES.register("exponential")
class Exponential(Loss):
    """Exponential loss of AdaBoost for labels ±1: ``L = mean( e^{−y·ŷ} )``.

    ``dL/dŷ = −y · e^{−y·ŷ} / M``. No guard: ``y·ŷ`` below about −88 (float32) overflows to
    infinity, which ``fit`` reports as a diverged loss.

    >>> Exponential()(np.array([0.0, 0.0]), np.array([1, -1]))
    1.0
    """

    batch_mean = True

    def _forward(self, y_pred, y_true):
        y = sign_targets(y_pred, y_true, "exponential")
        e = np.exp(-y * y_pred)
        self._cache = (y, e)
        return np.mean(e)

    def _backward(self):
        y, e = self._cache
        return _scale(y * e, -1.0 / e.size)


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

    batch_mean = True

    def __init__(self, beta: float = 1.0):
        super().__init__()
        if not beta >= 0:
            raise ValueError(f"beta must be >= 0; received beta={beta!r}")
        self.beta = float(beta)

    def _forward(self, y_pred, y_true):
        d = y_pred - elementwise_targets(y_pred, y_true, "smooth_l1")
        self._cache = d
        a = np.abs(d)
        if self.beta == 0:
            return np.mean(a)
        beta = d.dtype.type(self.beta)
        return np.mean(np.where(a < beta, 0.5 * d * d / beta, a - 0.5 * beta))

    def _backward(self):
        d = self._cache
        if self.beta == 0:
            g = np.sign(d)
        else:
            g = np.clip(d / d.dtype.type(self.beta), -1, 1)
        return _scale(g, 1.0 / d.size)

    def get_config(self):
        return {"beta": self.beta}


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

    batch_mean = True

    def __init__(self, delta: float = 1.0):
        super().__init__()
        if not delta > 0:
            raise ValueError(f"delta must be positive; received delta={delta!r}")
        self.delta = float(delta)

    def _forward(self, y_pred, y_true):
        d = y_pred - elementwise_targets(y_pred, y_true, "huber")
        self._cache = d
        a = np.abs(d)
        delta = d.dtype.type(self.delta)
        return np.mean(np.where(a < delta, 0.5 * d * d, delta * (a - 0.5 * delta)))

    def _backward(self):
        d = self._cache
        delta = d.dtype.type(self.delta)
        return _scale(np.clip(d, -delta, delta), 1.0 / d.size)

    def get_config(self):
        return {"delta": self.delta}


def get(identifier: Any, **kwargs: Any) -> Loss:
    """A loss from a registered name, a class, or an instance."""
    return LOSSES.get(identifier, **kwargs)


# ------------------------------------------------------------------ LeNet-5 (1998) MAP loss


@LOSSES.register("lenet_map")
class LeNetMAP(Loss):
    """LeNet-5's maximum a posteriori criterion on RBF penalties (LeCun et al. 1998, eq. 9).

    ``y_pred`` holds the penalties ``y_i ≥ 0`` of the Euclidean RBF output units (low for
    the recognised class; predict with ``argmin``). For the correct class ``D_p``::

        E = (1/N) Σ_p [ y_{D_p} + log(e^{−j} + Σ_i e^{−y_pi}) ]

        ∂E/∂y_pi = (δ_{i D_p} − e^{−y_pi} / Z_p) / N,   Z_p = e^{−j} + Σ_k e^{−y_pk}

    The first term pulls the correct class's penalty down (maximum likelihood); the second
    is the log of a partition function in which a "rubbish" class of constant penalty ``j``
    takes part: it pushes up the penalties of the wrong classes that come close, but not of
    classes whose penalties are already far above ``j``, and it stops pulling the correct
    class down once ``y_D`` is well below ``j``. It is computed as a stable log-sum-exp
    (shifted by ``min(j, min_i y_i)``).

    Args:
        j: the rubbish-class penalty ``j > 0``. The paper gives no value. The default
            ``j = 10`` is chosen from the scale of the penalties: an F6 output that matches
            a ±1 bitmap to within ±0.35 per unit gives ``y_D ≈ 84·0.35² ≈ 10``, while two
            bitmaps differ in at least 8 of 84 pixels (a penalty of ≥ 32 for the exact
            code of the wrong class). So the competitive term acts on patterns whose
            correct-class penalty is already small and on the wrong classes that come close
            to it, and training stops pushing a pattern that is already well recognised.

    ``backward_gn()`` returns the Gauss–Newton weights SDLM back-propagates into
    :class:`numcnn.layers.RBFOutput` (see there): ``onehot(D_p) / N``. That is the exact
    curvature of the maximum-likelihood term ``y_D = ‖x − w_D‖²`` (a sum of squared
    residuals); the competitive log-sum-exp term enters with negative weights ``−p_i`` on
    the squared residuals and is dropped, as Gauss–Newton drops terms that may make the
    estimate negative — the "MSE-like" output curvature of the paper's appendix C.

    >>> loss = LeNetMAP(j=10.0)
    >>> round(loss(np.array([[0.0, 50.0]]), np.array([0])), 6)  # ≈ log(1 + e^{−10})
    4.5e-05
    """

    batch_mean = True

    def __init__(self, j: float = 10.0):
        super().__init__()
        if not isinstance(j, (int, float)) or not j > 0 or not np.isfinite(j):
            raise ValueError(f"j must be a positive number; received j={j!r}")
        self.j = float(j)

    def _forward(self, y, y_true):
        if y.ndim != 2:
            raise ValueError(f"lenet_map: expected penalties (N, K); received {y.shape}")
        n, k = y.shape
        t = class_targets(y_true, n, k, "lenet_map")
        dt = y.dtype.type
        m = np.minimum(y.min(axis=1), dt(self.j))  # shift: every exponent ≤ 0
        e = np.exp(m[:, None] - y)  # (N, K)
        z = e.sum(axis=1) + np.exp(m - dt(self.j))
        self._cache = (e / z[:, None], t)  # p_i = e^{−y_i} / Z
        lse = np.log(z) - m  # log(e^{−j} + Σ e^{−y_i})
        return (y[np.arange(n), t] + lse).sum() / n

    def _backward(self):
        p, t = self._cache
        n = len(t)
        g = -p
        g[np.arange(n), t] += 1
        return g * g.dtype.type(1.0 / n)

    def backward_gn(self) -> np.ndarray:
        """Gauss–Newton weights of the squared-distance terms: ``onehot(D_p) / N``."""
        if self._cache is None:
            raise RuntimeError("LeNetMAP.backward_gn() called before forward()")
        p, t = self._cache
        n = len(t)
        w = np.zeros_like(p)
        w[np.arange(n), t] = 1.0 / n
        return w

    def get_config(self) -> dict[str, Any]:
        return {"j": self.j}
