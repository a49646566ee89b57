"""Fast 2-D convolution: im2col blocks, row fields and a row-by-row input gradient.

The same arithmetic as the readable :mod:`numcnn.functional.conv`, re-ordered for speed:

* the batch is the innermost axis internally (``(C, H, W, N)`` memory, handed on as an NCHW
  view), so every im2col copy and col2im add moves contiguous runs of N values;
* the im2col matrix is built a block of output rows at a time, multiplied and (in backward)
  scattered back while it is still in the cache (:data:`tuning.BLOCK_BYTES`);
* for rows of a few thousand columns, *row fields* — one copy of the input with its ``kw``
  column shifts, built straight from the unpadded input — give every output row's im2col
  matrix as a slice; all rows' products run as one batched ``np.matmul``, and the backward
  pass builds the fields again for ``dW`` (:mod:`.conv_rows`);
* the input gradient (the course's full convolution with the rotated kernel) is computed one
  output row at a time as one product per column phase whose inner sum runs over the
  kernels and kernel columns, added straight onto the unpadded input rows;
* a kernel that covers the whole input (LeNet-5's C5) is one product on the input itself;
* a grouped convolution (``groups = G``) uses the same buffers: with the channels outermost,
  the rows of every im2col matrix and of the output are group-major, so each product is
  ``G`` stacked per-group products (one ``np.matmul`` over a leading group axis).

Scratch buffers and outputs come from the caller's :class:`Workspace`. The padded input, the
row fields and the im2col blocks are *fresh* arrays of its pool, shared by all call sites of
a model. The cache holds the unpadded input (kept anyway: the previous layer's output) and,
for a layer with few kernels, small row fields (:data:`tuning.KEEP_FIELD_BYTES`: LeNet-5's);
otherwise the backward pass builds the row fields (or pads the input) again where it needs
them (one copy each, against keeping 3× every layer's input until the backward pass). A
kept array is referenced by the cache, so no later call can take it and no cache can go
stale, and every other buffer — all of them in an inference pass — is re-used by the next
layer instead of being kept per layer.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..conv import group_sizes
from ..geometry import conv_output_hw
from . import tuning
from .conv_chunks import chunk_columns, chunked_forward
from .conv_rows import (
    dx_by_rows,
    fields_forward,
    fields_order,
    fields_weight_grad,
    row_fields,
    use_row_gemm,
)
from .tuning import (
    BLOCK_BYTES,
    MACS_PER_VALUE,
    MAX_BLOCK_BYTES,
    MAX_COLS,
    MAX_FIELD_BYTES,
    MIN_COLS_PER_FILTER,
    MIN_FIELD_COLS,
    ROW_SPLIT_BYTES,
)
from .workspace import Workspace, get_workspace

# the row-wise strategies under the names the strategy spies of the tests patch
_row_fields, _dx_by_rows = row_fields, dx_by_rows


def _use_row_gemm(C: int, F: int, kh: int, kw: int, Wo: int, Wp: int,
                  stride: tuple[int, int]) -> bool:
    """Whether the input gradient is computed row by row (:func:`conv_rows.use_row_gemm`,
    weighed with :data:`MACS_PER_VALUE`; ``Wp`` the padded width) rather than by col2im."""
    return use_row_gemm(C, F, kh, kw, Wo, Wp, stride, MACS_PER_VALUE)


def _hwn(x: np.ndarray) -> np.ndarray:
    """``x`` (N, C, H, W) seen as (C, H, W, N): the batch-innermost order used internally."""
    return x.transpose(1, 2, 3, 0)


def _nchw(a: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_hwn`: a (C, H, W, N) array seen as (N, C, H, W)."""
    return a.transpose(3, 0, 1, 2)


