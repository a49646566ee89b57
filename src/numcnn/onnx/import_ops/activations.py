"""Activations, softmax, normalisation, dropout and sums: ``Relu``, ``LeakyRelu``,
``Sigmoid``, ``Tanh``, ``Softmax``, ``LogSoftmax``, ``BatchNormalization``, ``LRN``,
``Dropout``, ``ReduceSum``, ``ReduceMean``.

Each is numcnn's own layer where one computes it (``ReLU``, ``Softmax`` over the features of
an (N, K) input, ``BatchNorm2D``, ``LocalResponseNorm``, ``Dropout``); softmax over another
axis is ``AxisSoftmax``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...layers import (
    Arithmetic,
    AxisSoftmax,
    BatchNorm1D,
    BatchNorm2D,
    Dropout,
    FullLike,
    Gather,
    LeakyReLU,
    LocalResponseNorm,
    Moments,
    Reduce,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
    TensorReshape,
)
from ..import_values import Context
from .common import as_float, converter, folder
from .dense import arithmetic


@converter("Relu", "Sigmoid", "Tanh")
def elementwise(ctx: Context, node: Any) -> list:
    x = ctx.tensor(node, 0)
    layer = {"Relu": ReLU, "Sigmoid": Sigmoid, "Tanh": Tanh}[node.op_type]()
    return ctx.apply(layer, x, node, rank=x.rank)


@converter("LeakyRelu")
def leaky_relu(ctx: Context, node: Any) -> list:
    x = ctx.tensor(node, 0)
    return ctx.apply(LeakyReLU(ctx.attr(node, "alpha", 0.01, "float")), x, node, rank=x.rank)


@converter("Softmax", "LogSoftmax")
def softmax(ctx: Context, node: Any) -> list:
    x = ctx.tensor(node, 0)
    r = max(x.rank, 1)
    if ctx.opset >= 13:
        axis = ctx.attr(node, "axis", -1, "int")
        axis = axis + r if axis < 0 else axis
        axes = (axis,)
    else:  # the input is seen as a matrix: the axes from `axis` on are one axis
        axis = ctx.attr(node, "axis", 1, "int")
        axis = axis + r if axis < 0 else axis
        axes = tuple(range(axis, r))
    if not axes or not 0 <= axes[0] < r:
        raise ctx.fail(node, f"axis {ctx.attr(node, 'axis', None)} does not fit rank {x.rank}")
    log = node.op_type == "LogSoftmax"
    if not log and x.rank == 2 and axes == (1,):
        return ctx.apply(Softmax(), x, node)
    return ctx.apply(AxisSoftmax(axes, log=log), x, node, rank=x.rank)


@converter("BatchNormalization")
def batch_norm(ctx: Context, node: Any) -> list:
    x = ctx.tensor(node, 0)
    names = ("scale", "B", "mean", "var")
    scale, bias, mean, var = (as_float(ctx, node, ctx.const(node, k, names[k - 1]), names[k - 1])
                              for k in range(1, 5))
    eps = ctx.attr(node, "epsilon", 1e-5, "float")
    momentum = ctx.attr(node, "momentum", 0.9, "float")
    if ctx.opset < 9 and ctx.attr(node, "spatial", 1, "int") != 1:
        raise ctx.fail(node, "spatial=0 (statistics per activation) is not supported")
    training = ctx.attr(node, "training_mode", 0, "int") if ctx.opset >= 14 else 0
    if ctx.opset < 14 and len([o for o in node.output if o]) > 1:
        raise ctx.fail(node, "the training outputs of BatchNormalization before opset 14 "
                             "(saved mean and variance) are not supported")
    C = x.shape[0] if x.shape else None
    if C is None or any(a.shape != (C,) for a in (scale, bias, mean, var)):
        raise ctx.fail(node, f"scale, B, mean and var must have shape (C,) for the input's "
                             f"{C} channels")
    if not (0.0 <= momentum <= 1.0) or eps < 0:
        raise ctx.fail(node, f"momentum {momentum} must be in [0, 1] and epsilon {eps} "
                             f"non-negative")
    # ε = 0 (an exporter that folded ε into the variance, as numcnn's does for float64):
    # numcnn's BatchNorm needs ε > 0; the smallest normal float keeps inference exact
    eps = eps or float(np.finfo(ctx.dtype).tiny)
    if training:
        return _batch_norm_training(ctx, node, x, scale, bias, mean, var, eps, momentum)
    params = {"gamma": scale, "beta": bias}
    buffers = {"running_mean": mean, "running_var": var}
    if x.rank == 4:  # ONNX keeps (1 − momentum) of each batch; numcnn (PyTorch) says momentum
        layer = BatchNorm2D(momentum=1.0 - momentum, eps=eps)
    elif x.rank in (2, 3):
        layer = BatchNorm1D(momentum=1.0 - momentum, eps=eps)
    else:  # inference-only: y = x·a + b with a = γ/√(σ² + ε), b = β − μ·a per channel
        a = scale / np.sqrt(var + eps)
        shape = (C,) + (1,) * (x.rank - 2)
        y = ctx.apply(Arithmetic("mul", constant_shape=shape), x, node,
                      {"c": a.reshape(shape)}, rank=x.rank, suffix="_scale")[0]
        return ctx.apply(Arithmetic("add", constant_shape=shape), y, node,
                         {"c": (bias - mean * a).reshape(shape)}, rank=x.rank)
    return ctx.apply(layer, x, node, params, buffers)


@converter("LRN")
def lrn(ctx: Context, node: Any) -> list:
    x = ctx.tensor(node, 0)
    size = ctx.attr(node, "size", None, "int")
    if size is None or size < 1:
        raise ctx.fail(node, f"size must be a positive int; received {size}")
    layer = LocalResponseNorm(size, ctx.attr(node, "alpha", 1e-4, "float"),
                              ctx.attr(node, "beta", 0.75, "float"),
                              ctx.attr(node, "bias", 1.0, "float"))
    if size % 2:
        return ctx.apply(layer, x, node, rank=x.rank)
    # even sizes: ONNX's window reaches one channel further up than numcnn's (PyTorch's),
    # which is numcnn's window on the channels in reverse order
    C = x.shape[0] if x.shape else None
    if C is None:
        raise ctx.fail(node, "an even size needs the number of channels")
    flip = list(range(C - 1, -1, -1))
    r = ctx.apply(Gather(flip, axis=1), x, node, suffix="_reverse")[0]
    y = ctx.apply(layer, r, node, rank=x.rank)[0]
    return ctx.apply(Gather(flip, axis=1), y, node, suffix="_unreverse")


@converter("Dropout")
def dropout(ctx: Context, node: Any) -> list:
    x = ctx.tensor(node, 0)
    if ctx.opset >= 12:
        r = ctx.const(node, 1, "the ratio")
        ratio = 0.5 if r is None else float(np.asarray(r).reshape(-1)[0])
        t = ctx.const(node, 2, "training_mode")
        training = False if t is None else bool(np.asarray(t).reshape(-1)[0])
    else:
        ratio = ctx.attr(node, "ratio", 0.5, "float")
        training = ctx.opset < 7 and not ctx.attr(node, "is_test", 0, "int")
    if training and ratio > 0 and not (ctx.opset < 7):
        raise ctx.fail(node, "training-mode Dropout inside the graph is not supported: numcnn "
                             "drops units during fit() (the Dropout layer) and never in "
                             "predict()")
    if not 0.0 <= ratio < 1.0:
        raise ctx.fail(node, f"ratio must be in [0, 1); received {ratio}")
    outs = ctx.apply(Dropout(ratio), x, node, rank=x.rank)
    if len(node.output) > 1 and node.output[1]:
        mask = ctx.apply(FullLike(1.0), x, node, rank=x.rank, etype=np.bool_,
                         suffix="_mask")[0]
        outs.append(mask)
    return outs


def _batch_norm_training(ctx: Context, node: Any, x: Any, scale: np.ndarray,
                         bias: np.ndarray, mean: np.ndarray, var: np.ndarray, eps: float,
                         momentum: float) -> list:
    """``training_mode=1``: normalise with the batch's statistics and output the running
    ones updated as ONNX defines them, ``running = running·m + batch·(1 − m)`` with the
    biased batch variance — a :class:`Moments` layer and arithmetic (every piece has its
    backward pass)."""
    C = x.shape[0]
    axes = (0,) + tuple(range(2, x.rank))
    shape = (C,) + (1,) * (x.rank - 2)
    mu, sigma2 = ctx.apply(Moments(axes), x, node, rank=[x.rank, x.rank], baxis=None,
                           suffix="_moments")
    xc = arithmetic(ctx, node, "sub", x, mu, "_center")
    inv = arithmetic(ctx, node, "pow", arithmetic(ctx, node, "add", sigma2, np.asarray(eps),
                                                  "_eps"), np.asarray(-0.5), "_rsqrt")
    y = arithmetic(ctx, node, "mul", xc, inv, "_normalise")
    y = arithmetic(ctx, node, "mul", y, scale.reshape(shape), "_scale", trainable=True)
    y = arithmetic(ctx, node, "add", y, bias.reshape(shape), "", trainable=True)
    outs = [y]
    for k, (stat, old) in enumerate(((mu, mean), (sigma2, var))):
        if len(node.output) <= k + 1 or not node.output[k + 1]:
            break
        flat = ctx.apply(TensorReshape((C,)), stat, node, rank=1, baxis=None,
                         suffix=f"_stat{k}")[0]
        new = arithmetic(ctx, node, "mul", flat, np.asarray(1.0 - momentum), f"_new{k}")
        outs.append(arithmetic(ctx, node, "add", new, momentum * old, f"_running{k}"))
    return outs


def _reduce_axes(ctx: Context, node: Any, rank: int) -> tuple[list[int], bool]:
    """The axes (sorted, non-negative) and keepdims of a ReduceSum/ReduceMean node."""
    attr_until = {"ReduceSum": 13, "ReduceMean": 18}[node.op_type]
    if ctx.opset < attr_until:
        axes = ctx.attr(node, "axes", None, "ints")
    else:
        v = ctx.const(node, 1, "the axes")
        axes = None if v is None else [int(a) for a in np.asarray(v).reshape(-1)]
    keep = bool(ctx.attr(node, "keepdims", 1, "int"))
    if not axes:
        if ctx.opset >= attr_until and ctx.attr(node, "noop_with_empty_axes", 0, "int"):
            return [], keep
        axes = list(range(rank))
    out = sorted({a + rank if a < 0 else a for a in axes})
    if len(out) != len(axes) or out[0] < 0 or out[-1] >= rank:
        raise ctx.fail(node, f"axes {axes} do not fit rank {rank}")
    return out, keep


@folder("ReduceSum", "ReduceMean")
def fold_reduce(ctx: Context, node: Any, arrays: list) -> list:
    a = arrays[0]
    axes, keep = _reduce_axes(ctx, node, a.ndim)
    if not axes:
        return [a]
    f = np.sum if node.op_type == "ReduceSum" else np.mean
    return [f(a, axis=tuple(axes), keepdims=keep).astype(a.dtype)]


@converter("ReduceSum", "ReduceMean")
def reduce(ctx: Context, node: Any) -> list:
    x = ctx.tensor(node, 0)
    axes, keep = _reduce_axes(ctx, node, max(x.rank, 1))
    if not axes:
        return [x]
    op = "sum" if node.op_type == "ReduceSum" else "mean"
    rank = x.rank if keep else x.rank - len(axes)
    b = x.baxis
    baxis = None if b is None or b in axes else b if keep else b - sum(a < b for a in axes)
    if rank == 0 or (not keep and len(axes) == x.rank):  # a scalar: kept as shape (1,)
        y = ctx.apply(Reduce(op, tuple(axes), keepdims=True), x, node, baxis=None)[0]
        return ctx.apply(TensorReshape((1,)), y, node, rank=0, baxis=None, suffix="_scalar")
    return ctx.apply(Reduce(op, tuple(axes), keepdims=keep), x, node, rank=rank, baxis=baxis)
