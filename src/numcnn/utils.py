"""Small helpers for preparing data: the course's "one-of-c" targets.

The course (text 002) organises a classifier's targets "one-of-c": the output of the
input's class is positive and the others are 0 or negative, depending on the output
layer's activation — 0/1 for a sigmoid, −1/+1 for a tanh.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def to_categorical(y: Any, num_classes: int | None = None, on: float = 1.0, off: float = 0.0,
                   dtype: Any = "float32") -> np.ndarray:
    """One-of-c targets: ``t[n, k] = on`` if ``y[n] = k`` else ``off``.

    ``on=1, off=0`` (the default) is Keras's ``to_categorical``, the targets of a softmax
    or sigmoid output; ``on=1, off=-1`` are the ±1 targets of a tanh output (course 002).
    Labels of any shape ``S`` give targets of shape ``S + (num_classes,)``.

    Args:
        y: integer class labels in ``0 … num_classes − 1`` (integral floats accepted).
        num_classes: the number of classes c; default ``max(y) + 1``.
        on, off: the target values of the true class and of the others.
        dtype: dtype of the result.

    >>> to_categorical([0, 2, 1], on=1, off=-1)
    array([[ 1., -1., -1.],
           [-1., -1.,  1.],
           [-1.,  1., -1.]], dtype=float32)
    """
    a = np.asarray(y)
    if a.dtype == bool or a.dtype.kind not in "iuf":
        raise TypeError(f"to_categorical: y must hold integer class labels; received dtype "
                        f"{a.dtype}")
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
            raise ValueError("to_categorical: y must hold integer class labels; received "
                             "non-integral values")
        a = a.astype(np.int64)
    if num_classes is None:
        num_classes = int(a.max()) + 1 if a.size else 0
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) \
            or num_classes < 1:
        raise ValueError(f"to_categorical: num_classes must be a positive int; received "
                         f"num_classes={num_classes!r}")
    if a.size and (a.min() < 0 or a.max() >= num_classes):
        raise ValueError(f"to_categorical: labels must lie in 0 … {num_classes - 1}; "
                         f"received values from {int(a.min())} to {int(a.max())}")
    t = np.full(a.shape + (int(num_classes),), off, dtype=dtype)
    np.put_along_axis(t, a[..., None], np.asarray(on, dtype=t.dtype), axis=-1)
    return t
