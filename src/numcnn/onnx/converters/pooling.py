"""Converters of the pooling layers: max and average (``ceil_mode``, ``count_include_pad``),
Lp pooling as ``LpPool``, the centre-weighted pooling as a fixed depthwise ``Conv``, the
global pools, and adaptive pooling (ONNX has none: tiled windows become a pool, the others
a product with an averaging matrix or slices and maxima).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...functional.geometry import adaptive_windows
from ...layers import (
    AdaptiveAvgPool2D,
    AdaptiveMaxPool2D,
    AvgPool2D,
    GlobalAvgPool2D,
    GlobalMaxPool2D,
    LpPool2D,
    MaxPool2D,
    WeightedPool2D,
)
from . import register
from .conv import window_attrs
from .graph import LayerContext

CEIL_NOTE = ("`ceil_mode`: the extra end padding it implies (any opset; free input sizes: "
             "`ceil_mode=1`, opset 22, the first whose `ceil_mode` drops a last window that "
             "starts in the padding, as PyTorch and numcnn)")


def _overhang(ctx: LayerContext, layer: Any) -> tuple[int, int] | None:
    """With ``ceil_mode`` and a known input size: by how much the last window of each axis
    hangs past the padded input, ``(m − 1)·s + k − (n + p₀ + p₁)`` (0 when it does not);
    None for a free size (then ``ceil_mode=1`` at opset 22)."""
    hw = tuple(ctx.in_shapes[0][1:3])
    if None in hw:
        ctx.require(22, "ceil_mode on an input of free size (ONNX's ceil_mode keeps a last "
                        "window that starts in the padding before opset 22; numcnn drops it)")
        return None
    pads = layer._pads(hw)
    out = ctx.out_shapes[0][1:3]
    return tuple(max((m - 1) * s + k - (n + pads[2 * a] + pads[2 * a + 1]), 0)
                 for a, (n, m, k, s) in enumerate(zip(hw, out, layer.pool_size,
                                                      layer.stride)))


@register(MaxPool2D, ("MaxPool",), notes=CEIL_NOTE)
def max_pool2d(ctx: LayerContext) -> None:
    """``MaxPool``: ONNX pads with −∞ as numcnn does. ``ceil_mode`` keeps the last window
    that starts inside the input (or its first padding) and hangs off the end, and drops
    one that would start in the end padding — the same windows as ``ceil_mode=0`` with the
    end padding grown by the overhang, which every opset and runtime computes alike (ONNX's
    own ``ceil_mode`` kept the dropped window up to opset 21, ONNX Runtime does not)."""
    layer = ctx.layer
    attrs = window_attrs(ctx, layer, "max pooling")
    if layer.ceil_mode:
        extra = _overhang(ctx, layer)
        if extra is None:
            attrs["ceil_mode"] = 1
        else:
            t, left, b, r = attrs["pads"]
            attrs["pads"] = [t, left, b + extra[0], r + extra[1]]
    ctx.op("MaxPool", [ctx.inputs[0]], ctx.out, **attrs)


@register(AvgPool2D, ("AveragePool", "Pad"), notes=CEIL_NOTE + "; with `count_include_pad` "
                                                   "the padding as a `Pad` first")
def avg_pool2d(ctx: LayerContext) -> None:
    """``AveragePool`` with the same ``count_include_pad``: divide by ``kh·kw`` or by the
    real inputs only. With ``ceil_mode``, a window hanging off the end divides by its part
    inside the padded input (``count_include_pad``) or inside the input: written as the
    end padding grown by the overhang and excluded from the divisors — after an explicit
    zero ``Pad`` of the layer's own padding when that padding counts."""
    layer = ctx.layer
    attrs = window_attrs(ctx, layer, "average pooling", same_ok=False)
    x = ctx.inputs[0]
    attrs["count_include_pad"] = int(layer.count_include_pad)
    extra = _overhang(ctx, layer) if layer.ceil_mode else (0, 0)
    if extra is None:
        attrs["ceil_mode"] = 1
    elif any(extra):
        t, left, b, r = attrs["pads"]
        if layer.count_include_pad and any(attrs["pads"]):
            x = ctx.pad(x, [0, 0, t, left, 0, 0, b, r], 0.0)
            t = left = b = r = 0
        attrs.update(pads=[t, left, b + extra[0], r + extra[1]], count_include_pad=0)
    ctx.op("AveragePool", [x], ctx.out, **attrs)


