"""``RNN``, ``LSTM``, ``GRU`` as :class:`~numcnn.layers.RecurrentOp`.

ONNX stacks the gates as LSTM ``i, o, f, c`` and GRU ``z, r, h``; numcnn (PyTorch) as LSTM
``i, f, g, o`` and GRU ``r, z, n``. The weights ``W`` (D, G·H, F), ``R`` (D, G·H, H) and the
bias ``B`` (D, 2·G·H) — ``[W_b, R_b]`` — are split per direction and their row blocks put in
numcnn's order; the peepholes ``P`` (D, 3H), ONNX's ``i, o, f``, become rows ``i, f, o``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...layers import RecurrentOp
from ..import_values import Const, Context
from .common import as_float, converter

#: numcnn's gate blocks in terms of ONNX's: new block k is ONNX block ORDER[k]
ORDER = {"RNN": [0], "LSTM": [0, 2, 3, 1], "GRU": [1, 0, 2]}
_CELL = {"RNN": "rnn", "LSTM": "lstm", "GRU": "gru"}


def _blocks(a: np.ndarray, order: list[int]) -> np.ndarray:
    """The row blocks of ``a`` (G·H, …) reordered."""
    parts = np.split(a, len(order), axis=0)
    return np.concatenate([parts[k] for k in order], axis=0)


@converter("RNN", "LSTM", "GRU")
def recurrent(ctx: Context, node: Any) -> list:
    op = node.op_type
    G = len(ORDER[op])
    x = ctx.tensor(node, 0)
    W = as_float(ctx, node, ctx.const(node, 1, "W"), "W")
    R = as_float(ctx, node, ctx.const(node, 2, "R"), "R")
    H = ctx.attr(node, "hidden_size", None, "int")
    direction = ctx.attr(node, "direction", "forward", "str")
    D = 2 if direction == "bidirectional" else 1
    if H is None or W.ndim != 3 or R.shape != (D, G * H, H) or W.shape[:2] != (D, G * H):
        raise ctx.fail(node, f"W {W.shape} and R {R.shape} do not fit hidden_size={H}, "
                             f"{D} direction(s), {G} gate(s)")
    layout = ctx.attr(node, "layout", 0, "int") if ctx.opset >= 14 else 0
    if x.rank != 3:
        raise ctx.fail(node, f"X must have rank 3; received rank {x.rank}")
    F = x.shape[1]
    if F is not None and F != W.shape[2]:
        raise ctx.fail(node, f"X has {F} features; W expects {W.shape[2]}")
    B = ctx.const(node, 3, "B")
    B = np.zeros((D, 2 * G * H), ctx.dtype) if B is None else as_float(ctx, node, B, "B")
    if B.shape != (D, 2 * G * H):
        raise ctx.fail(node, f"B must have shape ({D}, {2 * G * H}); received {B.shape}")
    P = ctx.const(node, 7, "P") if op == "LSTM" else None
    if P is not None:
        P = as_float(ctx, node, P, "P")
        if P.shape != (D, 3 * H):
            raise ctx.fail(node, f"P must have shape ({D}, {3 * H}); received {P.shape}")
    order = ORDER[op]
    params: dict[str, np.ndarray] = {}
    for d, s in enumerate(["", "_reverse"][:D]):
        params["W_ih" + s] = _blocks(W[d], order)
        params["W_hh" + s] = _blocks(R[d], order)
        params["b_ih" + s] = _blocks(B[d, :G * H], order)
        params["b_hh" + s] = _blocks(B[d, G * H:], order)
        if P is not None:
            p = P[d].reshape(3, H)
            params["P" + s] = p[[0, 2, 1]]  # ONNX i, o, f -> i, f, o
    roles, extra = [], []
    for k, role in ((4, "sequence_lens"), (5, "initial_h"), (6, "initial_c")):
        if not ctx.has(node, k) or (role == "initial_c" and op != "LSTM"):
            continue
        v = ctx.value(node, k)
        if role != "sequence_lens" and isinstance(v, Const) and _zeros(v):
            continue  # zero initial states are the layer's own default
        roles.append(role)
        extra.append(ctx.tensor(node, k))
    names = ("Y", "Y_h", "Y_c")[:3 if op == "LSTM" else 2]
    wanted = [n for k, n in enumerate(names) if k < len(node.output) and node.output[k]]
    if not wanted:
        return []
    acts = ctx.attr(node, "activations", None, "strs")
    layer = RecurrentOp(
        _CELL[op], H, direction, layout, activations=acts,
        activation_alpha=ctx.attr(node, "activation_alpha", None, "floats"),
        activation_beta=ctx.attr(node, "activation_beta", None, "floats"),
        clip=ctx.attr(node, "clip", None, "float"),
        input_forget=bool(ctx.attr(node, "input_forget", 0, "int")),
        peepholes=P is not None,
        linear_before_reset=bool(ctx.attr(node, "linear_before_reset", 0, "int")),
        inputs=roles, outputs=wanted)
    ins = [x] + extra
    ranks = [4 if n == "Y" else 3 for n in wanted]
    if layout == 1 and x.baxis == 0:  # (N, T, F) in: (N, T, D, H) and (N, D, H) out
        baxes: list = [0] * len(wanted)
    elif layout == 0 and x.baxis == 1:  # (T, N, F) in: (T, D, N, H) and (D, N, H) out
        baxes = [2 if n == "Y" else 1 for n in wanted]
    else:
        baxes = [None] * len(wanted)
    outs = ctx.apply(layer, ins if extra else x, node, params, rank=ranks, baxis=baxes)
    by_name = dict(zip(wanted, outs))
    return [by_name.get(n) for n in names[:len(node.output)]]


def _zeros(c: Const) -> bool:
    """A constant of zeros, or the zeros of a batch-sized ``ConstantOfShape``."""
    if c.source is not None and c.source[0] == "fill":
        return c.source[2] == 0.0
    return c.source is None and c.value.size > 0 and not np.any(c.value)
