"""Normalisation kernels: batch normalisation and local response normalisation.

Both work on channel axis 1 of an (N, C, ...) array with any number of trailing axes
(BatchNorm1D: (N, C) or (N, C, L); BatchNorm2D and LRN: (N, C, H, W)).
"""

from __future__ import annotations

import numpy as np


def _stat_axes(x: np.ndarray) -> tuple[int, ...]:
    return (0,) + tuple(range(2, x.ndim))


def _bshape(x: np.ndarray) -> tuple[int, ...]:
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def batch_norm_forward(
    x: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray,
    running_mean: np.ndarray,
    running_var: np.ndarray,
    training: bool,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> tuple[np.ndarray, dict]:
    """Batch normalisation (Ioffe & Szegedy, 2015), PyTorch conventions.

    Per channel ``c``, over the ``m = N·(spatial size)`` values of the batch:

    * training: ``μ = mean(x)``, ``σ² = mean((x − μ)²)`` (biased), and the running statistics
      are updated **in place**: ``running_mean ← (1 − momentum)·running_mean + momentum·μ``,
      ``running_var ← (1 − momentum)·running_var + momentum·σ²·m / (m − 1)`` (unbiased);
    * inference: ``μ, σ²`` are the running statistics;
    * ``x̂ = (x − μ) / √(σ² + ε)``, ``y = γ·x̂ + β``.

    Args:
        x: (N, C, ...). gamma, beta, running_mean, running_var: (C,), same dtype as ``x``.
        training: use batch statistics and update the running ones.
        momentum: weight of the new batch in the running averages, in [0, 1].
        eps: ε added to the variance.

    Returns:
        ``(y, cache)`` with y shaped like x.

    >>> x = np.array([[1.0], [3.0]])
    >>> rm, rv = np.zeros(1), np.ones(1)
    >>> y, _ = batch_norm_forward(x, np.ones(1), np.zeros(1), rm, rv, True, 0.5, 0.0)
    >>> y[:, 0], rm, rv
    (array([-1.,  1.]), array([1.]), array([1.5]))
    """
    axes = _stat_axes(x)
    bs = _bshape(x)
    dt = x.dtype.type
    if training:
        m = x.size // x.shape[1]
        if m < 2:
            raise ValueError(
                f"batch normalisation needs more than 1 value per channel when training; "
                f"received input of shape {x.shape}"
            )
        mu = x.mean(axis=axes)
        xc = x - mu.reshape(bs)
        var = np.mean(xc * xc, axis=axes)
        running_mean *= dt(1.0 - momentum)
        running_mean += dt(momentum) * mu
        running_var *= dt(1.0 - momentum)
        running_var += dt(momentum * m / (m - 1)) * var
    else:
        var = running_var
        xc = x - running_mean.reshape(bs)
    inv_std = (dt(1.0) / np.sqrt(var + dt(eps))).astype(x.dtype, copy=False)
    xhat = xc * inv_std.reshape(bs)
    y = xhat * gamma.reshape(bs) + beta.reshape(bs)
    cache = {"xhat": xhat, "inv_std": inv_std, "gamma": gamma, "training": training}
    return y, cache


def batch_norm_backward(
    dy: np.ndarray, cache: dict, need_dx: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients of batch normalisation.

    ``dβ = Σ dy``, ``dγ = Σ dy·x̂`` (sums over every axis but the channel). In training mode
    μ and σ² depend on x, and the full batch-statistics gradient is

    ``dx = (γ / (m·√(σ² + ε))) · (m·dy − Σ dy − x̂·Σ dy·x̂)``;

    in inference mode the statistics are constants and ``dx = γ·dy / √(σ² + ε)``.

    Returns:
        ``(dx, dgamma, dbeta)``; dx is None when ``need_dx`` is False.
    """
    xhat = cache["xhat"]
    axes = _stat_axes(dy)
    bs = _bshape(dy)
    dbeta = dy.sum(axis=axes)
    dgamma = (dy * xhat).sum(axis=axes)
    if not need_dx:
        return None, dgamma, dbeta
    scale = (cache["gamma"] * cache["inv_std"]).reshape(bs)
    if not cache["training"]:
        return dy * scale, dgamma, dbeta
    m = dy.size // dy.shape[1]
    inv_m = dy.dtype.type(1.0 / m)
    dx = scale * (dy - inv_m * dbeta.reshape(bs) - xhat * (inv_m * dgamma).reshape(bs))
    return dx, dgamma, dbeta


def _channel_window_sum(a: np.ndarray, before: int, after: int, size: int) -> np.ndarray:
    """``out[:, c] = Σ_{o=0}^{size−1} a_padded[:, c + o]``, zero-padding axis 1."""
    C = a.shape[1]
    pad = [(0, 0)] * a.ndim
    pad[1] = (before, after)
    ap = np.pad(a, pad)
    out = ap[:, 0:C].copy()
    for o in range(1, size):
        out += ap[:, o : o + C]
    return out


def local_response_norm_forward(
    x: np.ndarray, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0
) -> tuple[np.ndarray, dict]:
    """Local response normalisation across channels (Krizhevsky et al., 2012), as PyTorch.

    ``y_c = x_c · D_c^(−β)``, ``D_c = k + (α / n) · Σ_{c' = c − ⌊n/2⌋}^{c + ⌊(n−1)/2⌋} x_{c'}²``

    with ``n = size`` and channels outside ``[0, C)`` counting as zero. Note ``α`` is divided
    by ``n`` (``torch.nn.LocalResponseNorm``; AlexNet's paper writes ``α`` undivided).

    Args:
        x: (N, C, ...). size: n, channels in the window. alpha, beta, k: as above.

    Returns:
        ``(y, cache)``.
    """
    dt = x.dtype.type
    s = _channel_window_sum(x * x, size // 2, (size - 1) // 2, size)
    D = dt(k) + dt(alpha / size) * s
    Dm = np.power(D, dt(-beta))
    y = x * Dm
    return y, {"x": x, "D": D, "Dm": Dm, "size": size, "alpha": alpha, "beta": beta}


def local_response_norm_backward(dy: np.ndarray, cache: dict) -> np.ndarray:
    """``dx_j = dy_j·D_j^(−β) − (2αβ/n)·x_j·Σ_{c : j ∈ window(c)} dy_c·x_c·D_c^(−β−1)``.

    ``j ∈ window(c)`` ⟺ ``j − ⌊(n−1)/2⌋ ≤ c ≤ j + ⌊n/2⌋`` — the transposed window.
    """
    x, D, Dm, n = cache["x"], cache["D"], cache["Dm"], cache["size"]
    dt = dy.dtype.type
    t = dy * x * Dm / D
    s = _channel_window_sum(t, (n - 1) // 2, n // 2, n)
    return dy * Dm - dt(2.0 * cache["alpha"] * cache["beta"] / n) * x * s
