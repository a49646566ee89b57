"""Normalisation layers: ``BatchNorm1D``, ``BatchNorm2D`` and ``LocalResponseNorm``."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..functional.dispatch import batch_norm_backward, batch_norm_forward
from ..functional.norm import (
    local_response_norm_backward,
    local_response_norm_forward,
)
from .activations import relu_mode
from .base import LAYERS, Call, Layer
from .node import Shape


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{what} must be a number; received {what}={value!r}")
    return float(value)


class _BatchNorm(Layer):
    """Batch normalisation over channel axis 1 (see :func:`batch_norm_forward`).

    Args:
        momentum: weight of each new batch in the running statistics (PyTorch's convention:
            ``running ← (1 − momentum)·running + momentum·batch``; Keras' ``momentum`` is
            ``1 −`` this). In [0, 1]; default 0.1.
        eps: ε added to the variance (default 1e-5, as PyTorch).
        affine: learn a per-channel scale γ (``params["gamma"]``, init 1) and shift β
            (``params["beta"]``, init 0); if False, γ = 1 and β = 0 are fixed.

    Buffers (non-trainable, saved with the model, counted as non-trainable by ``summary``):
        ``running_mean`` (init 0) and ``running_var`` (init 1), shape (C,).

    ``forward(x, training=True)`` normalises with the batch statistics and updates the
    running ones; ``training=False`` uses the running statistics. ``backward`` uses the full
    batch-statistics gradient after a training forward pass.
    """

    per_sample = False  # batch statistics couple the samples of a batch

    _ndims: tuple[int, ...] = ()

    def __init__(self, momentum: float = 0.1, eps: float = 1e-5, affine: bool = True,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.momentum = _number(momentum, "momentum")
        if not 0.0 <= self.momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1]; received momentum={momentum!r}")
        self.eps = _number(eps, "eps")
        if not self.eps > 0:
            raise ValueError(f"eps must be positive; received eps={eps!r}")
        self.affine = bool(affine)

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) not in self._ndims:
            raise ValueError(
                f"{self.display_name}: expected a per-sample input shape with "
                f"{' or '.join(map(str, self._ndims))} dimensions; received {tuple(input_shape)}"
            )
        return tuple(input_shape)

    def param_shapes(self, input_shape: Shape) -> dict[str, tuple[int, ...]]:
        """``gamma`` and ``beta``: (C,) when ``affine``, else none."""
        self.output_shape(input_shape)
        C = self._known_dim(input_shape, 0)
        return {"gamma": (C,), "beta": (C,)} if self.affine else {}

    def buffer_shapes(self, input_shape: Shape) -> dict[str, tuple[int, ...]]:
        """``running_mean`` and ``running_var``: (C,)."""
        self.output_shape(input_shape)
        C = self._known_dim(input_shape, 0)
        return {"running_mean": (C,), "running_var": (C,)}

    def build(self, input_shape: Shape, rng: np.random.Generator | None = None) -> None:
        super().build(input_shape, rng)
        C = self.input_shape[0]
        if self.affine:
            self.add_param("gamma", np.ones(C))
            self.add_param("beta", np.zeros(C))
        self.buffers["running_mean"] = np.zeros(C, dtype=self.dtype)
        self.buffers["running_var"] = np.ones(C, dtype=self.dtype)

    def _gamma_beta(self) -> tuple[np.ndarray, np.ndarray]:
        if self.affine:
            return self.params["gamma"], self.params["beta"]
        C = self.input_shape[0]
        return np.ones(C, dtype=self.dtype), np.zeros(C, dtype=self.dtype)

    def fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        self.check_input(x)
        if call.fused == "bn_folded" and not call.training:
            return x  # the convolution before it applied this normalisation (inference)
        gamma, beta = self._gamma_beta()
        # fused with the ReLU that alone reads the output (models/passes.py): max(y, 0), and
        # with "relu_after" the backward pass applies 1[y > 0] to the incoming gradient
        y, call.cache = batch_norm_forward(
            x, gamma, beta, self.buffers["running_mean"], self.buffers["running_var"],
            call.training, self.momentum, self.eps, call.ws,
            relu=relu_mode(call.fused),
        )
        return y

    def bprop(self, dy: np.ndarray, call: Call, accumulate: bool = False) -> np.ndarray | None:
        dx, dgamma, dbeta = batch_norm_backward(dy, call.cache, bool(call.need_dx), call.ws)
        if self.affine:
            self.store_grad("gamma", dgamma, accumulate)
            self.store_grad("beta", dbeta, accumulate)
        return dx

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update(momentum=self.momentum, eps=self.eps, affine=self.affine)
        return cfg


@LAYERS.register("BatchNorm2D", "BatchNormalization2D")
class BatchNorm2D(_BatchNorm):
    """Batch normalisation of (N, C, H, W) maps per channel, as ``torch.nn.BatchNorm2d``.

    ``y = γ·(x − μ)/√(σ² + ε) + β`` with μ, σ² over (N, H, W) in training, the running
    statistics in inference (see :class:`_BatchNorm` for arguments and buffers).

    Shape:
        (N, C, H, W) → (N, C, H, W); ``params["gamma"]``, ``params["beta"]``: (C,).

    >>> bn = BatchNorm2D(); bn.build((6, 14, 14)); sorted(bn.buffers)
    ['running_mean', 'running_var']
    """

    _ndims = (3,)


@LAYERS.register("BatchNorm1D", "BatchNormalization1D")
class BatchNorm1D(_BatchNorm):
    """Batch normalisation of features, as ``torch.nn.BatchNorm1d``.

    Per-sample input ``(C,)`` (statistics over N) or ``(C, L)`` (statistics over N and L).
    See :class:`_BatchNorm` for arguments and buffers.

    >>> BatchNorm1D().output_shape((84,))
    (84,)
    """

    _ndims = (1, 2)


@LAYERS.register("LocalResponseNorm", "LRN")
class LocalResponseNorm(Layer):
    """Local response normalisation across channels (AlexNet), as ``torch.nn.LocalResponseNorm``.

    ``y_c = x_c · (k + (α/n)·Σ_{c' = c−⌊n/2⌋}^{c+⌊(n−1)/2⌋} x_{c'}²)^(−β)``, ``n = size``.
    Note that α is divided by ``n`` as PyTorch does (Krizhevsky et al. 2012 use
    ``k = 2, n = 5, α = 1e-4, β = 0.75`` with α undivided: pass ``alpha = 5e-4`` for that).

    Args:
        size: channels in the window (positive int).
        alpha, beta, k: the constants above (PyTorch's defaults 1e-4, 0.75, 1.0).

    Shape:
        (N, C, ...) → same; no parameters.

    >>> LocalResponseNorm(5).output_shape((96, 55, 55))
    (96, 55, 55)
    """

    def __init__(self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0,
                 **kwargs: Any):
        super().__init__(**kwargs)
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"size must be a positive int; received size={size!r}")
        self.size = int(size)
        self.alpha = _number(alpha, "alpha")
        self.beta = _number(beta, "beta")
        self.k = _number(k, "k")
        if not self.k > 0:
            raise ValueError(f"k must be positive; received k={k!r}")
        if self.alpha < 0:
            raise ValueError(f"alpha must be non-negative; received alpha={alpha!r}")

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) < 1:
            raise ValueError(
                f"{self.display_name}: expected a (C, ...) input shape; received {input_shape}"
            )
        return tuple(input_shape)

    def fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        self.check_input(x)
        y, call.cache = local_response_norm_forward(x, self.size, self.alpha, self.beta,
                                                    self.k)
        return y

    def bprop(self, dy: np.ndarray, call: Call, accumulate: bool = False) -> np.ndarray | None:
        if not call.need_dx:
            return None
        return local_response_norm_backward(dy, call.cache)

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update(size=self.size, alpha=self.alpha, beta=self.beta, k=self.k)
        return cfg
