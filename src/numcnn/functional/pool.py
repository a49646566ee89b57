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
from .workspace import Workspace, empty_ordered, get_workspace, memory_order


def _offsets(kh: int, kw: int):
    return [(i, j) for i in range(kh) for j in range(kw)]


def _grad_buffer(cache: dict, dtype: np.dtype) -> tuple[np.ndarray, bool]:
    """Zeroed (padded) gradient planes; fresh when it can be returned without a copy."""
    N, C, H, W = cache["x_shape"]
    kh, kw = cache["pool"]
    sh, sw = cache["stride"]
    pt, pb, pl, pr = cache["pads"]
    Ho, Wo = cache["out_hw"]
    if pt or pb or pl or pr:
        return cache["ws"].zeros("dxp", (N, C, H + pt + pb, W + pl + pr), dtype), True
    tiled = (sh, sw) == (kh, kw) and Ho * sh == H and Wo * sw == W
    return empty_ordered((N, C, H, W), dtype, cache["order"], zero=not tiled), False


def _grad_output(dxp: np.ndarray, padded: bool, cache: dict) -> np.ndarray:
    """Strip the padding (into a fresh array laid out like the forward input)."""
    if not padded:
        return dxp
    N, C, H, W = cache["x_shape"]
    pt, _, pl, _ = cache["pads"]
    dx = empty_ordered((N, C, H, W), dxp.dtype, cache["order"])
    dx[...] = dxp[:, :, pt : pt + H, pl : pl + W]
    return dx


#: inputs at least this large keep the 2×2 winner comparisons in training (the backward
#: pass then need not re-read ``x``, by then out of the L2 cache); for smaller inputs the
#: three extra comparisons cost about what they save (LeNet-5's second pooling, 0.8 MB).
WINNERS_MIN_BYTES = 1 << 20


def max_pool2d_forward(
    x: np.ndarray,
    pool: tuple[int, int],
    stride: tuple[int, int],
    pads: tuple[int, int, int, int] = (0, 0, 0, 0),
    ws: Workspace | None = None,
    winners: bool = False,
) -> tuple[np.ndarray, dict]:
    """Max pooling: ``y[n, c, p, q] = max over the window at (p·sh, q·sw) of x_padded``.

    Padding is with −∞, so padded positions never win (PyTorch's convention). Ties go to the
    first offset in row-major window order, as in PyTorch. The forward pass is
    ``np.maximum`` over the ``kh·kw`` strided slabs; the arg-max is recovered in the backward
    pass by comparing each slab with ``y``.

    With ``winners`` (training) a 2×2 stride-2 unpadded pooling of an input of at least
    :data:`WINNERS_MIN_BYTES` also keeps, while ``x`` is in the cache, the three comparisons
    of a knock-out round that name the first maximum of each window ``(x0, x1 / x2, x3)``:
    ``c01 = [x1 > x0]``, ``c23 = [x3 > x2]`` and ``c = [y > max(x0, x1)]`` (the winner is
    in the second row). Strict comparisons keep the first of tied values, so the backward
    pass routes exactly as before without reading ``x`` again.

    Args:
        x: (N, C, H, W). pool: (kh, kw). stride: (sh, sw). pads: (top, bottom, left, right).
        ws: workspace for the padded input and the comparisons.
        winners: keep the 2×2 comparisons for the backward pass.

    Returns:
        ``(y, cache)``, y of shape (N, C, Ho, Wo), laid out in memory like ``x`` (so a
        convolution's batch-innermost output stays batch-innermost).

    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> max_pool2d_forward(x, (2, 2), (2, 2))[0][0, 0]
    array([[ 5.,  7.],
           [13., 15.]])
    """
    ws = get_workspace(ws)
    N, C, H, W = x.shape
    kh, kw = pool
    Ho, Wo = conv_output_hw((H, W), pool, stride, pads)
    order = memory_order(x)
    xp = pad_input(x, pads, ws, "xp", fill=-np.inf)
    offs = _offsets(kh, kw)
    y = empty_ordered((N, C, Ho, Wo), x.dtype, order)
    knockout = None
    if (winners and pool == (2, 2) and tuple(stride) == (2, 2) and not any(pads)
            and x.nbytes >= WINNERS_MIN_BYTES):
        x0, x1, x2, x3 = (window(xp, i, j, (Ho, Wo), stride) for i, j in offs)
        c01, c23, c = _stacked(ws, "knockout", 3, y.shape, np.bool_, order)
        m01 = np.maximum(x0, x1, out=ws.empty_ordered("m01", y.shape, x.dtype, order))
        np.maximum(m01, x2, out=y)  # the same three maxima, in the same order, as below
        np.maximum(y, x3, out=y)
        np.greater(x1, x0, out=c01)
        np.greater(x3, x2, out=c23)
        np.greater(y, m01, out=c)
        knockout = (c01, c23, c)
    elif len(offs) == 1:
        y[...] = window(xp, 0, 0, (Ho, Wo), stride)
    else:
        np.maximum(window(xp, *offs[0], (Ho, Wo), stride),
                   window(xp, *offs[1], (Ho, Wo), stride), out=y)
        for i, j in offs[2:]:
            np.maximum(y, window(xp, i, j, (Ho, Wo), stride), out=y)
    cache = {"xp": xp, "y": y, "order": order, "out_hw": (Ho, Wo), "x_shape": x.shape,
             "pool": pool, "stride": stride, "pads": pads, "ws": ws, "knockout": knockout}
    return y, cache


