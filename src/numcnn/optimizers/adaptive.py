"""Per-parameter step sizes from past squared gradients: Adagrad, Adadelta, RMSprop."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import (
    OPTIMIZERS,
    Optimizer,
    add_scaled_,
    addcdiv_,
    check_range,
    lerp_,
    with_decay,
)


@OPTIMIZERS.register("adagrad")
class Adagrad(Optimizer):
    """Adagrad (Duchi, Hazan & Singer 2011), PyTorch's ``torch.optim.Adagrad``.

    At step ``t`` (from 1), for each parameter ``p`` with gradient ``g``::

        g   ← g + λ·p                          (weight_decay λ)
        η_t = η / (1 + (t − 1)·lr_decay)
        G   ← G + g²                           (G starts at initial_accumulator_value)
        p   ← p − η_t · g / (√G + ε)

    Keras differs: its ε sits inside the root, ``√(G + ε)``, with ε = 1e-7 and G starting at
    0.1.

    Args:
        lr: learning rate η. lr_decay: the decay of η over steps (≥ 0).
        weight_decay: L2 coefficient λ. initial_accumulator_value: the initial G (≥ 0).
        eps: ε > 0 added to the root.
        **clip: ``clipnorm``, ``clipvalue``, ``global_clipnorm`` (see :class:`.Optimizer`).
    """

    def __init__(self, lr: float = 0.01, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10, **clip: Any):
        super().__init__(lr, **clip)
        self.lr_decay = check_range("lr_decay", lr_decay, 0.0, np.inf)
        self.weight_decay = check_range("weight_decay", weight_decay, 0.0, np.inf)
        self.initial_accumulator_value = check_range(
            "initial_accumulator_value", initial_accumulator_value, 0.0, np.inf)
        self.eps = check_range("eps", eps, 0.0, np.inf)

    def update(self, name, p, g):
        dt = p.dtype.type
        g = with_decay(p, g, self.weight_decay)
        st = self.state.setdefault(name, {})
        if "sum" not in st:
            st["sum"] = np.full_like(p, self.initial_accumulator_value)
        G = st["sum"]
        G += g * g
        clr = self.lr / (1 + (self.count_step(name) - 1) * self.lr_decay)
        denom = np.sqrt(G)
        denom += dt(self.eps)
        addcdiv_(p, g, denom, -clr)

    def get_config(self):
        return {**super().get_config(), "lr_decay": self.lr_decay,
                "weight_decay": self.weight_decay,
                "initial_accumulator_value": self.initial_accumulator_value, "eps": self.eps}


@OPTIMIZERS.register("adadelta")
class Adadelta(Optimizer):
    """Adadelta (Zeiler 2012), PyTorch's ``torch.optim.Adadelta``::

        g ← g + λ·p                            (weight_decay λ)
        v ← ρ·v + (1 − ρ)·g²                   (running mean of g², from 0)
        Δ = √(u + ε) / √(v + ε) · g
        u ← ρ·u + (1 − ρ)·Δ²                   (running mean of Δ², from 0)
        p ← p − η·Δ

    Zeiler's paper has no η (η = 1, PyTorch's default). Keras uses the same equation with
    other defaults: η = 0.001, ρ = 0.95, ε = 1e-7.

    Args:
        lr: learning rate η. rho: decay ρ ∈ [0, 1]. eps: ε > 0. weight_decay: λ.
        **clip: ``clipnorm``, ``clipvalue``, ``global_clipnorm`` (see :class:`.Optimizer`).
    """

    def __init__(self, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0.0, **clip: Any):
        super().__init__(lr, **clip)
        self.rho = check_range("rho", rho, 0.0, 1.0, hi_open=False)
        self.eps = check_range("eps", eps, 0.0, np.inf)
        self.weight_decay = check_range("weight_decay", weight_decay, 0.0, np.inf)

    def update(self, name, p, g):
        dt = p.dtype.type
        g = with_decay(p, g, self.weight_decay)
        rho, eps, c = dt(self.rho), dt(self.eps), dt(1 - self.rho)
        v = self.slot(name, "square_avg", p)
        u = self.slot(name, "acc_delta", p)
        v *= rho
        v += c * g * g
        delta = np.sqrt(u + eps)
        delta /= np.sqrt(v + eps)
        delta *= g
        u *= rho
        u += c * delta * delta
        add_scaled_(p, delta, -self.lr)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "eps": self.eps,
                "weight_decay": self.weight_decay}


@OPTIMIZERS.register("rmsprop")
class RMSprop(Optimizer):
    """RMSprop (Hinton, Coursera lecture 6e), PyTorch's ``torch.optim.RMSprop``::

        g ← g + λ·p                            (weight_decay λ)
        v ← α·v + (1 − α)·g²                   (from 0)
        ḡ ← α·ḡ + (1 − α)·g                    (centered only, from 0)
        d = √(v − ḡ²) + ε   if centered,   √v + ε   otherwise
        b ← μ·b + g / d;    p ← p − η·b        if momentum μ > 0 (b from 0)
        p ← p − η·g / d                         otherwise

    PyTorch calls the decay ``alpha``. Keras calls it ``rho`` (default 0.9) and puts ε
    inside the root: ``d = √(v + ε)`` (``√(v − ḡ² + ε)`` centered), ε = 1e-7.

    Args:
        lr: η. alpha: decay α ∈ [0, 1]. eps: ε > 0. weight_decay: λ. momentum: μ ∈ [0, 1).
        centered: divide by the estimated standard deviation instead of the root mean square.
        **clip: ``clipnorm``, ``clipvalue``, ``global_clipnorm`` (see :class:`.Optimizer`).
    """

    def __init__(self, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False,
                 **clip: Any):
        super().__init__(lr, **clip)
        self.alpha = check_range("alpha", alpha, 0.0, 1.0, hi_open=False)
        self.eps = check_range("eps", eps, 0.0, np.inf)
        self.weight_decay = check_range("weight_decay", weight_decay, 0.0, np.inf)
        self.momentum = check_range("momentum", momentum, 0.0, 1.0)
        self.centered = bool(centered)

    def update(self, name, p, g):
        dt = p.dtype.type
        g = with_decay(p, g, self.weight_decay)
        v = self.slot(name, "square_avg", p)
        v *= dt(self.alpha)
        v += dt(1 - self.alpha) * g * g
        if self.centered:
            gbar = self.slot(name, "grad_avg", p)
            lerp_(gbar, g, 1 - self.alpha)
            d = np.sqrt(v - gbar * gbar)
        else:
            d = np.sqrt(v)
        d += dt(self.eps)
        if self.momentum:
            b = self.slot(name, "momentum_buffer", p)
            b *= dt(self.momentum)
            b += g / d
            add_scaled_(p, b, -self.lr)
        else:
            addcdiv_(p, g, d, -self.lr)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "eps": self.eps,
                "weight_decay": self.weight_decay, "momentum": self.momentum,
                "centered": self.centered}
