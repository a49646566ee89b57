"""Data-layer preprocessing: transforms fitted on training data, applied unchanged to test data.

The course's data-layer steps (去均值 mean subtraction, 归一化 normalisation, PCA/白化
whitening), its bit-plane decomposition (比特平面), and the padding LeNet-5 needs
(MNIST 28×28 → 32×32). Every step has ``fit(X)`` (learns statistics from training data
only), ``transform(X)``, ``fit_transform(X)``, ``inverse_transform(Y)`` where one exists, and
``get_state()`` / ``set_state()`` returning plain arrays plus JSON-able parameters, so a
fitted step can be saved without pickle (:func:`save_preprocessor`, :func:`load_preprocessor`).

Data is ``(N, ...)``: samples on axis 0. Integer input (e.g. uint8 images) gives float32
output; float32/float64 input keeps its dtype. Statistics are computed in float64.

>>> X = np.arange(12.0).reshape(3, 4)
>>> MeanSubtraction().fit(X).transform(X)[0]
array([-4., -4., -4., -4.])
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from typing import Any

import numpy as np

from ._registry import Registry

PREPROCESSORS = Registry("preprocessor")

_PER = ("pixel", "channel", "global")


def _as_data(X: Any, what: str = "X", min_ndim: int = 2) -> np.ndarray:
    if not isinstance(X, np.ndarray):
        raise TypeError(f"{what} must be a numpy array; received {type(X).__name__}")
    if X.ndim < min_ndim:
        raise ValueError(
            f"{what} must have at least {min_ndim} dimensions (N, ...); received shape {X.shape}"
        )
    if X.dtype.kind not in "uif":
        raise TypeError(f"{what} must be numeric; received dtype={X.dtype}")
    if X.dtype.kind == "f" and not np.isfinite(X).all():
        raise ValueError(f"{what} contains NaN or infinite values")
    return X


def _out_dtype(X: np.ndarray) -> np.dtype:
    return X.dtype if X.dtype in (np.float32, np.float64) else np.dtype(np.float32)


def _axes(per: str, ndim: int) -> tuple[int, ...]:
    if per == "pixel":
        return (0,)
    if per == "channel":
        if ndim < 3:
            raise ValueError(
                f"per='channel' needs (N, C, ...) data with at least 3 dimensions; received "
                f"{ndim} dimensions (use per='pixel' or per='global')"
            )
        return (0,) + tuple(range(2, ndim))
    return tuple(range(ndim))


def _check_per(per: str) -> str:
    if per not in _PER:
        raise ValueError(f"per must be one of {_PER}; received per={per!r}")
    return per


class Preprocessor:
    """Base class: the fit/transform protocol and the state round trip.

    Subclasses list their fitted arrays in ``_arrays`` and JSON-able fitted values in
    ``_attrs`` (attribute names ending in ``_``).
    """

    _arrays: tuple[str, ...] = ()
    _attrs: tuple[str, ...] = ("feature_shape_",)
    needs_fit = True

    def __init__(self) -> None:
        self.fitted = False
        self.feature_shape_: tuple[int, ...] | None = None

    # ---------------------------------------------------------------- protocol
    def fit(self, X: np.ndarray) -> Preprocessor:
        """Learn the statistics from training data ``X`` (N, ...) and return ``self``."""
        X = _as_data(X)
        self.feature_shape_ = tuple(int(d) for d in X.shape[1:])
        self._fit(X)
        self.fitted = True
        return self

    def _fit(self, X: np.ndarray) -> None:
        pass

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Apply the fitted transform (the statistics are not changed)."""
        X = self._check(X)
        return self._transform(X)

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        """``fit(X)`` then ``transform(X)``."""
        return self.fit(X).transform(X)

    def inverse_transform(self, Y: np.ndarray) -> np.ndarray:
        """Map transformed data back to the input space."""
        raise NotImplementedError(f"{type(self).__name__} has no inverse transform")

    def _transform(self, X: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def _check(self, X: np.ndarray) -> np.ndarray:
        X = _as_data(X)
        if self.needs_fit and not self.fitted:
            raise RuntimeError(f"{type(self).__name__} must be fitted before transform")
        if self.needs_fit and tuple(X.shape[1:]) != self.feature_shape_:
            raise ValueError(
                f"{type(self).__name__} was fitted on samples of shape {self.feature_shape_}; "
                f"received data of shape {X.shape}"
            )
        return X

    # ------------------------------------------------------------------- state
    def get_config(self) -> dict[str, Any]:
        """Constructor arguments (JSON-serialisable)."""
        return {}

    def get_state(self) -> dict[str, Any]:
        """``{"class_name", "config", "attrs", "arrays"}``: JSON-able values plus arrays."""
        attrs = {}
        for k in self._attrs:
            v = getattr(self, k, None)
            attrs[k] = list(v) if isinstance(v, tuple) else v
        arrays = {k: np.array(getattr(self, k)) for k in self._arrays if self.fitted}
        return {"class_name": type(self).__name__, "config": self.get_config(),
                "fitted": self.fitted, "attrs": attrs, "arrays": arrays}

    def set_state(self, state: dict[str, Any]) -> Preprocessor:
        """Restore what :meth:`get_state` returned (same class); returns ``self``."""
        if state.get("class_name") != type(self).__name__:
            raise ValueError(
                f"state is for {state.get('class_name')!r}, not {type(self).__name__!r}"
            )
        for k in self._attrs:
            v = state["attrs"].get(k)
            setattr(self, k, tuple(v) if isinstance(v, list) else v)
        self.fitted = bool(state.get("fitted", True))
        if self.fitted:
            for k in self._arrays:
                setattr(self, k, np.array(state["arrays"][k], dtype=np.float64))
        return self

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Preprocessor:
        """Build the right class from a state (works on the base class too)."""
        klass = _CLASSES.get(state.get("class_name", ""))
        if klass is None:
            raise ValueError(f"unknown preprocessor class {state.get('class_name')!r}")
        if cls is not Preprocessor and klass is not cls:
            raise ValueError(f"state is for {klass.__name__!r}, not {cls.__name__!r}")
        return klass(**state["config"]).set_state(state)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


# ------------------------------------------------------------------- scaling


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


# ------------------------------------------------------------- PCA / whitening


class _Eigen(Preprocessor):
    """Shared fit: the eigen-decomposition of the training covariance.

    Samples are flattened to ``D = prod(feature shape)`` features; ``μ`` is their mean and
    ``Σ = X_cᵀ X_c / (N − 1)`` the (unbiased) covariance, ``Σ = V diag(λ) Vᵀ`` with
    ``λ_1 ≥ λ_2 ≥ …`` (negative round-off clipped to 0) and each eigenvector's largest
    entry made positive (a deterministic sign).
    """

    _arrays = ("mean_", "components_", "explained_variance_")

    def __init__(self, n_components: int | None = None):
        super().__init__()
        if n_components is not None and (isinstance(n_components, bool) or not isinstance(
                n_components, (int, np.integer)) or n_components < 1):
            raise ValueError(
                f"n_components must be a positive int or None; received n_components="
                f"{n_components!r}"
            )
        self.n_components = None if n_components is None else int(n_components)

    def _fit(self, X):
        N = X.shape[0]
        if N < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 samples; received {N}")
        X2 = X.reshape(N, -1).astype(np.float64)
        D = X2.shape[1]
        k = self._k(D)
        self.mean_ = X2.mean(axis=0)
        Xc = X2 - self.mean_
        cov = Xc.T @ Xc / (N - 1)  # (D, N) @ (N, D)
        lam, V = np.linalg.eigh(cov)
        lam, V = np.maximum(lam[::-1], 0.0), V[:, ::-1]
        idx = np.abs(V).argmax(axis=0)
        V = V * np.sign(V[idx, np.arange(D)])
        self.components_ = np.ascontiguousarray(V[:, :k].T)  # (k, D)
        self.explained_variance_ = lam[:k]
        self.total_variance_ = float(lam.sum())

    def _k(self, D: int) -> int:
        if self.n_components is None:
            return D
        if self.n_components > D:
            raise ValueError(
                f"n_components={self.n_components} exceeds the {D} features of the data"
            )
        return self.n_components

    def _check_codes(self, Z: np.ndarray) -> np.ndarray:
        Z = _as_data(Z, "Z")
        if not self.fitted:
            raise RuntimeError(f"{type(self).__name__} must be fitted before inverse_transform")
        k = self.components_.shape[0]
        if Z.ndim != 2 or Z.shape[1] != k:
            raise ValueError(f"expected codes of shape (N, {k}); received {Z.shape}")
        return Z

    @property
    def explained_variance_ratio_(self) -> np.ndarray:
        """``λ_i / Σ_j λ_j`` for the kept components."""
        return self.explained_variance_ / self.total_variance_

    def _flat(self, X):
        return X.reshape(X.shape[0], -1).astype(np.float64) - self.mean_

    def get_config(self):
        return {"n_components": self.n_components}


@PREPROCESSORS.register("pca")
class PCA(_Eigen):
    """Principal component analysis (PCA 降维): ``z = (x − μ) V_kᵀ``, shape (N, k).

    ``V_k`` holds the ``k = n_components`` eigenvectors of the training covariance with the
    largest eigenvalues (see :class:`_Eigen`); ``inverse_transform`` is
    ``x̂ = z V_k + μ`` reshaped to the input sample shape (exact when ``k = D``).

    Args:
        n_components: k (default: all D).
    """

    _attrs = ("feature_shape_", "total_variance_")

    def _transform(self, X):
        return (self._flat(X) @ self.components_.T).astype(_out_dtype(X))  # (N,D) @ (D,k)

    def inverse_transform(self, Z):
        Z = self._check_codes(Z)
        Xh = Z.astype(np.float64) @ self.components_ + self.mean_  # (N, k) @ (k, D)
        return Xh.reshape((Z.shape[0],) + self.feature_shape_).astype(_out_dtype(Z))


@PREPROCESSORS.register("pca_whitening")
class PCAWhitening(_Eigen):
    """PCA whitening (白化): ``z_i = (x − μ)·v_i / √(λ_i + ε)``, shape (N, k).

    The whitened training data has covariance ≈ identity (exactly ``λ/(λ + ε)`` on the
    diagonal). ``inverse_transform``: ``x̂ = (z · √(λ + ε)) V_k + μ``.

    Args:
        n_components: k (default: all D).
        eps: ε, regularises tiny eigenvalues (> 0).
    """

    _attrs = ("feature_shape_", "total_variance_")

    def __init__(self, n_components: int | None = None, eps: float = 1e-5):
        super().__init__(n_components)
        if not eps > 0:
            raise ValueError(f"eps must be positive; received eps={eps!r}")
        self.eps = float(eps)

    def _transform(self, X):
        Z = self._flat(X) @ self.components_.T  # (N, D) @ (D, k)
        return (Z / np.sqrt(self.explained_variance_ + self.eps)).astype(_out_dtype(X))

    def inverse_transform(self, Z):
        Z = self._check_codes(Z)
        Zs = Z.astype(np.float64) * np.sqrt(self.explained_variance_ + self.eps)
        Xh = Zs @ self.components_ + self.mean_
        return Xh.reshape((Z.shape[0],) + self.feature_shape_).astype(_out_dtype(Z))

    def get_config(self):
        return {"n_components": self.n_components, "eps": self.eps}


@PREPROCESSORS.register("zca_whitening")
class ZCAWhitening(_Eigen):
    """ZCA whitening: ``x' = (x − μ) V diag(1/√(λ + ε)) Vᵀ``, same shape as the input.

    PCA whitening rotated back to the pixel basis (Bell & Sejnowski 1997), so whitened images
    still look like images (edges enhanced). Uses all D components. ``inverse_transform``:
    ``x = x' V diag(√(λ + ε)) Vᵀ + μ``.

    Args:
        eps: ε (> 0); larger values whiten less (keep more of the low-variance smoothness).
    """

    _arrays = ("mean_", "components_", "explained_variance_")
    _attrs = ("feature_shape_", "total_variance_")

    def __init__(self, eps: float = 1e-5):
        super().__init__(None)
        if not eps > 0:
            raise ValueError(f"eps must be positive; received eps={eps!r}")
        self.eps = float(eps)

    def _matrix(self, power: float) -> np.ndarray:
        V = self.components_.T  # (D, D)
        return (V * (self.explained_variance_ + self.eps) ** power) @ V.T

    def _transform(self, X):
        Y = self._flat(X) @ self._matrix(-0.5)  # (N, D) @ (D, D)
        return Y.reshape(X.shape).astype(_out_dtype(X))

    def inverse_transform(self, Y):
        Y = self._check(Y)
        Xh = Y.reshape(Y.shape[0], -1).astype(np.float64) @ self._matrix(0.5) + self.mean_
        return Xh.reshape(Y.shape).astype(_out_dtype(Y))

    def get_config(self):
        return {"eps": self.eps}


# ------------------------------------------------------------------ bit planes


def to_blocks(planes: np.ndarray, block: Any) -> np.ndarray:
    """Split every plane into non-overlapping ``m × n`` blocks (比特面分块).

    Args:
        planes: (N, C, H, W) with ``H % m == 0`` and ``W % n == 0`` (pad first otherwise).
        block: ``(m, n)`` or an int.

    Returns:
        (N, C, H/m, W/n, m, n): ``out[..., a, b, :, :]`` is the block at block-row a,
        block-column b. A view when possible.
    """
    m, n = (block, block) if isinstance(block, (int, np.integer)) else tuple(block)
    if m < 1 or n < 1:
        raise ValueError(f"block must be positive; received block={block!r}")
    N, C, H, W = planes.shape
    if H % m or W % n:
        raise ValueError(
            f"planes of size {H}×{W} do not split into {m}×{n} blocks (pad them first)"
        )
    return planes.reshape(N, C, H // m, m, W // n, n).transpose(0, 1, 2, 4, 3, 5)


def from_blocks(blocks: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_blocks`: (N, C, Hb, Wb, m, n) → (N, C, Hb·m, Wb·n)."""
    N, C, Hb, Wb, m, n = blocks.shape
    return blocks.transpose(0, 1, 2, 4, 3, 5).reshape(N, C, Hb * m, Wb * n)


@PREPROCESSORS.register("bit_planes")
class BitPlanes(Preprocessor):
    """Bit-plane decomposition (比特平面): an 8-bit image into 8 binary planes as channels.

    Plane ``b`` of pixel value ``v`` is ``(v >> b) & 1``; ``v = Σ_b 2^b · plane_b``.
    Input (N, H, W) is treated as (N, 1, H, W); the output is (N, 8·C, H, W) with channel
    ``8c + k`` holding bit ``7 − k`` of input channel ``c`` (``bitorder="big"``, most
    significant plane first, as ``np.unpackbits``) or bit ``k`` (``"little"``).
    ``inverse_transform`` reassembles the uint8 image (N, C, H, W) exactly. Use
    :meth:`split_blocks` for the course's non-overlapping ``m × n`` sub-blocks.

    Stateless: ``fit`` only records the sample shape.

    Args:
        bitorder: ``"big"`` or ``"little"``.
        dtype: dtype of the planes (default float32, ready for a network; ``"uint8"`` too).

    >>> BitPlanes().transform(np.array([[[5]]], np.uint8))[0, :, 0, 0]
    array([0., 0., 0., 0., 0., 1., 0., 1.], dtype=float32)
    """

    needs_fit = False

    def __init__(self, bitorder: str = "big", dtype: str = "float32"):
        super().__init__()
        if bitorder not in ("big", "little"):
            raise ValueError(f"bitorder must be 'big' or 'little'; received bitorder={bitorder!r}")
        dt = np.dtype(dtype)
        if dt not in (np.float32, np.float64, np.uint8):
            raise ValueError(f"dtype must be float32, float64 or uint8; received dtype={dtype!r}")
        self.bitorder = bitorder
        self.dtype = dt.name

    def _bits(self) -> np.ndarray:
        b = np.arange(8, dtype=np.uint8)
        return b[::-1].copy() if self.bitorder == "big" else b

    def _transform(self, X):
        if X.dtype.kind not in "ui":
            raise TypeError(f"BitPlanes needs integer (uint8) images; received dtype={X.dtype}")
        if X.size and (X.min() < 0 or X.max() > 255):
            raise ValueError(
                f"BitPlanes needs values in [0, 255]; received range [{X.min()}, {X.max()}]"
            )
        if X.ndim == 3:
            X = X[:, None]
        if X.ndim != 4:
            raise ValueError(f"BitPlanes expects (N, H, W) or (N, C, H, W); received {X.shape}")
        X = X.astype(np.uint8)
        N, C, H, W = X.shape
        bits = self._bits()[None, None, :, None, None]
        planes = (X[:, :, None] >> bits) & np.uint8(1)  # (N, C, 8, H, W)
        return planes.reshape(N, 8 * C, H, W).astype(self.dtype)

    def inverse_transform(self, P):
        P = _as_data(P, "planes", 4)
        N, C8, H, W = P.shape
        if C8 % 8:
            raise ValueError(f"planes need a multiple of 8 channels; received shape {P.shape}")
        if not np.isin(P, (0, 1)).all():
            raise ValueError("planes must contain only 0 and 1")
        P = P.reshape(N, C8 // 8, 8, H, W).astype(np.uint16)
        weights = (np.uint16(1) << self._bits().astype(np.uint16))[None, None, :, None, None]
        return (P * weights).sum(axis=2).astype(np.uint8)

    split_blocks = staticmethod(to_blocks)
    merge_blocks = staticmethod(from_blocks)

    def get_config(self):
        return {"bitorder": self.bitorder, "dtype": self.dtype}


# ------------------------------------------------------------------------ padding


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


_CLASSES: dict[str, type] = {
    c.__name__: c
    for c in (MeanSubtraction, Standardize, MinMaxScaler, PCA, PCAWhitening, ZCAWhitening,
              BitPlanes, Pad)
}


# ------------------------------------------------------------------ save / load


def save_preprocessor(step: Preprocessor, path: str | os.PathLike) -> None:
    """Write a (fitted) step to an ``.npz`` file atomically: ``state`` (JSON) + arrays."""
    state = step.get_state()
    meta = {k: v for k, v in state.items() if k != "arrays"}
    arrays = {f"array/{k}": v for k, v in state["arrays"].items()}
    path = os.fspath(path)
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, state=np.array(json.dumps(meta)), **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_preprocessor(path: str | os.PathLike) -> Preprocessor:
    """Read a step written by :func:`save_preprocessor` (never unpickles)."""
    with np.load(path, allow_pickle=False) as f:
        meta = json.loads(str(f["state"]))
        meta["arrays"] = {k[len("array/"):]: f[k] for k in f.files if k.startswith("array/")}
    return Preprocessor.from_state(meta)


def get(identifier: Any, **kwargs: Any) -> Preprocessor:
    """A preprocessing step from a registered name (``"pca"``, ``"pad"``, ...)."""
    return PREPROCESSORS.get(identifier, **kwargs)
