"""Element-wise activations and softmax: forward returns ``(y, cache)``, backward ``dx``.

Each backward multiplies the incoming sensitivity by the derivative written in terms of what
the forward pass kept (the output for sigmoid/tanh, the input sign for ReLU). This is the
reference path; :mod:`numcnn.functional.fast.activation` computes ReLU and tanh in the
input's memory layout into recycled memory.
"""

from __future__ import annotations

import numpy as np


def relu_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``y = max(x, 0)``; the cache is ``y`` itself (``1[x > 0] = 1[y > 0]``)."""
    y = np.maximum(x, 0)
    return y, y


def relu_backward(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``dx = dy · 1[x > 0] = dy · 1[y > 0]`` (the derivative at 0 is 0, as in PyTorch)."""
    return dy * (y > 0)


def leaky_relu_forward(x: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """``y = x if x > 0 else α·x``; the cache is the per-element slope."""
    slope = np.where(x > 0, x.dtype.type(1), x.dtype.type(alpha))
    return x * slope, slope


def leaky_relu_backward(dy: np.ndarray, slope: np.ndarray) -> np.ndarray:
    """``dx = dy · (1 if x > 0 else α)``."""
    return dy * slope


def sigmoid_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``y = 1 / (1 + e^{−x})``, evaluated as ``e^{x} / (1 + e^{x})`` for x < 0 (no overflow)."""
    e = np.exp(-np.abs(x))  # in (0, 1]: never overflows
    y = np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
    return y, y


def sigmoid_backward(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``dx = dy · y (1 − y)``."""
    return dy * y * (1 - y)


def tanh_forward(x: np.ndarray, A: float = 1.0, S: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """``y = A · tanh(S·x)``; with A = 1.7159, S = 2/3 this is LeCun's scaled tanh.
    The cache is ``t = tanh(S·x)``."""
    t = np.tanh(x * x.dtype.type(S))
    return t * x.dtype.type(A), t


def tanh_backward(dy: np.ndarray, t: np.ndarray, A: float = 1.0, S: float = 1.0) -> np.ndarray:
    """``dx = dy · A·S·(1 − tanh²(S·x)) = dy · A·S·(1 − t²)``."""
    return dy * ((1 - t * t) * t.dtype.type(A * S))


def softmax_forward(x: np.ndarray, axis: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``y_i = e^{x_i − max x} / Σ_j e^{x_j − max x}`` along ``axis`` (shift for stability)."""
    z = x - x.max(axis=axis, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=axis, keepdims=True)
    return z, z


def softmax_backward(dy: np.ndarray, y: np.ndarray, axis: int = 1) -> np.ndarray:
    """Jacobian-vector product ``dx = y ⊙ (dy − Σ_j dy_j y_j)``."""
    return y * (dy - (dy * y).sum(axis=axis, keepdims=True))


def log_softmax(x: np.ndarray, axis: int = 1) -> np.ndarray:
    """``log softmax(x)`` computed as ``x − max − log Σ e^{x − max}``."""
    z = x - x.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))
