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
