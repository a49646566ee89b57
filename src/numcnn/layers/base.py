"""The Layer contract every numcnn layer follows (design notes §3).

A layer owns its parameters and calls :mod:`numcnn.functional` for the math. It is built
lazily from the per-sample input shape (no batch axis; ``None`` marks a free dimension), so
``summary()`` works before any data is seen. It computes through two methods that keep no
state of their own between calls:

* ``fprop(x, call) -> y`` — the forward pass; what the backward pass needs goes into
  ``call.cache``;
* ``bprop(dy, call, accumulate=False) -> dx`` — the backward pass from that call's cache:
  it *fills* ``grads`` (or adds into them when ``accumulate``; it never changes a parameter)
  and returns dL/dx, or ``None`` when ``call.need_dx`` is False.

A :class:`Call` is one application of the layer. Because the state lives there and not in
the layer, a layer applied several times before one backward pass (a shared layer in a
graph, a recurrent step) keeps each application's cache and adds up their gradients. The
graph engine makes one Call per node per step; ``forward``/``backward`` are the
single-call convenience a learner uses on a layer alone.

Layers may keep references to their input and output in ``call.cache``, so callers must
not modify either in place before the backward pass; every built-in layer returns fresh
arrays (or an input unchanged, as inference-mode Dropout does) and never writes to its
input.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import regularizers as regs
from .._random import generator_state, set_generator_state
from .._registry import Registry
from ..functional import Workspace
from .grads import GradDict
from .node import Node, Shape, format_shape, is_symbolic, mask_source, shapes_compatible

LAYERS = Registry("layer")


def check_dtype(dtype: Any) -> np.dtype:
    """Return ``np.dtype(dtype)`` if it is float32 or float64, else raise ``TypeError``."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float32 or float64; received dtype={dtype!r}") from None
    if dt not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64; received dtype={dt}")
    return dt


class Call:
    """One application of a layer: the per-call state its backward pass needs.

    Attributes:
        training: the forward pass ran in training mode.
        need_dx: whether ``bprop`` must return dL/dx (a list of flags, one per input, for
            layers called on a list).
        ws: the :class:`numcnn.functional.Workspace` of this call site (scratch memory).
        cache: set by ``fprop``, read by ``bprop``.
        fused: a mark set by a graph pass that fused this call with a neighbour (for
            instance ``"relu_in"`` on a max pooling that applies the preceding ReLU's
            derivative itself, ``"relu_out"`` on that ReLU), else None.
    """

    __slots__ = ("training", "need_dx", "ws", "cache", "fused")

    def __init__(self, training: bool = False, need_dx: Any = True, ws: Workspace | None = None,
                 fused: str | None = None):
        self.training = bool(training)
        self.need_dx = need_dx
        self.ws = ws if ws is not None else Workspace()
        self.cache: Any = None
        self.fused = fused


