"""Fast max and average pooling: strided slabs, batch-innermost layouts, kept comparisons.

The same results as the readable :mod:`numcnn.functional.pool` (Kronecker up-sampling of the
sensitivity map), computed over the ``kh·kw`` strided slabs of the input that sit under each
window offset, in the input's own memory layout (a convolution's batch-innermost output stays
batch-innermost). For 2×2 stride-2 windows the forward pass is ``np.maximum`` over four
slices, and in training it can keep the three knock-out comparisons that name each window's
winner, so the backward pass routes δ without re-reading the input. With ``relu=True`` the
backward pass also applies the derivative of a ReLU that produced the input, at pooled
resolution — the fusion the graph engine applies where a ReLU feeds only this pooling.
"""

from __future__ import annotations

import numpy as np

from ..geometry import ceil_pads, conv_output_hw, window
from .tuning import WINNERS_MIN_BYTES
from .workspace import Workspace, get_workspace, memory_order


def _offsets(kh: int, kw: int):
    return [(i, j) for i in range(kh) for j in range(kw)]


def pad_input(x: np.ndarray, pads: tuple[int, int, int, int], ws: Workspace, name: str,
              fill: float = 0.0) -> np.ndarray:
    """Copy ``x`` (N, C, H, W) into a buffer bordered by ``fill``, laid out in memory like
    ``x`` (a batch-innermost input stays batch-innermost: the copy and every window read
    contiguous runs); no copy if no pads.

    The buffer is a fresh array of the workspace's pool, tagged with the name, pads and
    layout: its border is filled only when it is made, and no other call takes it while a
    cache holds it."""
    pt, pb, pl, pr = pads
    if not (pt or pb or pl or pr):
        return x
    N, C, H, W = x.shape
    order = memory_order(x)
    shape = (N, C, H + pt + pb, W + pl + pr)
    buf = ws.fresh(tuple(shape[a] for a in order), x.dtype, (name, tuple(pads), order), fill)
    xp = buf.transpose(np.argsort(order))
    xp[:, :, pt : pt + H, pl : pl + W] = x
    return xp


def _grad_buffer(cache: dict, dtype: np.dtype) -> tuple[np.ndarray, bool]:
    """Zeroed (padded) gradient planes, laid out like the forward input; fresh when it can
    be returned without a copy."""
    N, C, H, W = cache["x_shape"]
    kh, kw = cache["pool"]
    sh, sw = cache["stride"]
    pt, pb, pl, pr = cache["pads"]
    Ho, Wo = cache["out_hw"]
    if pt or pb or pl or pr:
        shape = (N, C, H + pt + pb, W + pl + pr)
        return cache["ws"].fresh_ordered(shape, dtype, cache["order"], zero=True), True
    tiled = (sh, sw) == (kh, kw) and Ho * sh == H and Wo * sw == W
    return cache["ws"].fresh_ordered((N, C, H, W), dtype, cache["order"], zero=not tiled), False


def _grad_output(dxp: np.ndarray, padded: bool, cache: dict) -> np.ndarray:
    """Strip the padding (into a fresh array laid out like the forward input)."""
    if not padded:
        return dxp
    N, C, H, W = cache["x_shape"]
    pt, _, pl, _ = cache["pads"]
    dx = cache["ws"].fresh_ordered((N, C, H, W), dxp.dtype, cache["order"])
    dx[...] = dxp[:, :, pt : pt + H, pl : pl + W]
    return dx


