"""What a converter writes into: the graph being built, and the context of one layer call.

:class:`GraphBuilder` collects nodes and initializers as plain Python records (the ``onnx``
package is imported only by :mod:`numcnn.onnx.exporter`, which turns them into protobuf). It
keeps value names and node names unique. :class:`LayerContext` is what a converter sees: the
layer, its input value names and per-sample shapes, the names its outputs must take, and
helpers that hide how operators changed between opsets — ``Unsqueeze``'s axes became an
input at opset 13, ``ReduceMax``'s at 18, ``Pad``'s pads at 11, ``Slice``'s starts at 10,
and ``Softmax`` took the one axis it names only from opset 13 (before, it flattened every
axis from ``axis`` on).

Node names: the node that writes a layer's (first) output is named after the layer — its
name in the model, ``block/conv`` inside a nested model, ``name[k]`` for its k-th call — and
any helper node after it, ``conv/Pad``; so every node traces back to its layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import ExportError

#: ONNX's TensorProto element types used here (fixed by the ONNX specification)
ELEM_TYPE = {"float32": 1, "int32": 6, "int64": 7, "bool": 9, "float64": 11}
#: ``Slice``'s "to the end, whatever the length" (clamped by every runtime)
INT64_MIN = -(2 ** 63)
INT64_MAX = 2 ** 63 - 1


@dataclass
class NodeRecord:
    """One ONNX node: operator, input and output value names, node name, attributes."""

    op_type: str
    inputs: list[str]
    outputs: list[str]
    name: str
    attrs: dict[str, Any] = field(default_factory=dict)


class GraphBuilder:
    """The nodes and initializers of the graph being written, with unique names.

    Args:
        opset: the opset written. dtype: the model's float dtype (float32 or float64).
    """

    def __init__(self, opset: int, dtype: Any):
        self.opset = int(opset)
        self.dtype = np.dtype(dtype)
        self.nodes: list[NodeRecord] = []
        self.initializers: dict[str, np.ndarray] = {}
        self.produced: set[str] = set()
        self._values: set[str] = set()
        self._node_names: set[str] = set()
        self._cache: dict[Any, str] = {}

    @staticmethod
    def _unique(base: str, used: set[str]) -> str:
        name, k = base, 0
        while name in used:
            k += 1
            name = f"{base}_{k}"
        used.add(name)
        return name

    def value_name(self, base: str) -> str:
        """A value name not used yet: ``base``, else ``base_1``, ``base_2`` …"""
        return self._unique(base, self._values)

    def node_name(self, base: str) -> str:
        return self._unique(base, self._node_names)

    def initializer(self, base: str, array: np.ndarray) -> str:
        """Add a constant tensor (an initializer); returns its value name."""
        name = self.value_name(base)
        self.initializers[name] = np.array(array, order="C")  # a copy; 0-d stays 0-d
        self.produced.add(name)
        return name

    def cached(self, key: Any, base: str, make: Any) -> str:
        """An initializer made once per ``key`` (a layer's weights, shared by its calls)."""
        name = self._cache.get(key)
        if name is None:
            name = self._cache[key] = self.initializer(base, make())
        return name

    def add_node(self, op_type: str, inputs: list[str], outputs: list[str], name: str,
                 attrs: dict[str, Any]) -> None:
        for v in inputs:
            if v and v not in self.produced:
                raise RuntimeError(f"internal error: node {name} ({op_type}) reads {v!r}, "
                                   "which no node wrote")
        self.nodes.append(NodeRecord(op_type, list(inputs), list(outputs),
                                     self.node_name(name), {k: _attr(v) for k, v in
                                                            attrs.items()}))
        self.produced.update(o for o in outputs if o)


def _attr(value: Any) -> Any:
    """An attribute as plain Python (numpy scalars and tuples made ints, floats, lists)."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, (tuple, list)):
        return [_attr(v) for v in value]
    return value


class LayerContext:
    """One call of one layer, as its converter sees it.

    Attributes:
        g: the :class:`GraphBuilder`. layer: the layer. name: its label (node name).
        inputs: the input value names. in_shapes, out_shapes: per-sample shapes (``None``
            for a free size). outputs: the value names the outputs must be written to.
        opset: the opset written. dtype: the model's float dtype.
    """

    def __init__(self, g: GraphBuilder, layer: Any, name: str, param_prefix: str,
                 inputs: list[str], in_shapes: list[tuple], out_shapes: list[tuple],
                 outputs: list[str]):
        self.g = g
        self.layer = layer
        self.name = name
        self.param_prefix = param_prefix
        self.inputs = list(inputs)
        self.in_shapes = [tuple(s) for s in in_shapes]
        self.out_shapes = [tuple(s) for s in out_shapes]
        self.outputs = list(outputs)
        self._named = False

    @property
    def opset(self) -> int:
        return self.g.opset

    @property
    def dtype(self) -> np.dtype:
        return self.g.dtype

    @property
    def out(self) -> str:
        """The name of the (first) output."""
        return self.outputs[0]

    def exact(self, *values: float) -> bool:
        """Whether float attributes (ONNX stores them in float32) hold ``values`` exactly in
        the model's dtype: always for a float32 model, for a float64 one only if the values
        are float32 numbers."""
        return self.dtype == np.float32 or all(float(np.float32(v)) == v for v in values)

    # ------------------------------------------------------------------ errors
    def fail(self, why: str) -> ExportError:
        """An error naming this layer: ``raise ctx.fail("...")``."""
        return ExportError(f"cannot export layer {self.name!r} ({type(self.layer).__name__}): "
                           f"{why}")

    def require(self, opset: int, what: str) -> None:
        """Refuse opsets older than ``opset`` for ``what``."""
        if self.opset < opset:
            raise self.fail(f"{what} needs opset {opset} or later; exporting at opset "
                            f"{self.opset}")

    # ------------------------------------------------------------------- nodes
    def op(self, op_type: str, inputs: list[str], out: Any = None, n_out: int = 1,
           main: bool = False, **attrs: Any) -> Any:
        """Write one node; returns its output name (a list when ``n_out`` > 1 or ``out`` is
        a list). ``out`` names the outputs (default: fresh ``layer/OpType`` names; ``""``
        leaves an optional output unused). The node is named after the layer when ``main``
        or when it writes the layer's first output, unless a node already took the name."""
        if out is None:
            outs = [self.g.value_name(f"{self.name}/{op_type}") for _ in range(n_out)]
        elif isinstance(out, str):
            outs = [out]
        else:
            outs = list(out)
        main = (main or (bool(self.outputs) and self.outputs[0] in outs)) and not self._named
        self._named = self._named or main
        self.g.add_node(op_type, inputs, outs, self.name if main else f"{self.name}/{op_type}",
                        attrs)
        return outs if (n_out > 1 or isinstance(out, (list, tuple))) else outs[0]

    def param(self, key: str, make: Any) -> str:
        """The initializer ``make()`` of this layer, written once for all its calls."""
        return self.g.cached((id(self.layer), key), f"{self.param_prefix}/{key}", make)

    def const(self, value: Any, what: str, dtype: Any = None) -> str:
        """A constant: floats in the model's dtype unless ``dtype`` says otherwise."""
        arr = np.asarray(value)
        if dtype is None:
            dtype = np.int64 if arr.dtype.kind in "iub" else self.dtype
        return self.g.initializer(f"{self.name}/{what}", arr.astype(dtype))

    def scalar(self, value: float, what: str) -> str:
        """A 0-d constant of the model's float dtype."""
        return self.const(np.asarray(value, dtype=self.dtype), what)

    def ints(self, values: Any, what: str) -> str:
        """A 1-D int64 constant (shapes, axes, indices)."""
        return self.const(np.asarray(values, dtype=np.int64).reshape(-1), what, np.int64)

    # ------------------------------------------------- operators across opsets
    def unsqueeze(self, x: str, axes: list[int], out: Any = None) -> str:
        if self.opset >= 13:
            return self.op("Unsqueeze", [x, self.ints(axes, "axes")], out)
        return self.op("Unsqueeze", [x], out, axes=list(axes))

    def squeeze(self, x: str, axes: list[int], out: Any = None) -> str:
        if self.opset >= 13:
            return self.op("Squeeze", [x, self.ints(axes, "axes")], out)
        return self.op("Squeeze", [x], out, axes=list(axes))

    def reduce(self, op_type: str, x: str, axes: list[int], keepdims: bool,
               out: Any = None) -> str:
        """``ReduceSum``/``ReduceMean``/``ReduceMax``/``ReduceMin`` over ``axes``."""
        as_input = self.opset >= (13 if op_type == "ReduceSum" else 18)
        if as_input:
            return self.op(op_type, [x, self.ints(axes, "axes")], out, keepdims=int(keepdims))
        return self.op(op_type, [x], out, axes=list(axes), keepdims=int(keepdims))

    def slice(self, x: str, starts: list[int], ends: list[int], axes: list[int],
              steps: list[int] | None = None, out: Any = None) -> str:
        if self.opset < 10:
            if steps is not None and any(s != 1 for s in steps):
                self.require(10, "a strided or reversed slice")
            return self.op("Slice", [x], out, starts=list(starts), ends=list(ends),
                           axes=list(axes))
        ins = [x, self.ints(starts, "starts"), self.ints(ends, "ends"), self.ints(axes, "axes")]
        if steps is not None:
            ins.append(self.ints(steps, "steps"))
        return self.op("Slice", ins, out)

    def reverse(self, x: str, axis: int, out: Any = None) -> str:
        """``x`` read backwards along ``axis`` (a slice with step −1)."""
        self.require(10, "reversing a sequence")
        return self.slice(x, [-1], [INT64_MIN], [axis], [-1], out)

    def pad(self, x: str, pads: list[int], value: float = 0.0, out: Any = None) -> str:
        """Constant padding; ``pads`` as ONNX lists them (all begins, then all ends)."""
        if self.opset < 11:
            if not self.exact(value):
                self.require(11, f"padding a float64 model with {value!r} (not a float32 "
                                 "number; older Pads take the value as a float32 attribute)")
            return self.op("Pad", [x], out, pads=list(pads), value=float(value),
                           mode="constant")
        return self.op("Pad", [x, self.ints(pads, "pads"), self.scalar(value, "pad_value")], out,
                       mode="constant")

    def softmax(self, x: str, axis: int, rank: int, out: Any = None) -> str:
        """Softmax along the one ``axis`` of a rank-``rank`` tensor."""
        if self.opset >= 13 or axis == rank - 1:
            return self.op("Softmax", [x], out, axis=axis)
        perm = [a for a in range(rank) if a != axis] + [axis]
        back = list(np.argsort(perm))
        t = self.op("Transpose", [x], perm=perm)
        s = self.op("Softmax", [t], axis=rank - 1)
        return self.op("Transpose", [s], out, perm=back)

    def cast(self, x: str, dtype: str, out: Any = None) -> str:
        return self.op("Cast", [x], out, to=ELEM_TYPE[dtype])

    def take(self, x: str, index: int, axis: int, out: Any = None) -> str:
        """``x`` at one ``index`` of ``axis``, that axis removed (``Gather`` of a scalar)."""
        return self.op("Gather", [x, self.const(np.asarray(index, np.int64), "index", np.int64)],
                       out, axis=axis)

    def matmul_bias(self, x: str, W: str, b: str | None, out: Any = None) -> str:
        """``x W + b`` for 2-D ``x`` (``Gemm``; ``MatMul`` without a bias before opset 11)."""
        if b is None and self.opset < 11:
            return self.op("MatMul", [x, W], out)
        return self.op("Gemm", [x, W] + ([b] if b is not None else []), out)

    def reshape(self, x: str, shape: list[int], out: Any = None) -> str:
        """``Reshape``: 0 copies the input's size on that axis, −1 is inferred."""
        return self.op("Reshape", [x, self.ints(shape, "shape")], out)


__all__ = ["ELEM_TYPE", "INT64_MAX", "INT64_MIN", "GraphBuilder", "LayerContext", "NodeRecord"]
