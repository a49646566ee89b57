"""Embedding lookup: rows of a table picked by integer token ids, and the gradient that adds
each output's gradient into the row it came from.

The forward pass is an index, ``y[n, t] = W[x[n, t]]``; the backward pass is a scatter-add,
``dW[v] = Σ_{(n, t): x[n, t] = v} dy[n, t]``: a token that appears several times collects
the gradients of all its appearances (PyTorch's ``torch.nn.Embedding``, dense gradient).
The reference path writes that sum with ``np.add.at``; the fast path builds the one-hot
matrix ``O`` (V, M) of the M tokens and computes ``dW = O @ dy`` in one BLAS product when
the table is small, where that is several times faster (measured on NumPy 2.4: 0.9 ms
against 3.6 ms for 6,400 tokens of a 50-row table; ``np.add.at`` stays for large tables).
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: the fast path's one-hot matrix holds at most this many values (V · M)
ONE_HOT_LIMIT = 1 << 22


def check_tokens(x: Any, input_dim: int, dtype: np.dtype, who: str = "Embedding") -> np.ndarray:
    """``x`` as an ``intp`` array of token ids in ``[0, input_dim)``.

    Accepts integer arrays, and float arrays of ``dtype`` (a model's inputs are converted to
    its float dtype) whose values are whole numbers. Anything else raises with the value
    received: a float array of another dtype (TypeError), a non-integer, NaN or
    out-of-range id (ValueError).

    >>> check_tokens(np.array([[1.0, 0.0]], np.float32), 3, np.dtype(np.float32))
    array([[1, 0]])
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{who}: expected a numpy array of token ids; received "
                        f"{type(x).__name__}")
    if x.dtype.kind in "iu":
        ids = x
    elif x.dtype.kind == "f":
        if x.dtype != dtype:
            raise TypeError(f"{who}: expected token ids as integers or as {dtype} (the "
                            f"layer's dtype); received dtype {x.dtype}")
        bad = ~(np.floor(x) == x)  # NaN and ±inf fall here too (inf: floor(inf) == inf)
        bad |= ~np.isfinite(x)
        if bad.any():
            raise ValueError(f"{who}: token ids must be whole numbers; received "
                             f"{float(x[bad].flat[0])}")
        ids = x
    else:
        raise TypeError(f"{who}: expected integer token ids; received dtype {x.dtype}")
    if ids.size:
        lo, hi = ids.min(), ids.max()
        if lo < 0 or hi >= input_dim:
            v = lo if lo < 0 else hi
            raise ValueError(f"{who}: token ids must be in [0, {input_dim}) (input_dim="
                             f"{input_dim}); received {int(v)}")
    return ids.astype(np.intp, copy=False)


def embedding_forward(ids: np.ndarray, W: np.ndarray) -> np.ndarray:
    """``y = W[ids]``: the rows of ``W`` picked by ``ids``.

    Shape:
        ids (...) intp, W (V, D) → y (..., D), a new contiguous array.

    >>> W = np.arange(6.0).reshape(3, 2)
    >>> embedding_forward(np.array([[2, 0]]), W)
    array([[[4., 5.],
            [0., 1.]]])
    """
    return np.take(W, ids, axis=0)


def embedding_backward(dy: np.ndarray, ids: np.ndarray, input_dim: int,
                       fast: bool = True) -> np.ndarray:
    """``dW[v] = Σ_{i: ids[i] = v} dy[i]`` (repeated tokens accumulate; unused rows are 0).

    Args:
        dy: (..., D), the gradient of the output. ids: (...) intp, the forward's ids.
        input_dim: V, the rows of the table. fast: allow the one-hot product (small tables).

    Returns:
        dW (V, D) in ``dy``'s dtype.

    >>> embedding_backward(np.ones((1, 3, 2)), np.array([[1, 1, 0]]), 3)
    array([[1., 1.],
           [2., 2.],
           [0., 0.]])
    """
    D = dy.shape[-1]
    d2 = dy.reshape(-1, D)  # (M, D)
    flat = ids.reshape(-1)  # (M,)
    if fast and input_dim * flat.size <= ONE_HOT_LIMIT:
        onehot = np.zeros((input_dim, flat.size), dtype=dy.dtype)
        onehot[flat, np.arange(flat.size)] = 1
        return onehot @ d2  # (V, M) @ (M, D)
    dW = np.zeros((input_dim, D), dtype=dy.dtype)
    np.add.at(dW, flat, d2)
    return dW