def max_pool2d_forward(
    x: np.ndarray,
    pool: tuple[int, int],
    stride: tuple[int, int],
    pads: tuple[int, int, int, int] = (0, 0, 0, 0),
    ws: Workspace | None = None,
    winners: bool = False,
    ceil_mode: bool = False,
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
        ceil_mode: round the output size up; the overhang of the last windows is −∞ like
            the padding (:func:`~numcnn.functional.geometry.ceil_pads`).

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
    Ho, Wo = conv_output_hw((H, W), pool, stride, pads, ceil_mode)
    if ceil_mode:
        pads = ceil_pads((H, W), pool, stride, pads)
    order = memory_order(x)
    xp = pad_input(x, pads, ws, "xp", fill=-np.inf)
    offs = _offsets(kh, kw)
    y = ws.fresh_ordered((N, C, Ho, Wo), x.dtype, order)
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
    elif kh > 1 and kw > 1 and kh * kw > 4:
        _separable_max(xp, pool, stride, (Ho, Wo), y, ws, order)
    else:
        np.maximum(window(xp, *offs[0], (Ho, Wo), stride),
                   window(xp, *offs[1], (Ho, Wo), stride), out=y)
        for i, j in offs[2:]:
            np.maximum(y, window(xp, i, j, (Ho, Wo), stride), out=y)
    cache = {"kernel": "fast", "xp": xp, "y": y, "order": order, "out_hw": (Ho, Wo),
             "x_shape": x.shape, "pool": pool, "stride": stride, "pads": pads, "ws": ws,
             "generation": ws.begin(), "knockout": knockout}
    return y, cache


def _separable_max(xp: np.ndarray, pool: tuple[int, int], stride: tuple[int, int],
                   out_hw: tuple[int, int], y: np.ndarray, ws: Workspace,
                   order: tuple[int, ...]) -> None:
    """``y`` = the window maxima, taken along the width, then along the height (the max of
    a window is the max of its rows' maxima): ``kw − 1 + kh − 1`` passes instead of
    ``kh·kw − 1`` (ResNet's 3×3 stride-2 pooling: 4 instead of 8), and in a batch-innermost
    layout the height pass reads whole rows ``(Wo, N)`` at a time. Same values as the
    one-pass maximum (the backward pass finds the winners by comparing with ``y``)."""
    (kh, kw), (sh, sw), (Ho, Wo) = pool, stride, out_hw
    N, C = xp.shape[:2]
    Hs = sh * (Ho - 1) + kh  # the input rows the windows cover

    def cols(a: np.ndarray, j: int) -> np.ndarray:
        return a[:, :, :Hs, j : j + sw * (Wo - 1) + 1 : sw]

    t = ws.fresh_ordered((N, C, Hs, Wo), xp.dtype, order)
    np.maximum(cols(xp, 0), cols(xp, 1), out=t)
    for j in range(2, kw):
        np.maximum(t, cols(xp, j), out=t)

    def rows(i: int) -> np.ndarray:
        return t[:, :, i : i + sh * (Ho - 1) + 1 : sh]

    np.maximum(rows(0), rows(1), out=y)
    for i in range(2, kh):
        np.maximum(y, rows(i), out=y)


def _stacked(ws: Workspace, name: str, k: int, shape: tuple[int, ...], dtype: np.dtype,
             order: tuple[int, ...]) -> np.ndarray:
    """``k`` scratch arrays of ``shape`` laid out like ``order``, from one workspace buffer."""
    return ws.empty_ordered(name, (k, *shape), dtype, (0, *(a + 1 for a in order)))


def max_pool2d_backward(dy: np.ndarray, cache: dict, relu: bool = False) -> np.ndarray:
    """Route each ``dy`` to the input position that won its window (summing on overlaps).

    The winner of a window is the first offset ``k`` (row-major) whose slab equals ``y``;
    ``r`` holds the part of ``dy`` not yet routed: ``dx_k = r · [x_k = y]``, ``r ← r − dx_k``
    (exact: each element of ``r`` is either kept or zeroed). A window whose maximum is NaN
    routes its ``dy`` to its first NaN, as the reference path (and PyTorch, for one NaN).

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
    ws.check(cache["generation"], "max_pool2d_backward")
    overlap = stride[0] < kh or stride[1] < kw
    dxp, padded = _grad_buffer(cache, dy.dtype)
    offs = _offsets(kh, kw)
    if len(offs) == 1:
        # a 1×1 window (ResNet's subsampling shortcut): its only input wins, NaN or not
        target = window(dxp, 0, 0, out_hw, stride)
        if relu:
            np.multiply(dy, np.greater(y, 0), out=target)
        else:
            target[...] = dy
        return _grad_output(dxp, padded, cache)
    mask = ws.empty_ordered("mask", y.shape, np.bool_, order)
    # NaN never equals itself: such windows are routed by the NaN-aware loop below (one
    # cheap reduction finds them; with ``relu`` they get 0 either way, as 1[NaN > 0] = 0)
    nan = None if relu or not y.size or not np.isnan(y.min()) else np.isnan(y)
    if cache.get("knockout") is not None and nan is None:
        # 2x2 winners from the forward comparisons (no NaN window here); ``live`` excludes,
        # with ``relu``, the windows whose maximum is 0
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
        slab = window(xp, i, j, out_hw, stride)
        np.equal(slab, y, out=mask)
        if nan is not None:
            mask |= np.isnan(slab) & nan
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
    ceil_mode: bool = False,
) -> tuple[np.ndarray, dict]:
    """Average pooling: ``y = (1 / d) · Σ_window x_padded`` with zero padding.

    ``d = kh·kw`` when ``count_include_pad`` (PyTorch's default), else the number of real
    (non-padding) inputs under each window. With ``ceil_mode`` the output size rounds up;
    the overhang of the last windows adds zeros and is left out of ``d``
    (:func:`window_counts`).

    Args:
        x: (N, C, H, W). pool: (kh, kw). stride: (sh, sw). pads: (top, bottom, left, right).

    Returns:
        ``(y, cache)``, y of shape (N, C, Ho, Wo), laid out in memory like ``x``.
    """
    ws = get_workspace(ws)
    N, C, H, W = x.shape
    kh, kw = pool
    Ho, Wo = conv_output_hw((H, W), pool, stride, pads, ceil_mode)
    div = window_counts((H, W), pool, stride, pads, count_include_pad, x.dtype, ceil_mode)
    if ceil_mode:
        pads = ceil_pads((H, W), pool, stride, pads)
    order = memory_order(x)
    xp = pad_input(x, pads, ws, "xp")
    offs = _offsets(kh, kw)
    y = ws.fresh_ordered((N, C, Ho, Wo), x.dtype, order)
    y[...] = window(xp, *offs[0], (Ho, Wo), stride)
    for i, j in offs[1:]:
        y += window(xp, i, j, (Ho, Wo), stride)
    y /= div
    cache = {"kernel": "fast", "div": div, "order": order, "out_hw": (Ho, Wo),
             "x_shape": x.shape, "pool": pool, "stride": stride, "pads": pads, "ws": ws}
    return y, cache


def window_counts(
    in_hw: tuple[int, int],
    pool: tuple[int, int],
    stride: tuple[int, int],
    pads: tuple[int, int, int, int],
    count_include_pad: bool,
    dtype: np.dtype,
    ceil_mode: bool = False,
) -> np.ndarray:
    """Divisor per output position: a scalar ``kh·kw`` array, or the count of the inputs
    (and, with ``count_include_pad``, the padding) under each window — which differs from
    ``kh·kw`` only where ``ceil_mode`` lets a window hang off the end."""
    kh, kw = pool
    full = ceil_pads(in_hw, pool, stride, pads) if ceil_mode else tuple(pads)
    if full == tuple(pads) and (count_include_pad or not any(pads)):
        return np.asarray(kh * kw, dtype=dtype)
    ones = np.ones((1, 1) + tuple(in_hw), dtype=dtype)
    onesp = np.pad(ones, ((0, 0), (0, 0), (pads[0], pads[1]), (pads[2], pads[3])),
                   constant_values=1 if count_include_pad else 0)
    # the overhang of ceil_mode's last windows counts for nothing
    onesp = np.pad(onesp, ((0, 0), (0, 0), (0, full[1] - pads[1]), (0, full[3] - pads[3])))
    out_hw = conv_output_hw(in_hw, pool, stride, pads, ceil_mode)
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
