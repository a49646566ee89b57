"""Stochastic diagonal Levenberg–Marquardt (LeCun et al. 1998, appendix C)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import OPTIMIZERS, Optimizer, named


@OPTIMIZERS.register("sdlm")
class SDLM(Optimizer):
    """Stochastic diagonal Levenberg–Marquardt (LeCun et al. 1998, appendix C).

    Each parameter ``w_k`` has its own step size from a diagonal Gauss–Newton estimate
    ``h_kk`` of the curvature ``∂²E/∂w_k²``::

        ε_k = η / (μ + h_kk)
        w_k ← w_k − ε_k · ∂E/∂w_k

    ``μ`` guards against tiny or zero curvature (the paper uses μ = 0.02 on MNIST).
    ``h_kk`` is not computed here: it is estimated by back-propagating second derivatives
    through the model's Gauss–Newton rules (:mod:`numcnn.layers.gauss_newton`) over a few
    hundred patterns and handed over with :meth:`set_curvature` — the
    :class:`numcnn.training.sdlm.SDLMCurvature` callback does this before every pass. Until
    then ``h = 0`` (step ``η/μ``). The global rate ``η`` is ``lr``;
    :data:`numcnn.schedules.LENET5_ETA` is the paper's schedule.

    Args:
        lr: global learning rate η. mu: the damping μ > 0.
        **clip: ``clipnorm``, ``clipvalue``, ``global_clipnorm`` (see :class:`.Optimizer`).

    >>> import numpy as np
    >>> opt = SDLM(lr=5e-4, mu=0.02)
    >>> w, g = np.array([1.0, 1.0]), np.array([1.0, 1.0])
    >>> opt.set_curvature({"w": np.array([0.0, 0.48])}); opt.step({"w": w}, {"w": g}); w
    array([0.975, 0.999])
    """

    def __init__(self, lr: float = 5e-4, mu: float = 0.02, **clip: Any):
        super().__init__(lr, **clip)
        if isinstance(mu, bool) or not (isinstance(mu, (int, float)) and mu > 0
                                        and np.isfinite(mu)):
            raise ValueError(f"mu must be a positive number; received mu={mu!r}")
        self.mu = float(mu)
        self._eps: dict[str, tuple[float, float, np.ndarray]] = {}

    def set_curvature(self, hdiag: Any) -> None:
        """Store the Gauss–Newton diagonals ``h``: ``{name: h}`` with the names of the
        parameters passed to :meth:`step` (or a sequence, by position). Negative values
        (impossible for Gauss–Newton) raise."""
        hs = named(hdiag, hdiag)[0]
        for name, h in hs.items():
            h = np.asarray(h)
            if h.size and not (h.min() >= 0):
                raise ValueError(f"curvature {name!r} has negative or NaN entries "
                                 f"(min {h.min()})")
            self.state.setdefault(name, {})["h"] = np.array(h, copy=True)
        self._eps = {}

    def step_sizes(self, name: str, like: np.ndarray) -> np.ndarray:
        """``ε = η / (μ + h)`` for parameter ``name`` (cached until ``lr``, ``μ`` or ``h``
        change)."""
        hit = self._eps.get(name)
        if hit is not None and hit[0] == self.lr and hit[1] == self.mu \
                and hit[2].dtype == like.dtype:
            return hit[2]
        h = self.state.get(name, {}).get("h")
        h = np.zeros(like.shape) if h is None else h.astype(np.float64)
        eps = (self.lr / (self.mu + h)).astype(like.dtype)
        self._eps[name] = (self.lr, self.mu, eps)
        return eps

    def update(self, name, p, g):
        p -= self.step_sizes(name, p) * g

    def state_dict(self) -> dict[str, np.ndarray]:
        out = super().state_dict()
        out["mu"] = np.asarray(self.mu)
        return out

    def load_state_dict(self, state) -> None:
        state = dict(state)
        mu = state.pop("mu", None)
        super().load_state_dict(state)
        if mu is not None:
            self.mu = float(mu)
        self._eps = {}

    def get_config(self):
        return {**super().get_config(), "mu": self.mu}
