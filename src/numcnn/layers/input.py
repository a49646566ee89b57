"""``Input``: the entry point of a graph, and ``InputLayer``, the layer behind it."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import LAYERS, Call, Layer, check_dtype
from .node import Node, Shape, SymbolicTensor


@LAYERS.register("InputLayer")
class InputLayer(Layer):
    """Holds a graph's input shape and dtype; passes its input through unchanged.

    Args:
        shape: per-sample shape, e.g. ``(1, 28, 28)``; ``None`` for a free dimension.
        dtype: ``"float32"`` (default) or ``"float64"``.
        name: optional name.
    """

    def __init__(self, shape: Any, dtype: Any = "float32", name: str | None = None, **kwargs: Any):
        super().__init__(name=name, dtype=check_dtype(dtype), **kwargs)
        if isinstance(shape, (int, np.integer)):
            shape = (shape,)
        if not isinstance(shape, (tuple, list)) or not all(
                d is None or (isinstance(d, (int, np.integer)) and not isinstance(d, bool)
                              and d > 0) for d in shape):
            raise ValueError(f"shape must be a tuple of positive ints (or None); received "
                             f"shape={shape!r}")
        self.shape: Shape = tuple(None if d is None else int(d) for d in shape)
        self.build(self.shape)
        node = Node(self, [], False, [self.shape], self.dtype)
        self._nodes.append(node)
        self.tensor: SymbolicTensor = node.outputs[0]

    def fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        self.check_input(x)
        return x

    def bprop(self, dy: np.ndarray, call: Call, accumulate: bool = False) -> np.ndarray | None:
        return dy if call.need_dx else None

    def get_config(self) -> dict[str, Any]:
        return {"shape": [d for d in self.shape], "dtype": self.dtype.name, "name": self.name}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> InputLayer:
        config = dict(config)
        config.pop("trainable", None)
        return cls(**config)


def Input(shape: Any, dtype: Any = "float32", name: str | None = None) -> SymbolicTensor:
    """A symbolic input of per-sample ``shape`` (no batch axis) to build a graph on.

    >>> import numcnn
    >>> from numcnn.layers import Dense
    >>> x = numcnn.Input((4,))
    >>> y = Dense(2)(x)
    >>> numcnn.Model(x, y).count_params()
    10
    """
    return InputLayer(shape, dtype=dtype, name=name).tensor
