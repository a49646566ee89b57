"""``Sequential``: a chain of layers — the simplest graph, built on the same engine."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ..layers.base import LAYERS, Layer, deserialize, serialize
from ..layers.input import Input, InputLayer
from ..layers.node import SymbolicTensor
from .model import Model


@LAYERS.register("Sequential")
class Sequential(Model):
    """A linear stack of layers: each layer's output is the next one's input.

    It is a :class:`Model` whose graph is the chain ``Input → layers[0] → layers[1] → …``,
    so everything a model offers works on it, and it nests in other models to any depth.

    Args:
        layers: the layers, in order (an ``Input``/``InputLayer`` first may give the shape).
        input_shape: per-sample input shape, e.g. ``(1, 28, 28)``; when given, the model is
            built at once (so ``summary()`` works before any data). Otherwise it is built on
            its first call (on data or on a symbolic tensor).
        seed: seed for the initial weights, drawn layer after layer (same seed, same
            weights).
        name: the model's name. dtype: applied to every layer inside, nested ones included
            (default float32, or the dtype of the tensor it is first called on).

    >>> from numcnn.layers import Dense, Flatten, ReLU
    >>> m = Sequential([Flatten(), Dense(32), ReLU(), Dense(10)], input_shape=(1, 28, 28))
    >>> m.count_params()
    25450
    """

    def __init__(self, layers: Iterable[Layer] = (), input_shape: Any = None,
                 seed: int | None = None, name: str | None = None, dtype: Any = None,
                 trainable: bool = True, fuse: bool = True):
        super().__init__(name=name, seed=seed, fuse=fuse, dtype=dtype)
        self._stack: list[Layer] = []
        for layer in layers:
            if isinstance(layer, (InputLayer, SymbolicTensor)) and not self._stack \
                    and input_shape is None:
                t = layer if isinstance(layer, SymbolicTensor) else layer.tensor
                input_shape = t.shape
                if dtype is None:
                    self.set_dtype(t.dtype)
                continue
            self.add(layer)
        if dtype is not None:
            self.set_dtype(dtype)
        if input_shape is not None:
            self.build(tuple(input_shape))
        if not trainable:
            self.trainable = False

    # ------------------------------------------------------------ structure
    @property
    def layers(self) -> list[Layer]:  # type: ignore[override]
        """The layers, in order."""
        return list(self._stack)

    @property
    def _pending_layers(self) -> list[Layer]:
        return self._stack

    def add(self, layer: Layer) -> None:
        """Append a layer (a built model is rebuilt with it; built layers keep weights)."""
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential takes Layer instances; received {type(layer).__name__}")
        if isinstance(layer, InputLayer):
            raise TypeError("an InputLayer can only come first in a Sequential")
        if self._dtype_given and not layer.built:
            layer.set_dtype(self.dtype)
        self._stack.append(layer)
        if self.graph is not None:
            shape = self.graph.inputs[0].shape
            self.graph = None
            self.build(shape)

    def pop(self) -> Layer:
        """Remove and return the last layer (the model is rebuilt)."""
        if not self._stack:
            raise IndexError("pop from an empty Sequential")
        layer = self._stack.pop()
        if self.graph is not None and self._stack:
            shape = self.graph.inputs[0].shape
            self.graph = None
            self.build(shape)
        return layer

    def build(self, input_shape: Any, rng: np.random.Generator | None = None) -> None:
        """Build the chain for a per-sample ``input_shape`` (drawing initial weights from
        ``seed``, or from ``rng`` when it is nested in a model being built)."""
        if self.graph is not None:
            self.check_shape(input_shape)
            return
        if not self._stack:
            raise ValueError("a Sequential model needs at least one layer")
        rng = np.random.default_rng(self.seed) if self.seed is not None or rng is None else rng
        x = Input(tuple(input_shape), dtype=self.dtype)
        t = x
        for layer in self._stack:
            if not layer.built and not layer._dtype_given:
                layer.set_dtype(self.dtype)
            t = layer.call_symbolic(t, rng=rng)
            layer._init_pending = False
        self._init_graph([x], [t])

    def _deferrable(self) -> bool:
        return bool(self._stack)

    def set_dtype(self, dtype: Any) -> None:
        Layer.set_dtype(self, dtype)
        for layer in self._stack:
            if not layer.built:
                layer.set_dtype(dtype)

    def call_symbolic(self, inputs: Any, rng: np.random.Generator | None = None) -> Any:
        if self.graph is None and isinstance(inputs, SymbolicTensor):
            if not self._dtype_given:
                self.set_dtype(inputs.dtype)
            self.build(inputs.shape, rng)
        return super().call_symbolic(inputs, rng)

    # --------------------------------------------------------------- config
    def get_config(self) -> dict[str, Any]:
        cfg = {"name": self.name, "dtype": self.dtype.name, "trainable": self.trainable,
               "seed": self.seed, "fuse": self.fuse}
        layers = []
        for layer in self._stack:
            spec = serialize(layer)
            if self.graph is not None and layer.name is None:
                spec["config"] = dict(spec["config"], name=self.layer_name(layer))
            layers.append(spec)
        cfg.update(layers=layers,
                   input_shape=list(self.graph.inputs[0].shape) if self.graph else None)
        return cfg

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Sequential:
        config = dict(config)
        try:
            specs = list(config.pop("layers"))
        except (KeyError, TypeError):
            raise ValueError("Sequential config lacks a 'layers' list") from None
        layers = [deserialize(spec) for spec in specs]
        return cls(layers, **config)
