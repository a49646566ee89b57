"""Regularisation layers: ``Dropout``."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import LAYERS, Call, RandomLayer


@LAYERS.register("Dropout")
class Dropout(RandomLayer):
    """Inverted dropout (Srivastava et al., 2014).

    Training: ``y = x · m / (1 − rate)`` with ``m ~ Bernoulli(1 − rate)`` drawn afresh for
    every element on every call, so ``E[y] = x``. Inference: ``y = x`` (the input array
    itself is returned). Backward: ``dx = dy · m / (1 − rate)`` with the mask of that call
    (``dx = dy`` after an inference pass). The masks come from the layer's own generator,
    whose state is saved with the model, so a resumed run draws the same masks. In
    data-parallel training over MPI every rank draws the mask of the whole global batch and
    keeps its rows (``batch_shard``), so the masks are those of one process.

    Args:
        rate: probability of dropping a unit, in [0, 1).
        seed: seed of the layer's own random generator (None: unpredictable).

    >>> d = Dropout(0.5, seed=0); d.build((4,))
    >>> y = d.forward(np.ones((1, 4), np.float32), training=True)
    >>> sorted(set(y.ravel().tolist())) in ([0.0, 2.0], [0.0], [2.0])
    True
    """

    keeps_mask = True

    def __init__(self, rate: float = 0.5, seed: int | None = None, **kwargs: Any):
        super().__init__(seed=seed, **kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)) \
                or not 0.0 <= rate < 1.0:
            raise ValueError(f"rate must be a number in [0, 1); received rate={rate!r}")
        self.rate = float(rate)

    def fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        self.check_input(x)
        if not call.training or self.rate == 0.0:
            call.cache = None
            return x
        shard = getattr(self, "batch_shard", None)
        if shard is None:
            keep = self.rng.random(x.shape, dtype=x.dtype) >= x.dtype.type(self.rate)
        else:  # one rank's rows of a global batch (numcnn.training.distributed)
            lo, hi, m = shard
            if x.shape[0] != hi - lo:
                raise ValueError(f"{self.display_name}: a shard of rows {lo}:{hi} of a batch "
                                 f"of {m} expects {hi - lo} rows; received {x.shape[0]}")
            full = self.rng.random((m,) + x.shape[1:], dtype=x.dtype)
            keep = full[lo:hi] >= x.dtype.type(self.rate)
        call.cache = keep * x.dtype.type(1.0 / (1.0 - self.rate))  # (N, ...) in x.dtype
        return x * call.cache

    def bprop(self, dy: np.ndarray, call: Call, accumulate: bool = False) -> np.ndarray | None:
        if not call.need_dx:
            return None
        return dy.copy() if call.cache is None else dy * call.cache

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update(rate=self.rate, seed=self.seed)
        return cfg
