"""Converters of the layers that map onto one or two ONNX operators: ``Dense``, reshaping,
padding, rescaling, dropout, the activations and the merge layers.

Each function writes, in inference mode, what the layer's ``fprop`` computes; the docstring
gives the correspondence and any detail that differs between numcnn and ONNX.
"""

from __future__ import annotations

from ...layers import (
    Add,
    Average,
    Concatenate,
    Dense,
    Dropout,
    Flatten,
    LeakyReLU,
    Multiply,
    Pad2D,
    PadChannels,
    Permute,
    ReLU,
    Rescale,
    Reshape,
    Sigmoid,
    Softmax,
    Subtract,
    Tanh,
)
from . import register
from .graph import LayerContext


@register(Dense, ("Gemm", "MatMul"), notes="`Gemm` (a bias-free layer below opset 11: "
                                           "`MatMul`)")
def dense(ctx: LayerContext) -> None:
    """``y = x W + b``: ``Gemm(x, W, b)`` with numcnn's ``W`` (in, units) as ``B``."""
    layer = ctx.layer
    W = ctx.param("W", lambda: layer.params["W"])
    b = ctx.param("b", lambda: layer.params["b"]) if layer.use_bias else None
    ctx.matmul_bias(ctx.inputs[0], W, b, out=ctx.out)


@register(Flatten, ("Flatten",))
def flatten(ctx: LayerContext) -> None:
    """(N, C, H, W) → (N, C·H·W) in C order: ``Flatten(axis=1)``."""
    ctx.op("Flatten", [ctx.inputs[0]], ctx.out, axis=1)


@register(Reshape, ("Reshape",))
def reshape(ctx: LayerContext) -> None:
    """``Reshape`` to ``(0, *target_shape)``: the 0 keeps the batch size, −1 is inferred."""
    ctx.reshape(ctx.inputs[0], [0] + list(ctx.layer.target_shape), out=ctx.out)


@register(Permute, ("Transpose",))
def permute(ctx: LayerContext) -> None:
    """``Transpose(perm=(0, *dims))``."""
    ctx.op("Transpose", [ctx.inputs[0]], ctx.out, perm=[0] + list(ctx.layer.dims))


@register(Pad2D, ("Pad",))
def pad2d(ctx: LayerContext) -> None:
    """``Pad`` of H and W with the constant ``value`` (``(top, bottom, left, right)`` become
    ONNX's ``[0, 0, top, left, 0, 0, bottom, right]``)."""
    t, b, left, r = ctx.layer.padding
    ctx.pad(ctx.inputs[0], [0, 0, t, left, 0, 0, b, r], ctx.layer.value, out=ctx.out)


@register(PadChannels, ("Pad",))
def pad_channels(ctx: LayerContext) -> None:
    """Zero channels before and after: ``Pad`` of axis 1."""
    rank = len(ctx.in_shapes[0]) + 1
    begin, end = [0] * rank, [0] * rank
    begin[1], end[1] = ctx.layer.before, ctx.layer.after
    ctx.pad(ctx.inputs[0], begin + end, 0.0, out=ctx.out)


@register(Rescale, ("Mul", "Add"))
def rescale(ctx: LayerContext) -> None:
    """``y = scale·x + offset``: ``Mul`` then ``Add`` (numcnn's order of operations)."""
    y = ctx.op("Mul", [ctx.inputs[0], ctx.scalar(ctx.layer.scale, "scale")])
    ctx.op("Add", [y, ctx.scalar(ctx.layer.offset, "offset")], ctx.out)


@register(Dropout, ("Identity",), notes="inference: the identity")
def dropout(ctx: LayerContext) -> None:
    """Inference-mode dropout passes its input on unchanged: ``Identity`` (kept, so the
    layer's name stays in the graph)."""
    ctx.op("Identity", [ctx.inputs[0]], ctx.out)


@register(ReLU, ("Relu",))
def relu(ctx: LayerContext) -> None:
    ctx.op("Relu", [ctx.inputs[0]], ctx.out)


@register(LeakyReLU, ("LeakyRelu", "Greater", "Where", "Mul"),
          notes="float64 with an α that is no float32 number: `x·Where(x > 0, 1, α)`")
def leaky_relu(ctx: LayerContext) -> None:
    """``LeakyRelu`` — whose ``alpha`` is a float32 attribute; in a float64 model with an α
    float32 cannot hold, numcnn's own ``y = x·slope``, ``slope = 1 if x > 0 else α``."""
    alpha, x = ctx.layer.alpha, ctx.inputs[0]
    if ctx.exact(alpha):
        ctx.op("LeakyRelu", [x], ctx.out, alpha=alpha)
        return
    positive = ctx.op("Greater", [x, ctx.scalar(0.0, "zero")])
    slope = ctx.op("Where", [positive, ctx.scalar(1.0, "one"), ctx.scalar(alpha, "alpha")])
    ctx.op("Mul", [x, slope], ctx.out)


@register(Sigmoid, ("Sigmoid",))
def sigmoid(ctx: LayerContext) -> None:
    ctx.op("Sigmoid", [ctx.inputs[0]], ctx.out)


@register(Tanh, ("Tanh",))
def tanh(ctx: LayerContext) -> None:
    ctx.op("Tanh", [ctx.inputs[0]], ctx.out)


@register(Softmax, ("Softmax", "Transpose"),
          notes="axis 1; below opset 13 (where `Softmax` flattens the axes after it) moved "
                "last by `Transpose` when the input has more than 2 axes")
def softmax(ctx: LayerContext) -> None:
    """Softmax over axis 1 (the features of (N, F), the time axis of (N, T, F))."""
    ctx.softmax(ctx.inputs[0], 1, len(ctx.in_shapes[0]) + 1, out=ctx.out)


# ---------------------------------------------------------------------------- merges
def _chain(ctx: LayerContext, op_type: str, out: str | None) -> str:
    """``((x₁ ∘ x₂) ∘ x₃) ∘ …`` as numcnn accumulates, one binary node per input."""
    xs = ctx.inputs
    y = xs[0]
    for k, x in enumerate(xs[1:], start=2):
        y = ctx.op(op_type, [y, x], out if k == len(xs) else None)
    return y


@register(Add, ("Add",))
def add(ctx: LayerContext) -> None:
    _chain(ctx, "Add", ctx.out)


@register(Subtract, ("Sub",))
def subtract(ctx: LayerContext) -> None:
    ctx.op("Sub", ctx.inputs[:2], ctx.out)


@register(Multiply, ("Mul",))
def multiply(ctx: LayerContext) -> None:
    _chain(ctx, "Mul", ctx.out)


@register(Average, ("Add", "Div"))
def average(ctx: LayerContext) -> None:
    """``(x₁ + … + x_K) / K``."""
    s = _chain(ctx, "Add", None)
    ctx.op("Div", [s, ctx.scalar(float(len(ctx.inputs)), "count")], ctx.out)


@register(Concatenate, ("Concat",))
def concatenate(ctx: LayerContext) -> None:
    """``Concat`` on the same axis of the full (N, …) array (made positive: negative axes
    came with opset 11)."""
    rank = len(ctx.in_shapes[0]) + 1
    axis = ctx.layer.axis if ctx.layer.axis > 0 else rank + ctx.layer.axis
    if len(ctx.inputs) == 1:
        ctx.op("Identity", ctx.inputs, ctx.out)
        return
    ctx.op("Concat", ctx.inputs, ctx.out, axis=int(axis))

