"""Indexing layers over the *whole* array, batch axis included: ``Gather`` (ONNX
``Gather``: rows picked by fixed indices), ``Slice`` (ONNX ``Slice``: a strided range of
chosen axes) and ``PadND`` (ONNX ``Pad``: constant, reflect, edge and wrap padding of any
axis, negative amounts cropping).

As the layers of :mod:`.tensor_shape`, they take whole-array axes. Their backward passes
are the adjoints of the indexing: each gathered row of ``dy`` is added back where it came
from, and each padded position's gradient to the input position it copied.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import LAYERS, Call
from .node import Shape
from .tensor_shape import _axes_arg, _Movement, _sample_of, _whole


@LAYERS.register("Gather")
class Gather(_Movement):
    """``y = take(x, indices, axis)`` with fixed integer ``indices`` (ONNX ``Gather``;
    negative indices count from the end). Backward: each row of ``dy`` is added back where it
    was taken from (repeated indices add up).

    >>> Gather([[0, 2]], axis=1).output_shape((3, 4))
    (1, 2, 4)
    """

    def __init__(self, indices: Any, axis: int = 0, **kwargs: Any):
        super().__init__(**kwargs)
        idx = np.asarray(indices)
        if idx.dtype.kind not in "iu" and idx.size:
            raise ValueError(f"indices must be integers; received dtype {idx.dtype}")
        self.indices = idx.astype(np.int64)
        self.axis = _axes_arg((axis,), "axis")[0]
        self.per_sample = self.axis != 0

    def output_shape(self, input_shape: Shape) -> Shape:
        whole = _whole(input_shape)
        a = self.axis + len(whole) if self.axis < 0 else self.axis
        if not 0 <= a < len(whole):
            raise ValueError(f"{self.display_name}: axis={self.axis} does not fit rank "
                             f"{len(whole)}")
        n = whole[a]
        if n is not None and self.indices.size and (
                self.indices.max() >= n or self.indices.min() < -n):
            raise ValueError(f"{self.display_name}: indices out of range for an axis of size "
                             f"{n}")
        out = whole[:a] + self.indices.shape + whole[a + 1:]
        return _sample_of(tuple(out), self.display_name)

    def _index(self, x: np.ndarray) -> tuple[int, np.ndarray]:
        a = self.axis % x.ndim
        n = x.shape[a]
        if self.indices.size and (self.indices.max() >= n or self.indices.min() < -n):
            raise ValueError(f"{self.display_name}: indices out of range for axis {a} of size "
                             f"{n}")
        return a, np.where(self.indices < 0, self.indices + n, self.indices)

    def fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        self.check_input(x)
        a, idx = self._index(x)
        call.cache = (x.shape, a, idx)
        return np.take(x, idx, axis=a)

    def bprop(self, dy: np.ndarray, call: Call, accumulate: bool = False) -> np.ndarray | None:
        if not self._need(call):
            return None
        shape, a, idx = call.cache
        dx = np.zeros(shape, dtype=dy.dtype)
        moved = np.moveaxis(dx, a, 0)  # a view: rows of axis a first
        k = idx.ndim
        g = np.moveaxis(dy, tuple(range(a, a + k)), tuple(range(k)))  # index axes first
        np.add.at(moved, idx, g)
        return dx

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "indices": self.indices.tolist(), "axis": self.axis}


@LAYERS.register("Slice")
class Slice(_Movement):
    """``y = x[..., start:end:step, ...]`` on the chosen whole-array ``axes`` (ONNX ``Slice``):
    NumPy's slicing, which clamps ``start`` and ``end`` to the axis as ONNX specifies
    (negative values count from the end; a negative ``step`` walks backwards). Backward:
    ``dx`` is zero except on the selected positions, where it is ``dy``.

    >>> Slice(starts=(0,), ends=(None,), axes=(2,), steps=(2,)).output_shape((3, 5))
    (3, 3)
    """

    def __init__(self, starts: Any, ends: Any, axes: Any, steps: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.axes = _axes_arg(axes, "axes")
        k = len(self.axes)
        steps = (1,) * k if steps is None else steps
        self.starts, self.ends, self.steps = (_bounds(v, name, k) for v, name in (
            (starts, "starts"), (ends, "ends"), (steps, "steps")))
        if any(st is None or st == 0 for st in self.steps):
            raise ValueError(f"steps must be non-zero ints; received steps={steps!r}")
        if len(set(self.axes)) != k:
            raise ValueError(f"axes must be distinct; received axes={axes!r}")
        self.per_sample = 0 not in self.axes

    def _index(self, whole: tuple) -> tuple:
        index: list[Any] = [slice(None)] * len(whole)
        for a, s, e, st in zip(self.axes, self.starts, self.ends, self.steps):
            if not -len(whole) <= a < len(whole):
                raise ValueError(f"{self.display_name}: axis {a} does not fit rank "
                                 f"{len(whole)}")
            index[a] = slice(s, e, st)
        return tuple(index)

    def output_shape(self, input_shape: Shape) -> Shape:
        whole = _whole(input_shape)
        index = self._index(whole)
        out = tuple(None if n is None else len(range(*sl.indices(n)))
                    for n, sl in zip(whole, index))
        return _sample_of(out, self.display_name)

    def fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        self.check_input(x)
        index = self._index(x.shape)
        call.cache = (x.shape, index)
        return np.ascontiguousarray(x[index])

    def bprop(self, dy: np.ndarray, call: Call, accumulate: bool = False) -> np.ndarray | None:
        if not self._need(call):
            return None
        shape, index = call.cache
        dx = np.zeros(shape, dtype=dy.dtype)
        dx[index] = dy  # slices select each position once
        return dx

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "starts": list(self.starts), "ends": list(self.ends),
                "axes": list(self.axes), "steps": list(self.steps)}


def _bounds(values: Any, what: str, k: int) -> tuple:
    """A slice's starts, ends or steps: ``k`` ints or None (an open end)."""
    if not isinstance(values, (tuple, list)) or len(values) != k or not all(
            v is None or (isinstance(v, (int, np.integer)) and not isinstance(v, bool))
            for v in values):
        raise ValueError(f"{what} must be {k} ints (or None); received {what}={values!r}")
    return tuple(None if v is None else int(v) for v in values)


