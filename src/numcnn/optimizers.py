"""Optimizers: ``step(params, grads)`` updates parameters in place.

``params`` and ``grads`` are parallel sequences of arrays. State (velocity, moments, step
count) lives in the optimizer, keyed by the position of each parameter in that sequence, so a
model must pass its parameters in the same order every step (``Sequential`` does).
``state_dict()``/``load_state_dict()`` make training resumable.

Every update rule follows PyTorch's ``torch.optim`` class of the same name (same argument
names, defaults and equation; weight decay is the L2 term ``g ← g + λ·p`` folded into the
gradient), and each docstring writes the equation out and says where Keras differs (mostly
where ε sits). ``lr`` is a plain attribute read at every step, so a schedule or callback can
change it between steps. Learning-rate schedules live in :mod:`numcnn.schedules`.

| name | class | PyTorch | reference |
|---|---|---|---|
| ``sgd`` | :class:`SGD` | ``SGD`` | Robbins & Monro 1951; Polyak 1964; Sutskever et al. 2013 |
| ``adagrad`` | :class:`Adagrad` | ``Adagrad`` | Duchi, Hazan & Singer 2011 |
| ``adadelta`` | :class:`Adadelta` | ``Adadelta`` | Zeiler 2012 |
| ``rmsprop`` | :class:`RMSprop` | ``RMSprop`` | Hinton, Coursera lecture 6e (2012) |
| ``adam`` | :class:`Adam` | ``Adam`` | Kingma & Ba 2015; AMSGrad: Reddi et al. 2018 |
| ``adamax`` | :class:`Adamax` | ``Adamax`` | Kingma & Ba 2015, §7.1 |
| ``nadam`` | :class:`Nadam` | ``NAdam`` | Dozat 2016 |
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._registry import Registry

OPTIMIZERS = Registry("optimizer")


class Optimizer:
    """Base class holding ``lr``, the step count and the per-parameter state."""

    def __init__(self, lr: float = 0.01):
        if not (isinstance(lr, (int, float)) and lr > 0):
            raise ValueError(f"lr must be a positive number; received lr={lr!r}")
        self.lr = float(lr)
        self.iterations = 0
        self.state: dict[int, dict[str, np.ndarray]] = {}

    def step(self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray]) -> None:
        """Apply one update to every parameter in place."""
        if len(params) != len(grads):
            raise ValueError(
                f"params and grads must be parallel; received {len(params)} and {len(grads)}"
            )
        self.iterations += 1
        for i, (p, g) in enumerate(zip(params, grads)):
            if p.shape != g.shape:
                raise ValueError(f"parameter {i} has shape {p.shape} but its gradient {g.shape}")
            self.update(i, p, g)

    def update(self, i: int, p: np.ndarray, g: np.ndarray) -> None:  # pragma: no cover
        raise NotImplementedError

    def slot(self, i: int, name: str, like: np.ndarray) -> np.ndarray:
        """Per-parameter state array, created as zeros on first use."""
        st = self.state.setdefault(i, {})
        if name not in st:
            st[name] = np.zeros_like(like)
        return st[name]

    def get_config(self) -> dict[str, Any]:
        return {"lr": self.lr}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def state_dict(self) -> dict[str, np.ndarray]:
        """Flat dict of arrays: ``"{i}/{slot}"`` plus ``"iterations"`` and ``"lr"``."""
        out = {f"{i}/{k}": v.copy() for i, st in self.state.items() for k, v in st.items()}
        out["iterations"] = np.asarray(self.iterations)
        out["lr"] = np.asarray(self.lr)
        return out

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.state = {}
        for key, value in state.items():
            if key in ("iterations", "lr"):
                continue
            i, name = key.split("/", 1)
            self.state.setdefault(int(i), {})[name] = np.array(value)
        self.iterations = int(state.get("iterations", 0))
        if "lr" in state:
            self.lr = float(state["lr"])


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
    """

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0):
        super().__init__(lr)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1); received momentum={momentum!r}")
        if nesterov and momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0; received momentum=0")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0; received weight_decay={weight_decay!r}")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.weight_decay = float(weight_decay)

    def update(self, i, p, g):
        lr = p.dtype.type(self.lr)
        if self.weight_decay:
            g = g + p.dtype.type(self.weight_decay) * p
        if self.momentum:
            st = self.state.setdefault(i, {})
            mu = p.dtype.type(self.momentum)
            if "v" not in st:
                st["v"] = g.copy()
            else:
                v = st["v"]
                v *= mu
                v += g
            v = st["v"]
            g = g + mu * v if self.nesterov else v
        p -= lr * g

    def get_config(self):
        return {"lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay}


def _check_range(name: str, value: Any, lo: float, hi: float, hi_open: bool = True) -> float:
    """``value`` as a float, checked to lie in ``[lo, hi)`` (or ``[lo, hi]``)."""
    ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)
    ok = ok and lo <= value and (value < hi if hi_open else value <= hi)
    if not ok:
        bracket = ")" if hi_open else "]"
        raise ValueError(f"{name} must be in [{lo}, {hi}{bracket}; received {name}={value!r}")
    return float(value)


