"""``data_format="channels_last"``: NHWC tensors for the convolution and pooling layers.

numcnn's kernels work on NCHW arrays (``channels_first``). A layer built with
``data_format="channels_last"`` (TensorFlow's default layout) takes and returns NHWC arrays
and describes its shapes as ``(H, W, C)``; it transposes at its boundary:

* forward: ``x_nchw = x.transpose(0, 3, 1, 2)``, the NCHW kernels, ``y = y_nchw.transpose(0,
  2, 3, 1)``;
* backward: ``dy`` to NCHW, the NCHW backward pass, ``dx`` back to NHWC.

The transpositions are views (no copy): the kernels read any strides and lay the data out
as they need it, as they do for an NCHW array in another memory order, and the layer after
receives the NHWC view of the kernels' output. Forcing C-contiguous copies at the boundary
made a 3×3 convolution's forward + backward 1.9× its NCHW twin's; with views it is 1.0-1.2×
(``benchmarks/channels_last_cost.py``). A model that keeps its data NCHW pays nothing.
The parameters keep numcnn's layout (a kernel stays (F, C/G, kh, kw));
:meth:`numcnn.layers.Conv2D.set_hwio` loads TensorFlow's (kh, kw, C, F) kernels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..functional.geometry import check_data_format


class DataFormat:
    """Mixin of the layers taking ``data_format``: shape and array conversions between the
    layer's layout and the NCHW kernels."""

    data_format = "channels_first"

    def _set_data_format(self, data_format: Any) -> None:
        self.data_format = check_data_format(data_format)

    @property
    def channels_last(self) -> bool:
        return self.data_format == "channels_last"

    def _chw(self, shape: Any) -> tuple:
        """A per-sample shape in the layer's layout as ``(C, H, W)``."""
        shape = tuple(shape)
        if self.channels_last and len(shape) == 3:
            return (shape[2], shape[0], shape[1])
        return shape

    def _own(self, shape: Any) -> tuple:
        """A ``(C, H, W)`` shape in the layer's layout (``(H, W, C)`` when channels last)."""
        shape = tuple(shape)
        if self.channels_last and len(shape) == 3:
            return (shape[1], shape[2], shape[0])
        return shape

    def _to_nchw(self, a: np.ndarray | None) -> np.ndarray | None:
        """An array in the layer's layout as NCHW (a transposed view)."""
        if a is None or not self.channels_last:
            return a
        return a.transpose(0, 3, 1, 2)

    def _from_nchw(self, a: np.ndarray | None) -> np.ndarray | None:
        """An NCHW array in the layer's layout (an NHWC view when channels last)."""
        if a is None or not self.channels_last:
            return a
        return a.transpose(0, 2, 3, 1)

    def _data_format_config(self, cfg: dict[str, Any]) -> dict[str, Any]:
        if self.channels_last:
            cfg["data_format"] = self.data_format
        return cfg
