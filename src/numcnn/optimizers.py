"""Optimizers: ``step(params, grads)`` updates parameters in place.

``params`` and ``grads`` are parallel sequences of arrays. State (velocity, moments, step
count) lives in the optimizer, keyed by the position of each parameter in that sequence, so a
model must pass its parameters in the same order every step (``Sequential`` does).
``state_dict()``/``load_state_dict()`` make training resumable.
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
