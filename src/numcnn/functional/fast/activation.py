"""Fast element-wise activations: one pass each, in the input's own memory layout.

The same values as :mod:`numcnn.functional.activation`; the outputs keep the input's memory
order (a convolution's batch-innermost output stays batch-innermost, so the next kernel
reads contiguous runs) and come from the caller's :class:`Workspace`, which recycles large
arrays instead of mapping new pages on every step.
"""

from __future__ import annotations

import numpy as np

from .workspace import Workspace, get_workspace, memory_order


def relu_forward(x: np.ndarray, ws: Workspace | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``y = max(x, 0)`` in one pass, in ``x``'s memory layout; the cache is ``y`` itself."""
    ws = get_workspace(ws)
    y = np.maximum(x, 0, out=ws.fresh_ordered(x.shape, x.dtype, memory_order(x)))
    return y, y


def relu_backward(dy: np.ndarray, y: np.ndarray, ws: Workspace | None = None) -> np.ndarray:
    """``dx = dy · 1[x > 0] = dy · 1[y > 0]`` (the derivative at 0 is 0, as in PyTorch)."""
    ws = get_workspace(ws)
    order = memory_order(y)
    # a fresh array of the pool shared by the model's call sites, not a per-layer scratch
    mask = np.greater(y, 0, out=ws.fresh_ordered(y.shape, np.bool_, order))
    return np.multiply(dy, mask, out=ws.fresh_ordered(y.shape, np.result_type(dy, y), order))


def tanh_forward(x: np.ndarray, A: float = 1.0, S: float = 1.0,
                 ws: Workspace | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``y = A · tanh(S·x)`` computed in place on one fresh array in ``x``'s memory layout;
    the cache is ``t = tanh(S·x)``."""
    ws = get_workspace(ws)
    t = ws.fresh_ordered(x.shape, x.dtype, memory_order(x))
    if S != 1.0:
        np.multiply(x, x.dtype.type(S), out=t)
        np.tanh(t, out=t)
    else:
        np.tanh(x, out=t)
    y = np.multiply(t, x.dtype.type(A), out=ws.fresh_ordered(x.shape, x.dtype,
                                                             memory_order(x))) if A != 1.0 else t
    return y, t


def tanh_backward(dy: np.ndarray, t: np.ndarray, A: float = 1.0, S: float = 1.0,
                  ws: Workspace | None = None) -> np.ndarray:
    """``dx = dy · A·S·(1 − tanh²(S·x))``, in ``t``'s memory layout, one fresh array."""
    ws = get_workspace(ws)
    d = np.multiply(t, t, out=ws.fresh_ordered(t.shape, t.dtype, memory_order(t)))
    np.subtract(1, d, out=d)
    if A * S != 1.0:
        d *= t.dtype.type(A * S)
    if np.result_type(dy, d) != d.dtype:
        return dy * d
    return np.multiply(dy, d, out=d)
