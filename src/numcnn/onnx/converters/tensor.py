"""Converters of the whole-array layers (the ONNX import's vocabulary, written back): their
axes are the whole array's, batch axis included, as ONNX's — so most are one operator —
and of the layers that are the identity in inference (activity penalties) or borrow another
layer's weights (``DenseTranspose``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...layers import (
    ActivityRegularization,
    Arithmetic,
    AxisSoftmax,
    Constant,
    Fill,
    FullLike,
    Gather,
    LogSoftmax,
    MatMul,
    Moments,
    PadND,
    Reduce,
    ShapeOf,
    Slice,
    SparsityPenalty,
    Squeeze,
    TensorConcat,
    TensorReshape,
    Transpose,
    Unsqueeze,
)
from ...layers.tensor_index import pad_sources
from ...layers.tied import DenseTranspose
from . import register
from .graph import INT64_MAX, INT64_MIN, LayerContext

_BINARY = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "pow": "Pow"}


def _rank(ctx: LayerContext, k: int = 0) -> int:
    return len(ctx.in_shapes[k]) + 1


def _positive(axes: Any, rank: int) -> list[int]:
    return [a + rank if a < 0 else a for a in axes]


@register(Arithmetic, ("Add", "Sub", "Mul", "Div", "Pow", "Sign", "Abs", "Floor"),
          notes="NumPy/ONNX broadcasting; `truncate` as `Sign(y)·Floor(Abs(y))`")
def arithmetic(ctx: LayerContext) -> None:
    layer = ctx.layer
    if layer.constant_shape is None:
        a, b = ctx.inputs[:2]
    else:
        c = ctx.param("c", lambda: layer.params["c"])
        a, b = (c, ctx.inputs[0]) if layer.constant_first else (ctx.inputs[0], c)
    if not layer.truncate:
        ctx.op(_BINARY[layer.op], [a, b], ctx.out)
        return
    y = ctx.op(_BINARY[layer.op], [a, b], main=True)
    mag = ctx.op("Floor", [ctx.op("Abs", [y])])
    ctx.op("Mul", [ctx.op("Sign", [y]), mag], ctx.out)


@register(MatMul, ("MatMul",))
def matmul(ctx: LayerContext) -> None:
    layer = ctx.layer
    b = ctx.inputs[1] if layer.b_shape is None else ctx.param("B", lambda: layer.params["B"])
    ctx.op("MatMul", [ctx.inputs[0], b], ctx.out)


@register(DenseTranspose, ("Gemm", "MatMul", "Transpose"),
          notes="`Gemm` with `transB=1` on the owner's `W` (one initializer for both)")
def dense_transpose(ctx: LayerContext) -> None:
    """``y = x Wᵀ + b`` with the owning ``Dense``'s ``W``: the same initializer the owner's
    ``Gemm`` reads (registered under the owner), transposed by ``Gemm``."""
    layer, owner = ctx.layer, ctx.layer.owner
    W = ctx.g.cached((id(owner), "W"), f"{ctx.name}/owner_W", lambda: owner.params["W"])
    if layer.use_bias:
        ctx.op("Gemm", [ctx.inputs[0], W, ctx.param("b", lambda: layer.params["b"])],
               ctx.out, transB=1)
    elif ctx.opset >= 11:
        ctx.op("Gemm", [ctx.inputs[0], W], ctx.out, transB=1)
    else:
        ctx.op("MatMul", [ctx.inputs[0], ctx.op("Transpose", [W], perm=[1, 0])], ctx.out)


@register(Transpose, ("Transpose",))
def transpose(ctx: LayerContext) -> None:
    ctx.op("Transpose", [ctx.inputs[0]], ctx.out, perm=list(ctx.layer.perm))


@register(Squeeze, ("Squeeze",))
def squeeze(ctx: LayerContext) -> None:
    ctx.squeeze(ctx.inputs[0], _positive(ctx.layer.axes, _rank(ctx)), out=ctx.out)


@register(Unsqueeze, ("Unsqueeze",))
def unsqueeze(ctx: LayerContext) -> None:
    rank = _rank(ctx) + len(ctx.layer.axes)
    ctx.unsqueeze(ctx.inputs[0], _positive(ctx.layer.axes, rank), out=ctx.out)


@register(TensorReshape, ("Reshape",), notes="`allowzero` with a 0 in the shape: opset 14")
def tensor_reshape(ctx: LayerContext) -> None:
    layer = ctx.layer
    attrs = {}
    if layer.allowzero and 0 in layer.shape:
        ctx.require(14, "allowzero (a size 0 that is not a copied axis)")
        attrs["allowzero"] = 1
    ctx.op("Reshape", [ctx.inputs[0], ctx.ints(layer.shape, "shape")], ctx.out, **attrs)


@register(TensorConcat, ("Concat",))
def tensor_concat(ctx: LayerContext) -> None:
    axis = _positive([ctx.layer.axis], _rank(ctx))[0]
    ctx.op("Concat", ctx.inputs, ctx.out, axis=axis)


@register(Gather, ("Gather",))
def gather(ctx: LayerContext) -> None:
    """``Gather`` with the fixed indices, made non-negative where the axis's size is known
    (negative indices came with opset 11)."""
    layer = ctx.layer
    rank = _rank(ctx)
    axis = _positive([layer.axis], rank)[0]
    idx = layer.indices
    n = ((None,) + ctx.in_shapes[0])[axis]
    if n is not None:
        idx = np.where(idx < 0, idx + n, idx)
    elif (idx < 0).any():
        ctx.require(11, "negative indices on an axis of free size")
    ctx.op("Gather", [ctx.inputs[0], ctx.const(idx.astype(np.int64), "indices", np.int64)],
           ctx.out, axis=axis)


@register(Slice, ("Slice",), notes="open ends as ±2⁶³; steps other than 1: opset 10")
def slice_layer(ctx: LayerContext) -> None:
    layer = ctx.layer
    rank = _rank(ctx)
    ups = [st > 0 for st in layer.steps]
    starts = [(0 if up else -1) if s is None else s for s, up in zip(layer.starts, ups)]
    ends = [(INT64_MAX if up else INT64_MIN) if e is None else e
            for e, up in zip(layer.ends, ups)]
    steps = None if all(st == 1 for st in layer.steps) else list(layer.steps)
    ctx.slice(ctx.inputs[0], starts, ends, _positive(layer.axes, rank), steps, out=ctx.out)


@register(PadND, ("Pad", "Slice", "Gather"),
          notes="constant: `Slice` for negative amounts, then `Pad`; reflect, edge, wrap: "
                "`Gather` of each axis's source positions (known sizes; free ones: `Pad`, "
                "wrap from opset 19)")
def pad_nd(ctx: LayerContext) -> None:
    """np.pad over the whole array, negative amounts cropping. Constant padding commutes
    with the cropping. The other modes copy input positions — :func:`pad_sources` says
    which, the same function numcnn's forward uses — so each padded axis is one ``Gather``
    of those positions; on an axis of free size, ONNX's ``Pad`` in the same mode."""
    layer = ctx.layer
    r = len(layer.pads) // 2
    whole = (None,) + ctx.in_shapes[0]
    begin, end = layer.pads[:r], layer.pads[r:]
    x = ctx.inputs[0]
    moves = [a for a in range(r) if begin[a] or end[a]]
    if not moves:
        ctx.op("Identity", [x], ctx.out)
        return
    if layer.mode == "constant":
        crop = [a for a in moves if begin[a] < 0 or end[a] < 0]
        if crop:
            x = ctx.slice(x, [max(-begin[a], 0) for a in crop],
                          [end[a] if end[a] < 0 else INT64_MAX for a in crop], crop)
        pads = [max(p, 0) for p in layer.pads]
        if any(pads):
            ctx.pad(x, pads, layer.value, out=ctx.out)
        else:
            ctx.op("Identity", [x], ctx.out)
        return
    for k, a in enumerate(moves):
        out = ctx.out if k == len(moves) - 1 else None
        n = whole[a]
        if n is None:
            if begin[a] < 0 or end[a] < 0:
                raise ctx.fail(f"cropping axis {a} of free size in mode {layer.mode!r}")
            if layer.mode == "wrap":
                ctx.require(19, "wrap padding of an axis of free size")
            ctx.require(11, "padding an axis of free size")
            pads = [0] * (2 * r)
            pads[a], pads[r + a] = begin[a], end[a]
            x = ctx.op("Pad", [x, ctx.ints(pads, "pads")], out, mode=layer.mode)
            continue
        src = pad_sources(n, begin[a], end[a], layer.mode)
        x = ctx.op("Gather", [x, ctx.const(src.astype(np.int64), "sources", np.int64)], out,
                   axis=a)


