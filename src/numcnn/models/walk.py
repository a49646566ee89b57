"""The calls of a model with their shapes, parameters, connections and MACs — with or
without building it.

:func:`walk` returns one :class:`Row` per layer call, what ``summary()`` prints and
:func:`count_macs`/:func:`count_params` add up. It reads

* a **built model** — its graph, as it runs (``input_shape`` may fix free sizes);
* an **unbuilt** ``Sequential`` and an ``input_shape``;
* a **config** — ``{"class_name", "config"}`` as :func:`numcnn.layers.serialize` (and the
  ``__config__`` of a saved file) holds it, or a model's bare ``get_config()``;

and for the last two it builds nothing: it constructs the layer objects (cheap: parameters
are made by ``build``) and asks each for ``output_shape`` and ``param_shapes``, so the
course's fully connected layer from a 1000×1000 image to 10⁶ units (10¹² weights, 4 TB in
float32) is counted in microseconds (``tests/models/test_flops.py`` checks the memory).
The loader's checks of untrusted files walk configs the same way (:mod:`numcnn.io.plan`,
which also bounds what a hostile file may ask for; this walk trusts its input).

>>> from numcnn.layers import Dense, Flatten
>>> huge = {"class_name": "Sequential", "config": {"input_shape": [1, 1000, 1000],
...         "layers": [{"class_name": "Flatten", "config": {}},
...                    {"class_name": "Dense", "config": {"units": 1000000}}]}}
>>> count_params(huge), count_macs(huge)
(1000001000000, 1000000000000)
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass, field
from typing import Any

from ..layers.base import LAYERS, Layer, deserialize
from ..layers.input import InputLayer
from ..layers.node import format_shape, shapes_compatible
from .flops import formula_for, layer_macs
from .model import Model, unique_names
from .sequential import Sequential


@dataclass
class Row:
    """One call of a layer (or an input of a graph).

    Attributes:
        label: the layer's name in the model; ``name[k]`` for its call k > 0, ``name.i``
            when it has several outputs (in ``sources``).
        class_name: the layer's class. output_shape: per sample (a list for several).
        trainable, non_trainable: its parameters, counted at its first call only (None for
            later calls of a shared layer).
        connections: LeCun's multiply-accumulate connections with the bias terms, when the
            layer defines them. macs: see :mod:`numcnn.models.flops`; None when unknown.
        sources: labels of the tensors it reads. why: why ``macs`` is unknown.
    """

    label: str
    class_name: str
    output_shape: Any
    trainable: int | None = 0
    non_trainable: int | None = 0
    connections: int | None = None
    macs: int | None = 0
    sources: list[str] = field(default_factory=list)
    is_input: bool = False
    why: str = ""

    @property
    def params(self) -> int | None:
        return None if self.trainable is None else self.trainable + self.non_trainable


@dataclass
class Walk:
    """The rows of a model and what they add up to (per sample)."""

    name: str
    rows: list[Row]
    outputs: list[Any]
    list_out: bool
    chain: bool
    fusions: list[tuple[str, str]] = field(default_factory=list)

    @property
    def trainable(self) -> int:
        return sum(r.trainable or 0 for r in self.rows)

    @property
    def non_trainable(self) -> int:
        return sum(r.non_trainable or 0 for r in self.rows)

    @property
    def macs(self) -> int | None:
        """Total MACs, None when a row's count is unknown (see :attr:`unknown`)."""
        return None if self.unknown else sum(r.macs for r in self.rows)

    @property
    def unknown(self) -> list[str]:
        """``"label (Class): why"`` for every row whose MACs are unknown."""
        return [f"{r.label} ({r.class_name}): {r.why}" for r in self.rows if r.macs is None]

    @property
    def output_shape(self) -> Any:
        return list(self.outputs) if self.list_out else self.outputs[0]


# ------------------------------------------------------------------------- counting
def count_macs(model: Any, input_shape: Any = None) -> int:
    """Multiply-accumulates of one sample's forward pass (see :mod:`numcnn.models.flops`).

    Args:
        model: a built model, an unbuilt ``Sequential``, or a model config (see :func:`walk`).
        input_shape: per-sample input shape (a list for several inputs); needed for an
            unbuilt ``Sequential``, optional otherwise (it fixes free sizes).

    Raises:
        ValueError: a layer has no MAC formula (register one with
            :func:`numcnn.models.register_macs`) or its count depends on a free size.
    """
    w = walk(model, input_shape)
    if w.unknown:
        raise ValueError("MACs unknown for " + "; ".join(w.unknown))
    return int(w.macs)


