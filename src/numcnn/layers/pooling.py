"""Pooling layers over :mod:`numcnn.functional.pool`."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..functional import Workspace
from ..functional.conv import check_padding, conv_output_hw, pair, resolve_padding
from ..functional.pool import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)
from .base import LAYERS, Layer, Shape


class _Pool2D(Layer):
    """Shared arguments of the window pooling layers.

    Args:
        pool_size: int or (kh, kw).
        stride: int or (sh, sw); defaults to ``pool_size`` (non-overlapping windows).
        padding: an int, ``(ph, pw)``, ``(top, bottom, left, right)``, ``"valid"`` or ``"same"``.
    """

    def __init__(self, pool_size: Any = 2, stride: Any = None, padding: Any = 0, **kwargs: Any):
        super().__init__(**kwargs)
        self.pool_size = pair(pool_size, "pool_size")
        self.stride = self.pool_size if stride is None else pair(stride, "stride")
        self.padding = check_padding(padding)
        self._ws = Workspace()
        self._cache: dict | None = None

    def _pads(self, input_shape: Shape) -> tuple[int, int, int, int]:
        pads = resolve_padding(self.padding, self.pool_size, self.stride, input_shape[1:3])
        kh, kw = self.pool_size
        if max(pads[0], pads[1]) > kh // 2 or max(pads[2], pads[3]) > kw // 2:
            raise ValueError(
                f"{self.display_name}: padding must be at most half the pool size "
                f"{self.pool_size}; received padding={self.padding!r}"
            )
        return pads

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            raise ValueError(
                f"{self.display_name}: expected a (C, H, W) input shape; received {input_shape}"
            )
        ho, wo = conv_output_hw(
            tuple(input_shape[1:3]), self.pool_size, self.stride, self._pads(input_shape)
        )
        return (input_shape[0], ho, wo)

    def build(self, input_shape: Shape, rng: np.random.Generator | None = None) -> None:
        super().build(input_shape, rng)
        self.pads = self._pads(self.input_shape)

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update(
            pool_size=list(self.pool_size),
            stride=list(self.stride),
            padding=self.padding if isinstance(self.padding, (str, int)) else list(self.padding),
        )
        return cfg

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        config = dict(config)
        for key in ("pool_size", "stride", "padding"):
            if isinstance(config.get(key), list):
                config[key] = tuple(config[key])
        return cls(**config)


@LAYERS.register("MaxPool2D")
class MaxPool2D(_Pool2D):
    """Max pooling: each output is the maximum of its window; backward routes δ to the arg-max.

    Shape:
        (N, C, H, W) → (N, C, Ho, Wo), ``Ho = (H + pt + pb − kh) // sh + 1``.

    >>> MaxPool2D(2).output_shape((6, 28, 28))
    (6, 14, 14)
    """

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self.check_input(x)
        y, self._cache = max_pool2d_forward(x, self.pool_size, self.stride, self.pads, self._ws)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        if not self.need_input_grad:
            return None
        return max_pool2d_backward(dy, self._cache)


@LAYERS.register("AvgPool2D", "AveragePooling2D")
class AvgPool2D(_Pool2D):
    """Average pooling: each output is the mean of its window; backward spreads δ evenly.

    Args:
        count_include_pad: divide by ``kh·kw`` even where the window covers padding
            (PyTorch's default); if False divide by the number of real inputs.

    >>> AvgPool2D(3, stride=2, padding=1).output_shape((1, 7, 7))
    (1, 4, 4)
    """

    def __init__(self, pool_size: Any = 2, stride: Any = None, padding: Any = 0,
                 count_include_pad: bool = True, **kwargs: Any):
        super().__init__(pool_size, stride, padding, **kwargs)
        self.count_include_pad = bool(count_include_pad)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self.check_input(x)
        y, self._cache = avg_pool2d_forward(
            x, self.pool_size, self.stride, self.pads, self.count_include_pad, self._ws
        )
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        if not self.need_input_grad:
            return None
        return avg_pool2d_backward(dy, self._cache)

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg["count_include_pad"] = self.count_include_pad
        return cfg
