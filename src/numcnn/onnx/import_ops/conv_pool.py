"""Convolutions and poolings: ``Conv``, ``ConvTranspose``, ``MaxPool``, ``AveragePool``,
``LpPool``, ``GlobalAveragePool``, ``GlobalMaxPool``.

A 2-D node that numcnn's own layers compute exactly becomes that layer (``Conv2D``,
``MaxPool2D``, ``AvgPool2D``, ``LpPool2D``, ``GlobalAvgPool2D``); any other (1-D, 3-D,
dilated, padding wider than half a window, a max pooling's ``Indices``) the N-d layers
``ConvND``, ``ConvTranspose`` and ``PoolND``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...layers import (
    AvgPool2D,
    Conv2D,
    ConvND,
    ConvTranspose,
    GlobalAvgPool2D,
    GlobalMaxPool2D,
    LpPool2D,
    MaxPool2D,
    PoolND,
    Reshape,
    TensorReshape,
)
from ..import_values import Context
from .common import as_float, converter, pads_2d, window


@converter("Conv")
def conv(ctx: Context, node: Any) -> list:
    x = ctx.tensor(node, 0)
    W = ctx.const(node, 1, "the kernel W")
    if W is None or W.ndim < 3:
        raise ctx.fail(node, "needs a kernel W of rank 3 or more (F, C/G, k…)")
    W = as_float(ctx, node, W, "W")
    b = ctx.const(node, 2, "the bias B")
    kernel = tuple(W.shape[2:])
    given = ctx.attr(node, "kernel_shape", None, "ints")
    if given is not None and tuple(given) != kernel:
        raise ctx.fail(node, f"kernel_shape {given} does not match W's shape {W.shape}")
    G = ctx.attr(node, "group", 1, "int")
    F = W.shape[0]
    if G < 1 or F % G:
        raise ctx.fail(node, f"group={G} must divide the {F} kernels")
    C = x.shape[0] if x.shape else None
    if C is None or C != W.shape[1] * G:
        raise ctx.fail(node, f"the input has {C} channels; W {W.shape} with group={G} needs "
                             f"{W.shape[1] * G}")
    strides, dilations, pads = window(ctx, node, x, kernel)
    params = {"W": W}
    if b is not None:
        if b.shape != (F,):
            raise ctx.fail(node, f"the bias must have shape ({F},); received {b.shape}")
        params["b"] = as_float(ctx, node, b, "B")
    if len(kernel) == 2 and max(dilations) == 1:
        layer = Conv2D(F, kernel, strides, pads_2d(pads), use_bias=b is not None, groups=G)
    else:
        layer = ConvND(F, kernel, strides, dilations, pads, G, use_bias=b is not None)
    return ctx.apply(layer, x, node, params)


@converter("ConvTranspose")
def conv_transpose(ctx: Context, node: Any) -> list:
    x = ctx.tensor(node, 0)
    W = ctx.const(node, 1, "the kernel W")
    if W is None or W.ndim < 3:
        raise ctx.fail(node, "needs a kernel W of rank 3 or more (C, F/G, k…)")
    W = as_float(ctx, node, W, "W")
    b = ctx.const(node, 2, "the bias B")
    kernel = tuple(W.shape[2:])
    d = len(kernel)
    G = ctx.attr(node, "group", 1, "int")
    C = x.shape[0] if x.shape else None
    if C is None or C != W.shape[0] or G < 1 or C % G:
        raise ctx.fail(node, f"the input has {C} channels; W {W.shape} with group={G} needs "
                             f"{W.shape[0]}, divisible by the group")
    if x.rank != d + 2:
        raise ctx.fail(node, f"a {d}-d kernel needs an input of rank {d + 2}")
    F = W.shape[1] * G
    strides = tuple(ctx.attr(node, "strides", [1] * d, "ints"))
    dil = tuple(ctx.attr(node, "dilations", [1] * d, "ints"))
    out_pad = tuple(ctx.attr(node, "output_padding", [0] * d, "ints"))
    out_shape = ctx.attr(node, "output_shape", None, "ints")
    auto = ctx.attr(node, "auto_pad", "NOTSET", "str")
    pads = ctx.attr(node, "pads", None, "ints")
    spatial = x.shape[1:]
    if out_shape is not None or (pads is None and auto in ("SAME_UPPER", "SAME_LOWER")):
        if any(n is None for n in spatial):
            raise ctx.fail(node, "output_shape and auto_pad need the input's spatial sizes")
        target = list(out_shape)[-d:] if out_shape is not None else [
            n * s for n, s in zip(spatial, strides)]
        begin, end = [], []
        for a in range(d):  # ONNX's rule: the total padding split as auto_pad says
            total = strides[a] * (spatial[a] - 1) + out_pad[a] + (kernel[a] - 1) * dil[a] + 1 \
                - target[a]
            small, big = total // 2, total - total // 2
            begin.append(small if auto == "SAME_UPPER" else big)
            end.append(big if auto == "SAME_UPPER" else small)
        pads = begin + end
    elif pads is None:
        pads = [0] * (2 * d)
    if len(pads) != 2 * d:
        raise ctx.fail(node, f"pads must hold {2 * d} ints; received {pads}")
    params = {"W": W}
    if b is not None:
        if b.shape != (F,):
            raise ctx.fail(node, f"the bias must have shape ({F},); received {b.shape}")
        params["b"] = as_float(ctx, node, b, "B")
    layer = ConvTranspose(F, kernel, strides, dil, tuple(pads), out_pad, G,
                          use_bias=b is not None)
    return ctx.apply(layer, x, node, params)


def _fits_2d(kernel: tuple, dilations: tuple, pads: tuple) -> bool:
    """numcnn's 2-D poolings: no dilation, padding at most half the window."""
    return len(kernel) == 2 and max(dilations) == 1 and max(pads[0], pads[2]) <= kernel[0] // 2 \
        and max(pads[1], pads[3]) <= kernel[1] // 2


