"""``export(model, path)``: a numcnn model as an ONNX graph that computes what ``predict`` does.

The model's graph is walked in execution order (the same steps ``predict`` runs); every call
of a layer is handed to its converter (:mod:`numcnn.onnx.converters`: one per layer class,
each declaring the opsets it writes), nested models are written inline, their layers named
``block/conv``. What comes out:

* only standard ``ai.onnx`` operators, at the opset asked for (default
  :data:`~numcnn.onnx.converters.DEFAULT_OPSET`), with the oldest IR version that opset
  allows, so older runtimes load it;
* one graph input per model input, named as numcnn names them (``input_0`` …, or the
  ``Input``'s name), of shape ``(N, …)`` with a free batch size ``N`` (``dynamic_batch``;
  else 1), in the model's dtype (``FLOAT`` or ``DOUBLE``); one output per model output,
  named as ``model.output_names``;
* node names from the layer names; weights as initializers named ``layer/W`` …;
* inference mode: BatchNorm with its running statistics, Dropout the identity;
* the metadata (``metadata_props``): ``numcnn.preprocessing`` — how a picture becomes the
  model's input (the model file's ``preprocessing`` entry, else its default, see
  :mod:`numcnn.io.inputs`) — for models of images; ``numcnn.output`` (``logits``,
  ``probabilities`` or ``rbf``); ``numcnn.saved_extra`` (the model file's metadata), as JSON.

The graph is checked before it is written: ``onnx.checker.check_model(full_check=True)``,
which runs strict shape inference against the output shapes numcnn declares. A layer that
cannot be written exactly raises :class:`ExportError` naming it and why; nothing is written
then. The file is written atomically (a temporary file renamed into place).

>>> import numcnn
>>> from numcnn.models import lenet5
>>> numcnn.onnx.export(lenet5(seed=0), "lenet5.onnx")   # doctest: +SKIP
PosixPath('lenet5.onnx')
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .. import __version__
from ..io.inputs import output_kind, preprocessing_of
from ..io.paths import atomic_write
from ..models.model import Model
from .converters import (
    DEFAULT_OPSET,
    MAX_OPSET,
    MIN_OPSET,
    ExportError,
    converter_for,
)
from .converters.graph import ELEM_TYPE, GraphBuilder, LayerContext

#: protobuf's limit on one message: larger models would need external data files
MAX_PROTO_BYTES = 2 ** 31 - 1

INSTALL = "ONNX export needs the onnx package: pip install 'numcnn[onnx]' (or pip install onnx)"


def require_onnx() -> Any:
    """The ``onnx`` module, or an ``ImportError`` saying how to install it."""
    try:
        import onnx
    except ImportError:
        raise ImportError(INSTALL) from None
    return onnx


def supported_opsets() -> range:
    """The opsets ``export`` writes: :data:`MIN_OPSET` to :data:`MAX_OPSET`, capped by what
    the installed ``onnx`` package knows."""
    onnx = require_onnx()
    return range(MIN_OPSET, min(MAX_OPSET, onnx.defs.onnx_opset_version()) + 1)


def check_opset(opset: Any) -> int:
    """``opset`` (None: the default) as an int the exporter writes, else a ``ValueError``."""
    ok = supported_opsets()
    if opset is None:
        return min(DEFAULT_OPSET, ok[-1])
    if isinstance(opset, bool) or not isinstance(opset, int) or opset not in ok:
        raise ValueError(f"opset must be an int from {ok[0]} to {ok[-1]}; received "
                         f"opset={opset!r}")
    return int(opset)


# ------------------------------------------------------------------------------ graph
def _emit(g: GraphBuilder, model: Model, inputs: list[str], prefix: str) -> list[str]:
    """Write the nodes of ``model`` reading the values ``inputs``; returns its outputs."""
    if type(model).fprop is not Model.fprop:
        raise ExportError(f"cannot export {prefix or ''}{model.display_name!r} "
                          f"({type(model).__name__}): it overrides the forward pass of a "
                          "numcnn Model")
    graph = model.graph
    vals = dict(zip(graph.input_slots, inputs))
    calls: dict[int, int] = {}
    for st in graph.steps:
        layer = st.layer
        k = calls.get(id(layer), 0)
        calls[id(layer)] = k + 1
        base = prefix + model.layer_name(layer)
        label = base if k == 0 else f"{base}[{k}]"
        ins = [vals[s] for s in st.in_slots]
        if isinstance(layer, Model):
            outs = _emit(g, layer, ins, label + "/")
        else:
            conv = converter_for(layer, g.opset, label)
            n = len(st.out_slots)
            outs = [g.value_name(label if n == 1 else f"{label}_{j}") for j in range(n)]
            ctx = LayerContext(g, layer, label, base, ins, [t.shape for t in st.node.inputs],
                               [t.shape for t in st.node.outputs], outs)
            if getattr(layer, "channels_last", False):
                _channels_last(ctx, conv)
            else:
                conv.convert(ctx)
            missing = [o for o in outs if o not in g.produced]
            if missing:
                raise RuntimeError(f"internal error: the converter of {type(layer).__name__} "
                                   f"wrote no value {missing}")
        for s, v in zip(st.out_slots, outs):
            vals[s] = v
    return [vals[s] for s in graph.output_slots]


def _channels_last(ctx: LayerContext, conv: Any) -> None:
    """A layer built with ``data_format="channels_last"`` (NHWC) written as numcnn runs it:
    ``Transpose(perm=[0, 3, 1, 2])`` of its input, its NCHW converter, and
    ``Transpose(perm=[0, 2, 3, 1])`` of a 4-D output (a global pooling's (N, C) output needs
    none)."""
    layer = ctx.layer
    x = ctx.op("Transpose", [ctx.inputs[0]], perm=[0, 3, 1, 2])
    in_chw = [layer._chw(s) for s in ctx.in_shapes]
    out_chw = [layer._chw(s) for s in ctx.out_shapes]
    four_d = len(out_chw[0]) == 3
    inner_out = [ctx.g.value_name(f"{ctx.name}/nchw")] if four_d else ctx.outputs
    inner = LayerContext(ctx.g, layer, ctx.name, ctx.param_prefix, [x], in_chw, out_chw,
                         inner_out)
    conv.convert(inner)
    if four_d:
        ctx.op("Transpose", inner_out, ctx.outputs[0], perm=[0, 2, 3, 1])


def _dims(shape: tuple, batch: Any, name: str) -> list[Any]:
    """``[batch, *shape]`` with a free size as a named dimension."""
    return [batch] + [f"{name}_{k + 1}" if d is None else int(d) for k, d in enumerate(shape)]


def _batch_of(t: Any, batch: Any) -> Any:
    """The declared size of an output's axis 0: the batch, unless the layer writing it set
    itself apart from the batch (``per_sample`` False on the instance: a ``Constant``, a
    ``ShapeOf``, a whole-array layer that moves axis 0); then left unknown."""
    layer = t.layer
    return None if "per_sample" in vars(layer) and not layer.per_sample else batch


def _metadata(model: Model) -> dict[str, str]:
    """The ``metadata_props``: the model's name and output kind, how a picture becomes its
    input (models of 1- or 3-channel images: the file's ``preprocessing`` entry — a damaged
    one is an error — else the default, left out when no default fits the input size) and
    the model file's metadata."""
    meta = {"numcnn.model": model.display_name, "numcnn.output": output_kind(model)}
    shape = model.input_shape
    extra = getattr(model, "saved_extra", None)
    if isinstance(shape, tuple) and len(shape) == 3 and shape[0] in (1, 3) and None not in shape:
        try:
            meta["numcnn.preprocessing"] = json.dumps(preprocessing_of(model), sort_keys=True)
        except ValueError:
            if isinstance(extra, dict) and "preprocessing" in extra:
                raise
    if isinstance(extra, dict) and extra:
        meta["numcnn.saved_extra"] = json.dumps(extra, sort_keys=True, default=str)
    return meta


