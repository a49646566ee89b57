"""Where one training step of a numcnn model spends its time: per layer, per phase.

Runs ``model.fit`` (SGD with momentum, softmax cross-entropy, no metrics, no shuffle: the
benchmark's step, see ``lenet_vs_torch.py``) on MNIST-shaped data and times, inside every
step, each layer's forward and backward call, the loss (forward and backward), the
optimizer update and the rest (batch gathering, the trainer's loop, the graph engine's
bookkeeping, the timers themselves), all in the process's CPU time (run it at 1 thread;
the other jobs of a shared host then do not count). Prints medians over the rounds, in ms
per step, beside the floor of ``floor.py`` for the same step. Uninstrumented steps are
timed too (the same ``fit`` without timers), so the instrumented sum can be checked against
the real step.

Examples::

    OPENBLAS_NUM_THREADS=1 python benchmarks/train_profile.py               # LeNet-5, batch 128
    python benchmarks/train_profile.py --steps 300 --rounds 5 --no-floor
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from typing import Any

import numpy as np

from numcnn import models
from numcnn.optimizers import SGD

#: the process's CPU time (1 thread): a shared host's other jobs do not count
CLOCK = time.process_time


def _timed(fn: Any, key: str, acc: dict[str, float]) -> Any:
    now = CLOCK

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t = now()
        out = fn(*args, **kwargs)
        acc[key] += now() - t
        return out
    return wrapper


def build(name: str, seed: int = 0) -> Any:
    net = models.get(name, seed=seed)
    net.compile(SGD(0.05, momentum=0.9), "softmax_cross_entropy", metrics=[])
    return net


def instrument(net: Any, acc: dict[str, float]) -> list[str]:
    """Wrap the model's layers, loss and optimizer with timers adding into ``acc``; returns
    the keys in step order."""
    names = net._names
    keys = []
    for st in net.graph.steps:
        lay = st.layer
        label = names.get(id(lay), lay.display_name)
        lay.fprop = _timed(lay.fprop, f"{label} fwd", acc)
        keys.append(f"{label} fwd")
    for st in reversed(net.graph.steps):
        lay = st.layer
        label = names.get(id(lay), lay.display_name)
        lay.bprop = _timed(lay.bprop, f"{label} bwd", acc)
        keys.append(f"{label} bwd")
    tr = net.trainer
    for loss in tr.losses:
        loss.forward = _timed(loss.forward, "loss fwd", acc)
        loss.backward = _timed(loss.backward, "loss bwd", acc)
    tr.optimizer.step = _timed(tr.optimizer.step, "optimizer", acc)
    return keys + ["loss fwd", "loss bwd", "optimizer"]


def profile(name: str, bs: int, steps: int, rounds: int, x: np.ndarray, y: np.ndarray
            ) -> tuple[list[str], dict[str, list[float]], list[float]]:
    """``(keys, {key: per-step seconds of each round}, uninstrumented per-step seconds)``."""
    plain = build(name)
    timed_net = build(name)
    acc: dict[str, float] = defaultdict(float)
    keys = instrument(timed_net, acc)
    n = steps * bs
    per_key: dict[str, list[float]] = defaultdict(list)
    bare: list[float] = []
    for net in (plain, timed_net):  # warm-up: workspaces, caches
        net.fit(x[: 3 * bs], y[: 3 * bs], batch_size=bs, shuffle=False, verbose=0)
    for _ in range(rounds):  # alternate the two, so drift hits both
        t = CLOCK()
        plain.fit(x[:n], y[:n], batch_size=bs, shuffle=False, verbose=0)
        bare.append((CLOCK() - t) / steps)
        acc.clear()
        t = CLOCK()
        timed_net.fit(x[:n], y[:n], batch_size=bs, shuffle=False, verbose=0)
        total = (CLOCK() - t) / steps
        for k in keys:
            per_key[k].append(acc[k] / steps)
        per_key["rest (trainer, engine, timers)"].append(total - sum(acc[k] for k in keys)
                                                         / steps)
        per_key["whole step (instrumented)"].append(total)
    return keys + ["rest (trainer, engine, timers)", "whole step (instrumented)"], per_key, bare


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="lenet5")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=200, help="steps per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-floor", action="store_false", dest="floor")
    args = p.parse_args(argv)
    from threadpoolctl import threadpool_limits

    from numcnn.threads import num_threads
    rng = np.random.default_rng(0)
    n = args.steps * args.batch_size
    x = rng.random((n, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, n)
    with threadpool_limits(args.threads), num_threads(args.threads):
        keys, per_key, bare = profile(args.model, args.batch_size, args.steps, args.rounds,
                                      x, y)
        print(f"{args.model}, batch {args.batch_size}, {args.threads} thread(s), "
              f"{args.rounds} rounds of {args.steps} steps; ms per step, median (min-max)")
        for k in keys:
            v = [s * 1e3 for s in per_key[k]]
            print(f"  {k:<34} {statistics.median(v):7.3f} ({min(v):.3f}-{max(v):.3f})")
        v = [s * 1e3 for s in bare]
        epoch = statistics.median(v) * 60000 / args.batch_size / 1e3
        print(f"  {'whole step (not instrumented)':<34} {statistics.median(v):7.3f} "
              f"({min(v):.3f}-{max(v):.3f}) = {epoch:.2f} s per 60,000 images")
        if args.floor:
            from floor import compute_floor
            f = compute_floor(build(args.model), args.batch_size, args.threads)
            print(f"  GEMM shape floor {f.step_seconds * 1e3:.3f} ms/step "
                  f"({f.epoch_seconds():.2f} s/epoch): step / floor = "
                  f"{statistics.median(v) / 1e3 / f.step_seconds:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
