"""A picture of a handwritten digit made into an MNIST pattern, as LeCun et al. made MNIST.

MNIST's digits (LeCun, Cortes & Burges, "The MNIST database"): the NIST black-and-white
images were "size normalized to fit in a 20×20 pixel box while preserving their aspect
ratio", which left grey levels from the anti-aliasing, and "centered in a 28×28 image by
computing the center of mass of the pixels, and translating the image so as to position
this point at the center of the 28×28 field". :func:`mnist_digit` does the same to any
picture's grey levels (:func:`numcnn.io.images.digit_input` reads a file, its bytes or an
array, and scales the result as the model was trained):

1. **grey** levels ``g`` in [0, 1]: colour as ITU-R 601-2 luma ``0.299 R + 0.587 G +
   0.114 B`` (Pillow's ``"L"``), transparency composited on white;
2. **invert** when the background is light (``invert="auto"``: the median of the border
   pixels is above 1/2), so that the ink is bright on dark, as MNIST's ``x = 1 − g``;
3. **contrast**: the background level ``b`` (median of the border) to 0 and the brightest
   ink ``m`` to 1, ``x ← clip((x − b)/(m − b), 0, 1)``; levels under ``ink_threshold`` are
   background (noise, paper texture). A picture whose ink is fainter than
   :data:`MIN_CONTRAST` is refused as blank;
4. **crop** to the ink's bounding box (rows and columns with a level above 0);
5. **fit** the box into ``box × box`` (20×20) keeping its aspect ratio: the longer side to
   20 pixels, resampled with an anti-aliased triangle (bilinear) filter, :func:`resample`;
6. **centre** by the centre of mass ``(c_y, c_x) = Σ_ij (i, j)·x_ij / Σ_ij x_ij`` in the
   ``size × size`` (28×28) field: the fitted box is translated by a whole number of pixels so
   that its centre of mass falls on pixel ``(size/2, size/2)`` = (14, 14) — where the MNIST
   test digits have theirs (mean 13.99, 14.01; standard deviation 0.29, that of rounding to
   whole pixels) — and kept inside the field when the translation would push ink out;
7. (:func:`numcnn.io.images.digit_input`) **scale** as the model was trained: grey level
   ``255·x`` times ``pixel_scale``.

Everything here is NumPy; reading a file or its bytes needs Pillow (the ``image`` extra).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: the faintest ink a picture may have (brightest ink minus background, grey levels in [0, 1])
MIN_CONTRAST = 0.1

#: the most pixels an array given to :func:`image_levels` may have (as
#: :data:`numcnn.io.images.MAX_PIXELS` for a decoded file)
MAX_PIXELS = 64 * 1024 * 1024

_LUMA = np.array([0.299, 0.587, 0.114])


def image_levels(image: Any) -> np.ndarray:
    """An image array as levels in [0, 1], float64 ``(H, W, C)``, channels last.

    Accepts ``(H, W)``, ``(H, W, C)`` or ``(C, H, W)`` with ``C`` = 1 (grey), 2 (grey,
    alpha), 3 (RGB) or 4 (RGBA) — channels last when the last axis could be channels;
    ``uint8`` (0–255), ``uint16`` (0–65535), other integers in 0–255, booleans, or floats in
    [0, 1].
    """
    a = np.asarray(image)
    if a.dtype == object or a.dtype.kind not in "biuf":
        raise TypeError(f"expected an image array of numbers; received dtype {a.dtype}")
    if a.ndim == 2:
        a = a[..., None]
    elif a.ndim == 3:
        if a.shape[-1] not in (1, 2, 3, 4):
            if a.shape[0] not in (1, 2, 3, 4):
                raise ValueError(f"expected an image (H, W), (H, W, C) or (C, H, W) with C = "
                                 f"1, 2, 3 or 4 channels; received shape {a.shape}")
            a = np.moveaxis(a, 0, -1)
    else:
        raise ValueError(f"expected an image (H, W), (H, W, C) or (C, H, W); received "
                         f"shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"the image is empty (shape {a.shape[:2]})")
    if a.shape[0] * a.shape[1] > MAX_PIXELS:
        raise ValueError(f"the image has {a.shape[0]}×{a.shape[1]} pixels, more than the "
                         f"{MAX_PIXELS:,} numcnn takes")
    return _unit_levels(a)


def grey_levels(image: Any) -> np.ndarray:
    """An image array (as :func:`image_levels` takes) as grey levels in [0, 1], float64
    ``(H, W)``: colour becomes luma ``0.299 R + 0.587 G + 0.114 B`` (ITU-R 601-2, Pillow's
    ``"L"``); alpha ``a`` is composited on white, ``a·v + (1 − a)``."""
    x = image_levels(image)
    c = x.shape[-1]
    grey = x[..., :3] @ _LUMA if c >= 3 else x[..., 0]
    if c in (2, 4):
        alpha = x[..., -1]
        grey = alpha * grey + (1.0 - alpha)
    return grey


def _unit_levels(a: np.ndarray) -> np.ndarray:
    """Pixel values to [0, 1] float64 by their type's range."""
    if a.dtype.kind == "b":
        return a.astype(np.float64)
    if a.dtype == np.uint16:
        return a.astype(np.float64) / 65535.0
    if a.dtype.kind in "iu":
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi > 255:
            raise ValueError(f"integer images must hold levels 0–255 (uint16: 0–65535); "
                             f"received values from {lo} to {hi}")
        return a.astype(np.float64) / 255.0
    x = a.astype(np.float64)
    if not np.isfinite(x).all():
        raise ValueError("the image holds NaN or infinite values")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"float images must hold levels in [0, 1] (pass uint8 for 0–255); "
                         f"received values from {lo:g} to {hi:g}")
    return x