def _build(model: Any, opset: int | None, dynamic_batch: bool) -> Any:
    """The ``onnx.ModelProto`` of ``model``, not yet checked (see :func:`to_onnx`)."""
    require_onnx()
    from onnx import helper, numpy_helper

    if not isinstance(model, Model):
        raise TypeError(f"export takes a numcnn model (Sequential, Model or a zoo network); "
                        f"received {type(model).__name__}")
    if model.graph is None:
        raise ValueError(f"the model {model.display_name!r} is not built: give it an input "
                         "shape (Sequential(..., input_shape=...)) before exporting it")
    if not isinstance(dynamic_batch, bool):
        raise TypeError(f"dynamic_batch must be True or False; received {dynamic_batch!r}")
    opset = check_opset(opset)
    elem = ELEM_TYPE[model.dtype.name]
    g = GraphBuilder(opset, model.dtype)
    batch = "N" if dynamic_batch else 1
    in_names = [g.value_name(n) for n in model.input_names]
    g.produced.update(in_names)
    outs = _emit(g, model, in_names, "")
    graph_outs: list[str] = []
    for name, value in zip(model.output_names, outs):
        if value in in_names or value in graph_outs:  # an input or a repeated output
            alias = g.value_name(name)
            g.add_node("Identity", [value], [alias], name, {})
            value = alias
        graph_outs.append(value)
    nodes = [helper.make_node(n.op_type, n.inputs, n.outputs, name=n.name, **n.attrs)
             for n in g.nodes]
    inputs = [helper.make_tensor_value_info(n, elem, _dims(t.shape, batch, n))
              for n, t in zip(in_names, model.inputs)]
    outputs = [helper.make_tensor_value_info(n, elem, [_batch_of(t, batch)] + [
        None if d is None else int(d) for d in t.shape]) for n, t in zip(graph_outs,
                                                                          model.outputs)]
    inits = [numpy_helper.from_array(a, n) for n, a in g.initializers.items()]
    graph = helper.make_graph(nodes, model.display_name, inputs, outputs, inits)
    ops = [helper.make_opsetid("", opset)]
    proto = helper.make_model(graph, opset_imports=ops, producer_name="numcnn",
                              producer_version=__version__,
                              ir_version=helper.find_min_ir_version_for(ops))
    helper.set_model_props(proto, _metadata(model))
    size = proto.ByteSize()
    if size > MAX_PROTO_BYTES:
        raise ExportError(f"the model {model.display_name!r} needs {size / 2**30:.2f} GiB, "
                          "more than one ONNX file holds (2 GiB, protobuf's limit)")
    return proto


