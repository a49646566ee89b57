"""PCA and whitening (PCA 降维, 白化) from one eigen-decomposition of the training covariance.

:class:`PCA` projects onto the leading eigenvectors, :class:`PCAWhitening` also divides by
their standard deviations, and :class:`ZCAWhitening` whitens and rotates back to pixels.
"""

from __future__ import annotations

import numpy as np

from .base import PREPROCESSORS, Preprocessor, _as_data, _out_dtype


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
