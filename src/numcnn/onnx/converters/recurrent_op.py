"""Converter of ``RecurrentOp`` — ONNX's ``RNN``/``LSTM``/``GRU`` as a numcnn layer — back to
the operator, every attribute kept: the weights from PyTorch's gate order to ONNX's (as
:mod:`.recurrent`), the peepholes ``P`` rows p_i, p_f, p_o to ONNX's i, o, f, and
``layout=1`` written as transposes around a ``layout=0`` node (ONNX Runtime has no
``layout=1``)."""

from __future__ import annotations

import numpy as np

from ...layers import RecurrentOp
from . import register
from .graph import LayerContext
from .recurrent import OP, _gates, keep_initial

#: ONNX's spelling of the activations numcnn accepts in any case
ACTIVATIONS = {a.lower(): a for a in ("Sigmoid", "Tanh", "Relu", "Affine", "LeakyRelu",
                                      "ThresholdedRelu", "ScaledTanh", "HardSigmoid", "Elu",
                                      "Softsign", "Softplus")}
DEFAULTS = {"rnn": ["Tanh"], "lstm": ["Sigmoid", "Tanh", "Tanh"], "gru": ["Sigmoid", "Tanh"]}


@register(RecurrentOp, ("RNN", "LSTM", "GRU", "Transpose", "Cast"),
          notes="every attribute kept (activations, clip, peepholes, input_forget, "
                "linear_before_reset); `layout=1` as transposes around a `layout=0` node")
def recurrent_op(ctx: LayerContext) -> None:
    layer = ctx.layer
    cell, H = layer.cell, layer.units
    sfx = ["", "_reverse"][:layer.n_dirs]
    p = layer.params

    def stack(key: str) -> np.ndarray:
        return np.stack([_gates(p[key + s], cell, H) for s in sfx])

    W = ctx.param("onnx_W", lambda: stack("W_ih"))
    R = ctx.param("onnx_R", lambda: stack("W_hh"))
    B = ctx.param("onnx_B", lambda: np.concatenate([stack("b_ih"), stack("b_hh")], axis=1))
    extra = dict(zip(layer.inputs, ctx.inputs[1:]))
    x = ctx.inputs[0]
    if layer.layout == 1:
        x = ctx.op("Transpose", [x], perm=[1, 0, 2])
    lens = extra.get("sequence_lens")
    lens = "" if lens is None else ctx.cast(lens, "int32")
    ins = [x, W, R, B, lens]
    init = []
    for key in ("initial_h", "initial_c")[:2 if cell == "lstm" else 1]:
        v = extra.get(key)
        if v is not None and layer.layout == 1:
            v = ctx.op("Transpose", [v], perm=[1, 0, 2])
        init.append("" if v is None else v)
    ins += init
    if layer.peepholes:
        ins.append(ctx.param("onnx_P", lambda: np.stack(
            [p["P" + s][[0, 2, 1]].reshape(-1) for s in sfx])))
    while ins[-1] == "":
        ins.pop()
    attrs = {"hidden_size": H, "direction": layer.direction}
    acts = [ACTIVATIONS.get(a.lower(), a) for a in layer.activations]
    if acts != DEFAULTS[cell] * layer.n_dirs:
        attrs["activations"] = acts
    for key in ("activation_alpha", "activation_beta"):
        if getattr(layer, key):
            if not ctx.exact(*getattr(layer, key)):
                raise ctx.fail(f"{key} {getattr(layer, key)} is not float32 numbers, which "
                               "ONNX's float attributes hold")
            attrs[key] = list(getattr(layer, key))
    if layer.clip is not None:
        if not ctx.exact(layer.clip):
            raise ctx.fail(f"clip={layer.clip} is not a float32 number, which ONNX's "
                           "float attribute holds")
        attrs["clip"] = layer.clip
    if cell == "lstm" and layer.input_forget:
        attrs["input_forget"] = 1
    if cell == "gru" and layer.linear_before_reset:
        attrs["linear_before_reset"] = 1
    n_out = 3 if cell == "lstm" else 2
    names = {o: n for o, n in zip(layer.outputs, ctx.outputs)}
    guard = bool(lens) and any(init)  # a final state may need its initial value back
    raw = [ctx.g.value_name(f"{ctx.name}/{o}")
           if (layer.layout == 1 or o not in names or (guard and o != "Y")) else names[o]
           for o in ("Y", "Y_h", "Y_c")[:n_out]]
    ctx.op(OP[cell], ins, raw, main=True, **attrs)
    for k, o in enumerate(("Y", "Y_h", "Y_c")[:n_out]):
        if o not in names:
            continue
        v = raw[k]
        if k and guard:
            v = keep_initial(ctx, lens, init[k - 1], v)
        if layer.layout == 1:
            ctx.op("Transpose", [v], names[o], perm=[2, 0, 1, 3] if o == "Y" else [1, 0, 2])
        elif v != names[o]:
            ctx.op("Identity", [v], names[o])