class Layer:
    """Base class: parameters, gradients, lazy build, calls and the config round trip.

    Args:
        name: optional name (models give unnamed layers one: ``conv2d``, ``conv2d_1``…).
        dtype: ``"float32"`` or ``"float64"``; ``None`` (default) means float32, or the
            dtype of the input the layer is first called on in a graph.
        trainable: if False the optimizer skips this layer's parameters.
        regularizers: ``{parameter key: regularizer}`` — weight penalties the trainer adds
            to the loss and to the gradient while the layer is trainable, e.g.
            ``{"W": WeightDecay(3e-3)}`` for UFLDL's ``(λ/2)‖W‖²`` (see
            :mod:`numcnn.regularizers`).

    Attributes:
        params: dict of trainable arrays, created by ``build``.
        grads: the same keys and shapes as ``params``, filled by ``bprop`` (a mapping whose
            arrays are made on first use, :mod:`.grads`).
        buffers: dict of non-trainable state arrays (e.g. BatchNorm running statistics),
            saved with the model but never updated by an optimizer.
        input_shape: the per-sample input shape the layer was built for.
        need_input_grad: whether ``backward`` (the single-call convenience) returns dL/dx.
        per_sample: class attribute; True when each sample's output depends on that sample
            alone and training updates no state shared across batches, so a batch may be
            split between processes (``fit(distribute=...)``). BatchNorm sets it False.
        keeps_mask: class attribute; True for the layers that act on each time step alone
            (element-wise activations, Dropout, TimeDistributed): called on a sequence that
            carries a padding mask, their output carries the same mask, so the recurrent
            layers and the loss after them still skip the padding (see ``layers.masking``).
    """

    per_sample = True
    keeps_mask = False

    def __init__(self, *, name: str | None = None, dtype: Any = None, trainable: bool = True,
                 regularizers: dict[str, Any] | None = None):
        if name is not None and (not isinstance(name, str) or not name or "/" in name):
            raise ValueError(f"name must be a non-empty string without '/'; received "
                             f"name={name!r}")
        self.name = name
        self._dtype_given = dtype is not None
        self.dtype = check_dtype("float32" if dtype is None else dtype)
        self.trainable = bool(trainable)
        self.regularizers = regs.check_map(regularizers, name or type(self).__name__)
        self.params: dict[str, np.ndarray] = {}
        self.grads: GradDict = GradDict(self.params)  # each array made on first use
        self.buffers: dict[str, np.ndarray] = {}
        self.input_shape: Any = None
        self.built = False
        self.need_input_grad = True
        self._ws = Workspace()
        self._last_call: Call | None = None
        self._nodes: list[Node] = []
        self._init_pending = False

    # ----------------------------------------------------------------- building
    def build(self, input_shape: Any, rng: np.random.Generator | None = None) -> None:
        """Create parameters for a per-sample ``input_shape``; subclasses extend this.

        Args:
            input_shape: shape of one sample, e.g. ``(C, H, W)`` (a list of shapes for
                layers called on a list).
            rng: generator for initial weights; a fresh unseeded one when None.
        """
        self.input_shape = _as_shape(input_shape)
        self.output_shape(self.input_shape)  # validates the shape
        self.built = True

    def output_shape(self, input_shape: Any) -> Any:
        """Per-sample output shape for a per-sample input shape (identity by default).

        Layers with several outputs return a list of shapes.
        """
        return tuple(input_shape)

    def param_shapes(self, input_shape: Any) -> dict[str, tuple[int, ...]]:
        """The shapes of the parameters ``build(input_shape)`` would create, by key, computed
        without building or allocating anything (``load_model`` checks an untrusted file
        with it before it builds the model). None by default; layers with parameters
        override it, and :meth:`buffer_shapes` alike.

        Raises:
            ValueError: ``input_shape`` does not fit the layer, or a dimension the
                parameters depend on is free (``None``).
        """
        self.output_shape(input_shape)  # validates the shape
        return {}

    def buffer_shapes(self, input_shape: Any) -> dict[str, tuple[int, ...]]:
        """The shapes of the buffers ``build(input_shape)`` would create, by key (see
        :meth:`param_shapes`)."""
        self.output_shape(input_shape)
        return {}

    def _known_dim(self, input_shape: Any, axis: int) -> int:
        """``input_shape[axis]``, refused when it is free: parameters need its size."""
        d = input_shape[axis]
        if d is None:
            raise ValueError(f"{self.display_name}: the parameters depend on dimension "
                             f"{axis} of the input, which must be known; received "
                             f"{format_shape(tuple(input_shape))}")
        return int(d)

    def add_param(self, name: str, value: np.ndarray) -> np.ndarray:
        """Register a trainable parameter (cast to the layer dtype) and its gradient slot
        (the array is made on first use: :mod:`.grads`)."""
        arr = np.ascontiguousarray(value, dtype=self.dtype)
        self.params[name] = arr
        self.grads.forget(name)
        return arr

    def set_dtype(self, dtype: Any) -> None:
        """Set the dtype before the layer is built (models use it to propagate theirs)."""
        dt = check_dtype(dtype)
        if self.built and dt != self.dtype:
            raise ValueError(f"{self.display_name}: built as {self.dtype}; cannot become {dt}")
        self.dtype = dt
        self._dtype_given = True

    # ------------------------------------------------------------ computation
    def fprop(self, x: Any, call: Call) -> Any:
        """Forward pass of one call: return ``y``, keep what ``bprop`` needs in
        ``call.cache``."""
        raise NotImplementedError

    def bprop(self, dy: Any, call: Call, accumulate: bool = False) -> Any:
        """Backward pass of ``call``: fill (``accumulate``: add into) ``grads``, return dL/dx
        (``None`` when ``call.need_dx`` is False)."""
        raise NotImplementedError

    def store_grad(self, key: str, g: np.ndarray, accumulate: bool) -> None:
        """``grads[key] = g`` (or ``+= g`` when accumulating), in place."""
        if accumulate:
            self.grads[key] += g
        else:
            self.grads[key][...] = g

    def forward(self, x: Any, training: bool = False) -> Any:
        """One call on arrays, remembered for :meth:`backward` (the single-call convenience)."""
        call = Call(training, self.need_input_grad, self._ws)
        y = self.fprop(x, call)
        self._last_call = call
        return y

    def backward(self, dy: Any) -> Any:
        """Backward pass of the latest :meth:`forward`; fills ``grads`` (overwrites)."""
        if self._last_call is None:
            raise RuntimeError(f"{self.display_name}: backward() called before forward()")
        return self.bprop(dy, self._last_call, accumulate=False)

    def __call__(self, x: Any, training: bool = False) -> Any:
        """On arrays: build if needed, then ``forward``. On symbolic tensors
        (``numcnn.Input``): record a graph node and return symbolic outputs."""
        if is_symbolic(x):
            return self.call_symbolic(x)
        if not self.built:
            first = x[0] if isinstance(x, (list, tuple)) and x else x
            if not self._dtype_given and getattr(first, "dtype", None) in (np.float32,
                                                                             np.float64):
                self.dtype = np.dtype(first.dtype)  # a float64 array builds a float64 layer
            shape = [a.shape[1:] for a in x] if isinstance(x, (list, tuple)) else x.shape[1:]
            self.build(shape)
        return self.forward(x, training=training)

    def call_symbolic(self, inputs: Any, rng: np.random.Generator | None = None) -> Any:
        """Record one call of this layer on symbolic tensors (see :mod:`.node`).

        Builds the layer on its first call (``rng`` draws the initial weights; a model
        given a seed re-draws weights drawn without one, see ``Model(seed=...)``); later
        calls share the weights and must have compatible input shapes.
        """
        list_input = isinstance(inputs, (list, tuple))
        tensors = list(inputs) if list_input else [inputs]
        dtypes = {t.dtype for t in tensors}
        if len(dtypes) != 1:
            raise TypeError(f"{self.display_name}: inputs of different dtypes "
                            f"{sorted(d.name for d in dtypes)}")
        dtype = tensors[0].dtype
        shape = [t.shape for t in tensors] if list_input else tensors[0].shape
        if not self.built:
            if not self._dtype_given:
                self.dtype = check_dtype(dtype)
            self.check_dtype_of(dtype)
            self.build(shape, rng)
            self._init_pending = rng is None
        else:
            self.check_dtype_of(dtype)
            self.check_shape(shape)
        out = self.output_shape(shape)
        shapes = list(out) if isinstance(out, list) else [out]
        node = Node(self, tensors, list_input, shapes, self.dtype)
        self._nodes.append(node)
        if self.keeps_mask and not list_input and len(node.outputs) == 1:
            src = mask_source(tensors[0])
            if src is not None:
                self.__dict__.setdefault("_mask_of", {})[id(node.outputs[0])] = src
        return tuple(node.outputs) if isinstance(out, list) else node.outputs[0]

    @property
    def output(self) -> Any:
        """The symbolic output of this layer's one call in a graph (see ``get_output_at``)."""
        if len(self._nodes) != 1:
            raise AttributeError(
                f"{self.display_name} has been called {len(self._nodes)} times on symbolic "
                "tensors; layer.output is ambiguous — use layer.get_output_at(k)")
        return self.get_output_at(0)

    def get_output_at(self, k: int) -> Any:
        """The symbolic output(s) of this layer's ``k``-th call in a graph."""
        outs = self._nodes[k].outputs
        return outs[0] if len(outs) == 1 and not isinstance(self.output_shape(
            self.input_shape), list) else tuple(outs)

    # ------------------------------------------------------------------ checks
    def check_dtype_of(self, dtype: Any) -> None:
        if np.dtype(dtype) != self.dtype:
            raise TypeError(f"{self.display_name}: expected input of dtype {self.dtype}; "
                            f"received {np.dtype(dtype)}")

    def check_shape(self, shape: Any) -> None:
        """Raise a clear error when a per-sample ``shape`` does not fit the built one."""
        exp = self.input_shape
        if isinstance(exp, list):
            ok = isinstance(shape, list) and len(shape) == len(exp) and all(
                shapes_compatible(tuple(a), e) for a, e in zip(shape, exp))
            if not ok:
                got = ([format_shape(tuple(a)) for a in shape] if isinstance(shape, list)
                       else shape)
                raise ValueError(f"{self.display_name}: expected inputs of shapes "
                                 f"{[format_shape(e) for e in exp]}; received {got}")
            return
        if exp is not None and not shapes_compatible(tuple(shape), exp):
            raise ValueError(f"{self.display_name}: expected input of shape "
                             f"{format_shape(exp)}; received {format_shape(tuple(shape))}")

    def check_input(self, x: Any) -> None:
        """Raise a clear error when ``x`` does not match the built shape and dtype."""
        if type(x) is np.ndarray and x.dtype == self.dtype and x.shape[1:] == self.input_shape:
            return  # the common case, checked in C
        if isinstance(self.input_shape, list):
            if not isinstance(x, (list, tuple)):
                raise TypeError(f"{self.display_name}: expected a list of "
                                f"{len(self.input_shape)} arrays; received {type(x).__name__}")
            for a in x:
                self._check_array(a)
            self.check_shape([tuple(a.shape[1:]) for a in x])
            if len({a.shape[0] for a in x}) != 1:
                raise ValueError(f"{self.display_name}: inputs with different batch sizes "
                                 f"{[a.shape[0] for a in x]}")
            return
        self._check_array(x)
        if self.input_shape is not None and not shapes_compatible(tuple(x.shape[1:]),
                                                                  self.input_shape):
            raise ValueError(f"{self.display_name}: expected input of shape "
                             f"{format_shape(self.input_shape)}; received {tuple(x.shape)}")

    def _check_array(self, x: Any) -> None:
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{self.display_name}: expected a numpy array; received "
                            f"{type(x).__name__}")
        if x.dtype != self.dtype:
            raise TypeError(f"{self.display_name}: expected input of dtype {self.dtype}; "
                            f"received {x.dtype}")

    # ------------------------------------------------------------------ state
    def extra_state(self) -> dict[str, np.ndarray]:
        """State that is neither a parameter nor a buffer but must survive a checkpoint
        (e.g. Dropout's random generator), as arrays; empty by default."""
        return {}

    def load_extra_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`extra_state` returned."""
        if state:
            raise ValueError(f"{self.display_name}: unexpected state {sorted(state)}")

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter, buffer and extra state array, by key."""
        out = {k: v.copy() for k, v in self.params.items()}
        out.update({k: v.copy() for k, v in self.buffers.items()})
        out.update(self.extra_state())
        return out

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copy arrays into parameters and buffers (checking names and shapes) and restore
        the extra state."""
        state = dict(state)
        for store in (self.params, self.buffers):
            for k, arr in store.items():
                if k not in state:
                    raise ValueError(f"{self.display_name}: state has no entry {k!r}")
                value = np.asarray(state.pop(k))
                if value.shape != arr.shape:
                    raise ValueError(f"{self.display_name}/{k}: expected shape {arr.shape}; "
                                     f"received {value.shape}")
                arr[...] = value
        self.load_extra_state(state)

    # ----------------------------------------------------------------- counts
    def count_params(self) -> int:
        """Number of trainable scalars (sparse layers override to count only live ones)."""
        return int(sum(p.size for p in self.params.values())) if self.trainable else 0

    def count_non_trainable(self) -> int:
        """Number of non-trainable scalars: buffers, plus params of a frozen layer."""
        n = sum(b.size for b in self.buffers.values())
        if not self.trainable:
            n += sum(p.size for p in self.params.values())
        return int(n)

    def count_connections(self, input_shape: Shape) -> int | None:
        """Multiply-accumulate connections per sample, when they differ from parameters.

        Returns None for layers whose connections equal their parameters or are not defined.
        """
        return None

    # ----------------------------------------------------------------- config
    def get_config(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this layer (JSON-serialisable)."""
        cfg = {"name": self.name, "dtype": self.dtype.name, "trainable": self.trainable}
        if self.regularizers:
            cfg["regularizers"] = {k: regs.serialize(r) for k, r in self.regularizers.items()}
        return cfg

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        return cls(**config)

    @property
    def display_name(self) -> str:
        return self.name or type(self).__name__

    def __repr__(self) -> str:
        args = {k: v for k, v in self.get_config().items() if k not in ("dtype", "trainable")}
        inner = ", ".join(f"{k}={v!r}" for k, v in args.items() if v is not None)
        return f"{type(self).__name__}({inner})"