@register(ShapeOf, ("Shape", "Slice", "Cast"))
def shape_of(ctx: LayerContext) -> None:
    """``Shape``, sliced to ``[start:end]``, cast to the model's float dtype."""
    layer = ctx.layer
    s = ctx.op("Shape", [ctx.inputs[0]])
    if layer.start != 0 or layer.end is not None:
        s = ctx.slice(s, [layer.start], [INT64_MAX if layer.end is None else layer.end], [0])
    ctx.cast(s, ctx.dtype.name, out=ctx.out)


@register(Constant, ("Identity",), notes="the stored array as an initializer")
def constant(ctx: LayerContext) -> None:
    ctx.op("Identity", [ctx.param("value", lambda: ctx.layer.buffers["value"])], ctx.out)


@register(FullLike, ("Shape", "Expand"))
def full_like(ctx: LayerContext) -> None:
    shape = ctx.op("Shape", [ctx.inputs[0]])
    ctx.op("Expand", [ctx.scalar(ctx.layer.value, "value"), shape], ctx.out)


@register(Fill, ("Shape", "Slice", "Concat", "Expand"),
          notes="−1 entries: the input's batch size, read by `Shape`")
def fill(ctx: LayerContext) -> None:
    layer = ctx.layer
    if -1 not in layer.shape:
        shape = ctx.ints(layer.shape, "shape")
    else:
        n = ctx.slice(ctx.op("Shape", [ctx.inputs[0]]), [0], [1], [0])
        parts = [n if d == -1 else ctx.ints([d], "size") for d in layer.shape]
        shape = ctx.op("Concat", parts, axis=0)
    ctx.op("Expand", [ctx.scalar(layer.value, "value"), shape], ctx.out)


