"""Walk an untrusted model config without building it: what would it create?

:func:`plan_model` walks the model config the way ``Model.from_config`` would build it —
layer by layer, propagating the per-sample shapes with ``output_shape`` along the graph's
inbound tensors — but constructs only the layer *objects* (cheap: no parameters) and asks
each for the parameter and buffer shapes it would create (``Layer.param_shapes``/
``buffer_shapes``). The result, a :class:`Plan`, is what the file's arrays must match
(names, shapes, dtypes) and what building would allocate, checked against the budget before
the model is built: an absurd ``Dense(10**12)`` or a config that disagrees with its arrays
fails in microseconds. Shapes are bounded on the way (:data:`MAX_DIM`, :data:`MAX_VALUES`),
and so are the number of layer calls and the nesting of models.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..functional.geometry import pair
from ..layers.base import LAYERS, Layer, check_dtype
from ..layers.input import InputLayer
from ..layers.node import shapes_compatible
from ..layers.pooling import WeightedPool2D
from ..models.model import Model, unique_names
from ..models.sequential import Sequential
from .config import Error
from .npzfile import clip, format_bytes, show

#: most layer calls a config may hold (nested models included)
MAX_LAYERS = 20000
#: deepest nesting of models in models
MAX_DEPTH = 32
#: largest size of one dimension, and most values in one per-sample tensor
MAX_DIM = (1 << 31) - 1
MAX_VALUES = 1 << 40

# errors a layer's constructor or output_shape may raise on a hostile config
_CONFIG_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError,
                  ZeroDivisionError, RecursionError)


# -------------------------------------------------------------------------- plan
@dataclass
class Plan:
    """What building a model config would create.

    Attributes:
        params, buffers: ``{qualified name: (shape, dtype)}`` of the parameters and buffers
            of the layers the model's graph holds (those reachable from its outputs).
        extra: ``{qualified name: (shape, dtype)}`` of the extra state (random generators).
        nbytes: bytes building would allocate: parameters, their gradients and buffers of
            every layer in the config.
        open: ``{qualified name: dtype}`` of the layers that do not declare their shapes
            (see :func:`declares_shapes`: a layer of your own without ``param_shapes``):
            their entries are taken from the file, within the budget, and checked against
            the built model — but their ``build`` is not bounded in advance.
    """

    params: dict[str, tuple[tuple[int, ...], np.dtype]] = field(default_factory=dict)
    buffers: dict[str, tuple[tuple[int, ...], np.dtype]] = field(default_factory=dict)
    extra: dict[str, tuple[tuple[int, ...], np.dtype]] = field(default_factory=dict)
    nbytes: int = 0
    open: dict[str, np.dtype] = field(default_factory=dict)


def declares_shapes(cls: type) -> bool:
    """Whether a layer class states its parameter and buffer shapes before it is built:
    ``param_shapes`` or ``buffer_shapes`` is defined by the class that defines ``build``, or
    by a subclass of it. A layer that creates parameters in a ``build`` of its own but
    inherits ``param_shapes`` cannot say what it will create."""
    mro = cls.__mro__

    def owner(attr: str) -> int:
        return next(i for i, c in enumerate(mro) if attr in vars(c))

    return min(owner("param_shapes"), owner("buffer_shapes")) <= owner("build")


@dataclass
class _Sig:
    """A (nested) model seen from outside: input and output shapes, dtype."""

    inputs: list[tuple]
    outputs: list[tuple]
    list_in: bool
    list_out: bool
    dtype: np.dtype


class _Walker:
    def __init__(self, error: Error, budget: int):
        self.error = error
        self.budget = budget
        self.plan = Plan()
        self.calls = 0

    # ---------------------------------------------------------------- helpers
    def shape(self, value: Any, where: str) -> tuple:
        """A per-sample shape (``None`` for free sizes) within the bounds."""
        if not isinstance(value, (list, tuple)) or len(value) > 32 or not all(
                d is None or (isinstance(d, (int, np.integer)) and not isinstance(d, bool)
                              and 1 <= d <= MAX_DIM) for d in value):
            raise self.error(f"{where}: expected a shape of at most 32 sizes in [1, {MAX_DIM}] "
                             f"(or null); received {show(value)}")
        known = [int(d) for d in value if d is not None]
        if math.prod(known) > MAX_VALUES:
            raise self.error(f"{where}: a tensor of shape {show(tuple(value))} holds more than "
                             f"{MAX_VALUES} values per sample")
        return tuple(None if d is None else int(d) for d in value)

    def out_shapes(self, out: Any, where: str) -> list[tuple]:
        outs = out if isinstance(out, list) else [out]
        return [self.shape(s, f"{where} output") for s in outs]

    def count_call(self, where: str) -> None:
        self.calls += 1
        if self.calls > MAX_LAYERS:
            raise self.error(f"{where}: the config holds more than {MAX_LAYERS} layer calls")

    def lookup(self, class_name: Any, where: str) -> type:
        if not isinstance(class_name, str) or class_name not in LAYERS:
            raise self.error(f"{where}: unknown layer class {show(class_name)}; expected one of "
                             f"the registered layers ({', '.join(LAYERS.names())})")
        return LAYERS.lookup(class_name)

    def layer(self, cls: type, config: Any, where: str, depth: int = 0) -> Layer:
        """Construct a leaf layer (no parameters yet), its constructor's memory checked —
        also that of a layer it wraps (``TimeDistributed``, ``Bidirectional``: a nested
        ``{"class_name", "config"}`` under ``"layer"``)."""
        if not isinstance(config, dict):
            raise self.error(f"{where}: the layer config must be an object; received "
                             f"{show(config)}")
        inner = config.get("layer")
        if isinstance(inner, dict) and "class_name" in inner:
            if depth >= MAX_DEPTH:
                raise self.error(f"{where}: layers wrapped more than {MAX_DEPTH} deep")
            self.layer(self.lookup(inner["class_name"], where), inner.get("config", {}),
                       f"{where} (wrapped layer)", depth + 1)
        if issubclass(cls, WeightedPool2D):  # the one constructor that allocates: kh×kw
            try:
                kh, kw = pair(config.get("pool_size", 3), "pool_size")
            except (TypeError, ValueError):
                kh = kw = 0  # the constructor refuses it with its own message
            self.add_bytes(3 * 8 * kh * kw, where)
        try:
            return cls.from_config(dict(config))
        except _CONFIG_ERRORS as e:
            raise self.error(f"{where}: bad layer config ({clip(str(e), 300)})") from None

    def add_bytes(self, n: int, where: str) -> None:
        self.plan.nbytes += n
        if self.plan.nbytes > self.budget:
            raise self.error(f"{where}: building the model would allocate at least "
                             f"{format_bytes(self.plan.nbytes)} (parameters, their gradients, "
                             f"buffers), over the budget of {format_bytes(self.budget)}")

    def leaf(self, layer: Layer, shape: Any, dtype: np.dtype, qname: str | None,
             where: str) -> Any:
        """Shapes of one leaf layer's first call: records its state in the plan (under
        ``qname`` when the model's graph holds it) and returns its output shape(s)."""
        try:
            out = layer.output_shape(shape)
            ps, bs = layer.param_shapes(shape), layer.buffer_shapes(shape)
            es = {k: (v.shape, v.dtype) for k, v in layer.extra_state().items()}
        except _CONFIG_ERRORS as e:
            raise self.error(f"{where}: {clip(str(e), 300)}") from None
        n = sum(math.prod(s) for s in ps.values()) * 2 + sum(math.prod(s) for s in bs.values())
        self.add_bytes(n * dtype.itemsize, where)
        if qname is not None and not declares_shapes(type(layer)):
            self.plan.open[qname] = dtype
        if qname is not None:
            for store, shapes in ((self.plan.params, ps), (self.plan.buffers, bs)):
                store.update({f"{qname}/{k}": (tuple(s), dtype) for k, s in shapes.items()})
            self.plan.extra.update({f"{qname}/{k}": v for k, v in es.items()})
        return out

    def dtype_of(self, config: dict, default: np.dtype, where: str) -> np.dtype:
        value = config.get("dtype")
        if value is None:
            return default
        try:
            return check_dtype(value)
        except (TypeError, ValueError) as e:  # np.dtype({...}) raises ValueError
            raise self.error(f"{where}: {e}") from None

    # ----------------------------------------------------------------- models
    def model(self, cls: type, config: Any, prefix: str | None, first: Any,
              dtype: np.dtype | None, depth: int, where: str) -> _Sig:
        if depth > MAX_DEPTH:
            raise self.error(f"{where}: models nested more than {MAX_DEPTH} deep")
        if not isinstance(config, dict):
            raise self.error(f"{where}: the model config must be an object; received "
                             f"{show(config)}")
        if issubclass(cls, Sequential):
            return self.sequential(config, prefix, first, dtype, depth, where)
        return self.graph(config, prefix, depth, where)

    def child(self, spec: Any, where: str) -> tuple[type, dict, str | None]:
        if not isinstance(spec, dict) or "class_name" not in spec:
            raise self.error(f"{where}: expected a layer spec {{\"class_name\", \"config\"}}; "
                             f"received {show(spec)}")
        cls = self.lookup(spec["class_name"], where)
        config = spec.get("config", {})
        if not isinstance(config, dict):
            raise self.error(f"{where}: the layer config must be an object; received "
                             f"{show(config)}")
        name = config.get("name")
        if name is not None and (not isinstance(name, str) or not name or "/" in name):
            raise self.error(f"{where}: a layer name must be a non-empty string without '/'; "
                             f"received {show(name)}")
        return cls, config, name

    def sequential(self, config: dict, prefix: str | None, first: Any,
                   dtype: np.dtype | None, depth: int, where: str) -> _Sig:
        specs = config.get("layers")
        if not isinstance(specs, list) or not specs:
            raise self.error(f"{where}: a Sequential config needs a non-empty 'layers' list; "
                             f"received {show(specs)}")
        dtype = self.dtype_of(config, dtype or np.dtype(np.float32), where)
        given = config.get("input_shape")
        if given is not None:
            shape = self.shape(given, f"{where} input_shape")
            if first is not None and not (isinstance(first, tuple)
                                          and shapes_compatible(first, shape)):
                raise self.error(f"{where}: called on {show(first)}, built for {show(shape)}")
        elif first is not None:
            shape = first
        else:
            raise self.error(f"{where}: the Sequential config has no input_shape (a saved model "
                             "is built)")
        children = [self.child(s, f"{where}, layer {i}") for i, s in enumerate(specs)]
        names = unique_names([(n, c.__name__.lower()) for c, _, n in children])
        if len(set(names)) != len(names):
            raise self.error(f"{where}: layer names must be unique; received {names}")
        cur: Any = shape
        for (cls, cfg, _), name in zip(children, names):
            here = f"layer {show(name)} ({cls.__name__})"
            self.count_call(here)
            qname = None if prefix is None else prefix + name
            if issubclass(cls, Model):
                sig = self.model(cls, cfg, None if qname is None else qname + "/", cur, dtype,
                                 depth + 1, here)
                cur = self.call_model(sig, cur, dtype, here)
            else:
                layer = self.layer(cls, cfg, here)
                cur = self.leaf(layer, cur, dtype, qname, here)
            shapes = self.out_shapes(cur, here)
            cur = shapes if isinstance(cur, list) else shapes[0]
        outs = cur if isinstance(cur, list) else [cur]
        return _Sig([shape], outs, False, isinstance(cur, list), dtype)

    def call_model(self, sig: _Sig, shape: Any, dtype: np.dtype, where: str) -> Any:
        """Output shape(s) of a nested model called on ``shape``."""
        got = shape if isinstance(shape, list) else [shape]
        if dtype != sig.dtype or len(got) != len(sig.inputs) or not all(
                shapes_compatible(a, b) for a, b in zip(got, sig.inputs)):
            raise self.error(f"{where}: the model takes {sig.dtype} inputs of shapes "
                             f"{sig.inputs}; it is called on {dtype} {show(got)}")
        return list(sig.outputs) if sig.list_out else sig.outputs[0]

    def graph(self, config: dict, prefix: str | None, depth: int, where: str) -> _Sig:
        specs = config.get("layers")
        ins, outs = config.get("inputs"), config.get("outputs")
        if not isinstance(specs, list) or not isinstance(ins, list) or not ins \
                or not isinstance(outs, list) or not outs:
            raise self.error(f"{where}: a Model config needs 'layers', 'inputs' and 'outputs' "
                             f"lists; received keys {show(sorted(config))}")
        entries = []
        for i, spec in enumerate(specs):
            cls, cfg, name = self.child(spec, f"{where}, layer {i}")
            key = spec.get("name")
            if not isinstance(key, str):
                raise self.error(f"{where}, layer {i}: expected a 'name'; received "
                                 f"{show(key)}")
            inbound = spec.get("inbound", [])
            if not isinstance(inbound, list) or not all(isinstance(c, list) for c in inbound):
                raise self.error(f"{where}, layer {show(key)}: 'inbound' must be a list of "
                                 f"calls; received {show(inbound)}")
            entries.append((cls, cfg, name, key, inbound, bool(spec.get("list_input"))))
        keys = [e[3] for e in entries]
        if len(set(keys)) != len(keys):
            raise self.error(f"{where}: layer names must be unique; received {keys}")
        reach = self.reachable(entries, outs)
        leaves = [e for e in entries if e[0] is not InputLayer]
        names = dict(zip([e[3] for e in leaves],
                         unique_names([(e[2], e[0].__name__.lower()) for e in leaves])))
        tensors: dict[tuple[str, int], list[tuple[tuple, np.dtype]]] = {}
        # a shared layer's later call may read a tensor made after its first call: calls
        # run as soon as their inputs exist, each layer's in order (as Model.from_config)
        states: list[dict[str, Any]] = []
        for cls, cfg, _, key, inbound, list_input in entries:
            here = f"layer {show(key)} ({cls.__name__})"
            if cls is InputLayer:
                self.count_call(here)
                layer = self.layer(cls, cfg, here)
                tensors[(key, 0)] = [(self.shape(layer.shape, here), layer.dtype)]
                continue
            states.append({"cls": cls, "cfg": cfg, "key": key, "inbound": inbound,
                           "list_input": list_input, "here": here, "k": 0, "sig": None,
                           "layer": None, "first_shape": None,
                           "qname": None if prefix is None or key not in reach
                           else prefix + names[key]})
        queue = collections.deque(st for st in states if st["inbound"])
        waiting: dict[tuple, list[dict[str, Any]]] = {}
        while queue:  # linear in the calls: a call waits on one missing tensor at a time
            st = queue.popleft()
            while st["k"] < len(st["inbound"]):
                missing = self.missing(tensors, st["inbound"][st["k"]])
                if missing is not None:
                    waiting.setdefault(missing, []).append(st)
                    break
                self.call(st, tensors, depth)
                queue.extend(waiting.pop((st["key"], st["k"] - 1), []))
        for st in states:
            if st["k"] < len(st["inbound"]):
                for r in st["inbound"][st["k"]]:
                    self.ref(tensors, r, st["here"])  # raises, naming the missing tensor
        in_t = [self.ref(tensors, r, f"{where} inputs") for r in ins]
        out_t = [self.ref(tensors, r, f"{where} outputs") for r in outs]
        dtypes = {d for _, d in in_t}
        if len(dtypes) != 1:
            raise self.error(f"{where}: model inputs of different dtypes")
        return _Sig([s for s, _ in in_t], [s for s, _ in out_t],
                    bool(config.get("list_inputs")) or len(in_t) > 1,
                    bool(config.get("list_outputs")) or len(out_t) > 1, dtypes.pop())

    @staticmethod
    def missing(tensors: dict, refs: list) -> tuple | None:
        """The first tensor a call reads that does not exist yet, or None (a malformed
        reference counts as present, so that :meth:`ref` reports it)."""
        for r in refs:
            try:
                src, call, _ = r
                if (src, call) not in tensors:
                    return (src, call)
            except (ValueError, TypeError):
                return None
        return None

    def call(self, st: dict[str, Any], tensors: dict, depth: int) -> None:
        """Walk call number ``st["k"]`` of one layer of a graph: its output shapes."""
        cls, cfg, here, k = st["cls"], st["cfg"], st["here"], st["k"]
        self.count_call(here)
        args = [self.ref(tensors, r, here) for r in st["inbound"][k]]
        if not args:
            raise self.error(f"{here}: a call without inputs")
        if len({d for _, d in args}) != 1:
            raise self.error(f"{here}: inputs of different dtypes")
        dtype = args[0][1]
        shape = [s for s, _ in args] if st["list_input"] else args[0][0]
        qname = st["qname"]
        if issubclass(cls, Model):
            if st["sig"] is None:
                st["sig"] = self.model(cls, cfg, None if qname is None else qname + "/",
                                       shape, dtype, depth + 1, here)
            out = self.call_model(st["sig"], shape, dtype, here)
        elif st["layer"] is None:
            layer = st["layer"] = self.layer(cls, cfg, here)
            ldtype = self.dtype_of(cfg, dtype, here)
            if ldtype != dtype:
                raise self.error(f"{here}: expected input of dtype {ldtype}; received {dtype}")
            st["first_shape"] = shape
            out = self.leaf(layer, shape, dtype, qname, here)
        else:
            if not _compatible(shape, st["first_shape"]):
                raise self.error(f"{here}: called on {show(shape)} after "
                                 f"{show(st['first_shape'])}")
            try:
                out = st["layer"].output_shape(shape)
            except _CONFIG_ERRORS as e:
                raise self.error(f"{here}: {clip(str(e), 300)}") from None
        shapes = self.out_shapes(out, here)
        tensors[(st["key"], k)] = [(s, dtype) for s in shapes]
        st["k"] = k + 1

    def ref(self, tensors: dict, ref: Any, where: str) -> tuple[tuple, np.dtype]:
        try:
            src, call, idx = ref
            return tensors[(src, call)][idx]
        except (KeyError, IndexError, ValueError, TypeError):
            raise self.error(f"{where}: reads a tensor that is not defined before it "
                             f"({show(ref)})") from None

    def reachable(self, entries: list, outs: list) -> set[str]:
        """The layer names the graph holds: those the outputs depend on."""
        inbound = {e[3]: e[4] for e in entries}
        seen: set[str] = set()
        todo = [r for r in outs if isinstance(r, list) and r]
        while todo:
            ref = todo.pop()
            src = ref[0]
            if not isinstance(src, str) or src in seen or src not in inbound:
                continue
            seen.add(src)
            for call in inbound[src]:
                todo.extend(r for r in call if isinstance(r, list) and r)
        return seen


def _compatible(a: Any, b: Any) -> bool:
    if isinstance(a, list) or isinstance(b, list):
        return isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and all(
            shapes_compatible(tuple(x), tuple(y)) for x, y in zip(a, b))
    return shapes_compatible(tuple(a), tuple(b))


def plan_model(spec: dict, error: Error, budget: int) -> Plan:
    """Walk a model spec ``{"class_name", "config"}`` without building it.

    Raises:
        ModelFileError: the config is malformed, names unknown layers, does not fit
            together, or would allocate more than ``budget`` bytes.
    """
    walker = _Walker(error, budget)
    cls = walker.lookup(spec["class_name"], "the model")
    if not issubclass(cls, Model):
        raise error(f"the file's model is a {cls.__name__} layer; expected a model "
                    "(Sequential, Model)")
    try:
        walker.model(cls, spec["config"], "", None, None, 0, "the model")
    except RecursionError:
        raise error("the model config is nested too deeply") from None
    return walker.plan
