"""Merge layers: combine several tensors of a graph into one (``Add``, ``Concatenate``, …).

Each takes a list of arrays and returns one; its backward pass returns a list of input
gradients (``None`` for an input that needs none). ``Add`` hands the same ``dy`` to every
input: the graph engine never writes into an array it did not make, so sharing is safe.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..functional.dispatch import relu_backward
from ..functional.fast.workspace import memory_order
from .base import LAYERS, Call, Layer
from .node import Shape, format_shape


class _Merge(Layer):
    """Base of the merge layers: a list of at least ``min_inputs`` equally shaped inputs."""

    min_inputs = 2

    def _shapes(self, input_shape: Any) -> list[Shape]:
        if not isinstance(input_shape, (list, tuple)) or not input_shape or not all(
                isinstance(s, (list, tuple)) for s in input_shape):
            raise ValueError(f"{self.display_name}: expected a list of input shapes; received "
                             f"{input_shape!r} (call the layer on a list of tensors)")
        if len(input_shape) < self.min_inputs:
            raise ValueError(f"{self.display_name}: needs at least {self.min_inputs} inputs; "
                             f"received {len(input_shape)}")
        return [tuple(s) for s in input_shape]

    def output_shape(self, input_shape: Any) -> Shape:
        shapes = self._shapes(input_shape)
        out = shapes[0]
        for s in shapes[1:]:
            if len(s) != len(out) or any(a is not None and b is not None and a != b
                                         for a, b in zip(s, out)):
                raise ValueError(f"{self.display_name}: inputs must have the same shape; "
                                 f"received {[format_shape(t) for t in shapes]}")
            out = tuple(a if a is not None else b for a, b in zip(out, s))
        return out

    def _need(self, call: Call, k: int) -> bool:
        need = call.need_dx
        return bool(need[k]) if isinstance(need, (list, tuple)) else bool(need)


@LAYERS.register("Add")
class Add(_Merge):
    """``y = x₁ + x₂ + …`` (a residual connection); ``dx_k = dy``.

    >>> import numpy as np
    >>> Add()([np.ones((1, 2), np.float32), np.ones((1, 2), np.float32)])
    array([[2., 2.]], dtype=float32)
    """

    def fprop(self, xs: list[np.ndarray], call: Call) -> np.ndarray:
        self.check_input(xs)
        # in the first input's memory layout, into a recycled array of the model's pool
        dtype = np.result_type(*xs)
        y = np.add(xs[0], xs[1], out=call.ws.fresh_ordered(
            np.broadcast_shapes(*(x.shape for x in xs)), dtype, memory_order(xs[0])))
        for x in xs[2:]:
            y += x
        if call.fused in ("relu_after", "relu_fwd"):
            # fused with the ReLU that alone reads the output (models/passes.py)
            np.maximum(y, 0, out=y)
            call.cache = y if call.fused == "relu_after" else None
        return y

    def bprop(self, dy: np.ndarray, call: Call, accumulate: bool = False) -> list:
        if call.cache is not None:  # the fused ReLU's derivative, once for every input
            dy = relu_backward(dy, call.cache, call.ws)
        return [dy if self._need(call, k) else None for k in range(len(self.input_shape))]


@LAYERS.register("Subtract")
class Subtract(_Merge):
    """``y = x₁ − x₂`` (two inputs); ``dx₁ = dy``, ``dx₂ = −dy``."""

    def output_shape(self, input_shape: Any) -> Shape:
        if len(self._shapes(input_shape)) != 2:
            raise ValueError(f"{self.display_name}: takes exactly 2 inputs; received "
                             f"{len(input_shape)}")
        return super().output_shape(input_shape)

    def fprop(self, xs: list[np.ndarray], call: Call) -> np.ndarray:
        self.check_input(xs)
        return np.subtract(xs[0], xs[1])

    def bprop(self, dy: np.ndarray, call: Call, accumulate: bool = False) -> list:
        return [dy if self._need(call, 0) else None, -dy if self._need(call, 1) else None]


@LAYERS.register("Multiply")
class Multiply(_Merge):
    """``y = x₁ ⊙ x₂ ⊙ …`` (element-wise, e.g. a gate); ``dx_k = dy ⊙ Π_{j≠k} x_j``."""

    def fprop(self, xs: list[np.ndarray], call: Call) -> np.ndarray:
        self.check_input(xs)
        call.cache = list(xs)
        y = np.multiply(xs[0], xs[1])
        for x in xs[2:]:
            y *= x
        return y

    def bprop(self, dy: np.ndarray, call: Call, accumulate: bool = False) -> list:
        xs = call.cache
        out = []
        for k in range(len(xs)):
            if not self._need(call, k):
                out.append(None)
                continue
            g = dy.copy()
            for j, x in enumerate(xs):
                if j != k:
                    g *= x
            out.append(g)
        return out


@LAYERS.register("Average")
class Average(_Merge):
    """``y = (x₁ + … + x_K) / K``; ``dx_k = dy / K``."""

    def fprop(self, xs: list[np.ndarray], call: Call) -> np.ndarray:
        self.check_input(xs)
        y = np.add(xs[0], xs[1])
        for x in xs[2:]:
            y += x
        y /= y.dtype.type(len(xs))
        return y

    def bprop(self, dy: np.ndarray, call: Call, accumulate: bool = False) -> list:
        K = len(self.input_shape)
        g = dy / dy.dtype.type(K)
        return [g if self._need(call, k) else None for k in range(K)]


@LAYERS.register("Concatenate")
class Concatenate(_Merge):
    """Join inputs along ``axis`` of the full array (N, …): ``axis=1`` (default) is the
    channel axis of NCHW maps (GoogLeNet's Inception outputs) or the feature axis of
    (N, F) vectors. Keras's default is the last axis, as Keras is channels-last.

    Backward: ``dy`` is split back into the inputs' parts (views of ``dy``).

    Args:
        axis: the axis to join on (not 0, the batch axis; negative counts from the end).

    >>> import numpy as np
    >>> Concatenate()([np.zeros((1, 2, 3, 3)), np.ones((1, 4, 3, 3))]).shape
    (1, 6, 3, 3)
    """

    min_inputs = 1

    def __init__(self, axis: int = 1, **kwargs: Any):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or axis == 0:
            raise ValueError(f"axis must be a non-zero int (0 is the batch axis); received "
                             f"axis={axis!r}")
        self.axis = int(axis)

    def _ax(self, ndim: int) -> int:
        """The axis within a per-sample shape of ``ndim`` dimensions."""
        a = self.axis - 1 if self.axis > 0 else ndim + self.axis
        if not 0 <= a < ndim:
            raise ValueError(f"{self.display_name}: axis={self.axis} is out of range for inputs "
                             f"with {ndim} dimensions after the batch axis")
        return a

    def output_shape(self, input_shape: Any) -> Shape:
        shapes = self._shapes(input_shape)
        a = self._ax(len(shapes[0]))
        total = 0
        for s in shapes:
            if len(s) != len(shapes[0]) or any(
                    i != a and x is not None and y is not None and x != y
                    for i, (x, y) in enumerate(zip(s, shapes[0]))):
                raise ValueError(f"{self.display_name}: inputs must match except on axis "
                                 f"{self.axis}; received {[format_shape(t) for t in shapes]}")
            total = None if total is None or s[a] is None else total + s[a]
        out = list(shapes[0])
        out[a] = total
        return tuple(out)

    def fprop(self, xs: list[np.ndarray], call: Call) -> np.ndarray:
        self.check_input(xs)
        a = self._ax(xs[0].ndim - 1) + 1
        shape = list(xs[0].shape)
        shape[a] = sum(x.shape[a] for x in xs)
        # keep the inputs' memory layout (batch-innermost conv outputs stay so)
        y = call.ws.fresh_ordered(tuple(shape), np.result_type(*xs), memory_order(xs[0]))
        sizes = [x.shape[a] for x in xs]
        call.cache = (a, sizes)
        start = 0
        index: list[Any] = [slice(None)] * y.ndim
        for x, n in zip(xs, sizes):
            index[a] = slice(start, start + n)
            y[tuple(index)] = x
            start += n
        return y

    def bprop(self, dy: np.ndarray, call: Call, accumulate: bool = False) -> list:
        a, sizes = call.cache
        out, start = [], 0
        index: list[Any] = [slice(None)] * dy.ndim
        for k, n in enumerate(sizes):
            index[a] = slice(start, start + n)
            out.append(dy[tuple(index)] if self._need(call, k) else None)
            start += n
        return out

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axis": self.axis}
