"""Products and element-wise arithmetic: ``Gemm``, ``MatMul``, ``Add``, ``Sub``, ``Mul``,
``Div``, ``Sum``.

``Gemm(x, B, C)`` with a constant ``B`` over an (N, K) input is numcnn's ``Dense`` (``W =
α·B`` or ``α·Bᵀ``, ``b = β·C``): PyTorch's ``nn.Linear`` exports exactly that. The general
forms — both operands computed, transposed ``A``, a 3-D input — become ``MatMul``,
``Transpose`` and ``Arithmetic`` layers. Element-wise operations on two equally shaped
tensors are numcnn's merge layers ``Add``/``Subtract``/``Multiply``; with broadcasting or a
constant operand they are ``Arithmetic``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...layers import (
    Add,
    Arithmetic,
    Dense,
    MatMul,
    Multiply,
    Subtract,
    TensorReshape,
    Transpose,
)
from ..import_values import Const, Context, Tensor
from .common import as_float, converter, folder

_OP = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div"}
_MERGE = {"add": Add, "sub": Subtract, "mul": Multiply}


def _legacy_broadcast(ctx: Context, node: Any, a_rank: int, b: np.ndarray) -> np.ndarray:
    """Before opset 7, ``broadcast=1, axis=k`` aligns B with A from axis k (not from the
    end, as NumPy): B gets trailing axes of size 1."""
    if ctx.opset >= 7 or not ctx.attr(node, "broadcast", 0, "int"):
        return b
    axis = ctx.attr(node, "axis", None, "int")
    if axis is None:
        return b
    axis = axis + a_rank if axis < 0 else axis
    return b.reshape(b.shape + (1,) * max(a_rank - axis - b.ndim, 0))


def _is_int(t: Tensor) -> bool:
    return t.etype.kind in "iub"


@folder("Add", "Sub", "Mul", "Div")
def fold_arith(ctx: Context, node: Any, arrays: list) -> list:
    a, b = arrays
    b = _legacy_broadcast(ctx, node, a.ndim, b)
    if node.op_type == "Div" and a.dtype.kind in "iu" and b.dtype.kind in "iu":
        if (b == 0).any():
            raise ctx.fail(node, "integer division by zero")
        return [(np.trunc(a / b)).astype(np.result_type(a, b))]
    f = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}
    return [f[node.op_type](a, b)]


def arithmetic(ctx: Context, node: Any, op: str, a: Any, b: Any, suffix: str = "",
               trainable: bool = False) -> Tensor:
    """``a ∘ b`` for values ``a``, ``b`` (a :class:`Tensor` or a constant array)."""
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        raise ctx.fail(node, "internal: both operands are constants")
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        rank = max(a.rank, b.rank)
        truncate = op == "div" and _is_int(a) and _is_int(b)
        if op in _MERGE and a.rank == b.rank and a.shape == b.shape and \
                None not in a.shape and not truncate and a.batch0 and a.batch == b.batch:
            return ctx.apply(_MERGE[op](), [a, b], node, rank=rank, suffix=suffix)[0]
        # the batch axis stays where both operands have it (or one, the other not batched)
        lead = rank - a.rank, rank - b.rank  # broadcasting aligns the last axes
        pa = None if a.baxis is None else a.baxis + lead[0]
        pb = None if b.baxis is None else b.baxis + lead[1]
        baxis = pa if pa is not None and (pb == pa or (pb is None and b.rank <= a.rank)) \
            else pb if pb is not None and pa is None and a.rank <= b.rank else None
        out = ctx.apply(Arithmetic(op, truncate=truncate), [a, b], node, rank=rank,
                        suffix=suffix, baxis=baxis)[0]
        if baxis is not None and out.baxis is None:  # the batch comes from b
            out.batch, out.baxis = b.batch, baxis
        return out
    first = not isinstance(a, Tensor)
    t, c = (b, np.asarray(a)) if first else (a, np.asarray(b))
    truncate = op == "div" and _is_int(t) and c.dtype.kind in "iub"
    rank = max(t.rank, c.ndim)
    baxis = None if t.baxis is None else t.baxis + rank - t.rank
    c = c.reshape(1) if c.ndim == 0 else c  # a scalar operand is stored as shape (1,)
    layer = Arithmetic(op, constant_shape=c.shape, constant_first=first, truncate=truncate,
                       trainable=trainable)
    return ctx.apply(layer, t, node, {"c": as_float(ctx, node, c, "the constant operand")},
                     rank=rank, suffix=suffix, baxis=baxis)[0]


def _operand(ctx: Context, node: Any, k: int) -> Any:
    """Input ``k`` as a tensor, or as an array when it is a constant known at import."""
    v = ctx.value(node, k)
    if isinstance(v, Tensor):
        return v
    if v.source is not None:  # sizes known only at run time (a Fill, a measured Shape)
        return ctx.materialize(v, node)
    return v.value


@converter("Add", "Sub", "Mul", "Div")
def binary(ctx: Context, node: Any) -> list:
    a, b = _operand(ctx, node, 0), _operand(ctx, node, 1)
    if not isinstance(b, Tensor):
        rank = a.rank if isinstance(a, Tensor) else np.ndim(a)
        b = _legacy_broadcast(ctx, node, rank, np.asarray(b))
    const_k = 1 if not isinstance(b, Tensor) else 0 if not isinstance(a, Tensor) else None
    trainable = const_k is not None and ctx.origin(node, const_k) == "initializer"
    return [arithmetic(ctx, node, _OP[node.op_type], a, b, trainable=trainable)]


@folder("Sum")
def fold_sum(ctx: Context, node: Any, arrays: list) -> list:
    out = arrays[0]
    for a in arrays[1:]:
        out = out + a
    return [out]


@converter("Sum")
def sum_(ctx: Context, node: Any) -> list:
    vals = [_operand(ctx, node, k) for k in range(len(node.input))]
    tensors = [v for v in vals if isinstance(v, Tensor)]
    consts = [np.asarray(v) for v in vals if not isinstance(v, Tensor)]
    if len(tensors) > 1 and all(t.shape == tensors[0].shape and t.rank == tensors[0].rank
                                and t.batch0 and t.batch == tensors[0].batch for t in tensors) \
            and None not in tensors[0].shape:
        out = ctx.apply(Add(), tensors, node)[0]
    else:
        out = tensors[0]
        for k, t in enumerate(tensors[1:]):
            out = arithmetic(ctx, node, "add", out, t, suffix=f"_{k + 1}")
    if consts:
        total = consts[0]
        for c in consts[1:]:
            total = total + c
        out = arithmetic(ctx, node, "add", out, total, suffix="_const")
    return [out]


@folder("MatMul")
def fold_matmul(ctx: Context, node: Any, arrays: list) -> list:
    return [np.matmul(arrays[0], arrays[1])]


def _matmul_rank(ra: int, rb: int) -> int:
    if ra == 1 and rb == 1:
        return 0
    if ra == 1:
        return rb - 1
    if rb == 1:
        return ra - 1
    return max(ra, rb)


def matmul(ctx: Context, node: Any, a: Tensor, b: Any, suffix: str = "",
           trainable: bool = True) -> Tensor:
    """``a @ b`` for a tensor ``a`` and a tensor or constant ``b``."""
    if not isinstance(b, Tensor):
        B = as_float(ctx, node, np.asarray(b), "B")
        if B.ndim == 0:
            raise ctx.fail(node, "MatMul operands need rank 1 or more")
        if a.rank == 1 and B.ndim == 1:  # a scalar result: a row times a column, as (1,)
            row = ctx.apply(TensorReshape((1, -1)), a, node, suffix=suffix + "_row")[0]
            return ctx.apply(MatMul(b_shape=B.shape, trainable=trainable), row, node,
                             {"B": B}, rank=0, suffix=suffix)[0]
        if a.rank == 2 and B.ndim == 2 and a.shape[0] == B.shape[0]:
            layer = Dense(B.shape[1], use_bias=False, trainable=trainable)
            return ctx.apply(layer, a, node, {"W": B}, suffix=suffix)[0]
        # every axis of a but its last stays (B of rank ≤ 2 has no batch axes of its own)
        keep = a.baxis is not None and B.ndim <= 2 and a.baxis < a.rank - 1
        return ctx.apply(MatMul(b_shape=B.shape, trainable=trainable), a, node, {"B": B},
                         rank=_matmul_rank(a.rank, B.ndim), suffix=suffix,
                         baxis=a.baxis if keep else None)[0]
    if a.rank == 1 and b.rank == 1:
        row = ctx.apply(TensorReshape((1, -1)), a, node, suffix=suffix + "_row")[0]
        return ctx.apply(MatMul(), [row, b], node, rank=0, suffix=suffix)[0]
    return ctx.apply(MatMul(), [a, b], node, rank=_matmul_rank(a.rank, b.rank),
                     suffix=suffix)[0]


@converter("MatMul")
def matmul_(ctx: Context, node: Any) -> list:
    a = ctx.tensor(node, 0)
    b = _operand(ctx, node, 1)
    trainable = not isinstance(b, Tensor) and ctx.origin(node, 1) == "initializer"
    return [matmul(ctx, node, a, b, trainable=trainable)]


@folder("Gemm")
def fold_gemm(ctx: Context, node: Any, arrays: list) -> list:
    A, B, C = (arrays + [None])[:3]
    A = A.T if ctx.attr(node, "transA", 0, "int") else A
    B = B.T if ctx.attr(node, "transB", 0, "int") else B
    y = ctx.attr(node, "alpha", 1.0, "float") * (A @ B)
    if C is not None:
        y = y + ctx.attr(node, "beta", 1.0, "float") * C
    return [y.astype(np.result_type(A, B))]


@converter("Gemm")
def gemm(ctx: Context, node: Any) -> list:
    alpha = ctx.attr(node, "alpha", 1.0, "float")
    beta = ctx.attr(node, "beta", 1.0, "float")
    trans_a = ctx.attr(node, "transA", 0, "int")
    trans_b = ctx.attr(node, "transB", 0, "int")
    a = ctx.tensor(node, 0)
    if a.rank != 2:
        raise ctx.fail(node, f"A must be a matrix; received rank {a.rank}")
    b = _operand(ctx, node, 1)
    c = _operand(ctx, node, 2) if ctx.has(node, 2) else None
    if not isinstance(b, Tensor) and np.ndim(b) != 2:
        raise ctx.fail(node, f"B must be a matrix; received shape {np.shape(b)}")
    if not isinstance(b, Tensor) and not trans_a:
        B = as_float(ctx, node, np.asarray(b), "B")
        W = alpha * (B.T if trans_b else B)  # (K, M)
        K, M = W.shape
        if a.shape[0] not in (None, K):
            raise ctx.fail(node, f"A has {a.shape[0]} columns; B gives {K} rows")
        bias = None
        if c is not None and not isinstance(c, Tensor):
            try:
                bias = beta * np.broadcast_to(np.asarray(c, dtype=ctx.dtype), (1, M))[0]
            except ValueError:
                bias = None
        trainable = ctx.origin(node, 1) == "initializer"
        if a.shape[0] is not None:
            params = {"W": W} if bias is None else {"W": W, "b": bias}
            y = ctx.apply(Dense(M, use_bias=bias is not None, trainable=trainable), a, node,
                          params)[0]
        else:
            y = ctx.apply(MatMul(b_shape=W.shape, trainable=trainable), a, node, {"B": W})[0]
            if bias is not None:
                y = arithmetic(ctx, node, "add", y, bias, "_bias", trainable)
        if c is not None and bias is None:
            y = _add_c(ctx, node, y, c, beta)
        return [y]
    if trans_a:
        a = ctx.apply(Transpose((1, 0)), a, node, suffix="_transA")[0]
    if isinstance(b, Tensor):
        if trans_b:
            b = ctx.apply(Transpose((1, 0)), b, node, suffix="_transB")[0]
    else:
        b = np.asarray(b).T if trans_b else np.asarray(b)
    y = matmul(ctx, node, a, b, trainable=ctx.origin(node, 1) == "initializer")
    if alpha != 1.0:
        y = arithmetic(ctx, node, "mul", y, np.asarray(alpha), "_alpha")
    if c is not None:
        y = _add_c(ctx, node, y, c, beta)
    return [y]


def _add_c(ctx: Context, node: Any, y: Tensor, c: Any, beta: float) -> Tensor:
    if not isinstance(c, Tensor):
        return arithmetic(ctx, node, "add", y, beta * np.asarray(c, dtype=ctx.dtype), "_C",
                          trainable=ctx.origin(node, 2) == "initializer")
    if beta != 1.0:
        c = arithmetic(ctx, node, "mul", c, np.asarray(beta), "_beta")
    return arithmetic(ctx, node, "add", y, c, "_C")


def constant_value(v: Any) -> Any:
    """The array of a :class:`Const`, else the value itself."""
    return v.value if isinstance(v, Const) else v