class RandomLayer(Layer):
    """A layer that draws random numbers (Dropout, augmentation) from its own generator.

    The generator's whole state is part of the layer's state (``extra_state``), so a
    checkpointed run resumes with the same draws.

    Args:
        seed: seed of the generator. None: drawn from the generator that initialises the
            model's weights when the layer is built inside a model (so ``seed=`` of the model
            makes the draws reproducible too), else unpredictable.
    """

    def __init__(self, seed: int | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if seed is not None and (isinstance(seed, bool)
                                 or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise TypeError(f"seed must be a non-negative int or None; received seed={seed!r}")
        self.seed = None if seed is None else int(seed)
        self.rng = np.random.default_rng(self.seed)

    def build(self, input_shape: Any, rng: np.random.Generator | None = None) -> None:
        super().build(input_shape, rng)
        if self.seed is None and rng is not None:
            self.rng = np.random.default_rng(int(rng.integers(1 << 63)))

    def param_shapes(self, input_shape: Any) -> dict[str, tuple[int, ...]]:
        """None: the build only seeds the generator (see :meth:`Layer.param_shapes`)."""
        return super().param_shapes(input_shape)

    def extra_state(self) -> dict[str, np.ndarray]:
        return {"rng": generator_state(self.rng)}

    def load_extra_state(self, state: dict[str, np.ndarray]) -> None:
        state = dict(state)
        if "rng" in state:
            set_generator_state(self.rng, state.pop("rng"))
        super().load_extra_state(state)


def _as_shape(shape: Any) -> Any:
    if isinstance(shape, list) and shape and isinstance(shape[0], (tuple, list)):
        return [tuple(None if d is None else int(d) for d in s) for s in shape]
    return tuple(None if d is None else int(d) for d in shape)


def serialize(layer: Layer) -> dict[str, Any]:
    """``{"class_name": ..., "config": ...}`` for a registered layer."""
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def deserialize(spec: dict[str, Any]) -> Layer:
    """Rebuild a layer from ``serialize``'s output."""
    if not isinstance(spec, dict) or "class_name" not in spec:
        raise ValueError(f"layer spec must be a dict with 'class_name'; received {spec!r}")
    cls = LAYERS.lookup(spec["class_name"])
    config = spec.get("config", {})
    if not isinstance(config, dict):
        raise ValueError(f"layer config must be a dict; received {type(config).__name__}")
    try:
        return cls.from_config(dict(config))
    except TypeError as e:
        raise ValueError(f"bad config for layer {spec['class_name']}: {e}") from None
