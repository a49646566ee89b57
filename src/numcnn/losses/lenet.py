"""LeNet-5's (1998) maximum a posteriori loss on the RBF penalties."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import LOSSES, Loss, class_targets, times


@LOSSES.register("lenet_map")
class LeNetMAP(Loss):
    """LeNet-5's maximum a posteriori criterion on RBF penalties (LeCun et al. 1998, eq. 9).

    ``y_pred`` holds the penalties ``y_i ≥ 0`` of the Euclidean RBF output units (low for
    the recognised class; predict with ``argmin``). For the correct class ``D_p``::

        E = (1/N) Σ_p [ y_{D_p} + log(e^{−j} + Σ_i e^{−y_pi}) ]

        ∂E/∂y_pi = (δ_{i D_p} − e^{−y_pi} / Z_p) / N,   Z_p = e^{−j} + Σ_k e^{−y_pk}

    The first term pulls the correct class's penalty down (maximum likelihood); the second
    is the log of a partition function in which a "rubbish" class of constant penalty ``j``
    takes part: it pushes up the penalties of the wrong classes that come close, but not of
    classes whose penalties are already far above ``j``, and it stops pulling the correct
    class down once ``y_D`` is well below ``j``. It is computed as a stable log-sum-exp
    (shifted by ``min(j, min_i y_i)``).

    Args:
        j: the rubbish-class penalty ``j > 0``. The paper gives no value. The default
            ``j = 10`` is chosen from the scale of the penalties: an F6 output that matches
            a ±1 bitmap to within ±0.35 per unit gives ``y_D ≈ 84·0.35² ≈ 10``, while two
            bitmaps differ in at least 8 of 84 pixels (a penalty of ≥ 32 for the exact
            code of the wrong class). So the competitive term acts on patterns whose
            correct-class penalty is already small and on the wrong classes that come close
            to it, and training stops pushing a pattern that is already well recognised.

    ``backward_gn()`` returns the Gauss–Newton weights SDLM back-propagates into
    :class:`numcnn.layers.RBFOutput` (see there): ``onehot(D_p) / N``. That is the exact
    curvature of the maximum-likelihood term ``y_D = ‖x − w_D‖²`` (a sum of squared
    residuals); the competitive log-sum-exp term enters with negative weights ``−p_i`` on
    the squared residuals and is dropped, as Gauss–Newton drops terms that may make the
    estimate negative — the "MSE-like" output curvature of the paper's appendix C.

    >>> loss = LeNetMAP(j=10.0)
    >>> round(loss(np.array([[0.0, 50.0]]), np.array([0])), 6)  # ≈ log(1 + e^{−10})
    4.5e-05
    """

    sample_mean = True
    class_scores = True
    value_axes = 1

    def __init__(self, j: float = 10.0, **kwargs: Any):
        super().__init__(**kwargs)
        if not isinstance(j, (int, float)) or not j > 0 or not np.isfinite(j):
            raise ValueError(f"j must be a positive number; received j={j!r}")
        self.j = float(j)

    def _values(self, y, y_true):
        if y.ndim != 2:
            raise ValueError(f"lenet_map: expected penalties (N, K); received {y.shape}")
        n, k = y.shape
        t = class_targets(y_true, n, k, "lenet_map")
        dt = y.dtype.type
        m = np.minimum(y.min(axis=1), dt(self.j))  # shift: every exponent ≤ 0
        e = np.exp(m[:, None] - y)  # (N, K)
        z = e.sum(axis=1) + np.exp(m - dt(self.j))
        self._cache = (e / z[:, None], t)  # p_i = e^{−y_i} / Z
        lse = np.log(z) - m  # log(e^{−j} + Σ e^{−y_i})
        return y[np.arange(n), t] + lse

    def _grad(self, c):
        p, t = self._cache
        g = -p
        g[np.arange(len(t)), t] += 1
        return times(g, c)

    def backward_gn(self) -> np.ndarray:
        """Gauss–Newton weights of the squared-distance terms: ``onehot(D_p) / N`` (times
        the loss's ``scale``; ``onehot(D_p)`` with ``reduction="sum"``)."""
        if self._cache is None:
            raise RuntimeError("LeNetMAP.backward_gn() called before forward()")
        p, t = self._cache
        n = len(t)
        w = np.zeros_like(p)
        c = self.scale / n if self.reduction == "mean" else self.scale
        w[np.arange(n), t] = c
        return w

    def get_config(self) -> dict[str, Any]:
        return {"j": self.j, **super().get_config()}
