"""Converters of the convolutions: ``Conv2D`` (grouped, connection tables) and
``LocallyConnected2D`` (written with standard operators: ONNX has no unshared convolution).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...functional.geometry import resolve_padding
from ...layers import Conv2D, LocallyConnected2D
from . import register
from .graph import LayerContext


def onnx_pads(pads: tuple[int, int, int, int]) -> list[int]:
    """numcnn's ``(top, bottom, left, right)`` as ONNX's ``[top, left, bottom, right]``."""
    t, b, left, r = pads
    return [t, left, b, r]


def window_attrs(ctx: LayerContext, layer: Any, what: str, same_ok: bool = True
                 ) -> dict[str, Any]:
    """``kernel_shape``, ``strides`` and ``pads`` (or ``auto_pad``) of a sliding-window layer.

    With the input size known the padding is explicit. With a free size, ``"same"`` is
    ONNX's ``SAME_UPPER`` (the extra pixel at the end, as numcnn and TensorFlow) where
    ``same_ok``; numbers need no size.
    """
    attrs: dict[str, Any] = {"kernel_shape": list(layer.kernel_size),
                             "strides": list(layer.stride)}
    hw = tuple(ctx.in_shapes[0][1:3])
    if None not in hw:
        attrs["pads"] = onnx_pads(layer._pads(hw))
    elif layer.padding == "same":
        if not same_ok:
            raise ctx.fail(f'padding="same" on an input of free size {hw} cannot be written '
                           f"for {what}; give the model a fixed input size")
        attrs["auto_pad"] = "SAME_UPPER"
    else:
        attrs["pads"] = onnx_pads(resolve_padding(layer.padding, layer.kernel_size,
                                                  layer.stride, (1, 1)))
    return attrs


@register(Conv2D, ("Conv", "Pad"),
          notes="groups; a connection table (LeNet-5's C3) as its zero-masked kernels; "
                "a non-zero `padding_value` as a constant `Pad` before the `Conv`")
def conv2d(ctx: LayerContext) -> None:
    """``Conv`` with numcnn's ``W`` (F, C/G, kh, kw), ``b`` and ``group = G``. A connection
    table is already in ``W``: the absent kernels are stored as zeros, so the dense ``Conv``
    computes exactly the table's sums (``y[o] = Σ_{c: table[c, o]} x[c] ⋆ W[o, c] + b[o]``).
    A non-zero ``padding_value`` (ONNX's ``Conv`` pads with zeros only) is a constant
    ``Pad`` of the input followed by an unpadded ``Conv``."""
    layer = ctx.layer
    x = ctx.inputs[0]
    attrs = window_attrs(ctx, layer, "a convolution",
                         same_ok=layer.padding_value == 0.0)
    if layer.padding_value != 0.0 and any(attrs.get("pads", ())):
        t, left, b, r = attrs["pads"]
        x = ctx.pad(x, [0, 0, t, left, 0, 0, b, r], layer.padding_value)
        attrs["pads"] = [0, 0, 0, 0]
    ins = [x, ctx.param("W", lambda: layer.params["W"])]
    if layer.use_bias:
        ins.append(ctx.param("b", lambda: layer.params["b"]))
    if layer.groups != 1:
        attrs["group"] = layer.groups
    ctx.op("Conv", ins, ctx.out, **attrs)


@register(LocallyConnected2D, ("Pad", "Slice", "Concat", "Reshape", "Transpose", "MatMul", "Add"),
          min_opset=10, notes="unshared kernels: the input's k·k strided slices (`Slice` with "
                              "steps: opset 10), one batched `MatMul` over the positions")
def locally_connected2d(ctx: LayerContext) -> None:
    """``y[n, f, p, q] = Σ_{c,i,j} W[p, q, f, c, i, j] · xp[n, c, p·sh + i, q·sw + j] + b[f, p, q]``
    written as im2col and a batched product:

    * ``xp`` = the zero-padded input; for every kernel offset ``(i, j)`` the strided slice
      ``xp[:, :, i::sh, j::sw]`` (N, C, Ho, Wo), concatenated over the offsets into the
      fields (N, kh·kw·C, Ho, Wo), offset-major;
    * reshaped to (N, K, P) with ``P = Ho·Wo``, transposed to (P, N, K), multiplied by the
      kernels (P, K, F) — numcnn's ``W`` transposed to (Ho, Wo, kh, kw, C, F) — giving
      (P, N, F), transposed to (N, F, P), reshaped to (N, F, Ho, Wo), plus ``b``.
    """
    layer = ctx.layer
    C, H, Wd = ctx.in_shapes[0]
    F, Ho, Wo = ctx.out_shapes[0]
    kh, kw = layer.kernel_size
    sh, sw = layer.stride
    pads = layer._pads((H, Wd))
    x = ctx.inputs[0]
    if any(pads):
        t, b, left, r = pads
        x = ctx.pad(x, [0, 0, t, left, 0, 0, b, r], 0.0)
    fields = [ctx.slice(x, [i, j], [i + sh * (Ho - 1) + 1, j + sw * (Wo - 1) + 1], [2, 3],
                        [sh, sw]) for i in range(kh) for j in range(kw)]
    cols = fields[0] if len(fields) == 1 else ctx.op("Concat", fields, axis=1)
    K, P = kh * kw * C, Ho * Wo
    cols = ctx.reshape(cols, [0, K, P])
    cols = ctx.op("Transpose", [cols], perm=[2, 0, 1])  # (P, N, K)

    def kernels() -> np.ndarray:  # (Ho, Wo, F, C, kh, kw) -> (P, kh·kw·C, F)
        return layer.params["W"].transpose(0, 1, 4, 5, 3, 2).reshape(P, K, F)

    y = ctx.op("MatMul", [cols, ctx.param("W", kernels)])  # (P, N, K) @ (P, K, F)
    y = ctx.op("Transpose", [y], perm=[1, 2, 0])  # (N, F, P)
    if not layer.use_bias:
        ctx.reshape(y, [0, F, Ho, Wo], out=ctx.out)
        return
    y = ctx.reshape(y, [0, F, Ho, Wo])
    ctx.op("Add", [y, ctx.param("b", lambda: layer.params["b"])], ctx.out)
