"""Fast batch normalisation: per-channel rows in the input's own memory layout.

The same arithmetic as :func:`numcnn.functional.norm.batch_norm_forward` and
``batch_norm_backward``, re-ordered for speed:

* the input is seen in its memory order as ``(P, C, L)`` — ``P`` the axes stored outside the
  channel axis, ``L`` those inside it. A convolution's batch-innermost output ``(C, H, W, N)``
  is ``P = 1``: every channel is one contiguous row, so each statistic is one pass of
  contiguous sums and each per-channel scale a broadcast of one number along a row. NCHW
  memory is ``(N, C, H·W)``, a (N, C) input ``(N, C, 1)``;
* outputs keep the input's layout (the next convolution reads it without a transpose) and
  come from the call site's :class:`Workspace`, which recycles large arrays;
* dot products along a row (``Σ(x − μ)²``, ``Σ dy·x̂``) are one BLAS product per channel
  (``(C, 1, L) @ (C, L, 1)``), without a temporary array.

Inputs whose memory is not one of these orders (a strided view) are copied once into the
batch-innermost layout.

When every channel is one contiguous row (``P = 1``) the passes of a training step run over
blocks of a few channels (:data:`CHUNK_BYTES`): the block is read from memory once and every
later pass of the statistics, the normalisation and the gradient finds it in the L2 cache
(issue 11: resnet20's 4 MB activations went through memory 6–10 times per call; its training
step took 7 % less time, measured in one process against the unblocked passes).

``relu`` fuses a following ReLU (the graph pass ``fuse_relu_into_producer`` sets it where
the ReLU is the output's only reader): the forward pass returns ``max(y, 0)``, and with
``relu="grad"`` the backward pass takes the gradient with respect to that, applying
``1[y > 0]`` itself block by block (exact: the ReLU's derivative at its input ``y``);
``relu="forward"`` leaves the gradient to a max pooling that applies the derivative.
"""

from __future__ import annotations

import numpy as np

from .workspace import Workspace, get_workspace, memory_order

#: bytes of one block of channel rows processed by all passes in turn (about a quarter of
#: the L2 cache: the block, its normalised values and the output stay in it)
CHUNK_BYTES = 1 << 19


def _order(x: np.ndarray) -> tuple[int, ...]:
    """A memory order in which ``x`` is contiguous, or () when there is none."""
    order = memory_order(x)
    return order if x.transpose(order).flags.c_contiguous else ()


def _pcl(a: np.ndarray, order: tuple[int, ...]) -> np.ndarray:
    """``a`` (contiguous in ``order``) as the (P, C, L) view described in the module."""
    k = order.index(1)
    m = a.transpose(order)
    P = int(np.prod(m.shape[:k], dtype=np.int64))
    return m.reshape(P, a.shape[1], -1)


