"""Activation functions as layers (no parameters)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import functional as Fn
from ..functional.activation import take_relu_masked
from .base import LAYERS, Layer


class _Activation(Layer):
    """An element-wise activation: ``forward`` keeps the cache its ``backward`` needs."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._cache: Any = None

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self.check_input(x)
        y, self._cache = self._fwd(x)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        if not self.need_input_grad:
            return None
        return self._bwd(dy, self._cache)


@LAYERS.register("ReLU")
class ReLU(_Activation):
    """``y = max(x, 0)``; ``dx = dy · 1[x > 0]``.

    >>> ReLU()(np.array([[-1.0, 2.0]], np.float32))
    array([[0., 2.]], dtype=float32)
    """

    _fwd = staticmethod(Fn.relu_forward)
    _bwd = staticmethod(Fn.relu_backward)

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        if not self.need_input_grad:
            return None
        if take_relu_masked(dy, self._cache):
            return dy  # a MaxPool2D reading this output already applied 1[y > 0]
        return Fn.relu_backward(dy, self._cache)


@LAYERS.register("LeakyReLU")
class LeakyReLU(_Activation):
    """``y = x`` for x > 0, ``α·x`` otherwise.

    Args:
        alpha: slope for negative inputs (default 0.01, as PyTorch).
    """

    def __init__(self, alpha: float = 0.01, **kwargs: Any):
        super().__init__(**kwargs)
        self.alpha = float(alpha)

    def _fwd(self, x):
        return Fn.leaky_relu_forward(x, self.alpha)

    _bwd = staticmethod(Fn.leaky_relu_backward)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


@LAYERS.register("Sigmoid")
class Sigmoid(_Activation):
    """``y = 1 / (1 + e^{−x})`` (stable for large |x|); ``dx = dy · y(1 − y)``."""

    _fwd = staticmethod(Fn.sigmoid_forward)
    _bwd = staticmethod(Fn.sigmoid_backward)


@LAYERS.register("Tanh")
class Tanh(_Activation):
    """``y = tanh(x)``; ``dx = dy · (1 − y²)``."""

    _fwd = staticmethod(Fn.tanh_forward)
    _bwd = staticmethod(Fn.tanh_backward)


@LAYERS.register("Softmax")
class Softmax(_Activation):
    """``y_i = e^{x_i} / Σ_j e^{x_j}`` over the feature axis (axis 1).

    For training a classifier prefer no Softmax layer and the fused ``softmax_cross_entropy``
    loss on the logits: it is exact and cheaper.
    """

    _fwd = staticmethod(Fn.softmax_forward)
    _bwd = staticmethod(Fn.softmax_backward)