def count_params(model: Any, input_shape: Any = None, trainable: bool | None = None) -> int:
    """Parameters of a model, built or not (arguments as :func:`count_macs`): all of them
    (``summary()``'s "Total params") by default, the trainable ones with
    ``trainable=True``, the others (buffers, frozen layers) with ``trainable=False``."""
    w = walk(model, input_shape)
    if trainable is None:
        return w.trainable + w.non_trainable
    return w.trainable if trainable else w.non_trainable


# ----------------------------------------------------------------------------- walk
def walk(model: Any, input_shape: Any = None) -> Walk:
    """The rows of ``model``: a built :class:`Model`, an unbuilt :class:`Sequential` with an
    ``input_shape``, or a config (``{"class_name", "config"}`` or a bare model config)."""
    shape = _shape_arg(input_shape)
    if isinstance(model, Model):
        if model.graph is not None:
            return _walk_built(model, shape)
        if isinstance(model, Sequential) and model.layers:
            if shape is None:
                raise ValueError(f"the model {model.display_name!r} is not built: give an "
                                 "input_shape to walk it without building")
            return _walk_chain(model.display_name, [(lay.name, lay) for lay in model.layers],
                               shape)
        raise ValueError(f"the model {model.display_name!r} is not built and has no layers")
    if isinstance(model, dict):
        cls, config = _model_spec(model)
        return _walk_spec(cls, config, shape)
    raise TypeError(f"expected a model or a model config (a dict); received "
                    f"{type(model).__name__}")


def _shape_arg(shape: Any) -> Any:
    if shape is None:
        return None
    if isinstance(shape, (list, tuple)) and shape and all(isinstance(s, (list, tuple))
                                                          for s in shape):
        return [tuple(s) for s in shape]
    return tuple(shape)


def _model_spec(spec: dict) -> tuple[type, dict]:
    if "class_name" in spec:
        cls = LAYERS.lookup(spec["class_name"])
        config = spec.get("config", {})
    else:  # a bare get_config(): a graph has inputs, a Sequential has not
        cls, config = (Model if "inputs" in spec else Sequential), spec
    if not isinstance(cls, type) or not issubclass(cls, Model) or not isinstance(config, dict):
        raise ValueError(f"expected a model config (Sequential or Model); received a "
                         f"{getattr(cls, '__name__', cls)} spec")
    return cls, config


def _walk_spec(cls: type, config: dict, shape: Any) -> Walk:
    name = config.get("name") or cls.__name__
    if issubclass(cls, Sequential):
        if shape is None:
            shape = config.get("input_shape")
            if shape is None:
                raise ValueError(f"the Sequential config {name!r} has no input_shape: give one")
            shape = tuple(shape)
        items = [(spec.get("config", {}).get("name"), spec) for spec in config["layers"]]
        return _walk_chain(name, items, shape)
    return _walk_graph_config(name, config, shape)


# ----------------------------------------------------------------- one call of a layer
def _declares_shapes(cls: type) -> bool:
    """``param_shapes``/``buffer_shapes`` defined by the class that defines ``build`` or a
    subclass (as :func:`numcnn.io.plan.declares_shapes`)."""
    mro = cls.__mro__

    def owner(attr: str) -> int:
        return next(i for i, c in enumerate(mro) if attr in vars(c))

    return min(owner("param_shapes"), owner("buffer_shapes")) <= owner("build")


def _param_counts(layer: Layer, shape: Any) -> tuple[int, int]:
    """``(trainable, non_trainable)`` of ``layer`` built for ``shape`` — from the layer when
    built, else from ``param_shapes``/``buffer_shapes`` without allocating."""
    if layer.built:
        return layer.count_params(), layer.count_non_trainable()
    if not _declares_shapes(type(layer)):
        raise ValueError(f"{layer.display_name} ({type(layer).__name__}) does not declare "
                         "param_shapes: build the model to count it")
    ps, bs = layer.param_shapes(shape), layer.buffer_shapes(shape)
    n = sum(math.prod(s) for s in ps.values())
    table = getattr(layer, "connection_table", None)
    if table is not None and "W" in ps:  # absent kernels are stored but not counted
        n += int(table.sum()) * math.prod(ps["W"][2:]) - math.prod(ps["W"])
    b = sum(math.prod(s) for s in bs.values())
    return (n, b) if layer.trainable else (0, n + b)


def _leaf_row(label: str, layer: Layer, shape: Any, first: bool) -> Row:
    out = layer.output_shape(shape)
    trainable, frozen = _param_counts(layer, shape) if first else (None, None)
    try:
        conn = layer.count_connections(shape)
    except (TypeError, ValueError):
        conn = None
    macs = layer_macs(layer, shape, out)
    why = ""
    if macs is None:
        why = (f"no MAC formula for {type(layer).__name__} (numcnn.models.register_macs)"
               if formula_for(layer) is None and getattr(layer, "graph", None) is None
               else "depends on a free size (give input_shape)")
    return Row(label, type(layer).__name__, out, trainable, frozen, conn, macs, why=why)


