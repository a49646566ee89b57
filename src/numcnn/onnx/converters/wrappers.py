"""Converters of the sequence plumbing: ``TimeDistributed`` (the wrapped layer's converter
on the time steps folded into the batch), ``Embedding`` and ``Masking``."""

from __future__ import annotations

from ...layers import Embedding, Masking, TimeDistributed
from . import converter_for, register
from .graph import INT64_MAX, LayerContext


@register(TimeDistributed, ("Reshape", "Shape", "Slice", "Concat"),
          notes="the wrapped layer's converter (and its opsets) on (N·T, …)")
def time_distributed(ctx: LayerContext) -> None:
    """``y[n, t] = layer(x[n, t])``: (N, T, *S) reshaped to (N·T, *S), the wrapped layer's
    own converter, then (N·T, *S') reshaped to (N, T, *S') with N and T read from the
    input's shape (both may be free)."""
    inner = ctx.layer.layer
    conv = converter_for(inner, ctx.opset, f"{ctx.name}/{type(inner).__name__}")
    x = ctx.inputs[0]
    step = ctx.in_shapes[0][1:]
    if None in step:
        rest = ctx.slice(ctx.op("Shape", [x]), [2], [INT64_MAX], [0])
        folded = ctx.op("Reshape", [x, ctx.op("Concat", [ctx.ints([-1], "minus_one"), rest],
                                                 axis=0)])
    else:
        folded = ctx.reshape(x, [-1] + list(step))
    label = f"{ctx.name}/{type(inner).__name__.lower()}"
    sub = LayerContext(ctx.g, inner, label, ctx.param_prefix, [folded], [step],
                       [ctx.out_shapes[0][1:]], [ctx.g.value_name(label)])
    conv.convert(sub)
    y = sub.out
    nt = ctx.slice(ctx.op("Shape", [x]), [0], [2], [0])
    rest = ctx.slice(ctx.op("Shape", [y]), [1], [INT64_MAX], [0])
    ctx.op("Reshape", [y, ctx.op("Concat", [nt, rest], axis=0)], ctx.out)


@register(Embedding, ("Cast", "Gather"),
          notes="ids as `Cast` to int64, then `Gather`")
def embedding(ctx: LayerContext) -> None:
    """``y[n, t] = W[x[n, t]]``: the ids (a float input holding whole numbers, as numcnn
    models take them) cast to int64, then ``Gather`` of the rows of ``W``. numcnn refuses
    an id that is not a whole number in [0, V); the graph does not check (ONNX Runtime
    refuses ids out of range, and ``Cast`` truncates fractions)."""
    ids = ctx.cast(ctx.inputs[0], "int64")
    ctx.op("Gather", [ctx.param("W", lambda: ctx.layer.params["W"]), ids], ctx.out, axis=0)


def step_mask(ctx: LayerContext, src: str, mask_value: float | None) -> str:
    """The (N, T) mask in the model's dtype, 1 on a real step: ``src != 0`` for an explicit
    mask (or the ids of an ``Embedding(mask_zero=True)``), else ``any_f(src != v)`` for the
    (N, T, F) input of a ``Masking(v)``."""
    ctx.require(11, "a padding mask (Equal on floats)")
    v = 0.0 if mask_value is None else mask_value
    real = ctx.cast(ctx.op("Not", [ctx.op("Equal", [src, ctx.scalar(v, "mask_value")])]),
                    ctx.dtype.name)
    if mask_value is None:
        return real
    return ctx.reduce("ReduceMax", real, [2], keepdims=False)


@register(Masking, ("Equal", "Not", "Cast", "ReduceMax", "Unsqueeze", "Mul"), min_opset=11,
          notes="`Equal` on floats: opset 11")
def masking(ctx: LayerContext) -> None:
    """``y[n, t] = x[n, t]·m[n, t]``, ``m[n, t] = any_f(x[n, t, f] ≠ mask_value)``."""
    m = step_mask(ctx, ctx.inputs[0], ctx.layer.mask_value)
    ctx.op("Mul", [ctx.inputs[0], ctx.unsqueeze(m, [2])], ctx.out)