def _check_betas(betas: Any) -> tuple[float, float]:
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
        raise ValueError(f"betas must be a pair (beta1, beta2); received betas={betas!r}")
    return (_check_range("betas[0]", betas[0], 0.0, 1.0),
            _check_range("betas[1]", betas[1], 0.0, 1.0))


def _with_decay(p: np.ndarray, g: np.ndarray, weight_decay: float) -> np.ndarray:
    """``g + λ·p`` (L2 penalty folded into the gradient, PyTorch's coupled weight decay)."""
    return g + p.dtype.type(weight_decay) * p if weight_decay else g


def _lerp_(a: np.ndarray, b: np.ndarray, w: float) -> None:
    """``a ← a + w·(b − a)`` in place (= ``(1 − w)·a + w·b``), rounded as PyTorch's ``lerp``."""
    wt = a.dtype.type(w)
    if w < 0.5:
        a += wt * (b - a)
    else:
        a[...] = b - (b - a) * a.dtype.type(1 - w)


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
    """

    def __init__(self, lr: float = 0.01, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10):
        super().__init__(lr)
        self.lr_decay = _check_range("lr_decay", lr_decay, 0.0, np.inf)
        self.weight_decay = _check_range("weight_decay", weight_decay, 0.0, np.inf)
        self.initial_accumulator_value = _check_range(
            "initial_accumulator_value", initial_accumulator_value, 0.0, np.inf)
        self.eps = _check_range("eps", eps, 0.0, np.inf)

    def update(self, i, p, g):
        dt = p.dtype.type
        g = _with_decay(p, g, self.weight_decay)
        st = self.state.setdefault(i, {})
        if "sum" not in st:
            st["sum"] = np.full_like(p, self.initial_accumulator_value)
        G = st["sum"]
        G += g * g
        clr = self.lr / (1 + (self.iterations - 1) * self.lr_decay)
        denom = np.sqrt(G)
        denom += dt(self.eps)
        p -= dt(clr) * (g / denom)

    def get_config(self):
        return {"lr": self.lr, "lr_decay": self.lr_decay, "weight_decay": self.weight_decay,
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
    """

    def __init__(self, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0.0):
        super().__init__(lr)
        self.rho = _check_range("rho", rho, 0.0, 1.0, hi_open=False)
        self.eps = _check_range("eps", eps, 0.0, np.inf)
        self.weight_decay = _check_range("weight_decay", weight_decay, 0.0, np.inf)

    def update(self, i, p, g):
        dt = p.dtype.type
        g = _with_decay(p, g, self.weight_decay)
        rho, eps, c = dt(self.rho), dt(self.eps), dt(1 - self.rho)
        v = self.slot(i, "square_avg", p)
        u = self.slot(i, "acc_delta", p)
        v *= rho
        v += c * g * g
        delta = np.sqrt(u + eps)
        delta /= np.sqrt(v + eps)
        delta *= g
        u *= rho
        u += c * delta * delta
        p -= dt(self.lr) * delta

    def get_config(self):
        return {"lr": self.lr, "rho": self.rho, "eps": self.eps,
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
    """

    def __init__(self, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False):
        super().__init__(lr)
        self.alpha = _check_range("alpha", alpha, 0.0, 1.0, hi_open=False)
        self.eps = _check_range("eps", eps, 0.0, np.inf)
        self.weight_decay = _check_range("weight_decay", weight_decay, 0.0, np.inf)
        self.momentum = _check_range("momentum", momentum, 0.0, 1.0)
        self.centered = bool(centered)

    def update(self, i, p, g):
        dt = p.dtype.type
        g = _with_decay(p, g, self.weight_decay)
        v = self.slot(i, "square_avg", p)
        v *= dt(self.alpha)
        v += dt(1 - self.alpha) * g * g
        if self.centered:
            gbar = self.slot(i, "grad_avg", p)
            _lerp_(gbar, g, 1 - self.alpha)
            d = np.sqrt(v - gbar * gbar)
        else:
            d = np.sqrt(v)
        d += dt(self.eps)
        if self.momentum:
            b = self.slot(i, "momentum_buffer", p)
            b *= dt(self.momentum)
            b += g / d
            p -= dt(self.lr) * b
        else:
            p -= dt(self.lr) * (g / d)

    def get_config(self):
        return {"lr": self.lr, "alpha": self.alpha, "eps": self.eps,
                "weight_decay": self.weight_decay, "momentum": self.momentum,
                "centered": self.centered}


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

    >>> opt = Adam(lr=0.1)
    >>> w = np.array([1.0]); opt.step([w], [np.array([3.0])]); w  # first step moves by η
    array([0.9])
    """

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False):
        super().__init__(lr)
        self.betas = _check_betas(betas)
        self.eps = _check_range("eps", eps, 0.0, np.inf)
        self.weight_decay = _check_range("weight_decay", weight_decay, 0.0, np.inf)
        self.amsgrad = bool(amsgrad)

    def _moments(self, i, p, g):
        """Update and return ``m`` and ``v`` in place."""
        dt = p.dtype.type
        b1, b2 = self.betas
        m = self.slot(i, "exp_avg", p)
        v = self.slot(i, "exp_avg_sq", p)
        _lerp_(m, g, 1 - b1)
        v *= dt(b2)
        v += dt(1 - b2) * g * g
        return m, v

    def update(self, i, p, g):
        dt = p.dtype.type
        t = self.iterations
        g = _with_decay(p, g, self.weight_decay)
        m, v = self._moments(i, p, g)
        if self.amsgrad:
            vmax = self.slot(i, "max_exp_avg_sq", p)
            np.maximum(vmax, v, out=vmax)
            v = vmax
        bc1 = 1 - self.betas[0] ** t
        bc2_sqrt = np.sqrt(1 - self.betas[1] ** t)
        denom = np.sqrt(v)
        denom /= dt(bc2_sqrt)
        denom += dt(self.eps)
        p -= dt(self.lr / bc1) * (m / denom)

    def get_config(self):
        return {"lr": self.lr, "betas": list(self.betas), "eps": self.eps,
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
    """

    def __init__(self, lr: float = 2e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(lr)
        self.betas = _check_betas(betas)
        self.eps = _check_range("eps", eps, 0.0, np.inf)
        self.weight_decay = _check_range("weight_decay", weight_decay, 0.0, np.inf)

    def update(self, i, p, g):
        dt = p.dtype.type
        g = _with_decay(p, g, self.weight_decay)
        m = self.slot(i, "exp_avg", p)
        u = self.slot(i, "exp_inf", p)
        _lerp_(m, g, 1 - self.betas[0])
        u *= dt(self.betas[1])
        np.maximum(u, np.abs(g) + dt(self.eps), out=u)
        clr = self.lr / (1 - self.betas[0] ** self.iterations)
        p -= dt(clr) * (m / u)

    def get_config(self):
        return {"lr": self.lr, "betas": list(self.betas), "eps": self.eps,
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
    """

    def __init__(self, lr: float = 2e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum_decay: float = 4e-3):
        super().__init__(lr)
        self.betas = _check_betas(betas)
        self.eps = _check_range("eps", eps, 0.0, np.inf)
        self.weight_decay = _check_range("weight_decay", weight_decay, 0.0, np.inf)
        self.momentum_decay = _check_range("momentum_decay", momentum_decay, 0.0, np.inf)

    def update(self, i, p, g):
        dt = p.dtype.type
        t = self.iterations
        b1, b2 = self.betas
        g = _with_decay(p, g, self.weight_decay)
        st = self.state.setdefault(i, {})
        if "mu_product" not in st:
            st["mu_product"] = np.ones((), dtype=np.float64)
        mu = b1 * (1 - 0.5 * 0.96 ** (t * self.momentum_decay))
        mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * self.momentum_decay))
        st["mu_product"] *= mu
        prod = float(st["mu_product"])
        m = self.slot(i, "exp_avg", p)
        v = self.slot(i, "exp_avg_sq", p)
        _lerp_(m, g, 1 - b1)
        v *= dt(b2)
        v += dt(1 - b2) * g * g
        d = np.sqrt(v / dt(1 - b2 ** t))
        d += dt(self.eps)
        p -= dt(self.lr * (1 - mu) / (1 - prod)) * (g / d)
        p -= dt(self.lr * mu_next / (1 - prod * mu_next)) * (m / d)

    def get_config(self):
        return {"lr": self.lr, "betas": list(self.betas), "eps": self.eps,
                "weight_decay": self.weight_decay, "momentum_decay": self.momentum_decay}