def _model_row(label: str, sub: Walk, class_name: str, first: bool) -> Row:
    return Row(label, class_name, sub.output_shape, sub.trainable if first else None,
               sub.non_trainable if first else None, None, sub.macs,
               why="; ".join(sub.unknown))


# --------------------------------------------------------------------------- chains
def _walk_chain(name: str, items: list[tuple[str | None, Any]], shape: Any) -> Walk:
    """A Sequential: ``items`` are layers, or specs ``{"class_name", "config"}``."""
    classes = [type(it) if isinstance(it, Layer) else LAYERS.lookup(it["class_name"])
               for _, it in items]
    labels = unique_names([(n, c.__name__.lower()) for (n, _), c in zip(items, classes)])
    rows: list[Row] = []
    cur = shape
    prev = "input_0"  # as a built model names an unnamed input
    for label, (_, item), cls in zip(labels, items, classes):
        if isinstance(item, Layer) and not (isinstance(item, Sequential) and item.graph is None):
            row = _leaf_row(label, item, cur, True)
        elif isinstance(item, Sequential):  # unbuilt, nested
            sub = _walk_chain(item.display_name, [(lay.name, lay) for lay in item.layers], cur)
            row = _model_row(label, sub, cls.__name__, True)
        elif issubclass(cls, Model):
            sub = _walk_spec(cls, dict(item.get("config", {})), cur if issubclass(
                cls, Sequential) else None)
            row = _model_row(label, sub, cls.__name__, True)
        else:
            row = _leaf_row(label, deserialize(item), cur, True)
        row.sources = [prev]
        rows.append(row)
        cur, prev = row.output_shape, label
    return Walk(name, rows, cur if isinstance(cur, list) else [cur], isinstance(cur, list),
                True)


# ---------------------------------------------------------------------- built graphs
def _walk_built(model: Model, shape: Any) -> Walk:
    graph = model.graph
    shapes: list[Any] = [t.shape for t in graph.tensors]
    if shape is not None:
        given = shape if isinstance(shape, list) else [shape]
        built = [t.shape for t in graph.inputs]
        if len(given) != len(built) or not all(
                shapes_compatible(tuple(g), b) for g, b in zip(given, built)):
            raise ValueError(f"{model.display_name} is built for inputs "
                             f"{[format_shape(b) for b in built]}; received "
                             f"{[format_shape(tuple(g)) for g in given]}")
        for k, g in enumerate(given):
            shapes[graph.input_slots[k]] = tuple(g)
    chain = _is_chain(graph)
    label: dict[int, str] = {}
    rows: list[Row] = []
    for k in range(len(graph.inputs)):
        name = model.input_names[k]
        label[graph.input_slots[k]] = name
        if not chain:
            rows.append(Row(f"{name}", "InputLayer", shapes[graph.input_slots[k]],
                            is_input=True))
    calls: dict[int, int] = {}
    for st in graph.steps:
        layer = st.layer
        k = calls.get(id(layer), 0)
        calls[id(layer)] = k + 1
        name = model.layer_name(layer)
        base = name if k == 0 else f"{name}[{k}]"
        ins = [shapes[s] for s in st.in_slots]
        in_shape = ins if st.list_input else ins[0]
        row = _leaf_row(base, layer, in_shape, k == 0)
        outs = row.output_shape if isinstance(row.output_shape, list) else [row.output_shape]
        for i, s in enumerate(st.out_slots):
            shapes[s] = tuple(outs[i])
            label[s] = base if len(st.out_slots) == 1 else f"{base}.{i}"
        if shape is None:  # exactly the graph's shapes (free sizes kept)
            row.output_shape = ([t.shape for t in st.node.outputs] if st.multi
                                else st.node.outputs[0].shape)
        row.sources = [label[s] for s in st.in_slots]
        rows.append(row)
    return Walk(model.display_name, rows, [shapes[s] for s in graph.output_slots],
                model._list_out, chain, list(model.fusions))


def _is_chain(graph: Any) -> bool:
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        return False
    prev = graph.input_slots[0]
    for st in graph.steps:
        if st.list_input or st.multi or st.in_slots != [prev]:
            return False
        prev = st.out_slots[0]
    return True