def resample_weights(n_in: int, n_out: int) -> np.ndarray:
    """The ``(n_out, n_in)`` matrix of a 1-D anti-aliased triangle-filter resampling.

    Output pixel ``i`` has its centre at ``c_i = (i + ½)·s`` in input coordinates, with
    ``s = n_in / n_out``; input pixel ``j`` (centre ``j + ½``) weighs
    ``max(0, 1 − |j + ½ − c_i| / σ)`` with ``σ = max(s, 1)``, the weights of each output
    normalised to sum to 1. When shrinking (``s > 1``) the triangle widens to ``s`` input
    pixels, so every input pixel contributes (anti-aliasing); when enlarging it is plain
    bilinear interpolation. Pillow's ``BILINEAR`` resize uses the same filter.
    """
    scale = n_in / n_out
    support = max(scale, 1.0)
    centres = (np.arange(n_out) + 0.5) * scale
    dist = np.abs((np.arange(n_in) + 0.5)[None, :] - centres[:, None]) / support
    w = np.maximum(0.0, 1.0 - dist)
    return w / w.sum(axis=1, keepdims=True)


def resample(x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A 2-D array resized to ``shape`` by the separable triangle filter of
    :func:`resample_weights`: ``W_y · x · W_xᵀ``."""
    h, w = x.shape
    return resample_weights(h, shape[0]) @ x @ resample_weights(w, shape[1]).T


def ink_box(x: np.ndarray) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)``, bounds included, of the pixels above 0."""
    rows = np.flatnonzero(x.max(axis=1) > 0)
    cols = np.flatnonzero(x.max(axis=0) > 0)
    if rows.size == 0:
        raise ValueError("no ink: every pixel is background")
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def center_of_mass(x: np.ndarray) -> tuple[float, float]:
    """``(c_y, c_x) = Σ_ij (i, j)·x_ij / Σ_ij x_ij``, pixel indices weighted by level."""
    total = x.sum()
    if not total > 0:
        raise ValueError("no ink: the centre of mass of an empty image is undefined")
    return (float(np.arange(x.shape[0]) @ x.sum(axis=1) / total),
            float(np.arange(x.shape[1]) @ x.sum(axis=0) / total))


def _border(g: np.ndarray) -> np.ndarray:
    return np.concatenate([g[0], g[-1], g[1:-1, 0], g[1:-1, -1]])


def mnist_digit(grey: np.ndarray, invert: Any = "auto", size: int = 28, box: int = 20,
                center: str = "mass", ink_threshold: float = 0.1) -> np.ndarray:
    """Steps 2–6 of the module docstring: grey levels ``(H, W)`` in [0, 1] (dark ink on light
    paper or bright ink on dark) to MNIST levels ``(size, size)`` in [0, 1], ink bright.

    ``center="box"`` centres the fitted box itself instead of its centre of mass.
    """
    g = np.asarray(grey, dtype=np.float64)
    if invert == "auto":
        flip = bool(np.median(_border(g)) > 0.5)
    elif isinstance(invert, (bool, np.bool_)):
        flip = bool(invert)
    else:
        raise ValueError(f"invert must be 'auto', True or False; received {invert!r}")
    x = 1.0 - g if flip else g
    background = float(np.median(_border(x)))
    contrast = float(x.max()) - background
    if contrast < MIN_CONTRAST:
        raise ValueError(f"no ink: the image is blank (its ink differs from the background "
                         f"by {contrast:.3f} of the grey range; at least {MIN_CONTRAST} "
                         "is needed)")
    x = np.clip((x - background) / contrast, 0.0, 1.0)
    x[x < ink_threshold] = 0.0
    top, bottom, left, right = ink_box(x)
    crop = x[top: bottom + 1, left: right + 1]
    h, w = crop.shape
    k = box / max(h, w)
    fh, fw = max(1, _round(h * k)), max(1, _round(w * k))
    fitted = np.clip(resample(crop, (fh, fw)), 0.0, 1.0)
    if center == "mass":
        cy, cx = center_of_mass(fitted)
        oy, ox = _round(size / 2 - cy), _round(size / 2 - cx)
    elif center == "box":
        oy, ox = (size - fh) // 2, (size - fw) // 2
    else:
        raise ValueError(f"center must be 'mass' or 'box'; received {center!r}")
    oy, ox = min(max(oy, 0), size - fh), min(max(ox, 0), size - fw)
    out = np.zeros((size, size))
    out[oy: oy + fh, ox: ox + fw] = fitted
    return out


def _round(v: float) -> int:
    """Halves away from zero (Python's round() sends them to the even neighbour)."""
    return int(math.floor(v + 0.5)) if v >= 0 else -int(math.floor(-v + 0.5))


__all__ = ["MIN_CONTRAST", "center_of_mass", "grey_levels", "image_levels", "ink_box",
           "mnist_digit", "resample", "resample_weights"]