_PAD_MODES = ("constant", "reflect", "edge", "wrap")


def pad_sources(n: int, begin: int, end: int, mode: str) -> np.ndarray:
    """For each of the ``n + begin + end`` output positions of one axis, the input position
    it copies, or −1 for the fill value (``mode="constant"``). Negative amounts crop."""
    q = np.arange(n + begin + end) - begin
    if mode == "constant":
        return np.where((q >= 0) & (q < n), q, -1)
    if mode == "edge":
        return np.clip(q, 0, n - 1)
    if mode == "wrap":
        return q % n
    if n == 1:
        return np.zeros_like(q)
    period = 2 * (n - 1)  # reflect about the edges without repeating them
    r = q % period
    return np.where(r > n - 1, period - r, r)


@LAYERS.register("PadND")
class PadND(_Movement):
    """Pad (or, with negative amounts, crop) every axis of the whole array (ONNX ``Pad``):
    ``pads = (begin₀ … begin_{r−1}, end₀ … end_{r−1})``, ``mode`` ``"constant"`` (with
    ``value``), ``"reflect"``, ``"edge"`` or ``"wrap"``, as ``np.pad``. Backward: the
    gradient of every output position is added to the input position it copied.

    >>> PadND((0, 0, 1, 0, 0, 2), mode="reflect").output_shape((3, 4))
    (3, 7)
    """

    def __init__(self, pads: Any, mode: str = "constant", value: float = 0.0, **kwargs: Any):
        super().__init__(**kwargs)
        self.pads = _axes_arg(pads, "pads")
        if len(self.pads) % 2:
            raise ValueError(f"pads must hold a begin and an end per axis; received "
                             f"pads={pads!r}")
        if mode not in _PAD_MODES:
            raise ValueError(f"mode must be one of {_PAD_MODES}; received mode={mode!r}")
        self.mode = mode
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            raise ValueError(f"value must be a number; received value={value!r}")
        self.value = float(value)
        r = len(self.pads) // 2
        self.per_sample = r == 0 or (self.pads[0] == 0 and self.pads[r] == 0)

    def output_shape(self, input_shape: Shape) -> Shape:
        whole = _whole(input_shape)
        r = len(self.pads) // 2
        if len(whole) != r:
            raise ValueError(f"{self.display_name}: pads={self.pads} fit inputs of rank {r}; "
                             f"received input shape (N, {', '.join(map(str, input_shape))})")
        out = []
        for a, n in enumerate(whole):
            m = None if n is None else n + self.pads[a] + self.pads[r + a]
            if m is not None and (m < 0 or (self.mode != "constant" and n == 0 and m > 0)):
                raise ValueError(f"{self.display_name}: axis {a} of size {n} cannot be "
                                 f"padded by {self.pads[a]}, {self.pads[r + a]}")
            out.append(m)
        return _sample_of(tuple(out), self.display_name)

    def fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        self.check_input(x)
        r = x.ndim
        sources = [pad_sources(n, self.pads[a], self.pads[r + a], self.mode)
                   for a, n in enumerate(x.shape)]
        y = x
        for a, src in enumerate(sources):  # one axis at a time, as np.pad
            if self.pads[a] == 0 and self.pads[r + a] == 0:
                continue
            y = np.take(y, np.maximum(src, 0), axis=a)
            if self.mode == "constant" and (src < 0).any():
                index: list[Any] = [slice(None)] * r
                index[a] = src < 0
                y[tuple(index)] = self.value
        call.cache = (x.shape, sources)
        return np.ascontiguousarray(y)

    def bprop(self, dy: np.ndarray, call: Call, accumulate: bool = False) -> np.ndarray | None:
        if not self._need(call):
            return None
        shape, sources = call.cache
        r = len(shape)
        g = dy
        for a in reversed(range(r)):
            src = sources[a]
            if self.pads[a] == 0 and self.pads[r + a] == 0:
                continue
            out_shape = list(g.shape)
            out_shape[a] = shape[a]
            acc = np.zeros(out_shape, dtype=dy.dtype)
            keep = src >= 0
            np.add.at(np.moveaxis(acc, a, 0), src[keep], np.moveaxis(g, a, 0)[keep])
            g = acc
        return np.ascontiguousarray(g)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "pads": list(self.pads), "mode": self.mode,
                "value": self.value}
