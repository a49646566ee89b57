"""Activation functions as layers (no parameters)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import functional as Fn
from .base import LAYERS, Call, Layer


class _Activation(Layer):
    """An element-wise activation: ``fprop`` keeps the cache its ``bprop`` needs."""

    keeps_mask = True

    def fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        self.check_input(x)
        y, call.cache = self._fwd(x)
        return y

    def bprop(self, dy: np.ndarray, call: Call, accumulate: bool = False) -> np.ndarray | None:
        if not call.need_dx:
            return None
        return self._bwd(dy, call.cache)


def relu_mode(mark: str | None) -> str | None:
    """The kernels' ``relu`` argument for the mark a graph pass put on a layer whose output
    only a ReLU reads (``models/passes.py``): ``"grad"`` (rectify its output, and apply
    ``1[y > 0]`` to the incoming gradient), ``"forward"`` (rectify only: a max pooling
    applies the derivative), or None."""
    return {"relu_after": "grad", "relu_fwd": "forward"}.get(mark or "")


@LAYERS.register("ReLU")
class ReLU(_Activation):
    """``y = max(x, 0)``; ``dx = dy · 1[x > 0]``.

    >>> ReLU()(np.array([[-1.0, 2.0]], np.float32))
    array([[0., 2.]], dtype=float32)
    """

    def fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        self.check_input(x)
        if call.fused == "relu_fused":
            return x  # the Conv2D, BatchNorm or Add before it wrote max(y, 0) already
        y, call.cache = Fn.relu_forward(x, call.ws)
        return y

    def bprop(self, dy: np.ndarray, call: Call, accumulate: bool = False) -> np.ndarray | None:
        if not call.need_dx:
            return None
        if call.fused in ("relu_out", "relu_fused"):
            # the MaxPool2D reading this output, or the layer before it, applies 1[y > 0]
            # itself
            return dy
        return Fn.relu_backward(dy, call.cache, call.ws)


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

    def fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        self.check_input(x)
        y, call.cache = Fn.tanh_forward(x, ws=call.ws)
        return y

    def bprop(self, dy: np.ndarray, call: Call, accumulate: bool = False) -> np.ndarray | None:
        if not call.need_dx:
            return None
        return Fn.tanh_backward(dy, call.cache, ws=call.ws)


@LAYERS.register("Softmax")
class Softmax(_Activation):
    """``y_i = e^{x_i} / Σ_j e^{x_j}`` over the feature axis (axis 1).

    For training a classifier prefer no Softmax layer and the fused ``softmax_cross_entropy``
    loss on the logits: it is exact and cheaper.
    """

    keeps_mask = False  # over axis 1, which is the time axis of a sequence
    _fwd = staticmethod(Fn.softmax_forward)
    _bwd = staticmethod(Fn.softmax_backward)
