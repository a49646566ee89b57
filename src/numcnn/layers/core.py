"""``Dense`` (fully connected) and ``Flatten``."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import initializers
from .base import LAYERS, Call, Layer
from .gauss_newton import gauss_newton_rule
from .node import Shape


@LAYERS.register("Dense")
class Dense(Layer):
    """Fully connected layer ``y = x W + b``.

    Args:
        units: number of outputs.
        use_bias: add a bias.
        kernel_initializer: name or initializer for W (default Glorot uniform, as Keras).
        bias_initializer: name or initializer for b (default zeros).
        kernel_regularizer, bias_regularizer: Keras's spelling of ``regularizers={"W": …}``
            and ``{"b": …}`` (a weight penalty such as ``WeightDecay(3e-3)``, see
            :mod:`numcnn.regularizers`).

    Shape:
        (N, in_features) → (N, units); ``params["W"]``: (in_features, units), ``params["b"]``:
        (units,). Backward: ``dW = xᵀ dy``, ``db = Σ_n dy``, ``dx = dy Wᵀ``.

    >>> d = Dense(10); d.build((84,)); d.params["W"].shape
    (84, 10)
    """

    def __init__(self, units: int, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None, **kwargs: Any):
        given = kwargs.pop("regularizers", None)
        keras = {k: r for k, r in (("W", kernel_regularizer), ("b", bias_regularizer))
                 if r is not None}
        if keras and (given is None or isinstance(given, dict)):
            given = {**(given or {}), **keras}
        super().__init__(regularizers=given, **kwargs)
        if not isinstance(units, (int, np.integer)) or units <= 0:
            raise ValueError(f"units must be a positive int; received units={units!r}")
        self.units = int(units)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 1:
            raise ValueError(
                f"{self.display_name}: expected a flat (features,) input shape; received "
                f"{tuple(input_shape)} (add a Flatten layer before Dense)"
            )
        return (self.units,)

    def param_shapes(self, input_shape: Shape) -> dict[str, tuple[int, ...]]:
        """``W``: (in_features, units) and ``b``: (units,) with ``use_bias``."""
        self.output_shape(input_shape)
        shapes = {"W": (self._known_dim(input_shape, 0), self.units)}
        if self.use_bias:
            shapes["b"] = (self.units,)
        return shapes

    def build(self, input_shape: Shape, rng: np.random.Generator | None = None) -> None:
        super().build(input_shape, rng)
        rng = rng if rng is not None else np.random.default_rng()
        n_in = self.input_shape[0]
        self.add_param("W", self.kernel_initializer((n_in, self.units), n_in, self.units, rng))
        if self.use_bias:
            self.add_param("b", self.bias_initializer((self.units,), n_in, self.units, rng))

    def fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        self.check_input(x)
        call.cache = x
        y = x @ self.params["W"]  # (N, in) @ (in, units)
        if self.use_bias:
            y += self.params["b"]
        return y

    def bprop(self, dy: np.ndarray, call: Call, accumulate: bool = False) -> np.ndarray | None:
        x = call.cache
        if accumulate:
            self.grads["W"] += x.T @ dy
        else:
            np.matmul(x.T, dy, out=self.grads["W"])  # (in, N) @ (N, units)
        if self.use_bias:
            self.store_grad("b", dy.sum(axis=0), accumulate)
        if not call.need_dx:
            return None
        W = self.params["W"]
        if x.T.flags.c_contiguous and not x.flags.c_contiguous:
            # batch-innermost input (a Flatten view of a conv/pool output): return dx in the
            # same layout, dxᵀ = W dyᵀ, so the pooling backward before it reads matching runs
            return np.matmul(W, dy.T).T  # (in, units) @ (units, N)
        return dy @ W.T  # (N, units) @ (units, in)

    def count_connections(self, input_shape: Shape) -> int | None:
        return self.units * (input_shape[0] + self.use_bias)

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update(
            units=self.units,
            use_bias=self.use_bias,
            kernel_initializer=initializers.serialize(self.kernel_initializer),
            bias_initializer=initializers.serialize(self.bias_initializer),
        )
        return cfg

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Dense:
        config = dict(config)
        for key in ("kernel_initializer", "bias_initializer"):
            if key in config:
                config[key] = initializers.deserialize(config[key])
        return cls(**config)


@LAYERS.register("Flatten")
class Flatten(Layer):
    """Flatten each sample in C, H, W order: (N, C, H, W) → (N, C·H·W).

    >>> Flatten().output_shape((16, 5, 5))
    (400,)
    """

    def output_shape(self, input_shape: Shape) -> Shape:
        if any(d is None for d in input_shape):
            return (None,)
        return (int(np.prod(input_shape)),)

    def fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        self.check_input(x)
        call.cache = x.shape[1:]
        return x.reshape(x.shape[0], -1)

    def bprop(self, dy: np.ndarray, call: Call, accumulate: bool = False) -> np.ndarray | None:
        if not call.need_dx:
            return None
        return dy.reshape((dy.shape[0],) + tuple(call.cache))


@gauss_newton_rule(Dense)
def _dense_gn(layer: Dense, d2y: np.ndarray, call: Call):
    """``h_W = (x²)ᵀ d2y``, ``h_b = Σ_n d2y``, ``d2x = d2y (W²)ᵀ``."""
    x = call.cache
    h = {"W": (x * x).T @ d2y}  # (in, N) @ (N, units)
    if layer.use_bias:
        h["b"] = d2y.sum(axis=0)
    if not call.need_dx:
        return None, h
    W = layer.params["W"]
    return d2y @ (W * W).T, h  # (N, units) @ (units, in)


@gauss_newton_rule(Flatten)
def _flatten_gn(layer: Flatten, d2y: np.ndarray, call: Call):
    """A reshape, like the backward pass."""
    return layer.bprop(d2y, call), {}