def _rowdot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``Σ a·b`` per channel of two (P, C, L) views: one BLAS dot product per row (per
    channel when ``P = 1``), no temporary array."""
    P, C, L = a.shape
    if P == 1:
        return np.matmul(a[0][:, None, :], b[0][:, :, None]).reshape(C)
    at, bt = a.swapaxes(0, 1), b.swapaxes(0, 1)  # (C, P, L)
    return np.matmul(at[:, :, None, :], bt[:, :, :, None]).reshape(C, P).sum(axis=1)


def _csum(a: np.ndarray) -> np.ndarray:
    """``Σ a`` per channel of a (P, C, L) view."""
    return a.sum(axis=(0, 2))


def _col(v: np.ndarray) -> np.ndarray:
    return v.reshape(1, -1, 1)


def _channel_blocks(C: int, L: int, itemsize: int) -> list[slice]:
    """Blocks of whole channel rows of about :data:`CHUNK_BYTES` each."""
    per = max(1, CHUNK_BYTES // max(1, L * itemsize))
    return [slice(c, min(C, c + per)) for c in range(0, C, per)]


def _forward_rows(xv: np.ndarray, xh: np.ndarray, yv: np.ndarray, gamma: np.ndarray,
                  beta: np.ndarray, eps: float, relu: bool) -> tuple[np.ndarray, np.ndarray]:
    """Batch statistics ``(μ, σ²)``, ``x̂`` and ``y`` of (C, L) channel rows (training),
    block by block: ``μ`` (pairwise sum), ``x̂ = x − μ``, ``σ² = Σx̂²/m`` (a BLAS dot per
    row), ``x̂ ·= 1/√(σ² + ε)``, ``y = γ·x̂ + β``, then ``max(y, 0)`` with ``relu``."""
    C, L = xv.shape
    dt = xv.dtype.type
    mu, var = np.empty(C, xv.dtype), np.empty(C, xv.dtype)
    for b in _channel_blocks(C, L, xv.itemsize):
        m = (xv[b].sum(axis=1) / dt(L)).astype(xv.dtype, copy=False)
        h = np.subtract(xv[b], m[:, None], out=xh[b])
        v = (np.matmul(h[:, None, :], h[:, :, None]).reshape(-1) / dt(L)).astype(
            xv.dtype, copy=False)
        inv = (dt(1.0) / np.sqrt(v + dt(eps))).astype(xv.dtype, copy=False)
        np.multiply(h, inv[:, None], out=h)
        y = np.multiply(h, gamma[b, None], out=yv[b])
        y += beta[b, None]
        if relu:
            np.maximum(y, 0, out=y)
        mu[b], var[b] = m, v
    return mu, var


def batch_norm_forward(
    x: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray,
    running_mean: np.ndarray,
    running_var: np.ndarray,
    training: bool,
    momentum: float = 0.1,
    eps: float = 1e-5,
    ws: Workspace | None = None,
    relu: str | None = None,
) -> tuple[np.ndarray, dict]:
    """Batch normalisation, as :func:`numcnn.functional.norm.batch_norm_forward`.

    Training: ``μ``, ``σ²`` of the batch (two passes: the mean, then ``Σ(x − μ)²`` on the
    centred values), running statistics updated in place as the reference does,
    ``x̂ = (x − μ)/√(σ² + ε)`` kept for the backward pass and ``y = γ·x̂ + β``. Inference:
    ``y = x·s + t`` with ``s = γ/√(σ² + ε)``, ``t = β − μ·s`` from the running statistics
    (two passes; ``x`` is kept, and ``x̂`` made only if a backward pass asks). With ``relu``
    (``"grad"`` or ``"forward"``) the output is ``max(y, 0)`` (a fused ReLU; see the module).

    Returns:
        ``(y, cache)``; ``y`` has ``x``'s shape and memory layout.
    """
    ws = get_workspace(ws)
    order = _order(x)
    if not order:
        order = (1,) + tuple(range(2, x.ndim)) + (0,)
        xc = ws.empty_ordered("bn_x", x.shape, x.dtype, order)
        xc[...] = x
        x = xc
    dt = x.dtype.type
    xv = _pcl(x, order)
    P, C, L = xv.shape
    y = ws.fresh_ordered(x.shape, x.dtype, order)
    yv = _pcl(y, order)
    cache = {"kernel": "fast", "gamma": gamma, "training": training, "order": order,
             "y": y if relu == "grad" else None}
    if training:
        m = P * L
        if m < 2:
            raise ValueError(
                f"batch normalisation needs more than 1 value per channel when training; "
                f"received input of shape {x.shape}"
            )
        xhat = ws.fresh_ordered(x.shape, x.dtype, order)
        xh = _pcl(xhat, order)
        if P == 1:  # channel rows: every pass on a block of them while it is in cache
            mu, var = _forward_rows(xv[0], xh[0], yv[0], gamma, beta, eps, bool(relu))
        else:
            mu = (_csum(xv) / dt(m)).astype(x.dtype, copy=False)
            np.subtract(xv, _col(mu), out=xh)
            var = (_rowdot(xh, xh) / dt(m)).astype(x.dtype, copy=False)
        running_mean *= dt(1.0 - momentum)
        running_mean += dt(momentum) * mu
        running_var *= dt(1.0 - momentum)
        running_var += dt(momentum * m / (m - 1)) * var
        inv_std = (dt(1.0) / np.sqrt(var + dt(eps))).astype(x.dtype, copy=False)
        if P > 1:
            np.multiply(xh, _col(inv_std), out=xh)
            np.multiply(xh, _col(gamma), out=yv)
            np.add(yv, _col(beta), out=yv)
            if relu:
                np.maximum(yv, 0, out=yv)
        cache.update(xhat=xhat, x=None, mu=mu, inv_std=inv_std)
        return y, cache
    mu = running_mean.copy()
    inv_std = (dt(1.0) / np.sqrt(running_var + dt(eps))).astype(x.dtype, copy=False)
    s = (gamma * inv_std).astype(x.dtype, copy=False)
    t = (beta - mu * s).astype(x.dtype, copy=False)
    np.multiply(xv, _col(s), out=yv)
    np.add(yv, _col(t), out=yv)
    if relu:
        np.maximum(yv, 0, out=yv)
    cache.update(xhat=None, x=x, mu=mu, inv_std=inv_std)
    return y, cache


def batch_norm_backward(
    dy: np.ndarray, cache: dict, need_dx: bool = True, ws: Workspace | None = None,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients of batch normalisation, as :func:`numcnn.functional.norm.batch_norm_backward`:
    ``dβ = Σ dy``, ``dγ = Σ dy·x̂`` and (training) ``dx = s·(dy − Σdy/m − x̂·Σ(dy·x̂)/m)``,
    ``s = γ/√(σ² + ε)``, or (inference) ``dx = s·dy``. After a forward pass with
    ``relu="grad"``, ``dy`` is the gradient of ``max(y, 0)`` and is first multiplied by
    ``1[y > 0]``.

    Returns:
        ``(dx, dgamma, dbeta)``; ``dx`` (None unless ``need_dx``) in the forward input's
        memory layout.
    """
    ws = get_workspace(ws)
    order = cache["order"]
    dt = dy.dtype.type
    if _order(dy) != order:
        g = ws.empty_ordered("bn_dy", dy.shape, dy.dtype, order)
        g[...] = dy
        dy = g
    xhat = cache["xhat"]
    if xhat is None:  # after an inference-mode forward pass
        xhat = ws.fresh_ordered(cache["x"].shape, cache["x"].dtype, order)
        np.multiply(np.subtract(_pcl(cache["x"], order), _col(cache["mu"]),
                                out=_pcl(xhat, order)), _col(cache["inv_std"]),
                    out=_pcl(xhat, order))
    xh = _pcl(xhat, order)
    dv = _pcl(dy, order)
    P, C, L = dv.shape
    scale = (cache["gamma"] * cache["inv_std"]).astype(dy.dtype, copy=False)
    dx = ws.fresh_ordered(dy.shape, np.result_type(dy, xhat), order) if need_dx else None
    relu_y = None if cache.get("y") is None else _pcl(cache["y"], order)
    if P == 1:
        return (dx,) + _backward_rows(dv[0], xh[0], None if dx is None else _pcl(dx, order)[0],
                                      None if relu_y is None else relu_y[0], scale,
                                      cache["training"], ws)
    if relu_y is not None:
        masked = ws.fresh_ordered(dy.shape, dy.dtype, order)
        dv = np.multiply(dv, relu_y > 0, out=_pcl(masked, order))
    dbeta = _csum(dv)
    dgamma = _rowdot(dv, xh)
    if not need_dx:
        return None, dgamma, dbeta
    dxv = _pcl(dx, order)
    if not cache["training"]:
        np.multiply(dv, _col(scale), out=dxv)
        return dx, dgamma, dbeta
    inv_m = dt(1.0 / (P * L))
    # dx = s·(dy − Σdy/m − x̂·Σ(dy·x̂)/m) = s·dy − (x̂·(s·Σ(dy·x̂)/m) + s·Σdy/m)
    np.multiply(xh, _col((inv_m * dgamma).astype(dy.dtype, copy=False)), out=dxv)
    np.add(dxv, _col((inv_m * dbeta).astype(dy.dtype, copy=False)), out=dxv)
    np.subtract(dv, dxv, out=dxv)
    np.multiply(dxv, _col(scale), out=dxv)
    return dx, dgamma, dbeta


