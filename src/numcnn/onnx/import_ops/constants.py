"""Constants, sizes and lookups: ``Constant``, ``ConstantOfShape``, ``Identity``,
``Shape``, ``Cast``, ``Gather`` and ``Slice``.

On constants they are computed at import (the folders below), including the ``Shape`` of
a tensor: its sizes are known at import except those free in the file (the batch size, a
sequence length), which become placeholders (:meth:`Context.placeholder`) that ``Reshape``
reads as "keep that axis" and ``ConstantOfShape`` as a ``Fill`` layer. On tensors:
``ShapeOf`` (a ``Shape`` that is an output), ``Gather`` (constant indices), ``Embedding``
(a constant table indexed by a tensor), ``Slice`` (constant bounds); ``Cast`` between float
types is the identity.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...layers import Embedding, Gather, Slice
from ..import_checks import DTYPES
from ..import_values import Const, Context, Tensor, _has_placeholder
from .common import converter, folder
from .shapes import _ints


# ------------------------------------------------------------------------- constants
@folder("Constant")
def constant(ctx: Context, node: Any, arrays: list) -> list:
    for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        v = ctx.attr(node, key, None)
        if v is not None:
            if key == "value":
                return [v]
            dt = np.float32 if "float" in key else np.int64
            return [np.asarray(v, dtype=dt)]
    raise ctx.fail(node, "needs a numeric value attribute (strings and sparse tensors are not "
                         "supported)")


@folder("ConstantOfShape")
def constant_of_shape(ctx: Context, node: Any, arrays: list) -> list:
    shape = _ints(ctx, node, arrays[0], "the shape")
    value = ctx.attr(node, "value", np.zeros(1, np.float32), "tensor")
    if value.size != 1:
        raise ctx.fail(node, f"value must hold one element; received {value.size}")
    places = [ctx.decode(d) for d in shape]
    refs = {id(p[0].sym): p[0] for p in places if p is not None}
    if len(refs) == 1 and all(d >= 0 or p is not None for d, p in zip(shape, places)):
        # sizes known at run time, as torch.zeros(2, x.size(0), H): a Fill layer on x
        ref = next(iter(refs.values()))
        fill = [d if p is None else -(p[1] + 1) for d, p in zip(shape, places)]
        v = value.reshape(-1)[0]
        return [Const(np.zeros(0, value.dtype), "folded", source=("fill", fill, float(v), ref))]
    if any(d < 0 for d in shape):
        raise ctx.fail(node, "the shape depends on sizes known only at run time, of more than "
                             f"one tensor: {[d if d >= 0 else '?' for d in shape]}")
    if np.prod(shape, dtype=float) * value.itemsize > ctx.budget:
        raise ctx.fail(node, f"the shape {shape} is larger than the budget")
    return [np.full(shape, value.reshape(-1)[0], dtype=value.dtype)]


@folder("Identity")
def identity_fold(ctx: Context, node: Any, arrays: list) -> list:
    return [arrays[0]]


@converter("Identity")
def identity(ctx: Context, node: Any) -> list:
    return [ctx.value(node, 0)]


def _dims(ctx: Context, t: Tensor) -> list[int]:
    """A tensor's sizes as known at import: placeholders for axis 0 and the free sizes."""
    if t.rank == 0:
        return []
    return [ctx.placeholder(t, 0)] + [ctx.placeholder(t, a + 1) if d is None else int(d)
                                      for a, d in enumerate(t.shape)]


def _shape_slice(ctx: Context, node: Any) -> slice:
    if ctx.opset < 15:
        return slice(None)
    return slice(ctx.attr(node, "start", 0, "int"), ctx.attr(node, "end", None, "int"))


@folder("Shape")
def shape_fold(ctx: Context, node: Any, arrays: list) -> list:
    return [np.array(np.shape(arrays[0]), dtype=np.int64)[_shape_slice(ctx, node)]]


@converter("Shape")
def shape(ctx: Context, node: Any) -> list:
    t = ctx.tensor(node, 0)
    sl = _shape_slice(ctx, node)
    dims = np.array(_dims(ctx, t), dtype=np.int64)[sl]
    return [Const(dims, "folded", source=(t, sl.start or 0, sl.stop))]


@folder("Cast")
def cast(ctx: Context, node: Any, arrays: list) -> list:
    to = ctx.attr(node, "to", None, "int")
    if to not in DTYPES:
        raise ctx.fail(node, f"cast to element type {to} is not supported")
    a = arrays[0]
    if _has_placeholder(a) and DTYPES[to] != np.int64:
        raise ctx.fail(node, "a shape that depends on the batch size cannot change type")
    return [a.astype(DTYPES[to])]


@converter("Cast")
def cast_tensor(ctx: Context, node: Any) -> list:
    t = ctx.tensor(node, 0)
    to = DTYPES.get(ctx.attr(node, "to", None, "int"))
    if to is None:
        raise ctx.fail(node, "cast to an unsupported element type")
    if np.dtype(to).kind != "f" and t.etype.kind == "f":
        raise ctx.fail(node, "a cast from floats to integers inside the graph is not supported")
    return [Tensor(t.sym, t.rank, t.batch, to, t.baxis)]  # numcnn carries every type in float


