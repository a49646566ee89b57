"""Adam and its relatives: Adam (with AMSGrad), Adamax, Nadam."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import (
    OPTIMIZERS,
    Optimizer,
    addcdiv_,
    check_betas,
    check_range,
    lerp_,
    with_decay,
)


@OPTIMIZERS.register("adam")
class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with optional AMSGrad, PyTorch's ``torch.optim.Adam``::

        g ← g + λ·p                                  (weight_decay λ: L2, not AdamW)
        m ← β₁·m + (1 − β₁)·g                        (from 0)
        v ← β₂·v + (1 − β₂)·g²                       (from 0)
        v̂ ← max(v̂, v) if amsgrad else v              (v̂ from 0)
        p ← p − η/(1 − β₁ᵗ) · m / (√v̂ / √(1 − β₂ᵗ) + ε)

    Keras places ε differently (the paper's "ε-hat" form):
    ``p ← p − η·√(1 − β₂ᵗ)/(1 − β₁ᵗ) · m / (√v + ε)``, so a Keras ε equals a PyTorch
    ``ε·√(1 − β₂ᵗ)``; Keras's default ε is 1e-7.

    Args:
        lr: η. betas: (β₁, β₂), each in [0, 1). eps: ε > 0. weight_decay: λ.
        amsgrad: use the running maximum of v (Reddi et al. 2018).
        **clip: ``clipnorm``, ``clipvalue``, ``global_clipnorm`` (see :class:`.Optimizer`).

    >>> opt = Adam(lr=0.1)
    >>> w = np.array([1.0]); opt.step([w], [np.array([3.0])]); w  # first step moves by η
    array([0.9])
    """

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False, **clip: Any):
        super().__init__(lr, **clip)
        self.betas = check_betas(betas)
        self.eps = check_range("eps", eps, 0.0, np.inf)
        self.weight_decay = check_range("weight_decay", weight_decay, 0.0, np.inf)
        self.amsgrad = bool(amsgrad)

    def _moments(self, name, p, g):
        """Update and return ``m`` and ``v`` in place."""
        dt = p.dtype.type
        b1, b2 = self.betas
        m = self.slot(name, "exp_avg", p)
        v = self.slot(name, "exp_avg_sq", p)
        lerp_(m, g, 1 - b1)
        v *= dt(b2)
        v += dt(1 - b2) * g * g
        return m, v

    def update(self, name, p, g):
        dt = p.dtype.type
        t = self.count_step(name)
        g = with_decay(p, g, self.weight_decay)
        m, v = self._moments(name, p, g)
        if self.amsgrad:
            vmax = self.slot(name, "max_exp_avg_sq", p)
            np.maximum(vmax, v, out=vmax)
            v = vmax
        bc1 = 1 - self.betas[0] ** t
        bc2_sqrt = np.sqrt(1 - self.betas[1] ** t)
        denom = np.sqrt(v)
        denom /= dt(bc2_sqrt)
        denom += dt(self.eps)
        addcdiv_(p, m, denom, -self.lr / bc1)

    def get_config(self):
        return {**super().get_config(), "betas": list(self.betas), "eps": self.eps,
                "weight_decay": self.weight_decay, "amsgrad": self.amsgrad}


