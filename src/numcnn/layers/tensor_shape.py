"""Layers that move values between axes of the *whole* array, batch axis included:
``Transpose``, ``Squeeze``, ``Unsqueeze``, ``TensorReshape`` and ``TensorConcat`` (and, in
:mod:`.tensor_index`, ``Gather`` and ``PadND``).

numcnn's ``Permute``, ``Reshape``, ``Concatenate`` and ``Pad2D`` act on each sample and
keep the batch axis first. An ONNX graph has no batch axis: its ``Transpose`` may move axis
0, its ``Concat`` may join along it, its ``Reshape`` may fold it into another. These layers
take axes of the whole array (axis 0 is the batch axis of a numcnn array) and so compute
exactly what the ONNX operator computes; per-sample shapes they cannot know (a batch axis
moved inside a sample) are ``None``. ``per_sample`` is True only when axis 0 stays put.
Every backward pass is the adjoint data movement: the inverse permutation, a reshape back,
a split.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .arithmetic import check_inputs
from .base import LAYERS, Call, Layer
from .node import Shape


def _axes_arg(axes: Any, what: str) -> tuple[int, ...]:
    if not isinstance(axes, (tuple, list)) or not all(
            isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in axes):
        raise ValueError(f"{what} must be a tuple of ints; received {what}={axes!r}")
    return tuple(int(a) for a in axes)


def _whole(per_sample: Shape) -> tuple:
    return (None,) + tuple(per_sample)


def _sample_of(whole: tuple, what: str) -> Shape:
    if not whole:
        raise ValueError(f"{what}: the result has no axis left for the batch")
    return tuple(whole[1:])


class _Movement(Layer):
    """A data movement whose gradient needs no parameters."""

    def _need(self, call: Call) -> bool:
        return bool(call.need_dx)


@LAYERS.register("Transpose")
class Transpose(_Movement):
    """``y = x.transpose(perm)`` over the whole array (ONNX ``Transpose``); ``perm[0] = 0``
    keeps the batch axis first (then it is :class:`Permute`). Backward: the inverse
    permutation.

    >>> Transpose((1, 0, 2)).output_shape((5, 3))
    (None, 3)
    """

    def __init__(self, perm: Any, **kwargs: Any):
        super().__init__(**kwargs)
        self.perm = _axes_arg(perm, "perm")
        if sorted(self.perm) != list(range(len(self.perm))):
            raise ValueError(f"perm must be a permutation of 0 … rank−1; received perm={perm!r}")
        self.per_sample = self.perm[0] == 0

    def output_shape(self, input_shape: Shape) -> Shape:
        whole = _whole(input_shape)
        if len(whole) != len(self.perm):
            raise ValueError(f"{self.display_name}: perm={self.perm} needs inputs of rank "
                             f"{len(self.perm)}; received input shape (N, "
                             f"{', '.join(map(str, input_shape))})")
        return _sample_of(tuple(whole[p] for p in self.perm), self.display_name)

    def fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        self.check_input(x)
        return np.ascontiguousarray(x.transpose(self.perm))

    def bprop(self, dy: np.ndarray, call: Call, accumulate: bool = False) -> np.ndarray | None:
        if not self._need(call):
            return None
        return np.ascontiguousarray(dy.transpose(tuple(int(a) for a in np.argsort(self.perm))))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "perm": list(self.perm)}


@LAYERS.register("Squeeze")
class Squeeze(_Movement):
    """Remove axes of size 1 (whole-array axes, negative from the end; ONNX ``Squeeze``).
    Backward: ``dy`` reshaped back.

    >>> Squeeze((2,)).output_shape((3, 1, 4))
    (3, 4)
    """

    def __init__(self, axes: Any, **kwargs: Any):
        super().__init__(**kwargs)
        self.axes = _axes_arg(axes, "axes")
        if not self.axes:
            raise ValueError("axes must name at least one axis")

    def _norm(self, rank: int) -> tuple[int, ...]:
        out = sorted({a + rank if a < 0 else a for a in self.axes})
        if len(out) != len(self.axes) or out[0] < 0 or out[-1] >= rank:
            raise ValueError(f"{self.display_name}: axes={self.axes} do not fit rank {rank}")
        return tuple(out)

    def output_shape(self, input_shape: Shape) -> Shape:
        whole = _whole(input_shape)
        axes = self._norm(len(whole))
        for a in axes:
            if whole[a] not in (None, 1):
                raise ValueError(f"{self.display_name}: axis {a} has size {whole[a]}, not 1; "
                                 f"input shape (N, {', '.join(map(str, input_shape))})")
        self.per_sample = 0 not in axes
        return _sample_of(tuple(d for a, d in enumerate(whole) if a not in axes),
                          self.display_name)

    def fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        self.check_input(x)
        axes = self._norm(x.ndim)
        if any(x.shape[a] != 1 for a in axes):
            raise ValueError(f"{self.display_name}: cannot squeeze axes {axes} of an array of "
                             f"shape {x.shape}")
        call.cache = x.shape
        return x.reshape(tuple(n for a, n in enumerate(x.shape) if a not in axes))

    def bprop(self, dy: np.ndarray, call: Call, accumulate: bool = False) -> np.ndarray | None:
        return dy.reshape(call.cache) if self._need(call) else None

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axes": list(self.axes)}


@LAYERS.register("Unsqueeze")
class Unsqueeze(Squeeze):
    """Insert axes of size 1 at ``axes`` of the *output* (ONNX ``Unsqueeze``; axis 0 makes
    the batch axis part of each sample).

    >>> Unsqueeze((1, -1)).output_shape((3, 4))
    (1, 3, 4, 1)
    """

    def output_shape(self, input_shape: Shape) -> Shape:
        whole = list(_whole(input_shape))
        axes = self._norm(len(whole) + len(self.axes))
        for a in axes:
            whole.insert(a, 1)
        self.per_sample = 0 not in axes
        return _sample_of(tuple(whole), self.display_name)

    def fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        self.check_input(x)
        shape = list(x.shape)
        for a in self._norm(x.ndim + len(self.axes)):
            shape.insert(a, 1)
        call.cache = x.shape
        return x.reshape(shape)


@LAYERS.register("TensorReshape")
class TensorReshape(_Movement):
    """Reshape the whole array (ONNX ``Reshape``): ``shape`` may hold ``0`` (keep that axis's
    size, unless ``allowzero``) and one ``-1`` (inferred). ``shape[0] = 0`` keeps the batch
    axis (then it is :class:`Reshape`). Backward: ``dy`` reshaped back.

    >>> TensorReshape((0, -1)).output_shape((2, 3, 4))
    (24,)
    >>> TensorReshape((-1, 4)).output_shape((2, 3, 4))
    (4,)
    """

    def __init__(self, shape: Any, allowzero: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.shape = _axes_arg(shape, "shape")
        if any(d < -1 for d in self.shape) or self.shape.count(-1) > 1:
            raise ValueError(f"shape entries must be ≥ −1 with at most one −1; received "
                             f"shape={shape!r}")
        self.allowzero = bool(allowzero)
        if self.allowzero and 0 in self.shape and -1 in self.shape:
            raise ValueError("with allowzero a shape cannot hold both 0 and −1")
        self.per_sample = bool(self.shape) and self.shape[0] == 0 and not self.allowzero

    def _target(self, whole: tuple) -> tuple:
        out = [whole[a] if d == 0 and not self.allowzero else d
               for a, d in enumerate(self.shape)]
        if -1 in out:
            known = [d for d in out if d != -1]
            total = None if None in whole else math.prod(whole)
            if total is not None and None not in known:
                rest = math.prod(known)
                if rest == 0 or total % rest:
                    raise ValueError(f"{self.display_name}: cannot reshape {whole} into "
                                     f"{self.shape}")
                out[out.index(-1)] = total // rest
            elif self.shape and self.shape[0] == 0 and not self.allowzero and None not in \
                    whole[1:] and None not in known[1:]:
                rest = math.prod(known[1:])  # the batch axis is kept: the rest is known
                out[out.index(-1)] = math.prod(whole[1:]) // rest if rest else 0
            else:
                out[out.index(-1)] = None
        elif None not in whole and None not in out and math.prod(whole) != math.prod(out):
            raise ValueError(f"{self.display_name}: cannot reshape {whole} into {self.shape}")
        return tuple(out)

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(self.shape) > len(input_shape) + 1 and 0 in self.shape[len(input_shape) + 1:] \
                and not self.allowzero:
            raise ValueError(f"{self.display_name}: shape={self.shape} copies an axis the "
                             f"input does not have")
        return _sample_of(self._target(_whole(input_shape)), self.display_name)

    def fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        self.check_input(x)
        call.cache = x.shape
        return x.reshape(self._target(x.shape))

    def bprop(self, dy: np.ndarray, call: Call, accumulate: bool = False) -> np.ndarray | None:
        return dy.reshape(call.cache) if self._need(call) else None

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "shape": list(self.shape), "allowzero": self.allowzero}


@LAYERS.register("TensorConcat")
class TensorConcat(_Movement):
    """Join tensors along a whole-array ``axis``, axis 0 included (ONNX ``Concat``).
    Backward: ``dy`` split back into the inputs' parts.

    >>> TensorConcat(0).output_shape([(3,), (3,)])
    (3,)
    """

    def __init__(self, axis: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.axis = _axes_arg((axis,), "axis")[0]
        self.per_sample = self.axis != 0

    def output_shape(self, input_shape: Any) -> Shape:
        if not isinstance(input_shape, list) or not input_shape:
            raise ValueError(f"{self.display_name}: expected a list of input shapes; received "
                             f"{input_shape!r}")
        wholes = [_whole(s) for s in input_shape]
        rank = len(wholes[0])
        a = self.axis + rank if self.axis < 0 else self.axis
        if not 0 <= a < rank or any(len(w) != rank for w in wholes):
            raise ValueError(f"{self.display_name}: axis={self.axis} and inputs of shapes "
                             f"{input_shape} do not fit")
        out = list(wholes[0])
        for w in wholes[1:]:
            for i, (p, q) in enumerate(zip(out, w)):
                if i != a and p is not None and q is not None and p != q:
                    raise ValueError(f"{self.display_name}: inputs must match except on axis "
                                     f"{self.axis}; received {input_shape}")
                if i != a and p is None:
                    out[i] = q
        sizes = [w[a] for w in wholes]
        out[a] = None if None in sizes else sum(sizes)
        return _sample_of(tuple(out), self.display_name)

    def fprop(self, xs: list[np.ndarray], call: Call) -> np.ndarray:
        check_inputs(self, xs)
        a = self.axis % xs[0].ndim
        call.cache = (a, [x.shape[a] for x in xs])
        return np.concatenate(xs, axis=a)

    def bprop(self, dy: np.ndarray, call: Call, accumulate: bool = False) -> list:
        a, sizes = call.cache
        need = call.need_dx
        flags = list(need) if isinstance(need, (list, tuple)) else [need] * len(sizes)
        parts = np.split(dy, np.cumsum(sizes)[:-1], axis=a)
        return [p if f else None for p, f in zip(parts, flags)]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axis": self.axis}
