"""Element-wise activations and softmax: forward returns ``(y, cache)``, backward ``dx``.

Each backward multiplies the incoming sensitivity by the derivative written in terms of what
the forward pass kept (the output for sigmoid/tanh, the input sign for ReLU).
"""

from __future__ import annotations

import weakref

import numpy as np

from .workspace import empty_ordered, memory_order

# Hand-off between a ReLU and the max pooling that reads its output (both one-slot, held by
# weak references so they never keep an array alive): the pooling layer recognises a ReLU
# output by identity, applies ReLU's derivative itself at pooled resolution (exact, see
# ``max_pool2d_backward(relu=True)``) and marks the gradient it returns, so the ReLU's
# backward can hand it on without another full-size pass.
_last_relu_output: weakref.ref | None = None
_masked_grad: tuple[weakref.ref, weakref.ref] | None = None


def relu_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``y = max(x, 0)`` in one pass, in ``x``'s memory layout; the cache is ``y`` itself."""
    global _last_relu_output
    y = np.maximum(x, 0, out=empty_ordered(x.shape, x.dtype, memory_order(x)))
    _last_relu_output = weakref.ref(y)
    return y, y


def is_relu_output(a: np.ndarray) -> bool:
    """True when ``a`` is the very array the latest :func:`relu_forward` call returned."""
    ref = _last_relu_output
    return ref is not None and ref() is a


def mark_relu_masked(dx: np.ndarray, y: np.ndarray) -> None:
    """Record that ``dx`` is already zero wherever the ReLU output ``y`` is 0, i.e.
    ``dx = dx · 1[y > 0]`` holds exactly (see :func:`take_relu_masked`)."""
    global _masked_grad
    _masked_grad = (weakref.ref(dx), weakref.ref(y))


def take_relu_masked(dy: np.ndarray, y: np.ndarray) -> bool:
    """True (once) when ``dy`` was marked by :func:`mark_relu_masked` for the output ``y``:
    ReLU's backward ``dy · 1[y > 0]`` would then return ``dy``'s values unchanged."""
    global _masked_grad
    mark, _masked_grad = _masked_grad, None
    return mark is not None and mark[0]() is dy and mark[1]() is y


def relu_backward(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``dx = dy · 1[x > 0] = dy · 1[y > 0]`` (the derivative at 0 is 0, as in PyTorch)."""
    order = memory_order(y)
    mask = np.greater(y, 0, out=empty_ordered(y.shape, np.bool_, order))
    return np.multiply(dy, mask, out=empty_ordered(y.shape, np.result_type(dy, y), order))


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

    Computed in place on one fresh array in ``x``'s memory layout; the cache is ``tanh(S·x)``.
    """
    t = empty_ordered(x.shape, x.dtype, memory_order(x))
    if S != 1.0:
        np.multiply(x, x.dtype.type(S), out=t)
        np.tanh(t, out=t)
    else:
        np.tanh(x, out=t)
    y = t * x.dtype.type(A) if A != 1.0 else t
    return y, t


def tanh_backward(dy: np.ndarray, t: np.ndarray, A: float = 1.0, S: float = 1.0) -> np.ndarray:
    """``dx = dy · A·S·(1 − tanh²(S·x))``, in ``t``'s memory layout, one fresh array."""
    d = np.multiply(t, t, out=empty_ordered(t.shape, t.dtype, memory_order(t)))
    np.subtract(1, d, out=d)
    if A * S != 1.0:
        d *= t.dtype.type(A * S)
    if np.result_type(dy, d) != d.dtype:
        return dy * d
    return np.multiply(dy, d, out=d)


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
