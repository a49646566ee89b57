"""Converters of LeNet-5's (1998) own layers, each a small graph of standard operators:
trainable subsampling as a depthwise ``Conv``, the scaled tanh as ``Mul → Tanh → Mul`` and
the Euclidean RBF units as squared differences summed.
"""

from __future__ import annotations

import numpy as np

from ...layers import RBFOutput, ScaledTanh, Subsampling2D
from . import register
from .graph import LayerContext


@register(Subsampling2D, ("Conv",),
          notes="a depthwise `Conv` whose p×p kernel of map c is all `coef[c]`")
def subsampling2d(ctx: LayerContext) -> None:
    """``y[c] = coef[c] · Σ_{p×p} x[c] + b[c]`` over non-overlapping windows is a depthwise
    convolution (``group = C``) with kernel ``coef[c]·1_{p×p}``, stride ``p`` and bias ``b``;
    rows and columns that do not fill a window are dropped by both."""
    layer = ctx.layer
    C = ctx.in_shapes[0][0]
    p = layer.pool_size

    def kernel() -> np.ndarray:  # (C, 1, p, p)
        coef = layer.params["coef"]
        return np.broadcast_to(coef[:, None, None, None], (C, 1, p, p)).astype(coef.dtype)

    ctx.op("Conv", [ctx.inputs[0], ctx.param("coef", kernel),
                    ctx.param("b", lambda: layer.params["b"])], ctx.out,
           kernel_shape=[p, p], strides=[p, p], group=int(C))


@register(ScaledTanh, ("Mul", "Tanh"))
def scaled_tanh(ctx: LayerContext) -> None:
    """``f(a) = A·tanh(S·a)``: ``Mul(S) → Tanh → Mul(A)``, numcnn's order."""
    layer = ctx.layer
    a = ctx.op("Mul", [ctx.inputs[0], ctx.scalar(layer.S, "S")])
    t = ctx.op("Tanh", [a])
    ctx.op("Mul", [t, ctx.scalar(layer.A, "A")], ctx.out)


@register(RBFOutput, ("Unsqueeze", "Sub", "Mul", "ReduceSum"),
          notes="`y_i = Σ_j (x_j − w_ij)²` as differences squared and summed")
def rbf_output(ctx: LayerContext) -> None:
    """``y[n, i] = Σ_j (x[n, j] − W[i, j])²``: ``x`` (N, 1, D) minus the centres (U, D)
    broadcast to (N, U, D), squared, summed over D — numcnn's own formula (the expanded
    ``‖x‖² − 2x·w + ‖w‖²`` would lose digits to cancellation)."""
    layer = ctx.layer
    x = ctx.unsqueeze(ctx.inputs[0], [1])
    d = ctx.op("Sub", [x, ctx.param("W", lambda: layer.params["W"])])
    d2 = ctx.op("Mul", [d, d])
    ctx.reduce("ReduceSum", d2, [2], keepdims=False, out=ctx.out)
