"""Run under ``mpiexec -n K``: data-parallel training over MPI against one process.

Every rank trains the model over MPI (``distribute="mpi"``) and records its parameters after
every step; every rank also trains the same model alone on the full global batches
(``distribute="local:1"``, the reference). Rank 0 prints one JSON line: the largest
difference over all steps and parameters, per case, and whether the ranks agree with each
other. ``--no-allreduce`` switches the allreduce off (the negative control).

Cases (float64): SGD with momentum and Adam, each with Dropout, 17 samples in batches of 8
(a last batch of 5: shards of 3+2 or 2+2+1 samples); ``--case resnet``: a small
ResNet block with SyncBatchNorm2D (``resnet-bn``: with per-replica BatchNorm2D instead,
which differs from one process).
"""

import argparse
import json
import sys

import numpy as np

import numcnn
from numcnn.layers import Conv2D, Dense, Dropout, Flatten, ReLU
from numcnn.training import Callback


class Record(Callback):
    def __init__(self, no_allreduce=False):
        self.steps, self.no_allreduce = [], no_allreduce

    def on_train_begin(self, logs=None):
        if self.no_allreduce and self.model.trainer.sync is not None:
            self.model.trainer.sync.enabled = False

    def on_batch_end(self, batch, logs=None):
        self.steps.append(np.concatenate([a.ravel() for a in
                                          self.model.trainer_params()]))


def data(n=21):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, 2, 5, 5))
    y = (x.reshape(n, -1).sum(axis=1) > 0).astype(np.int64) + (x[:, 0, 0, 0] > 0.5)
    return x, y


def dense_model(seed, optimizer):
    m = numcnn.Sequential([Flatten(), Dense(12), ReLU(), Dropout(0.3), Dense(8), ReLU(),
                           Dropout(0.2), Dense(3)], input_shape=(2, 5, 5), seed=seed,
                          dtype="float64")
    m.compile(optimizer=optimizer, loss="softmax_cross_entropy", metrics=["accuracy"])
    return m


def conv_model(seed, optimizer, norm="sync"):
    from numcnn.layers import BatchNorm2D, SyncBatchNorm2D

    # --case resnet-bn: per-replica BatchNorm2D, which must differ from one process
    Norm = SyncBatchNorm2D if norm == "sync" else BatchNorm2D
    inp = numcnn.Input((2, 5, 5), dtype="float64")
    # (no bias before a BatchNorm, as in ResNets: its gradient is 0 up to rounding, which
    # Adam would scale up to full steps)
    h = ReLU()(Norm()(Conv2D(4, 3, padding=1, use_bias=False)(inp)))
    r = Norm()(Conv2D(4, 3, padding=1, use_bias=False)(h))
    h = ReLU()(numcnn.layers.Add()([h, r]))
    out = Dense(3)(Flatten()(h))
    m = numcnn.Model(inp, out, seed=seed)
    m.compile(optimizer=optimizer, loss="softmax_cross_entropy", metrics=["accuracy"])
    return m


def optimizer(name):
    if name == "sgd":
        return numcnn.optimizers.SGD(lr=0.1, momentum=0.9)
    return numcnn.optimizers.Adam(lr=0.01)


def trainer_params(model):
    """Every parameter, and the buffers (BatchNorm's running statistics)."""
    return [*model.trainable_params().values(),
            *(lay.buffers[k] for _, lay, k in model.named_buffers())]


def run(case, opt, distribute, rank, no_allreduce):
    make = {"resnet": conv_model, "dense": dense_model,
            "resnet-bn": lambda **kw: conv_model(norm="plain", **kw)}[case]
    # other ranks start from other weights: the broadcast must give them rank 0's
    model = make(seed=1 + (rank if distribute == "mpi" else 0), optimizer=optimizer(opt))
    model.trainer_params = lambda: trainer_params(model)
    rec = Record(no_allreduce)
    x, y = data()
    model.fit(x, y, batch_size=8, epochs=2, seed=5, verbose=0, callbacks=[rec],
              distribute=distribute, validation_data=(x[:7], y[:7]))
    return np.array(rec.steps), model.history.history


def main():
    from mpi4py import MPI

    p = argparse.ArgumentParser()
    p.add_argument("--case", default="dense")
    p.add_argument("--no-allreduce", action="store_true")
    args = p.parse_args()
    comm = MPI.COMM_WORLD
    rank = comm.Get_rank()
    result = {"size": comm.Get_size()}
    ok = True
    for opt in ("sgd", "adam"):
        got, hist = run(args.case, opt, "mpi", rank, args.no_allreduce)
        ref, ref_hist = run(args.case, opt, "local:1", rank, False)
        diff = float(np.abs(got - ref).max())
        spread = comm.allreduce(float(np.abs(got - comm.bcast(got, root=0)).max()), MPI.MAX)
        logs = max(abs(hist[k][-1] - ref_hist[k][-1]) for k in ref_hist)
        result[opt] = {"max_diff": diff, "rank_spread": spread, "log_diff": logs,
                       "steps": len(got)}
        ok &= diff <= 1e-12 and logs <= 1e-12
    if rank == 0:
        print(json.dumps(result), flush=True)
    return 0 if ok else 3


if __name__ == "__main__":
    sys.exit(main())
