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
from typing import Any, Callable

import numpy as np

from ..io.npzfile import max_model_bytes, show
from ..layers import Constant, Input, Layer
from ..layers.node import SymbolicTensor
from ..models import Model
from .import_checks import DTYPES, OnnxImportError, read_model, tensor_to_array, topological_order

#: placeholders in folded shape vectors stand for sizes known only at run time: axis ``a``
#: of the ``k``-th tensor a ``Shape`` node measured is ``BATCH − 64·k − a`` (a batch size,
#: a free sequence length); see :meth:`Context.placeholder`
BATCH = -(1 << 62)
#: most values one sample of a tensor may declare (a bound on what a run allocates)
MAX_SAMPLE_VALUES = 1 << 31


class Tensor:
    """A value computed when the model runs: its symbolic tensor, its ONNX rank (0 for a
    scalar carried as shape (1,)), its batch — which graph inputs' axis 0 it follows
    (``batch``: inputs of one declared batch size share it; None for none) and on which of
    its axes (``baxis``) — and its ONNX element type."""

    __slots__ = ("sym", "rank", "batch", "baxis", "etype")

    def __init__(self, sym: SymbolicTensor, rank: int, batch: Any, etype: Any = np.float32,
                 baxis: int | None = 0):
        self.sym, self.rank, self.etype = sym, rank, np.dtype(etype)
        self.batch = batch if baxis is not None else None
        self.baxis = baxis if batch is not None else None

    @property
    def batch0(self) -> bool:
        """Axis 0 is a batch axis of the model's inputs."""
        return self.baxis == 0

    @property
    def shape(self) -> tuple:
        """The per-sample shape (numcnn's: no batch axis)."""
        return self.sym.shape


class Const:
    """A value known at import. ``origin``: ``"initializer"`` (a weight: trainable where it
    becomes a parameter), ``"constant"`` or ``"folded"``. ``source``: for a folded
    ``Shape``, the tensor and slice it measured (to compute it at run time if needed)."""

    __slots__ = ("value", "origin", "source")

    def __init__(self, value: np.ndarray, origin: str = "folded", source: Any = None):
        self.value, self.origin, self.source = np.asarray(value), origin, source


Converter = Callable[["Context", Any], list]
#: op type -> converter (filled by numcnn.onnx.import_ops)
CONVERTERS: dict[str, Converter] = {}
#: op type -> folder for all-constant inputs: f(ctx, node, [arrays or None]) -> [arrays]
FOLDERS: dict[str, Callable[..., list]] = {}
#: the folders that only move values, so that run-time sizes (placeholders) may pass
MOVES = {"Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Cast", "Identity", "Reshape",
         "Flatten", "Transpose", "ConstantOfShape", "Shape"}


