"""``numcnn.onnx.backend``: an ``onnx.backend.base.Backend`` so that ONNX's own test suite
(``onnx.backend.test.BackendTest``) and any ONNX tool can run graphs on numcnn.

``prepare(model)`` checks the model and returns a :class:`NumcnnRep`; ``rep.run(inputs)``
imports the graph with :func:`numcnn.onnx.importer.convert` and runs the resulting
:class:`numcnn.Model` in inference mode. ``run_model`` and ``run_node`` are the one-off
forms; ``supports_device("CPU")`` is True and every other device False.

Two things a backend must do that ``numcnn.onnx.load`` does not:

* **Inputs in weight slots.** numcnn layers own their weights, so an operand that must be a
  constant — a convolution's kernel, a ``Reshape``'s target shape, a ``Pad``'s amounts —
  cannot be a graph input of the model. When a graph feeds such a slot from a graph input
  (the node tests do: every operand is an input), ``run`` takes the value it receives for
  that input as the constant, and builds (and caches) the model for those values.
* **Element types.** The model computes in float32 — or in float64 when an input is not
  float32 (integers, booleans, doubles), which carries integers exactly below 2⁵³ —; each
  output is converted back to the element type the graph declares (integers wrap around
  as in C, booleans are ``value != 0``), and a rank-0 output gets its shape () back.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from .import_checks import DTYPES, OnnxImportError, _onnx
from .importer import Const, Imported, convert

#: inputs of each operator that numcnn needs as constants (weights, shapes, axes, amounts)
CONSTANT_SLOTS: dict[str, tuple[int, ...]] = {
    "Conv": (1, 2), "ConvTranspose": (1, 2), "BatchNormalization": (1, 2, 3, 4),
    "Reshape": (1,), "Pad": (1, 2, 3), "Squeeze": (1,), "Unsqueeze": (1,),
    "ConstantOfShape": (0,), "Dropout": (1, 2), "RNN": (1, 2, 3), "LSTM": (1, 2, 3, 7),
    "GRU": (1, 2, 3), "Gather": (1,), "Slice": (1, 2, 3, 4), "ReduceSum": (1,),
    "ReduceMean": (1,),
}
_CACHE_SIZE = 8


def constant_inputs(model: Any) -> set[str]:
    """The graph inputs (not initializers) that feed a slot numcnn needs as a constant."""
    g = model.graph
    inits = {t.name for t in g.initializer}
    inputs = {vi.name for vi in g.input} - inits
    out = set()
    for node in g.node:
        slots = CONSTANT_SLOTS.get(node.op_type, ())
        if node.op_type == "Gather" and node.input and node.input[0] in inits:
            slots = ()  # an embedding table: the indices are the data
        for k in slots:
            if k < len(node.input) and node.input[k] in inputs:
                out.add(node.input[k])
    return out


class _Rep:
    """A prepared ONNX model: ``run(inputs)`` returns the outputs as a named tuple (the
    logic of :class:`NumcnnRep`, which adds ``onnx.backend.base.BackendRep`` as a base)."""

    def __init__(self, model: Any, dtype: Any = None):
        self.model = model
        g = model.graph
        inits = {t.name for t in g.initializer}
        self.input_names = [vi.name for vi in g.input if vi.name not in inits]
        self.constant_names = constant_inputs(model)
        self.output_names = [vi.name for vi in g.output]
        self.dtype = None if dtype is None else np.dtype(dtype)
        self._cache: dict[str, Imported] = {}

    def _carrier(self, feeds: dict[str, np.ndarray]) -> np.dtype:
        if self.dtype is not None:
            return self.dtype
        data = [a for n, a in feeds.items() if n not in self.constant_names]
        return np.dtype(np.float32 if all(a.dtype == np.float32 for a in data) else np.float64)

    def _imported(self, feeds: dict[str, np.ndarray], dtype: np.dtype) -> Imported:
        bind = {n: feeds[n] for n in sorted(self.constant_names) if n in feeds}
        h = hashlib.sha256(dtype.str.encode())
        for n, a in bind.items():
            h.update(f"{n}|{a.dtype.str}|{a.shape}|".encode())
            h.update(np.ascontiguousarray(a).tobytes())
        key = h.hexdigest()
        imp = self._cache.get(key)
        if imp is None:
            imp = convert(self.model, dtype, bind=bind)
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = imp
        return imp

    def run(self, inputs: Any, **kwargs: Any) -> tuple[Any, ...]:
        if isinstance(inputs, dict):
            feeds = {k: np.asarray(v) for k, v in inputs.items()}
        else:
            values = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
            if len(values) > len(self.input_names):
                raise ValueError(f"the model takes {len(self.input_names)} inputs "
                                 f"{self.input_names}; received {len(values)}")
            feeds = {n: np.asarray(v) for n, v in zip(self.input_names, values)}
        dtype = self._carrier(feeds)
        imp = self._imported(feeds, dtype)
        missing = [n for n in imp.input_names if n not in feeds]
        if missing:
            raise ValueError(f"missing inputs {missing}")
        xs = []
        for n in imp.input_names:
            a = np.asarray(feeds[n])
            xs.append(np.ascontiguousarray((a.reshape(1) if a.ndim == 0 else a).astype(dtype)))
        outs: list[np.ndarray] = []
        if imp.model is not None:
            outs, _, _ = imp.model.run(xs, training=False, record=False)
        computed = iter(outs)
        results = []
        for (_name, value), dt in zip(imp.outputs, imp.output_dtypes):
            if isinstance(value, Const):
                a = value.value
                rank = a.ndim
            else:
                a = np.asarray(next(computed))
                rank = value.rank
            if rank == 0:
                a = a.reshape(())
            results.append(_as_type(np.array(a, order="C"), np.dtype(dt)))
        from onnx.backend.base import namedtupledict

        return namedtupledict("Outputs", self.output_names)(*results)


def _as_type(a: np.ndarray, dt: np.dtype) -> np.ndarray:
    """``a`` in the declared element type: floats rounded, integers wrapped around,
    booleans ``a != 0``."""
    if a.dtype == dt:
        return a
    if dt == np.bool_:
        return a != 0
    if dt.kind in "iu" and a.dtype.kind == "f":
        return np.rint(a).astype(np.int64).astype(dt)
    return a.astype(dt)


class _Backend:
    """The numcnn backend (see the module docstring; :class:`NumcnnBackend` adds
    ``onnx.backend.base.Backend`` as a base)."""

    @classmethod
    def prepare(cls, model: Any, device: str = "CPU", **kwargs: Any) -> Any:
        if not cls.supports_device(device):
            raise OnnxImportError(f"numcnn runs on the CPU; received device={device!r}")
        super().prepare(model, device, **kwargs)  # type: ignore[misc]  # onnx's checks
        return _classes()[0](model, kwargs.get("dtype"))

    @classmethod
    def run_model(cls, model: Any, inputs: Any, device: str = "CPU",
                  **kwargs: Any) -> tuple[Any, ...]:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node: Any, inputs: Any, device: str = "CPU",
                 outputs_info: Any = None, **kwargs: Any) -> tuple[Any, ...]:
        """Run one node on ``inputs`` (arrays, in the node's input order)."""
        from onnx import helper

        super().run_node(node, inputs, device, outputs_info, **kwargs)  # type: ignore[misc]
        arrays = [np.asarray(a) for a in inputs]
        names = [n for n in node.input if n]
        ins = [helper.make_tensor_value_info(n, _elem(a.dtype), a.shape)
               for n, a in zip(names, arrays)]
        outs = []
        for k, n in enumerate(o for o in node.output if o):
            dt = np.dtype(outputs_info[k][0]) if outputs_info else (
                arrays[0].dtype if arrays else np.dtype(np.float32))
            outs.append(helper.make_tensor_value_info(n, _elem(dt), None))
        graph = helper.make_graph([node], "run_node", ins, outs)
        opset = kwargs.get("opset_version")
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)] if
                                  opset else None)
        return _classes()[0](model, kwargs.get("dtype")).run(arrays)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        from onnx.backend.base import Device, DeviceType

        try:
            return Device(device).type == DeviceType.CPU
        except (AttributeError, ValueError):
            return False


