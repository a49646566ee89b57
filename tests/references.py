"""Independent naive reference implementations for the test suite.

Everything here is written with plain Python loops over output positions so that it shares
no code (and no clever indexing) with :mod:`numcnn.functional`. It is slow and only meant for
tiny inputs. Other engineers add their own references at the end of this file; do not alter
existing functions.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

# ----------------------------------------------------------------------------- helpers


def pads4(padding, kernel: tuple[int, int], stride: tuple[int, int], in_hw: tuple[int, int]):
    """Explicit ``(top, bottom, left, right)`` padding from a layer's padding argument.

    ``"same"`` uses the TensorFlow rule written out independently: the output size is
    ``ceil(n / s)`` and the total padding ``max((ceil(n / s) − 1)·s + k − n, 0)`` is split
    with the extra pixel at the bottom/right.
    """
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        out = []
        for n, k, s in zip(in_hw, kernel, stride):
            m = int(np.ceil(n / s))
            total = max((m - 1) * s + k - n, 0)
            out += [total // 2, total - total // 2]
        return tuple(out)
    if isinstance(padding, int):
        return (padding, padding, padding, padding)
    if len(padding) == 2:
        return (padding[0], padding[0], padding[1], padding[1])
    return tuple(padding)


def _pad(x: np.ndarray, pads, value: float = 0.0) -> np.ndarray:
    pt, pb, pl, pr = pads
    N, C, H, W = x.shape
    out = np.full((N, C, H + pt + pb, W + pl + pr), value, dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(H):
                for j in range(W):
                    out[n, c, pt + i, pl + j] = x[n, c, i, j]
    return out


def _out_len(n: int, k: int, s: int, p0: int, p1: int) -> int:
    # counts window starts one by one rather than using the closed formula
    m = 0
    start = 0
    while start + k <= n + p0 + p1:
        m += 1
        start += s
    return m


# ------------------------------------------------------------------------- convolution


def conv2d_ref(x, W, b=None, stride=(1, 1), pads=(0, 0, 0, 0)) -> np.ndarray:
    """Naive cross-correlation ``y[n,f,p,q] = Σ_{c,i,j} xp[n,c,p·sh+i,q·sw+j]·W[f,c,i,j] + b[f]``.

    Args:
        x: (N, C, H, W). W: (F, C, kh, kw). b: (F,) or None.
        stride: (sh, sw). pads: (top, bottom, left, right) zero padding.

    Returns:
        y of shape (N, F, Ho, Wo) in the dtype of ``x``.
    """
    N, C, H, Wd = x.shape
    F, _, kh, kw = W.shape
    sh, sw = stride
    Ho = _out_len(H, kh, sh, pads[0], pads[1])
    Wo = _out_len(Wd, kw, sw, pads[2], pads[3])
    xp = _pad(x, pads)
    y = np.zeros((N, F, Ho, Wo), dtype=np.float64)
    for n in range(N):
        for f in range(F):
            for p in range(Ho):
                for q in range(Wo):
                    acc = 0.0
                    for c in range(C):
                        for i in range(kh):
                            for j in range(kw):
                                acc += float(xp[n, c, p * sh + i, q * sw + j]) * float(
                                    W[f, c, i, j]
                                )
                    y[n, f, p, q] = acc + (float(b[f]) if b is not None else 0.0)
    return y.astype(x.dtype)


def conv2d_backward_ref(x, W, dy, stride=(1, 1), pads=(0, 0, 0, 0)):
    """Naive conv backward: accumulate every output's contribution.

    ``dxp[n,c,p·sh+i,q·sw+j] += dy[n,f,p,q]·W[f,c,i,j]``, ``dW[f,c,i,j] += dy·xp[...]``,
    ``db[f] = Σ dy[:, f]``.

    Returns:
        ``(dx, dW, db)`` in float64.
    """
    N, C, H, Wd = x.shape
    F, _, kh, kw = W.shape
    sh, sw = stride
    pt, pb, pl, pr = pads
    xp = _pad(x.astype(np.float64), pads)
    dxp = np.zeros_like(xp)
    dW = np.zeros(W.shape, dtype=np.float64)
    db = np.zeros(F, dtype=np.float64)
    _, _, Ho, Wo = dy.shape
    for n in range(N):
        for f in range(F):
            for p in range(Ho):
                for q in range(Wo):
                    g = float(dy[n, f, p, q])
                    db[f] += g
                    for c in range(C):
                        for i in range(kh):
                            for j in range(kw):
                                dxp[n, c, p * sh + i, q * sw + j] += g * float(W[f, c, i, j])
                                dW[f, c, i, j] += g * xp[n, c, p * sh + i, q * sw + j]
    dx = dxp[:, :, pt : pt + H, pl : pl + Wd]
    return dx, dW, db


# ----------------------------------------------------------------------------- pooling


def max_pool2d_ref(x, pool, stride, pads=(0, 0, 0, 0)):
    """Naive max pooling with −∞ padding; also returns the first arg-max of each window.

    Returns:
        ``(y, dx_fn)`` where ``dx_fn(dy)`` routes each ``dy`` to the first (row-major)
        maximum of its window, summing where windows overlap (PyTorch's rule).
    """
    N, C, H, W = x.shape
    kh, kw = pool
    sh, sw = stride
    pt, pb, pl, pr = pads
    Ho = _out_len(H, kh, sh, pt, pb)
    Wo = _out_len(W, kw, sw, pl, pr)
    xp = _pad(x, pads, value=-np.inf)
    y = np.zeros((N, C, Ho, Wo), dtype=x.dtype)
    where = np.zeros((N, C, Ho, Wo, 2), dtype=np.int64)
    for n in range(N):
        for c in range(C):
            for p in range(Ho):
                for q in range(Wo):
                    best, bi, bj = -np.inf, -1, -1
                    for i in range(kh):
                        for j in range(kw):
                            v = xp[n, c, p * sh + i, q * sw + j]
                            if v > best:
                                best, bi, bj = v, p * sh + i, q * sw + j
                    y[n, c, p, q] = best
                    where[n, c, p, q] = (bi, bj)

    def dx_fn(dy):
        dxp = np.zeros(xp.shape, dtype=np.float64)
        for n in range(N):
            for c in range(C):
                for p in range(Ho):
                    for q in range(Wo):
                        bi, bj = where[n, c, p, q]
                        dxp[n, c, bi, bj] += dy[n, c, p, q]
        return dxp[:, :, pt : pt + H, pl : pl + W]

    return y, dx_fn


def avg_pool2d_ref(x, pool, stride, pads=(0, 0, 0, 0), count_include_pad=True):
    """Naive average pooling with zero padding.

    The divisor is ``kh·kw`` when ``count_include_pad`` else the number of real inputs in the
    window.
    """
    N, C, H, W = x.shape
    kh, kw = pool
    sh, sw = stride
    pt, pb, pl, pr = pads
    Ho = _out_len(H, kh, sh, pt, pb)
    Wo = _out_len(W, kw, sw, pl, pr)
    y = np.zeros((N, C, Ho, Wo), dtype=np.float64)
    for n in range(N):
        for c in range(C):
            for p in range(Ho):
                for q in range(Wo):
                    s, cnt = 0.0, 0
                    for i in range(kh):
                        for j in range(kw):
                            r, t = p * sh + i - pt, q * sw + j - pl
                            if 0 <= r < H and 0 <= t < W:
                                s += float(x[n, c, r, t])
                                cnt += 1
                    y[n, c, p, q] = s / (kh * kw if count_include_pad else cnt)
    return y.astype(x.dtype)


# ------------------------------------------------------------------------------- dense


def dense_ref(x, W, b=None):
    """Naive ``y[n, u] = Σ_i x[n, i]·W[i, u] + b[u]`` with W of shape (in, units)."""
    N, D = x.shape
    U = W.shape[1]
    y = np.zeros((N, U), dtype=np.float64)
    for n in range(N):
        for u in range(U):
            acc = 0.0
            for i in range(D):
                acc += float(x[n, i]) * float(W[i, u])
            y[n, u] = acc + (float(b[u]) if b is not None else 0.0)
    return y.astype(x.dtype)


# ------------------------------------------------------------------ numerical gradients


def numerical_grad(f: Callable[[], float], x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Element-wise central differences ``(f(x + ε e_i) − f(x − ε e_i)) / 2ε``.

    ``x`` is perturbed **in place** (and restored), so ``f`` may close over it — this works
    for layer parameters as well as inputs. ``f`` takes no argument and returns a scalar.
    Meant for tiny arrays (one pair of evaluations per element); use float64.

    >>> a = np.array([1.0, 2.0])
    >>> np.round(numerical_grad(lambda: float((a ** 2).sum()), a), 6)
    array([2., 4.])
    """
    g = np.zeros(x.shape, dtype=np.float64)
    flat = x.reshape(-1)  # a view: x must be contiguous
    assert np.shares_memory(flat, x), "numerical_grad needs a contiguous array"
    for k in range(flat.size):
        old = flat[k]
        flat[k] = old + eps
        fp = float(f())
        flat[k] = old - eps
        fm = float(f())
        flat[k] = old
        g.reshape(-1)[k] = (fp - fm) / (2 * eps)
    return g


def directional_grad(
    f: Callable[[], float], x: np.ndarray, v: np.ndarray, eps: float = 1e-6
) -> float:
    """Central difference along direction ``v``: ``(f(x + εv) − f(x − εv)) / 2ε``.

    ``x`` is perturbed in place and restored.
    """
    old = x.copy()
    x += eps * v
    fp = float(f())
    x[...] = old - eps * v
    fm = float(f())
    x[...] = old
    return (fp - fm) / (2 * eps)


def check_grad(
    f: Callable[[], float],
    x: np.ndarray,
    analytic: np.ndarray,
    eps: float = 1e-6,
    rtol: float = 1e-5,
    atol: float = 1e-7,
    max_elementwise: int = 200,
    n_dirs: int = 6,
    seed: int = 0,
) -> None:
    """Assert ``analytic`` matches the central-difference gradient of ``f`` w.r.t. ``x``.

    Element-wise when ``x.size <= max_elementwise``; otherwise ``n_dirs`` random unit
    directions ``v`` and compare ``<analytic, v>`` with the directional difference.
    """
    assert x.dtype == np.float64, "gradient checks run in float64"
    assert analytic.shape == x.shape, (analytic.shape, x.shape)
    if x.size <= max_elementwise:
        num = numerical_grad(f, x, eps)
        np.testing.assert_allclose(analytic, num, rtol=rtol, atol=atol)
        return
    rng = np.random.default_rng(seed)
    for _ in range(n_dirs):
        v = rng.standard_normal(x.shape)
        v /= np.linalg.norm(v)
        num = directional_grad(f, x, v, eps)
        ana = float((analytic * v).sum())
        np.testing.assert_allclose(ana, num, rtol=rtol, atol=atol)


def tie_free(shape, rng: np.random.Generator, lo: float = -1.0, hi: float = 1.0) -> np.ndarray:
    """A shuffled ``linspace``: all values distinct (gaps ≫ finite-difference ε), float64."""
    n = int(np.prod(shape))
    return rng.permutation(np.linspace(lo, hi, n)).reshape(shape)


def off_kink(shape, rng: np.random.Generator, margin: float = 0.05) -> np.ndarray:
    """Normal samples pushed at least ``margin`` away from 0 (ReLU's kink), float64."""
    x = rng.standard_normal(shape)
    return np.where(x >= 0, x + margin, x - margin)


# ------------------------------------------------- pooling variants (issue 3, layer pieces)


def lp_pool2d_ref(x, p, pool, stride, pads=(0, 0, 0, 0), mean=False, use_abs=False):
    """Naive Lp pooling: ``(Σ v^p)^(1/p)`` or ``((1/(kh·kw)) Σ v^p)^(1/p)``, ``v = x`` or |x|.

    Zero padding; every window position is visited one by one. float64 result.
    """
    N, C, H, W = x.shape
    kh, kw = pool
    sh, sw = stride
    pt, pb, pl, pr = pads
    Ho = _out_len(H, kh, sh, pt, pb)
    Wo = _out_len(W, kw, sw, pl, pr)
    y = np.zeros((N, C, Ho, Wo))
    for n in range(N):
        for c in range(C):
            for a in range(Ho):
                for b in range(Wo):
                    s = 0.0
                    for i in range(kh):
                        for j in range(kw):
                            r, t = a * sh + i - pt, b * sw + j - pl
                            if 0 <= r < H and 0 <= t < W:
                                v = float(x[n, c, r, t])
                                s += (abs(v) if use_abs else v) ** p
                    if mean:
                        s /= kh * kw
                    y[n, c, a, b] = s ** (1.0 / p)
    return y


def weighted_pool2d_ref(x, pool, stride, pads, sigma):
    """Naive Gaussian-weighted pooling; weights computed from scratch per window offset.

    ``w_ij = exp(−((i − (kh−1)/2)² + (j − (kw−1)/2)²) / (2σ²)) / Z`` with ``Z`` the sum of
    the unnormalised weights. float64 result.
    """
    N, C, H, W = x.shape
    kh, kw = pool
    sh, sw = stride
    pt, pb, pl, pr = pads
    raw = [[np.exp(-((i - (kh - 1) / 2) ** 2 + (j - (kw - 1) / 2) ** 2) / (2 * sigma**2))
            for j in range(kw)] for i in range(kh)]
    Z = sum(sum(row) for row in raw)
    Ho = _out_len(H, kh, sh, pt, pb)
    Wo = _out_len(W, kw, sw, pl, pr)
    y = np.zeros((N, C, Ho, Wo))
    for n in range(N):
        for c in range(C):
            for a in range(Ho):
                for b in range(Wo):
                    s = 0.0
                    for i in range(kh):
                        for j in range(kw):
                            r, t = a * sh + i - pt, b * sw + j - pl
                            if 0 <= r < H and 0 <= t < W:
                                s += raw[i][j] / Z * float(x[n, c, r, t])
                    y[n, c, a, b] = s
    return y


# ----------------------------------------------- LeNet-5 (1998): diagonal Gauss–Newton (issue 4)


def lenet_gn_diagonal_ref(x, labels, spec):
    """LeCun et al. (1998) appendix C diagonal Gauss–Newton, one connection at a time.

    The network is described unit by unit: every connection ``(source unit, target unit,
    parameter index)`` is enumerated with loops, the forward pass sums ``w · x`` over the
    connections of each unit, and the second backward pass applies, per connection,
    ``h[param] += x_src² · d2a_dst`` and ``d2x_src += w² · d2a_dst``; per squashing unit
    ``d2a = f′(a)² · d2x``. The output is the RBF/MAP pair whose curvature is ``2/N`` on every
    input of the correct class's RBF unit (and on that unit's centre).

    Args:
        x: (N, C, H, W) input. labels: (N,) ints.
        spec: list of ``(kind, params)`` with kind one of ``"pad"`` (``{"pads", "value"}``),
            ``"conv"`` (``{"W", "b", "table"}``; table (C_in, C_out) booleans, stride 1, no
            padding), ``"tanh"`` (``{"A", "S"}``), ``"sub"`` (``{"coef", "b", "p"}``),
            ``"flatten"``, ``"dense"`` (``{"W", "b"}``; W (in, out)), ``"rbf"`` (``{"W"}``).

    Returns:
        list (one dict per spec entry) of ``{param_name: h}`` averaged over the batch.
    """
    N = x.shape[0]
    hs = [{k: np.zeros(np.shape(v)) for k, v in p.items()
           if k in ("W", "b", "coef")} for _, p in spec]
    for n in range(N):
        # ---- forward, keeping every layer's input as a dict unit -> value
        acts = []  # per layer: (input values dict, list of connections, output dict, extra)
        cur = {idx: float(v) for idx, v in np.ndenumerate(x[n])}
        shape = x.shape[1:]
        for kind, p in spec:
            conns = []  # (src, dst, param_name, param_index)  (src None = bias input 1)
            out = {}
            if kind == "pad":
                pt, pb, pl, pr = p["pads"]
                C, H, W = shape
                shape = (C, H + pt + pb, W + pl + pr)
                for idx in np.ndindex(*shape):
                    c, i, j = idx
                    src = (c, i - pt, j - pl)
                    out[idx] = cur[src] if src in cur else p["value"]
                    if src in cur:
                        conns.append((src, idx, None, None))  # identity link
            elif kind == "conv":
                Wt, bt, table = p["W"], p["b"], np.asarray(p["table"], bool)
                F, Cin, kh, kw = Wt.shape
                _, H, W = shape
                shape = (F, H - kh + 1, W - kw + 1)
                for (o, i, j) in np.ndindex(*shape):
                    a = 0.0
                    for c in range(Cin):
                        if not table[c, o]:
                            continue
                        for u in range(kh):
                            for v in range(kw):
                                src = (c, i + u, j + v)
                                a += Wt[o, c, u, v] * cur[src]
                                conns.append((src, (o, i, j), "W", (o, c, u, v)))
                    a += bt[o]
                    conns.append((None, (o, i, j), "b", (o,)))
                    out[(o, i, j)] = a
            elif kind == "tanh":
                for idx, a in cur.items():
                    out[idx] = p["A"] * np.tanh(p["S"] * a)
            elif kind == "sub":
                q = p["p"]
                C, H, W = shape
                shape = (C, H // q, W // q)
                for (c, i, j) in np.ndindex(*shape):
                    s = 0.0
                    for u in range(q):
                        for v in range(q):
                            src = (c, q * i + u, q * j + v)
                            s += cur[src]
                            conns.append((src, (c, i, j), "coef", (c,)))
                    out[(c, i, j)] = p["coef"][c] * s + p["b"][c]
                    conns.append((None, (c, i, j), "b", (c,)))
            elif kind == "flatten":
                keys = sorted(cur)
                for k, src in enumerate(keys):
                    out[(k,)] = cur[src]
                    conns.append((src, (k,), None, None))
                shape = (len(keys),)
            elif kind == "dense":
                Wt, bt = p["W"], p["b"]
                for u in range(Wt.shape[1]):
                    a = bt[u]
                    conns.append((None, (u,), "b", (u,)))
                    for k in range(Wt.shape[0]):
                        a += Wt[k, u] * cur[(k,)]
                        conns.append(((k,), (u,), "W", (k, u)))
                    out[(u,)] = a
                shape = (Wt.shape[1],)
            elif kind == "rbf":
                out = None
            acts.append((cur, conns, out))
            if out is not None:
                cur = out
        # ---- second backward pass, connection by connection
        d2 = None
        for li in range(len(spec) - 1, -1, -1):
            kind, p = spec[li]
            inp, conns, out = acts[li]
            if kind == "rbf":
                D = int(labels[n])
                d2 = {idx: 2.0 / N for idx in inp}  # ∂²(‖x − w_D‖²/N)/∂x_j² = 2/N
                hs[li]["W"][D, :] += 2.0 / N
                continue
            if kind == "tanh":
                d2 = {idx: (p["S"] / p["A"] * (p["A"] ** 2 - out[idx] ** 2)) ** 2 * d2[idx]
                      for idx in inp}
                continue
            new = dict.fromkeys(inp, 0.0)
            for src, dst, name, pidx in conns:
                xv = 1.0 if src is None else inp[src]
                if name is None:  # identity link (pad, flatten)
                    new[src] += d2[dst]
                    continue
                w = p[name][pidx]
                hs[li][name][pidx] += xv * xv * d2[dst]
                if src is not None:
                    new[src] += w * w * d2[dst]
            d2 = new
    return hs


def assert_conv_backward_matches_ref(grads, x, W, dy, stride, pads, dtype):
    """Check ``(dx, dW, db)`` from ``conv2d_backward`` against :func:`conv2d_backward_ref`
    (dtype-aware tolerance; shapes and dtypes too)."""
    dx, dW, db = grads
    tol = 1e-4 if np.dtype(dtype) == np.float32 else 1e-11
    for got, ref in zip((dx, dW, db), conv2d_backward_ref(x, W, dy, stride, pads)):
        assert got.dtype == np.dtype(dtype) and got.shape == ref.shape
        np.testing.assert_allclose(got, ref, rtol=tol, atol=tol)


# ------------------------------------------- average-pooling backward (kernel paths tests)


def avg_pool2d_backward_ref(x_shape, dy, pool, stride, pads=(0, 0, 0, 0),
                            count_include_pad=True):
    """Naive average-pooling backward: every window hands ``dy / d`` to each real input it
    covers (zero padding receives nothing), summing where windows overlap.

    ``d`` is ``kh·kw`` when ``count_include_pad`` else the number of real inputs in the window,
    counted again here one position at a time. float64 result of shape ``x_shape``.
    """
    N, C, H, W = x_shape
    kh, kw = pool
    sh, sw = stride
    pt, _, pl, _ = pads
    _, _, Ho, Wo = dy.shape
    dx = np.zeros((N, C, H, W), dtype=np.float64)
    for n in range(N):
        for c in range(C):
            for p in range(Ho):
                for q in range(Wo):
                    inside = []
                    for i in range(kh):
                        for j in range(kw):
                            r, t = p * sh + i - pt, q * sw + j - pl
                            if 0 <= r < H and 0 <= t < W:
                                inside.append((r, t))
                    d = kh * kw if count_include_pad else len(inside)
                    for r, t in inside:
                        dx[n, c, r, t] += float(dy[n, c, p, q]) / d
    return dx


# ------------------------------------- pooling with ceil_mode, adaptive pooling (issue 11)


def _ceil_starts(n: int, k: int, s: int, p0: int, p1: int, ceil_mode: bool) -> list[int]:
    """Window starts (in padded coordinates), found one by one: floor mode keeps a window
    that fits the padded input; ceil mode keeps one as long as the window before it did not
    reach the padded end yet, and it starts inside the input or its left padding."""
    L = n + p0 + p1
    starts, t = [], 0
    while (t - s + k < L and t < p0 + n) if ceil_mode else (t + k <= L):
        starts.append(t)
        t += s
    return starts


def pool2d_ceil_ref(x, kind, pool, stride, pads=(0, 0, 0, 0), ceil_mode=False,
                    count_include_pad=True):
    """Naive max (``kind="max"``) or average pooling with PyTorch's ``ceil_mode`` rules.

    A window covers padded positions ``[t, t + k)``; only real inputs are pooled. The max
    is the first (row-major) maximum of the real inputs; the average divides by the number
    of window positions inside the padded input (``count_include_pad``) or the number of
    real inputs. Returns ``(y, dx_fn)``, float64.
    """
    N, C, H, W = x.shape
    kh, kw = pool
    sh, sw = stride
    pt, pb, pl, pr = pads
    rows = _ceil_starts(H, kh, sh, pt, pb, ceil_mode)
    cols = _ceil_starts(W, kw, sw, pl, pr, ceil_mode)
    y = np.zeros((N, C, len(rows), len(cols)))
    routes = {}  # (n, c, p, q) -> [(r, t, weight)]
    for n in range(N):
        for c in range(C):
            for p, t0 in enumerate(rows):
                for q, u0 in enumerate(cols):
                    real, inside = [], 0
                    for i in range(t0, t0 + kh):
                        for j in range(u0, u0 + kw):
                            if i < H + pt + pb and j < W + pl + pr:
                                inside += 1
                            r, t = i - pt, j - pl
                            if 0 <= r < H and 0 <= t < W:
                                real.append((r, t))
                    if kind == "max":
                        best = real[0]
                        for r, t in real[1:]:
                            if x[n, c, r, t] > x[n, c, best[0], best[1]]:
                                best = (r, t)
                        y[n, c, p, q] = x[n, c, best[0], best[1]]
                        routes[n, c, p, q] = [(best[0], best[1], 1.0)]
                    else:
                        d = inside if count_include_pad else len(real)
                        y[n, c, p, q] = sum(float(x[n, c, r, t]) for r, t in real) / d
                        routes[n, c, p, q] = [(r, t, 1.0 / d) for r, t in real]

    def dx_fn(dy):
        dx = np.zeros((N, C, H, W))
        for (n, c, p, q), route in routes.items():
            for r, t, wgt in route:
                dx[n, c, r, t] += float(dy[n, c, p, q]) * wgt
        return dx

    return y, dx_fn


def adaptive_pool2d_ref(x, kind, out_hw):
    """Naive adaptive max / average pooling: output ``(i, j)`` pools rows
    ``floor(i·H/Ho) ≤ h < ceil((i+1)·H/Ho)`` and the columns alike (computed in floating
    point here). Max: the first (row-major) maximum. Returns ``(y, dx_fn)``, float64."""
    N, C, H, W = x.shape
    Ho, Wo = out_hw

    def span(i, n, m):
        return int(np.floor(i * n / m)), int(np.ceil((i + 1) * n / m))

    y = np.zeros((N, C, Ho, Wo))
    routes = {}
    for n in range(N):
        for c in range(C):
            for i in range(Ho):
                h0, h1 = span(i, H, Ho)
                for j in range(Wo):
                    w0, w1 = span(j, W, Wo)
                    cells = [(r, t) for r in range(h0, h1) for t in range(w0, w1)]
                    if kind == "max":
                        best = cells[0]
                        for r, t in cells[1:]:
                            if x[n, c, r, t] > x[n, c, best[0], best[1]]:
                                best = (r, t)
                        y[n, c, i, j] = x[n, c, best[0], best[1]]
                        routes[n, c, i, j] = [(best[0], best[1], 1.0)]
                    else:
                        y[n, c, i, j] = sum(float(x[n, c, r, t]) for r, t in cells) / len(cells)
                        routes[n, c, i, j] = [(r, t, 1.0 / len(cells)) for r, t in cells]

    def dx_fn(dy):
        dx = np.zeros((N, C, H, W))
        for (n, c, i, j), route in routes.items():
            for r, t, wgt in route:
                dx[n, c, r, t] += float(dy[n, c, i, j]) * wgt
        return dx

    return y, dx_fn


# ------------------------------- grouped convolution, locally connected layer (issue 11)


def grouped_conv2d_ref(x, W, b=None, stride=(1, 1), pads=(0, 0, 0, 0), groups=1):
    """Naive grouped cross-correlation: output map ``f`` of group ``g = f // (F/G)`` reads
    input maps ``g·C/G + c'`` only, ``y[n,f,p,q] = Σ_{c',i,j} xp[n, g·C/G + c', p·sh+i,
    q·sw+j]·W[f,c',i,j] + b[f]`` (PyTorch's ``groups``). Returns float64."""
    N, C, H, Wd = x.shape
    F, Cg, kh, kw = W.shape
    assert Cg * groups == C and F % groups == 0
    Fg = F // groups
    sh, sw = stride
    Ho = _out_len(H, kh, sh, pads[0], pads[1])
    Wo = _out_len(Wd, kw, sw, pads[2], pads[3])
    xp = _pad(x.astype(np.float64), pads)
    y = np.zeros((N, F, Ho, Wo))
    for n in range(N):
        for f in range(F):
            g = f // Fg
            for p in range(Ho):
                for q in range(Wo):
                    acc = 0.0 if b is None else float(b[f])
                    for c in range(Cg):
                        for i in range(kh):
                            for j in range(kw):
                                acc += xp[n, g * Cg + c, p * sh + i, q * sw + j] * float(
                                    W[f, c, i, j])
                    y[n, f, p, q] = acc
    return y


def grouped_conv2d_backward_ref(x, W, dy, stride=(1, 1), pads=(0, 0, 0, 0), groups=1):
    """Naive backward of :func:`grouped_conv2d_ref`: every output's contribution to
    ``dx``, ``dW`` and ``db``, accumulated one by one. Returns float64 ``(dx, dW, db)``."""
    N, C, H, Wd = x.shape
    F, Cg, kh, kw = W.shape
    Fg = F // groups
    sh, sw = stride
    pt, _, pl, _ = pads
    xp = _pad(x.astype(np.float64), pads)
    dxp = np.zeros_like(xp)
    dW = np.zeros(W.shape)
    db = np.zeros(F)
    _, _, Ho, Wo = dy.shape
    for n in range(N):
        for f in range(F):
            g = f // Fg
            for p in range(Ho):
                for q in range(Wo):
                    d = float(dy[n, f, p, q])
                    db[f] += d
                    for c in range(Cg):
                        for i in range(kh):
                            for j in range(kw):
                                r, t = p * sh + i, q * sw + j
                                dxp[n, g * Cg + c, r, t] += d * float(W[f, c, i, j])
                                dW[f, c, i, j] += d * xp[n, g * Cg + c, r, t]
    return dxp[:, :, pt : pt + H, pl : pl + Wd], dW, db


def locally_connected2d_ref(x, W, b=None, stride=(1, 1), pads=(0, 0, 0, 0)):
    """Naive locally connected layer, one kernel per output position:
    ``y[n,f,p,q] = Σ_{c,i,j} W[p,q,f,c,i,j]·xp[n,c,p·sh+i,q·sw+j] + b[f,p,q]`` with
    ``W`` (Ho, Wo, F, C, kh, kw) and ``b`` (F, Ho, Wo). Returns float64."""
    N, C, H, Wd = x.shape
    Ho, Wo, F, _, kh, kw = W.shape
    sh, sw = stride
    assert (Ho, Wo) == (_out_len(H, kh, sh, pads[0], pads[1]),
                        _out_len(Wd, kw, sw, pads[2], pads[3]))
    xp = _pad(x.astype(np.float64), pads)
    y = np.zeros((N, F, Ho, Wo))
    for n in range(N):
        for f in range(F):
            for p in range(Ho):
                for q in range(Wo):
                    acc = 0.0 if b is None else float(b[f, p, q])
                    for c in range(C):
                        for i in range(kh):
                            for j in range(kw):
                                acc += xp[n, c, p * sh + i, q * sw + j] * float(
                                    W[p, q, f, c, i, j])
                    y[n, f, p, q] = acc
    return y


def locally_connected2d_backward_ref(x, W, dy, stride=(1, 1), pads=(0, 0, 0, 0)):
    """Naive backward of :func:`locally_connected2d_ref`. Returns float64 ``(dx, dW, db)``
    shaped (N, C, H, W), (Ho, Wo, F, C, kh, kw), (F, Ho, Wo)."""
    N, C, H, Wd = x.shape
    Ho, Wo, F, _, kh, kw = W.shape
    sh, sw = stride
    pt, _, pl, _ = pads
    xp = _pad(x.astype(np.float64), pads)
    dxp = np.zeros_like(xp)
    dW = np.zeros(W.shape)
    db = np.zeros((F, Ho, Wo))
    for n in range(N):
        for f in range(F):
            for p in range(Ho):
                for q in range(Wo):
                    d = float(dy[n, f, p, q])
                    db[f, p, q] += d
                    for c in range(C):
                        for i in range(kh):
                            for j in range(kw):
                                r, t = p * sh + i, q * sw + j
                                dxp[n, c, r, t] += d * float(W[p, q, f, c, i, j])
                                dW[p, q, f, c, i, j] += d * xp[n, c, r, t]
    return dxp[:, :, pt : pt + H, pl : pl + Wd], dW, db


def assert_float32_close(got, ref32, ref64, scale, terms, what=""):
    """A float32 result ``got`` is as close to the float64 ``ref64`` as the reference's own
    float32 result ``ref32`` is — at most 4× its largest error plus 2ε·max(scale) — and no
    element exceeds the worst-case bound ``(terms + 2)·ε·scale`` of a sum of ``terms``
    products whose absolute values add up to ``scale`` (element-wise). Machine-independent:
    the allowance follows the reference's rounding, never a tuned constant."""
    eps = float(np.finfo(np.float32).eps)
    assert got.dtype == np.float32 and ref32.dtype == np.float32, (what, got.dtype, ref32.dtype)
    assert got.shape == ref32.shape == ref64.shape == np.shape(scale), what
    err = np.abs(got.astype(np.float64) - ref64)
    err_ref = np.abs(ref32.astype(np.float64) - ref64)
    big = float(np.max(scale)) if np.size(scale) else 0.0
    assert err.max(initial=0.0) <= 4 * err_ref.max(initial=0.0) + 2 * eps * big, (
        f"{what}: error {err.max():.3g}, the reference's float32 error {err_ref.max():.3g}")
    assert np.all(err <= (terms + 2) * eps * np.asarray(scale) + 1e-30), what
