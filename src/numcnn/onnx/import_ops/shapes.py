"""Shape and data movement: ``Flatten``, ``Reshape``, ``Transpose``, ``Concat``, ``Squeeze``,
``Unsqueeze``, ``Pad``, ``Identity``, ``Constant``, ``ConstantOfShape``, ``Shape``,
``Gather``, ``Cast`` and ``Slice`` (the last two on constants).

On tensors these become numcnn's per-sample layers where axis 0 stays the batch axis
(``Flatten``, ``Reshape``, ``Permute``, ``Concatenate``, ``Pad2D``) and the whole-array
layers otherwise (``TensorReshape``, ``Transpose``, ``TensorConcat``, ``Squeeze``,
``Unsqueeze``, ``PadND``, ``Gather``). On constants they are computed at import (the
folders below), including the ``Shape`` of a tensor: its sizes are known at import except
the batch size, which stays the placeholder ``BATCH`` until a ``Reshape`` reads it as "keep
axis 0".
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...layers import (
    Concatenate,
    Embedding,
    Flatten,
    Gather,
    Pad2D,
    PadND,
    Permute,
    Reshape,
    Squeeze,
    TensorConcat,
    TensorReshape,
    Transpose,
    Unsqueeze,
)
from ..import_checks import DTYPES
from ..importer import Const, Context, Tensor, _has_placeholder
from .common import converter, folder


def _ints(ctx: Context, node: Any, value: Any, what: str) -> list[int]:
    a = np.asarray(value)
    if a.dtype.kind not in "iu" or a.ndim > 1:
        raise ctx.fail(node, f"{what} must be a 1-D integer tensor; received {a.dtype} "
                             f"{a.shape}")
    return [int(v) for v in a.reshape(-1)]


def _axes(ctx: Context, node: Any, k: int, what: str = "axes") -> list[int] | None:
    """An axes list: the attribute before opset 13 (18 for Pad), input ``k`` after."""
    if ctx.opset >= 13 and node.op_type in ("Squeeze", "Unsqueeze"):
        v = ctx.const(node, k, what)
        return None if v is None else _ints(ctx, node, v, what)
    return ctx.attr(node, "axes", None, "ints")


def _norm(ctx: Context, node: Any, axes: list[int], rank: int) -> list[int]:
    out = sorted({a + rank if a < 0 else a for a in axes})
    if len(out) != len(axes) or (out and (out[0] < 0 or out[-1] >= rank)):
        raise ctx.fail(node, f"axes {axes} do not fit rank {rank}")
    return out


def _alias(t: Tensor, rank: int) -> Tensor:
    return Tensor(t.sym, rank, t.batch, t.etype, t.baxis if rank else None)


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


@folder("Slice")
def slice_fold(ctx: Context, node: Any, arrays: list) -> list:
    data = arrays[0]
    if ctx.opset < 10:
        starts, ends = ctx.attr(node, "starts", [], "ints"), ctx.attr(node, "ends", [], "ints")
        axes, steps = ctx.attr(node, "axes", None, "ints"), None
    else:
        starts, ends = (_ints(ctx, node, arrays[k], n) for k, n in ((1, "starts"), (2, "ends")))
        axes = None if len(arrays) < 4 or arrays[3] is None else _ints(ctx, node, arrays[3],
                                                                       "axes")
        steps = None if len(arrays) < 5 or arrays[4] is None else _ints(ctx, node, arrays[4],
                                                                        "steps")
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    index: list[Any] = [slice(None)] * data.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        if st == 0:
            raise ctx.fail(node, "a slice step of 0")
        index[a % data.ndim] = slice(s, e, st)  # NumPy clamps as ONNX does
    return [data[tuple(index)]]


# ----------------------------------------------------------------------- movement
@folder("Flatten")
def flatten_fold(ctx: Context, node: Any, arrays: list) -> list:
    a = arrays[0]
    axis = ctx.attr(node, "axis", 1, "int")
    axis = axis + a.ndim if axis < 0 else axis
    return [a.reshape(int(np.prod(a.shape[:axis])), -1)]


@converter("Flatten")
def flatten(ctx: Context, node: Any) -> list:
    x = ctx.tensor(node, 0)
    axis = ctx.attr(node, "axis", 1, "int")
    axis = axis + x.rank if axis < 0 else axis
    if not 0 <= axis <= x.rank:
        raise ctx.fail(node, f"axis {axis} does not fit rank {x.rank}")
    if axis == 1:
        return ctx.apply(Flatten(), x, node, rank=2)
    if axis == 0:
        return ctx.apply(TensorReshape((1, -1)), x, node, rank=2, baxis=None)
    tail = x.shape[axis - 1:]
    if None in tail:
        raise ctx.fail(node, f"flattening from axis {axis} needs the sizes {tail} to be known")
    return ctx.apply(TensorReshape((-1, int(np.prod(tail)))), x, node, rank=2, baxis=None)


def _reshape_target(ctx: Context, node: Any) -> list[int]:
    if ctx.opset < 5:
        shape = ctx.attr(node, "shape", None, "ints")
        if shape is None:
            raise ctx.fail(node, "needs the shape attribute")
        return list(shape)
    return _ints(ctx, node, ctx.const(node, 1, "the target shape"), "the target shape")


@folder("Reshape")
def reshape_fold(ctx: Context, node: Any, arrays: list) -> list:
    a = arrays[0]
    shape = _reshape_target(ctx, node)
    allowzero = ctx.opset >= 14 and ctx.attr(node, "allowzero", 0, "int")
    shape = [a.shape[k] if d == 0 and not allowzero else d for k, d in enumerate(shape)]
    return [a.reshape(shape)]


@converter("Reshape")
def reshape(ctx: Context, node: Any) -> list:
    x = ctx.tensor(node, 0)
    shape = _reshape_target(ctx, node)
    allowzero = bool(ctx.opset >= 14 and ctx.attr(node, "allowzero", 0, "int"))
    for k, d in enumerate(shape):
        p = ctx.decode(d)
        if p is None:
            continue
        t, axis = p  # a size of some tensor, x.size(k): copy x's axis k where it is that
        same = t.sym is x.sym or (axis == 0 and t.batch0 and t.batch == x.batch)
        if same and axis == k and not (ctx.opset >= 14 and ctx.attr(node, "allowzero", 0)):
            shape[k] = 0
        else:
            raise ctx.fail(node, "the target shape depends on sizes known only at run time "
                                 f"(entry {k})")
    if not shape:
        return ctx.apply(TensorReshape((1,)), x, node, rank=0, baxis=None)
    # the batch axis survives when it and every axis before it are copied (0 entries)
    b = x.baxis
    baxis = b if b is not None and not allowzero and len(shape) > b and all(
        d == 0 for d in shape[:b + 1]) else None
    rest_known = None not in x.shape and all(d > 0 for d in shape[1:])
    if shape[0] == -1 and x.baxis == 0 and rest_known and shape[1:] and \
            int(np.prod(shape[1:])) == int(np.prod(x.shape)):
        # (-1, 3456) from an exporter that wrote the sizes out: −1 is the batch
        return ctx.apply(Reshape(tuple(shape[1:])), x, node, rank=len(shape), baxis=0)
    if shape[0] == 0 and not allowzero and x.rank >= 1:
        rest = [x.shape[k] if d == 0 and k < len(x.shape) else d
                for k, d in enumerate(shape[1:])]
        if all(d is not None and (d > 0 or d == -1) for d in rest) and rest.count(-1) <= 1 \
                and rest:
            return ctx.apply(Reshape(tuple(rest)), x, node, rank=len(shape), baxis=baxis)
    return ctx.apply(TensorReshape(tuple(shape), allowzero), x, node, rank=len(shape),
                     baxis=baxis)


@folder("Transpose")
def transpose_fold(ctx: Context, node: Any, arrays: list) -> list:
    perm = ctx.attr(node, "perm", None, "ints")
    return [np.transpose(arrays[0], perm)]


@converter("Transpose")
def transpose(ctx: Context, node: Any) -> list:
    x = ctx.tensor(node, 0)
    perm = ctx.attr(node, "perm", list(range(x.rank))[::-1], "ints")
    if sorted(perm) != list(range(x.rank)):
        raise ctx.fail(node, f"perm {perm} is not a permutation of the {x.rank} axes")
    if x.rank <= 1 or perm == sorted(perm):
        return [x]
    baxis = None if x.baxis is None else perm.index(x.baxis)  # where the batch axis goes
    if perm[0] == 0:
        return ctx.apply(Permute(tuple(perm[1:])), x, node, baxis=baxis)
    return ctx.apply(Transpose(tuple(perm)), x, node, baxis=baxis)


@folder("Concat")
def concat_fold(ctx: Context, node: Any, arrays: list) -> list:
    axis = ctx.attr(node, "axis", None, "int")
    if axis is None:
        raise ctx.fail(node, "needs the axis attribute")
    return [np.concatenate([a for a in arrays if a is not None], axis=axis)]


@converter("Concat")
def concat(ctx: Context, node: Any) -> list:
    axis = ctx.attr(node, "axis", 1 if ctx.opset < 4 else None, "int")
    if axis is None:
        raise ctx.fail(node, "needs the axis attribute")
    ts = [ctx.tensor(node, k) for k in range(len(node.input)) if ctx.has(node, k)]
    rank = ts[0].rank
    if rank == 0 or any(t.rank != rank for t in ts):
        raise ctx.fail(node, f"inputs must have one rank ≥ 1; received {[t.rank for t in ts]}")
    axis = axis + rank if axis < 0 else axis
    if not 0 <= axis < rank:
        raise ctx.fail(node, f"axis {axis} does not fit rank {rank}")
    if len(ts) == 1:
        return [ts[0]]
    same = len({(t.batch, t.baxis) for t in ts}) == 1 and ts[0].baxis not in (None, axis)
    baxis = ts[0].baxis if same else None
    if axis >= 1 and all(t.batch0 for t in ts):
        return ctx.apply(Concatenate(axis), ts, node, rank=rank, baxis=baxis)
    return ctx.apply(TensorConcat(axis), ts, node, rank=rank, baxis=baxis)


@folder("Squeeze")
def squeeze_fold(ctx: Context, node: Any, arrays: list) -> list:
    axes = _axes(ctx, node, 1)
    a = arrays[0]
    if axes is None:
        return [np.squeeze(a)]
    return [np.squeeze(a, axis=tuple(_norm(ctx, node, axes, a.ndim)))]


@converter("Squeeze")
def squeeze(ctx: Context, node: Any) -> list:
    x = ctx.tensor(node, 0)
    axes = _axes(ctx, node, 1)
    if axes is None:
        axes = [k + 1 for k, d in enumerate(x.shape) if d == 1]
        if not axes:
            return [x]
    axes = _norm(ctx, node, axes, x.rank)
    rank = x.rank - len(axes)
    if rank == 0:  # down to a scalar: keep one axis of size 1
        if x.rank == 1:
            return [_alias(x, 0)]
        return ctx.apply(Squeeze(tuple(axes[1:])), x, node, rank=0, baxis=None)
    b = x.baxis
    baxis = None if b is None or b in axes else b - sum(a < b for a in axes)
    return ctx.apply(Squeeze(tuple(axes)), x, node, rank=rank, baxis=baxis)


@folder("Unsqueeze")
def unsqueeze_fold(ctx: Context, node: Any, arrays: list) -> list:
    axes = _axes(ctx, node, 1)
    a = arrays[0]
    if axes is None:
        raise ctx.fail(node, "needs axes")
    for ax in _norm(ctx, node, axes, a.ndim + len(axes)):
        a = np.expand_dims(a, ax)
    return [a]


@converter("Unsqueeze")
def unsqueeze(ctx: Context, node: Any) -> list:
    x = ctx.tensor(node, 0)
    axes = _axes(ctx, node, 1)
    if not axes:
        raise ctx.fail(node, "needs axes")
    rank = x.rank + len(axes)
    axes = _norm(ctx, node, axes, rank)
    if x.rank == 0:  # a scalar, carried as (1,): already one axis of size 1
        if rank == 1:
            return [_alias(x, 1)]
        return ctx.apply(TensorReshape((1,) * rank), x, node, rank=rank, baxis=None)
    baxis = x.baxis
    if baxis is not None:  # the input's axes keep their order among the new ones
        kept = [a for a in range(rank) if a not in axes]
        baxis = kept[baxis]
    return ctx.apply(Unsqueeze(tuple(axes)), x, node, rank=rank, baxis=baxis)


def _pad_args(ctx: Context, node: Any, rank: int) -> tuple[list[int], str, float]:
    mode = ctx.attr(node, "mode", "constant", "str")
    if ctx.opset < 11:
        pads = ctx.attr(node, "pads" if ctx.opset >= 2 else "paddings", None, "ints")
        value = ctx.attr(node, "value", 0.0, "float")
        if pads is None:
            raise ctx.fail(node, "needs the pads attribute")
    else:
        pads = _ints(ctx, node, ctx.const(node, 1, "the pads"), "pads")
        v = ctx.const(node, 2, "the constant value")
        value = 0.0 if v is None or np.size(v) == 0 else float(np.asarray(v).reshape(-1)[0])
        axes = ctx.const(node, 3, "the axes") if ctx.opset >= 18 else None
        if axes is not None:
            axes = _norm(ctx, node, _ints(ctx, node, axes, "axes"), rank)
            if len(pads) != 2 * len(axes):
                raise ctx.fail(node, f"pads must hold 2 entries per axis of {axes}")
            full = [0] * (2 * rank)
            for k, a in enumerate(axes):
                full[a], full[rank + a] = pads[k], pads[len(axes) + k]
            pads = full
    if len(pads) != 2 * rank:
        raise ctx.fail(node, f"pads must hold {2 * rank} ints for rank {rank}; received "
                             f"{len(pads)}")
    if mode not in ("constant", "reflect", "edge", "wrap"):
        raise ctx.fail(node, f"mode {mode!r} is not constant, reflect, edge or wrap")
    return pads, mode, value


@folder("Pad")
def pad_fold(ctx: Context, node: Any, arrays: list) -> list:
    a = arrays[0]
    pads, mode, value = _pad_args(ctx, node, a.ndim)
    if min(pads) < 0:
        raise ctx.fail(node, "negative pads on a constant are not supported")
    width = list(zip(pads[:a.ndim], pads[a.ndim:]))
    if mode == "constant":
        return [np.pad(a, width, constant_values=value)]
    return [np.pad(a, width, mode={"edge": "edge", "reflect": "reflect", "wrap": "wrap"}[mode])]


@converter("Pad")
def pad(ctx: Context, node: Any) -> list:
    x = ctx.tensor(node, 0)
    r = x.rank
    pads, mode, value = _pad_args(ctx, node, r)
    if mode == "constant" and r == 4 and pads[0] == pads[1] == pads[4] == pads[5] == 0 \
            and min(pads) >= 0 and np.isfinite(value):
        layer = Pad2D((pads[2], pads[6], pads[3], pads[7]), value)
        return ctx.apply(layer, x, node)
    return ctx.apply(PadND(tuple(pads), mode, value), x, node, rank=r)


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
