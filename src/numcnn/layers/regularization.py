"""Regularisation layers: ``Dropout``."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import LAYERS, Layer


@LAYERS.register("Dropout")
class Dropout(Layer):
    """Inverted dropout (Srivastava et al., 2014).

    Training: ``y = x · m / (1 − rate)`` with ``m ~ Bernoulli(1 − rate)`` drawn afresh for
    every element on every call, so ``E[y] = x``. Inference: ``y = x`` (the input array
    itself is returned). Backward: ``dx = dy · m / (1 − rate)`` with the mask of the last
    training forward pass (``dx = dy`` after an inference pass).

    Args:
        rate: probability of dropping a unit, in [0, 1).
        seed: seed of the layer's own random generator (None: unpredictable).

    >>> d = Dropout(0.5, seed=0); d.build((4,))
    >>> y = d.forward(np.ones((1, 4), np.float32), training=True)
    >>> sorted(set(y.ravel().tolist())) in ([0.0, 2.0], [0.0], [2.0])
    True
    """

    def __init__(self, rate: float = 0.5, seed: int | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)) \
                or not 0.0 <= rate < 1.0:
            raise ValueError(f"rate must be a number in [0, 1); received rate={rate!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise TypeError(f"seed must be an int or None; received seed={seed!r}")
        self.rate = float(rate)
        self.seed = None if seed is None else int(seed)
        self._rng = np.random.default_rng(self.seed)
        self._mask: np.ndarray | None = None

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self.check_input(x)
        if not training or self.rate == 0.0:
            self._mask = None
            return x
        keep = self._rng.random(x.shape, dtype=x.dtype) >= x.dtype.type(self.rate)
        self._mask = keep * x.dtype.type(1.0 / (1.0 - self.rate))  # (N, ...) in x.dtype
        return x * self._mask

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        if not self.need_input_grad:
            return None
        return dy.copy() if self._mask is None else dy * self._mask

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update(rate=self.rate, seed=self.seed)
        return cfg