@register(LpPool2D, ("LpPool", "Mul", "Abs", "Pow", "AveragePool"),
          notes="`LpPool` for an integer p on the absolute values (`abs_input`, or p even); "
                "`mode=\"mean\"` times `(kh·kw)^(−1/p)`; other p: `Pow → AveragePool → Pow`")
def lp_pool2d(ctx: LayerContext) -> None:
    """``y = (Σ_window v^p)^(1/p)`` (``mode="sum"``) or ``((1/K) Σ v^p)^(1/p)`` (``"mean"``,
    ``K = kh·kw``), ``v = x`` or ``|x|``.

    ONNX ``LpPool`` computes ``(Σ |x|^p)^(1/p)`` with an integer ``p``: that is numcnn's sum
    form when ``p`` is an integer and the input's sign does not matter (``abs_input``, or
    ``p`` even); the mean form is that times ``K^(−1/p)``. Otherwise the graph raises ``v``
    to the power ``p`` itself, averages the windows (zero padding adds ``0^p = 0`` and
    counts in ``K``), multiplies by ``K`` for the sum form and takes the ``1/p`` power.
    """
    layer = ctx.layer
    p = layer.p
    attrs = window_attrs(ctx, layer, "Lp pooling", same_ok=False)
    K = layer.pool_size[0] * layer.pool_size[1]
    mean = layer.mode == "mean"
    x = ctx.inputs[0]
    if p == int(p) and (layer.abs_input or int(p) % 2 == 0):
        if not mean:
            ctx.op("LpPool", [x], ctx.out, p=int(p), **attrs)
            return
        y = ctx.op("LpPool", [x], main=True, p=int(p), **attrs)
        ctx.op("Mul", [y, ctx.scalar(K ** (-1.0 / p), "mean_factor")], ctx.out)
        return
    v = ctx.op("Abs", [x]) if layer.abs_input else x
    vp = ctx.op("Pow", [v, ctx.scalar(p, "p")])
    s = ctx.op("AveragePool", [vp], main=True, count_include_pad=1, **attrs)
    if not mean:
        s = ctx.op("Mul", [s, ctx.scalar(float(K), "window_size")])
    ctx.op("Pow", [s, ctx.scalar(1.0 / p, "inverse_p")], ctx.out)


@register(WeightedPool2D, ("Conv",), notes="a depthwise `Conv` with the fixed Gaussian window")
def weighted_pool2d(ctx: LayerContext) -> None:
    """``y = Σ_ij w_ij · x_window[i, j]`` with the layer's fixed weights (summing to 1) is a
    depthwise convolution: kernel ``w`` for every map, ``group = C``, zero padding."""
    layer = ctx.layer
    C = ctx.in_shapes[0][0]
    if C is None:
        raise ctx.fail("the number of channels must be known (one kernel per channel)")
    attrs = window_attrs(ctx, layer, "weighted pooling", same_ok=False)

    def kernel() -> np.ndarray:  # (C, 1, kh, kw)
        return np.broadcast_to(layer.weights, (C, 1) + layer.pool_size).astype(ctx.dtype)

    ctx.op("Conv", [ctx.inputs[0], ctx.param("weights", kernel)], ctx.out, group=int(C),
           **attrs)


@register(GlobalAvgPool2D, ("GlobalAveragePool", "Flatten"))
def global_avg_pool2d(ctx: LayerContext) -> None:
    """(N, C, H, W) → (N, C): ``GlobalAveragePool`` (N, C, 1, 1), then ``Flatten``."""
    y = ctx.op("GlobalAveragePool", [ctx.inputs[0]], main=True)
    ctx.op("Flatten", [y], ctx.out, axis=1)


@register(GlobalMaxPool2D, ("GlobalMaxPool", "Flatten"))
def global_max_pool2d(ctx: LayerContext) -> None:
    y = ctx.op("GlobalMaxPool", [ctx.inputs[0]], main=True)
    ctx.op("Flatten", [y], ctx.out, axis=1)


