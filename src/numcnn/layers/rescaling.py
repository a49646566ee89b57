"""``Rescale``: an affine map of the input stored in the model (e.g. pixel normalisation)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..functional.fast.workspace import memory_order
from .base import LAYERS, Call, Layer
from .gauss_newton import gauss_newton_rule


@LAYERS.register("Rescale", "Rescaling")
class Rescale(Layer):
    """Affine rescaling of the input: ``y = scale·x + offset``.

    LeNet-5's normalisation of MNIST grey levels ``x ∈ [0, 255]`` to background −0.1 and
    foreground 1.175 (mean ≈ 0, variance ≈ 1) is ``Rescale(1.275 / 255, -0.1)``. Keras calls
    this layer ``Rescaling``. Backward: ``dx = scale·dy``.

    Args:
        scale: multiplier. offset: added after scaling.

    >>> Rescale(1.275 / 255, -0.1)(np.array([[0.0, 255.0]], np.float32))
    array([[-0.1  ,  1.175]], dtype=float32)
    """

    def __init__(self, scale: float = 1.0, offset: float = 0.0, **kwargs: Any):
        super().__init__(**kwargs)
        for what, v in (("scale", scale), ("offset", offset)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
                raise ValueError(f"{what} must be a finite number; received {what}={v!r}")
        self.scale = float(scale)
        self.offset = float(offset)

    def fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        self.check_input(x)
        t = x.dtype.type
        y = np.multiply(x, t(self.scale),
                        out=call.ws.fresh_ordered(x.shape, x.dtype, memory_order(x)))
        y += t(self.offset)
        return y

    def bprop(self, dy: np.ndarray, call: Call, accumulate: bool = False) -> np.ndarray | None:
        if not call.need_dx:
            return None
        return dy * dy.dtype.type(self.scale)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}


@gauss_newton_rule(Rescale)
def _rescale_gn(layer: Rescale, d2y: np.ndarray, call: Call):
    """``d2x = scale² · d2y``."""
    if not call.need_dx:
        return None, {}
    return d2y * d2y.dtype.type(layer.scale * layer.scale), {}
