"""Fixed image filters (classic kernels from the course) and loading them into a ``Conv2D``.

The course shows that different kernels extract different local features, with two 3×3 edge
detectors (lesson 003, "卷积核1 提取水平边缘 / 卷积核2 提取垂直边缘")::

    horizontal_edge      vertical_edge
    [[ 1,  1,  1],       [[1, 0, -1],
     [ 0,  0,  0],        [1, 0, -1],
     [-1, -1, -1]]        [1, 0, -1]]

All kernels here are applied the way every layer in numcnn applies them, as a
**cross-correlation** ``y[p, q] = Σ_{i,j} x[p + i, q + j] · k[i, j]`` (no flip). With that
convention ``sobel_x`` responds positively where intensity *increases* to the right, and
``sobel_y`` where it increases downwards (rows grow downwards):

======================  =====================================================  =============
name                    kernel                                                 responds to
======================  =====================================================  =============
``horizontal_edge``     ``[[1,1,1],[0,0,0],[-1,-1,-1]]``                       bright above
``vertical_edge``       ``[[1,0,-1],[1,0,-1],[1,0,-1]]``                       bright left
``sobel_x``             ``[[-1,0,1],[-2,0,2],[-1,0,1]]``                       ∂I/∂x · 8
``sobel_y``             ``[[-1,-2,-1],[0,0,0],[1,2,1]]``                       ∂I/∂y · 8
``prewitt_x``           ``[[-1,0,1],[-1,0,1],[-1,0,1]]``                       ∂I/∂x · 6
``prewitt_y``           ``[[-1,-1,-1],[0,0,0],[1,1,1]]``                       ∂I/∂y · 6
``laplacian``           ``[[0,1,0],[1,-4,1],[0,1,0]]``                         ∇²I
``laplacian_diagonal``  ``[[1,1,1],[1,-8,1],[1,1,1]]``                         ∇²I (8-nbr)
``identity``            ``[[0,0,0],[0,1,0],[0,0,0]]``                          I
``box_blur``            ``ones((3,3)) / 9``                                    local mean
======================  =====================================================  =============

>>> get_kernel("sobel_x")
array([[-1.,  0.,  1.],
       [-2.,  0.,  2.],
       [-1.,  0.,  1.]], dtype=float32)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .layers.conv import Conv2D

_KERNELS: dict[str, list[list[float]]] = {
    "horizontal_edge": [[1, 1, 1], [0, 0, 0], [-1, -1, -1]],
    "vertical_edge": [[1, 0, -1], [1, 0, -1], [1, 0, -1]],
    "sobel_x": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
    "sobel_y": [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
    "prewitt_x": [[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]],
    "prewitt_y": [[-1, -1, -1], [0, 0, 0], [1, 1, 1]],
    "laplacian": [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
    "laplacian_diagonal": [[1, 1, 1], [1, -8, 1], [1, 1, 1]],
    "identity": [[0, 0, 0], [0, 1, 0], [0, 0, 0]],
    "box_blur": [[1 / 9] * 3] * 3,
}

#: The course's two edge detectors, in the order it shows them.
COURSE_EDGE_KERNELS = ("horizontal_edge", "vertical_edge")


def names() -> list[str]:
    """All kernel names, sorted."""
    return sorted(_KERNELS)


def get_kernel(name: str, dtype: Any = np.float32) -> np.ndarray:
    """A fresh copy of the named kernel as a (3, 3) float array.

    Args:
        name: one of :func:`names` (case-insensitive).
        dtype: float32 (default) or float64.

    Returns:
        array of shape (kh, kw) = (3, 3).
    """
    if not isinstance(name, str) or name.lower() not in _KERNELS:
        raise ValueError(f"unknown kernel {name!r}; expected one of: {', '.join(names())}")
    return np.array(_KERNELS[name.lower()], dtype=dtype)


def kernel_bank(kernels: Sequence[str | np.ndarray], in_channels: int = 1,
                dtype: Any = np.float32) -> np.ndarray:
    """Stack kernels into conv weights ``W`` of shape (F, C, kh, kw).

    Every input channel gets the same 2-D kernel, so output map ``f`` is
    ``y[f] = Σ_c x[c] ⋆ k_f`` (for RGB input this is the kernel applied to the channel sum).

    Args:
        kernels: names from :func:`names` or 2-D arrays, all of the same shape.
        in_channels: C.
        dtype: result dtype.

    Returns:
        W of shape (len(kernels), in_channels, kh, kw).
    """
    if not isinstance(in_channels, (int, np.integer)) or in_channels < 1:
        raise ValueError(
            f"in_channels must be a positive int; received in_channels={in_channels!r}"
        )
    if len(kernels) == 0:
        raise ValueError("kernels must not be empty; received kernels=[]")
    ks = [get_kernel(k, np.float64) if isinstance(k, str) else np.asarray(k, np.float64)
          for k in kernels]
    if any(k.ndim != 2 or k.shape != ks[0].shape for k in ks):
        raise ValueError(
            f"kernels must be 2-D and all of one shape; received shapes {[k.shape for k in ks]}"
        )
    W = np.stack(ks)[:, None].repeat(in_channels, axis=1)
    return W.astype(dtype)


def load_kernels(conv: Conv2D, kernels: Sequence[str | np.ndarray],
                 input_shape: Sequence[int] | None = None) -> Conv2D:
    """Overwrite a ``Conv2D``'s weights with fixed kernels (bias set to 0).

    The layer must have ``out_channels == len(kernels)`` and a matching ``kernel_size``. If it
    is not built yet, ``input_shape`` (C, H, W) is needed to build it.

    Args:
        conv: the layer to load.
        kernels: names or 2-D arrays (see :func:`kernel_bank`).
        input_shape: per-sample input shape for an unbuilt layer.

    Returns:
        ``conv`` itself, so that ``load_kernels(Conv2D(2, 3), ...).forward(x)`` gives the
        feature maps.

    >>> conv = load_kernels(Conv2D(2, 3), COURSE_EDGE_KERNELS, input_shape=(1, 6, 6))
    >>> conv.params["W"][1, 0]
    array([[ 1.,  0., -1.],
           [ 1.,  0., -1.],
           [ 1.,  0., -1.]], dtype=float32)
    """
    if not conv.built:
        if input_shape is None:
            raise ValueError(
                f"{conv.display_name} is not built; pass input_shape=(C, H, W) to build it"
            )
        conv.build(tuple(input_shape))
    C = conv.input_shape[0]
    W = kernel_bank(kernels, C, conv.dtype)
    if W.shape != conv.params["W"].shape:
        raise ValueError(
            f"{conv.display_name} has weights of shape {conv.params['W'].shape}; the kernels "
            f"give {W.shape} (out_channels and kernel_size must match)"
        )
    conv.params["W"][...] = W
    if "b" in conv.params:
        conv.params["b"][...] = 0
    return conv


def edge_detector(kernels: Sequence[str | np.ndarray] = COURSE_EDGE_KERNELS,
                  input_shape: Sequence[int] = (1, 28, 28), padding: Any = "valid",
                  dtype: Any = "float32") -> Conv2D:
    """A built ``Conv2D`` holding fixed kernels, ready to show feature maps.

    Args:
        kernels: names or 2-D arrays (default: the course's horizontal and vertical edges).
        input_shape: per-sample input shape (C, H, W).
        padding: the convolution padding.
        dtype: layer dtype.

    Returns:
        a built ``Conv2D`` with ``out_channels = len(kernels)``.
    """
    ks = [get_kernel(k, np.float64) if isinstance(k, str) else np.asarray(k) for k in kernels]
    kh, kw = ks[0].shape if ks and ks[0].ndim == 2 else (0, 0)
    if kh == 0:
        raise ValueError(f"kernels must be non-empty 2-D arrays or names; received {kernels!r}")
    conv = Conv2D(len(ks), (kh, kw), padding=padding, dtype=dtype)
    return load_kernels(conv, ks, input_shape)
