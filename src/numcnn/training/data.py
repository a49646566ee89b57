"""Checks and batching of the arrays handed to ``fit``, ``evaluate`` and ``predict``."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..layers.node import format_shape, shapes_compatible


def as_input(shape: tuple, dtype: np.dtype, x: Any, who: str) -> np.ndarray:
    """Check ``x`` against a per-sample input ``shape`` and convert it once to ``dtype``.

    Integer images (e.g. MNIST uint8) are converted as they are: scale them yourself first
    (``x / 255``) — nothing is rescaled behind your back. (N, H, W) is accepted for a
    (1, H, W) input, as Keras users pass MNIST.
    """
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise TypeError(f"{who}: expected a numeric array; received dtype {x.dtype}")
    if x.ndim == 0:
        raise ValueError(f"{who}: expected input of shape {format_shape(shape)}; received a "
                         "scalar")
    if not shapes_compatible(tuple(x.shape[1:]), tuple(shape)):
        if len(shape) == 3 and shape[0] == 1 and shapes_compatible(tuple(x.shape[1:]),
                                                                   tuple(shape[1:])):
            x = x[:, None]
        else:
            raise ValueError(f"{who}: expected input of shape {format_shape(shape)}; "
                             f"received {x.shape}")
    x = np.ascontiguousarray(x, dtype=dtype)
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise ValueError(f"{who}: input contains NaN or infinity")
    return x


def as_inputs(model: Any, x: Any, who: str) -> list[np.ndarray]:
    """The model's inputs from ``x``: one array, a list (one per input) or a dict by input
    name; all with the same number of samples."""
    tensors = model.graph.inputs
    if isinstance(x, dict):
        names = model.input_names
        unknown = sorted(set(x) - set(names))
        if unknown:
            raise ValueError(f"{who}: unknown inputs {unknown}; the model's inputs: {names}")
        try:
            x = [x[n] for n in names]
        except KeyError as e:
            raise ValueError(f"{who}: missing input {e}; the model's inputs: {names}") from None
    elif len(tensors) > 1 or (isinstance(x, (list, tuple)) and model._list_in):
        if not isinstance(x, (list, tuple)) or len(x) != len(tensors):
            raise ValueError(f"{who}: the model has {len(tensors)} inputs; pass a list of "
                             f"{len(tensors)} arrays (or a dict by input name)")
    else:
        x = [x]
    xs = [as_input(t.shape, model.dtype, a, who) for t, a in zip(tensors, x)]
    if len({len(a) for a in xs}) > 1:
        raise ValueError(f"{who}: inputs with different numbers of samples "
                         f"{[len(a) for a in xs]}")
    return xs


def check_targets(n: int, y: Any, who: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 0 or len(y) != n:
        raise ValueError(f"{who}: x has {n} samples but y has "
                         f"{'none (a scalar)' if y.ndim == 0 else len(y)}")
    return y


def batches(n: int, batch_size: int, order: np.ndarray | None = None):
    """Yield index arrays (or slices when ``order`` is None) of at most ``batch_size``."""
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        yield slice(start, stop) if order is None else order[start:stop]


def check_batch_size(batch_size: Any, n: int) -> int:
    """``None`` means the whole dataset (full-batch gradient descent); a batch larger than
    the data is the whole dataset too (so a huge value cannot allocate huge buffers)."""
    if batch_size is None:
        return max(n, 1)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int or None; received {batch_size!r}")
    return min(int(batch_size), max(n, 1))
