"""Constant padding of images, e.g. MNIST 28×28 → 32×32 for LeNet-5."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .base import PREPROCESSORS, Preprocessor, _as_data


@PREPROCESSORS.register("pad")
class Pad(Preprocessor):
    """Constant padding of the last two (H, W) axes, e.g. MNIST 28×28 → 32×32 for LeNet-5.

    Either a fixed ``padding`` — an int, ``(ph, pw)`` or ``(top, bottom, left, right)`` — or
    a target ``size=(H', W')``, which centres the image (an odd surplus goes to the bottom /
    right) and is resolved at ``fit``. Works on (N, H, W) and (N, C, H, W).
    ``inverse_transform`` crops the padding off. Integer data keeps its dtype (``value`` must
    then be an integer it can hold); float data keeps its dtype.

    Args:
        padding: the fixed padding (default 2: 28 → 32).
        value: the fill value.
        size: target (H', W') instead of ``padding``.

    >>> Pad(2).transform(np.ones((1, 28, 28), np.float32)).shape
    (1, 32, 32)
    """

    _attrs = ("feature_shape_", "pads_")

    def __init__(self, padding: Any = 2, value: float = 0.0, size: Any = None):
        super().__init__()
        self.value = float(value)
        self.size = None if size is None else tuple(int(s) for s in size)
        if self.size is not None:
            if len(self.size) != 2 or min(self.size) < 1:
                raise ValueError(f"size must be (H, W) with positive entries; received {size!r}")
            self.padding = None
            self.pads_ = None
        else:
            if isinstance(padding, (int, np.integer)):
                pads = (int(padding),) * 4
            elif len(padding) == 2:
                pads = (int(padding[0]),) * 2 + (int(padding[1]),) * 2
            elif len(padding) == 4:
                pads = tuple(int(p) for p in padding)
            else:
                raise ValueError(f"padding must be an int, (ph, pw) or (t, b, l, r); "
                                 f"received padding={padding!r}")
            if min(pads) < 0:
                raise ValueError(f"padding must be non-negative; received padding={padding!r}")
            self.padding = list(pads)
            self.pads_ = pads

    @property
    def needs_fit(self) -> bool:  # type: ignore[override]
        return self.size is not None

    def _fit(self, X):
        if self.size is not None:
            H, W = X.shape[-2:]
            dh, dw = self.size[0] - H, self.size[1] - W
            if dh < 0 or dw < 0:
                raise ValueError(f"images of size {H}×{W} are larger than size={self.size}")
            self.pads_ = (dh // 2, dh - dh // 2, dw // 2, dw - dw // 2)

    def _transform(self, X):
        if X.ndim not in (3, 4):
            raise ValueError(f"Pad expects (N, H, W) or (N, C, H, W); received {X.shape}")
        if X.dtype.kind in "ui":
            info = np.iinfo(X.dtype)
            if self.value != math.floor(self.value) or not info.min <= self.value <= info.max:
                raise ValueError(
                    f"value={self.value} cannot be stored in {X.dtype} data; convert the data "
                    "to float first"
                )
        pt, pb, pl, pr = self.pads_
        width = [(0, 0)] * (X.ndim - 2) + [(pt, pb), (pl, pr)]
        return np.pad(X, width, constant_values=X.dtype.type(self.value))

    def inverse_transform(self, Y):
        Y = _as_data(Y, "Y", 3)
        if self.pads_ is None:
            raise RuntimeError("Pad(size=...) must be fitted before inverse_transform")
        pt, pb, pl, pr = self.pads_
        H, W = Y.shape[-2:]
        return Y[..., pt : H - pb, pl : W - pr].copy()

    def get_config(self):
        if self.size is not None:
            return {"value": self.value, "size": list(self.size)}
        return {"padding": self.padding, "value": self.value}
