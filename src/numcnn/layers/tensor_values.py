"""Layers whose output is not a function of their input's values: ``ShapeOf``,
``Constant``, ``FullLike`` and ``Fill`` — and reductions over any axes: ``AxisSoftmax`` and
``LogSoftmax`` (softmax), ``Moments`` (mean and variance), ``Reduce`` (sum, mean, max, min).

The first three carry no gradient (their backward returns zeros): ``ShapeOf`` is ONNX
``Shape`` (the sizes of the input's axes, as numbers), ``Constant`` a stored array (ONNX
``Constant`` or an initializer used as a graph value), ``FullLike`` an array of one value in
the input's shape (the all-true mask of an inference-mode ONNX ``Dropout``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import LAYERS, Call, Layer
from .node import Shape


def normalize_axes(layer: Any, rank: int) -> tuple[int, ...]:
    """``layer.axes`` as sorted non-negative axes of a rank-``rank`` array (negative ones
    count from the end); a clear error when they do not fit."""
    out = tuple(sorted({a + rank if a < 0 else a for a in layer.axes}))
    if len(out) != len(layer.axes) or out[0] < 0 or out[-1] >= rank:
        raise ValueError(f"{layer.display_name}: axes={layer.axes} do not fit rank {rank}")
    return out


class _NoGradient(Layer):
    """Backward: zeros for the input (its values never reach the output)."""

    def bprop(self, dy: Any, call: Call, accumulate: bool = False) -> np.ndarray | None:
        return np.zeros(call.cache, dtype=self.dtype) if call.need_dx else None


@LAYERS.register("ShapeOf")
class ShapeOf(_NoGradient):
    """The input's shape ``x.shape[start:end]`` as a 1-D array of the layer's dtype (ONNX
    ``Shape``, ``start``/``end`` as Python slices). Its length is the batch axis of the
    output.

    >>> import numpy as np
    >>> ShapeOf()(np.zeros((2, 3, 4), np.float32))
    array([2., 3., 4.], dtype=float32)
    """

    def __init__(self, start: int = 0, end: int | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        for what, v in (("start", start), ("end", end)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer))):
                raise ValueError(f"{what} must be an int; received {what}={v!r}")
        self.start = int(start)
        self.end = None if end is None else int(end)
        self.per_sample = False

    def output_shape(self, input_shape: Shape) -> Shape:
        return ()

    def fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        self.check_input(x)
        call.cache = x.shape
        return np.array(x.shape[self.start:self.end], dtype=self.dtype)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "start": self.start, "end": self.end}


@LAYERS.register("Constant")
class Constant(_NoGradient):
    """A stored array ``buffers["value"]`` of ``shape``, whatever the input (which only
    places the layer in a graph). Its axis 0 is the output's batch axis.

    >>> layer = Constant((2, 3)); layer.build((5,)); layer.buffers["value"].shape
    (2, 3)
    """

    def __init__(self, shape: Any, **kwargs: Any):
        super().__init__(**kwargs)
        if not isinstance(shape, (tuple, list)) or not shape or not all(
                isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0
                for d in shape):
            raise ValueError(f"shape must be a non-empty tuple of sizes; received "
                             f"shape={shape!r}")
        self.shape = tuple(int(d) for d in shape)
        self.per_sample = False

    def output_shape(self, input_shape: Any) -> Shape:
        return self.shape[1:]

    def buffer_shapes(self, input_shape: Any) -> dict[str, tuple[int, ...]]:
        """``value``: ``shape``."""
        return {"value": self.shape}

    def build(self, input_shape: Any, rng: np.random.Generator | None = None) -> None:
        super().build(input_shape, rng)
        self.buffers["value"] = np.zeros(self.shape, dtype=self.dtype)

    def fprop(self, x: Any, call: Call) -> np.ndarray:
        self.check_input(x)
        call.cache = x.shape
        return self.buffers["value"].copy()

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "shape": list(self.shape)}


@LAYERS.register("FullLike")
class FullLike(_NoGradient):
    """``np.full(x.shape, value)``: one value in the input's shape.

    >>> import numpy as np
    >>> FullLike(1.0)(np.zeros((1, 2), np.float32))
    array([[1., 1.]], dtype=float32)
    """

    def __init__(self, value: float = 0.0, **kwargs: Any):
        super().__init__(**kwargs)
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            raise ValueError(f"value must be a number; received value={value!r}")
        self.value = float(value)

    def fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        self.check_input(x)
        call.cache = x.shape
        return np.full(x.shape, self.value, dtype=self.dtype)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "value": self.value}


@LAYERS.register("Fill")
class Fill(_NoGradient):
    """An array of ``shape`` holding ``value``; an entry ``−(a + 1)`` takes the size of the
    input's axis ``a`` (``−1``: its batch): the zeros an exported RNN starts from,
    ``torch.zeros(2, x.size(0), H)`` (ONNX ``ConstantOfShape`` of a shape that holds sizes
    known at run time).

    >>> import numpy as np
    >>> Fill((2, -1, 3))(np.zeros((4, 5), np.float32)).shape
    (2, 4, 3)
    """

    def __init__(self, shape: Any, value: float = 0.0, **kwargs: Any):
        super().__init__(**kwargs)
        if not isinstance(shape, (tuple, list)) or not shape or not all(
                isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in shape):
            raise ValueError(f"shape must be a non-empty tuple of sizes (or −(a + 1) for the "
                             f"input's axis a); received shape={shape!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            raise ValueError(f"value must be a number; received value={value!r}")
        self.shape = tuple(int(d) for d in shape)
        self.value = float(value)
        self.per_sample = self.shape[0] == -1

    def output_shape(self, input_shape: Any) -> Shape:
        whole = (None,) + tuple(input_shape)
        if any(d < 0 and -d - 1 >= len(whole) for d in self.shape):
            raise ValueError(f"{self.display_name}: shape {self.shape} names an axis the input "
                             f"(N, {', '.join(map(str, input_shape))}) does not have")
        return tuple(whole[-d - 1] if d < 0 else d for d in self.shape[1:])

    def fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        self.check_input(x)
        call.cache = x.shape
        shape = tuple(x.shape[-d - 1] if d < 0 else d for d in self.shape)
        return np.full(shape, self.value, dtype=self.dtype)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "shape": list(self.shape), "value": self.value}


@LAYERS.register("AxisSoftmax")
class AxisSoftmax(Layer):
    """Softmax over one or several whole-array ``axes`` jointly:
    ``y = e^{x − max} / Σ_axes e^{x − max}``; with ``log``, ``log y = x − max − log Σ e^{x −
    max}``. ONNX ``Softmax``/``LogSoftmax`` (opset ≥ 13: one axis; before: the axes from
    ``axis`` on, flattened). :class:`Softmax` is the axis-1 case.

    Backward: softmax ``dx = y ⊙ (dy − Σ_axes dy ⊙ y)``; log-softmax
    ``dx = dy − softmax(x) ⊙ Σ_axes dy``.

    >>> AxisSoftmax((-1,)).output_shape((3, 4))
    (3, 4)
    """

    def __init__(self, axes: Any = (-1,), log: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        if not isinstance(axes, (tuple, list)) or not axes or not all(
                isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in axes):
            raise ValueError(f"axes must be a non-empty tuple of ints; received axes={axes!r}")
        self.axes = tuple(int(a) for a in axes)
        self.log = bool(log)

    def _axes(self, rank: int) -> tuple[int, ...]:
        return normalize_axes(self, rank)

    def output_shape(self, input_shape: Shape) -> Shape:
        self.per_sample = 0 not in self._axes(len(input_shape) + 1)
        return tuple(input_shape)

    def fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        self.check_input(x)
        axes = self._axes(x.ndim)
        z = x - x.max(axis=axes, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=axes, keepdims=True)
        p = e / s
        call.cache = (axes, p)
        return z - np.log(s) if self.log else p

    def bprop(self, dy: np.ndarray, call: Call, accumulate: bool = False) -> np.ndarray | None:
        if not call.need_dx:
            return None
        axes, p = call.cache
        if self.log:
            return dy - p * dy.sum(axis=axes, keepdims=True)
        return p * (dy - (dy * p).sum(axis=axes, keepdims=True))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axes": list(self.axes), "log": self.log}


@LAYERS.register("LogSoftmax")
class LogSoftmax(AxisSoftmax):
    """``log softmax`` over ``axes`` (default the last): :class:`AxisSoftmax` with ``log``.

    >>> import numpy as np
    >>> np.round(LogSoftmax()(np.zeros((1, 2), np.float32)), 4)
    array([[-0.6931, -0.6931]], dtype=float32)
    """

    def __init__(self, axes: Any = (-1,), **kwargs: Any):
        kwargs.pop("log", None)
        super().__init__(axes, log=True, **kwargs)

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.pop("log")
        return cfg


@LAYERS.register("Moments")
class Moments(Layer):
    """The mean and the (biased) variance over whole-array ``axes``, kept as axes of size 1:
    ``μ = Σ x / n``, ``σ² = Σ (x − μ)² / n`` (ONNX ``BatchNormalization``'s batch statistics
    in training mode, TensorFlow's ``moments``).

    Args:
        axes: the whole-array axes reduced (0 is the batch axis; the result then has a
            batch of 1).
        outputs: ``("mean", "var")`` (two outputs, the default), or one of them.

    Backward: ``dx = dμ / n + dσ² · 2(x − μ) / n``.

    >>> Moments((0, 2, 3)).output_shape((3, 4, 5))
    [(3, 1, 1), (3, 1, 1)]
    """

    def __init__(self, axes: Any, outputs: Any = ("mean", "var"), **kwargs: Any):
        super().__init__(**kwargs)
        if not isinstance(axes, (tuple, list)) or not axes or not all(
                isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in axes):
            raise ValueError(f"axes must be a non-empty tuple of ints; received axes={axes!r}")
        self.axes = tuple(int(a) for a in axes)
        if not isinstance(outputs, (tuple, list)) or list(outputs) not in (
                ["mean", "var"], ["mean"], ["var"]):
            raise ValueError(f"outputs must be ('mean', 'var'), ('mean',) or ('var',); "
                             f"received outputs={outputs!r}")
        self.outputs = tuple(outputs)
        self.per_sample = 0 not in self.axes

    def output_shape(self, input_shape: Shape) -> Any:
        whole = (None,) + tuple(input_shape)
        axes = normalize_axes(self, len(whole))
        out = tuple(1 if a in axes else d for a, d in enumerate(whole))[1:]
        return [out, out] if len(self.outputs) == 2 else out

    def fprop(self, x: np.ndarray, call: Call) -> Any:
        self.check_input(x)
        axes = normalize_axes(self, x.ndim)
        mu = x.mean(axis=axes, keepdims=True)
        xc = x - mu
        var = (xc * xc).mean(axis=axes, keepdims=True)
        call.cache = (xc, int(np.prod([x.shape[a] for a in axes])))
        res = {"mean": mu, "var": var}
        return tuple(res[o] for o in self.outputs) if len(self.outputs) == 2 else \
            res[self.outputs[0]]

    def bprop(self, dy: Any, call: Call, accumulate: bool = False) -> np.ndarray | None:
        if not call.need_dx:
            return None
        xc, n = call.cache
        dys = dict(zip(self.outputs, dy if len(self.outputs) == 2 else (dy,)))
        dmu, dvar = dys.get("mean"), dys.get("var")
        dx = np.zeros_like(xc)
        if dmu is not None:
            dx += dmu / xc.dtype.type(n)
        if dvar is not None:
            dx += dvar * xc * xc.dtype.type(2.0 / n)
        return dx

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axes": list(self.axes), "outputs": list(self.outputs)}


_REDUCERS = {"sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min}


@LAYERS.register("Reduce")
class Reduce(Layer):
    """Sum, mean, maximum or minimum over whole-array ``axes`` (ONNX ``ReduceSum``,
    ``ReduceMean``, ``ReduceMax``, ``ReduceMin``), the axes kept as size 1 with
    ``keepdims``.

    Backward: the sum hands ``dy`` to every value, the mean ``dy / n``, the maximum (minimum)
    to the values equal to it, shared equally on ties.

    >>> Reduce("sum", (2,), keepdims=False).output_shape((3, 4))
    (3,)
    """

    def __init__(self, op: str, axes: Any, keepdims: bool = True, **kwargs: Any):
        super().__init__(**kwargs)
        if op not in _REDUCERS:
            raise ValueError(f"op must be one of {sorted(_REDUCERS)}; received op={op!r}")
        if not isinstance(axes, (tuple, list)) or not axes or not all(
                isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in axes):
            raise ValueError(f"axes must be a non-empty tuple of ints; received axes={axes!r}")
        self.op = op
        self.axes = tuple(int(a) for a in axes)
        self.keepdims = bool(keepdims)
        self.per_sample = 0 not in self.axes

    def output_shape(self, input_shape: Shape) -> Shape:
        whole = (None,) + tuple(input_shape)
        axes = normalize_axes(self, len(whole))
        self.per_sample = 0 not in axes
        if self.keepdims:
            out = tuple(1 if a in axes else d for a, d in enumerate(whole))
        else:
            out = tuple(d for a, d in enumerate(whole) if a not in axes)
        if not out:
            raise ValueError(f"{self.display_name}: reducing every axis leaves no batch axis "
                             f"(keepdims=True keeps one)")
        return out[1:]

    def fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        self.check_input(x)
        axes = normalize_axes(self, x.ndim)
        y = _REDUCERS[self.op](x, axis=axes, keepdims=True)
        call.cache = (x, y, axes)
        return y if self.keepdims else y.reshape([n for a, n in enumerate(y.shape)
                                                  if a not in axes])

    def bprop(self, dy: np.ndarray, call: Call, accumulate: bool = False) -> np.ndarray | None:
        if not call.need_dx:
            return None
        x, y, axes = call.cache
        g = dy.reshape(y.shape)
        if self.op == "sum":
            return np.broadcast_to(g, x.shape).copy()
        if self.op == "mean":
            n = int(np.prod([x.shape[a] for a in axes]))
            return np.broadcast_to(g / x.dtype.type(max(n, 1)), x.shape).copy()
        hit = (x == y).astype(x.dtype)
        return hit * (g / hit.sum(axis=axes, keepdims=True))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "op": self.op, "axes": list(self.axes),
                "keepdims": self.keepdims}
