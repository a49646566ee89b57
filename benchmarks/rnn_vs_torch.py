"""Recurrent layers side by side with PyTorch (issue 12): training steps and inference of
``LSTM``, ``GRU`` and ``SimpleRNN`` against ``torch.nn.LSTM/GRU/RNN``, same weights, same
batches, same thread count, in one process, alternating which framework runs first in each
repeat. Prints medians (min–max) and the ratio numcnn / PyTorch (below 1: numcnn is faster).

The network is the sequential-MNIST shape: a recurrent layer reading (N, T, F) and keeping its
last state, then ``Dense(10)``. A training step is forward, softmax cross-entropy, backward
and an SGD step (momentum 0.9) — ``fit`` in numcnn, the usual loop in PyTorch — on random
sequences and labels. Two sizes: batch 64, T = 28, F = 28, H = 128 (sequential MNIST) and
batch 64, T = 100, F = 28, H = 256. Run from the source checkout::

    OPENBLAS_NUM_THREADS=1 python benchmarks/rnn_vs_torch.py --threads 1 --repeats 7

``--cells`` and ``--sizes`` pick a subset, ``--steps`` the batches per timed run. ``--clock
cpu`` times with the process's CPU time instead of the wall clock: on a shared machine a
process that waits for a core loses wall time but no CPU time, so CPU-time ratios stay steady
where wall ratios swing (at 1 thread both measure the same work).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Sequence

import numpy as np

import numcnn
from numcnn.layers import GRU, LSTM, Dense, SimpleRNN

CELLS = {"lstm": LSTM, "gru": GRU, "rnn": SimpleRNN}
SIZES = {"small": (64, 28, 28, 128), "large": (64, 100, 28, 256)}  # N, T, F, H
#: the clock of the timed runs (``--clock``): wall time or the process's CPU time
CLOCK = {"wall": time.perf_counter, "cpu": time.process_time}
_clock = time.perf_counter


def build(cell: str, T: int, F: int, H: int):
    """The numcnn model, its PyTorch twin (same weights) and the twin's optimizer."""
    import torch

    x = numcnn.Input((T, F))
    model = numcnn.Model(x, Dense(10)(CELLS[cell](H)(x)), seed=0)
    model.compile(optimizer=numcnn.optimizers.SGD(lr=0.01, momentum=0.9),
                  loss="softmax_cross_entropy", metrics=[])
    rec, dense = model.layers
    kind = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell]

    class Twin(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rec = kind(F, H, batch_first=True)
            self.fc = torch.nn.Linear(H, 10)

        def forward(self, x):
            _, h = self.rec(x)
            h = h[0] if isinstance(h, tuple) else h
            return self.fc(h[0])

    net = Twin()
    with torch.no_grad():
        for k, name in zip(("W_ih", "W_hh", "b_ih", "b_hh"),
                           ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")):
            getattr(net.rec, name).copy_(torch.from_numpy(rec.params[k]))
        net.fc.weight.copy_(torch.from_numpy(dense.params["W"].T.copy()))
        net.fc.bias.copy_(torch.from_numpy(dense.params["b"]))
    return model, net, torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)


def time_numcnn(model, x, y, bs, train: bool) -> float:
    t = _clock()
    if train:
        model.fit(x, y, batch_size=bs, epochs=1, shuffle=False, verbose=0)
    else:
        model.predict(x, batch_size=bs)
    return (_clock() - t) / (len(x) // bs)


def time_torch(net, opt, xt, yt, bs, train: bool) -> float:
    import torch

    t = _clock()
    for i in range(0, len(xt), bs):
        if train:
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(net(xt[i:i + bs]), yt[i:i + bs])
            loss.backward()
            opt.step()
        else:
            with torch.no_grad():
                net(xt[i:i + bs])
    return (_clock() - t) / (len(xt) // bs)


def run(cells: Sequence[str], sizes: Sequence[str], threads: int, steps: int,
        repeats: int) -> list[dict]:
    import torch
    from threadpoolctl import threadpool_limits

    from numcnn.threads import num_threads

    torch.set_num_threads(threads)
    rows = []
    with threadpool_limits(threads), num_threads(threads):
        for size in sizes:
            N, T, F, H = SIZES[size]
            for cell in cells:
                model, net, opt = build(cell, T, F, H)
                rng = np.random.default_rng(0)
                x = rng.standard_normal((steps * N, T, F)).astype(np.float32)
                y = rng.integers(0, 10, len(x))
                xt, yt = torch.from_numpy(x), torch.from_numpy(y)
                for train in (True, False):
                    tn, tt = [], []
                    for r in range(repeats + 1):  # the first is a warm-up
                        for who in ((0, 1) if r % 2 else (1, 0)):
                            v = (time_numcnn(model, x, y, N, train) if who == 0 else
                                 time_torch(net, opt, xt, yt, N, train))
                            if r:
                                (tn if who == 0 else tt).append(v)
                    rows.append({"cell": cell, "size": (N, T, F, H),
                                 "measure": "train" if train else "infer",
                                 "numcnn": tn, "torch": tt})
                    _print_row(rows[-1])
    return rows


def _fmt(values: list[float]) -> str:
    med = statistics.median(values) * 1e3
    return f"{med:8.2f} ({min(values) * 1e3:.2f}–{max(values) * 1e3:.2f}) ms/batch"


def _print_row(row: dict) -> None:
    ratio = statistics.median(row["numcnn"]) / statistics.median(row["torch"])
    N, T, F, H = row["size"]
    print(f"{row['cell']:<5} N={N} T={T:<3} F={F} H={H:<3} {row['measure']:<6} numcnn "
          f"{_fmt(row['numcnn'])}   torch {_fmt(row['torch'])}   ratio {ratio:.2f}",
          flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cells", nargs="+", default=list(CELLS), choices=list(CELLS))
    p.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=3, help="batches per timed run")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--clock", choices=list(CLOCK), default="wall",
                   help="wall time (default) or the process's CPU time")
    args = p.parse_args(argv)
    import platform

    import torch

    global _clock
    _clock = CLOCK[args.clock]
    print(f"numcnn {numcnn.__version__}, torch {torch.__version__}, NumPy {np.__version__}, "
          f"{platform.processor() or platform.machine()}, {args.threads} thread(s), "
          f"{args.repeats} repeats of {args.steps} batches, {args.clock} clock, load average "
          f"{os.getloadavg()[0]:.1f} at the start", flush=True)
    run(args.cells, args.sizes, args.threads, args.steps, args.repeats)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