def get(identifier: Any, **kwargs: Any) -> Optimizer:
    """An optimizer from a registered name, a class, or an instance."""
    return OPTIMIZERS.get(identifier, **kwargs)


# ------------------------------------------------- LeNet-5 (1998): stochastic diagonal LM


@OPTIMIZERS.register("sdlm")
class SDLM(Optimizer):
    """Stochastic diagonal Levenberg–Marquardt (LeCun et al. 1998, appendix C).

    Each parameter ``w_k`` has its own step size from a diagonal Gauss–Newton estimate
    ``h_kk`` of the curvature ``∂²E/∂w_k²``::

        ε_k = η / (μ + h_kk)
        w_k ← w_k − ε_k · ∂E/∂w_k

    ``μ`` guards against tiny or zero curvature (the paper uses μ = 0.02 on MNIST).
    ``h_kk`` is not computed here: it is estimated by back-propagating second derivatives
    (``Layer.backward_gn``) over a few hundred patterns and handed over with
    :meth:`set_curvature` (see :func:`numcnn.training.sdlm.estimate_curvature`, which
    re-estimates it on 500 patterns before every pass). Until then ``h = 0`` (step ``η/μ``).
    The global rate ``η`` is ``lr``; :data:`LENET5_ETA_SCHEDULE` is the paper's schedule.

    Args:
        lr: global learning rate η. mu: the damping μ > 0.

    >>> import numpy as np
    >>> opt = SDLM(lr=5e-4, mu=0.02)
    >>> w, g = np.array([1.0, 1.0]), np.array([1.0, 1.0])
    >>> opt.set_curvature([np.array([0.0, 0.48])]); opt.step([w], [g]); w
    array([0.975, 0.999])
    """

    def __init__(self, lr: float = 5e-4, mu: float = 0.02):
        super().__init__(lr)
        if not (isinstance(mu, (int, float)) and mu > 0 and np.isfinite(mu)):
            raise ValueError(f"mu must be a positive number; received mu={mu!r}")
        self.mu = float(mu)

    def set_curvature(self, hdiag: Sequence[np.ndarray]) -> None:
        """Store the Gauss–Newton diagonals ``h`` (parallel to the parameters passed to
        :meth:`step`); negative values (impossible for Gauss–Newton) raise."""
        for i, h in enumerate(hdiag):
            h = np.asarray(h)
            if h.size and h.min() < 0:
                raise ValueError(f"curvature {i} has negative entries (min {h.min()})")
            self.state.setdefault(i, {})["h"] = np.array(h, copy=True)
        self._eps: dict[int, tuple[float, np.ndarray]] = {}

    def step_sizes(self, i: int, like: np.ndarray) -> np.ndarray:
        """``ε = η / (μ + h)`` for parameter ``i`` (cached until ``lr`` or ``h`` change)."""
        cache = self.__dict__.setdefault("_eps", {})
        hit = cache.get(i)
        if hit is not None and hit[0] == self.lr and hit[1].dtype == like.dtype:
            return hit[1]
        h = self.state.get(i, {}).get("h")
        h = np.zeros(like.shape) if h is None else h.astype(np.float64)
        eps = (self.lr / (self.mu + h)).astype(like.dtype)
        cache[i] = (self.lr, eps)
        return eps

    def update(self, i, p, g):
        p -= self.step_sizes(i, p) * g

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        super().load_state_dict(state)
        self._eps = {}

    def get_config(self):
        return {"lr": self.lr, "mu": self.mu}


#: The paper's global learning-rate schedule for SDLM: (η, number of passes), then 1e-5.
LENET5_ETA_SCHEDULE = ((5e-4, 2), (2e-4, 3), (1e-4, 3), (5e-5, 4), (1e-5, None))


def lenet5_eta(pass_index: int) -> float:
    """η for pass ``pass_index`` (0-based) under :data:`LENET5_ETA_SCHEDULE`.

    >>> [lenet5_eta(k) for k in (0, 1, 2, 5, 8, 12, 19)]
    [0.0005, 0.0005, 0.0002, 0.0001, 5e-05, 1e-05, 1e-05]
    """
    if pass_index < 0:
        raise ValueError(f"pass_index must be >= 0; received pass_index={pass_index}")
    start = 0
    for eta, n in LENET5_ETA_SCHEDULE:
        if n is None or pass_index < start + n:
            return eta
        start += n
    raise AssertionError("unreachable")