@OPTIMIZERS.register("adamax")
class Adamax(Optimizer):
    """Adamax (Kingma & Ba 2015, §7.1: Adam with the infinity norm), PyTorch's
    ``torch.optim.Adamax``::

        g ← g + λ·p                            (weight_decay λ)
        m ← β₁·m + (1 − β₁)·g                  (from 0)
        u ← max(β₂·u, |g| + ε)                 (from 0)
        p ← p − η/(1 − β₁ᵗ) · m / u

    Keras keeps ε out of the maximum: ``u ← max(β₂·u, |g|)``, ``p ← p − … m / (u + ε)``
    (ε = 1e-7).

    Args:
        lr: η. betas: (β₁, β₂), each in [0, 1). eps: ε > 0. weight_decay: λ.
        **clip: ``clipnorm``, ``clipvalue``, ``global_clipnorm`` (see :class:`.Optimizer`).
    """

    def __init__(self, lr: float = 2e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, **clip: Any):
        super().__init__(lr, **clip)
        self.betas = check_betas(betas)
        self.eps = check_range("eps", eps, 0.0, np.inf)
        self.weight_decay = check_range("weight_decay", weight_decay, 0.0, np.inf)

    def update(self, name, p, g):
        dt = p.dtype.type
        g = with_decay(p, g, self.weight_decay)
        m = self.slot(name, "exp_avg", p)
        u = self.slot(name, "exp_inf", p)
        lerp_(m, g, 1 - self.betas[0])
        u *= dt(self.betas[1])
        np.maximum(u, np.abs(g) + dt(self.eps), out=u)
        clr = self.lr / (1 - self.betas[0] ** self.count_step(name))
        addcdiv_(p, m, u, -clr)

    def get_config(self):
        return {**super().get_config(), "betas": list(self.betas), "eps": self.eps,
                "weight_decay": self.weight_decay}


@OPTIMIZERS.register("nadam")
class Nadam(Optimizer):
    """Nadam (Dozat 2016: Adam with Nesterov momentum), PyTorch's ``torch.optim.Nadam``.

    With a momentum schedule ``μ_t = β₁·(1 − ½·0.96^{t·ψ})`` (``momentum_decay`` ψ) and its
    running product ``Π_t = μ_1 ⋯ μ_t``::

        g ← g + λ·p                            (weight_decay λ)
        m ← β₁·m + (1 − β₁)·g;  v ← β₂·v + (1 − β₂)·g²       (from 0)
        d = √(v / (1 − β₂ᵗ)) + ε
        p ← p − η·(1 − μ_t)/(1 − Π_t) · g / d − η·μ_{t+1}/(1 − Π_t·μ_{t+1}) · m / d

    Keras's Nadam has the same update with ε = 1e-7 and η = 0.001 by default.

    Args:
        lr: η. betas: (β₁, β₂), each in [0, 1). eps: ε > 0. weight_decay: λ.
        momentum_decay: ψ ≥ 0 (PyTorch's default 4e-3).
        **clip: ``clipnorm``, ``clipvalue``, ``global_clipnorm`` (see :class:`.Optimizer`).
    """

    def __init__(self, lr: float = 2e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum_decay: float = 4e-3,
                 **clip: Any):
        super().__init__(lr, **clip)
        self.betas = check_betas(betas)
        self.eps = check_range("eps", eps, 0.0, np.inf)
        self.weight_decay = check_range("weight_decay", weight_decay, 0.0, np.inf)
        self.momentum_decay = check_range("momentum_decay", momentum_decay, 0.0, np.inf)

    def update(self, name, p, g):
        dt = p.dtype.type
        t = self.count_step(name)
        b1, b2 = self.betas
        g = with_decay(p, g, self.weight_decay)
        st = self.state.setdefault(name, {})
        if "mu_product" not in st:
            st["mu_product"] = np.ones((), dtype=np.float64)
        mu = b1 * (1 - 0.5 * 0.96 ** (t * self.momentum_decay))
        mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * self.momentum_decay))
        st["mu_product"] *= mu
        prod = float(st["mu_product"])
        m = self.slot(name, "exp_avg", p)
        v = self.slot(name, "exp_avg_sq", p)
        lerp_(m, g, 1 - b1)
        v *= dt(b2)
        v += dt(1 - b2) * g * g
        d = np.sqrt(v / dt(1 - b2 ** t))
        d += dt(self.eps)
        addcdiv_(p, g, d, -self.lr * (1 - mu) / (1 - prod))
        addcdiv_(p, m, d, -self.lr * mu_next / (1 - prod * mu_next))

    def get_config(self):
        return {**super().get_config(), "betas": list(self.betas), "eps": self.eps,
                "weight_decay": self.weight_decay, "momentum_decay": self.momentum_decay}
