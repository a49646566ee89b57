"""Adaptive pooling layers: the output size is fixed, the windows follow from the input's.

Output ``(i, j)`` of an (Ho, Wo) output pools rows ``⌊i·H/Ho⌋ ≤ h < ⌈(i+1)·H/Ho⌉`` and
columns ``⌊j·W/Wo⌋ ≤ w < ⌈(j+1)·W/Wo⌉`` (PyTorch's ``AdaptiveAvgPool2d`` /
``AdaptiveMaxPool2d``; :func:`numcnn.functional.geometry.adaptive_windows`). torchvision's
AlexNet and VGG put ``AdaptiveAvgPool2D((6, 6))`` / ``((7, 7))`` before their classifier, so
the same weights accept inputs of any size.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..functional import (
    adaptive_avg_pool2d_backward,
    adaptive_avg_pool2d_forward,
    adaptive_max_pool2d_backward,
    adaptive_max_pool2d_forward,
)
from .base import LAYERS, Call, Layer
from .data_format import DataFormat
from .node import Shape


def _output_size(value: Any) -> tuple[int | None, int | None]:
    """``output_size`` as ``(Ho, Wo)``: an int, or a pair of ints or ``None`` (keep that
    size of the input); every int positive."""
    def ok(v: Any) -> bool:
        return v is None or (isinstance(v, (int, np.integer)) and not isinstance(v, bool))

    if ok(value):
        pair_ = (value, value)
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(ok(v) for v in value):
        pair_ = (value[0], value[1])
    else:
        raise ValueError("output_size must be an int or a pair of ints or None (None keeps "
                         f"the input's size); received output_size={value!r}")
    if any(v is not None and v <= 0 for v in pair_):
        raise ValueError(f"output_size must be positive; received output_size={value!r}")
    return (None if pair_[0] is None else int(pair_[0]),
            None if pair_[1] is None else int(pair_[1]))


class _AdaptivePool2D(DataFormat, Layer):
    """Shared arguments and shapes of the adaptive pooling layers.

    Args:
        output_size: ``Ho`` for a square output, or ``(Ho, Wo)``; an entry ``None`` keeps
            that size of the input.
        data_format: ``"channels_first"`` (NCHW, default) or ``"channels_last"`` (NHWC,
            shapes (H, W, C)), viewed as NCHW at the layer's boundary
            (:mod:`numcnn.layers.data_format`).

    Subclasses write ``_fprop`` and ``_bprop`` on NCHW arrays.
    """

    def __init__(self, output_size: Any, data_format: str = "channels_first", **kwargs: Any):
        super().__init__(**kwargs)
        self._set_data_format(data_format)
        self.output_size = _output_size(output_size)

    def fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        self.check_input(x)
        return self._from_nchw(self._fprop(self._to_nchw(x), call))

    def bprop(self, dy: np.ndarray, call: Call, accumulate: bool = False) -> np.ndarray | None:
        if not call.need_dx:
            return None
        return self._from_nchw(self._bprop(self._to_nchw(dy), call))

    def _out_hw(self, hw: tuple) -> tuple:
        """``(Ho, Wo)`` for an input ``(H, W)``: the given sizes, the input's where None."""
        return tuple(n if m is None else m for n, m in zip(hw, self.output_size))

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            what = "(H, W, C)" if self.channels_last else "(C, H, W)"
            raise ValueError(f"{self.display_name}: expected a {what} input shape; "
                             f"received {tuple(input_shape)}")
        input_shape = self._chw(input_shape)
        return self._own((input_shape[0],) + self._out_hw(tuple(input_shape[1:3])))

    def get_config(self) -> dict[str, Any]:
        return self._data_format_config({**super().get_config(),
                                         "output_size": list(self.output_size)})


@LAYERS.register("AdaptiveAvgPool2D", "AdaptiveAveragePooling2D")
class AdaptiveAvgPool2D(_AdaptivePool2D):
    """Adaptive average pooling: ``y[n, c, i, j]`` is the mean of the adaptive window
    ``(i, j)``, the same as ``torch.nn.AdaptiveAvgPool2d(output_size)``.

    Forward ``y = (1/d_ij) Σ_window x`` with ``d_ij`` the window's area; backward spreads
    ``δ/d_ij`` over the window (summing where windows overlap, which they do by one row or
    column when Ho does not divide H). When Ho and Wo divide H and W this is
    ``AvgPool2D((H/Ho, W/Wo))``, and that is the kernel the fast path runs.

    Args:
        output_size: int or ``(Ho, Wo)``, entries positive or None (keep the input's size).
            Larger than the input is allowed: windows then repeat input positions.

    Shape:
        (N, C, H, W) → (N, C, Ho, Wo), for any H, W.

    >>> AdaptiveAvgPool2D((6, 6)).output_shape((256, 13, 13))
    (256, 6, 6)
    >>> AdaptiveAvgPool2D((None, 1)).output_shape((8, 5, 7))
    (8, 5, 1)
    """

    def _fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        y, call.cache = adaptive_avg_pool2d_forward(x, self._out_hw(x.shape[2:]), call.ws)
        return y

    def _bprop(self, dy: np.ndarray, call: Call) -> np.ndarray | None:
        return adaptive_avg_pool2d_backward(dy, call.cache)


@LAYERS.register("AdaptiveMaxPool2D", "AdaptiveMaxPooling2D")
class AdaptiveMaxPool2D(_AdaptivePool2D):
    """Adaptive max pooling: ``y[n, c, i, j]`` is the maximum of the adaptive window
    ``(i, j)``, as ``torch.nn.AdaptiveMaxPool2d(output_size)``.

    Backward routes δ to the window's first maximum in row-major order (PyTorch's tie
    rule), summing where overlapping windows share a winner. A window holding NaN outputs
    NaN and routes δ to its first NaN (PyTorch: its last).

    Args:
        output_size: int or ``(Ho, Wo)``, entries positive or None (keep the input's size).

    Shape:
        (N, C, H, W) → (N, C, Ho, Wo), for any H, W.

    >>> AdaptiveMaxPool2D(2).output_shape((3, 9, 9))
    (3, 2, 2)
    """

    def _fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        y, call.cache = adaptive_max_pool2d_forward(x, self._out_hw(x.shape[2:]), call.ws,
                                                    winners=call.training and bool(call.need_dx))
        return y

    def _bprop(self, dy: np.ndarray, call: Call) -> np.ndarray | None:
        return adaptive_max_pool2d_backward(dy, call.cache)