def _elem(dt: np.dtype) -> int:
    for code, t in DTYPES.items():
        if np.dtype(t) == np.dtype(dt):
            return code
    raise OnnxImportError(f"element type {dt} is not supported")


_CLASSES: list[type] = []


def _classes() -> list[type]:
    """``[NumcnnRep, NumcnnBackend]``: the classes with onnx's bases, made when first
    needed (importing this module does not import onnx)."""
    if not _CLASSES:
        _onnx()
        from onnx.backend.base import Backend, BackendRep

        _CLASSES[:] = [type("NumcnnRep", (_Rep, BackendRep), {"__module__": __name__}),
                       type("NumcnnBackend", (_Backend, Backend), {"__module__": __name__})]
    return _CLASSES


def __getattr__(name: str) -> Any:
    if name in ("NumcnnRep", "NumcnnBackend"):
        return _classes()[name == "NumcnnBackend"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def prepare(model: Any, device: str = "CPU", **kwargs: Any) -> Any:
    """Check ``model`` and return its representation, whose ``run(inputs)`` computes it."""
    return _classes()[1].prepare(model, device, **kwargs)


def run_model(model: Any, inputs: Any, device: str = "CPU", **kwargs: Any) -> tuple:
    """``prepare(model).run(inputs)``."""
    return _classes()[1].run_model(model, inputs, device, **kwargs)


def run_node(node: Any, inputs: Any, device: str = "CPU", outputs_info: Any = None,
             **kwargs: Any) -> tuple:
    """Run one node on ``inputs`` (arrays in the node's input order)."""
    return _classes()[1].run_node(node, inputs, device, outputs_info, **kwargs)


def supports_device(device: str) -> bool:
    """True for ``"CPU"``, False for every other device."""
    return _classes()[1].supports_device(device)


def is_compatible(model: Any, device: str = "CPU", **kwargs: Any) -> bool:
    """True (unsupported operators are reported by ``prepare``, naming them)."""
    return True