@folder("Gather")
def gather_fold(ctx: Context, node: Any, arrays: list) -> list:
    data, idx = arrays
    axis = ctx.attr(node, "axis", 0, "int")
    axis = axis + data.ndim if axis < 0 else axis
    n = data.shape[axis]
    idx = np.asarray(idx).astype(np.int64)
    if idx.size and (idx.max() >= n or idx.min() < -n):
        raise ctx.fail(node, f"indices out of range for an axis of size {n}")
    return [np.take(data, np.where(idx < 0, idx + n, idx), axis=axis)]


@converter("Gather")
def gather(ctx: Context, node: Any) -> list:
    if not isinstance(ctx.value(node, 0), Tensor):
        return _embedding(ctx, node)
    x = ctx.tensor(node, 0)
    idx = np.asarray(ctx.const(node, 1, "the indices")).astype(np.int64)
    axis = ctx.attr(node, "axis", 0, "int")
    r = max(x.rank, 1)
    axis = axis + r if axis < 0 else axis
    rank = x.rank - 1 + idx.ndim
    if rank == 0:  # one element of a vector: kept as shape (1,)
        return ctx.apply(Gather(idx.reshape(1), axis), x, node, rank=0, baxis=None)
    b = x.baxis  # axes after the gathered one shift by the indices' rank − 1
    baxis = None if b is None or b == axis else b if b < axis else b + idx.ndim - 1
    return ctx.apply(Gather(idx, axis), x, node, rank=rank, baxis=baxis)


def _slice_args(ctx: Context, node: Any, arrays: list, rank: int) -> tuple[list, ...]:
    """A ``Slice``'s starts, ends, axes (normalised to ``0 … rank − 1``) and steps: the
    attributes before opset 10, constant inputs after."""
    if ctx.opset < 10:
        starts, ends = ctx.attr(node, "starts", [], "ints"), ctx.attr(node, "ends", [], "ints")
        axes, steps = ctx.attr(node, "axes", None, "ints"), None
    else:
        starts, ends = (_ints(ctx, node, arrays[k], n) for k, n in ((1, "starts"), (2, "ends")))
        axes = None if len(arrays) < 4 or arrays[3] is None else _ints(ctx, node, arrays[3],
                                                                       "axes")
        steps = None if len(arrays) < 5 or arrays[4] is None else _ints(ctx, node, arrays[4],
                                                                        "steps")
    axes = list(range(len(starts))) if axes is None else list(axes)
    steps = [1] * len(starts) if steps is None else list(steps)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ctx.fail(node, f"starts, ends, axes and steps differ in length: {len(starts)}, "
                             f"{len(ends)}, {len(axes)}, {len(steps)}")
    if any(not -rank <= a < rank for a in axes) or len({a % rank for a in axes}) != len(axes):
        raise ctx.fail(node, f"axes {axes} are not distinct axes of a rank-{rank} input")
    if 0 in steps:
        raise ctx.fail(node, "a slice step of 0")
    return list(starts), list(ends), [a % rank for a in axes], steps


@folder("Slice")
def slice_fold(ctx: Context, node: Any, arrays: list) -> list:
    data = arrays[0]
    starts, ends, axes, steps = _slice_args(ctx, node, arrays, data.ndim)
    index: list[Any] = [slice(None)] * data.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        index[a] = slice(s, e, st)  # NumPy clamps as ONNX does
    return [data[tuple(index)]]


@converter("Slice")
def slice_tensor(ctx: Context, node: Any) -> list:
    x = ctx.tensor(node, 0)
    if x.rank == 0:
        raise ctx.fail(node, "cannot slice a scalar")
    arrays = [None] + [ctx.const(node, k, n) for k, n in
                       ((1, "starts"), (2, "ends"), (3, "axes"), (4, "steps"))] \
        if ctx.opset >= 10 else [None]
    starts, ends, axes, steps = _slice_args(ctx, node, arrays, x.rank)
    # the batch axis stays where it is unless the slice may cut it
    b = x.baxis
    cut = b is not None and b in axes and (starts[axes.index(b)], steps[axes.index(b)]) != (0, 1)
    cut = cut or (b is not None and b in axes and ends[axes.index(b)] < 2 ** 62)
    return ctx.apply(Slice(starts, ends, axes, steps), x, node, rank=x.rank,
                     baxis=None if cut else b)


def _embedding(ctx: Context, node: Any) -> list:
    """Rows of a constant table picked by computed indices: numcnn's ``Embedding``."""
    table = np.asarray(ctx.value(node, 0).value)
    axis = ctx.attr(node, "axis", 0, "int")
    if table.ndim != 2 or axis not in (0, -2) or table.dtype.kind != "f":
        raise ctx.fail(node, "gathering from a constant by computed indices is supported for "
                             "an embedding table (a 2-D float matrix, axis 0) only")
    ids = ctx.tensor(node, 1)
    V, D = table.shape
    layer = Embedding(V, D, trainable=ctx.origin(node, 0) == "initializer")
    return ctx.apply(layer, ids, node, {"W": table}, rank=ids.rank + 1, etype=table.dtype)