class Context:
    """What a converter works with: the values by name, the opset, attribute readers, and
    :meth:`apply`, which calls a layer on tensors and names it after the node."""

    def __init__(self, model: Any, dtype: Any, budget: int, base_dir: Path | None,
                 allow_external: bool):
        self.proto = model
        self.dtype = np.dtype(dtype)
        self.budget = budget
        self.base_dir = base_dir
        self.allow_external = allow_external
        self.opset = _opset(model)
        self.values: dict[str, Tensor | Const] = {}
        self.anchor: Tensor | None = None  # a graph input, to hang Constant layers on
        self.measured: list[Tensor] = []  # the tensors Shape nodes measured
        self._names: set[str] = set()

    # --------------------------------------------------------------- messages
    def where(self, node: Any) -> str:
        name = f" {show(node.name)}" if node.name else ""
        return f"{node.op_type} node{name} (opset {self.opset})"

    def fail(self, node: Any, message: str) -> OnnxImportError:
        return OnnxImportError(f"{self.where(node)}: {message}")

    # ---------------------------------------------------------------- inputs
    def has(self, node: Any, k: int) -> bool:
        return k < len(node.input) and bool(node.input[k])

    def value(self, node: Any, k: int) -> Tensor | Const:
        return self.values[node.input[k]]

    def is_const(self, node: Any, k: int) -> bool:
        return self.has(node, k) and isinstance(self.value(node, k), Const)

    def const(self, node: Any, k: int, what: str) -> np.ndarray | None:
        """Input ``k`` as an array (None when absent); a tensor computed at run time is an
        error: numcnn needs it at import (a weight, a shape, an axis list)."""
        if not self.has(node, k):
            return None
        v = self.value(node, k)
        if not isinstance(v, Const) or (v.source is not None and v.source[0] == "fill"):
            raise self.fail(node, f"{what} (input {k}, {show(node.input[k])}) must be a "
                                  f"constant — an initializer or a Constant — not a value "
                                  f"computed by the graph")
        return v.value

    def origin(self, node: Any, k: int) -> str:
        v = self.value(node, k)
        return v.origin if isinstance(v, Const) else "tensor"

    def tensor(self, node: Any, k: int) -> Tensor:
        """Input ``k`` as a run-time tensor; a constant is materialized by a
        :class:`~numcnn.layers.Constant` layer."""
        v = self.value(node, k)
        return v if isinstance(v, Tensor) else self.materialize(v, node)

    def materialize(self, c: Const, node: Any) -> Tensor:
        """A constant as a tensor: its :class:`ShapeOf` source, or a ``Constant`` layer."""
        if c.source is not None and c.source[0] == "fill":
            from ..layers import Fill

            _, shape, value, ref = c.source  # shape: sizes, −(a + 1) for ref's axis a
            return self.apply(Fill(tuple(shape), value), ref, node, rank=len(shape),
                              etype=c.value.dtype)[0]
        if c.source is not None:
            from ..layers import ShapeOf

            t, start, end = c.source
            return self.apply(ShapeOf(start, end), t, node, rank=1, baxis=None,
                              etype=np.int64)[0]
        if _has_placeholder(c.value):
            raise self.fail(node, "a shape that depends on the batch size is used as a value")
        if self.anchor is None:
            raise self.fail(node, "the graph computes only constants (no input reaches it)")
        value = np.asarray(c.value)
        scalar = value.ndim == 0
        value = value.reshape(1) if scalar else value
        layer = Constant(value.shape)
        out = self.apply(layer, self.anchor, node, rank=0 if scalar else value.ndim,
                         baxis=None, etype=value.dtype)[0]
        layer.buffers["value"][...] = value.astype(self.dtype)
        return out

    # ----------------------------------------------------------- placeholders
    def placeholder(self, t: Tensor, axis: int) -> int:
        """The placeholder of ``t``'s size on ``axis`` (unknown until the model runs)."""
        k = next((i for i, m in enumerate(self.measured) if m.sym is t.sym), None)
        if k is None:
            k = len(self.measured)
            self.measured.append(t)
        return BATCH - 64 * k - axis

    def decode(self, v: int) -> tuple[Tensor, int] | None:
        """``(tensor, axis)`` of a placeholder, or None for an ordinary size."""
        if v > BATCH:
            return None
        k, axis = divmod(BATCH - int(v), 64)
        return (self.measured[k], axis) if k < len(self.measured) else None

    # ------------------------------------------------------------ attributes
    def attr(self, node: Any, name: str, default: Any = None, kind: str | None = None) -> Any:
        """Attribute ``name`` as a Python value (``kind``: ``"int"``, ``"ints"``,
        ``"float"``, ``"floats"``, ``"str"``, ``"strs"``, ``"tensor"``), else ``default``."""
        from onnx import AttributeProto as A

        for a in node.attribute:
            if a.name != name:
                continue
            kinds = {"int": A.INT, "ints": A.INTS, "float": A.FLOAT, "floats": A.FLOATS,
                     "str": A.STRING, "strs": A.STRINGS, "tensor": A.TENSOR}
            if kind is not None and a.type != kinds[kind]:
                if kind == "float" and a.type == A.INT:
                    return float(a.i)
                raise self.fail(node, f"attribute {name!r} must be of type {kind}; the file "
                                      f"gives type {a.type}")
            if a.type == A.INT:
                return int(a.i)
            if a.type == A.INTS:
                return [int(v) for v in a.ints]
            if a.type == A.FLOAT:
                return _decimal(a.f)
            if a.type == A.FLOATS:
                return [_decimal(v) for v in a.floats]
            if a.type == A.STRING:
                return a.s.decode("utf-8", "replace")
            if a.type == A.STRINGS:
                return [s.decode("utf-8", "replace") for s in a.strings]
            if a.type == A.TENSOR:
                return tensor_to_array(a.t, f"{self.where(node)}: attribute {name!r}",
                                       self.budget, self.base_dir, self.allow_external)
            raise self.fail(node, f"attribute {name!r} has a type numcnn does not read "
                                  f"({a.type})")
        return default

    # ----------------------------------------------------------------- layers
    def layer_name(self, node: Any, suffix: str = "") -> str:
        base = re.sub(r"[^0-9A-Za-z_.\-]+", ".", (node.name or node.op_type.lower()))
        base = base.strip(".") or node.op_type.lower()
        base = base + suffix
        name, k = base, 1
        while name in self._names:
            name, k = f"{base}_{k}", k + 1
        self._names.add(name)
        return name

    def apply(self, layer: Layer, inputs: Any, node: Any, params: dict | None = None,
              buffers: dict | None = None, rank: Any = None, baxis: Any = "keep",
              etype: Any = None, suffix: str = "") -> list[Tensor]:
        """Call ``layer`` (named after ``node``) on one tensor or a list, copy ``params``
        and ``buffers`` in (shapes checked), and return its outputs as :class:`Tensor`s.

        ``rank`` (an int or one per output) defaults to the per-sample rank + 1. ``baxis``
        (an int, None, or one per output) says where the first input's batch axis ends up;
        by default it stays on axis 0 through a ``per_sample`` layer and is lost otherwise."""
        many = isinstance(inputs, (list, tuple))
        ins = list(inputs) if many else [inputs]
        layer.name = self.layer_name(node, suffix)
        layer.set_dtype(self.dtype)
        try:
            out = layer([t.sym for t in ins] if many else ins[0].sym)
        except (ValueError, TypeError) as e:
            raise self.fail(node, str(e)) from None
        outs = list(out) if isinstance(out, tuple) else [out]
        for key, value in (params or {}).items():
            self._copy(node, layer, layer.params, key, value)
        for key, value in (buffers or {}).items():
            self._copy(node, layer, layer.buffers, key, value)
        if baxis == "keep":  # numcnn's own layers keep axis 0; the whole-array ones say
            whole = isinstance(layer, _whole_array_layers())
            keep = ins[0].baxis == 0 and (not whole or bool(layer.per_sample))
            baxis = 0 if keep else None
        ranks = rank if isinstance(rank, (list, tuple)) else [rank] * len(outs)
        baxes = baxis if isinstance(baxis, (list, tuple)) else [baxis] * len(outs)
        result = []
        for s, r, b in zip(outs, ranks, baxes):
            if any(d is not None for d in s.shape) and np.prod(
                    [d for d in s.shape if d is not None], dtype=float) > MAX_SAMPLE_VALUES:
                raise self.fail(node, f"the output shape {s.shape} per sample is too large")
            result.append(Tensor(s, len(s.shape) + 1 if r is None else r, ins[0].batch,
                                 ins[0].etype if etype is None else etype, b))
        return result

    def _copy(self, node: Any, layer: Layer, store: dict, key: str, value: Any) -> None:
        value = np.asarray(value)
        if store[key].shape != value.shape:
            raise self.fail(node, f"{key} has shape {value.shape}; the layer "
                                  f"{layer.name} needs {store[key].shape}")
        store[key][...] = value.astype(self.dtype)