def _stacked(ws: Workspace, name: str, k: int, shape: tuple[int, ...], dtype: np.dtype,
             order: tuple[int, ...]) -> np.ndarray:
    """``k`` scratch arrays of ``shape`` laid out like ``order``, from one workspace buffer."""
    return ws.empty_ordered(name, (k, *shape), dtype, (0, *(a + 1 for a in order)))


def max_pool2d_backward(dy: np.ndarray, cache: dict, relu: bool = False) -> np.ndarray:
    """Route each ``dy`` to the input position that won its window (summing on overlaps).

    The winner of a window is the first offset ``k`` (row-major) whose slab equals ``y``;
    ``r`` holds the part of ``dy`` not yet routed: ``dx_k = r · [x_k = y]``, ``r ← r − dx_k``
    (exact: each element of ``r`` is either kept or zeroed).

    With ``relu=True`` the forward input was a ReLU output ``x = max(z, 0)`` and the gradient
    with respect to ``z`` is returned: ``dz = dx · 1[x > 0]``. It is computed at pooled
    resolution, routing ``r = dy · 1[y > 0]``: a winner has ``x = y``, so ``1[x > 0]`` is
    ``1[y > 0]`` wherever anything is routed, and every other position gets 0 either way —
    the same values as the pooling backward followed by ReLU's, a quarter of the work.

    Args:
        dy: (N, C, Ho, Wo). cache: from :func:`max_pool2d_forward`.
        relu: the input was ``max(z, 0)``; apply ReLU's derivative too.

    Returns:
        dx of shape (N, C, H, W), laid out in memory like the forward input.
    """
    kh, kw = cache["pool"]
    stride = cache["stride"]
    xp, y = cache["xp"], cache["y"]
    out_hw = cache["out_hw"]
    order = cache["order"]
    ws: Workspace = cache["ws"]
    overlap = stride[0] < kh or stride[1] < kw
    dxp, padded = _grad_buffer(cache, dy.dtype)
    offs = _offsets(kh, kw)
    mask = ws.empty_ordered("mask", y.shape, np.bool_, order)
    if cache.get("knockout") is not None:
        # 2x2 winners from the forward comparisons; ``live`` excludes NaN windows (which
        # match no offset above) or, with ``relu``, the windows whose maximum is 0
        c01, c23, c = cache["knockout"]
        live, top, bottom = _stacked(ws, "rows", 3, y.shape, np.bool_, order)
        if relu:
            np.greater(y, 0, out=live)
        else:
            np.equal(y, y, out=live)
        np.greater(live, c, out=top)  # live & ~c
        np.logical_and(live, c, out=bottom)
        for (i, j), row, code, second in zip(offs, (top, top, bottom, bottom), (c01, c01, c23, c23),
                                             (False, True, False, True)):
            # first of the pair: row & ~code; second: row & code
            (np.logical_and if second else np.greater)(row, code, out=mask)
            np.multiply(dy, mask, out=window(dxp, i, j, cache["out_hw"], stride))
        return _grad_output(dxp, padded, cache)
    part = ws.empty_ordered("part", y.shape, dy.dtype, order) if overlap else None
    rest = ws.empty_ordered("rest", y.shape, dy.dtype, order) if len(offs) > 1 else None
    r = dy
    if relu:
        np.greater(y, 0, out=mask)
        r = np.multiply(dy, mask, out=ws.empty_ordered("relu_dy", y.shape, dy.dtype, order))
    for k, (i, j) in enumerate(offs):
        np.equal(window(xp, i, j, out_hw, stride), y, out=mask)
        target = window(dxp, i, j, out_hw, stride)
        if overlap:
            np.multiply(r, mask, out=part)
            target += part
        else:
            np.multiply(r, mask, out=target)
            part = target
        if k < len(offs) - 1:
            np.subtract(r, part, out=rest)
            r = rest
    return _grad_output(dxp, padded, cache)


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
        ``(y, cache)``, y of shape (N, C, Ho, Wo), laid out in memory like ``x``.
    """
    ws = get_workspace(ws)
    N, C, H, W = x.shape
    kh, kw = pool
    Ho, Wo = conv_output_hw((H, W), pool, stride, pads)
    order = memory_order(x)
    xp = pad_input(x, pads, ws, "xp")
    offs = _offsets(kh, kw)
    y = empty_ordered((N, C, Ho, Wo), x.dtype, order)
    y[...] = window(xp, *offs[0], (Ho, Wo), stride)
    for i, j in offs[1:]:
        y += window(xp, i, j, (Ho, Wo), stride)
    div = window_counts((H, W), pool, stride, pads, count_include_pad, x.dtype)
    y /= div
    cache = {"div": div, "order": order, "out_hw": (Ho, Wo), "x_shape": x.shape,
             "pool": pool, "stride": stride, "pads": pads, "ws": ws}
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
    kh, kw = cache["pool"]
    stride = cache["stride"]
    out_hw = cache["out_hw"]
    g = dy / cache["div"]
    dxp, padded = _grad_buffer(cache, dy.dtype)
    overlap = stride[0] < kh or stride[1] < kw
    for i, j in _offsets(kh, kw):
        target = window(dxp, i, j, out_hw, stride)
        if overlap:
            target += g
        else:
            target[...] = g  # each input position is under one window at most
    return _grad_output(dxp, padded, cache)


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
    ws: Workspace | None = None,
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
    ws = get_workspace(ws)
    kh, kw = pool
    N, C, H, W = x.shape
    Ho, Wo = conv_output_hw((H, W), pool, stride, pads)
    v = np.abs(x) if abs_input else x
    vp = np.square(v) if p == 2 else np.power(v, p)
    vpp = pad_input(vp, pads, ws, "lp_xp")
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
             "stride": stride, "pads": pads, "ws": ws}
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
    ws: Workspace = cache["ws"]
    zero = y == 0
    ysafe = np.where(zero, x.dtype.type(1), y)
    g = dy / ysafe if p == 2 else dy * np.power(ysafe, 1.0 - p)
    if K != 1:
        g /= x.dtype.type(K)
    g[zero] = 0
    dxp = ws.zeros("lp_dxp", (N, C, H + pt + pb, W + pl + pr), dy.dtype)
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
    ws: Workspace | None = None,
) -> tuple[np.ndarray, dict]:
    """Weighted average pooling: ``y[n, c, p, q] = Σ_ij w_ij · x_padded[n, c, p·sh+i, q·sw+j]``.

    The same fixed weights (e.g. :func:`gaussian_pool_weights`) are used for every window and
    channel; zero padding counts as zeros.

    Args:
        x: (N, C, H, W). weights: (kh, kw). stride: (sh, sw). pads: (top, bottom, left, right).

    Returns:
        ``(y, cache)``, y of shape (N, C, Ho, Wo).
    """
    ws = get_workspace(ws)
    kh, kw = weights.shape
    N, C, H, W = x.shape
    Ho, Wo = conv_output_hw((H, W), (kh, kw), stride, pads)
    w = weights.astype(x.dtype)
    xp = pad_input(x, pads, ws, "wp_xp")
    y = np.zeros((N, C, Ho, Wo), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            y += w[i, j] * window(xp, i, j, (Ho, Wo), stride)
    cache = {"w": w, "x_shape": x.shape, "stride": stride, "pads": pads, "ws": ws}
    return y, cache


def weighted_pool2d_backward(dy: np.ndarray, cache: dict) -> np.ndarray:
    """Spread ``w_ij · dy`` back to each window position ``(i, j)`` (summing on overlaps)."""
    w = cache["w"]
    kh, kw = w.shape
    N, C, H, W = cache["x_shape"]
    pt, pb, pl, pr = cache["pads"]
    ws: Workspace = cache["ws"]
    dxp = ws.zeros("wp_dxp", (N, C, H + pt + pb, W + pl + pr), dy.dtype)
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