def _kernel(ctx: Context, node: Any) -> tuple[int, ...]:
    k = ctx.attr(node, "kernel_shape", None, "ints")
    if not k or min(k) < 1:
        raise ctx.fail(node, f"needs a kernel_shape of positive ints; received {k}")
    return tuple(k)


@converter("MaxPool")
def max_pool(ctx: Context, node: Any) -> list:
    x = ctx.tensor(node, 0)
    kernel = _kernel(ctx, node)
    strides, dil, pads = window(ctx, node, x, kernel, allow_dilation=ctx.opset >= 10)
    ceil = bool(ctx.attr(node, "ceil_mode", 0, "int"))
    indices = len(node.output) > 1 and bool(node.output[1])
    if not indices and _fits_2d(kernel, dil, pads):
        return ctx.apply(MaxPool2D(kernel, strides, pads_2d(pads), ceil_mode=ceil), x, node)
    order = ctx.attr(node, "storage_order", 0, "int")
    layer = PoolND("max", kernel, strides, dil, pads, ceil, return_indices=indices,
                   storage_order=order)
    outs = ctx.apply(layer, x, node)
    if indices:
        outs[1].etype = np.dtype(np.int64)
    return outs


@converter("AveragePool")
def average_pool(ctx: Context, node: Any) -> list:
    x = ctx.tensor(node, 0)
    kernel = _kernel(ctx, node)
    strides, dil, pads = window(ctx, node, x, kernel, allow_dilation=ctx.opset >= 19)
    ceil = bool(ctx.attr(node, "ceil_mode", 0, "int"))
    include = bool(ctx.attr(node, "count_include_pad", 0, "int"))
    if _fits_2d(kernel, dil, pads):
        layer = AvgPool2D(kernel, strides, pads_2d(pads), count_include_pad=include,
                          ceil_mode=ceil)
    else:
        layer = PoolND("avg", kernel, strides, dil, pads, ceil, include)
    return ctx.apply(layer, x, node)


@converter("LpPool")
def lp_pool(ctx: Context, node: Any) -> list:
    x = ctx.tensor(node, 0)
    kernel = _kernel(ctx, node)
    strides, dil, pads = window(ctx, node, x, kernel, allow_dilation=ctx.opset >= 18)
    ceil = bool(ctx.attr(node, "ceil_mode", 0, "int"))
    p = ctx.attr(node, "p", 2, "float" if ctx.opset < 2 else "int")
    if p < 1:
        raise ctx.fail(node, f"p must be at least 1; received {p}")
    if not ceil and _fits_2d(kernel, dil, pads):
        layer = LpPool2D(float(p), kernel, strides, pads_2d(pads), abs_input=True)
    else:
        layer = PoolND("lp", kernel, strides, dil, pads, ceil, p=float(p))
    return ctx.apply(layer, x, node)


@converter("GlobalAveragePool", "GlobalMaxPool")
def global_pool(ctx: Context, node: Any) -> list:
    x = ctx.tensor(node, 0)
    kind = "avg" if node.op_type == "GlobalAveragePool" else "max"
    if x.rank < 3:
        raise ctx.fail(node, f"needs an input of rank 3 or more (N, C, spatial…); received "
                             f"rank {x.rank}")
    spatial = x.shape[1:]
    if x.rank == 4:
        layer = GlobalAvgPool2D() if kind == "avg" else GlobalMaxPool2D()
        (flat,) = ctx.apply(layer, x, node)
        C = x.shape[0]
        back = Reshape((C, 1, 1)) if C is not None else TensorReshape((0, -1, 1, 1))
        return ctx.apply(back, flat, node, suffix="_keepdims")
    if any(n is None for n in spatial):
        raise ctx.fail(node, f"a {x.rank - 2}-d global pooling needs the spatial sizes; the "
                             f"input's are {spatial}")
    d = len(spatial)
    return ctx.apply(PoolND(kind, spatial, 1, 1, (0,) * (2 * d)), x, node)