def _backward_rows(dv: np.ndarray, xh: np.ndarray, dxv: np.ndarray | None,
                   relu_y: np.ndarray | None, scale: np.ndarray, training: bool,
                   ws: Workspace) -> tuple[np.ndarray, np.ndarray]:
    """:func:`batch_norm_backward` on (C, L) channel rows, block by block: the block of
    ``dy`` (masked by ``1[y > 0]`` after a fused ReLU), its sums ``Σdy`` and ``Σdy·x̂``, and
    ``dx`` while the block is in cache. Returns ``(dγ, dβ)`` and fills ``dxv``."""
    C, L = dv.shape
    dt = dv.dtype.type
    inv_m = dt(1.0 / L)
    dgamma, dbeta = np.empty(C, dv.dtype), np.empty(C, dv.dtype)
    blocks = _channel_blocks(C, L, dv.itemsize)
    masked = None
    if relu_y is not None:
        masked = ws.empty("bn_relu_dy", (blocks[0].stop - blocks[0].start, L), dv.dtype)
        mask = ws.empty("bn_relu_mask", masked.shape, np.bool_)
    for b in blocks:
        d = dv[b]
        if relu_y is not None:
            n = b.stop - b.start
            d = np.multiply(d, np.greater(relu_y[b], 0, out=mask[:n]), out=masked[:n])
        db = d.sum(axis=1)
        dg = np.matmul(d[:, None, :], xh[b][:, :, None]).reshape(-1)
        dbeta[b], dgamma[b] = db, dg
        if dxv is None:
            continue
        o = dxv[b]
        if not training:
            np.multiply(d, scale[b, None], out=o)
            continue
        np.multiply(xh[b], (inv_m * dg).astype(dv.dtype, copy=False)[:, None], out=o)
        o += (inv_m * db).astype(dv.dtype, copy=False)[:, None]
        np.subtract(d, o, out=o)
        o *= scale[b, None]
    return dgamma, dbeta
