"""Converters of the recurrent layers: ``SimpleRNN``, ``LSTM`` and ``GRU`` as ONNX ``RNN``,
``LSTM`` and ``GRU``, and ``Bidirectional`` as one node with ``direction="bidirectional"``.

**Weights.** numcnn keeps PyTorch's layout: ``W_ih`` (G·H, F), ``W_hh`` (G·H, H), ``b_ih``,
``b_hh`` (G·H,), gates stacked in PyTorch's order. ONNX stacks ``W`` (D, G·H, F),
``R`` (D, G·H, H) and ``B`` (D, 2·G·H) = ``[Wb, Rb]`` per direction ``D``, in its own order:

* LSTM: PyTorch i, f, g, o → ONNX i, o, f, c (``c`` is PyTorch's candidate ``g``);
* GRU: PyTorch r, z, n → ONNX z, r, h; PyTorch's ``b_hn`` inside the reset product is ONNX's
  ``linear_before_reset=1``;
* RNN: one gate; ``activations=["Tanh"]`` or ``["Relu"]``.

**Layout.** ONNX reads (T, N, F) (``layout=0``, which every runtime has; ONNX Runtime lacks
``layout=1``): the input is transposed, and ``Y`` (T, D, N, H) back to (N, T, H) per
direction, where ``y[:, t]`` is the state after reading ``x_t`` — numcnn's order for a
forward layer; a layer with ``go_backwards`` outputs it reversed in time (Keras's order),
and ``Bidirectional`` puts its backward half back in time order, as ONNX does.

**Masks.** A masked step keeps the state and outputs zeros, wherever it is. ONNX's
``sequence_lens`` only skips steps at the end of a sequence, so the graph first gathers each
sequence's real steps to the front in order — the real step t goes to
``cumsum(m)[t] − 1``, the padding after them — (``ScatterElements``), runs the node with
``sequence_lens = Σ_t m``, and puts the outputs back in place (``GatherElements``, times
the mask). That is exact for any mask, padding on either side or in the middle.

A ``stateful`` layer carries its state from one batch to the next; a graph keeps no state
between runs, so it is refused.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...layers import GRU, LSTM, Bidirectional, SimpleRNN
from . import register
from .graph import LayerContext
from .wrappers import step_mask

GATE_ORDER = {"rnn": [0], "lstm": [0, 3, 1, 2], "gru": [1, 0, 2]}
OP = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
NOTES = ("gate order and biases converted; masks: opset 11 (real steps gathered first, "
         "`sequence_lens`, put back); `go_backwards` sequences: opset 10; stateful refused")


def _gates(a: np.ndarray, cell: str, H: int) -> np.ndarray:
    """Row blocks of size H of ``a`` (PyTorch's gate order) in ONNX's order."""
    return np.concatenate([a[k * H:(k + 1) * H] for k in GATE_ORDER[cell]], axis=0)


def _check(ctx: LayerContext, layers: list[Any]) -> None:
    for lay in layers:
        if lay.stateful:
            raise ctx.fail("stateful=True carries the state from one batch to the next, "
                           "which an ONNX graph cannot keep between runs; export a copy "
                           "built with stateful=False (pass carried states as "
                           "initial_state inputs)")


class Run:
    """The outputs of one ONNX recurrent node: ``Y`` (T, D, N, H), ``Y_h`` and ``Y_c``
    (D, N, H), with the mask plan needed to put sequences back in place."""

    def __init__(self, ctx: LayerContext, Y: str, Y_h: str, Y_c: str | None,
                 mask: tuple[str, str] | None):
        self.ctx, self.Y, self.Y_h, self.Y_c, self.mask = ctx, Y, Y_h, Y_c, mask

    def sequence(self, d: int, out: str | None = None) -> str:
        """Direction ``d``'s outputs as (N, T, H), ``[:, t]`` after reading ``x_t``."""
        ctx = self.ctx
        y = ctx.op("Transpose", [ctx.take(self.Y, d, 1)], None if self.mask else out,
                   perm=[1, 0, 2])
        if self.mask is None:
            return y
        m, pos = self.mask
        y = ctx.op("GatherElements", [y, _expand(ctx, pos, y)], axis=1)
        return ctx.op("Mul", [y, ctx.unsqueeze(m, [2])], out)

    def state(self, d: int, k: int, out: str | None = None) -> str:
        """Direction ``d``'s final state ``k`` (0: h, 1: c), (N, H)."""
        return self.ctx.take(self.Y_h if k == 0 else self.Y_c, d, 0, out)


def _expand(ctx: LayerContext, pos: str, like: str) -> str:
    """The (N, T) positions as indices of the shape of ``like`` (N, T, X)."""
    return ctx.op("Expand", [ctx.unsqueeze(pos, [2]), ctx.op("Shape", [like])])


def _mask_plan(ctx: LayerContext, src: str, mask_input: Any) -> tuple[str, str, str]:
    """``(m, lens, pos)``: the mask (N, T) in the model's dtype, the real steps per sequence
    (N,) int32, and where each step goes when the real ones are gathered first (N, T) int64:
    ``m·(cumsum(m) − 1) + (1 − m)·(Σm + cumsum(1 − m) − 1)``."""
    m = step_mask(ctx, src, None if mask_input == "mask" else mask_input["mask_value"])
    one = ctx.scalar(1.0, "one")
    axis = ctx.const(np.asarray(1, np.int64), "time_axis", np.int64)
    lens = ctx.reduce("ReduceSum", m, [1], keepdims=True)  # (N, 1)
    pad = ctx.op("Sub", [one, m])
    real_at = ctx.op("Sub", [ctx.op("CumSum", [m, axis]), one])
    pad_at = ctx.op("Sub", [ctx.op("Add", [lens, ctx.op("CumSum", [pad, axis])]), one])
    pos = ctx.op("Add", [ctx.op("Mul", [m, real_at]), ctx.op("Mul", [pad, pad_at])])
    return m, ctx.cast(ctx.squeeze(lens, [1]), "int32"), ctx.cast(pos, "int64")


def run(ctx: LayerContext, layers: list[Any], direction: str, x: str, states: list[str] | None,
        mask_src: str | None, mask_input: Any, tag: str = "") -> Run:
    """One ONNX node for ``layers`` (one, or the forward and backward of a Bidirectional)
    reading ``x`` (N, T, F) in ``direction``; ``states`` the initial states in numcnn's order
    (per direction: h, and c for the LSTM), each (N, H)."""
    lay = layers[0]
    cell, H, D = lay.cell, lay.units, len(layers)
    n_states = 2 if cell == "lstm" else 1
    mask = None
    lens = ""
    if mask_src is not None:
        ctx.require(11, "a padding mask")
        m, lens, pos = _mask_plan(ctx, mask_src, mask_input)
        x = ctx.op("ScatterElements", [x, _expand(ctx, pos, x), x], axis=1)
        mask = (m, pos)
    xt = ctx.op("Transpose", [x], perm=[1, 0, 2])  # (T, N, F)
    key = f"{tag}onnx_"
    W = ctx.param(key + "W", lambda: np.stack([_gates(a.params["W_ih"], cell, H) for a in layers]))
    R = ctx.param(key + "R", lambda: np.stack([_gates(a.params["W_hh"], cell, H) for a in layers]))
    B = ctx.param(key + "B", lambda: np.stack([np.concatenate(
        [_gates(a.params["b_ih"], cell, H), _gates(a.params["b_hh"], cell, H)]) for a in layers]))
    init = ["", ""]
    if states is not None:
        for k in range(n_states):
            parts = [ctx.unsqueeze(states[d * n_states + k], [0]) for d in range(D)]
            init[k] = parts[0] if D == 1 else ctx.op("Concat", parts, axis=0)
    ins = [xt, W, R, B, lens] + init[:n_states]
    while ins[-1] == "":
        ins.pop()
    attrs: dict[str, Any] = {"hidden_size": H, "direction": direction}
    if cell == "rnn":
        attrs["activations"] = [a.activation.capitalize() for a in layers]
    elif cell == "gru":
        attrs["linear_before_reset"] = 1
    name = f"{ctx.name}/{tag.rstrip('_')}" if tag else None
    outs = [ctx.g.value_name(f"{name or ctx.name}/{o}") for o in ("Y", "Y_h", "Y_c")[:n_states + 1]]
    if name is None:
        ctx.op(OP[cell], ins, outs, main=True, **attrs)
    else:
        ctx.g.add_node(OP[cell], ins, outs, name, attrs)
    finals = [keep_initial(ctx, lens, init[k], outs[1 + k]) for k in range(n_states)]
    return Run(ctx, outs[0], finals[0], finals[1] if cell == "lstm" else None, mask)


def keep_initial(ctx: LayerContext, lens: str, init: str, final: str) -> str:
    """The final state (D, N, H), with a sequence of no real step keeping its initial state
    as numcnn's recurrence does (ONNX Runtime outputs zeros for ``sequence_lens`` 0, which
    ONNX leaves unspecified): ``Where(lens == 0, init, final)``."""
    if not lens or not init:
        return final
    zero = ctx.const(np.asarray(0, np.int32), "zero", np.int32)
    empty = ctx.unsqueeze(ctx.op("Equal", [lens, zero]), [0, 2])  # (1, N, 1)
    return ctx.op("Where", [empty, init, final])


def _split(ctx: LayerContext, layer: Any, n_states: int) -> tuple[str, list | None, str | None]:
    """``(x, initial states or None, mask source or None)`` from the call's inputs."""
    ins = ctx.inputs
    states = ins[1:1 + n_states] if layer.initial_state_input else None
    return ins[0], states, (ins[-1] if layer.mask_input is not None else None)


@register(SimpleRNN, ("RNN", "Transpose", "Gather", "Slice"), notes=NOTES)
@register(LSTM, ("LSTM", "Transpose", "Gather", "Slice"), notes=NOTES)
@register(GRU, ("GRU", "Transpose", "Gather", "Slice"), notes=NOTES)
def recurrent(ctx: LayerContext) -> None:
    """One ``RNN``/``LSTM``/``GRU`` node (``direction="reverse"`` for ``go_backwards``);
    outputs: the last state, or every step's (reversed in time for ``go_backwards``), then
    the final states with ``return_state``."""
    layer = ctx.layer
    _check(ctx, [layer])
    x, states, src = _split(ctx, layer, layer.n_states)
    if layer.return_sequences and layer.go_backwards:
        ctx.require(10, "go_backwards with return_sequences (a reversed sequence)")
    r = run(ctx, [layer], "reverse" if layer.go_backwards else "forward", x, states, src,
            layer.mask_input)
    outs = ctx.outputs
    if not layer.return_sequences:
        r.state(0, 0, outs[0])
    elif layer.go_backwards:
        ctx.reverse(r.sequence(0), 1, outs[0])
    else:
        r.sequence(0, outs[0])
    for k, name in enumerate(outs[1:]):
        r.state(0, k, name)


@register(Bidirectional, ("RNN", "LSTM", "GRU", "Transpose", "Gather", "Slice", "Concat", "Add",
                          "Mul"),
          notes="one node with `direction=\"bidirectional\"` (two when a half reads the other "
                "way); merge modes concat, sum, mul, ave, None; " + NOTES)
def bidirectional(ctx: LayerContext) -> None:
    """Both directions, merged as the layer says: ``y_f`` and ``y_b`` are (N, T, H) in time
    order (or the final states); ``concat`` joins them on the last axis, ``sum``/``mul``
    add/multiply, ``ave`` is ``(y_f + y_b)·0.5``, None outputs both; the final states
    follow, forward then backward."""
    layer = ctx.layer
    fl, bl = layer.forward_layer, layer.backward_layer
    _check(ctx, [fl, bl])
    n = fl.n_states
    x, states, src = _split(ctx, layer, 2 * n)
    seq = layer.return_sequences
    if not fl.go_backwards and bl.go_backwards:
        r = run(ctx, [fl, bl], "bidirectional", x, states, src, layer.mask_input)
        runs = [(r, 0), (r, 1)]
        yf = r.sequence(0) if seq else r.state(0, 0)
        yb = r.sequence(1) if seq else r.state(1, 0)
    else:
        if seq:
            ctx.require(10, "a Bidirectional layer whose backward half reads forwards")
        runs, ys = [], []
        for k, (lay, tag) in enumerate(((fl, "forward_"), (bl, "backward_"))):
            st = None if states is None else states[k * n:(k + 1) * n]
            r = run(ctx, [lay], "reverse" if lay.go_backwards else "forward", x, st, src,
                    layer.mask_input, tag)
            runs.append((r, 0))
            ys.append(r.sequence(0) if seq else r.state(0, 0))
        # numcnn: the forward half's own output order, the backward half's reversed
        yf = ctx.reverse(ys[0], 1) if seq and fl.go_backwards else ys[0]
        yb = ctx.reverse(ys[1], 1) if seq and not bl.go_backwards else ys[1]
    outs = list(ctx.outputs)
    mode = layer.merge_mode
    if mode is None:
        ctx.op("Identity", [yf], outs.pop(0))
        ctx.op("Identity", [yb], outs.pop(0))
    else:
        out = outs.pop(0)
        if mode == "concat":
            ctx.op("Concat", [yf, yb], out, axis=2 if seq else 1)
        elif mode == "sum":
            ctx.op("Add", [yf, yb], out)
        elif mode == "mul":
            ctx.op("Mul", [yf, yb], out)
        else:
            ctx.op("Mul", [ctx.op("Add", [yf, yb]), ctx.scalar(0.5, "half")], out)
    for (r, d), names in zip(runs, (outs[:n], outs[n:])):
        for k, name in enumerate(names):
            r.state(d, k, name)