def _block_bytes(K: int, F: int, itemsize: int) -> int:
    """Bytes of im2col columns per block: :data:`BLOCK_BYTES` (a cache-sized block), or for
    many kernels ``F`` enough for :data:`MIN_COLS_PER_FILTER`·F columns — every block's
    product repacks the (F, K) kernel matrix and the weight gradient adds a (K, F) product
    per block, which should stay small next to the block's (K, columns) — at most
    :data:`MAX_BLOCK_BYTES`."""
    return min(MAX_BLOCK_BYTES, max(BLOCK_BYTES, K * MIN_COLS_PER_FILTER * F * itemsize))


def _blocks(Ho: int, Wo: int, K: int, N: int, itemsize: int,
            F: int = 0) -> list[tuple[int, int, int, int]]:
    """``(row, n_rows, col, n_cols)`` blocks of output positions, each about
    :func:`_block_bytes` of columns and at most :data:`MAX_COLS` columns (or
    ``MIN_COLS_PER_FILTER·F`` if more): whole rows, or parts of single rows for huge rows."""
    budget = _block_bytes(K, F, itemsize)
    max_cols = max(MAX_COLS, MIN_COLS_PER_FILTER * F)
    per_pos = max(1, K * N * itemsize)
    if Wo * per_pos <= max(ROW_SPLIT_BYTES, budget) and Wo * N <= max_cols:
        R = max(1, min(Ho, budget // (Wo * per_pos), max_cols // (Wo * N)))
        return [(a, min(R, Ho - a), 0, Wo) for a in range(0, Ho, R)]
    Q = max(1, min(budget // per_pos, max_cols // N))
    return [(a, 1, q, min(Q, Wo - q)) for a in range(Ho) for q in range(0, Wo, Q)]


def _cols_buffer(blocks: list[tuple[int, int, int, int]], K: int, N: int, dtype: Any,
                 ws: Workspace) -> np.ndarray:
    """One fresh flat buffer for the largest block's (K, R·Q·N) columns; every block of the
    loop is a view of it (:func:`_take`)."""
    return ws.fresh((K * N * max(R * Q for _, R, _, Q in blocks),), dtype)


def _take(buf: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The first ``prod(shape)`` values of the flat ``buf`` seen as ``shape``."""
    return buf[: math.prod(shape)].reshape(shape)


def _im2col_block(xp: np.ndarray, cols: np.ndarray, a: int, q: int,
                  stride: tuple[int, int]) -> np.ndarray:
    """Fill ``cols`` (C, kh, kw, R, Q, N) with the receptive fields of output rows a..a+R−1,
    columns q..q+Q−1.

    ``cols[c, i, j, r, u, n] = xp[c, (a + r)·sh + i, (q + u)·sw + j, n]``: one strided view of
    ``xp`` (no data moved) copied in a single call, instead of one copy per kernel offset.
    Returns the (C·kh·kw, R·Q·N) matrix view.
    """
    C, kh, kw, R, Q, N = cols.shape
    sh, sw = stride
    sC, sH, sW, sN = xp.strides
    fields = as_strided(xp[:, a * sh :, q * sw :], shape=cols.shape,
                        strides=(sC, sH, sW, sH * sh, sW * sw, sN), writeable=False)
    np.copyto(cols, fields)
    return cols.reshape(C * kh * kw, R * Q * N)


def _g(a: np.ndarray, G: int) -> np.ndarray:
    """The (rows, cols) matrix ``a`` as ``G`` stacked (rows/G, cols) matrices — its rows are
    group-major — or ``a`` itself when ``G == 1`` (one plain product)."""
    return a if G == 1 else a.reshape(G, a.shape[0] // G, a.shape[1])


def _block_view(a4: np.ndarray, a: int, R: int, q: int, Q: int) -> np.ndarray:
    """(F, R·Q·N) matrix view of ``a4[:, a:a+R, q:q+Q]`` for a (F, Ho, Wo, N) array."""
    F, _, _, N = a4.shape
    v = a4[:, a : a + R, q : q + Q].reshape(F, R * Q * N)
    assert v.base is not None  # a view by construction (whole rows, or one row)
    return v


def conv2d_forward(
    x: np.ndarray,
    W: np.ndarray,
    b: np.ndarray | None,
    stride: tuple[int, int] = (1, 1),
    pads: tuple[int, int, int, int] = (0, 0, 0, 0),
    ws: Workspace | None = None,
    groups: int = 1,
    relu: str | None = None,
) -> tuple[np.ndarray, dict]:
    """Convolution forward pass.

    Args:
        x: input, shape (N, C, H, W) (any memory layout).
        W: kernels, shape (F, C/G, kh, kw).
        b: bias, shape (F,), or None.
        stride: (sh, sw).
        pads: explicit (top, bottom, left, right) zero padding.
        ws: the call site's workspace (scratch buffers and outputs re-used across calls of
            the same shape); a throw-away one when None.
        groups: G; kernel ``f`` reads the input maps of its group ``f // (F/G)`` only.
        relu: ``"grad"`` or ``"forward"``: return ``max(y, 0)``, applied to each block of
            the output while it is in cache (a ReLU fused by a graph pass); with ``"grad"``
            the backward pass takes the gradient of that and applies ``1[y > 0]`` first.

    Returns:
        ``(y, cache)`` with y of shape (N, F, Ho, Wo), ``Ho = (H + pt + pb − kh) // sh + 1``.
        ``y`` is an NCHW *view* of (F, Ho, Wo, N) memory — batch innermost. Element-wise
        layers and pooling keep that layout, and the next convolution reads it without a
        transpose.

    Shape:
        The im2col matrix is ``(C·kh·kw, Ho·Wo·N)`` and the product is
        ``(F, C·kh·kw) @ (C·kh·kw, Ho·Wo·N)``, computed in blocks of output rows whose
        columns fit in the cache (:data:`BLOCK_BYTES`). With the batch innermost, every
        im2col copy, col2im add and pooling slab moves contiguous runs of N values. Rows of
        512–4096 columns ``Wo·N`` (batches of about 32–128 for LeNet-5) use the row fields
        of :func:`_row_fields` instead: one copy of ``kw`` shifted inputs whose slices are
        the im2col matrices, one product per output row, re-used by the backward pass.
        With ``G`` groups every product is ``(G, F/G, C/G·kh·kw) @ (G, C/G·kh·kw, M)``.

    >>> x = np.array([[1, 2, 3, 0], [0, 1, 2, 3], [3, 0, 1, 2], [2, 3, 0, 1]], float)
    >>> k = np.array([[2, 0, 1], [0, 1, 2], [1, 0, 2]], float)
    >>> conv2d_forward(x[None, None], k[None, None], None)[0][0, 0]
    array([[15., 16.],
           [ 6., 15.]])
    """
    ws = get_workspace(ws)
    N, C, H, Wd = x.shape
    F, Cw, kh, kw = W.shape
    G = groups
    if G == 1 and Cw != C:
        raise ValueError(f"kernel expects {Cw} input channels; input has {C} (shape {x.shape})")
    if G != 1:
        group_sizes(C, W.shape, G)
    Ho, Wo = conv_output_hw((H, Wd), (kh, kw), stride, pads)
    pt, pb, pl, pr = pads
    K = C * kh * kw
    W2 = _g(W.reshape(F, Cw * kh * kw), G)
    bias = None if b is None else _g(b.reshape(F, 1), G)
    y4 = ws.fresh((F, Ho, Wo, N), np.result_type(x, W))
    cache = {"kernel": "fast", "x": x, "W": W, "x_shape": x.shape, "stride": stride,
             "pads": pads, "ws": ws, "fields": None,
             "whole": (H + pt + pb, Wd + pl + pr) == (kh, kw), "groups": G,
             "relu_y": _nchw(y4) if relu == "grad" else None}
    nbytes = (H + pt + pb) * C * kw * Wo * N * x.itemsize  # the row fields' size
    if _use_row_fields(Wo, N, nbytes) and not cache["whole"]:
        Q = chunk_columns(F, K, Wo, N) if G == 1 else 0
        if Q and nbytes > tuning.KEEP_FIELD_BYTES:
            # a few output columns at a time, in cache; the backward pass builds whole rows
            chunked_forward(x, fields_order(W), b, y4, kh, kw, stride, pads, ws, Q, bool(relu))
            cache["fields"] = True
            return _nchw(y4), cache
        fields = _row_fields(x, kh, kw, Wo, stride, pads, ws, G)
        fields_forward(fields, fields_order(W, G), b, y4, kh, stride[0], G, bool(relu))
        # small fields of a layer with few kernels stay for dW (a fresh array: nothing else
        # can take it while the cache holds it); others are built again by the backward pass
        keep = fields.nbytes <= tuning.KEEP_FIELD_BYTES and F * kh <= tuning.KEEP_FIELD_MACS
        cache["fields"] = fields if keep else True
        return _nchw(y4), cache
    xp = _padded_input(x, pads, ws)  # (C, Hp, Wp, N)
    if cache["whole"]:
        # the kernel covers the whole (padded) input (LeNet-5's C5): the im2col matrix is the
        # input itself, (C·kh·kw, N) in (c, i, j) row order — one product, no copy
        out = np.matmul(W2, _g(xp.reshape(K, N), G), out=_g(y4.reshape(F, N), G))
        if b is not None:
            out += bias
        if relu:
            np.maximum(out, 0, out=out)
        return _nchw(y4), cache
    blocks = _blocks(Ho, Wo, K, N, x.itemsize, F)
    buf = _cols_buffer(blocks, K, N, x.dtype, ws)
    for a, R, q, Q in blocks:
        cols = _im2col_block(xp, _take(buf, (C, kh, kw, R, Q, N)), a, q, stride)
        # (F, C*kh*kw) @ (C*kh*kw, R*Q*N) -> output rows a .. a+R-1, columns q .. q+Q-1
        # (G groups: (G, F/G, C/G*kh*kw) @ (G, C/G*kh*kw, R*Q*N))
        out = np.matmul(W2, _g(cols, G), out=_g(_block_view(y4, a, R, q, Q), G))
        if b is not None:
            out += bias  # while the block is still in cache
        if relu:
            np.maximum(out, 0, out=out)
    return _nchw(y4), cache  # (N, F, Ho, Wo) view


def _padded_input(x: np.ndarray, pads: tuple[int, int, int, int],
                  ws: Workspace) -> np.ndarray:
    """``x`` (N, C, H, W) as zero-padded (C, Hp, Wp, N) memory: a fresh array of the pool
    (tagged with the pads: the border is written only when the array is made, and other
    pads give the same padded shape — padding="same", stride 2: inputs 5 and 6), or ``x``'s
    own memory when unpadded and already batch-innermost.

    The cache keeps ``x``, not this copy (``x`` is kept anyway: it is the previous layer's
    output, held by that layer's cache); the backward pass pads again where it needs it."""
    N, C, H, Wd = x.shape
    pt, pb, pl, pr = pads
    xp = _hwn(x)
    if pt or pb or pl or pr:
        xp = ws.fresh((C, H + pt + pb, Wd + pl + pr, N), x.dtype, ("xp", tuple(pads)), 0.0)
        xp[:, pt : pt + H, pl : pl + Wd] = _hwn(x)
    elif not xp.flags.c_contiguous and N > 1:
        # e.g. an NCHW input: one transposing copy, so im2col reads runs of N values
        xp = ws.fresh(xp.shape, x.dtype)
        xp[...] = _hwn(x)
    return xp


def _use_row_fields(Wo: int, N: int, nbytes: int) -> bool:
    """Row fields (``nbytes`` large) for rows of ``MIN_FIELD_COLS``–``MAX_COLS`` columns, up
    to ``MAX_FIELD_BYTES``. With one input channel their rows keep im2col's ``(c, i, j)``
    order, so the sums are the same; with several channels each output sums its products
    in ``(i, c, j)`` order, which changes results by float rounding only."""
    return MIN_FIELD_COLS <= Wo * N <= MAX_COLS and nbytes <= MAX_FIELD_BYTES


def conv2d_backward(
    dy: np.ndarray,
    cache: dict,
    need_dx: bool = True,
    need_dW: bool = True,
    need_db: bool = True,
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Convolution backward pass from the sensitivity map ``dy = dL/dy``.

    The im2col columns are rebuilt block by block (cheaper than keeping the full matrix:
    the block stays in cache for both products): ``dW += δ_block · cols_blockᵀ`` and
    ``dcols = Wᵀ · δ_block``, which col2im adds straight back onto the input rows.

    Args:
        dy: (N, F, Ho, Wo) (any memory layout).
        cache: from :func:`conv2d_forward`.
        need_dx, need_dW, need_db: compute only the gradients asked for.

    Returns:
        ``(dx, dW, db)`` with shapes (N, C, H, W), (F, C/G, kh, kw), (F,); None where not
        asked. ``dx`` is a fresh array, an NCHW view of (C, H, W, N) memory.
    """
    W = cache["W"]
    G = cache.get("groups", 1)
    stride = cache["stride"]
    ws: Workspace = cache["ws"]
    N, C, H, Wd = cache["x_shape"]
    F, Cg, kh, kw = W.shape
    K = C * kh * kw
    Kg = Cg * kh * kw  # one group's im2col rows (K when G == 1)
    Ho, Wo = dy.shape[2:]
    dyc = _hwn(dy)  # (F, Ho, Wo, N)
    if cache.get("relu_y") is not None:  # the fused ReLU's derivative, 1[y > 0]
        mask = np.greater(_hwn(cache["relu_y"]), 0,
                          out=ws.fresh(dyc.shape, np.bool_))
        dyc = np.multiply(_hwn(dy), mask, out=ws.fresh(dyc.shape, dy.dtype))
    elif not dyc.flags.c_contiguous:
        dyc = ws.fresh(dyc.shape, dy.dtype)
        dyc[...] = _hwn(dy)
    dt = np.result_type(dy, W)
    db = dyc.reshape(F, -1).sum(axis=1) if need_db else None
    pt, pb, pl, pr = cache["pads"]
    padded = pt or pb or pl or pr
    fields = None
    xp = None
    if need_dW and isinstance(cache.get("fields"), np.ndarray):
        fields = cache["fields"]  # kept by the forward pass
    elif need_dW and cache.get("fields"):
        fields = _row_fields(cache["x"], kh, kw, Wo, stride, cache["pads"], ws, G)
    elif cache.get("whole") or need_dW:
        xp = _padded_input(cache["x"], cache["pads"], ws)
    if cache.get("whole"):
        return _whole_backward(dyc.reshape(F, N), xp, W, cache, need_dx, need_dW) + (db,)
    # dWᵀ accumulated as (C*kh*kw, F), or (G, C/G*kh*kw, F/G) for G groups
    dWt = np.zeros((K, F) if G == 1 else (G, Kg, F // G), dt) if need_dW else None
    dx = dxp = None
    rows_dx = False
    if need_dx:
        rows_dx = _use_row_gemm(C, F, kh, kw, Wo, Wd + pl + pr, stride)
        if rows_dx:  # straight into the unpadded gradient
            dx = ws.fresh_ordered((C, H, Wd, N), dt, zero=True)
            _dx_by_rows(dyc, W, dx, stride, cache["pads"], ws, G)
        else:
            dxp = ws.fresh_ordered((C, H + pt + pb, Wd + pl + pr, N), dt, zero=True)
            W2t = _g(W.reshape(F, Kg), G).swapaxes(-1, -2)  # (C*kh*kw, F) or (G, Kg, F/G)
    if need_dW and fields is not None:
        # dWᵀ in the fields' (kh, C, kw) row order, then in im2col's (C, kh, kw)
        dWt = fields_weight_grad(fields, dyc, kh, stride[0], G).astype(dt, copy=False)
        lead = dWt.shape[:-2]  # (G,) with groups
        dWt = dWt.reshape(lead + (kh, Cg, kw, -1)).swapaxes(-4, -3).reshape(dWt.shape)
    fields_dW = fields is not None
    if (need_dW and not fields_dW) or (need_dx and not rows_dx):
        blocks = _blocks(Ho, Wo, K, N, W.itemsize, F)
        if need_dW and not fields_dW:
            buf = _cols_buffer(blocks, K, N, xp.dtype, ws)
        if need_dx and not rows_dx:
            dbuf = _cols_buffer(blocks, K, N, dt, ws)
        for a, R, q, Q in blocks:
            d = _block_view(dyc, a, R, q, Q)  # (F, R*Q*N)
            if need_dW and not fields_dW:
                cols = _im2col_block(xp, _take(buf, (C, kh, kw, R, Q, N)), a, q, stride)
                # (C*kh*kw, R*Q*N) @ (R*Q*N, F), or G stacked per-group products
                dWt += _g(cols, G) @ _g(d, G).swapaxes(-1, -2)
            if need_dx and not rows_dx:
                dcols = _take(dbuf, (K, R * Q * N))
                np.matmul(W2t, _g(d, G), out=_g(dcols, G))  # (C*kh*kw, F) @ (F, R*Q*N)
                dcols = dcols.reshape(C, kh, kw, R, Q, N)
                sh, sw = stride
                for r in range(R):
                    top = (a + r) * sh
                    for j in range(kw):
                        # col2im: the kh kernel rows of one output row land on kh distinct
                        # input rows, so they are added in one call: (C, kh, Q, N) slabs
                        c = q * sw + j
                        dxp[:, top : top + kh, c : c + sw * (Q - 1) + 1 : sw] += dcols[:, :, j, r]
    dW = dWt.swapaxes(-1, -2).reshape(W.shape) if need_dW else None
    if need_dx and not rows_dx:
        if padded:
            dx = ws.fresh((C, H, Wd, N), dt)
            dx[...] = dxp[:, pt : pt + H, pl : pl + Wd]
        else:
            dx = dxp
    return None if dx is None else _nchw(dx), dW, db


def _whole_backward(d: np.ndarray, xp: np.ndarray, W: np.ndarray, cache: dict, need_dx: bool,
                    need_dW: bool) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(dx, dW)`` when the kernel covers the whole padded input ``xp`` (C, kh, kw, N):
    ``dW = δ · colsᵀ`` and ``dcols = Wᵀ · δ`` with ``cols = xp`` as (C·kh·kw, N); ``dcols``
    is the padded input gradient itself (no col2im)."""
    F, Cg, kh, kw = W.shape
    C = xp.shape[0]
    G = cache.get("groups", 1)
    N = d.shape[1]
    ws: Workspace = cache["ws"]
    d = _g(d, G)  # (F, N), or (G, F/G, N)
    cols = _g(xp.reshape(C * kh * kw, N), G)
    dW = (d @ cols.swapaxes(-1, -2)).reshape(W.shape) if need_dW else None
    if not need_dx:
        return None, dW
    dt = np.result_type(d, W)
    dxp = ws.fresh((C, kh, kw, N), dt)
    np.matmul(_g(W.reshape(F, -1), G).swapaxes(-1, -2), d, out=_g(dxp.reshape(-1, N), G))
    pt, pb, pl, pr = cache["pads"]
    _, _, H, Wd = cache["x_shape"]
    if pt or pb or pl or pr:
        dx = ws.fresh((C, H, Wd, N), dt)
        dx[...] = dxp[:, pt : pt + H, pl : pl + Wd]
        return _nchw(dx), dW
    return _nchw(dxp), dW
