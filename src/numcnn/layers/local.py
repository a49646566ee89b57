"""``LocallyConnected2D``: local connections without weight sharing (course 002)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import initializers
from ..functional import locally_connected2d_backward, locally_connected2d_forward
from ..functional.geometry import check_padding, pair, resolve_padding
from .base import LAYERS, Call, Layer
from .conv import _spatial_out
from .gauss_newton import gauss_newton_rule
from .node import Shape


@LAYERS.register("LocallyConnected2D")
class LocallyConnected2D(Layer):
    """A convolution whose kernel is not shared: every output position has its own.

    The course (002) builds convolution from two ideas, *local connections* (each hidden
    unit sees one window of the image) and *weight sharing* (all units use one kernel);
    this layer is the first without the second, with Keras's ``LocallyConnected2D``
    semantics::

        y[n, f, p, q] = Σ_{c, i, j} W[p, q, f, c, i, j] · xp[n, c, p·sh + i, q·sw + j]
                        + b[f, p, q]

    Backward: ``dW[p, q] = Σ_n δ[n, :, p, q] ⊗ field[n, p, q]``, ``db = Σ_n δ``, and ``dx``
    adds each field's gradient ``W[p, q]ᵀ δ[n, :, p, q]`` back where the field was read.

    Args:
        out_channels: F, kernels per position (Keras's ``filters``).
        kernel_size: int or (kh, kw).
        stride: int or (sh, sw) (Keras's ``strides``).
        padding: as :class:`Conv2D`: ``"valid"`` (Keras's only choice), ``"same"`` (output
            ``ceil(n / s)``, TensorFlow's split), an int, ``(ph, pw)`` or
            ``(top, bottom, left, right)``.
        use_bias: one bias per output unit ``(f, p, q)``.
        kernel_initializer, bias_initializer: as :class:`Conv2D`; each position's kernel
            ``W[p, q]`` is drawn as a Conv2D kernel, with fans ``C·kh·kw`` and ``F·kh·kw``
            (Keras computes its fans from its 3-D kernel shape, which multiplies both by
            ``Ho·Wo``; its default weights are therefore ``√(Ho·Wo)`` times smaller).

    Shape:
        input (N, C, H, W) → output (N, F, Ho, Wo), the sizes of a :class:`Conv2D` with the
        same arguments; H and W must be known when the layer is built.
        ``params["W"]``: (Ho, Wo, F, C, kh, kw) — ``W[p, q]`` is an ordinary Conv2D kernel;
        Keras's kernel is ``W.transpose(0, 1, 4, 5, 3, 2).reshape(Ho·Wo, kh·kw·C, F)``.
        ``params["b"]``: (F, Ho, Wo) (Keras: ``b.transpose(1, 2, 0)``).
        Parameters: ``Ho·Wo·F·(C·kh·kw + 1)``, all of them used once per sample.

    The course's example, a 1000×1000 image and 10⁶ hidden units each seeing 10×10 pixels,
    counted without allocating anything:

    >>> layer = LocallyConnected2D(1, 10, padding="same", use_bias=False)
    >>> layer.param_shapes((1, 1000, 1000))
    {'W': (1000, 1000, 1, 1, 10, 10)}
    """

    def __init__(
        self,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = "valid",
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if isinstance(out_channels, bool) or not isinstance(out_channels, (int, np.integer)) \
                or out_channels <= 0:
            raise ValueError(
                f"out_channels must be a positive int; received out_channels={out_channels!r}"
            )
        self.out_channels = int(out_channels)
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = pair(stride, "stride")
        self.padding = check_padding(padding)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def _pads(self, hw: tuple[int, int]) -> tuple[int, int, int, int]:
        return resolve_padding(self.padding, self.kernel_size, self.stride, hw)

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            raise ValueError(
                f"{self.display_name}: expected a (C, H, W) input shape; received {input_shape}"
            )
        return (self.out_channels,) + _spatial_out(self, tuple(input_shape[1:3]))

    def param_shapes(self, input_shape: Shape) -> dict[str, tuple[int, ...]]:
        """``W``: (Ho, Wo, F, C, kh, kw) and ``b``: (F, Ho, Wo) with ``use_bias``; C, H and
        W must be known (there is one kernel per output position)."""
        _, Ho, Wo = self.output_shape(input_shape)
        C = self._known_dim(input_shape, 0)
        self._known_dim(input_shape, 1)
        self._known_dim(input_shape, 2)
        F = self.out_channels
        shapes = {"W": (Ho, Wo, F, C) + self.kernel_size}
        if self.use_bias:
            shapes["b"] = (F, Ho, Wo)
        return shapes

    def build(self, input_shape: Shape, rng: np.random.Generator | None = None) -> None:
        super().build(input_shape, rng)
        rng = rng if rng is not None else np.random.default_rng()
        shapes = self.param_shapes(self.input_shape)
        Ho, Wo, F, C, kh, kw = shapes["W"]
        fan_in, fan_out = C * kh * kw, F * kh * kw
        # every position's kernel drawn as a Conv2D kernel (F, C, kh, kw)
        W = self.kernel_initializer((Ho * Wo * F, C, kh, kw), fan_in, fan_out, rng, self.dtype)
        self.add_param("W", W.reshape(shapes["W"]))
        if self.use_bias:
            self.add_param("b", self.bias_initializer((F, Ho, Wo), fan_in, fan_out, rng,
                                                      self.dtype))

    def fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        self.check_input(x)
        pads = self._pads(x.shape[2:])
        y, cache = locally_connected2d_forward(x, self.params["W"], self.params.get("b"),
                                               self.stride, pads, call.ws)
        call.cache = (x, pads, cache)
        return y

    def bprop(self, dy: np.ndarray, call: Call, accumulate: bool = False) -> np.ndarray | None:
        dx, dW, db = locally_connected2d_backward(dy, call.cache[2], need_dx=call.need_dx,
                                                  need_db=self.use_bias)
        self.store_grad("W", dW, accumulate)
        if self.use_bias:
            self.store_grad("b", db, accumulate)
        return dx

    def count_connections(self, input_shape: Shape) -> int | None:
        """Multiply-accumulates per sample: every weight is used once (no sharing)."""
        F, Ho, Wo = self.output_shape(input_shape)
        if Ho is None or Wo is None or input_shape[0] is None:
            return None
        kh, kw = self.kernel_size
        return F * Ho * Wo * (input_shape[0] * kh * kw + self.use_bias)

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update(
            out_channels=self.out_channels,
            kernel_size=list(self.kernel_size),
            stride=list(self.stride),
            padding=self.padding if isinstance(self.padding, (str, int)) else list(self.padding),
            use_bias=self.use_bias,
            kernel_initializer=initializers.serialize(self.kernel_initializer),
            bias_initializer=initializers.serialize(self.bias_initializer),
        )
        return cfg

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LocallyConnected2D:
        config = dict(config)
        for key in ("kernel_size", "stride"):
            if key in config:
                config[key] = tuple(config[key])
        if isinstance(config.get("padding"), list):
            config["padding"] = tuple(config["padding"])
        for key in ("kernel_initializer", "bias_initializer"):
            if key in config:
                config[key] = initializers.deserialize(config[key])
        return cls(**config)


@gauss_newton_rule(LocallyConnected2D)
def _local_gn(layer: LocallyConnected2D, d2y: np.ndarray, call: Call):
    """Diagonal Gauss–Newton pass: the backward with squared inputs and weights,
    ``h_W[p, q, f, c, i, j] = Σ_n x[n, c, p·sh + i, q·sw + j]² · d2y[n, f, p, q]`` (each
    weight has one connection per sample), ``h_b = Σ_n d2y`` and
    ``d2x[field] += W[p, q]²ᵀ d2y[:, :, p, q]``."""
    x, pads, _ = call.cache
    W = layer.params["W"]
    _, cache = locally_connected2d_forward(x * x, W * W, None, layer.stride, pads)
    d2x, hW, hb = locally_connected2d_backward(d2y, cache, need_dx=call.need_dx,
                                               need_db=layer.use_bias)
    h = {"W": hW}
    if layer.use_bias:
        h["b"] = hb
    return d2x, h