def _whole_array_layers() -> tuple[type, ...]:
    """The layers that may move axis 0 (their ``per_sample`` says whether it stays)."""
    from .. import layers as L

    return (L.Arithmetic, L.MatMul, L.Transpose, L.Squeeze, L.Unsqueeze, L.TensorReshape,
            L.TensorConcat, L.Gather, L.PadND, L.ShapeOf, L.Constant, L.FullLike, L.Fill,
            L.AxisSoftmax, L.Moments, L.RecurrentOp)


def _decimal(f: float) -> float:
    """A float32 attribute as the decimal the exporter wrote: ``momentum=0.9`` is stored as
    0.89999998, and ``1 − momentum`` should be PyTorch's 0.1 (the shortest decimal that
    rounds to the same float32 is the intended one)."""
    return float(str(np.float32(f)))


def _has_placeholder(a: np.ndarray) -> bool:
    return a.dtype.kind == "i" and a.size > 0 and bool((a <= BATCH).any())


def _opset(model: Any) -> int:
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return int(o.version)
    return 1


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
        raise OnnxImportError(f"{show(str(path))}: the graph has no input that its outputs "
                              f"depend on; there is no model to run")
    if batch_first and not result.batch_first:
        raise OnnxImportError(
            f"{show(str(path))}: axis 0 of the graph's inputs and outputs is not one batch "
            f"axis (a time-major recurrent input (T, N, F), say), so predict() and fit(), "
            f"which split the data along axis 0, would mix samples; load(path, "
            f"batch_first=False) imports it for model.forward(x) on whole arrays")
    return result.model
