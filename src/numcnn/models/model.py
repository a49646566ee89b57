"""``Model``: a graph of layers from ``Input`` tensors to outputs — the base of every model.

Build one the Keras way, by calling layers on symbolic tensors::

    x = numcnn.Input((3, 32, 32))
    h = Conv2D(16, 3, padding="same")(x)
    y = ReLU()(Add()([h, Conv2D(16, 3, padding="same")(ReLU()(h))]))   # a residual block
    model = numcnn.Model(x, Dense(10)(Flatten()(y)))

A model is a layer too: it can be called inside another graph (nested to any depth) and
keeps a separate call state per use. What every model shares lives here: unique layer
names, traversal of parameters and buffers by qualified name (``"block/conv2d/W"``),
``summary()``, ``get_layer``, weights and ``state_dict()``, ``intermediates()``, the graph
passes (the ReLU → max-pooling fusion), and ``compile``/``fit``/``evaluate``/``predict``,
which hand over to the trainer of :mod:`numcnn.training` (models never import it: it
installs itself with :func:`set_trainer_factory`). :class:`numcnn.Sequential` is the chain
case of the same machinery.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping
from typing import Any, Callable

import numpy as np

from ..functional import Workspace
from ..layers.base import LAYERS, Call, Layer, deserialize, serialize
from ..layers.input import InputLayer
from ..layers.node import SymbolicTensor, format_shape
from .graph import GradPass, Graph
from .passes import INFERENCE_PASSES, PASSES, VALUE_PASSES

_TRAINER_FACTORY: list[Callable[[Any], Any]] = []


def set_trainer_factory(factory: Callable[[Any], Any]) -> None:
    """Install the class that runs ``fit``/``evaluate``/``predict`` (done by
    :mod:`numcnn.training` on import; models never import the training package)."""
    _TRAINER_FACTORY[:] = [factory]


def _as_list(x: Any) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _snake(name: str) -> str:
    return name.lower()


@LAYERS.register("Model", "Functional")
class Model(Layer):
    """A graph of layers between ``inputs`` and ``outputs``.

    Args:
        inputs: an ``Input`` tensor or a list of them.
        outputs: a symbolic tensor (a layer's output) or a list of them.
        name: the model's name.
        seed: seed that (re)draws the initial weights of the layers this model is the first
            to contain, in the order they are called — the same seed gives the same weights.
        fuse: apply the safe graph fusions (ReLU → max pooling, see :mod:`.passes`).

    >>> import numcnn
    >>> from numcnn.layers import Dense, ReLU
    >>> x = numcnn.Input((4,))
    >>> model = numcnn.Model(x, Dense(3)(ReLU()(Dense(8)(x))), seed=0)
    >>> model.count_params(), model.output_shape()
    (67, (3,))
    """

    def __init__(self, inputs: Any = None, outputs: Any = None, name: str | None = None,
                 seed: int | None = None, fuse: bool = True, trainable: bool = True,
                 **kwargs: Any):
        super().__init__(name=name, trainable=True, **kwargs)
        self.seed = seed
        self.fuse = bool(fuse)
        self.need_input_grad = False
        self.optimizer: Any = None
        self.loss: Any = None
        self.metrics: dict[str, Callable] = {}
        self.stop_training = False
        self.trainer: Any = None
        self.graph: Graph | None = None
        self._names: dict[int, str] = {}
        self._ws_root = Workspace()
        self._tape: list[Call] | None = None
        self._plans: dict[Any, list[Any]] = {}
        self.fusions: list[tuple[str, str]] = []
        self._fused: dict[int, str] = {}
        self._marks: list[str | None] = []
        self._plain_marks: list[str | None] = []
        self._infer_marks: list[Any] = []
        self._altered: set[int] = set()
        if inputs is not None or outputs is not None:
            if inputs is None or outputs is None:
                raise ValueError("Model(inputs, outputs): both are required")
            self._init_graph(_as_list(inputs), _as_list(outputs),
                             isinstance(inputs, (list, tuple)),
                             isinstance(outputs, (list, tuple)))
        if not trainable:
            self.trainable = False

    # ------------------------------------------------------------------- graph
    def _init_graph(self, inputs: list[SymbolicTensor], outputs: list[SymbolicTensor],
                    list_in: bool = False, list_out: bool = False) -> None:
        self.graph = Graph(inputs, outputs)
        self._list_in = list_in or len(inputs) > 1
        self._list_out = list_out or len(outputs) > 1
        dtypes = {t.dtype for t in inputs}
        if len(dtypes) > 1:
            raise TypeError(f"model inputs of different dtypes: {sorted(d.name for d in dtypes)}")
        self.dtype = inputs[0].dtype
        self._dtype_given = True
        self._assign_names()
        self._initialise_pending()
        self.input_shape = [t.shape for t in inputs] if self._list_in else inputs[0].shape
        self.built = True
        self._plans = {}
        self._ws_root = Workspace()  # a rebuilt graph (Sequential.add/pop) starts afresh
        self.refuse()

    def _assign_names(self) -> None:
        """Unique names: a layer's own, else its lower-case class name with a counter."""
        explicit = [lay.name for lay in self.graph.layers if lay.name]
        dup = sorted({n for n in explicit if explicit.count(n) > 1})
        if dup:
            raise ValueError(f"layer names must be unique within a model; duplicated: {dup}")
        names = unique_names([(lay.name, _snake(type(lay).__name__))
                              for lay in self.graph.layers])
        self._names = {id(lay): n for lay, n in zip(self.graph.layers, names)}

    def _initialise_pending(self) -> None:
        """Re-draw, from ``seed``, the weights of layers built without a seed that no model
        contained before; mark all as initialised."""
        rng = np.random.default_rng(self.seed) if self.seed is not None else None
        for layer in self.graph.layers:
            if getattr(layer, "_init_pending", False):
                if rng is not None:
                    layer.build(layer.input_shape, rng)
                layer._init_pending = False

    def refuse(self) -> None:
        """(Re)apply the graph passes (when ``fuse``) and record what they fused."""
        self._fused, self.fusions = {}, []
        plain: dict[int, str] = {}  # the marks of the passes that change no stored value
        if self.fuse and self.graph is not None:
            for name, run_pass in PASSES.items():
                marks, pairs = run_pass(self.graph, dict(self._fused))
                self._fused.update(marks)
                if name not in VALUE_PASSES:
                    plain.update(marks)
                self.fusions += [(self.layer_name(a), self.layer_name(b)) for a, b in pairs]
        infer = dict(self._fused)  # and those of inference runs without a tape
        if self.fuse and self.graph is not None:
            for run_pass in INFERENCE_PASSES.values():
                infer.update(run_pass(self.graph, dict(infer))[0])
        steps = self.graph.steps if self.graph is not None else []
        self._marks = [self._fused.get(st.index) for st in steps]  # one per step
        self._plain_marks = [plain.get(st.index) for st in steps]
        self._infer_marks = [infer.get(st.index) for st in steps]
        # slots whose stored value a fusion changes: a run keeping one uses the plain marks
        self._altered = {st.out_slots[0] for st in steps
                         if self._infer_marks[st.index] in ("relu_after", "relu_fwd")
                         or isinstance(self._infer_marks[st.index], tuple)}

    def set_fusion(self, fuse: bool) -> None:
        """Switch the graph fusions on or off (``summary()`` lists the fused pairs)."""
        self.fuse = bool(fuse)
        self.refuse()

    def _require_built(self) -> None:
        if self.graph is None:
            raise RuntimeError(f"the model {self.display_name!r} is not built: give it an "
                               "input shape (Sequential(..., input_shape=...)) or call it on data")

    # -------------------------------------------------------------- structure
    @property
    def layers(self) -> list[Layer]:
        """The layers of the graph (no ``InputLayer``), in the order they are first called."""
        return list(self.graph.layers) if self.graph is not None else []

    @property
    def inputs(self) -> list[SymbolicTensor]:
        self._require_built()
        return list(self.graph.inputs)

    @property
    def outputs(self) -> list[SymbolicTensor]:
        self._require_built()
        return list(self.graph.outputs)

    @property
    def input(self) -> Any:
        """The input tensor (a list for several inputs)."""
        ins = self.inputs
        return ins if self._list_in else ins[0]

    @property
    def output(self) -> Any:  # type: ignore[override]
        """The output tensor (a list for several outputs)."""
        outs = self.outputs
        return outs if self._list_out else outs[0]

    @property
    def output_names(self) -> list[str]:
        """One name per output: the name of the layer producing it (``_k`` for the k-th
        output of a multi-output layer). Names are unique (losses, metrics and the history
        are keyed by them): when a shared layer's calls give several outputs, the later ones
        are named by their call, ``name[k]`` for the k-th (from 0), as the ONNX exporter
        names the values of a layer's k-th call."""
        call_of: dict[int, int] = {}
        count: dict[int, int] = {}
        for st in self.graph.steps:
            call_of[id(st.node)] = count.get(id(st.layer), 0)
            count[id(st.layer)] = call_of[id(st.node)] + 1
        names: list[str] = []
        for t in self.outputs:
            base = self.layer_name(t.layer)
            tail = "" if len(t.node.outputs) == 1 else f"_{t.index}"
            name = base + tail
            if name in names:
                name = f"{base}[{call_of.get(id(t.node), 0)}]{tail}"
            k = 0
            while name in names:  # the same tensor given as two outputs
                k += 1
                name = f"{base}{tail}_{k}"
            names.append(name)
        return names

    @property
    def input_names(self) -> list[str]:
        return [t.layer.name or f"input_{k}" for k, t in enumerate(self.inputs)]

    def layer_name(self, layer: Layer) -> str:
        """The name of ``layer`` in this model."""
        try:
            return self._names[id(layer)]
        except KeyError:
            if isinstance(layer, InputLayer):
                return layer.name or "input"
            raise ValueError(f"{layer.display_name} is not a layer of this model") from None

    def get_layer(self, name: str) -> Layer:
        """The layer called ``name``; ``"block/conv2d"`` reaches into a nested model."""
        head, _, rest = name.partition("/")
        for layer in self.graph.layers:
            if self._names[id(layer)] == head:
                if rest:
                    if not isinstance(layer, Model):
                        raise ValueError(f"{head!r} is a {type(layer).__name__}, not a model")
                    return layer.get_layer(rest)
                return layer
        raise ValueError(f"no layer named {name!r}; layers: "
                         f"{', '.join(self._names[id(lay)] for lay in self.graph.layers)}")

    def leaf_layers(self) -> list[Layer]:
        """Every layer that is not a model, nested models flattened, each once."""
        leaves = self.__dict__.get("_leaves")
        if leaves is None or leaves[0] is not self.graph:
            out: dict[int, Layer] = {}
            for layer in self.graph.layers:
                for leaf in (layer.leaf_layers() if isinstance(layer, Model) else [layer]):
                    out.setdefault(id(leaf), leaf)
            leaves = self._leaves = (self.graph, list(out.values()),
                                     [lay for lay in out.values() if lay.grads])
        return list(leaves[1])

    def _grad_layers(self) -> list[Layer]:
        """The leaf layers that have gradients."""
        leaves = self.__dict__.get("_leaves")
        if leaves is None or leaves[0] is not self.graph:
            self.leaf_layers()
            leaves = self._leaves
        return leaves[2]

    # ------------------------------------------------------------- parameters
    def _named(self, store: str) -> list[tuple[str, Layer, str]]:
        out: list[tuple[str, Layer, str]] = []
        for layer in self.graph.layers:
            name = self._names[id(layer)]
            if isinstance(layer, Model):
                out += [(f"{name}/{q}", lay, k) for q, lay, k in layer._named(store)]
            else:
                out += [(f"{name}/{k}", layer, k) for k in getattr(layer, store)]
        return out

    def named_params(self) -> list[tuple[str, Layer, str]]:
        """``(qualified_name, layer, key)`` for every parameter, in a fixed order."""
        return self._named("params")

    def named_buffers(self) -> list[tuple[str, Layer, str]]:
        """``(qualified_name, layer, key)`` for every non-trainable buffer."""
        return self._named("buffers")

    def trainable_params(self) -> dict[str, np.ndarray]:
        """``{qualified_name: array}`` of the parameters an optimizer updates."""
        return {q: lay.params[k] for q, lay, k in self.named_params() if lay.trainable}

    def trainable_grads(self) -> dict[str, np.ndarray]:
        """``{qualified_name: gradient}`` with the keys of :meth:`trainable_params`."""
        return {q: lay.grads[k] for q, lay, k in self.named_params() if lay.trainable}

    @property
    def trainable(self) -> bool:  # type: ignore[override]
        return getattr(self, "_trainable", True)

    @trainable.setter
    def trainable(self, flag: bool) -> None:
        """Setting it sets every layer inside (as Keras does)."""
        self._trainable = bool(flag)
        if getattr(self, "graph", None) is not None:
            for layer in self.graph.layers:
                layer.trainable = bool(flag)

    def get_weights(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and buffer, by qualified name (``"conv2d/W"``)."""
        out = {q: lay.params[k].copy() for q, lay, k in self.named_params()}
        out.update({q: lay.buffers[k].copy() for q, lay, k in self.named_buffers()})
        return out

    def set_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        """Copy arrays into the parameters and buffers, checking names, shapes and values."""
        slots = {q: (lay.params, k) for q, lay, k in self.named_params()}
        slots.update({q: (lay.buffers, k) for q, lay, k in self.named_buffers()})
        missing = sorted(set(slots) - set(weights))
        extra = sorted(set(weights) - set(slots))
        if missing or extra:
            raise ValueError(f"weights do not match the model: missing {missing}, unexpected "
                             f"{extra}")
        for q, (store, k) in slots.items():
            value = np.asarray(weights[q])
            if value.shape != store[k].shape:
                raise ValueError(f"weight {q!r}: expected shape {store[k].shape}; received "
                                 f"{value.shape}")
            store[k][...] = value

    def state_dict(self) -> dict[str, np.ndarray]:
        """Every parameter, buffer and extra state (random generators) by qualified name."""
        out: dict[str, np.ndarray] = {}
        for layer in self.graph.layers:
            name = self._names[id(layer)]
            for k, v in layer.state_dict().items():
                out[f"{name}/{k}"] = v
        return out

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore :meth:`state_dict`'s output (names and shapes checked)."""
        groups: dict[str, dict[str, np.ndarray]] = {}
        names = {self._names[id(lay)]: lay for lay in self.graph.layers}
        for key, value in state.items():
            head, _, rest = key.partition("/")
            if head not in names or not rest:
                raise ValueError(f"state entry {key!r} names no layer of this model")
            groups.setdefault(head, {})[rest] = value
        for name, layer in names.items():
            layer.load_state_dict(groups.get(name, {}))

    def count_params(self) -> int:
        return sum(layer.count_params() for layer in self.graph.layers)

    def count_non_trainable(self) -> int:
        return sum(layer.count_non_trainable() for layer in self.graph.layers)

    # ---------------------------------------------------- running the graph
    def _plan(self, input_grads: bool) -> list[Any]:
        """``need_dx`` per step, cached by which leaf layers are trainable."""
        key = (input_grads, tuple([lay.trainable for lay in self._grad_layers()]))
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self.graph.grad_plan(input_grads)
        return plan

    def _check_inputs(self, x: Any) -> list[np.ndarray]:
        xs = _as_list(x) if self._list_in else [x]
        if len(xs) != len(self.graph.inputs):
            raise ValueError(f"{self.display_name}: expected {len(self.graph.inputs)} inputs; "
                             f"received {len(xs)}")
        return xs

    def run(self, xs: list[np.ndarray], training: bool = False, input_grads: bool = False,
            record: bool = True, ws: Workspace | None = None,
            keep: set[int] | None = None) -> tuple[list[np.ndarray], list[Call] | None, dict]:
        """Run the graph on a list of arrays (one per input): ``(outputs, tape, kept)``
        (see :meth:`Graph.forward`)."""
        self._require_built()
        if len(xs) != len(self.graph.inputs):
            raise ValueError(f"{self.display_name}: expected {len(self.graph.inputs)} inputs; "
                             f"received {len(xs)}")
        for t, a in zip(self.graph.inputs, xs):
            t.node.layer.check_input(a)
        marks = self._marks if training or record else self._infer_marks
        if keep and not self._altered.isdisjoint(keep):
            marks = self._plain_marks  # the kept values must be each layer's own output
        return self.graph.forward(xs, training, ws or self._ws_root, self._plan(input_grads),
                                  marks, keep=keep, record=record)

    def run_backward(self, tape: list[Call], dys: list[np.ndarray | None],
                     input_grads: bool = False, grad_pass: GradPass | None = None,
                     accumulate: bool = False) -> list[np.ndarray | None]:
        """Back-propagate ``dys`` (one per output) through a recorded ``tape``, filling every
        layer's ``grads``; returns the input gradients when ``input_grads``."""
        top = grad_pass is None
        if top:
            grad_pass = GradPass()
            if accumulate:
                grad_pass.seen.update(self._grad_layers())
        dxs = self.graph.backward(tape, dys, grad_pass, input_grads)
        if top:
            seen = grad_pass.seen
            for layer in self._grad_layers():
                if layer not in seen:
                    for g in layer.grads.values():
                        g.fill(0)
        return dxs

    def forward(self, x: Any, training: bool = False) -> Any:
        """Outputs for arrays ``x`` (one array, or a list for several inputs), remembered for
        :meth:`backward`. Outputs may be views of internal layouts; ``predict`` returns
        contiguous arrays."""
        outs, self._tape, _ = self.run(self._check_inputs(x), training,
                                       input_grads=self.need_input_grad)
        return outs if self._list_out else outs[0]

    @property
    def last_calls(self) -> list[Call]:
        """The calls of the latest :meth:`forward`, one per step of the graph in order: each
        holds its cache and whether it computes an input gradient (``need_dx``)."""
        return list(self._tape or [])

    def backward(self, dy: Any) -> Any:
        """Back-propagate through the latest :meth:`forward`; fills every layer's ``grads``
        and returns dL/dx when ``need_input_grad`` (else None)."""
        if self._tape is None:
            raise RuntimeError(f"{self.display_name}: backward() called before forward()")
        dys = _as_list(dy) if self._list_out else [dy]
        dxs = self.run_backward(self._tape, dys, input_grads=self.need_input_grad)
        if not self.need_input_grad:
            return None
        return dxs if self._list_in else dxs[0]

    # ----------------------------------------------- a model as a layer in a graph
    def build(self, input_shape: Any, rng: np.random.Generator | None = None) -> None:
        self._require_built()
        self.check_shape(input_shape)

    def output_shape(self, input_shape: Any = None) -> Any:
        self._require_built()
        shapes = [t.shape for t in self.graph.outputs]
        return shapes if self._list_out else shapes[0]

    def fprop(self, x: Any, call: Call) -> Any:
        need = call.need_dx
        any_need = any(need) if isinstance(need, (list, tuple)) else bool(need)
        outs, tape, _ = self.run(self._check_inputs(x), call.training, input_grads=any_need,
                                 ws=call.ws)
        call.cache = tape
        return tuple(outs) if self._list_out else outs[0]

    def backprop_call(self, dy: Any, call: Call, grad_pass: GradPass) -> Any:
        """Backward of one call of this model inside an enclosing graph's pass."""
        dys = list(dy) if self._list_out else [dy]
        need = call.need_dx
        any_need = any(need) if isinstance(need, (list, tuple)) else bool(need)
        dxs = self.graph.backward(call.cache, dys, grad_pass, any_need)
        return dxs if self._list_in else dxs[0]

    def bprop(self, dy: Any, call: Call, accumulate: bool = False) -> Any:
        dys = list(dy) if self._list_out else [dy]
        need = call.need_dx
        any_need = any(need) if isinstance(need, (list, tuple)) else bool(need)
        dxs = self.run_backward(call.cache, dys, input_grads=any_need, accumulate=accumulate)
        return dxs if self._list_in else dxs[0]

    def __call__(self, x: Any, training: bool = False) -> Any:
        if self.graph is None and not isinstance(x, SymbolicTensor) and not (
                isinstance(x, (list, tuple)) and x and isinstance(x[0], SymbolicTensor)):
            shape = [a.shape[1:] for a in x] if isinstance(x, (list, tuple)) else x.shape[1:]
            self.build(shape)
        return super().__call__(x, training)

    # -------------------------------------------------------------- inspection
    def intermediates(self, x: Any, names: Iterable[str] | None = None,
                      batch_size: int | None = None) -> dict[str, np.ndarray]:
        """The outputs of the named layers (all layers when None) for inputs ``x``, in
        inference mode, as contiguous NCHW arrays: ``{name: array}``.

        A layer called several times in the graph reports its first call; a layer with
        several outputs reports a list. ``"input"`` (or an input's name) gives the input.
        """
        self._require_built()
        if names is None:
            names = [self._names[id(lay)] for lay in self.graph.layers]
        names = list(names)
        wanted: dict[str, list[int]] = {}
        for name in names:
            if name == "input" or name in self.input_names:
                k = 0 if name == "input" else self.input_names.index(name)
                wanted[name] = [self.graph.input_slots[k]]
                continue
            layer = self.get_layer(name)
            step = next((st for st in self.graph.steps if st.layer is layer), None)
            if step is None:
                raise ValueError(f"layer {name!r} is not called in this model's graph")
            wanted[name] = step.out_slots
        keep = {s for slots in wanted.values() for s in slots}
        _, _, kept = self.run(self._check_inputs(x), training=False, record=False, keep=keep)
        out = {}
        for name, slots in wanted.items():
            arrays = [np.ascontiguousarray(kept[s]) for s in slots]
            out[name] = arrays if len(arrays) > 1 else arrays[0]
        return out

    def summary(self, print_fn: Callable[[str], Any] | None = None,
                input_shape: Any = None) -> str:
        """Print (and return) a Keras-style table: layers, output shapes, parameters,
        connections where they differ from parameters, multiply-accumulates per sample
        (:mod:`numcnn.models.flops`), "Connected to" for graphs, and the fused pairs.

        An unbuilt ``Sequential`` given an ``input_shape`` is summarised without being
        built (no parameters allocated); on a built model ``input_shape`` fixes free sizes.
        """
        from .summary import summary_of

        if input_shape is None:
            self._require_built()
        return summary_of(self, input_shape, print_fn)

    def count_macs(self, input_shape: Any = None) -> int:
        """Multiply-accumulates of one sample's forward pass (see
        :func:`numcnn.models.count_macs`)."""
        from .walk import count_macs

        return count_macs(self, input_shape)

    # --------------------------------------------------------------- training
    def _trainer(self) -> Any:
        if self.trainer is None:
            if not _TRAINER_FACTORY:
                raise RuntimeError("no trainer installed: import numcnn (numcnn.training)")
            self.trainer = _TRAINER_FACTORY[0](self)
        return self.trainer

    def compile(self, optimizer: Any = "sgd", loss: Any = "softmax_cross_entropy",
                metrics: Iterable[Any] | None = ("accuracy",), loss_weights: Any = None) -> None:
        """Choose the optimizer, the loss (one, or one per output as a list or a dict by
        output name), its weights per output and the metrics (objects or registered names).

        A ``Sequential`` not built yet keeps the choice until its first ``fit``.
        """
        if self.graph is None and self._deferrable():
            self._pending_compile = (optimizer, loss, metrics, loss_weights)
            return
        self._require_built()
        self._trainer().compile(optimizer, loss, metrics, loss_weights)

    def _deferrable(self) -> bool:
        """Whether this model can build itself from the first data it sees."""
        return False

    def _build_from_data(self, x: Any) -> None:
        """Build an unbuilt ``Sequential`` from the per-sample shape of ``x`` (Keras does the
        same on the first ``fit``/``predict``), then apply a deferred ``compile``."""
        if self.graph is None and self._deferrable():
            shape = np.shape(x)
            if len(shape) < 2:
                raise ValueError(f"{self.display_name}: cannot infer the input shape from data "
                                 f"of shape {shape}; give Sequential an input_shape")
            self.build(tuple(shape[1:]))
            pending = self.__dict__.pop("_pending_compile", None)
            if pending is not None:
                self.compile(*pending)
        self._require_built()

    def fit(self, x: Any, y: Any, **kwargs: Any) -> Any:
        """Train; see :meth:`numcnn.training.Trainer.fit` for the arguments."""
        self._build_from_data(x)
        return self._trainer().fit(x, y, **kwargs)

    def evaluate(self, x: Any, y: Any, batch_size: int | None = 1000) -> dict[str, float]:
        """Mean loss and metrics over ``(x, y)`` in inference mode."""
        self._build_from_data(x)
        return self._trainer().evaluate(x, y, batch_size=batch_size)

    def predict(self, x: Any, batch_size: int | None = 1000) -> Any:
        """Outputs in inference mode, batch by batch, as contiguous arrays."""
        self._build_from_data(x)
        return self._trainer().predict(x, batch_size=batch_size)

    # ----------------------------------------------------------------- config
    def get_config(self) -> dict[str, Any]:
        """The graph as JSON: every layer's config and, per call, which tensors it read."""
        self._require_built()
        index: dict[int, tuple[str, int]] = {}
        for t in self.graph.inputs:
            index[id(t.node)] = (t.layer.name or f"__input_{self.graph.inputs.index(t)}", 0)
        calls: dict[int, int] = {}
        layers = []
        for t in self.graph.inputs:
            layers.append({"class_name": "InputLayer", "config": t.layer.get_config(),
                           "name": index[id(t.node)][0], "inbound": []})
        for st in self.graph.steps:
            name = self._names[id(st.layer)]
            k = calls.get(id(st.layer), 0)
            calls[id(st.layer)] = k + 1
            index[id(st.node)] = (name, k)
            inbound = [[*index[id(t.node)], t.index] for t in st.node.inputs]
            if k == 0:
                spec = serialize(st.layer)
                spec["config"] = dict(spec["config"], name=name)
                layers.append({**spec, "name": name, "inbound": [inbound], "list_input":
                               st.list_input})
            else:
                entry = next(e for e in layers if e["name"] == name)
                entry["inbound"].append(inbound)
        return {"name": self.name, "seed": self.seed, "fuse": self.fuse,
                "trainable": self.trainable, "layers": layers,
                "inputs": [[*index[id(t.node)], t.index] for t in self.graph.inputs],
                "outputs": [[*index[id(t.node)], t.index] for t in self.graph.outputs],
                "list_inputs": self._list_in, "list_outputs": self._list_out}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Model:
        """Rebuild a graph model (fresh weights) from :meth:`get_config`."""
        config = dict(config)
        try:
            specs = list(config["layers"])
            inputs_spec, outputs_spec = config["inputs"], config["outputs"]
        except (KeyError, TypeError) as e:
            raise ValueError(f"model config lacks {e}") from None
        tensors: dict[tuple[str, int], list[Any]] = {}
        # (layer, its spec, the number of its next call): a shared layer's later call may
        # read a tensor made after its first call, so calls run as soon as their inputs
        # exist, each layer's calls in their order (as Keras's from_config)
        pending: list[list[Any]] = []
        for spec in specs:
            if not isinstance(spec, dict) or "name" not in spec:
                raise ValueError(f"bad layer entry in the model config: {spec!r}")
            name = spec["name"]
            if spec.get("class_name") == "InputLayer":
                cfg = dict(spec.get("config", {}))
                tensors[(name, 0)] = [InputLayer.from_config(cfg).tensor]
                continue
            layer = deserialize({"class_name": spec.get("class_name"),
                                 "config": spec.get("config", {})})
            inbound = spec.get("inbound", [])
            if not isinstance(inbound, list):
                raise ValueError(f"model config: layer {name!r}: inbound must be a list; "
                                 f"received {type(inbound).__name__}")
            if inbound:
                pending.append([layer, spec, 0])
        queue = collections.deque(pending)
        waiting: dict[tuple, list[list[Any]]] = {}
        while queue:  # linear in the calls: a call waits on one missing tensor at a time
            item = queue.popleft()
            layer, spec, k = item
            name, inbound = spec["name"], spec["inbound"]
            while k < len(inbound):
                try:
                    missing = next(((src, call) for src, call, _ in inbound[k]
                                    if (src, call) not in tensors), None)
                    if missing is not None:
                        waiting.setdefault(missing, []).append(item)
                        break
                    args = [tensors[(src, call)][idx] for src, call, idx in inbound[k]]
                except (ValueError, TypeError, IndexError):
                    raise ValueError(f"model config: layer {name!r}: bad inbound entry "
                                     f"{inbound[k]!r}") from None
                out = layer(args if spec.get("list_input") else args[0])
                tensors[(name, k)] = list(out) if isinstance(out, tuple) else [out]
                queue.extend(waiting.pop((name, k), []))
                k += 1
                item[2] = k
        for _layer, spec, k in pending:
            if k < len(spec["inbound"]):
                raise ValueError(f"model config: layer {spec['name']!r} reads a tensor that "
                                 f"no layer makes ({spec['inbound'][k]!r})")

        def pick(ref: Any) -> Any:
            try:
                src, call, idx = ref
                return tensors[(src, call)][idx]
            except (KeyError, IndexError, ValueError, TypeError):
                raise ValueError(f"model config: unknown tensor {ref!r}") from None

        ins = [pick(r) for r in inputs_spec]
        outs = [pick(r) for r in outputs_spec]
        return cls(ins if config.get("list_inputs") else ins[0],
                   outs if config.get("list_outputs") else outs[0],
                   name=config.get("name"), seed=config.get("seed"),
                   fuse=config.get("fuse", True), trainable=config.get("trainable", True))

    def __repr__(self) -> str:
        if self.graph is None:
            return f"{type(self).__name__}(name={self.name!r}, unbuilt)"
        return (f"{type(self).__name__}(name={self.name!r}, inputs="
                f"{[format_shape(t.shape) for t in self.graph.inputs]}, "
                f"layers={len(self.graph.layers)}, params={self.count_params():,})")


def unique_names(entries: list[tuple[str | None, str]]) -> list[str]:
    """The names of a model's layers: each ``(own name or None, lower-case class name)``
    keeps its own name, else gets the class name with a counter that skips the names taken
    (``conv2d``, ``conv2d_1``, ...). The rule of ``Model`` and of the walks over a config
    that name layers without building them (``models.walk``, ``io.plan``)."""
    used = {n for n, _ in entries if n}
    taken: dict[str, int] = {}
    out = []
    for name, base in entries:
        if name:
            out.append(name)
            continue
        k = taken.get(base, 0)
        name = base if k == 0 else f"{base}_{k}"
        while name in used:
            k += 1
            name = f"{base}_{k}"
        taken[base] = k + 1
        used.add(name)
        out.append(name)
    return out