def _check(data: bytes, name: str) -> None:
    """``onnx.checker.check_model(full_check=True)`` on the serialized graph: the operators'
    schemas at the opset, and strict shape inference against the declared output shapes."""
    onnx = require_onnx()
    try:
        onnx.checker.check_model(data, full_check=True)
    except Exception as e:  # a converter's bug, not the user's: say so
        raise RuntimeError(f"internal error: the ONNX graph written for {name!r} fails onnx's "
                           f"checker ({type(e).__name__}: {str(e).strip()[:500]}); please "
                           "report it") from None


def to_onnx(model: Any, opset: int | None = None, dynamic_batch: bool = True) -> Any:
    """``model`` as a checked ``onnx.ModelProto`` (see the module docstring; :func:`export`
    writes it to a file).

    Raises:
        ImportError: the ``onnx`` package is missing.
        TypeError: ``model`` is not a built numcnn model.
        ValueError: a bad ``opset``; :class:`ExportError` (a ``ValueError``): a layer that
            cannot be exported, named with the reason.
    """
    proto = _build(model, opset, dynamic_batch)
    _check(proto.SerializeToString(), model.display_name)
    return proto


def export(model: Any, path: str | os.PathLike, opset: int | None = None,
           dynamic_batch: bool = True) -> Path:
    """Write ``model`` as an ONNX file at ``path`` (see the module docstring).

    Args:
        model: a built numcnn model (``Sequential``, ``Model``, a zoo network).
        path: the ``.onnx`` file to write (replaced atomically if it exists).
        opset: the ONNX opset to write (default :data:`DEFAULT_OPSET`); from
            :data:`MIN_OPSET` to :data:`MAX_OPSET` (see ``docs/onnx.md`` for each layer's).
        dynamic_batch: a free batch size ``N`` (default); else the batch size is 1.

    Returns:
        The path written.

    Raises:
        ExportError: a layer cannot be exported (the message names it and says why).
        ImportError: the ``onnx`` package is not installed (``pip install 'numcnn[onnx]'``).
    """
    proto = _build(model, opset, dynamic_batch)
    data = proto.SerializeToString()
    del proto
    _check(data, model.display_name)
    return atomic_write(path, lambda f: f.write(data), "the ONNX file")


__all__ = ["DEFAULT_OPSET", "MAX_OPSET", "MIN_OPSET", "ExportError", "check_opset", "export",
           "supported_opsets", "to_onnx"]
