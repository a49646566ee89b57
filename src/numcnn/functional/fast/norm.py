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
"""

from __future__ import annotations

import numpy as np

from .workspace import Workspace, get_workspace, memory_order


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
) -> tuple[np.ndarray, dict]:
    """Batch normalisation, as :func:`numcnn.functional.norm.batch_norm_forward`.

    Training: ``μ``, ``σ²`` of the batch (two passes: the mean, then ``Σ(x − μ)²`` on the
    centred values), running statistics updated in place as the reference does,
    ``x̂ = (x − μ)/√(σ² + ε)`` kept for the backward pass and ``y = γ·x̂ + β``. Inference:
    ``y = x·s + t`` with ``s = γ/√(σ² + ε)``, ``t = β − μ·s`` from the running statistics
    (two passes; ``x`` is kept, and ``x̂`` made only if a backward pass asks).

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
    if training:
        m = P * L
        if m < 2:
            raise ValueError(
                f"batch normalisation needs more than 1 value per channel when training; "
                f"received input of shape {x.shape}"
            )
        mu = (_csum(xv) / dt(m)).astype(x.dtype, copy=False)
        xhat = ws.fresh_ordered(x.shape, x.dtype, order)
        xh = _pcl(xhat, order)
        np.subtract(xv, _col(mu), out=xh)
        var = (_rowdot(xh, xh) / dt(m)).astype(x.dtype, copy=False)
        running_mean *= dt(1.0 - momentum)
        running_mean += dt(momentum) * mu
        running_var *= dt(1.0 - momentum)
        running_var += dt(momentum * m / (m - 1)) * var
        inv_std = (dt(1.0) / np.sqrt(var + dt(eps))).astype(x.dtype, copy=False)
        np.multiply(xh, _col(inv_std), out=xh)
        np.multiply(xh, _col(gamma), out=yv)
        np.add(yv, _col(beta), out=yv)
        cache = {"kernel": "fast", "xhat": xhat, "x": None, "mu": mu, "inv_std": inv_std,
                 "gamma": gamma, "training": True, "order": order}
        return y, cache
    mu = running_mean.copy()
    inv_std = (dt(1.0) / np.sqrt(running_var + dt(eps))).astype(x.dtype, copy=False)
    s = (gamma * inv_std).astype(x.dtype, copy=False)
    t = (beta - mu * s).astype(x.dtype, copy=False)
    np.multiply(xv, _col(s), out=yv)
    np.add(yv, _col(t), out=yv)
    cache = {"kernel": "fast", "xhat": None, "x": x, "mu": mu, "inv_std": inv_std,
             "gamma": gamma, "training": False, "order": order}
    return y, cache


def batch_norm_backward(
    dy: np.ndarray, cache: dict, need_dx: bool = True, ws: Workspace | None = None,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients of batch normalisation, as :func:`numcnn.functional.norm.batch_norm_backward`:
    ``dβ = Σ dy``, ``dγ = Σ dy·x̂`` and (training) ``dx = s·(dy − Σdy/m − x̂·Σ(dy·x̂)/m)``,
    ``s = γ/√(σ² + ε)``, or (inference) ``dx = s·dy``.

    Returns:
        ``(dx, dgamma, dbeta)``; ``dx`` (None unless ``need_dx``) in the forward input's
        memory layout.
    """
    ws = get_workspace(ws)
    order = cache["order"]
    dt = dy.dtype.type
    xhat = cache["xhat"]
    if xhat is None:  # after an inference-mode forward pass
        xhat = ws.fresh_ordered(cache["x"].shape, cache["x"].dtype, order)
        np.multiply(np.subtract(_pcl(cache["x"], order), _col(cache["mu"]),
                                out=_pcl(xhat, order)), _col(cache["inv_std"]),
                    out=_pcl(xhat, order))
    xh = _pcl(xhat, order)
    if _order(dy) != order:
        g = ws.empty_ordered("bn_dy", dy.shape, dy.dtype, order)
        g[...] = dy
        dy = g
    dv = _pcl(dy, order)
    P, C, L = dv.shape
    dbeta = _csum(dv)
    dgamma = _rowdot(dv, xh)
    if not need_dx:
        return None, dgamma, dbeta
    scale = (cache["gamma"] * cache["inv_std"]).astype(dy.dtype, copy=False)
    dx = ws.fresh_ordered(dy.shape, np.result_type(dy, xhat), order)
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
