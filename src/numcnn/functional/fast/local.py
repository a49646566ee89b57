"""Fast locally connected 2-D layer: the batch innermost, blocks of output positions.

The same sums as :mod:`numcnn.functional.local`, in the fast convolution's layout: the input
is seen as (C, H, W, N) (padded into a workspace buffer), the receptive fields of a block of
output positions are built by one strided copy whose inner runs are the N samples, and every
position's product ``(F, C·kh·kw) @ (C·kh·kw, N)`` is one slice of a stacked ``np.matmul``
over the block. The output is an NCHW view of (F, Ho, Wo, N) memory, as a convolution's.
Blocks hold about :data:`tuning.BLOCK_BYTES` of fields, so the scratch memory does not grow
with the image.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..local import check_local_shapes
from . import conv as fc
from .workspace import Workspace, get_workspace


def _fields(xp: np.ndarray, cols: np.ndarray, a: int, q: int,
            stride: tuple[int, int]) -> np.ndarray:
    """Fill ``cols`` (R, Q, C, kh, kw, N) with the receptive fields of output rows
    a..a+R−1, columns q..q+Q−1: ``cols[r, u, c, i, j, n] = xp[c, (a + r)·sh + i,
    (q + u)·sw + j, n]``. Returns the (R·Q, C·kh·kw, N) stack of per-position matrices."""
    R, Q, C, kh, kw, N = cols.shape
    sh, sw = stride
    sC, sH, sW, sN = xp.strides
    view = as_strided(xp[:, a * sh :, q * sw :], shape=cols.shape,
                      strides=(sH * sh, sW * sw, sC, sH, sW, sN), writeable=False)
    np.copyto(cols, view)
    return cols.reshape(R * Q, C * kh * kw, N)


def _positions(a4: np.ndarray, a: int, R: int, q: int, Q: int) -> np.ndarray:
    """(R·Q, F, N) view of ``a4[:, a:a+R, q:q+Q]`` for a (F, Ho, Wo, N) array, one (F, N)
    matrix per output position (whole rows, or part of one row: always a view)."""
    F, _, _, N = a4.shape
    v = a4[:, a : a + R, q : q + Q].transpose(1, 2, 0, 3).reshape(R * Q, F, N)
    assert np.may_share_memory(v, a4)  # a view, so that out= writes into a4
    return v


def locally_connected2d_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray | None,
                                stride: tuple[int, int] = (1, 1),
                                pads: tuple[int, int, int, int] = (0, 0, 0, 0),
                                ws: Workspace | None = None) -> tuple[np.ndarray, dict]:
    """Forward pass (see :func:`numcnn.functional.local.locally_connected2d_forward`).

    Args:
        x: input (N, C, H, W) (any memory layout). W: (Ho, Wo, F, C, kh, kw).
        b: (F, Ho, Wo) or None. stride: (sh, sw). pads: (top, bottom, left, right).
        ws: the call site's workspace; a throw-away one when None.

    Returns:
        ``(y, cache)``, y (N, F, Ho, Wo): an NCHW view of (F, Ho, Wo, N) memory.

    Shape:
        Per block of output positions: ``(R·Q, F, C·kh·kw) @ (R·Q, C·kh·kw, N)``.
    """
    ws = get_workspace(ws)
    Ho, Wo = check_local_shapes(x.shape, W.shape, stride, pads)
    N, C, H, Wd = x.shape
    F, _, kh, kw = W.shape[2:]
    K = C * kh * kw
    xp = fc._hwn(x)  # (C, H, W, N)
    pt, pb, pl, pr = pads
    if pt or pb or pl or pr:
        xp = ws.padded(f"xp{tuple(pads)}", (C, H + pt + pb, Wd + pl + pr, N), x.dtype, 0.0)
        xp[:, pt : pt + H, pl : pl + Wd] = fc._hwn(x)
    elif not xp.flags.c_contiguous and N > 1:
        xp = ws.empty("xc", xp.shape, x.dtype)
        xp[...] = fc._hwn(x)
    Wm = W.reshape(Ho, Wo, F, K)
    y4 = ws.fresh((F, Ho, Wo, N), np.result_type(x, W))
    for a, R, q, Q in fc._blocks(Ho, Wo, K, N, x.itemsize):
        cols = _fields(xp, ws.empty("cols", (R, Q, C, kh, kw, N), x.dtype), a, q, stride)
        # (R*Q, F, C*kh*kw) @ (R*Q, C*kh*kw, N): one product per output position
        np.matmul(Wm[a : a + R, q : q + Q].reshape(R * Q, F, K), cols,
                  out=_positions(y4, a, R, q, Q))
    if b is not None:
        y4 += b[:, :, :, None]
    cache = {"kernel": "fast", "xp": xp, "W": W, "x_shape": x.shape, "stride": stride,
             "pads": pads, "ws": ws, "generation": ws.begin()}
    return fc._nchw(y4), cache


def locally_connected2d_backward(dy: np.ndarray, cache: dict, need_dx: bool = True,
                                 need_dW: bool = True, need_db: bool = True):
    """Backward pass: per block of positions the fields are rebuilt, ``dW = δ · fieldsᵀ``
    and ``dfields = Wᵀ · δ``, which col2im adds back onto the input rows.

    Returns:
        ``(dx, dW, db)`` shaped (N, C, H, W), (Ho, Wo, F, C, kh, kw), (F, Ho, Wo); None
        where not asked. ``dx`` is an NCHW view of (C, H, W, N) memory.
    """
    W, xp, stride = cache["W"], cache["xp"], cache["stride"]
    ws: Workspace = cache["ws"]
    ws.check(cache["generation"], "locally_connected2d_backward")
    N, C, H, Wd = cache["x_shape"]
    Ho, Wo, F, _, kh, kw = W.shape
    K = C * kh * kw
    sh, sw = stride
    dyc = fc._hwn(dy)  # (F, Ho, Wo, N)
    if not dyc.flags.c_contiguous:
        dyc = ws.empty("dy", dyc.shape, dy.dtype)
        dyc[...] = fc._hwn(dy)
    dt = np.result_type(dy, W)
    db = dyc.sum(axis=3) if need_db else None
    dW = np.empty(W.shape, dt) if need_dW else None
    pt, pb, pl, pr = cache["pads"]
    padded = pt or pb or pl or pr
    dxp = None
    if need_dx:
        shape = (C, H + pt + pb, Wd + pl + pr, N)
        dxp = ws.zeros("dxp", shape, dt) if padded else ws.fresh_ordered(shape, dt, zero=True)
    Wm = W.reshape(Ho, Wo, F, K)
    for a, R, q, Q in fc._blocks(Ho, Wo, K, N, xp.itemsize):
        d = _positions(dyc, a, R, q, Q)  # (R*Q, F, N)
        if need_dW:
            cols = _fields(xp, ws.empty("cols", (R, Q, C, kh, kw, N), xp.dtype), a, q, stride)
            # (R*Q, F, N) @ (R*Q, N, C*kh*kw)
            out = dW[a : a + R, q : q + Q].reshape(R * Q, F, K)
            assert np.may_share_memory(out, dW)
            np.matmul(d, cols.swapaxes(1, 2), out=out)
        if need_dx:
            dcols = ws.empty("dcols", (R * Q, K, N), dt)
            # (R*Q, C*kh*kw, F) @ (R*Q, F, N)
            np.matmul(Wm[a : a + R, q : q + Q].reshape(R * Q, F, K).swapaxes(1, 2), d,
                      out=dcols)
            dcols = dcols.reshape(R, Q, C, kh, kw, N)
            for r in range(R):
                top = (a + r) * sh
                for j in range(kw):
                    # col2im: column j of the fields of one output row, (C, kh, Q, N) at once
                    c = q * sw + j
                    dxp[:, top : top + kh, c : c + sw * (Q - 1) + 1 : sw] += \
                        dcols[r, :, :, :, j].transpose(1, 2, 0, 3)
    dx = None
    if need_dx:
        if padded:
            dx = ws.fresh((C, H, Wd, N), dt)
            dx[...] = dxp[:, pt : pt + H, pl : pl + Wd]
        else:
            dx = dxp
        dx = fc._nchw(dx)
    return dx, dW, db
