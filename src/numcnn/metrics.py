"""Metrics computed from predictions and targets (no gradients)."""

from __future__ import annotations

import numpy as np

from ._registry import Registry

METRICS = Registry("metric")


def _labels(y_pred: np.ndarray, y_true, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The scores (N, K) and the integer labels (N,) of a classification metric, or a
    ``ValueError`` naming the shapes that were received. Per-step scores (N, T, K) with
    labels (N, T) or one-hot (N, T, K) are read as N·T rows (classes on the last axis)."""
    y_pred, y_true = np.asarray(y_pred), np.asarray(y_true)
    if y_pred.ndim > 2 and y_true.shape in (y_pred.shape, y_pred.shape[:-1]):
        k = y_pred.shape[-1]
        y_true = y_true.reshape(-1, k) if y_true.shape == y_pred.shape else y_true.reshape(-1)
        y_pred = y_pred.reshape(-1, k)
    if y_pred.ndim != 2:
        raise ValueError(f"{name}: expected scores (N, K), or (N, T, K) with labels (N, T); "
                         f"received scores {y_pred.shape} and labels {y_true.shape}")
    one_hot = y_true.ndim == 2 and y_true.shape == y_pred.shape
    labels = y_true.argmax(axis=1) if one_hot else y_true
    if labels.shape != y_pred.shape[:1]:
        raise ValueError(f"{name}: expected labels ({y_pred.shape[0]},) or one-hot rows "
                         f"{y_pred.shape} for scores {y_pred.shape}; received {y_true.shape}")
    return y_pred, labels


@METRICS.register("accuracy", "acc")
def accuracy(y_pred: np.ndarray, y_true: np.ndarray) -> float:
    """Fraction of rows whose arg-max equals the label (integer labels or one-hot rows).

    For an RBF/distance output where *smaller* is better, pass ``-y_pred``.

    >>> accuracy(np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([1, 1]))
    0.5
    """
    y_pred, labels = _labels(y_pred, y_true, "accuracy")
    return float(np.mean(y_pred.argmax(axis=1) == labels))


@METRICS.register("argmin_accuracy", "rbf_accuracy")
def argmin_accuracy(y_pred: np.ndarray, y_true: np.ndarray) -> float:
    """Fraction of rows whose arg-*min* equals the label: for distance outputs such as
    LeNet-5's RBF penalties, where the smallest penalty is the prediction.

    >>> argmin_accuracy(np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([0, 0]))
    0.5
    """
    y_pred, labels = _labels(y_pred, y_true, "argmin_accuracy")
    return float(np.mean(y_pred.argmin(axis=1) == labels))


def get(identifier):
    """A metric function from a registered name or a callable."""
    if callable(identifier):
        return identifier
    return METRICS.lookup(identifier)
