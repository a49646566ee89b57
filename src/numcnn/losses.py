"""Loss functions: ``forward(y_pred, y_true) -> float`` and ``backward() -> dL/dy_pred``.

Every loss is the mean over the batch (and over output elements for the element-wise ones),
and ``backward`` returns the gradient with respect to *its own first input* ``y_pred``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._registry import Registry
from .functional import log_softmax

LOSSES = Registry("loss")


class Loss:
    """Base class. Subclasses implement ``_forward`` and ``_backward``."""

    def __init__(self) -> None:
        self._cache: Any = None

    def forward(self, y_pred: np.ndarray, y_true: np.ndarray) -> float:
        if not isinstance(y_pred, np.ndarray) or y_pred.dtype.kind != "f":
            raise TypeError(
                f"{type(self).__name__}: y_pred must be a float array; received "
                f"{getattr(y_pred, 'dtype', type(y_pred))}"
            )
        return float(self._forward(y_pred, np.asarray(y_true)))

    __call__ = forward

    def backward(self) -> np.ndarray:
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward() called before forward()")
        return self._backward()

    def _forward(self, y_pred: np.ndarray, y_true: np.ndarray) -> float:  # pragma: no cover
        raise NotImplementedError

    def _backward(self) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {}


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


@LOSSES.register("softmax_cross_entropy", "sparse_categorical_crossentropy")
class SoftmaxCrossEntropy(Loss):
    """Fused softmax + cross-entropy on **logits** ``z`` (not probabilities).

    ``L = −(1/N) Σ_n log softmax(z_n)[t_n]`` and ``dL/dz = (softmax(z) − onehot(t)) / N``.
    Targets are integer labels (N,) or one-hot rows (N, K). With soft targets (rows that sum
    to 1 but are not one-hot) the loss is ``−(1/N) Σ_n Σ_k y_nk log softmax(z_n)_k``.
    Equals PyTorch's ``F.cross_entropy(z, t)``.
    """

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


def get(identifier: Any, **kwargs: Any) -> Loss:
    """A loss from a registered name, a class, or an instance."""
    return LOSSES.get(identifier, **kwargs)