def _softmax(ctx: LayerContext) -> None:
    """One axis: ``Softmax``/``LogSoftmax`` (moved last before opset 13); several jointly:
    numcnn's formula, ``z = x − max``, ``e^z / Σ e^z`` or ``z − log Σ e^z`` over them."""
    layer = ctx.layer
    rank = _rank(ctx)
    axes = sorted(_positive(layer.axes, rank))
    x = ctx.inputs[0]
    op_type = "LogSoftmax" if layer.log else "Softmax"
    if len(axes) == 1:
        a = axes[0]
        if ctx.opset >= 13 or a == rank - 1:
            ctx.op(op_type, [x], ctx.out, axis=a)
            return
        perm = [b for b in range(rank) if b != a] + [a]
        t = ctx.op("Transpose", [x], perm=perm)
        s = ctx.op(op_type, [t], main=True, axis=rank - 1)
        ctx.op("Transpose", [s], ctx.out, perm=[int(p) for p in np.argsort(perm)])
        return
    z = ctx.op("Sub", [x, ctx.reduce("ReduceMax", x, axes, True)])
    e = ctx.op("Exp", [z])
    s = ctx.reduce("ReduceSum", e, axes, True)
    if layer.log:
        ctx.op("Sub", [z, ctx.op("Log", [s])], ctx.out)
    else:
        ctx.op("Div", [e, s], ctx.out)


_SOFTMAX_OPS = ("Softmax", "LogSoftmax", "Transpose", "ReduceMax", "Sub", "Exp", "ReduceSum",
                "Div", "Log")
_SOFTMAX_NOTE = "one axis: the operator; several jointly: the formula"
register(AxisSoftmax, _SOFTMAX_OPS, notes=_SOFTMAX_NOTE)(_softmax)
register(LogSoftmax, _SOFTMAX_OPS, notes=_SOFTMAX_NOTE)(_softmax)


@register(Moments, ("ReduceMean", "Sub", "Mul"))
def moments(ctx: LayerContext) -> None:
    """``μ = mean(x)``, ``σ² = mean((x − μ)²)`` over the axes, kept."""
    layer = ctx.layer
    axes = sorted(_positive(layer.axes, _rank(ctx)))
    names = dict(zip(layer.outputs, ctx.outputs))
    mean = ctx.reduce("ReduceMean", ctx.inputs[0], axes, True, names.get("mean"))
    if "var" in names:
        xc = ctx.op("Sub", [ctx.inputs[0], mean])
        ctx.reduce("ReduceMean", ctx.op("Mul", [xc, xc]), axes, True, names["var"])


@register(Reduce, ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin"))
def reduce(ctx: LayerContext) -> None:
    layer = ctx.layer
    axes = sorted(_positive(layer.axes, _rank(ctx)))
    ctx.reduce("Reduce" + layer.op.capitalize(), ctx.inputs[0], axes, layer.keepdims, ctx.out)


def _identity(ctx: LayerContext) -> None:
    """An activity penalty only adds a term to the training loss: the identity."""
    ctx.op("Identity", [ctx.inputs[0]], ctx.out)


register(SparsityPenalty, ("Identity",), notes="inference: the identity")(_identity)
register(ActivityRegularization, ("Identity",), notes="inference: the identity")(_identity)
