"""Inference kernels: a convolution fused with its bias, activation and pooling.

Used by :mod:`numcnn.models.inference` (``predict``) on arrays laid out batch-innermost,
``(C, H, W, n)`` memory, for chunks of ``n`` images small enough that a chunk's activations
stay in the cache. Nothing here keeps a value for a backward pass.

**Convolution with pooling in one pass.** With a ``P×P`` pooling of stride ``P`` after the
convolution, output position ``(ho, wo) = (P·a + p, P·b + q)`` belongs to pooling window
``(a, b)`` at offset ``(p, q)``. The im2col matrix is built with its columns in
*phase-major* order ``(p, q, a, b, n)``:

    cols[c, i, j, p, q, a, b, n] = xp[c, (P·a + p)·sh + i, (P·b + q)·sw + j, n]

(one strided view of the padded input, copied once), so the product
``z = W · cols`` — ``(F, C·kh·kw) @ (C·kh·kw, P²·A·Wb·n)`` for ``A`` pooled rows — holds
the ``P²`` members of every window as ``P²`` contiguous slabs ``z[:, p·P + q]``. Pooling is
then ``P² − 1`` element-wise operations on contiguous slabs, while the block is in cache:

* max pooling: ``y = max_k z_k`` first, then the bias and any increasing activation
  ``g`` (ReLU, tanh, ``A·tanh(S·x)``) on the pooled values only, since
  ``max_k g(z_k + b) = g(max_k z_k + b)`` — a quarter of the work of activating first;
* summing pooling (LeNet's subsampling, average pooling): the activation must come first
  (it is not linear), ``y = Σ_k g(z_k + b)``, then the pooling's own affine map.

Rows of output that no pooling window reads (an odd ``Ho``) are never computed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

#: im2col bytes built and multiplied at a time (a block of pooled rows); fits the L2 cache
BLOCK_BYTES = 1 << 20
#: products of at most this many multiply-adds (M·N·K) run 1.5–2× faster in OpenBLAS
#: (0.3.2x, its small-matrix kernels without packing, on AVX-512): (16, 150) @ (150, 320)
#: at 155 GFLOP/s against 70 at 480 columns, (6, 25) @ (25, 3136) at 123 against 24 at 7168
#: (one thread, measured). A block's product is split into column pieces below it.
GEMM_SMALL_MNK = 1_000_000


class Buffers:
    """Scratch arrays of one worker thread, made once per key and re-used.

    ``get(key, shape, dtype, fill)``: the array for ``key`` (made with ``fill`` when given,
    else uninitialised); a key always names the same shape."""

    __slots__ = ("arrays",)

    def __init__(self) -> None:
        self.arrays: dict[Any, np.ndarray] = {}

    def get(self, key: Any, shape: tuple[int, ...], dtype: Any,
            fill: float | None = None) -> np.ndarray:
        a = self.arrays.get(key)
        if a is None:
            a = np.empty(shape, dtype) if fill is None else np.full(shape, fill, dtype)
            self.arrays[key] = a
        return a


def pooled_fields(xp: np.ndarray, kh: int, kw: int, stride: tuple[int, int], P: int,
                  Ha: int, Wb: int) -> np.ndarray:
    """The phase-major im2col view ``(C, kh, kw, P, P, Ha, Wb, n)`` of the padded input
    ``xp`` (C, Hp, Wp, n): ``v[c, i, j, p, q, a, b, n] = xp[c, (P·a+p)·sh + i,
    (P·b+q)·sw + j, n]``. ``P = 1`` is plain im2col over ``(Ho, Wo) = (Ha, Wb)``. No data
    moves; read-only."""
    sC, sH, sW, sN = xp.strides
    sh, sw = stride
    C, n = xp.shape[0], xp.shape[3]
    return as_strided(xp, (C, kh, kw, P, P, Ha, Wb, n),
                      (sC, sH, sW, sh * sH, sw * sW, P * sh * sH, P * sw * sW, sN),
                      writeable=False)


def row_blocks(Ha: int, per_row_bytes: int, budget: int = BLOCK_BYTES) -> list[tuple[int, int]]:
    """``(a0, A)`` blocks of pooled rows, each about ``budget`` bytes of im2col columns."""
    A = max(1, min(Ha, budget // max(1, per_row_bytes)))
    return [(a, min(A, Ha - a)) for a in range(0, Ha, A)]


def apply_activation(kind: str | None, a: np.ndarray) -> None:
    """In place: ``"relu"`` ``max(a, 0)``, ``"tanh"`` ``tanh(a)``; None leaves ``a``.
    (The scales of ``A·tanh(S·x)`` are folded by the caller: ``S`` into the weights before,
    ``A`` carried to the next linear step.)"""
    if kind is None:
        return
    if kind == "relu":
        np.maximum(a, 0, out=a)
    elif kind == "tanh":
        np.tanh(a, out=a)
    else:
        raise ValueError(f"unknown activation {kind!r}")


def conv_pool(xp: np.ndarray, W2: np.ndarray, b: np.ndarray | None, P: int,
              pool: str | None, act: str | None, out: np.ndarray, views: list,
              pool_scale: np.ndarray | None = None, pool_bias: np.ndarray | None = None,
              post_act: str | None = None) -> np.ndarray:
    """Convolution, bias, activation and ``P×P`` pooling of one chunk, block by block.

    Args:
        xp: padded input (C, Hp, Wp, n). W2: kernels as an (F, C·kh·kw) matrix (scales
            folded in). b: (F, 1) bias or None.
        P: pooling window and stride (1: no pooling). pool: ``"max"``, ``"sum"`` or None.
        act: activation of the convolution (see :func:`apply_activation`).
        out: (F, Ha, Wb, n) output, contiguous.
        views: per block ``((a0, A), fields, cols, z)`` from :func:`conv_pool_views`.
        pool_scale, pool_bias: (F, 1) affine map after a summing pooling (LeNet's ``coef``
            and ``b``), then ``post_act``.

    Each block's product runs as column pieces of at most :data:`GEMM_SMALL_MNK`
    multiply-adds (see there). Returns ``out``.
    """
    F, K = W2.shape
    o2 = out.reshape(F, out.shape[1], -1)
    for (a0, A), fields, cols, z in views:
        np.copyto(cols, fields)
        cm = cols.reshape(K, -1)
        dst = o2[:, a0 : a0 + A].reshape(F, -1)  # rows of F runs: a BLAS-writable view
        zm = dst if P == 1 else z.reshape(F, -1)
        _product(W2, cm, zm)
        if P == 1:  # no pooling: the product went straight into the output rows
            if b is not None:
                zm += b
            apply_activation(act, zm)
            continue
        zs = z.reshape(F, P * P, -1)
        if pool == "max":  # the window maximum; the bias and activation follow, pooled
            np.maximum(zs[:, 0], zs[:, 1], out=dst)
            for k in range(2, P * P):
                np.maximum(dst, zs[:, k], out=dst)
        else:  # sum pooling: activation first, on every member of the window
            if b is not None:
                zm += b
            apply_activation(act, zm)
            np.add(zs[:, 0], zs[:, 1], out=dst)
            for k in range(2, P * P):
                dst += zs[:, k]
    if P > 1:
        o = out.reshape(F, -1)
        if pool == "max":
            if b is not None:
                o += b
            apply_activation(act, o)
        else:
            if pool_scale is not None:
                o *= pool_scale
            if pool_bias is not None:
                o += pool_bias
            apply_activation(post_act, o)
    return out


def _product(W2: np.ndarray, cols: np.ndarray, out: np.ndarray) -> None:
    """``out = W2 @ cols`` in column pieces of at most :data:`GEMM_SMALL_MNK`
    multiply-adds each (slices of row-major matrices: BLAS reads them in place)."""
    F, K = W2.shape
    M = cols.shape[1]
    step = max(1, GEMM_SMALL_MNK // (F * K))
    if M <= step:
        np.matmul(W2, cols, out=out)
        return
    pieces = -(-M // step)
    step = -(-M // pieces)  # equal pieces
    for c in range(0, M, step):
        np.matmul(W2, cols[:, c : c + step], out=out[:, c : c + step])


def conv_pool_views(xp: np.ndarray, F: int, kh: int, kw: int, stride: tuple[int, int],
                    P: int, Ha: int, Wb: int, bufs: Buffers, key: Any,
                    budget: int = BLOCK_BYTES) -> list:
    """Per block of pooled rows ``((a0, A), fields, cols, z)``: the strided im2col source
    (a view of ``xp``), the contiguous columns buffer and the product buffer, all views of
    two buffers shared by the blocks. Made once per chunk shape and re-used (``xp`` is a
    buffer too)."""
    C, n = xp.shape[0], xp.shape[3]
    K = C * kh * kw
    per_row = K * P * P * Wb * n * xp.itemsize
    blocks = row_blocks(Ha, per_row, budget)
    Amax = max(A for _, A in blocks)
    cbuf = bufs.get((key, "cols"), (K * P * P * Amax * Wb * n,), xp.dtype)
    zbuf = bufs.get((key, "z"), (F * P * P * Amax * Wb * n,), xp.dtype)
    src = pooled_fields(xp, kh, kw, stride, P, Ha, Wb)
    views = []
    for a0, A in blocks:
        shape = (C, kh, kw, P, P, A, Wb, n)
        cols = cbuf[: math.prod(shape)].reshape(shape)
        z = zbuf[: F * P * P * A * Wb * n].reshape(F, P * P, A * Wb * n)
        views.append(((a0, A), src[:, :, :, :, :, a0 : a0 + A], cols, z))
    return views


def rbf_distances(h: np.ndarray, centres: np.ndarray, out: np.ndarray,
                  diff: np.ndarray) -> np.ndarray:
    """``out[i, n] = Σ_j (h[j, n] − w[i, j])²`` for ``h`` (D, n), centres ``w`` (U, D), out
    (U, n), with ``diff`` a (U, D, n) buffer — the differences squared as written, as the
    layer computes them (no ``|h|² − 2 h·w + |w|²`` cancellation)."""
    np.subtract(h[None], centres[:, :, None], out=diff)
    np.square(diff, out=diff)
    return np.sum(diff, axis=1, out=out)


class RowPlan:
    """The arrays of :func:`conv_rows_pool` for one chunk shape (made once, re-used).

    *Row fields* (stride 1): ``fields[h, c, j, q, b, n] = xp[c, h, P·b + q + j, n]`` — the
    input with its ``kw`` column shifts, columns phase-major — is ``kw``× the input where
    im2col is ``kh·kw``×; output row ``ho``'s im2col matrix is the slice
    ``fields[ho : ho + kh]`` seen as ``(kh·C·kw, P·Wb·n)`` (rows in ``(i, c, j)`` order), so
    all rows' products are one stacked ``np.matmul`` into ``z`` (Ho, F, P·Wb·n), in pieces
    of at most :data:`GEMM_SMALL_MNK` multiply-adds."""

    def __init__(self, xp: np.ndarray, F: int, kh: int, kw: int, P: int, Ha: int, Wb: int,
                 out: np.ndarray, bufs: Buffers, key: Any):
        C, Hp, Wp, n = xp.shape
        it = xp.itemsize
        sC, sH, sW, sN = xp.strides
        self.src = as_strided(xp, (Hp, C, kw, P, Wb, n), (sH, sC, sW, sW, P * sW, sN),
                              writeable=False)
        self.fields = bufs.get((key, "fields"), self.src.shape, xp.dtype)
        Ho = P * Ha
        K = kh * C * kw
        M = P * Wb * n
        pieces = max(1, -(-(F * K * M) // GEMM_SMALL_MNK))
        while M % pieces and pieces < M:
            pieces += 1  # equal pieces (a divisor of M)
        m = M // pieces
        row = C * kw * M * it  # bytes between consecutive rows h of the fields
        self.stack = as_strided(self.fields, (Ho, pieces, K, m), (row, m * it, M * it, it),
                                writeable=False)
        self.z = bufs.get((key, "z"), (Ho, F, M), xp.dtype)
        self.zp = as_strided(self.z, (Ho, pieces, F, m), (F * M * it, m * it, M * it, it))
        zr = self.z.reshape(Ha, P, F, P, Wb * n)
        self.slabs = [zr[:, p, :, q] for p in range(P) for q in range(P)]  # (Ha, F, Wb·n)
        self.dst = out.reshape(F, Ha, Wb * n).transpose(1, 0, 2)
        self.flat = out.reshape(F, -1)
        # max pooling in two steps, rows then columns: P calls on contiguous runs
        self.rows = [zr[:, p] for p in range(P)]  # (Ha, F, P, Wb·n)
        self.rowmax = bufs.get((key, "rowmax"), (Ha, F, P, Wb * n), xp.dtype)
        self.cols = [self.rowmax[:, :, q] for q in range(P)]


def conv_rows_pool(xp: np.ndarray, W2r: np.ndarray, b: np.ndarray | None, pool: str,
                   act: str | None, rp: RowPlan, pool_scale: np.ndarray | None = None,
                   pool_bias: np.ndarray | None = None,
                   post_act: str | None = None) -> np.ndarray:
    """:func:`conv_pool` over the row fields of ``rp`` (stride 1, ``P > 1``), with the
    kernels ``W2r`` as an (F, kh·C·kw) matrix in ``(i, c, j)`` order. Returns the output
    (F, Ha, Wb, n) as ``rp.flat``'s array."""
    np.copyto(rp.fields, rp.src)
    np.matmul(W2r, rp.stack, out=rp.zp)
    slabs, dst = rp.slabs, rp.dst
    if pool == "max":  # the maximum over the window's rows, then over its columns
        rows, cols, t = rp.rows, rp.cols, rp.rowmax
        np.maximum(rows[0], rows[1], out=t)
        for r in rows[2:]:
            np.maximum(t, r, out=t)
        np.maximum(cols[0], cols[1], out=dst)
        for c in cols[2:]:
            np.maximum(dst, c, out=dst)
        if b is not None:
            rp.flat += b
        apply_activation(act, rp.flat)
        return rp.flat
    z = rp.z
    if b is not None:
        z += b
    apply_activation(act, z)
    np.add(slabs[0], slabs[1], out=dst)
    for s in slabs[2:]:
        dst += s
    o = rp.flat
    if pool_scale is not None:
        o *= pool_scale
    if pool_bias is not None:
        o += pool_bias
    apply_activation(post_act, o)
    return o
