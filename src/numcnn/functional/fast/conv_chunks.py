"""The convolution's forward pass over row fields built a few output columns at a time.

:func:`.conv_rows.row_fields` holds every output column's ``kw`` shifted inputs at once
(``kw``× the input: 13 MB for resnet20's 16-channel 32×32 layers at batch 64): it is
written to memory, and each of its rows is read again by the ``kh`` output rows that use it.
Here the fields are built for ``Q`` output columns at a time into one small buffer,

    X[h, c, j, u, n] = xp[c, h, (q0 + u)·sw + j, n]          (0 ≤ u < Q),

and every output row's product over them, ``y[:, a, q0 : q0 + Q] = W2 · X[a·sh : a·sh + kh]``
(``(F, kh·C·kw) @ (kh·C·kw, Q·N)``), runs while the buffer is in the cache: the input is
read once and the output written once. With few kernels these products are small enough
(``F·K·Q·N`` ≤ about 10⁶ multiply-adds) for OpenBLAS's small-matrix kernels, which skip the
packing the wide products spend most of their time on.

Each output value is the dot product of the whole-row fields over the same ``kh·C·kw``
terms; OpenBLAS's small-matrix and packed kernels may add them in another order, so the
results differ from the whole-row products by float rounding only.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .workspace import Workspace

#: products of at most this many multiply-adds (``F·K·Q·N``) take OpenBLAS's small-matrix
#: path (no packing; its rule for single precision on AVX-512 machines)
SMALL_MNK = 1_000_000
#: column chunks are used for layers with at most this many kernels (measured faster for
#: resnet20's 16-kernel layers; with 32 and 64 kernels the chunks' products are too narrow
#: to gain, see docs/performance.md)
MAX_KERNELS = 16


def chunk_columns(F: int, K: int, Wo: int, N: int) -> int:
    """Output columns per chunk ``Q``: the most that keep ``F·K·Q·N`` ≤ :data:`SMALL_MNK`,
    or 0 when chunks do not apply (too many kernels, or not even one column fits)."""
    if F > MAX_KERNELS:
        return 0
    Q = min(Wo, SMALL_MNK // max(1, F * K * N))
    return Q if 0 < Q < Wo else 0


def chunked_forward(x: np.ndarray, W2: np.ndarray, b: np.ndarray | None, y4: np.ndarray,
                    kh: int, kw: int, stride: tuple[int, int],
                    pads: tuple[int, int, int, int], ws: Workspace, Q: int,
                    relu: bool = False) -> None:
    """``y4`` (F, Ho, Wo, N) ← the convolution of ``x`` (N, C, H, W) with the kernels
    ``W2`` (F, kh·C·kw) in :func:`.conv_rows.fields_order`, plus ``b``, then ``max(·, 0)``
    with ``relu``; ``Q`` output columns at a time (see the module)."""
    N, C, H, Wd = x.shape
    F, Ho, Wo, _ = y4.shape
    pt, pb, pl, _ = pads
    sh, sw = stride
    Hp = H + pt + pb
    K = kh * C * kw
    xc = x.transpose(1, 2, 3, 0)  # (C, H, W, N)
    if not xc.flags.c_contiguous and N > 1:
        t = ws.fresh(xc.shape, x.dtype)
        t[...] = xc
        xc = t
    # the padding rows stay zero from the buffer's making; the columns are written per chunk
    X = ws.fresh((Hp, C, kw, Q, N), x.dtype, ("field_chunk", pads, sw, Wd), 0.0)
    st = X.strides
    for q0 in range(0, Wo, Q):
        n = min(Q, Wo - q0)
        Xq = X[:, :, :, :n]
        for j in range(kw):
            # output column q0 + u reads input column (q0 + u)·sw + j − pl
            c0 = q0 * sw + j - pl
            u0 = min(n, max(0, -(c0 // sw) if c0 < 0 else 0))
            u1 = max(u0, min(n, (Wd - 1 - c0) // sw + 1))
            dst = Xq[pt : pt + H, :, j]  # (H, C, n, N)
            if u0 > 0:
                dst[:, :, :u0] = 0
            if u1 < n:
                dst[:, :, u1:] = 0
            if u1 > u0:
                a = c0 + u0 * sw
                dst[:, :, u0:u1] = xc[:, :, a : a + (u1 - u0 - 1) * sw + 1 : sw].transpose(
                    1, 0, 2, 3)
        # every output row's im2col matrix, (Ho, K, n·N) overlapping views of the chunk: its
        # rows (i, c, j) are Q·N values apart, of which the first n·N are this chunk's
        cols = as_strided(X, shape=(Ho, K, n * N), strides=(st[0] * sh, st[2], st[4]),
                          writeable=False)
        o = _out_view(y4, q0, n)
        np.matmul(W2, cols, out=o)
        if b is not None:
            o += b.reshape(F, 1)
        if relu:
            np.maximum(o, 0, out=o)


def _out_view(y4: np.ndarray, q0: int, n: int) -> np.ndarray:
    """``y4[:, :, q0 : q0 + n]`` of a (F, Ho, Wo, N) array as (Ho, F, n·N) — a view: the
    ``n`` columns of one output row and kernel are contiguous."""
    F, Ho, Wo, N = y4.shape
    s = y4.strides
    return as_strided(y4[:, :, q0:], shape=(Ho, F, n * N), strides=(s[1], s[0], s[3]))
