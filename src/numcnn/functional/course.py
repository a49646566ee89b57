"""The course's Matlab-style helpers: ``up``, ``down``, ``rot180`` and ``conv2``.

The course's back-propagation derivation (text 002, after Bouvrie's *Notes on Convolutional
Neural Networks*) is written with Matlab conventions. These helpers let its formulas be
evaluated as written, on the last two axes of an array (any leading axes are batch):

* ``up(x, n)  = x ⊗ 1_{n×n}`` — the Kronecker up-sampling: every value copied n times
  down and n times across (the sensitivity map of a pooling layer handed back to the
  convolution before it);
* ``down(x, n)`` — the sum (or mean) of every non-overlapping n×n block: the sub-sampling
  layer ``x^l = f(β·down(x^{l−1}) + b)``;
* ``rot180(k)`` — the kernel turned half a circle, ``k[::-1, ::-1]``;
* ``conv2_matlab(x, k, shape)`` — Matlab's ``conv2``: the *true* convolution
  ``y[i, j] = Σ_{a, b} x[a, b] · k[i − a, j − b]`` (the kernel flipped), cut to ``"full"``,
  ``"same"`` or ``"valid"``; :func:`conv2d_full` is its ``"full"`` form.

numcnn's layers compute the cross-correlation ``(x ⋆ W)[p, q] = Σ_{i, j} x[p + i, q + j] ·
W[i, j]`` (the kernel not flipped, as PyTorch and TensorFlow). The two differ by a rotation:
``x ⋆ W = conv2(x, rot180(W), 'valid')``. With the sensitivity map ``δ = ∂E/∂y`` the
course's formulas for a convolution layer read, for numcnn's ``W``:

* ``∂E/∂x = conv2(δ, W, 'full')`` (in the course, whose kernel is ``k = rot180(W)``:
  ``conv2(δ, rot180(k), 'full')``);
* ``∂E/∂W = conv2(x, rot180(δ), 'valid')`` (the course: ``∂E/∂k = rot180(conv2(x,
  rot180(δ), 'valid'))``);
* ``∂E/∂b = Σ_{u, v} δ[u, v]``;

and for a pooling layer of factor n: ``∂E/∂x = up(δ)`` (sum pooling, ``up(δ)/n²`` for the
mean) and ``∂E/∂β = Σ_{u, v} (δ ⊙ down(x))[u, v]``. docs/course_conventions.md shows each
one next to numcnn's own functions; the tests check them against naive loops.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .geometry import pair

SHAPES = ("full", "same", "valid")


def _at_least_2d(x: np.ndarray, who: str, what: str = "x") -> np.ndarray:
    x = np.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"{who}: {what} must have at least 2 dimensions (…, H, W); "
                         f"received shape {x.shape}")
    return x


def up(x: np.ndarray, n) -> np.ndarray:
    """Kronecker up-sampling ``up(x) = x ⊗ 1_{n×n}`` over the last two axes.

    ``up(x, n)[..., i, j] = x[..., i // nh, j // nw]``; ``n`` is an int or ``(nh, nw)``.

    >>> up(np.array([[1, 2], [3, 4]]), 2)
    array([[1, 1, 2, 2],
           [1, 1, 2, 2],
           [3, 3, 4, 4],
           [3, 3, 4, 4]])
    """
    x = _at_least_2d(x, "up")
    nh, nw = pair(n, "n")
    return np.kron(x, np.ones((1,) * (x.ndim - 2) + (nh, nw), x.dtype))


def down(x: np.ndarray, n, how: str = "sum") -> np.ndarray:
    """Block sums (``how="sum"``, the course's ``down``) or block means (``"mean"``) of the
    non-overlapping ``n×n`` blocks of the last two axes:
    ``down(x, n)[..., u, v] = Σ_{a < nh, b < nw} x[..., u·nh + a, v·nw + b]``.

    The last two sizes must be multiples of ``n``.

    >>> down(np.arange(16.0).reshape(4, 4), 2)
    array([[10., 18.],
           [42., 50.]])
    >>> down(np.arange(16.0).reshape(4, 4), 2, how="mean")
    array([[ 2.5,  4.5],
           [10.5, 12.5]])
    """
    x = _at_least_2d(x, "down")
    nh, nw = pair(n, "n")
    if how not in ("sum", "mean"):
        raise ValueError(f"down: how must be 'sum' or 'mean'; received how={how!r}")
    H, W = x.shape[-2:]
    if H % nh or W % nw:
        raise ValueError(f"down: the last two sizes must be multiples of n=({nh}, {nw}); "
                         f"received shape {x.shape}")
    blocks = x.reshape(x.shape[:-2] + (H // nh, nh, W // nw, nw))
    s = blocks.sum(axis=(-3, -1))
    if how == "mean":
        return s / s.dtype.type(nh * nw) if s.dtype.kind == "f" else s / (nh * nw)
    return s


def rot180(k: np.ndarray) -> np.ndarray:
    """``k`` turned 180° in its last two axes: ``rot180(k)[..., i, j] = k[..., kh−1−i,
    kw−1−j]`` (Matlab's ``rot90(k, 2)``).

    >>> rot180(np.array([[1, 2], [3, 4]]))
    array([[4, 3],
           [2, 1]])
    """
    return _at_least_2d(k, "rot180", "k")[..., ::-1, ::-1]


def conv2_matlab(x: np.ndarray, k: np.ndarray, shape: str = "full") -> np.ndarray:
    """Matlab's ``conv2(x, k, shape)``: the true 2-D convolution of the last two axes of
    ``x`` (any leading axes are batch) with the 2-D kernel ``k``.

    ``full[i, j] = Σ_{a, b} x[a, b] · k[i − a, j − b]`` over the indices inside both arrays,
    of size ``(H + kh − 1, W + kw − 1)``. ``"same"`` is the part of ``full`` the size of
    ``x`` starting at ``(⌊kh/2⌋, ⌊kw/2⌋)`` (Matlab's choice, also for even kernels);
    ``"valid"`` the ``(H − kh + 1, W − kw + 1)`` part computed without zero padding,
    starting at ``(kh − 1, kw − 1)``.

    Computed as the cross-correlation of the zero-padded ``x`` with ``rot180(k)``.

    >>> conv2_matlab(np.array([[1, 2], [3, 4]]), np.ones((2, 2)), "full")
    array([[ 1.,  3.,  2.],
           [ 4., 10.,  6.],
           [ 3.,  7.,  4.]])
    >>> conv2_matlab(np.array([[1, 2], [3, 4]]), np.ones((2, 2)), "same")
    array([[10.,  6.],
           [ 7.,  4.]])
    """
    x = _at_least_2d(x, "conv2_matlab")
    k = np.asarray(k)
    if k.ndim != 2:
        raise ValueError(f"conv2_matlab: k must be a 2-D kernel (kh, kw); received shape "
                         f"{k.shape}")
    if shape not in SHAPES:
        raise ValueError(f"conv2_matlab: shape must be one of {SHAPES}; received "
                         f"shape={shape!r}")
    kh, kw = k.shape
    H, W = x.shape[-2:]
    if shape == "valid" and (H < kh or W < kw):  # Matlab returns an empty array
        return np.zeros(x.shape[:-2] + (max(H - kh + 1, 0), max(W - kw + 1, 0)),
                        np.result_type(x, k))
    widths = [(0, 0)] * (x.ndim - 2) + [(kh - 1, kh - 1), (kw - 1, kw - 1)]
    xp = np.pad(x, widths)
    fields = sliding_window_view(xp, (kh, kw), axis=(-2, -1))  # (…, H+kh−1, W+kw−1, kh, kw)
    full = np.einsum("...ij,ij->...", fields, rot180(k))
    if shape == "full":
        return full
    if shape == "same":
        t, left = kh // 2, kw // 2
        return full[..., t : t + H, left : left + W]
    return full[..., kh - 1 : H, kw - 1 : W]


def conv2d_full(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """The full true convolution ``conv2(x, k, 'full')`` of :func:`conv2_matlab`: size
    ``(H + kh − 1, W + kw − 1)``, ``y[i, j] = Σ_{a, b} x[a, b] · k[i − a, j − b]``.

    >>> conv2d_full(np.array([[1.0, 2.0]]), np.array([[1.0, 10.0]]))
    array([[ 1., 12., 20.]])
    """
    return conv2_matlab(x, k, "full")
