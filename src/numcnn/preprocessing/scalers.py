"""Scaling steps: mean subtraction (去均值), standardisation (归一化) and min-max scaling.

Each learns its statistics per pixel, per channel or globally (``per=``) from training data.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import PREPROCESSORS, Preprocessor, _axes, _check_per, _out_dtype


@PREPROCESSORS.register("mean_subtraction")
class MeanSubtraction(Preprocessor):
    """Mean subtraction (去均值): ``x' = x − μ``, μ from the training data.

    Args:
        per: ``"pixel"`` (μ per feature/pixel, the "mean image"), ``"channel"`` (one μ per
            channel of (N, C, ...) data) or ``"global"`` (one μ).
    """

    _arrays = ("mean_",)

    def __init__(self, per: str = "pixel"):
        super().__init__()
        self.per = _check_per(per)

    def _fit(self, X):
        self.mean_ = X.mean(axis=_axes(self.per, X.ndim), dtype=np.float64, keepdims=True)[0]

    def _transform(self, X):
        return (X - self.mean_).astype(_out_dtype(X))

    def inverse_transform(self, Y):
        Y = self._check(Y)
        return (Y + self.mean_).astype(_out_dtype(Y))

    def get_config(self):
        return {"per": self.per}


@PREPROCESSORS.register("standardize", "standardization")
class Standardize(Preprocessor):
    """Standardisation (zero mean, unit variance): ``x' = (x − μ) / σ``.

    σ is the population standard deviation of the training data; where ``σ ≤ eps`` (a
    constant feature, e.g. MNIST's border pixels with ``per="pixel"``) σ is replaced by 1 so
    the feature is only centred.

    Args:
        per: ``"channel"`` (default), ``"pixel"`` or ``"global"`` (see :class:`MeanSubtraction`).
        eps: threshold below which σ counts as zero.
    """

    _arrays = ("mean_", "std_")

    def __init__(self, per: str = "channel", eps: float = 1e-8):
        super().__init__()
        self.per = _check_per(per)
        if not eps >= 0:
            raise ValueError(f"eps must be non-negative; received eps={eps!r}")
        self.eps = float(eps)

    def _fit(self, X):
        axes = _axes(self.per, X.ndim)
        self.mean_ = X.mean(axis=axes, dtype=np.float64, keepdims=True)[0]
        std = X.astype(np.float64).std(axis=axes, keepdims=True)[0]
        self.std_ = np.where(std <= self.eps, 1.0, std)

    def _transform(self, X):
        return ((X - self.mean_) / self.std_).astype(_out_dtype(X))

    def inverse_transform(self, Y):
        Y = self._check(Y)
        return (Y * self.std_ + self.mean_).astype(_out_dtype(Y))

    def get_config(self):
        return {"per": self.per, "eps": self.eps}


@PREPROCESSORS.register("min_max", "min_max_scaler")
class MinMaxScaler(Preprocessor):
    """Min-max scaling to ``[lo, hi]``: ``x' = lo + (x − min)·(hi − lo) / (max − min)``.

    ``min``/``max`` come from the training data (test data outside that range maps outside
    ``[lo, hi]``). A zero range counts as 1. LeNet-5's input scaling (background −0.1,
    foreground 1.175) is ``MinMaxScaler((-0.1, 1.175))`` on raw MNIST.

    Args:
        feature_range: ``(lo, hi)`` with ``lo < hi``.
        per: ``"global"`` (default), ``"channel"`` or ``"pixel"``.
    """

    _arrays = ("min_", "scale_")

    def __init__(self, feature_range: Any = (0.0, 1.0), per: str = "global"):
        super().__init__()
        lo, hi = (float(v) for v in feature_range)
        if not lo < hi:
            raise ValueError(
                f"feature_range needs lo < hi; received feature_range={feature_range!r}"
            )
        self.feature_range = (lo, hi)
        self.per = _check_per(per)

    def _fit(self, X):
        axes = _axes(self.per, X.ndim)
        mn = X.min(axis=axes, keepdims=True)[0].astype(np.float64)
        rng = X.max(axis=axes, keepdims=True)[0].astype(np.float64) - mn
        self.min_ = mn
        self.scale_ = (self.feature_range[1] - self.feature_range[0]) / np.where(rng == 0, 1.0,
                                                                                 rng)

    def _transform(self, X):
        return ((X - self.min_) * self.scale_ + self.feature_range[0]).astype(_out_dtype(X))

    def inverse_transform(self, Y):
        Y = self._check(Y)
        return ((Y - self.feature_range[0]) / self.scale_ + self.min_).astype(_out_dtype(Y))

    def get_config(self):
        return {"feature_range": list(self.feature_range), "per": self.per}
