"""Pooling over 2-D windows, forward and backward, on one window primitive.

Every pooling variant visits the ``kh·kw`` offsets of the window; at each offset
:func:`numcnn.functional.conv.window` gives the strided slab of the (padded) input that sits
under that offset for every output position. Max pooling keeps the running maximum and the
offset that produced it; average pooling sums. The backward passes are the course's
"up-sampling" of the sensitivity map: average pooling spreads ``δ / (kh·kw)`` to every input
of the window, max pooling routes ``δ`` to the arg-max only.

For 2×2 stride-2 windows this is ``np.maximum`` over four strided slices, which is the fast
path the design notes measured (≈50× faster than a reshape-and-reduce).
"""

from __future__ import annotations

import numpy as np

from .conv import conv_output_hw, pad_input, window
from .workspace import Workspace, get_workspace


def _offsets(kh: int, kw: int):
    return [(i, j) for i in range(kh) for j in range(kw)]


def max_pool2d_forward(
    x: np.ndarray,
    pool: tuple[int, int],
    stride: tuple[int, int],
    pads: tuple[int, int, int, int] = (0, 0, 0, 0),
    ws: Workspace | None = None,
) -> tuple[np.ndarray, dict]:
    """Max pooling: ``y[n, c, p, q] = max over the window at (p·sh, q·sw) of x_padded``.

    Padding is with −∞, so padded positions never win (PyTorch's convention). Ties go to the
    first offset in row-major window order, as in PyTorch.

    Args:
        x: (N, C, H, W). pool: (kh, kw). stride: (sh, sw). pads: (top, bottom, left, right).

    Returns:
        ``(y, cache)``, y of shape (N, C, Ho, Wo).

    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> max_pool2d_forward(x, (2, 2), (2, 2))[0][0, 0]
    array([[ 5.,  7.],
           [13., 15.]])
    """
    ws = get_workspace(ws)
    N, C, H, W = x.shape
    kh, kw = pool
    Ho, Wo = conv_output_hw((H, W), pool, stride, pads)
    xp = pad_input(x, pads, ws, "xp", fill=-np.inf)
    offs = _offsets(kh, kw)
    y = window(xp, 0, 0, (Ho, Wo), stride).copy()
    arg = np.zeros((N, C, Ho, Wo), dtype=np.uint8 if len(offs) < 256 else np.int32)
    gt = ws.empty("gt", (N, C, Ho, Wo), np.bool_)
    for k, (i, j) in enumerate(offs[1:], start=1):
        s = window(xp, i, j, (Ho, Wo), stride)
        np.greater(s, y, out=gt)  # strictly greater: the first maximum keeps the gradient
        np.copyto(arg, k, where=gt)
        np.maximum(y, s, out=y)
    cache = {"arg": arg, "x_shape": x.shape, "pool": pool, "stride": stride, "pads": pads,
             "ws": ws}
    return y, cache


def max_pool2d_backward(dy: np.ndarray, cache: dict) -> np.ndarray:
    """Route each ``dy`` to the input position that won its window (summing on overlaps).

    Args:
        dy: (N, C, Ho, Wo). cache: from :func:`max_pool2d_forward`.

    Returns:
        dx of shape (N, C, H, W).
    """
    N, C, H, W = cache["x_shape"]
    kh, kw = cache["pool"]
    stride = cache["stride"]
    pt, pb, pl, pr = cache["pads"]
    arg = cache["arg"]
    out_hw = dy.shape[2:]
    ws: Workspace = cache["ws"]
    overlap = stride[0] < kh or stride[1] < kw
    dxp = ws.zeros("dxp", (N, C, H + pt + pb, W + pl + pr), dy.dtype)
    mask = ws.empty("mask", arg.shape, np.bool_)
    for k, (i, j) in enumerate(_offsets(kh, kw)):
        np.equal(arg, k, out=mask)
        target = window(dxp, i, j, out_hw, stride)
        if overlap:
            target += dy * mask
        else:
            np.multiply(dy, mask, out=target)
    return dxp[:, :, pt : pt + H, pl : pl + W].copy()


def avg_pool2d_forward(
    x: np.ndarray,
    pool: tuple[int, int],
    stride: tuple[int, int],
    pads: tuple[int, int, int, int] = (0, 0, 0, 0),
    count_include_pad: bool = True,
    ws: Workspace | None = None,
) -> tuple[np.ndarray, dict]:
    """Average pooling: ``y = (1 / d) · Σ_window x_padded`` with zero padding.

    ``d = kh·kw`` when ``count_include_pad`` (PyTorch's default), else the number of real
    (non-padding) inputs under each window.

    Args:
        x: (N, C, H, W). pool: (kh, kw). stride: (sh, sw). pads: (top, bottom, left, right).

    Returns:
        ``(y, cache)``, y of shape (N, C, Ho, Wo).
    """
    ws = get_workspace(ws)
    N, C, H, W = x.shape
    kh, kw = pool
    Ho, Wo = conv_output_hw((H, W), pool, stride, pads)
    xp = pad_input(x, pads, ws, "xp")
    y = window(xp, 0, 0, (Ho, Wo), stride).copy()
    for i, j in _offsets(kh, kw)[1:]:
        y += window(xp, i, j, (Ho, Wo), stride)
    div = window_counts((H, W), pool, stride, pads, count_include_pad, x.dtype)
    y /= div
    cache = {"div": div, "x_shape": x.shape, "pool": pool, "stride": stride, "pads": pads,
             "ws": ws}
    return y, cache


def window_counts(
    in_hw: tuple[int, int],
    pool: tuple[int, int],
    stride: tuple[int, int],
    pads: tuple[int, int, int, int],
    count_include_pad: bool,
    dtype: np.dtype,
) -> np.ndarray:
    """Divisor per output position: a scalar ``kh·kw`` array, or the count of real inputs."""
    kh, kw = pool
    if count_include_pad or not any(pads):
        return np.asarray(kh * kw, dtype=dtype)
    ones = np.ones((1, 1) + tuple(in_hw), dtype=dtype)
    onesp = np.pad(ones, ((0, 0), (0, 0), (pads[0], pads[1]), (pads[2], pads[3])))
    out_hw = conv_output_hw(in_hw, pool, stride, pads)
    cnt = np.zeros((1, 1) + out_hw, dtype=dtype)
    for i, j in _offsets(kh, kw):
        cnt += window(onesp, i, j, out_hw, stride)
    return cnt[0, 0]


def avg_pool2d_backward(dy: np.ndarray, cache: dict) -> np.ndarray:
    """Spread each ``dy / d`` evenly over its window (summing on overlaps)."""
    N, C, H, W = cache["x_shape"]
    kh, kw = cache["pool"]
    stride = cache["stride"]
    pt, pb, pl, pr = cache["pads"]
    out_hw = dy.shape[2:]
    ws: Workspace = cache["ws"]
    g = dy / cache["div"]
    dxp = ws.zeros("dxp", (N, C, H + pt + pb, W + pl + pr), dy.dtype)
    for i, j in _offsets(kh, kw):
        window(dxp, i, j, out_hw, stride)[...] += g
    return dxp[:, :, pt : pt + H, pl : pl + W].copy()
