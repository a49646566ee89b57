"""One data-parallel step on one rank, and what may take it (:mod:`.distributed`).

:func:`sync_step` runs forward and backward on this rank's shard of a global batch and one
allreduce of the size-weighted gradients and the batch's sums; :func:`sharded_logs`
evaluates a shard of a validation set and reduces the sums; :func:`problem` and
:func:`check_batches` say before training why a model, its losses or a batch size cannot be
sharded.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def problem(model: Any, losses: list[Any]) -> str | None:
    """Why ``model`` with ``losses`` cannot train data-parallel (over MPI or local
    processes), or None."""
    from ..layers.norm import _BatchNorm

    for loss in losses:
        if loss is not None and not getattr(loss, "batch_mean", False):
            red = getattr(loss, "reduction", "mean")
            why = f" (its reduction is {red!r})" if red != "mean" else ""
            return (f"the loss {type(loss).__name__} does not declare itself a mean over "
                    f"samples (Loss.batch_mean){why}, so shard gradients cannot be combined")
    masks = getattr(getattr(model, "graph", None), "output_masks", [])
    if any(lo is not None and m is not None for lo, m in zip(losses, masks)):
        return ("an output with a loss carries a padding mask: its loss is a mean over the "
                "real steps, which shards split unevenly")
    leaves = getattr(model, "leaf_layers", None)
    for lay in leaves() if leaves is not None else [model]:
        # BatchNorm runs per replica (documented), SyncBatchNorm over the global batch
        if not getattr(lay, "per_sample", True) and not isinstance(lay, _BatchNorm):
            name = getattr(lay, "display_name", type(lay).__name__)
            return (f"layer {name} mixes the samples of a batch (a batch statistic, a state "
                    "carried between batches), so shards would compute something else")
    return None


def check_batches(n: int, bs: int, size: int) -> None:
    """Every batch of ``n`` samples in batches of ``bs`` must give each of ``size`` ranks at
    least one sample."""
    last = n % bs or bs
    if min(bs, last) < size:
        raise ValueError(f"fit over MPI: a batch of {min(bs, last)} sample(s) cannot be "
                         f"shared by {size} ranks (n={n}, batch_size={bs}); choose a batch "
                         "size whose last batch holds at least one sample per rank")


def merge_sums(sums: Any, delta: np.ndarray) -> None:
    """Add a reduced batch's sums (a :meth:`Sums.state` array) into ``sums``."""
    merged = type(sums).from_state(sums.state() + delta, sums.names, sums.losses,
                                   sums.metrics, sums.terms)
    vars(sums).update(vars(merged))


def shard_of(idx: Any, m: int, sync: Any) -> Any:
    """This rank's positions in the training set among a batch's ``idx`` (an index array,
    or a slice) of ``m`` samples: only those rows are gathered."""
    lo, hi = sync.shard(m)
    if isinstance(idx, slice):
        first = idx.start or 0
        return slice(first + lo, first + hi)
    return idx[lo:hi]


def sync_step(trainer: Any, xs: list[np.ndarray], ys: list[Any], m: int, sums: Any,
              sync: Any) -> tuple[float, dict[str, float]]:
    """Forward and backward on this rank's shard ``(xs, ys)`` of a global batch of ``m``
    samples, then the allreduce of the weighted gradients and the batch's sums; the
    optimizer step is the caller's. Returns the global batch's loss and the epoch's running
    logs (the same on every rank)."""
    from .sums import Sums

    lo, hi = sync.shard(m)
    local = Sums(sums.names, sums.losses, sums.metrics, sums.terms)
    sync.set_shard((lo, hi, m))
    try:
        total, parts, outs = trainer.train_step(xs, ys)
        local.add(hi - lo, total, parts, outs, ys, trainer.last_masks, trainer.last_terms)
    finally:
        sync.set_shard(None)
    # the last number: how many ranks were asked to stop (a signal, a callback), so every
    # rank stops after the same batch
    reason = sync.pending
    delta = sync.reduce((hi - lo) / m, np.append(local.state(), float(reason is not None)))
    if delta[-1] > 0:
        trainer._stop = reason or "a stop requested on another rank"
        sync.pending = None
    merge_sums(sums, delta[:-1])
    return float(delta[1]) / m, sums.logs()


def sharded_logs(trainer: Any, xs: list[np.ndarray], ys: list[Any], bs: int,
                 sync: Any) -> dict[str, float]:
    """Evaluation over ``(xs, ys)`` with each rank taking its contiguous part of the set;
    the sums are allreduced, so every rank returns the logs of the whole set."""
    from .sums import Sums

    n = len(xs[0])
    lo, hi = sync.shard(n)
    local = trainer._evaluate_sums([a[lo:hi] for a in xs],
                                   [None if t is None else t[lo:hi] for t in ys], bs)
    total = sync.reduce_sums(local.state())
    return Sums.from_state(total, local.names, local.losses, local.metrics,
                           local.terms).logs()
