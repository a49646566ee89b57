"""A hyper-parameter sweep as one MPI job: ``mpiexec -n K`` split into groups with MPI's own
process groups (``MPI_Comm_split``, through :func:`numcnn.training.distributed.sweep_groups`),
each group training one run data-parallel over its ranks.

With ``-n 4`` and two learning rates, ranks 0–1 train LeNet-5 at the first and ranks 2–3 at
the second; each run equals the same run alone (its group's allreduce never crosses into
the other group). Rank 0 of each group prints the run's test accuracy and writes its model
``sweep_lr<lr>.npz``. On a cluster the same job runs under the scheduler (``srun``, or
``mpiexec`` in a batch script); a scheduler's job array is the other way to run a sweep.

Usage::

    OPENBLAS_NUM_THREADS=1 NUMCNN_DATA_DIR=/path/to/mnist \\
        mpiexec -n 4 python examples/mpi_sweep.py --lr 0.02 0.05 [--epochs 1] \\
        [--train-size 6000] [--out-dir .]

Without MNIST (``--synthetic``) it trains on random images, to try the launch.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

import numcnn
from numcnn.models import lenet5
from numcnn.training.distributed import sweep_groups


def load(args: argparse.Namespace):
    if args.synthetic:
        rng = np.random.default_rng(0)
        x = rng.random((args.train_size + 1000, 1, 28, 28), dtype=np.float32)
        y = rng.integers(0, 10, len(x))
        return (x[:args.train_size], y[:args.train_size]), (x[args.train_size:],
                                                            y[args.train_size:])
    from numcnn.datasets import mnist

    (x, y), (xt, yt) = mnist.load_data(os.environ.get("NUMCNN_DATA_DIR"))
    scale = np.float32(1 / 255)
    return ((x[:args.train_size, None] * scale, y[:args.train_size]),
            (xt[:, None] * scale, yt))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lr", type=float, nargs="+", default=[0.02, 0.05])
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--train-size", type=int, default=6000)
    p.add_argument("--out-dir", default=".")
    p.add_argument("--synthetic", action="store_true")
    args = p.parse_args()
    g, comm = sweep_groups(len(args.lr))  # group g trains learning rate args.lr[g]
    lr = args.lr[g]
    (x, y), (xt, yt) = load(args)
    model = lenet5(seed=0)
    model.compile(optimizer=numcnn.optimizers.SGD(lr=lr, momentum=0.9),
                  loss="softmax_cross_entropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, seed=0, verbose=0,
              distribute=comm)
    if comm.rank == 0:  # the group's first rank reports and writes
        scores = model.evaluate(xt, yt)
        path = os.path.join(args.out_dir, f"sweep_lr{lr:g}.npz")
        numcnn.save_model(model, path)
        print(f"group {g} ({comm.size} ranks): lr {lr:g}, test accuracy "
              f"{100 * scores['accuracy']:.2f} %, saved {path}", flush=True)


if __name__ == "__main__":
    main()
