"""Stochastic gradient descent (with momentum and Nesterov), PyTorch's ``torch.optim.SGD``."""

from __future__ import annotations

from typing import Any

from .base import OPTIMIZERS, Optimizer, add_scaled_, scaled_sum, with_decay


@OPTIMIZERS.register("sgd")
class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov and weight decay.

    PyTorch's convention (``torch.optim.SGD``, dampening 0)::

        g ← g + λ·p                       (weight_decay λ)
        v ← μ·v + g                       (momentum μ; v starts at g)
        p ← p − η·(g + μ·v)   if nesterov
        p ← p − η·v           otherwise

    Args:
        lr: learning rate η. momentum: μ ∈ [0, 1). nesterov: use Nesterov momentum.
        weight_decay: L2 coefficient λ.
        **clip: ``clipnorm``, ``clipvalue``, ``global_clipnorm`` (see :class:`.Optimizer`).
    """

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0, **clip: Any):
        super().__init__(lr, **clip)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1); received momentum={momentum!r}")
        if nesterov and momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0; received momentum=0")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0; received weight_decay={weight_decay!r}")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.weight_decay = float(weight_decay)

    def update(self, name, p, g):
        g = with_decay(p, g, self.weight_decay)
        if self.momentum:
            st = self.state.setdefault(name, {})
            if "v" not in st:
                st["v"] = g.copy()
            else:
                v = st["v"]
                v *= p.dtype.type(self.momentum)
                v += g
            v = st["v"]
            g = scaled_sum(g, v, self.momentum) if self.nesterov else v
        add_scaled_(p, g, -self.lr)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay}
