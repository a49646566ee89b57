"""Patches of images: what a sparse autoencoder learns its features from (UFLDL's
``sampleIMAGES``; course 002: "train a sparse autoencoder on small patches x_small sampled
from the large images")."""

from __future__ import annotations

from typing import Any

import numpy as np


def _pair(value: Any, name: str) -> tuple[int, int]:
    v = (value, value) if isinstance(value, (int, np.integer)) and not isinstance(value, bool) \
        else value
    ok = isinstance(v, (tuple, list)) and len(v) == 2 and all(
        isinstance(a, (int, np.integer)) and not isinstance(a, bool) and a >= 1 for a in v)
    if not ok:
        raise ValueError(f"{name} must be a positive int or a pair (h, w) of them; received "
                         f"{name}={value!r}")
    return int(v[0]), int(v[1])


def extract_patches(images: Any, size: Any, n: int | None = None, seed: Any = None,
                    stride: Any = 1) -> np.ndarray:
    """Square (or h×w) patches cut from a stack of images.

    ``n=None``: every patch whose top-left corner lies on the ``stride`` grid, image by
    image, row by row: patch ``(i, r, c)`` is ``images[i, ..., r·s : r·s + h, c·s : c·s + w]``
    with ``r < Ho = (H − h)//s + 1`` and ``c < Wo`` (the valid positions of a convolution
    of stride s — the patches whose features the convolved encoder computes).
    ``n=k``: ``k`` patches drawn independently — an image uniformly, then a grid position
    uniformly — from a generator seeded with ``seed`` (same seed, same patches).

    Args:
        images: (N, H, W) or (N, C, H, W), any numeric dtype (kept).
        size: the patch size h×w: an int or ``(h, w)``.
        n: how many random patches, or None for all of them.
        seed: seed of the random draw (int, ``np.random.Generator`` or None).
        stride: the grid step: an int or ``(sh, sw)``.

    Returns:
        (P, h, w) patches for (N, H, W) images, (P, C, h, w) for (N, C, H, W); a fresh
        contiguous array; P = N·Ho·Wo or n.

    >>> imgs = np.arange(2 * 4 * 4).reshape(2, 4, 4)
    >>> extract_patches(imgs, 2, stride=2).shape
    (8, 2, 2)
    >>> extract_patches(imgs, 2, stride=2)[5]  # image 1, row 0, column 1
    array([[18, 19],
           [22, 23]])
    """
    x = images
    if not isinstance(x, np.ndarray) or x.dtype.kind not in "biuf":
        raise TypeError(f"images must be a numeric numpy array; received "
                        f"{getattr(x, 'dtype', type(x).__name__)}")
    if x.ndim not in (3, 4):
        raise ValueError(f"images must be (N, H, W) or (N, C, H, W); received shape {x.shape}")
    h, w = _pair(size, "size")
    sh, sw = _pair(stride, "stride")
    H, W = x.shape[-2:]
    if h > H or w > W:
        raise ValueError(f"patches of {h}×{w} do not fit in images of {H}×{W}")
    ho, wo = (H - h) // sh + 1, (W - w) // sw + 1
    win = np.lib.stride_tricks.sliding_window_view(x, (h, w), axis=(-2, -1))
    win = win[..., ::sh, ::sw, :, :]  # (N, [C,] Ho, Wo, h, w): a view
    if x.ndim == 4:
        win = win.transpose(0, 2, 3, 1, 4, 5)  # (N, Ho, Wo, C, h, w)
    if n is None:
        return np.ascontiguousarray(win).reshape((-1,) + win.shape[3:])
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive int or None; received n={n!r}")
    if len(x) == 0:
        raise ValueError("images is empty: there is nothing to draw patches from")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    i = rng.integers(0, len(x), int(n))
    r = rng.integers(0, ho, int(n))
    c = rng.integers(0, wo, int(n))
    return np.ascontiguousarray(win[i, r, c])


__all__ = ["extract_patches"]
