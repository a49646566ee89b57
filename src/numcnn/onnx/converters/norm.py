"""Converters of the normalisation layers: batch normalisation (inference: the running
statistics) and local response normalisation."""

from __future__ import annotations

import numpy as np

from ...layers import (
    BatchNorm1D,
    BatchNorm2D,
    LocalResponseNorm,
    SyncBatchNorm1D,
    SyncBatchNorm2D,
)
from . import register
from .graph import LayerContext


def _batch_norm(ctx: LayerContext) -> None:
    """``y = γ·(x − μ)/√(σ² + ε) + β`` with the running ``μ``, ``σ²``:
    ``BatchNormalization`` in inference mode (γ = 1, β = 0 without ``affine``)."""
    layer = ctx.layer
    C = ctx.in_shapes[0][0]
    if layer.affine:
        gamma = ctx.param("gamma", lambda: layer.params["gamma"])
        beta = ctx.param("beta", lambda: layer.params["beta"])
    else:
        gamma = ctx.param("gamma", lambda: np.ones(C, ctx.dtype))
        beta = ctx.param("beta", lambda: np.zeros(C, ctx.dtype))
    mean = ctx.param("running_mean", lambda: layer.buffers["running_mean"])
    eps = layer.eps
    if ctx.exact(eps):
        var = ctx.param("running_var", lambda: layer.buffers["running_var"])
    else:  # ε as a float32 attribute would be off in a float64 model: fold it into σ²
        var = ctx.param("running_var_plus_eps", lambda: layer.buffers["running_var"] + eps)
        eps = 0.0
    ctx.op("BatchNormalization", [ctx.inputs[0], gamma, beta, mean, var], ctx.out,
           epsilon=eps)


NOTES = ("inference: the running statistics (float64 models: ε folded into the variance, "
         "as ONNX stores ε in float32)")
register(BatchNorm2D, ("BatchNormalization",), notes=NOTES)(_batch_norm)
register(BatchNorm1D, ("BatchNormalization",), notes=NOTES + "; (N, C) and (N, C, L)")(
    _batch_norm)
register(SyncBatchNorm2D, ("BatchNormalization",), notes=NOTES)(_batch_norm)
register(SyncBatchNorm1D, ("BatchNormalization",), notes=NOTES + "; (N, C) and (N, C, L)")(
    _batch_norm)


@register(LocalResponseNorm, ("LRN", "Reshape", "Shape", "Mul", "MatMul", "Add", "Pow"),
          notes="odd size: `LRN` (on (N, C, H, W); other ranks reshaped); even size, where "
                "ONNX centres its window differently, and float64 models (ONNX's α, β, k are "
                "float32): the formula, the window sums as a product with a band matrix")
def local_response_norm(ctx: LayerContext) -> None:
    """``y_c = x_c·(k + (α/n)·Σ_{c'=c−⌊n/2⌋}^{c+⌊(n−1)/2⌋} x_{c'}²)^(−β)``.

    ONNX ``LRN`` sums over ``c − ⌊(n−1)/2⌋ … c + ⌈(n−1)/2⌉``: the same window for odd ``n``,
    shifted by one channel for even ``n``. Odd sizes use ``LRN`` (which takes (N, C, H, W):
    other ranks are reshaped to (N, C, L, 1) and back); even sizes — and float64 models,
    whose α, β, k a float32 attribute would round — write the formula, the window sums
    being ``B x²`` with the (C, C) band matrix ``B[c, c'] = 1`` on numcnn's window.
    """
    layer = ctx.layer
    x = ctx.inputs[0]
    rank = len(ctx.in_shapes[0]) + 1
    n = layer.size
    if n % 2 == 1 and ctx.exact(layer.alpha, layer.beta, layer.k):
        if rank == 4:
            ctx.op("LRN", [x], ctx.out, size=n, alpha=layer.alpha, beta=layer.beta,
                   bias=layer.k)
            return
        x4 = ctx.reshape(x, [0, 0, -1, 1])
        y4 = ctx.op("LRN", [x4], main=True, size=n, alpha=layer.alpha, beta=layer.beta,
                    bias=layer.k)
        ctx.op("Reshape", [y4, ctx.op("Shape", [x])], ctx.out)
        return
    C = ctx.in_shapes[0][0]
    if C is None:
        raise ctx.fail("an even size needs the number of channels known")
    c = np.arange(C)
    band = ((c[None, :] >= c[:, None] - n // 2) & (c[None, :] <= c[:, None] + (n - 1) // 2))
    x3 = ctx.reshape(x, [0, 0, -1])  # (N, C, L)
    sq = ctx.op("Mul", [x3, x3])
    s = ctx.op("MatMul", [ctx.const(band.astype(np.float64), "window"), sq])  # (C,C)@(N,C,L)
    s = ctx.op("Mul", [s, ctx.scalar(layer.alpha / n, "alpha_over_n")])
    d = ctx.op("Add", [s, ctx.scalar(layer.k, "k")], main=True)
    dm = ctx.op("Pow", [d, ctx.scalar(-layer.beta, "minus_beta")])
    y = ctx.op("Mul", [x3, dm])
    ctx.op("Reshape", [y, ctx.op("Shape", [x])], ctx.out)
