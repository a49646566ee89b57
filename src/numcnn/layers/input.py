"""``Input``: the entry point of a graph, and ``InputLayer``, the layer behind it."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..functional.geometry import check_data_format
from .base import LAYERS, Call, Layer, check_dtype
from .node import Node, Shape, SymbolicTensor


@LAYERS.register("InputLayer")
class InputLayer(Layer):
    """Holds a graph's input shape and dtype; passes its input through unchanged.

    Args:
        shape: per-sample shape, e.g. ``(1, 28, 28)``; ``None`` for a free dimension.
        dtype: ``"float32"`` (default) or ``"float64"``.
        name: optional name.
        data_format: the layout of the images this input receives, recorded (config,
            ``summary``) and checked (a 3-D shape): ``"channels_first"`` (C, H, W) or
            ``"channels_last"`` (H, W, C), TensorFlow's, for layers built with
            ``data_format="channels_last"``. The arrays pass unchanged; to feed NHWC data
            to NCHW layers put ``Permute((3, 1, 2))`` after the input.
    """

    def __init__(self, shape: Any, dtype: Any = "float32", name: str | None = None,
                 data_format: str = "channels_first", **kwargs: Any):
        super().__init__(name=name, dtype=check_dtype(dtype), **kwargs)
        self.data_format = check_data_format(data_format)
        if isinstance(shape, (int, np.integer)):
            shape = (shape,)
        if not isinstance(shape, (tuple, list)) or not all(
                d is None or (isinstance(d, (int, np.integer)) and not isinstance(d, bool)
                              and d > 0) for d in shape):
            raise ValueError(f"shape must be a tuple of positive ints (or None); received "
                             f"shape={shape!r}")
        self.shape: Shape = tuple(None if d is None else int(d) for d in shape)
        if self.data_format == "channels_last" and len(self.shape) != 3:
            raise ValueError(f"data_format='channels_last' expects an image shape (H, W, C); "
                             f"received shape={shape!r}")
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
        cfg = {"shape": [d for d in self.shape], "dtype": self.dtype.name, "name": self.name}
        if self.data_format != "channels_first":
            cfg["data_format"] = self.data_format
        return cfg

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> InputLayer:
        config = dict(config)
        config.pop("trainable", None)
        return cls(**config)


def Input(shape: Any, dtype: Any = "float32", name: str | None = None,
          data_format: str = "channels_first") -> SymbolicTensor:
    """A symbolic input of per-sample ``shape`` (no batch axis) to build a graph on;
    ``data_format`` as :class:`InputLayer` (``"channels_last"``: ``shape`` is (H, W, C)).

    >>> import numcnn
    >>> from numcnn.layers import Dense
    >>> x = numcnn.Input((4,))
    >>> y = Dense(2)(x)
    >>> numcnn.Model(x, y).count_params()
    10
    """
    return InputLayer(shape, dtype=dtype, name=name, data_format=data_format).tensor
