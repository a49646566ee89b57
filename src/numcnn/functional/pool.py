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
from .course import up
from .geometry import adaptive_windows, ceil_pads, conv_output_hw, window


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
    return up(d, pool)


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
                       pads: tuple[int, int, int, int] = (0, 0, 0, 0),
                       ceil_mode: bool = False) -> tuple[np.ndarray, dict]:
    """Max pooling ``y[n, c, p, q] = max`` of the window at ``(p·sh, q·sw)`` of ``x`` padded
    with −∞ (padding never wins, as in PyTorch).

    With ``ceil_mode`` the output size rounds up (:func:`~numcnn.functional.output_size`)
    and the last windows may hang off the bottom or right end: the overhang is −∞ too
    (:func:`~numcnn.functional.geometry.ceil_pads`), so such a window is the maximum of its
    part inside the (padded) input, as in PyTorch.

    Args:
        x: (N, C, H, W). pool: (kh, kw). stride: (sh, sw). pads: (top, bottom, left, right).
        ceil_mode: round the output size up.

    Returns:
        ``(y, cache)``, y of shape (N, C, Ho, Wo).

    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> max_pool2d_forward(x, (2, 2), (2, 2))[0][0, 0]
    array([[ 5.,  7.],
           [13., 15.]])
    """
    out_hw = conv_output_hw(x.shape[2:], pool, stride, pads, ceil_mode)
    if ceil_mode:  # from here on the overhang is padding: −∞, never a winner
        pads = ceil_pads(x.shape[2:], pool, stride, pads)
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
                  dtype: np.dtype, ceil_mode: bool = False) -> np.ndarray:
    """The divisor ``d`` per output position, shape (Ho, Wo): the number of positions of
    each window that lie in the input and (``count_include_pad``) its padding.

    That is ``kh·kw`` for every window with ``count_include_pad``, except windows that
    ``ceil_mode`` lets hang off the end: they count only their part inside the padded input
    (PyTorch's rule). Without ``count_include_pad`` it is the number of real inputs.
    """
    out_hw = conv_output_hw(in_hw, pool, stride, pads, ceil_mode)
    full = ceil_pads(in_hw, pool, stride, pads) if ceil_mode else tuple(pads)
    if count_include_pad and full == tuple(pads):
        return np.full(out_hw, pool[0] * pool[1], dtype)
    # 1 at every position that counts (the input, and its padding if included), 0 elsewhere
    counted = pad(np.ones((1, 1) + tuple(in_hw), dtype), pads, 1.0 if count_include_pad else 0.0)
    counted = pad(counted, (0, full[1] - pads[1], 0, full[3] - pads[3]))  # the overhang: 0
    return _windows(counted, pool, stride, out_hw).sum(axis=(4, 5))[0, 0].astype(dtype)


def avg_pool2d_forward(x: np.ndarray, pool: tuple[int, int], stride: tuple[int, int],
                       pads: tuple[int, int, int, int] = (0, 0, 0, 0),
                       count_include_pad: bool = True,
                       ceil_mode: bool = False) -> tuple[np.ndarray, dict]:
    """Average pooling ``y = (1/d) · Σ_window x`` with zero padding; ``d = kh·kw`` when
    ``count_include_pad`` (PyTorch's default), else the real inputs under the window.

    With ``ceil_mode`` the output size rounds up and the last windows may hang off the
    bottom or right end; the overhang adds zeros to the sum and nothing to ``d``, which
    counts the window's part inside the padded input (or, without ``count_include_pad``,
    inside the input) — PyTorch's divisors (:func:`window_counts`).

    Args:
        x: (N, C, H, W). pool: (kh, kw). stride: (sh, sw). pads: (top, bottom, left, right).
        count_include_pad: count the padding in ``d``. ceil_mode: round the output size up.

    Returns:
        ``(y, cache)``, y of shape (N, C, Ho, Wo).

    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> avg_pool2d_forward(x, (3, 3), (2, 2), ceil_mode=True)[0][0, 0]
    array([[ 5. ,  6.5],
           [11. , 12.5]])
    """
    out_hw = conv_output_hw(x.shape[2:], pool, stride, pads, ceil_mode)
    d = window_counts(x.shape[2:], pool, stride, pads, count_include_pad, x.dtype, ceil_mode)
    if ceil_mode:  # the overhang: zeros under the windows, left out of d above
        pads = ceil_pads(x.shape[2:], pool, stride, pads)
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


# ---------------------------------------------------------------------------------------
# Adaptive pooling: the output size is given, the windows follow from it (PyTorch's rule,
# :func:`~numcnn.functional.geometry.adaptive_windows`): output ``(i, j)`` of (Ho, Wo)
# reads rows ``⌊i·H/Ho⌋ ≤ h < ⌈(i+1)·H/Ho⌉`` and columns ``⌊j·W/Wo⌋ ≤ w < ⌈(j+1)·W/Wo⌉``.


def adaptive_sum_matrix(n: int, m: int, dtype: np.dtype) -> np.ndarray:
    """The 0/1 matrix ``B`` (m, n) of the adaptive windows along one axis:
    ``B[i, h] = 1`` where output ``i``'s window holds input position ``h``.

    >>> adaptive_sum_matrix(5, 3, np.float64)
    array([[1., 1., 0., 0., 0.],
           [0., 1., 1., 1., 0.],
           [0., 0., 0., 1., 1.]])
    """
    start, end = adaptive_windows(n, m)
    h = np.arange(n)
    return ((h >= start[:, None]) & (h < end[:, None])).astype(dtype)


