"""``SyncBatchNorm2D``/``SyncBatchNorm1D``: batch normalisation over the global batch of a
data-parallel run (statistics allreduced across MPI ranks, forward and backward)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import LAYERS, Call
from .norm import _BatchNorm


class _SyncBatchNorm(_BatchNorm):
    """Batch normalisation whose batch statistics cover every rank's shard of the batch.

    In data-parallel training (:mod:`numcnn.training.distributed`) rank ``r`` holds rows
    ``m_r`` of a global batch of ``m``; an ordinary BatchNorm would normalise each shard with
    its own statistics (per replica, as PyTorch DDP). Here, per channel over the ``M`` values
    of the whole global batch (``M = m · spatial size``), with sums over every rank:

        μ = Σ x / M,  σ² = Σ (x − μ)² / M   (two allreduces: the sums, then the squares),
        x̂ = (x − μ) / √(σ² + ε),  y = γ·x̂ + β,

    the running statistics updated from μ and the unbiased ``σ²·M/(M − 1)``, identically on
    every rank. Backward: the rank's loss is its shard's mean, and the step uses
    ``Σ_r (m_r/m)·g_r``, so the upstream gradient of the global loss on these rows is
    ``g = (m_r/m)·dy``. With ``A = Σ g / M`` and ``B = Σ g·x̂ / M`` over every rank (one
    allreduce),

        ∂L/∂x = γ/√(σ² + ε) · (g − A − x̂·B),

    returned divided by ``m_r/m`` (the scale of the rank's own backward pass, which the
    gradient allreduce multiplies back); ``dγ = Σ dy·x̂`` and ``dβ = Σ dy`` over the shard.
    Outside a data-parallel step (one process, inference, ``fit`` without MPI) it computes
    exactly what ``BatchNorm`` does on its batch. Arguments and buffers as
    :class:`numcnn.layers.BatchNorm2D`; it is never fused with a neighbour.
    """

    #: set by the data-parallel step: ``(communicator, start, stop, m)`` of this rank's rows
    distributed: Any = None

    def fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        self.check_input(x)
        gamma, beta = self._gamma_beta()
        axes = (0,) + tuple(range(2, x.ndim))
        bs = (1, x.shape[1]) + (1,) * (x.ndim - 2)
        dt = x.dtype.type
        dist = self.distributed if call.training else None
        if call.training:
            per = x.size // max(x.shape[1], 1) // max(x.shape[0], 1)  # values per sample
            total = (dist[3] if dist is not None else x.shape[0]) * per
            if total < 2:
                raise ValueError(f"{self.display_name}: batch normalisation needs more than 1 "
                                 f"value per channel when training; received {total}")
            mu = self._sum(x, axes, dist) / total
            xc = x - mu.astype(x.dtype).reshape(bs)
            var = self._sum(xc * xc, axes, dist) / total
            mu, var = mu.astype(x.dtype), var.astype(x.dtype)
            rm, rv = self.buffers["running_mean"], self.buffers["running_var"]
            rm *= dt(1.0 - self.momentum)
            rm += dt(self.momentum) * mu
            rv *= dt(1.0 - self.momentum)
            rv += dt(self.momentum * total / (total - 1)) * var
        else:
            var = self.buffers["running_var"]
            xc = x - self.buffers["running_mean"].reshape(bs)
            total = 0
        inv_std = (dt(1.0) / np.sqrt(var + dt(self.eps))).astype(x.dtype, copy=False)
        xhat = xc * inv_std.reshape(bs)
        call.cache = (xhat, inv_std, gamma, call.training, dist, total)
        return xhat * gamma.reshape(bs) + beta.reshape(bs)

    @staticmethod
    def _sum(a: np.ndarray, axes: tuple[int, ...], dist: Any) -> np.ndarray:
        """Σ over ``axes`` of this rank's ``a``, summed over every rank (float64)."""
        s = np.ascontiguousarray(a.sum(axis=axes, dtype=np.float64))
        if dist is not None:
            dist[0].allreduce_sum(s)
        return s

    def bprop(self, dy: np.ndarray, call: Call, accumulate: bool = False) -> np.ndarray | None:
        xhat, inv_std, gamma, training, dist, total = call.cache
        axes = (0,) + tuple(range(2, dy.ndim))
        bs = (1, dy.shape[1]) + (1,) * (dy.ndim - 2)
        dbeta = dy.sum(axis=axes)
        dgamma = (dy * xhat).sum(axis=axes)
        if self.affine:
            self.store_grad("gamma", dgamma, accumulate)
            self.store_grad("beta", dbeta, accumulate)
        if not call.need_dx:
            return None
        scale = (gamma * inv_std).reshape(bs)
        if not training:
            return dy * scale
        dt = dy.dtype.type
        if dist is None:
            inv_m = dt(1.0 / total)
            return scale * (dy - inv_m * dbeta.reshape(bs) - xhat * (inv_m * dgamma).reshape(bs))
        comm, lo, hi, m = dist
        w = (hi - lo) / m  # this rank's share of the global loss
        sums = np.concatenate([dbeta, dgamma]).astype(np.float64) * w
        comm.allreduce_sum(sums)
        c = dy.shape[1]
        a = (sums[:c] / total / w).astype(dy.dtype)  # A / w
        b = (sums[c:] / total / w).astype(dy.dtype)  # B / w
        return scale * (dy - a.reshape(bs) - xhat * b.reshape(bs))


@LAYERS.register("SyncBatchNorm2D", "SyncBatchNormalization2D")
class SyncBatchNorm2D(_SyncBatchNorm):
    """:class:`SyncBatchNorm <_SyncBatchNorm>` of (N, C, H, W) maps, per channel over
    (N, H, W) of the global batch.

    >>> bn = SyncBatchNorm2D(); bn.build((3, 4, 4)); sorted(bn.buffers)
    ['running_mean', 'running_var']
    """

    _ndims = (3,)


@LAYERS.register("SyncBatchNorm1D", "SyncBatchNormalization1D")
class SyncBatchNorm1D(_SyncBatchNorm):
    """:class:`SyncBatchNorm <_SyncBatchNorm>` of (N, C) features or (N, C, L) sequences.

    >>> bn = SyncBatchNorm1D(); bn.build((5,)); bn.params["gamma"].shape
    (5,)
    """

    _ndims = (1, 2)
