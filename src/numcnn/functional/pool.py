"""Pooling, forward and backward, written the way the course derives it.

A pooling layer summarises each ``kh×kw`` window of a feature map (windows ``sh, sw`` apart,
possibly overlapping). The backward pass hands each output's sensitivity δ back to the
window it summarised — the course's *up-sampling* of the sensitivity map:

* average pooling: every input of the window receives ``δ / d`` (``d`` the divisor); for
  tiled windows (stride = window, no padding) this is the Kronecker product
  ``up(δ) = δ ⊗ 1_{kh×kw}`` scaled by ``1/d``;
* max pooling: the input that won the window receives δ, the others 0; for tiled windows
  ``dx = up(δ) ⊙ M`` with ``M`` the 0/1 map of the winners (the first maximum in row-major
  window order, as PyTorch).

Overlapping or padded windows generalise the up-sampling: each window offset ``(i, j)``
adds its share into the strided slab of the input it covers (:func:`window`). This module
is the readable reference path; :mod:`numcnn.functional.fast.pool` computes the same
numbers in the input's memory layout, and :func:`numcnn.functional.max_pool2d_forward`
chooses between them. The pooling variants at the end (Lp, distance-weighted, global) have
one implementation each.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .conv import pad
from .geometry import conv_output_hw, window


def _windows(xp: np.ndarray, pool: tuple[int, int], stride: tuple[int, int],
             out_hw: tuple[int, int]) -> np.ndarray:
    """(N, C, Ho, Wo, kh, kw) view of every window of the padded input ``xp``."""
    (sh, sw), (Ho, Wo) = stride, out_hw
    return sliding_window_view(xp, pool, axis=(2, 3))[:, :, ::sh, ::sw][:, :, :Ho, :Wo]


def _tiled(x_shape: tuple[int, ...], pool: tuple[int, int], stride: tuple[int, int],
           pads: tuple[int, int, int, int]) -> bool:
    """Windows that tile the input exactly: stride = window, no padding, sizes divide."""
    H, W = x_shape[2:]
    return (tuple(stride) == tuple(pool) and not any(pads)
            and H % pool[0] == 0 and W % pool[1] == 0)


def upsample(d: np.ndarray, pool: tuple[int, int]) -> np.ndarray:
    """The Kronecker up-sampling ``d ⊗ 1_{kh×kw}`` of (N, C, Ho, Wo) maps: each value
    repeated over its ``kh×kw`` block.

    >>> upsample(np.array([[[[1.0, 2.0]]]]), (2, 2))[0, 0]
    array([[1., 1., 2., 2.],
           [1., 1., 2., 2.]])
    """
    return np.kron(d, np.ones((1, 1) + tuple(pool), d.dtype))


def _spread(share: np.ndarray, x_shape: tuple[int, ...], pool: tuple[int, int],
            stride: tuple[int, int], pads: tuple[int, int, int, int]) -> np.ndarray:
    """Add each window's share ``share[..., i, j]`` (N, C, Ho, Wo, kh, kw) back onto the input
    position it came from, summing where windows overlap; crop the padding."""
    N, C, H, W = x_shape
    pt, pb, pl, pr = pads
    out_hw = share.shape[2:4]
    dxp = np.zeros((N, C, H + pt + pb, W + pl + pr), share.dtype)
    for i in range(pool[0]):
        for j in range(pool[1]):
            window(dxp, i, j, out_hw, stride)[...] += share[..., i, j]
    return np.ascontiguousarray(dxp[:, :, pt : pt + H, pl : pl + W])


def max_pool2d_forward(x: np.ndarray, pool: tuple[int, int], stride: tuple[int, int],
                       pads: tuple[int, int, int, int] = (0, 0, 0, 0)
                       ) -> tuple[np.ndarray, dict]:
    """Max pooling ``y[n, c, p, q] = max`` of the window at ``(p·sh, q·sw)`` of ``x`` padded
    with −∞ (padding never wins, as in PyTorch).

    Args:
        x: (N, C, H, W). pool: (kh, kw). stride: (sh, sw). pads: (top, bottom, left, right).

    Returns:
        ``(y, cache)``, y of shape (N, C, Ho, Wo).

    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> max_pool2d_forward(x, (2, 2), (2, 2))[0][0, 0]
    array([[ 5.,  7.],
           [13., 15.]])
    """
    out_hw = conv_output_hw(x.shape[2:], pool, stride, pads)
    win = _windows(pad(x, pads, -np.inf), pool, stride, out_hw)
    y = np.ascontiguousarray(win.max(axis=(4, 5)))
    return y, {"kernel": "reference", "x": x, "pool": pool, "stride": stride, "pads": pads}


def max_pool2d_backward(dy: np.ndarray, cache: dict, relu: bool = False) -> np.ndarray:
    """Route each δ to the input that won its window (the first maximum, row-major).

    Tiled windows: ``dx = up(δ) ⊙ M``, ``M`` the 0/1 map of the winners. Otherwise each
    window adds δ at its winner's position (sums where windows overlap).

    With ``relu=True`` the input was a ReLU output and the gradient with respect to the
    ReLU's input is returned: ``dx ⊙ 1[x > 0]``.

    Args:
        dy: (N, C, Ho, Wo). cache: from :func:`max_pool2d_forward`.

    Returns:
        dx of shape (N, C, H, W).
    """
    x, pool, stride, pads = cache["x"], cache["pool"], cache["stride"], cache["pads"]
    kh, kw = pool
    win = _windows(pad(x, pads, -np.inf), pool, stride, dy.shape[2:])
    N, C, Ho, Wo = dy.shape
    first = win.reshape(N, C, Ho, Wo, kh * kw).argmax(axis=4)  # first maximum of a window
    winner = (np.arange(kh * kw) == first[..., None]).reshape(N, C, Ho, Wo, kh, kw)
    if _tiled(x.shape, pool, stride, pads):
        M = winner.transpose(0, 1, 2, 4, 3, 5).reshape(x.shape)  # the 0/1 map of winners
        dx = upsample(dy, pool) * M
    else:
        dx = _spread(dy[..., None, None] * winner, x.shape, pool, stride, pads)
    if relu:
        dx *= x > 0
    return dx.astype(dy.dtype, copy=False)


def window_counts(in_hw: tuple[int, int], pool: tuple[int, int], stride: tuple[int, int],
                  pads: tuple[int, int, int, int], count_include_pad: bool,
                  dtype: np.dtype) -> np.ndarray:
    """The divisor ``d`` per output position: ``kh·kw``, or (``count_include_pad=False``)
    the number of real, non-padding inputs under each window, shape (Ho, Wo)."""
    out_hw = conv_output_hw(in_hw, pool, stride, pads)
    if count_include_pad:
        return np.full(out_hw, pool[0] * pool[1], dtype)
    real = pad(np.ones((1, 1) + tuple(in_hw), dtype), pads)
    return _windows(real, pool, stride, out_hw).sum(axis=(4, 5))[0, 0].astype(dtype)


def avg_pool2d_forward(x: np.ndarray, pool: tuple[int, int], stride: tuple[int, int],
                       pads: tuple[int, int, int, int] = (0, 0, 0, 0),
                       count_include_pad: bool = True) -> tuple[np.ndarray, dict]:
    """Average pooling ``y = (1/d) · Σ_window x`` with zero padding; ``d = kh·kw`` when
    ``count_include_pad`` (PyTorch's default), else the real inputs under the window.

    Args:
        x: (N, C, H, W). pool: (kh, kw). stride: (sh, sw). pads: (top, bottom, left, right).

    Returns:
        ``(y, cache)``, y of shape (N, C, Ho, Wo).
    """
    out_hw = conv_output_hw(x.shape[2:], pool, stride, pads)
    d = window_counts(x.shape[2:], pool, stride, pads, count_include_pad, x.dtype)
    y = _windows(pad(x, pads), pool, stride, out_hw).sum(axis=(4, 5)) / d
    cache = {"kernel": "reference", "x_shape": x.shape, "d": d, "pool": pool,
             "stride": stride, "pads": pads}
    return np.ascontiguousarray(y, dtype=x.dtype), cache


def avg_pool2d_backward(dy: np.ndarray, cache: dict) -> np.ndarray:
    """Spread ``δ / d`` evenly over each window: ``up(δ / d)`` for tiled windows, else each
    window adds its share to the inputs it covers (sums where windows overlap)."""
    x_shape, pool, stride, pads = cache["x_shape"], cache["pool"], cache["stride"], cache["pads"]
    g = (dy / cache["d"]).astype(dy.dtype, copy=False)
    if _tiled(x_shape, pool, stride, pads):
        return upsample(g, pool)
    share = np.broadcast_to(g[..., None, None], g.shape + tuple(pool))
    return _spread(share, x_shape, pool, stride, pads)


# ---------------------------------------------------------------------------------------
# Pooling variants: Lp (power-average), distance-weighted, global average / max.
# Built on the same window primitive; loops run over window offsets only.


def lp_pool2d_forward(
    x: np.ndarray,
    p: float,
    pool: tuple[int, int],
    stride: tuple[int, int],
    pads: tuple[int, int, int, int] = (0, 0, 0, 0),
    mean: bool = False,
    abs_input: bool = False,
) -> tuple[np.ndarray, dict]:
    """Lp pooling: ``y = (Σ_window v^p)^(1/p)`` (sum form) or ``(mean_window v^p)^(1/p)``.

    ``v = x`` by default, exactly as PyTorch's ``lp_pool2d``/``LPPool2d`` (which raises ``x``
    to the power ``p`` without an absolute value: for even ``p``, including the default 2,
    this is the L_p norm of the window; for odd ``p`` negative inputs count negatively, and
    a negative window sum gives NaN for ``p > 1``, as in PyTorch). ``abs_input=True`` uses
    ``v = |x|``, the true L_p norm of ONNX ``LpPool``. Zero padding contributes ``0^p = 0``;
    the mean form divides by ``kh·kw`` (padding included).

    Args:
        x: (N, C, H, W). p: the norm order, ``p ≥ 1``. pool: (kh, kw). stride: (sh, sw).
        pads: (top, bottom, left, right). mean: mean form instead of sum form.
        abs_input: use ``|x|^p``.

    Returns:
        ``(y, cache)``, y of shape (N, C, Ho, Wo).

    >>> x = np.array([[[[3.0, 4.0], [0.0, 0.0]]]])
    >>> float(lp_pool2d_forward(x, 2.0, (2, 2), (2, 2))[0][0, 0, 0, 0])
    5.0
    """
    kh, kw = pool
    N, C, H, W = x.shape
    Ho, Wo = conv_output_hw((H, W), pool, stride, pads)
    v = np.abs(x) if abs_input else x
    vp = np.square(v) if p == 2 else np.power(v, p)
    vpp = pad(vp, pads)
    s = window(vpp, 0, 0, (Ho, Wo), stride).copy()
    for i in range(kh):
        for j in range(kw):
            if i or j:
                s += window(vpp, i, j, (Ho, Wo), stride)
    K = kh * kw if mean else 1
    if mean:
        s /= x.dtype.type(K)
    with np.errstate(invalid="ignore"):  # negative sums with odd p give NaN, as in PyTorch
        y = np.sqrt(s) if p == 2 else np.power(s, 1.0 / p)
    y = y.astype(x.dtype, copy=False)
    cache = {"x": x, "y": y, "p": p, "K": K, "abs": abs_input, "pool": pool,
             "stride": stride, "pads": pads}
    return y, cache


def lp_pool2d_backward(dy: np.ndarray, cache: dict) -> np.ndarray:
    """``dx = v^(p−1) · (sign x if abs) · Σ_windows dy · y^(1−p) / K``.

    From ``∂y/∂s = y^(1−p) / (p·K)`` and ``∂s/∂x = p·v^(p−1)``. Where a window's power sum is
    zero (``y = 0``) its gradient is set to zero, as PyTorch documents.
    """
    x, y, p, K = cache["x"], cache["y"], cache["p"], cache["K"]
    kh, kw = cache["pool"]
    stride = cache["stride"]
    pt, pb, pl, pr = cache["pads"]
    N, C, H, W = x.shape
    zero = y == 0
    ysafe = np.where(zero, x.dtype.type(1), y)
    g = dy / ysafe if p == 2 else dy * np.power(ysafe, 1.0 - p)
    if K != 1:
        g /= x.dtype.type(K)
    g[zero] = 0
    dxp = np.zeros((N, C, H + pt + pb, W + pl + pr), dy.dtype)
    for i in range(kh):
        for j in range(kw):
            window(dxp, i, j, dy.shape[2:], stride)[...] += g
    dx = dxp[:, :, pt : pt + H, pl : pl + W]
    v = np.abs(x) if cache["abs"] else x
    if p == 2:
        dx = dx * v
    elif p != 1:
        dx = dx * np.power(v, p - 1)
    else:
        dx = dx.copy()
    if cache["abs"]:
        dx *= np.sign(x)
    return dx.astype(dy.dtype, copy=False)


def gaussian_pool_weights(pool: tuple[int, int], sigma: float) -> np.ndarray:
    """Window weights ``w_ij ∝ exp(−((i − ci)² + (j − cj)²) / (2σ²))``, summing to 1.

    ``(ci, cj) = ((kh − 1)/2, (kw − 1)/2)`` is the window centre (between pixels for even
    sizes), so the centre pixel weighs most and the weights fall with the distance from it.

    Returns:
        float64 array of shape (kh, kw).

    >>> np.round(gaussian_pool_weights((3, 3), 1.0)[1], 4)
    array([0.1238, 0.2042, 0.1238])
    """
    kh, kw = pool
    i = np.arange(kh, dtype=np.float64)[:, None] - (kh - 1) / 2.0
    j = np.arange(kw, dtype=np.float64)[None, :] - (kw - 1) / 2.0
    w = np.exp(-(i * i + j * j) / (2.0 * sigma * sigma))
    return w / w.sum()


def weighted_pool2d_forward(
    x: np.ndarray,
    weights: np.ndarray,
    stride: tuple[int, int],
    pads: tuple[int, int, int, int] = (0, 0, 0, 0),
) -> tuple[np.ndarray, dict]:
    """Weighted average pooling: ``y[n, c, p, q] = Σ_ij w_ij · x_padded[n, c, p·sh+i, q·sw+j]``.

    The same fixed weights (e.g. :func:`gaussian_pool_weights`) are used for every window and
    channel; zero padding counts as zeros.

    Args:
        x: (N, C, H, W). weights: (kh, kw). stride: (sh, sw). pads: (top, bottom, left, right).

    Returns:
        ``(y, cache)``, y of shape (N, C, Ho, Wo).
    """
    kh, kw = weights.shape
    N, C, H, W = x.shape
    Ho, Wo = conv_output_hw((H, W), (kh, kw), stride, pads)
    w = weights.astype(x.dtype)
    xp = pad(x, pads)
    y = np.zeros((N, C, Ho, Wo), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            y += w[i, j] * window(xp, i, j, (Ho, Wo), stride)
    cache = {"w": w, "x_shape": x.shape, "stride": stride, "pads": pads}
    return y, cache


def weighted_pool2d_backward(dy: np.ndarray, cache: dict) -> np.ndarray:
    """Spread ``w_ij · dy`` back to each window position ``(i, j)`` (summing on overlaps)."""
    w = cache["w"]
    kh, kw = w.shape
    N, C, H, W = cache["x_shape"]
    pt, pb, pl, pr = cache["pads"]
    dxp = np.zeros((N, C, H + pt + pb, W + pl + pr), dy.dtype)
    for i in range(kh):
        for j in range(kw):
            window(dxp, i, j, dy.shape[2:], cache["stride"])[...] += w[i, j] * dy
    return dxp[:, :, pt : pt + H, pl : pl + W].copy()


def global_avg_pool2d_forward(x: np.ndarray) -> tuple[np.ndarray, dict]:
    """``y[n, c] = (1 / HW) Σ_hw x[n, c, h, w]``; (N, C, H, W) → (N, C)."""
    y = x.mean(axis=(2, 3), dtype=x.dtype)
    return y, {"x_shape": x.shape}


def global_avg_pool2d_backward(dy: np.ndarray, cache: dict) -> np.ndarray:
    """``dx[n, c, h, w] = dy[n, c] / HW``."""
    N, C, H, W = cache["x_shape"]
    g = dy / dy.dtype.type(H * W)
    return np.broadcast_to(g[:, :, None, None], (N, C, H, W)).copy()


def global_max_pool2d_forward(x: np.ndarray) -> tuple[np.ndarray, dict]:
    """``y[n, c] = max_hw x[n, c, h, w]``; (N, C, H, W) → (N, C). Ties: first (row-major)."""
    N, C, H, W = x.shape
    flat = x.reshape(N, C, H * W)
    arg = flat.argmax(axis=2)
    y = np.take_along_axis(flat, arg[:, :, None], axis=2)[:, :, 0]
    return y, {"arg": arg, "x_shape": x.shape}


def global_max_pool2d_backward(dy: np.ndarray, cache: dict) -> np.ndarray:
    """Route ``dy[n, c]`` to the arg-max of map ``(n, c)``; zero elsewhere."""
    N, C, H, W = cache["x_shape"]
    dx = np.zeros((N, C, H * W), dtype=dy.dtype)
    np.put_along_axis(dx, cache["arg"][:, :, None], dy[:, :, None], axis=2)
    return dx.reshape(N, C, H, W)
