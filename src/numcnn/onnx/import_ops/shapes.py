"""Data movement: ``Flatten``, ``Reshape``, ``Transpose``, ``Concat``, ``Squeeze``,
``Unsqueeze``, ``Pad`` (the constants and sizes are in :mod:`.constants`).

On tensors these become numcnn's per-sample layers where axis 0 stays the batch axis
(``Flatten``, ``Reshape``, ``Permute``, ``Concatenate``, ``Pad2D``) and the whole-array
layers otherwise (``TensorReshape``, ``Transpose``, ``TensorConcat``, ``Squeeze``,
``Unsqueeze``, ``PadND``), following where the batch axis goes. On constants they are
computed at import (the folders below); a ``Reshape`` reads the placeholder of a measured
size as "keep that axis".
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...layers import (
    Concatenate,
    Flatten,
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
from ..import_values import Context, Tensor
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