# -------------------------------------------------------------------------- adaptive
def _plan(ctx: LayerContext) -> list[tuple[str, int | None, int | None]]:
    """Per spatial axis: ``("keep"|"tile"|"reduce"|"windows", n, m)``."""
    plan = []
    for n, m in zip(ctx.in_shapes[0][1:3], ctx.layer.output_size):
        if m is None or (n is not None and m == n):
            plan.append(("keep", n, m))
        elif n is None:
            if m != 1:
                raise ctx.fail(f"output size {m} on an input axis of free size needs the input "
                               "size to place the windows; give the model a fixed input size")
            plan.append(("reduce", n, m))
        elif n % m == 0:
            plan.append(("tile", n, m))
        else:
            plan.append(("windows", n, m))
    return plan


def _adaptive(ctx: LayerContext, kind: str) -> None:
    """Adaptive pooling (``kind`` "avg" or "max"), one axis at a time where needed.

    * both axes tiled (``m`` divides ``n``; or kept): one ``AveragePool``/``MaxPool`` with
      window and stride ``n/m``;
    * an axis of free size pooled to 1: ``ReduceMean``/``ReduceMax`` over it;
    * uneven windows ``⌊i·n/m⌋ ≤ h < ⌈(i+1)·n/m⌉``: for the average, a product with the
      (m, n) matrix holding ``1/len`` on each window (``A x`` on H, ``x Aᵀ`` on W — the mean
      of a rectangle is the mean of its rows' means); for the maximum, each window sliced,
      reduced by ``ReduceMax`` and the pieces concatenated.
    """
    plan = _plan(ctx)
    x = ctx.inputs[0]
    pool = "AveragePool" if kind == "avg" else "MaxPool"
    if all(p[0] in ("keep", "tile") for p in plan):
        k = [1 if p[0] == "keep" else p[1] // p[2] for p in plan]
        if k == [1, 1]:
            ctx.op("Identity", [x], ctx.out)
            return
        ctx.op(pool, [x], ctx.out, kernel_shape=k, strides=k)
        return
    steps = [(axis, p) for axis, p in zip((2, 3), plan) if p[0] != "keep"]
    for k, (axis, (how, n, m)) in enumerate(steps):
        out = ctx.out if k == len(steps) - 1 else None
        if how == "reduce":
            x = ctx.reduce("ReduceMean" if kind == "avg" else "ReduceMax", x, [axis], True, out)
        elif how == "tile":
            ks = [n // m if a == axis else 1 for a in (2, 3)]
            x = ctx.op(pool, [x], out, kernel_shape=ks, strides=ks)
        elif kind == "avg":
            start, end = adaptive_windows(n, m)
            A = np.zeros((m, n))
            for i, (s, e) in enumerate(zip(start, end)):
                A[i, s:e] = 1.0 / (e - s)
            if axis == 2:  # (m, H) @ (N, C, H, W)
                x = ctx.op("MatMul", [ctx.const(A, "rows"), x], out)
            else:  # (N, C, Ho, W) @ (W, m)
                x = ctx.op("MatMul", [x, ctx.const(A.T.copy(), "columns")], out)
        else:
            start, end = adaptive_windows(n, m)
            parts = [ctx.reduce("ReduceMax", ctx.slice(x, [int(s)], [int(e)], [axis]), [axis],
                                True) for s, e in zip(start, end)]
            x = ctx.op("Concat", parts, out, axis=axis)


@register(AdaptiveAvgPool2D, ("AveragePool", "MatMul", "ReduceMean"),
          notes="tiled windows: `AveragePool`; uneven ones: products with averaging "
                "matrices (fixed input size)")
def adaptive_avg_pool2d(ctx: LayerContext) -> None:
    _adaptive(ctx, "avg")


@register(AdaptiveMaxPool2D, ("MaxPool", "Slice", "ReduceMax", "Concat"),
          notes="tiled windows: `MaxPool`; uneven ones: one `Slice` and `ReduceMax` per "
                "window (fixed input size)")
def adaptive_max_pool2d(ctx: LayerContext) -> None:
    _adaptive(ctx, "max")
