"""Throughput of data-parallel training over MPI: run it under ``mpiexec -n K``.

    OPENBLAS_NUM_THREADS=1 mpiexec -n 1 python benchmarks/mpi_scaling.py
    OPENBLAS_NUM_THREADS=1 mpiexec -n 2 python benchmarks/mpi_scaling.py

For LeNet-5 (MNIST-sized inputs) and resnet20 (CIFAR-sized) it trains ``--steps`` batches of
the global batch size on random data with ``fit(distribute="mpi")`` (one process when K = 1),
after one warm-up epoch, and rank 0 prints: images per second (wall clock), the median time
of a step, the time per step spent inside the gradient allreduce (waiting included: a rank
that finishes its shard first waits there for the slower one), the bytes of that
allreduce, and the CPU time per image summed over the ranks (what parallel work costs in
total; less disturbed than the wall clock when other jobs share the cores). One BLAS
thread per rank. Compare K = 1 and K = 2 on an otherwise idle machine; the scaling
efficiency is ``throughput(K) / (K · throughput(1))``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import numcnn
from numcnn.models import lenet5, resnet20
from numcnn.training import Callback, distributed


class Clock(Callback):
    def __init__(self):
        self.marks = []

    def on_batch_end(self, batch, logs=None):
        self.marks.append(time.perf_counter())


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--models", nargs="+", default=["lenet5", "resnet20"])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=20)
    args = p.parse_args()
    spent = [0.0]
    raw = distributed.MPIComm.allreduce_sum

    def timed(self, buf):  # the gradient allreduce, timed (SyncBatchNorm's too)
        t = time.perf_counter()
        raw(self, buf)
        spent[0] += time.perf_counter() - t

    distributed.MPIComm.allreduce_sum = timed
    comm = distributed.MPIComm()
    rows = []
    for name in args.models:
        shape = (1, 28, 28) if name == "lenet5" else (3, 32, 32)
        model = (lenet5 if name == "lenet5" else resnet20)(seed=0)
        model.compile(optimizer=numcnn.optimizers.SGD(lr=0.01, momentum=0.9),
                      loss="softmax_cross_entropy", metrics=[])
        rng = np.random.default_rng(0)
        n = args.batch * args.steps
        x = rng.random((n,) + shape, dtype=np.float32)
        y = rng.integers(0, 10, n)
        model.fit(x[:2 * args.batch], y[:2 * args.batch], batch_size=args.batch, epochs=1,
                  verbose=0, distribute="mpi")  # warm-up: workspaces, caches
        clock = Clock()
        spent[0] = 0.0
        t0, c0 = time.perf_counter(), time.process_time()
        model.fit(x, y, batch_size=args.batch, epochs=1, verbose=0, callbacks=[clock],
                  distribute="mpi")
        wall = time.perf_counter() - t0
        cpu = comm.comm.allreduce(time.process_time() - c0)  # CPU seconds of every rank
        steps = np.diff([t0, *clock.marks])
        params = sum(a.size for a in model.trainable_params().values())
        rows.append({"model": name, "ranks": comm.size, "batch": args.batch,
                     "img_per_s": round(n / wall, 1),
                     "step_ms_median": round(1e3 * float(np.median(steps)), 2),
                     "cpu_ms_per_img": round(1e3 * cpu / n, 3),
                     "allreduce_ms_per_step": round(1e3 * spent[0] / args.steps, 3),
                     "allreduce_bytes": 8 * params if comm.size > 1 else 0,
                     "parameters": params})
    if comm.rank == 0:
        for row in rows:
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