# ---------------------------------------------------------------------- graph configs
def _walk_graph_config(name: str, config: dict, shape: Any) -> Walk:
    """A graph's ``get_config()``: each call walked as soon as the tensors it reads exist
    (a shared layer's later call may read a tensor made after its first call)."""
    tensors: dict[tuple[str, int], list[Any]] = {}
    inputs: list[Row] = []
    keys: list[str] = []  # of the inputs
    pending: list[dict[str, Any]] = []
    for spec in config["layers"]:
        key = spec["name"]
        if spec.get("class_name") == "InputLayer":
            layer = InputLayer.from_config(dict(spec.get("config", {})))
            tensors[(key, 0)] = [layer.shape]
            inputs.append(Row(layer.name or f"input_{len(inputs)}", "InputLayer", layer.shape,
                              is_input=True))
            keys.append(key)
            continue
        cls = LAYERS.lookup(spec["class_name"])
        if spec.get("inbound"):
            pending.append({"spec": spec, "cls": cls, "k": 0, "obj": None})
    in_refs = [tuple(r[:2]) for r in config["inputs"]]
    if shape is not None:
        given = shape if isinstance(shape, list) else [shape]
        if len(given) != len(in_refs):
            raise ValueError(f"{name} has {len(in_refs)} inputs; received {len(given)} shapes")
        for ref, g in zip(in_refs, given):
            tensors[ref] = [tuple(g)]
            inputs[keys.index(ref[0])].output_shape = tuple(g)
    rows: dict[tuple[str, int], Row] = {}
    reads: dict[tuple[str, int], list[tuple]] = {}  # the tensors each call reads
    labels = {(key, 0, 0): r.label for key, r in zip(keys, inputs)}
    queue = collections.deque(pending)
    waiting: dict[tuple[str, int], list[dict[str, Any]]] = {}
    while queue:
        item = queue.popleft()
        spec, cls = item["spec"], item["cls"]
        key, inbound = spec["name"], spec["inbound"]
        while item["k"] < len(inbound):
            k = item["k"]
            missing = next(((s, c) for s, c, _ in inbound[k] if (s, c) not in tensors), None)
            if missing is not None:
                waiting.setdefault(missing, []).append(item)
                break
            args = [tensors[(s, c)][i] for s, c, i in inbound[k]]
            arg = args if spec.get("list_input") else args[0]
            base = key if k == 0 else f"{key}[{k}]"
            if issubclass(cls, Model):  # a nested model: its own walk, on this call's shape
                sub = _walk_spec(cls, dict(spec.get("config", {})),
                                 arg if issubclass(cls, Sequential) else None)
                row = _model_row(base, sub, cls.__name__, k == 0)
            else:
                if item["obj"] is None:
                    item["obj"] = deserialize({"class_name": spec["class_name"],
                                               "config": spec.get("config", {})})
                row = _leaf_row(base, item["obj"], arg, k == 0)
            outs = row.output_shape if isinstance(row.output_shape, list) \
                else [row.output_shape]
            tensors[(key, k)] = [tuple(o) for o in outs]
            for i in range(len(outs)):
                labels[(key, k, i)] = base if len(outs) == 1 else f"{base}.{i}"
            row.sources = [labels[(s, c, i)] for s, c, i in inbound[k]]
            rows[(key, k)] = row
            reads[(key, k)] = [tuple(r) for r in inbound[k]]
            item["k"] = k + 1
            queue.extend(waiting.pop((key, k), []))
    for item in pending:
        if item["k"] < len(item["spec"]["inbound"]):
            raise ValueError(f"model config: layer {item['spec']['name']!r} reads a tensor "
                             f"that no layer makes ({item['spec']['inbound'][item['k']]!r})")
    outs = [tensors[(s, c)][i] for s, c, i in config["outputs"]]
    # the calls the outputs depend on, in the order of the built graph (Graph's sort)
    order = [c for c in _call_order(reads, [tuple(r[:2]) for r in config["outputs"]])
             if c in rows]
    chain = len(inputs) == 1 and len(outs) == 1 and all(
        not isinstance(rows[c].output_shape, list) and reads[c] == [prev + (0,)]
        for c, prev in zip(order, [in_refs[0]] + order))
    all_rows = ([] if chain else inputs) + [rows[c] for c in order]
    return Walk(name, all_rows, outs, bool(config.get("list_outputs")) or len(outs) > 1,
                chain)


def _call_order(reads: dict[tuple, list[tuple]], outputs: list[tuple]) -> list[tuple]:
    """Calls ``(name, k)`` in the depth-first post-order from the outputs that
    :class:`~numcnn.models.graph.Graph` runs them in (every call after those it reads)."""
    order: list[tuple] = []
    done: set[tuple] = set()
    for out in outputs:
        stack = [(out, 0)]
        while stack:
            node, i = stack.pop()
            if node in done:
                continue
            refs = reads.get(node, [])
            if i < len(refs):
                stack.append((node, i + 1))
                parent = refs[i][:2]
                if parent not in done:
                    stack.append((parent, 0))
            else:
                done.add(node)
                order.append(node)
    return order
