"""Sliding windows over any number of spatial axes, with dilation: N-d pooling, convolution
and transposed convolution — the general cases ONNX graphs bring (1-D and 3-D maps,
dilated kernels, padding wider than half a window), beside the 2-D kernels of :mod:`.conv`
and :mod:`.pool` that numcnn's own layers use.

Layout: ``x`` is (N, C, n₁, …, n_d). Along spatial axis ``a`` a window of ``k`` taps with
dilation ``r`` spans ``k_e = r·(k − 1) + 1`` positions; with stride ``s`` and padding
``(p₀, p₁)`` there are ``m = (n + p₀ + p₁ − k_e) // s + 1`` windows (the one formula of
:func:`.geometry.output_size`, rounded up with ``ceil_mode``). Tap ``o`` of output ``j`` reads
padded position ``j·s + o·r``. Every kernel here loops over the ``Π k`` taps only and
handles all outputs of a tap with one strided slice (:func:`tap`), the 2-D kernels' rule.

* pooling: ``y[j] = max_o xp[j·s + o·r]`` (max), ``Σ_o xp[…] / count[j]`` (average),
  ``(Σ_o |xp[…]|^p)^{1/p}`` (Lp);
* convolution: ``y[n, f, j] = Σ_{c, o} W[f, c, o]·xp[n, g·C/G + c, j·s + o·r] + b[f]``,
  computed as the taps stacked into columns and one product per group;
* transposed convolution: the input gradient of that convolution, ``y = col2im(Wᵀ x)``
  (what ONNX ``ConvTranspose`` and ``torch.nn.ConvTranspose{1,2,3}d`` compute).

Backward passes are written out: the max routes ``dy`` to the tap that won, the average
spreads ``dy / count``, the convolution's input gradient scatters ``Wᵀ dy`` back through the
taps (col2im) and its weight gradient correlates the columns with ``dy``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from .geometry import output_size


def out_sizes(spatial: Sequence[int], kernel: Sequence[int], stride: Sequence[int],
              dilation: Sequence[int], pads: Sequence[int], ceil_mode: bool = False
              ) -> tuple[int, ...]:
    """Output sizes ``m_a`` for input sizes ``spatial`` and ``pads = (begin₁ … begin_d, end₁ …
    end_d)`` (ONNX's order), from :func:`.geometry.output_size` with ``k_e = r(k − 1) + 1``.

    >>> out_sizes((7,), (3,), (2,), (2,), (1, 1))
    (3,)
    """
    d = len(spatial)
    return tuple(output_size(n, r * (k - 1) + 1, s, pads[a], pads[d + a], ceil_mode)
                 for a, (n, k, s, r) in enumerate(zip(spatial, kernel, stride, dilation)))


def same_pads(spatial: Sequence[int], kernel: Sequence[int], stride: Sequence[int],
              dilation: Sequence[int], lower: bool = False) -> tuple[int, ...]:
    """ONNX ``auto_pad="SAME_UPPER"`` (``lower``: ``"SAME_LOWER"``) padding: ``m = ⌈n / s⌉``
    outputs, total ``max((m − 1)·s + k_e − n, 0)``, the odd one at the end (start)."""
    begin, end = [], []
    for n, k, s, r in zip(spatial, kernel, stride, dilation):
        m = -(-n // s)
        total = max((m - 1) * s + r * (k - 1) + 1 - n, 0)
        small, big = total // 2, total - total // 2
        begin.append(big if lower else small)
        end.append(small if lower else big)
    return tuple(begin + end)


def tap(a: np.ndarray, offset: Sequence[int], out: Sequence[int], stride: Sequence[int],
        dilation: Sequence[int]) -> np.ndarray:
    """The strided view of ``a[..., n₁, …, n_d]`` read by tap ``offset`` at every output:
    ``a[..., o·r : o·r + s·(m − 1) + 1 : s]`` on each spatial axis."""
    index: list[Any] = [Ellipsis]
    for o, m, s, r in zip(offset, out, stride, dilation):
        index.append(slice(o * r, o * r + s * (m - 1) + 1, s))
    return a[tuple(index)]


def _pad(x: np.ndarray, begin: Sequence[int], end: Sequence[int], value: float) -> np.ndarray:
    width = [(0, 0)] * (x.ndim - len(begin)) + list(zip(begin, end))
    return np.pad(x, width, constant_values=value)


def _crop(a: np.ndarray, begin: Sequence[int], spatial: Sequence[int]) -> np.ndarray:
    index = [Ellipsis] + [slice(b, b + n) for b, n in zip(begin, spatial)]
    return np.ascontiguousarray(a[tuple(index)])


def _offsets(kernel: Sequence[int]):
    return list(itertools.product(*(range(k) for k in kernel)))


# ------------------------------------------------------------------------------- pooling
def pool_nd_forward(x: np.ndarray, kind: str, kernel: Sequence[int], stride: Sequence[int],
                    dilation: Sequence[int], pads: Sequence[int], ceil_mode: bool = False,
                    count_include_pad: bool = False, p: float = 2.0
                    ) -> tuple[np.ndarray, dict]:
    """N-d max, average or Lp pooling with dilation.

    Args:
        x: (N, C, n₁, …, n_d). kind: ``"max"``, ``"avg"`` or ``"lp"``.
        kernel, stride, dilation: one int per spatial axis.
        pads: ``(begin₁ … begin_d, end₁ … end_d)``; max pooling pads with −∞, the others
            with 0.
        ceil_mode: round the output size up; a window hanging off the end reads −∞ (max) or
            nothing (average: left out of the divisor; Lp: adds 0).
        count_include_pad: the average divides by the taps inside the padded input
            (padding counted) rather than inside the input.
        p: the Lp norm's order, ``y = (Σ |x|^p)^{1/p}`` (ONNX ``LpPool``).

    Returns:
        ``(y, cache)``, y (N, C, m₁, …, m_d).
    """
    d = len(kernel)
    spatial = x.shape[2:]
    out = out_sizes(spatial, kernel, stride, dilation, pads, ceil_mode)
    # the ceil overhang: extra positions at the end that no padding covers
    extra = [max((m - 1) * s + r * (k - 1) + 1 - (n + pads[a] + pads[d + a]), 0)
             for a, (n, m, k, s, r) in enumerate(zip(spatial, out, kernel, stride, dilation))]
    begin = list(pads[:d])
    end = [pads[d + a] + extra[a] for a in range(d)]
    fill = -np.inf if kind == "max" else 0.0
    xp = _pad(x, begin, end, fill)
    offsets = _offsets(kernel)
    cache = {"kind": kind, "shape": x.shape, "out": out, "begin": begin, "end": end,
             "kernel": tuple(kernel), "stride": tuple(stride), "dilation": tuple(dilation)}
    if kind == "max":
        y = np.full(x.shape[:2] + out, -np.inf, dtype=x.dtype)
        arg = np.zeros(y.shape, dtype=np.int32)  # the tap that won, first one on ties
        for t, o in enumerate(offsets):
            v = tap(xp, o, out, stride, dilation)
            better = v > y
            y = np.where(better, v, y)
            arg[better] = t
        cache["arg"] = arg
        return y, cache
    if kind == "lp":
        a = np.abs(xp)
        s = np.zeros(x.shape[:2] + out, dtype=x.dtype)
        for o in offsets:
            s += tap(a, o, out, stride, dilation) ** x.dtype.type(p)
        y = s ** x.dtype.type(1.0 / p)
        cache.update(xp=xp, y=y, p=float(p))
        return y, cache
    y = np.zeros(x.shape[:2] + out, dtype=x.dtype)
    for o in offsets:
        y += tap(xp, o, out, stride, dilation)
    count = _avg_count(spatial, out, kernel, stride, dilation, pads, extra, count_include_pad)
    count = count.astype(x.dtype)
    y /= count
    cache["count"] = count
    return y, cache


def _avg_count(spatial, out, kernel, stride, dilation, pads, extra, include_pad) -> np.ndarray:
    """Taps of each window that count in the average, ``Π_a c_a[j_a]``: the windows are
    products of per-axis ranges, so the count of every window is a product of 1-D counts."""
    d = len(kernel)
    count = np.ones((), dtype=np.float64)
    for a in range(d):
        n, m, k, s, r = spatial[a], out[a], kernel[a], stride[a], dilation[a]
        total = pads[a] + n + pads[d + a] + extra[a]
        mask = np.zeros(total)
        if include_pad:
            mask[: pads[a] + n + pads[d + a]] = 1  # the ceil overhang never counts
        else:
            mask[pads[a] : pads[a] + n] = 1
        c = sum(mask[o * r : o * r + s * (m - 1) + 1 : s] for o in range(k))
        count = np.multiply.outer(count, c)
    return np.maximum(count, 1)  # a window over padding alone divides by 1 (sum is 0)


def pool_nd_backward(dy: np.ndarray, cache: dict) -> np.ndarray:
    """dL/dx of :func:`pool_nd_forward`: max → the winning tap gets ``dy``; average → every
    tap gets ``dy / count``; Lp → ``dy · sign(x)·|x|^{p−1} · y^{1−p}`` (0 where ``y = 0``)."""
    kind, out = cache["kind"], cache["out"]
    kernel, stride, dilation = cache["kernel"], cache["stride"], cache["dilation"]
    N, C, *spatial = cache["shape"]
    padded = [b + n + e for b, n, e in zip(cache["begin"], spatial, cache["end"])]
    dxp = np.zeros((N, C, *padded), dtype=dy.dtype)
    if kind == "max":
        arg = cache["arg"]
        for t, o in enumerate(_offsets(kernel)):
            tap(dxp, o, out, stride, dilation)[...] += np.where(arg == t, dy, 0)
    elif kind == "avg":
        g = dy / cache["count"]
        for o in _offsets(kernel):
            tap(dxp, o, out, stride, dilation)[...] += g
    else:
        xp, y, p = cache["xp"], cache["y"], cache["p"]
        safe = np.where(y > 0, y, 1)
        g = np.where(y > 0, dy * safe ** dy.dtype.type(1 - p), 0)  # dy · y^{1−p}
        lp = np.sign(xp) * np.abs(xp) ** dy.dtype.type(p - 1)  # d|x|^p / dx / p
        for o in _offsets(kernel):
            tap(dxp, o, out, stride, dilation)[...] += g * tap(lp, o, out, stride, dilation)
    return _crop(dxp, cache["begin"], spatial)


def pool_nd_argmax_index(cache: dict, storage_order: int = 0) -> np.ndarray:
    """ONNX ``MaxPool``'s second output: the flat index of every maximum in the input
    (N, C, n₁, …, n_d), row-major (``storage_order=0``) or with the spatial axes in
    column-major order (``storage_order=1``)."""
    arg = cache["arg"]
    kernel, stride, dilation = cache["kernel"], cache["stride"], cache["dilation"]
    N, C, *spatial = cache["shape"]
    taps = np.array(_offsets(kernel), dtype=np.int64)[arg]  # (..., d): the winning tap
    coords = []
    for a, (s, r, b) in enumerate(zip(stride, dilation, cache["begin"])):
        shape = [1] * arg.ndim
        shape[2 + a] = arg.shape[2 + a]
        j = np.arange(arg.shape[2 + a]).reshape(shape)
        coords.append(j * s + taps[..., a] * r - b)
    n = np.arange(N).reshape((N,) + (1,) * (arg.ndim - 1))
    c = np.arange(C).reshape((1, C) + (1,) * (arg.ndim - 2))
    axes = list(range(len(spatial)))
    if storage_order == 1:
        axes = axes[::-1]
    flat = n * C + c
    for a in axes:
        flat = flat * spatial[a] + coords[a]
    return flat.astype(np.int64)


# --------------------------------------------------------------------------- convolution
def _columns(xp: np.ndarray, kernel, out, stride, dilation) -> np.ndarray:
    """(N, C, K, L): every tap's view of ``xp`` (K = Π k taps, L = Π m outputs)."""
    N, C = xp.shape[:2]
    L = int(np.prod(out)) if out else 1
    cols = np.empty((N, C, len(_offsets(kernel)), L), dtype=xp.dtype)
    for t, o in enumerate(_offsets(kernel)):
        cols[:, :, t] = tap(xp, o, out, stride, dilation).reshape(N, C, L)
    return cols


def _col2im(dcols: np.ndarray, padded, kernel, out, stride, dilation) -> np.ndarray:
    """Adjoint of :func:`_columns`: add every tap's column back into (N, C, *padded)."""
    N, C = dcols.shape[:2]
    dxp = np.zeros((N, C, *padded), dtype=dcols.dtype)
    for t, o in enumerate(_offsets(kernel)):
        tap(dxp, o, out, stride, dilation)[...] += dcols[:, :, t].reshape(N, C, *out)
    return dxp


def conv_nd_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray | None,
                    stride: Sequence[int], dilation: Sequence[int], pads: Sequence[int],
                    groups: int = 1) -> tuple[np.ndarray, dict]:
    """N-d convolution (cross-correlation) with dilation and groups.

    Args:
        x: (N, C, n₁ … n_d). W: (F, C/G, k₁ … k_d). b: (F,) or None.
        stride, dilation: per spatial axis. pads: ``(begin₁ … begin_d, end₁ … end_d)``.

    Returns:
        ``(y, cache)``, y (N, F, m₁ … m_d).
    """
    d = W.ndim - 2
    kernel = W.shape[2:]
    N, C = x.shape[:2]
    F, Cg = W.shape[:2]
    G = groups
    out = out_sizes(x.shape[2:], kernel, stride, dilation, pads)
    xp = _pad(x, pads[:d], pads[d:], 0.0)
    cols = _columns(xp, kernel, out, stride, dilation)  # (N, C, K, L)
    K, L = cols.shape[2], cols.shape[3]
    cg = cols.reshape(N, G, Cg * K, L)
    Wg = W.reshape(G, F // G, Cg * K)
    y = np.matmul(Wg[None], cg)  # (1, G, F/G, C/G·K) @ (N, G, C/G·K, L) -> (N, G, F/G, L)
    y = y.reshape(N, F, *out)
    if b is not None:
        y += b.reshape((F,) + (1,) * d)
    return y, {"cols": cg, "W": W, "xp_shape": xp.shape, "pads": tuple(pads), "out": out,
               "stride": tuple(stride), "dilation": tuple(dilation), "groups": G,
               "x_shape": x.shape}


def conv_nd_backward(dy: np.ndarray, cache: dict, need_dx: bool = True,
                     need_db: bool = True) -> tuple[np.ndarray | None, np.ndarray,
                                                    np.ndarray | None]:
    """``(dx, dW, db)`` of :func:`conv_nd_forward`: ``dW = Σ_n dy · colsᵀ``,
    ``dx = col2im(Wᵀ dy)`` cropped to the input, ``db = Σ dy``."""
    W, cg, G = cache["W"], cache["cols"], cache["groups"]
    F, Cg = W.shape[:2]
    kernel = W.shape[2:]
    d = len(kernel)
    N = dy.shape[0]
    L = cg.shape[-1]
    dyg = dy.reshape(N, G, F // G, L)
    dW = np.matmul(dyg, cg.transpose(0, 1, 3, 2)).sum(axis=0)  # (G, F/G, C/G·K)
    dW = dW.reshape(W.shape)
    db = dy.sum(axis=(0,) + tuple(range(2, dy.ndim))) if need_db else None
    if not need_dx:
        return None, dW, db
    Wg = W.reshape(G, F // G, Cg * int(np.prod(kernel)))
    dcols = np.matmul(Wg.transpose(0, 2, 1)[None], dyg)  # (N, G, C/G·K, L)
    dcols = dcols.reshape(N, G * Cg, -1, L)
    padded = cache["xp_shape"][2:]
    dxp = _col2im(dcols, padded, kernel, cache["out"], cache["stride"], cache["dilation"])
    return _crop(dxp, cache["pads"][:d], cache["x_shape"][2:]), dW, db


# ------------------------------------------------------------------ transposed convolution
def conv_transpose_full_size(n: int, k: int, s: int, r: int, output_padding: int) -> int:
    """Length of the uncropped transposed-convolution output,
    ``s·(n − 1) + r·(k − 1) + 1 + output_padding``."""
    return s * (n - 1) + r * (k - 1) + 1 + output_padding


def conv_transpose_nd_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray | None,
                              stride: Sequence[int], dilation: Sequence[int],
                              pads: Sequence[int], output_padding: Sequence[int],
                              groups: int = 1) -> tuple[np.ndarray, dict]:
    """Transposed convolution: the input gradient of :func:`conv_nd_forward`, as a layer.

    ``y_full[n, g·F/G + f, j·s + o·r] += Σ_c x[n, g·C/G + c, j]·W[g·C/G + c, f, o]``, then
    ``y = y_full[begin : L_full − end]`` (a negative pad adds zeros) and ``+ b``.

    Args:
        x: (N, C, n₁ … n_d). W: (C, F/G, k₁ … k_d) — ONNX's and PyTorch's layout.
        pads: ``(begin₁ … begin_d, end₁ … end_d)``. output_padding: extra positions at the end.

    Returns:
        ``(y, cache)``.
    """
    d = W.ndim - 2
    kernel = W.shape[2:]
    N, C = x.shape[:2]
    Fg = W.shape[1]
    G = groups
    spatial = x.shape[2:]
    L = int(np.prod(spatial))
    full = [conv_transpose_full_size(n, k, s, r, op) for n, k, s, r, op
            in zip(spatial, kernel, stride, dilation, output_padding)]
    K = int(np.prod(kernel))
    Wg = W.reshape(G, C // G, Fg * K)
    xg = x.reshape(N, G, C // G, L)
    dcols = np.matmul(Wg.transpose(0, 2, 1)[None], xg)  # (N, G, F/G·K, L)
    yfull = _col2im(dcols.reshape(N, G * Fg, K, L), full, kernel, spatial, stride, dilation)
    y = _window_of(yfull, pads[:d], [f - pads[d + a] for a, f in enumerate(full)])
    if b is not None:
        y += b.reshape((G * Fg,) + (1,) * d)
    return y, {"x": x, "W": W, "full": full, "pads": tuple(pads), "stride": tuple(stride),
               "dilation": tuple(dilation), "groups": G}


def _window_of(a: np.ndarray, begin: Sequence[int], stop: Sequence[int]) -> np.ndarray:
    """``a[..., begin:stop]`` on each spatial axis, as a new array; parts outside ``a``
    (negative ``begin``, ``stop`` past the end) are zeros."""
    d = len(begin)
    spatial = a.shape[-d:]
    out = np.zeros(a.shape[:-d] + tuple(e - s for s, e in zip(begin, stop)), dtype=a.dtype)
    src: list[Any] = [Ellipsis]
    dst: list[Any] = [Ellipsis]
    for s, e, n in zip(begin, stop, spatial):
        lo, hi = max(s, 0), min(e, n)
        src.append(slice(lo, max(hi, lo)))
        dst.append(slice(lo - s, lo - s + max(hi - lo, 0)))
    out[tuple(dst)] = a[tuple(src)]
    return out


def conv_transpose_nd_backward(dy: np.ndarray, cache: dict, need_dx: bool = True,
                               need_db: bool = True):
    """``(dx, dW, db)`` of :func:`conv_transpose_nd_forward`: ``dy`` padded back to the full
    size, then ``dx`` is its convolution with ``W`` (the forward of :func:`conv_nd_forward`)
    and ``dW`` the correlation of its columns with ``x``."""
    x, W, G = cache["x"], cache["W"], cache["groups"]
    full, pads = cache["full"], cache["pads"]
    d = len(full)
    kernel = W.shape[2:]
    N, C = x.shape[:2]
    Fg = W.shape[1]
    spatial = x.shape[2:]
    L = int(np.prod(spatial))
    K = int(np.prod(kernel))
    begin = [-p for p in pads[:d]]
    dfull = _window_of(dy, begin, [b + f for b, f in zip(begin, full)])
    cols = _columns(dfull, kernel, spatial, cache["stride"], cache["dilation"])
    cg = cols.reshape(N, G, Fg * K, L)
    xg = x.reshape(N, G, C // G, L)
    dW = np.matmul(xg, cg.transpose(0, 1, 3, 2)).sum(axis=0)  # (G, C/G, F/G·K)
    dW = dW.reshape(W.shape)
    db = dy.sum(axis=(0,) + tuple(range(2, dy.ndim))) if need_db else None
    dx = None
    if need_dx:
        Wg = W.reshape(G, C // G, Fg * K)
        dx = np.matmul(Wg[None], cg).reshape(x.shape)  # (N, G, C/G, L)
    return dx, dW, db