def adaptive_avg_pool2d_forward(x: np.ndarray, out_hw: tuple[int, int]
                                ) -> tuple[np.ndarray, dict]:
    """Adaptive average pooling: ``y[n, c, i, j] = (1/d_ij) Σ_window x`` over the adaptive
    window of output ``(i, j)``, ``d_ij = (e_i − s_i)·(e'_j − s'_j)`` its area.

    A window is a row range times a column range, so the window sums are two products with
    the 0/1 window matrices ``B_H`` (Ho, H) and ``B_W`` (Wo, W)
    (:func:`adaptive_sum_matrix`): ``y = (B_H · x · B_Wᵀ) / d`` for every map. When Ho and
    Wo divide H and W this is average pooling with window and stride ``(H/Ho, W/Wo)``.

    Args:
        x: (N, C, H, W). out_hw: (Ho, Wo), positive (Ho > H repeats rows, as PyTorch).

    Returns:
        ``(y, cache)``, y of shape (N, C, Ho, Wo).

    >>> x = np.arange(5.0).reshape(1, 1, 1, 5)
    >>> adaptive_avg_pool2d_forward(x, (1, 3))[0][0, 0]
    array([[0.5, 2. , 3.5]])
    """
    N, C, H, W = x.shape
    Ho, Wo = out_hw
    BH, BW = adaptive_sum_matrix(H, Ho, x.dtype), adaptive_sum_matrix(W, Wo, x.dtype)
    d = BH.sum(axis=1)[:, None] * BW.sum(axis=1)[None, :]  # (Ho, Wo) window areas
    y = (BH @ x @ BW.T) / d  # (Ho, H) @ (N, C, H, W) @ (W, Wo) -> (N, C, Ho, Wo)
    cache = {"kernel": "reference", "BH": BH, "BW": BW, "d": d}
    return np.ascontiguousarray(y, dtype=x.dtype), cache


def adaptive_avg_pool2d_backward(dy: np.ndarray, cache: dict) -> np.ndarray:
    """Spread ``δ / d`` over each window, summing where windows overlap: the transposed
    products ``dx = B_Hᵀ · (δ / d) · B_W``."""
    g = (dy / cache["d"]).astype(dy.dtype, copy=False)
    dx = cache["BH"].T @ g @ cache["BW"]  # (H, Ho) @ (N, C, Ho, Wo) @ (Wo, W)
    return np.ascontiguousarray(dx, dtype=dy.dtype)


def _adaptive_index(n: int, m: int) -> np.ndarray:
    """(m, K) input positions of each adaptive window, ``K`` the longest window; a shorter
    window repeats its last position (which changes neither its maximum nor its first
    arg-max: a repeat comes after the original in row-major window order)."""
    start, end = adaptive_windows(n, m)
    K = int((end - start).max())
    return np.minimum(start[:, None] + np.arange(K), end[:, None] - 1)


def adaptive_max_pool2d_forward(x: np.ndarray, out_hw: tuple[int, int]
                                ) -> tuple[np.ndarray, dict]:
    """Adaptive max pooling: ``y[n, c, i, j] = max`` over the adaptive window of output
    ``(i, j)``; the backward pass routes δ to the window's first maximum (row-major), as
    PyTorch's ``adaptive_max_pool2d``.

    The loop runs over the window offsets ``(a, b)``: the slab ``x[:, :, ih[:, a]][..., iw[:,
    b]]`` holds, for every output, the input at offset ``(a, b)`` of its window
    (:func:`_adaptive_index`); a strictly greater value (or a first NaN) takes the lead.

    Args:
        x: (N, C, H, W). out_hw: (Ho, Wo), positive.

    Returns:
        ``(y, cache)``, y of shape (N, C, Ho, Wo).

    >>> x = np.array([[[[1.0, 5.0, 2.0, 0.0, 4.0]]]])
    >>> adaptive_max_pool2d_forward(x, (1, 3))[0][0, 0]
    array([[5., 5., 4.]])
    """
    N, C, H, W = x.shape
    Ho, Wo = out_hw
    ih, iw = _adaptive_index(H, Ho), _adaptive_index(W, Wo)  # (Ho, Kh), (Wo, Kw)
    Kw = iw.shape[1]
    y = arg = None
    for a in range(ih.shape[1]):
        rows = np.take(x, ih[:, a], axis=2)  # (N, C, Ho, W): row a of every window
        for b in range(Kw):
            v = np.take(rows, iw[:, b], axis=3)  # (N, C, Ho, Wo): offset (a, b)
            if y is None:
                y, arg = v, np.zeros(v.shape, np.int64)
                continue
            lead = (v > y) | (np.isnan(v) & ~np.isnan(y))  # strict: the first max stays
            y[lead] = v[lead]
            arg[lead] = a * Kw + b
    # the winner's position in its map, as a flat index h·W + w
    h = ih[np.arange(Ho)[:, None], arg // Kw]
    w = iw[np.arange(Wo)[None, :], arg % Kw]
    cache = {"kernel": "reference", "x_shape": x.shape, "at": h * W + w}
    return y, cache


def adaptive_max_pool2d_backward(dy: np.ndarray, cache: dict) -> np.ndarray:
    """Route each δ to its window's winner, summing where windows share it."""
    N, C, H, W = cache["x_shape"]
    # global flat index of every winner: map (n, c) starts at (n·C + c)·H·W
    at = cache["at"] + (np.arange(N * C) * (H * W)).reshape(N, C, 1, 1)
    dx = np.bincount(at.ravel(), weights=dy.ravel(), minlength=N * C * H * W)
    return dx.reshape(N, C, H, W).astype(dy.dtype, copy=False)
