"""The Layer contract every numcnn layer follows (design notes §3).

A layer is built lazily from the per-sample input shape (no batch dimension), so
``summary()`` works before any data is seen. ``forward`` keeps in small named fields only
what ``backward`` needs; ``backward`` *fills* ``grads`` (overwrites, never accumulates) and
returns the gradient with respect to the input, unless ``need_input_grad`` is False (the
first layer of a model), in which case it returns ``None`` and skips that work.

Between ``forward`` and ``backward`` a layer may keep references to its input and to the
output it returned (max pooling and ReLU derive their masks from them), so callers must not
modify either in place before ``backward``; every built-in layer returns fresh arrays and
never writes to its input.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._registry import Registry

LAYERS = Registry("layer")

Shape = tuple[int, ...]


def check_dtype(dtype: Any) -> np.dtype:
    """Return ``np.dtype(dtype)`` if it is float32 or float64, else raise ``TypeError``."""
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64; received dtype={dt}")
    return dt


class Layer:
    """Base class: parameters, gradients, lazy build and the config round trip.

    Args:
        name: optional display name (defaults to the class name with a counter in models).
        dtype: ``"float32"`` (default) or ``"float64"``; parameters and outputs use it.
        trainable: if False the optimizer skips this layer's parameters.

    Attributes:
        params: dict of trainable arrays, created by ``build``.
        grads: dict with the same keys and shapes as ``params``, filled by ``backward``.
        buffers: dict of non-trainable state arrays (e.g. BatchNorm running statistics),
            saved with the model but never updated by an optimizer.
        input_shape: the per-sample input shape the layer was built for.
        need_input_grad: whether ``backward`` must return dL/dx.
        per_sample: class attribute; True when each sample's output depends on that sample
            alone and training updates no state shared across batches, so a batch may be
            split between processes (``fit(processes=...)``). BatchNorm sets it False.
    """

    per_sample = True

    def __init__(self, *, name: str | None = None, dtype: Any = "float32", trainable: bool = True):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a string; received name={name!r}")
        self.name = name
        self.dtype = check_dtype(dtype)
        self.trainable = bool(trainable)
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}
        self.input_shape: Shape | None = None
        self.built = False
        self.need_input_grad = True
        self.hdiag: dict[str, np.ndarray] = {}  # Gauss–Newton diagonal, see backward_gn

    # ----------------------------------------------------------------- building
    def build(self, input_shape: Shape, rng: np.random.Generator | None = None) -> None:
        """Create parameters for a per-sample ``input_shape``; subclasses extend this.

        Args:
            input_shape: shape of one sample, e.g. ``(C, H, W)``.
            rng: generator for initial weights; a fresh unseeded one when None.
        """
        self.input_shape = tuple(int(d) for d in input_shape)
        self.output_shape(self.input_shape)  # validates the shape
        self.built = True

    def output_shape(self, input_shape: Shape) -> Shape:
        """Per-sample output shape for a per-sample input shape (identity by default)."""
        return tuple(input_shape)

    def add_param(self, name: str, value: np.ndarray) -> np.ndarray:
        """Register a trainable parameter (cast to the layer dtype) and its gradient slot."""
        arr = np.ascontiguousarray(value, dtype=self.dtype)
        self.params[name] = arr
        self.grads[name] = np.zeros_like(arr)
        return arr

    # ------------------------------------------------------------ computation
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        raise NotImplementedError

    def backward_gn(self, d2y: np.ndarray) -> np.ndarray | None:
        """Optional second backward pass for the diagonal Gauss–Newton estimate (SDLM).

        LeCun et al. (1998), appendix C: after a forward pass, propagate the diagonal second
        derivatives ``d2y = ∂²E/∂y²`` (Gauss–Newton: off-diagonal terms and terms in f″
        dropped) back through the layer with squared weights and squared derivatives:

        * a weighted sum ``y = Σ w x``: ``h_w = Σ_{connections sharing w} x² · d2y`` and
          ``d2x = Σ w² · d2y``;
        * an element-wise ``y = f(a)``: ``d2a = f′(a)² · d2y``.

        Fills ``self.hdiag[name]`` (same keys and shapes as ``params``; overwritten) and
        returns ``d2x`` (``None`` when ``need_input_grad`` is False). Layers that support
        :class:`numcnn.optimizers.SDLM` override this; the default raises.
        """
        raise NotImplementedError(
            f"{type(self).__name__} does not implement backward_gn (needed by SDLM)"
        )

    def __call__(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if not self.built:
            self.build(x.shape[1:])
        return self.forward(x, training=training)

    def check_input(self, x: np.ndarray) -> None:
        """Raise a clear error when ``x`` does not match the built shape and dtype."""
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{self.display_name}: expected a numpy array; received {type(x)}")
        if x.dtype != self.dtype:
            raise TypeError(
                f"{self.display_name}: expected input of dtype {self.dtype}; received {x.dtype}"
            )
        if self.input_shape is not None and tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(
                f"{self.display_name}: expected input of shape (N, "
                f"{', '.join(map(str, self.input_shape))}); received {tuple(x.shape)}"
            )

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
        return {"name": self.name, "dtype": self.dtype.name, "trainable": self.trainable}

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


def serialize(layer: Layer) -> dict[str, Any]:
    """``{"class_name": ..., "config": ...}`` for a registered layer."""
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def deserialize(spec: dict[str, Any]) -> Layer:
    """Rebuild a layer from ``serialize``'s output."""
    if not isinstance(spec, dict) or "class_name" not in spec:
        raise ValueError(f"layer spec must be a dict with 'class_name'; received {spec!r}")
    cls = LAYERS.lookup(spec["class_name"])
    return cls.from_config(dict(spec.get("config", {})))
