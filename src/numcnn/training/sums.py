"""Running sums of an epoch's (or an evaluation's) losses and metrics, and their state in a
checkpoint."""

from __future__ import annotations

from typing import Any

import numpy as np


class Sums:
    """Running sums of the losses and metrics of an epoch (or an evaluation).

    Losses are weighted by each batch's sample count. A metric is weighted by the same
    count, except on an output with a padding mask: there by the batch's real steps, so the
    epoch's figure is the metric over all real steps (Keras's masked metrics). ``terms``
    names the penalties added to the loss (``sparsity_loss``, ``weight_decay_loss``; see
    :mod:`.penalties`), each reported on its own, weighted like the losses.
    """

    def __init__(self, names: list[str], losses: list[Any], metrics: dict[str, Any],
                 terms: Any = ()):
        self.names, self.losses, self.metrics = names, losses, metrics
        self.terms = list(terms)
        self.term_sums = [0.0] * len(self.terms)
        self.multi = len(names) > 1
        self.seen = 0
        self.total = 0.0
        self.parts = [0.0] * len(names)
        self.mets = {(k, m): 0.0 for k in range(len(names)) for m in metrics
                     if losses[k] is not None}
        self.weights = dict.fromkeys(self.mets, 0.0)

    def state(self) -> np.ndarray:
        """The sums as one float64 array: seen, total, the parts, the metrics and their
        weights, the penalty terms (in order)."""
        return np.array([self.seen, self.total, *self.parts, *self.mets.values(),
                         *self.weights.values(), *self.term_sums], dtype=np.float64)

    @classmethod
    def from_state(cls, arr: np.ndarray, names: list[str], losses: list[Any],
                   metrics: dict[str, Any], terms: Any = ()) -> Sums:
        sums = cls(names, losses, metrics, terms)
        arr = np.asarray(arr, dtype=np.float64)
        head = 2 + len(sums.parts) + len(sums.mets)
        full = head + len(sums.mets) + len(sums.terms)
        # a state without the weights (written before masked metrics) weighs by samples
        if arr.shape not in ((head,), (full,)) or (sums.terms and arr.shape != (full,)):
            raise ValueError(f"trainer state: the epoch's sums have shape {arr.shape}; this "
                             f"model and compile need {full} values "
                             "(another model, losses or metrics?)")
        sums.seen, sums.total = int(arr[0]), float(arr[1])
        sums.parts = [float(v) for v in arr[2:2 + len(sums.parts)]]
        if sums.terms:
            sums.term_sums = [float(v) for v in arr[full - len(sums.terms):]]
            arr = arr[:full - len(sums.terms)]
        weights = arr[head:] if len(arr) > head else [sums.seen] * len(sums.mets)
        for key, v, w in zip(sums.mets, arr[2 + len(sums.parts):head], weights):
            sums.mets[key], sums.weights[key] = float(v), float(w)
        return sums

    def add(self, m: int, total: float, parts: list[float], outs: list[np.ndarray],
            ys: list[Any], masks: list[np.ndarray | None] | None = None,
            terms: dict[str, float] | None = None) -> dict[str, float]:
        """Add a batch of ``m`` samples; ``masks``: each output's padding mask or None;
        ``terms``: the batch's penalty terms by name (already included in ``total``)."""
        self.seen += m
        self.total += total * m
        if terms:
            for k, name in enumerate(self.terms):
                self.term_sums[k] += terms.get(name, 0.0) * m
        for k, p in enumerate(parts):
            if self.losses[k] is not None:
                self.parts[k] += p * m
        for (k, name) in self.mets:
            mask = masks[k] if masks else None
            if mask is None:
                value, weight = self.metrics[name](outs[k], ys[k]), m
            else:
                weight = int(mask.sum())
                value = self.metrics[name](outs[k][mask], np.asarray(ys[k])[mask]) \
                    if weight else 0.0
            self.mets[(k, name)] += value * weight
            self.weights[(k, name)] += weight
        return self.logs()

    def logs(self) -> dict[str, float]:
        s = max(self.seen, 1)
        out = {"loss": self.total / s}
        for name, v in zip(self.terms, self.term_sums):
            out[name] = v / s
        if self.multi:
            for k, name in enumerate(self.names):
                if self.losses[k] is not None:
                    out[f"{name}_loss"] = self.parts[k] / s
        for (k, name), v in self.mets.items():
            out[f"{self.names[k]}_{name}" if self.multi else name] = \
                v / max(self.weights[(k, name)], 1)
        return out
