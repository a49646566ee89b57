"""``load(path) -> numcnn.Model``: an ONNX graph turned into numcnn layers.

Every ONNX node becomes numcnn layers called on symbolic tensors — a ``Conv`` a
:class:`~numcnn.layers.Conv2D` (or :class:`~numcnn.layers.ConvND` for 1-D, 3-D or dilated
kernels), a ``Gemm`` a :class:`~numcnn.layers.Dense`, an ``LSTM`` a
:class:`~numcnn.layers.RecurrentOp` … (the converters live in :mod:`numcnn.onnx.import_ops`)
— so the result is an ordinary functional :class:`numcnn.Model`: ``summary``, ``predict``,
``intermediates``, the feature-map plots and ``fit`` work on it, and fine-tuning trains the
file's weights through the layers' own backward passes.

How ONNX values map to numcnn:

* **The batch axis.** numcnn arrays carry the batch on axis 0 and a layer sees per-sample
  shapes; ONNX tensors have no batch axis. The importer keeps every tensor's rank: axis 0
  of an ONNX tensor is axis 0 of the numcnn array. For a network whose inputs are batches
  (N, C, H, W) that is the batch; operators that move or mix axis 0 (a ``Transpose`` of a
  time-major LSTM input, a ``Concat`` on axis 0) become layers over the whole array. A
  rank-0 ONNX tensor is carried as an array of shape (1,).
* **Weights.** Initializers feeding a weight slot (a convolution's kernel, a ``Gemm``'s
  ``B``) become the layer's parameters, trainable; initializers used as values elsewhere
  (``Add(x, bias)``) become trainable operands of :class:`~numcnn.layers.Arithmetic`;
  ``Constant`` nodes become fixed ones.
* **Constant folding.** Nodes whose inputs are all constants — the shape arithmetic of
  ``x.view(x.size(0), -1)`` exports: ``Shape → Gather → Unsqueeze → Concat → Reshape`` —
  are computed at import. ``Shape`` of a tensor knows its sizes but the batch size, which
  stays a placeholder that a ``Reshape`` reads as "keep axis 0".
* **Numbers.** The model computes in one float type (``dtype``, float32 by default); integer
  and boolean ONNX tensors are carried in it (exactly, below 2²⁴ in float32 and 2⁵³ in
  float64).

Unsupported operators raise :class:`OnnxImportError` naming the operator, the node and the
opset. The file is read as untrusted input (:mod:`numcnn.onnx.import_checks`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..io.npzfile import max_model_bytes, show
from ..layers import Input
from ..models import Model
from .import_checks import (
    DTYPES,
    OnnxImportError,
    _shown,
    read_model,
    tensor_to_array,
    topological_order,
)
from .import_values import (
    BATCH,
    CONVERTERS,
    FOLDERS,
    MAX_SAMPLE_VALUES,
    MOVES,
    Const,
    Context,
    Tensor,
    _has_placeholder,
)

__all__ = ["BATCH", "CONVERTERS", "FOLDERS", "Const", "Context", "Imported", "OnnxImportError",
           "Tensor", "convert", "load"]

class Imported:
    """What :func:`convert` makes of a graph: the model (None when every output is a
    constant), the graph inputs it reads (in its input order), per graph output its value
    (a :class:`Tensor` of the model, or a :class:`Const`) and dtype, and ``batch_first``:
    axis 0 of every input and output is one batch axis (what ``predict`` and ``fit``, which
    split data along axis 0, need)."""

    def __init__(self, model: Model | None, input_names: list[str],
                 outputs: list[tuple[str, Tensor | Const]], output_dtypes: list[Any],
                 batch_first: bool = True):
        self.model = model
        self.input_names = input_names
        self.outputs = outputs
        self.output_dtypes = output_dtypes
        self.batch_first = batch_first


def convert(model: Any, dtype: Any = "float32", bind: dict[str, np.ndarray] | None = None,
            base_dir: Path | None = None, allow_external_data: bool = False,
            name: str | None = None, constant_outputs: bool = False) -> Imported:
    """Turn an ``onnx.ModelProto`` into numcnn layers (see the module docstring).

    Args:
        model: the parsed model. dtype: the float type the model computes in.
        bind: graph inputs to treat as constants, by name (the backend passes the values
            of inputs that feed weight slots).
        base_dir, allow_external_data: where external data may be read from, and whether.
        name: the model's name (default: the graph's).
        constant_outputs: make a graph output that is a constant the output of a
            ``Constant`` layer (else it stays a :class:`Const` of the result).
    """
    from . import import_ops  # noqa: F401  (registers the converters)

    budget = max_model_bytes()
    ctx = Context(model, dtype, budget, base_dir, allow_external_data)
    g = model.graph
    for dom in {o.domain for o in model.opset_import} - {"", "ai.onnx"}:
        if any(n.domain == dom for n in g.node):
            raise OnnxImportError(f"the graph uses operators of the domain {show(dom)}, which "
                                  f"numcnn does not implement")
    for init in g.initializer:
        ctx.values[init.name] = Const(tensor_to_array(
            init, f"initializer {show(init.name)}", budget, base_dir, allow_external_data),
            "initializer")
    if g.sparse_initializer:
        raise OnnxImportError("sparse initializers are not supported")
    data_inputs: list[tuple[str, Tensor]] = []
    for vi in g.input:
        if vi.name in ctx.values:
            continue  # an initializer listed as an input (IR < 4): a weight
        if bind and vi.name in bind:
            ctx.values[vi.name] = Const(np.asarray(bind[vi.name]), "bound")
            continue
        t = _input_tensor(ctx, vi)
        ctx.values[vi.name] = t
        data_inputs.append((vi.name, t))
        if ctx.anchor is None:
            ctx.anchor = t
    for node in topological_order(g, set(ctx.values)):
        _convert_node(ctx, node)
    outputs: list[tuple[str, Tensor | Const]] = []
    for vi in g.output:
        if vi.name not in ctx.values:
            raise OnnxImportError(f"graph output {show(vi.name)} is not computed by the graph")
        value = ctx.values[vi.name]
        if isinstance(value, Const) and ctx.anchor is not None and (
                constant_outputs or value.source is not None or _has_placeholder(value.value)):
            value = ctx.materialize(value, _Named(vi.name))
        outputs.append((vi.name, value))
    dtypes = [DTYPES.get(vi.type.tensor_type.elem_type, np.float32) for vi in g.output]
    tensors = [v for _, v in outputs if isinstance(v, Tensor)]
    net = None
    if tensors:
        ins = [t.sym for _, t in data_inputs]
        outs = [t.sym for t in tensors]
        net = Model(ins[0] if len(ins) == 1 else ins, outs[0] if len(outs) == 1 else outs,
                    name=name or _model_name(g.name))
    ends = [t for _, t in data_inputs] + tensors
    batch_first = all(t.baxis == 0 for t in ends) and len({t.batch for t in ends}) == 1
    return Imported(net, [n for n, _ in data_inputs], outputs, dtypes, batch_first)


def _model_name(name: str) -> str:
    clean = re.sub(r"[^0-9A-Za-z_.\-]+", "_", name or "").strip("_")
    return clean or "onnx_model"


def _input_tensor(ctx: Context, vi: Any) -> Tensor:
    tt = vi.type.tensor_type
    if not vi.type.HasField("tensor_type"):
        raise OnnxImportError(f"graph input {show(vi.name)} is not a tensor (sequences, maps "
                              f"and optionals are not supported)")
    if tt.elem_type not in DTYPES:
        raise OnnxImportError(f"graph input {show(vi.name)} has element type {tt.elem_type}, "
                              f"which numcnn does not read")
    if not tt.HasField("shape"):
        raise OnnxImportError(f"graph input {show(vi.name)} declares no shape; numcnn needs "
                              f"at least its rank")
    dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
            for d in tt.shape.dim]
    first = tt.shape.dim[0] if tt.shape.dim else None
    batch = None if first is None else ("size", first.dim_value) if first.HasField(
        "dim_value") else ("name", first.dim_param) if first.dim_param else ("input", vi.name)
    rank = len(dims)
    per_sample = tuple(dims[1:])
    known = [d for d in per_sample if d is not None]
    if known and np.prod(known, dtype=float) > MAX_SAMPLE_VALUES:
        raise OnnxImportError(f"graph input {show(vi.name)} declares shape {show(dims)}, "
                              f"more than {MAX_SAMPLE_VALUES} values per sample")
    sym = Input(per_sample, dtype=ctx.dtype, name=ctx.layer_name(_Named(vi.name)))
    return Tensor(sym, rank, batch, DTYPES[tt.elem_type])


class _Named:
    """A stand-in node for naming a layer after a graph input or output."""

    op_type = "input"
    attribute: tuple = ()

    def __init__(self, name: str):
        self.name = name


def _convert_node(ctx: Context, node: Any) -> None:
    if node.domain not in ("", "ai.onnx"):
        raise ctx.fail(node, f"the domain {show(node.domain)} is not supported")
    present = [ctx.values[i] if i else None for i in node.input]
    folder = FOLDERS.get(node.op_type)
    runtime = any(isinstance(v, Const) and v.source is not None and v.source[0] == "fill"
                  for v in present)
    if folder is not None and not runtime and all(v is None or isinstance(v, Const)
                                                  for v in present):
        arrays = [None if v is None else v.value for v in present]
        if node.op_type not in MOVES and any(a is not None and _has_placeholder(a)
                                             for a in arrays):
            raise ctx.fail(node, "computes with sizes known only at run time (the batch size "
                                 "or a free length); numcnn folds them only through Gather, "
                                 "Unsqueeze, Squeeze, Concat, Slice, Cast and into Reshape")
        results = folder(ctx, node, arrays)
        for out, value in zip(node.output, results):
            if out:
                ctx.values[out] = value if isinstance(value, Const) else Const(value, "folded")
        return
    conv = CONVERTERS.get(node.op_type)
    if conv is None:
        raise OnnxImportError(f"{ctx.where(node)}: the operator {node.op_type} is not "
                              f"supported by numcnn's importer (see docs/onnx.md for the "
                              f"operators it imports)")
    results = conv(ctx, node)
    for out, value in zip(node.output, results):
        if out and value is not None:
            ctx.values[out] = value


def load(path: str | os.PathLike, dtype: Any = None, allow_external_data: bool = False,
         name: str | None = None, batch_first: bool = True) -> Model:
    """Read the ONNX file at ``path`` as a :class:`numcnn.Model`.

    Args:
        path: the ``.onnx`` file (untrusted input: see :mod:`numcnn.onnx.import_checks`).
        dtype: ``"float32"`` or ``"float64"``; default float64 when the graph's inputs are
            float64, else float32.
        allow_external_data: read tensors stored in separate files beside the model (only
            regular files inside its directory). Refused by default.
        name: the model's name (default: the graph's).
        batch_first: require axis 0 of every input and output to be one batch axis, as
            ``predict``, ``evaluate`` and ``fit`` assume (they split the data along axis 0);
            a graph that is not (a time-major RNN's (T, N, F) input) is refused with an
            explanation. ``False`` imports it anyway: run it with ``model.forward`` on whole
            arrays.

    Returns:
        A functional model whose inputs are the graph's inputs (in order, initializers
        excluded) and whose outputs are the graph's outputs. A graph output that is a
        constant becomes a ``Constant`` layer's output.

    Raises:
        OnnxImportError: a damaged or hostile file, or an operator, attribute or shape
            numcnn does not support (the message names the node and the opset).

    >>> import numcnn  # doctest: +SKIP
    >>> model = numcnn.onnx.load("lenet.onnx")  # doctest: +SKIP
    >>> model.predict(x).shape  # doctest: +SKIP
    (7, 10)
    """
    proto = read_model(path)
    if dtype is None:
        elems = {vi.type.tensor_type.elem_type for vi in proto.graph.input}
        dtype = "float64" if 11 in elems else "float32"
    base = Path(path).resolve().parent
    result = convert(proto, dtype, base_dir=base, allow_external_data=allow_external_data,
                     name=name, constant_outputs=True)
    if result.model is None or any(isinstance(v, Const) for _, v in result.outputs):
        raise OnnxImportError(f"{_shown(path)}: the graph has no input that its outputs "
                              f"depend on; there is no model to run")
    if batch_first and not result.batch_first:
        raise OnnxImportError(
            f"{_shown(path)}: axis 0 of the graph's inputs and outputs is not one batch "
            f"axis (a time-major recurrent input (T, N, F), say), so predict() and fit(), "
            f"which split the data along axis 0, would mix samples; load(path, "
            f"batch_first=False) imports it for model.forward(x) on whole arrays")
    return result.model
