"""2-D convolution, forward and backward, written the way the course derives it.

Deep-learning "convolution" is cross-correlation. With the sensitivity map ``δ = dL/dy`` of
the output, for output map ``f`` and input map ``c``:

* forward:  ``y[f] = Σ_c x[c] ⋆ W[f, c] + b[f]``, ⋆ the valid cross-correlation, computed
  as im2col (every receptive field as a row) and one matrix product;
* input:    ``dx[c] = Σ_f full_conv(δ[f], rot180(W[f, c]))`` — the *full* convolution of
  the sensitivity map with the kernel rotated by 180°. With stride ``s > 1``, ``s − 1`` zeros
  are first inserted between the samples of δ (the positions the stride skipped);
* weights:  ``dW[f, c] = x[c] ⋆ δ[f]`` — the correlation of the input with the sensitivity
  map, one kernel offset ``(i, j)`` at a time;
* bias:     ``db[f] = Σ δ[f]``.

A *grouped* convolution (``groups = G``; AlexNet's two columns, depthwise when ``G = C``)
is ``G`` of these side by side: the input maps and the kernels are split into ``G``
consecutive groups, and kernel ``f`` of group ``g = f // (F/G)`` reads only the maps of its
own group, ``y[f] = Σ_{c' < C/G} x[g·C/G + c'] ⋆ W[f, c'] + b[f]``, with ``W`` of shape
(F, C/G, kh, kw) as in PyTorch. Each group's forward and backward are the ones above.

This module is the readable reference path: short, literal and checked against naive loops
and PyTorch. :mod:`numcnn.functional.fast.conv` computes the same numbers faster, and
:func:`numcnn.functional.conv2d_forward` chooses between them
(:func:`numcnn.functional.set_kernels`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .geometry import conv_output_hw, window


def pad(x: np.ndarray, pads: tuple[int, int, int, int], value: float = 0.0) -> np.ndarray:
    """``x`` (N, C, H, W) bordered by ``(top, bottom, left, right)`` rows/columns of ``value``."""
    pt, pb, pl, pr = pads
    return np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=value)


def im2col(xp: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int]) -> np.ndarray:
    """Every receptive field of the (already padded) input as one row.

    Args:
        xp: (N, C, Hp, Wp). kernel: (kh, kw). stride: (sh, sw).

    Returns:
        ``cols`` of shape (N·Ho·Wo, C·kh·kw), rows in (n, p, q) order, columns in (c, i, j)
        order: ``cols[(n, p, q), (c, i, j)] = xp[n, c, p·sh + i, q·sw + j]``.
    """
    kh, kw = kernel
    sh, sw = stride
    N, C, Hp, Wp = xp.shape
    Ho, Wo = (Hp - kh) // sh + 1, (Wp - kw) // sw + 1
    fields = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw][:, :, :Ho, :Wo]
    # (N, C, Ho, Wo, kh, kw) -> (N, Ho, Wo, C, kh, kw)
    return fields.transpose(0, 2, 3, 1, 4, 5).reshape(N * Ho * Wo, C * kh * kw)


def correlate(xp: np.ndarray, W: np.ndarray, stride: tuple[int, int] = (1, 1)) -> np.ndarray:
    """Valid cross-correlation ``y[n, f] = Σ_c xp[n, c] ⋆ W[f, c]`` (no bias).

    Returns:
        (N, F, Ho, Wo), C-contiguous.
    """
    N = xp.shape[0]
    F, C, kh, kw = W.shape
    Ho, Wo = (xp.shape[2] - kh) // stride[0] + 1, (xp.shape[3] - kw) // stride[1] + 1
    y = im2col(xp, (kh, kw), stride) @ W.reshape(F, C * kh * kw).T  # (N·Ho·Wo, C·kh·kw)@(…, F)
    return np.ascontiguousarray(y.reshape(N, Ho, Wo, F).transpose(0, 3, 1, 2))


def group_sizes(C: int, W_shape: tuple[int, ...], groups: int) -> tuple[int, int]:
    """``(C/G, F/G)``: the input maps and kernels of one group, after checking that the
    ``C`` input maps and the kernels ``W_shape = (F, C/G, kh, kw)`` fit ``G = groups``.

    >>> group_sizes(4, (6, 2, 3, 3), 2)
    (2, 3)
    """
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"groups must be a positive int; received groups={groups!r}")
    F, Cg = W_shape[0], W_shape[1]
    if F % groups:
        raise ValueError(f"the {F} kernels must split into groups={groups} equal groups; "
                         f"{F} is not divisible by {groups}")
    if Cg * groups != C:
        raise ValueError(f"kernel expects {Cg * groups} input channels ({Cg} per group × "
                         f"groups={groups}); input has {C}")
    return Cg, F // groups


def conv2d_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray | None,
                   stride: tuple[int, int] = (1, 1),
                   pads: tuple[int, int, int, int] = (0, 0, 0, 0),
                   groups: int = 1) -> tuple[np.ndarray, dict]:
    """Convolution forward pass ``y[f] = Σ_c x[c] ⋆ W[f, c] + b[f]``.

    Args:
        x: input (N, C, H, W). W: kernels (F, C/G, kh, kw). b: bias (F,) or None.
        stride: (sh, sw). pads: explicit (top, bottom, left, right) zero padding.
        groups: G; kernel ``f`` reads input maps ``g·C/G … (g + 1)·C/G − 1`` only, with
            ``g = f // (F/G)`` (the module docstring).

    Returns:
        ``(y, cache)``, y of shape (N, F, Ho, Wo) with ``Ho = (H + pt + pb − kh) // sh + 1``.

    >>> x = np.array([[1, 2, 3, 0], [0, 1, 2, 3], [3, 0, 1, 2], [2, 3, 0, 1]], float)
    >>> k = np.array([[2, 0, 1], [0, 1, 2], [1, 0, 2]], float)
    >>> conv2d_forward(x[None, None], k[None, None], None)[0][0, 0]
    array([[15., 16.],
           [ 6., 15.]])
    """
    if groups == 1 and W.shape[1] != x.shape[1]:
        raise ValueError(f"kernel expects {W.shape[1]} input channels; input has {x.shape[1]} "
                         f"(shape {x.shape})")
    Cg, Fg = group_sizes(x.shape[1], W.shape, groups)
    conv_output_hw(x.shape[2:], W.shape[2:], stride, pads)  # validates that the kernel fits
    xp = pad(x, pads)
    if groups == 1:
        y = correlate(xp, W, stride)
    else:  # G convolutions side by side: group g's kernels read group g's maps
        y = np.concatenate([correlate(xp[:, g * Cg : (g + 1) * Cg], W[g * Fg : (g + 1) * Fg],
                                      stride) for g in range(groups)], axis=1)
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return y, {"kernel": "reference", "x": x, "W": W, "stride": stride, "pads": pads,
               "groups": groups}


def dilate(d: np.ndarray, stride: tuple[int, int]) -> np.ndarray:
    """Insert ``s − 1`` zeros between neighbouring samples of ``d`` (N, F, Ho, Wo)."""
    sh, sw = stride
    N, F, Ho, Wo = d.shape
    out = np.zeros((N, F, (Ho - 1) * sh + 1, (Wo - 1) * sw + 1), d.dtype)
    out[:, :, ::sh, ::sw] = d
    return out


def conv2d_backward(dy: np.ndarray, cache: dict, need_dx: bool = True, need_dW: bool = True,
                    need_db: bool = True):
    """Convolution backward pass from the sensitivity map ``δ = dy``.

    * ``dx``: δ dilated by the stride, zero-padded by ``k − 1`` on every side and correlated
      with the 180°-rotated kernels (input and output maps swapped) — the full convolution;
      rows and columns the forward windows never reached get 0, then the padding is cropped.
    * ``dW[:, :, i, j] = Σ_{n, p, q} δ[n, :, p, q] · x_padded[n, :, p·sh + i, q·sw + j]``.
    * ``db = Σ_{n, p, q} δ``.

    With groups, each group's ``dx`` and ``dW`` come from its own maps, kernels and δ.

    Args:
        dy: (N, F, Ho, Wo). cache: from :func:`conv2d_forward`.
        need_dx, need_dW, need_db: compute only the gradients asked for.

    Returns:
        ``(dx, dW, db)`` shaped (N, C, H, W), (F, C/G, kh, kw), (F,); None where not asked.
    """
    x, W, stride, pads = cache["x"], cache["W"], cache["stride"], cache["pads"]
    G = cache.get("groups", 1)
    db = dy.sum(axis=(0, 2, 3)) if need_db else None
    if G == 1:
        dx, dW = _backward(x, W, dy, stride, pads, need_dx, need_dW)
        return dx, dW, db
    Cg, Fg = W.shape[1], W.shape[0] // G
    parts = [_backward(x[:, g * Cg : (g + 1) * Cg], W[g * Fg : (g + 1) * Fg],
                       dy[:, g * Fg : (g + 1) * Fg], stride, pads, need_dx, need_dW)
             for g in range(G)]
    dx = np.concatenate([p[0] for p in parts], axis=1) if need_dx else None
    dW = np.concatenate([p[1] for p in parts], axis=0) if need_dW else None
    return dx, dW, db


def _backward(x: np.ndarray, W: np.ndarray, dy: np.ndarray, stride: tuple[int, int],
              pads: tuple[int, int, int, int], need_dx: bool, need_dW: bool):
    """``(dx, dW)`` of one (ungrouped) convolution, as :func:`conv2d_backward` describes."""
    N, C, H, Wd = x.shape
    F, _, kh, kw = W.shape
    Ho, Wo = dy.shape[2:]
    pt, pb, pl, pr = pads
    dW = None
    if need_dW:
        xp = pad(x, pads)
        dW = np.empty(W.shape, np.result_type(dy, x))
        for i in range(kh):
            for j in range(kw):  # correlation of the input with the sensitivity map
                xs = window(xp, i, j, (Ho, Wo), stride)  # (N, C, Ho, Wo)
                dW[:, :, i, j] = np.tensordot(dy, xs, axes=([0, 2, 3], [0, 2, 3]))
    dx = None
    if need_dx:
        full = pad(dilate(dy, stride), (kh - 1, kh - 1, kw - 1, kw - 1))
        rot = W[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)  # (C, F, kh, kw), rotated 180°
        reached = correlate(full, np.ascontiguousarray(rot))  # (N, C, (Ho−1)·sh + kh, …)
        dxp = np.zeros((N, C, H + pt + pb, Wd + pl + pr), reached.dtype)
        dxp[:, :, : reached.shape[2], : reached.shape[3]] = reached
        dx = np.ascontiguousarray(dxp[:, :, pt : pt + H, pl : pl + Wd])
    return dx, dW


def connection_mask(table: np.ndarray, kernel_size: tuple[int, int], dtype: Any) -> np.ndarray:
    """Kernel mask for a sparse connection table (LeNet-5's Table I).

    Args:
        table: boolean array (C_in, C_out); ``table[c, o]`` is True when output map ``o``
            reads input map ``c`` (rows are input maps, columns output maps, as in the paper).
        kernel_size: (kh, kw).
        dtype: dtype of the returned mask.

    Returns:
        ``M`` of shape (C_out, C_in, kh, kw) with ``M[o, c] = table[c, o]`` (1 or 0), so that
        ``W * M`` is the kernel with absent connections zeroed, as ``W``'s layout.

    >>> connection_mask(np.array([[True, False]]), (1, 2), np.float32)[:, 0]
    array([[[1., 1.]],
    <BLANKLINE>
           [[0., 0.]]], dtype=float32)
    """
    t = np.asarray(table, dtype=bool)
    if t.ndim != 2:
        raise ValueError(f"connection table must be 2-D (C_in, C_out); received shape {t.shape}")
    kh, kw = kernel_size
    m = np.broadcast_to(t.T[:, :, None, None], (t.shape[1], t.shape[0], kh, kw))
    return np.ascontiguousarray(m, dtype=dtype)
