"""``Conv2D``: a thin stateful wrapper over :mod:`numcnn.functional.conv`."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import initializers
from ..functional import Workspace, conv2d_backward, conv2d_forward
from ..functional.conv import check_padding, conv_output_hw, pair, resolve_padding
from .base import LAYERS, Layer, Shape


@LAYERS.register("Conv2D")
class Conv2D(Layer):
    """2-D convolution (cross-correlation) over NCHW input.

    Args:
        out_channels: number of kernels F (output maps).
        kernel_size: int or (kh, kw); non-square kernels are allowed.
        stride: int or (sh, sw).
        padding: ``"valid"``, ``"same"``, an int, ``(ph, pw)`` or ``(top, bottom, left, right)``.
        use_bias: add a bias per output map.
        kernel_initializer: name or initializer for W (default Glorot uniform, as Keras).
        bias_initializer: name or initializer for b (default zeros).

    Shape:
        input (N, C, H, W) → output (N, F, Ho, Wo) with ``Ho = (H + pt + pb − kh) // sh + 1``.
        ``params["W"]``: (F, C, kh, kw); ``params["b"]``: (F,).

    >>> layer = Conv2D(6, 5, padding=2)
    >>> layer.build((1, 28, 28)); layer.params["W"].shape
    (6, 1, 5, 5)
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
        if not isinstance(out_channels, (int, np.integer)) or out_channels <= 0:
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
        self._ws = Workspace()
        self._cache: dict | None = None

    def _pads(self, input_shape: Shape) -> tuple[int, int, int, int]:
        return resolve_padding(self.padding, self.kernel_size, self.stride, input_shape[1:3])

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            raise ValueError(
                f"{self.display_name}: expected a (C, H, W) input shape; received {input_shape}"
            )
        ho, wo = conv_output_hw(
            tuple(input_shape[1:3]), self.kernel_size, self.stride, self._pads(input_shape)
        )
        if ho <= 0 or wo <= 0:
            raise ValueError(f"{self.display_name}: input {input_shape} gives an empty output")
        return (self.out_channels, ho, wo)

    def build(self, input_shape: Shape, rng: np.random.Generator | None = None) -> None:
        super().build(input_shape, rng)
        rng = rng if rng is not None else np.random.default_rng()
        C = self.input_shape[0]
        kh, kw = self.kernel_size
        F = self.out_channels
        shape = (F, C, kh, kw)
        self.add_param("W", self.kernel_initializer(shape, C * kh * kw, F * kh * kw, rng))
        if self.use_bias:
            self.add_param("b", self.bias_initializer((F,), C * kh * kw, F * kh * kw, rng))
        self.pads = self._pads(self.input_shape)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self.check_input(x)
        y, self._cache = conv2d_forward(
            x, self.params["W"], self.params.get("b"), self.stride, self.pads, self._ws
        )
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        dx, dW, db = conv2d_backward(
            dy, self._cache, need_dx=self.need_input_grad, need_db=self.use_bias
        )
        self.grads["W"][...] = dW
        if self.use_bias:
            self.grads["b"][...] = db
        return dx

    def count_connections(self, input_shape: Shape) -> int | None:
        F, Ho, Wo = self.output_shape(input_shape)
        per_output = input_shape[0] * self.kernel_size[0] * self.kernel_size[1] + self.use_bias
        return F * Ho * Wo * per_output

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
    def from_config(cls, config: dict[str, Any]) -> Conv2D:
        config = dict(config)
        for key in ("kernel_size", "stride"):
            config[key] = tuple(config[key])
        if isinstance(config.get("padding"), list):
            config["padding"] = tuple(config["padding"])
        for key in ("kernel_initializer", "bias_initializer"):
            if key in config:
                config[key] = initializers.deserialize(config[key])
        return cls(**config)
