"""The values an ONNX graph holds while :mod:`numcnn.onnx.importer` converts it, and the
:class:`Context` every converter works with.

* :class:`Tensor`: a value computed when the model runs — a numcnn symbolic tensor, with
  the ONNX rank, where the batch axis is and the ONNX element type;
* :class:`Const`: a value known at import (an initializer, a ``Constant``, a folded
  subgraph), possibly holding *placeholders* for sizes known only at run time;
* :class:`Context`: the values by name, attribute readers, and :meth:`Context.apply`, which
  calls a numcnn layer on tensors and names it after the node.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..io.npzfile import show
from ..layers import Constant, Layer
from ..layers.node import SymbolicTensor
from .import_checks import OnnxImportError, tensor_to_array

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
