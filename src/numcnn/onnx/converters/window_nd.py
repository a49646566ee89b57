"""Converters of the N-d window layers: ``ConvND`` (``Conv``), ``ConvTranspose`` and
``PoolND`` (``MaxPool`` with its indices, ``AveragePool``, ``LpPool``), with dilation."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...layers import ConvND, ConvTranspose, PoolND
from . import register
from .graph import LayerContext


def _geometry(layer: Any) -> dict[str, Any]:
    attrs = {"kernel_shape": list(layer.kernel_size), "strides": list(layer.stride)}
    if any(r != 1 for r in layer.dilation):
        attrs["dilations"] = list(layer.dilation)
    return attrs


@register(ConvND, ("Conv",), notes="1-, 2-, 3-d, dilation, groups, padding per end")
def conv_nd(ctx: LayerContext) -> None:
    layer = ctx.layer
    ins = [ctx.inputs[0], ctx.param("W", lambda: layer.params["W"])]
    if layer.use_bias:
        ins.append(ctx.param("b", lambda: layer.params["b"]))
    attrs = _geometry(layer)
    attrs["pads"] = list(layer.padding)
    if layer.groups != 1:
        attrs["group"] = layer.groups
    ctx.op("Conv", ins, ctx.out, **attrs)


@register(ConvTranspose, ("ConvTranspose", "Pad", "Add"),
          notes="a negative padding (numcnn adds zeros there, then the bias) as a `Pad` "
                "after it and the bias added last")
def conv_transpose(ctx: LayerContext) -> None:
    layer = ctx.layer
    d = layer.rank
    attrs = _geometry(layer)
    attrs["pads"] = [max(p, 0) for p in layer.padding]
    if any(layer.output_padding):
        attrs["output_padding"] = list(layer.output_padding)
    if layer.groups != 1:
        attrs["group"] = layer.groups
    W = ctx.param("W", lambda: layer.params["W"])
    grow = [max(-p, 0) for p in layer.padding]
    if not any(grow):
        ins = [ctx.inputs[0], W] + ([ctx.param("b", lambda: layer.params["b"])]
                                    if layer.use_bias else [])
        ctx.op("ConvTranspose", ins, ctx.out, **attrs)
        return
    y = ctx.op("ConvTranspose", [ctx.inputs[0], W], main=True, **attrs)
    pads = [0, 0] + grow[:d] + [0, 0] + grow[d:]
    if not layer.use_bias:
        ctx.pad(y, pads, 0.0, out=ctx.out)
        return
    y = ctx.pad(y, pads, 0.0)
    b = ctx.param("b", lambda: layer.params["b"].reshape((-1,) + (1,) * d))
    ctx.op("Add", [y, b], ctx.out)


def _overhang(layer: Any, ctx: LayerContext) -> list[int] | None:
    """With ``ceil_mode``: the last window's overhang past the padded input per axis
    (``(m − 1)·s + r(k − 1) + 1 − (n + p₀ + p₁)``, at least 0); None on a free size."""
    spatial = ctx.in_shapes[0][1:]
    out = ctx.out_shapes[0][1:]
    if None in spatial:
        ctx.require(22, "ceil_mode on an input of free size (ONNX's ceil_mode keeps a last "
                        "window that starts in the padding before opset 22; numcnn drops it)")
        return None
    d = layer.rank
    return [max((m - 1) * s + r * (k - 1) + 1 - (n + layer.padding[a] + layer.padding[d + a]),
                0) for a, (n, m, k, s, r) in enumerate(zip(spatial, out, layer.kernel_size,
                                                            layer.stride, layer.dilation))]


@register(PoolND, ("MaxPool", "AveragePool", "LpPool", "Pad", "Abs", "Pow", "Mul", "Cast"),
          notes="dilation: `MaxPool` opset 10, `LpPool` 18, `AveragePool` 19; `ceil_mode` "
                "as `MaxPool2D`'s; max indices cast to the model's dtype; Lp of a "
                "non-integer p: `Abs → Pow → AveragePool → Pow`")
def pool_nd(ctx: LayerContext) -> None:
    """Max, average or Lp pooling over d axes. ``ceil_mode`` with a known input size is
    the end padding grown by the overhang (−∞ / excluded from the divisors / zeros: see
    :func:`numcnn.onnx.converters.pooling.max_pool2d`)."""
    layer = ctx.layer
    d = layer.rank
    dilated = any(r != 1 for r in layer.dilation)
    attrs = _geometry(layer)
    pads = list(layer.padding)
    x = ctx.inputs[0]
    extra = _overhang(layer, ctx) if layer.ceil_mode else [0] * d
    if extra is None:
        attrs["ceil_mode"] = 1
        extra = [0] * d
    if layer.kind == "avg" and any(extra) and layer.count_include_pad and any(pads):
        x = ctx.pad(x, [0, 0] + pads[:d] + [0, 0] + pads[d:], 0.0)
        pads = [0] * (2 * d)
    attrs["pads"] = pads[:d] + [p + e for p, e in zip(pads[d:], extra)]
    if layer.kind == "max":
        if dilated:
            ctx.require(10, "a dilated max pooling")
        if not layer.return_indices:
            ctx.op("MaxPool", [x], ctx.out, **attrs)
            return
        ctx.require(8, "max pooling's indices")
        idx = ctx.g.value_name(f"{ctx.name}/Indices")
        ctx.op("MaxPool", [x], [ctx.outputs[0], idx], storage_order=layer.storage_order,
               **attrs)
        ctx.cast(idx, ctx.dtype.name, out=ctx.outputs[1])
        return
    if layer.kind == "avg":
        if dilated:
            ctx.require(19, "a dilated average pooling")
        count = layer.count_include_pad and not any(extra)
        ctx.op("AveragePool", [x], ctx.out, count_include_pad=int(count), **attrs)
        return
    p = layer.p
    if p == int(p):
        if dilated:
            ctx.require(18, "a dilated Lp pooling")
        ctx.op("LpPool", [x], ctx.out, p=int(p), **attrs)
        return
    if dilated:
        ctx.require(19, "a dilated Lp pooling of a non-integer p")
    vp = ctx.op("Pow", [ctx.op("Abs", [x]), ctx.scalar(p, "p")])
    s = ctx.op("AveragePool", [vp], main=True, count_include_pad=1, **attrs)
    K = float(np.prod(layer.kernel_size))
    s = ctx.op("Mul", [s, ctx.scalar(K, "window_size")])
    ctx.op("Pow", [s, ctx.scalar(1.0 / p, "inverse_p")], ctx.out)
