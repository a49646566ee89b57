"""Row-wise pieces of the fast convolution: row fields and the row-by-row input gradient.

* **Row fields** ``X[h, c, j, q, n] = xp[c, h, q·sw + j, n]`` hold every (padded) input row
  with its ``kw`` column shifts: ``kw``× the input, where the im2col matrix is ``kh·kw``×.
  The im2col matrix of output row ``a`` is the contiguous slice ``X[a·sh : a·sh + kh]``
  seen as ``(kh·C·kw, Wo·N)``, so the forward pass is one product per output row and the
  weight gradient one product per row on the same slices. They are built straight from the
  unpadded input, one strided copy per kernel column, into a buffer whose zero border (the
  padding) is written only when the buffer is made.
* **The input gradient row by row**: for output row ``r`` the ``kh`` input rows it touches
  receive one product ``(C·kh, F·T) @ (F·T, M·N)`` per column phase, whose inner sum runs
  over the kernels and the kernel columns of that phase (the course's full convolution with
  the rotated kernel, reordered as products).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .workspace import Workspace

#: the products of several output rows run as one batched ``np.matmul`` whose results take
#: about this many bytes (the per-row input-gradient slabs are then added while in cache)
CHUNK_BYTES = 1 << 20


def _hwn(x: np.ndarray) -> np.ndarray:
    """``x`` (N, C, H, W) seen as (C, H, W, N): the batch-innermost order used internally."""
    return x.transpose(1, 2, 3, 0)


def _valid_columns(j: int, pl: int, sw: int, Wd: int, Wo: int) -> tuple[int, int]:
    """Output columns ``q0 ≤ q < q1`` whose kernel column ``j`` reads a real input column
    ``q·sw + j − pl`` (the others read the zero padding)."""
    q0 = max(0, -((j - pl) // sw))  # ceil((pl − j) / sw)
    q1 = min(Wo, (Wd - 1 + pl - j) // sw + 1)
    return q0, max(q0, q1)


def row_fields(x: np.ndarray, kh: int, kw: int, Wo: int, stride: tuple[int, int],
               pads: tuple[int, int, int, int], ws: Workspace, G: int = 1) -> np.ndarray:
    """The row fields ``X[h, c, j, q, n] = xp[c, h, q·sw + j, n]`` of ``x`` (N, C, H, W),
    ``xp`` being ``x`` zero-padded by ``pads``: (Hp, C, kw, Wo, N), or (G, Hp, C/G, kw, Wo, N)
    with ``G`` groups so that each group's slice is contiguous too (:func:`field_rows`).

    One strided copy per kernel column ``j`` writes the columns that read real input; the
    rest is the padding, zero since the buffer was made (a fresh array of the pool tagged
    with the geometry: every user of that tag writes the same interior).
    """
    N, C, H, Wd = x.shape
    pt, pb, pl, pr = pads
    Hp, sw = H + pt + pb, stride[1]
    Cg = C // G
    shape = (G, Hp, Cg, kw, Wo, N)
    X = ws.fresh(shape if G > 1 else shape[1:], x.dtype, ("fields", pads, sw, Wd), 0.0)
    Xg = X.reshape(shape)
    xc = _hwn(x)
    if not xc.flags.c_contiguous and N > 1:
        # e.g. an NCHW input (the images): one transposing copy, not one per kernel column
        xc = ws.fresh(xc.shape, x.dtype)
        xc[...] = _hwn(x)
    xg = xc.reshape(G, Cg, H, Wd, N)
    for j in range(kw):
        q0, q1 = _valid_columns(j, pl, sw, Wd, Wo)
        if q1 > q0:
            c0 = q0 * sw + j - pl
            src = xg[:, :, :, c0 : c0 + (q1 - q0 - 1) * sw + 1 : sw]  # (G, Cg, H, Q, N)
            Xg[:, pt : pt + H, :, j, q0:q1] = src.transpose(0, 2, 1, 3, 4)
    return X


def field_rows(X: np.ndarray, top: int, kh: int, G: int) -> np.ndarray:
    """The im2col matrix of the output row whose window starts at input row ``top``: a view
    of the row fields, (kh·C·kw, Wo·N), or (G, kh·C/G·kw, Wo·N) for ``G`` groups."""
    if G == 1:
        Hp, C, kw, Wo, N = X.shape
        return X[top : top + kh].reshape(kh * C * kw, Wo * N)
    _, Hp, Cg, kw, Wo, N = X.shape
    return X[:, top : top + kh].reshape(G, kh * Cg * kw, Wo * N)


def _stacked_rows(X: np.ndarray, kh: int, sh: int, G: int) -> np.ndarray:
    """Every output row's im2col matrix (:func:`field_rows`) at once: a read-only strided
    view (Ho, [G,] K, Wo·N) of the row fields, whose slices overlap in memory."""
    lead = X.shape[:-5]  # (G,) with groups
    Hp, C, kw, Wo, N = X.shape[-5:]
    Ho = (Hp - kh) // sh + 1
    st = X.strides
    shape = (Ho, *lead, kh * C * kw, Wo * N)
    strides = (st[-5] * sh, *st[:-5], st[-3], st[-1])
    return as_strided(X, shape=shape, strides=strides, writeable=False)


def fields_forward(X: np.ndarray, W2: np.ndarray, b: np.ndarray | None, y4: np.ndarray,
                   kh: int, sh: int, G: int, relu: bool = False) -> None:
    """``y[:, a] = W2 · X[a·sh : a·sh + kh]`` for every output row ``a`` (plus the bias, then
    ``max(·, 0)`` with ``relu``), the products batched into as few ``np.matmul`` calls as
    the epilogue allows (without one, a single call; with one, chunks of
    :data:`CHUNK_BYTES` so the bias and the ReLU are applied in cache).

    ``W2`` is :func:`fields_order`'s matrix, ``y4`` the (F, Ho, Wo, N) output."""
    F, Ho, Wo, N = y4.shape
    cols = _stacked_rows(X, kh, sh, G)  # (Ho, [G,] K, Wo·N)
    out = y4.reshape(F, Ho, Wo * N).transpose(1, 0, 2)  # (Ho, F, Wo·N) view
    if G > 1:
        out = out.reshape(Ho, G, F // G, Wo * N)
    plain = b is None and not relu
    R = Ho if plain else max(1, min(Ho, CHUNK_BYTES // (F * Wo * N * y4.itemsize)))
    for a in range(0, Ho, R):
        o = np.matmul(W2, cols[a : a + R], out=out[a : a + R])
        if b is not None:
            o += b.reshape((G, F // G, 1) if G > 1 else (F, 1))
        if relu:
            np.maximum(o, 0, out=o)


def fields_weight_grad(X: np.ndarray, dyc: np.ndarray, kh: int, sh: int,
                       G: int) -> np.ndarray:
    """``dWᵀ = Σ_a X[a·sh : a·sh + kh] · δ[:, a]ᵀ`` in the fields' row order, ((G,) K, F/G):
    batched products of at most :data:`CHUNK_BYTES` each, summed over the rows."""
    F, Ho, Wo, N = dyc.shape
    cols = _stacked_rows(X, kh, sh, G)  # (Ho, [G,] K, M)
    d = dyc.reshape(F, Ho, Wo * N).transpose(1, 0, 2)  # (Ho, F, M)
    if G > 1:
        d = d.reshape(Ho, G, F // G, Wo * N)
    dT = d.swapaxes(-1, -2)  # (Ho, [G,] M, F/G): transposed operands, no copy
    K = cols.shape[-2]
    R = max(1, min(Ho, CHUNK_BYTES * 4 // (K * F * dyc.itemsize)))
    total = None
    for a in range(0, Ho, R):
        part = np.matmul(cols[a : a + R], dT[a : a + R]).sum(axis=0)
        total = part if total is None else np.add(total, part, out=total)
    return total


def fields_order(W: np.ndarray, G: int = 1) -> np.ndarray:
    """``W`` (F, C/G, kh, kw) as the (F, kh·C/G·kw) matrix matching :func:`row_fields`
    rows (as ``G`` stacked matrices for ``G`` groups)."""
    F, C, kh, kw = W.shape
    W2 = np.ascontiguousarray(W.transpose(0, 2, 1, 3)).reshape(F, kh * C * kw)
    return W2 if G == 1 else W2.reshape(G, F // G, kh * C * kw)


def _phases(kw: int, sw: int, pl: int, Wd: int, Wo: int) -> list[tuple[int, int, int, int]]:
    """``(φ, T, m0, Mu)`` for each column phase ``φ`` of the padded input: the kernel columns
    ``j = φ, φ + sw, …`` (``T`` of them) land on the padded columns ``w = m·sw + φ``, of
    which ``m0 ≤ m < m0 + Mu`` are real input columns (at stride 1: one phase with all
    ``kw`` kernel columns)."""
    out = []
    for phi in range(sw):
        T = len(range(phi, kw, sw))
        m0 = max(0, -((phi - pl) // sw))  # ceil((pl − φ) / sw): the first real column
        m1 = (Wd - 1 + pl - phi) // sw + 1
        if T and m1 > m0:
            out.append((phi, T, m0, m1 - m0))
    return out


def use_row_gemm(C: int, F: int, kh: int, kw: int, Wo: int, Wp: int,
                 stride: tuple[int, int], macs_per_value: float) -> bool:
    """Whether :func:`dx_by_rows` costs less than the col2im scatter, by a model of both
    weighed with ``macs_per_value`` multiply-adds per value moved (``Wp``: the padded
    width). Per output row and sample the rows write and read ``F·kw·Wp/sw`` shifted ``δ``
    values and add ``C·kh·Wp`` results, where col2im writes ``C·kh·kw·Wo`` columns and adds
    them in ``kw`` passes (LeNet-5's C3: 3,500 against 6,000 values); the rows' products
    are modelled over the padded width, ``C·kh·F·kw·Wp/sw`` against col2im's
    ``C·kh·kw·F·Wo`` multiply-adds. They span only the real columns now, but the model as
    it stands picks the measured faster strategy: the rows for resnet20's and LeNet-5's
    layers, col2im for VGG's 512-channel 4×4 and 2×2 layers (the rows measured 10–30 %
    slower there)."""
    sw = stride[1]
    rows = (2 * F * kw * Wp / sw + 3 * C * kh * Wp
            + C * kh * F * kw * Wp / sw / macs_per_value)
    col2im = 4 * C * kh * kw * Wo + C * kh * kw * F * Wo / macs_per_value
    return rows < col2im


def dx_by_rows(dyc: np.ndarray, W: np.ndarray, dx: np.ndarray, stride: tuple[int, int],
               pads: tuple[int, int, int, int], ws: Workspace, groups: int = 1) -> None:
    """Add the input gradient into ``dx`` (C, H, W, N), the sum over the kernels and kernel
    columns of each output row done by matrix products.

    The padded columns split into ``sw`` phases ``w = m·sw + φ``; phase ``φ`` receives the
    kernel columns ``j = φ + t·sw`` (``t < T``) of the output columns ``q = m − t``. With
    ``t′ = T − 1 − t``::

        D[r, (f, t′), (m, n)] = δ[f, r, m − (T − 1 − t′), n]     (0 outside 0 ≤ q < Wo)
        Wr[(c, i), (f, t′)] = W[f, c, i, φ + (T − 1 − t′)·sw]
        dx[c, r·sh + i − pt, m·sw + φ − pl, n] += Σ_{f,t′} Wr[(c, i), (f, t′)]·D[r, (f, t′), (m, n)]

    i.e. per output row ``r`` one ``(C·kh, F·T) @ (F·T, M·N)`` product, only over the ``M``
    real input columns of the phase, and one add of its ``(C, kh, M, N)`` slab onto the
    input rows (those inside the padding are dropped) — the course's full convolution with
    the rotated kernel, row by row. ``D`` holds ``T`` shifted copies of ``δ`` (built once);
    the products of a few rows run as one batched ``np.matmul`` of :data:`CHUNK_BYTES`.
    With groups, ``c`` and ``f`` run over one group: ``G`` stacked products.
    """
    F, Ho, Wo, N = dyc.shape
    _, Cg, kh, kw = W.shape
    G = groups
    Fg, C = F // G, Cg * G
    C_, H, Wd, _ = dx.shape
    sh, sw = stride
    pt, pl = pads[0], pads[2]
    dt = np.result_type(dyc, W)
    for phi, T, m0, M in _phases(kw, sw, pl, Wd, Wo):
        # Wr[g, (c', i), (f', t')] = W[g·F/G + f', c', i, φ + (T − 1 − t')·sw]
        taps = W[..., phi + (T - 1) * sw :: -sw]  # j = φ + (T − 1)·sw, …, φ
        Wr = ws.empty(f"Wr{phi}", (G, Cg * kh, Fg * T), W.dtype)
        Wr.reshape(G, Cg, kh, Fg, T)[...] = taps.reshape(G, Fg, Cg, kh, T).transpose(
            0, 2, 3, 1, 4)
        R = max(1, min(Ho, CHUNK_BYTES // ((C * kh + F * T) * M * N * dx.itemsize)))
        # D[r, f, t', u] = δ[f, a + r, u + m0 − (T − 1 − t')] for R rows at a time; the
        # columns outside each shifted copy are never written: zero since allocation (a
        # fresh array of the pool tagged with the geometry: every user writes the same ones)
        D = ws.fresh((R, F, T, M, N), dyc.dtype, ("D", T, m0, Wo), 0.0)
        Dm = D.reshape(R, F * T, M * N)
        if G > 1:
            Dm = Dm.reshape(R, G, Fg * T, M * N)
        Gm = ws.fresh((R, C * kh, M * N), dt)
        Gv = Gm if G == 1 else Gm.reshape(R, G, Cg * kh, M * N)
        c0 = m0 * sw + phi - pl  # the first input column of the phase
        cols = slice(c0, c0 + (M - 1) * sw + 1, sw)
        for a in range(0, Ho, R):
            n = min(R, Ho - a)
            for tp in range(T):
                lo = T - 1 - tp - m0  # D column u holds δ column u − lo
                u0, u1 = max(0, lo), min(M, Wo + lo)
                if u1 > u0:
                    D[:n, :, tp, u0:u1] = dyc[:, a : a + n, u0 - lo : u1 - lo].transpose(
                        1, 0, 2, 3)
            np.matmul(Wr[0] if G == 1 else Wr, Dm[:n], out=Gv[:n])
            slab = Gm[:n].reshape(n, C, kh, M, N)
            for r in range(a, a + n):
                # output row r reaches input rows r·sh + i − pt: keep those inside
                top = r * sh - pt
                i0, i1 = max(0, -top), min(kh, H - top)
                if i1 > i0:
                    dx[:, top + i0 : top + i1, cols] += slab[r - a, :, i0:i1]
