"""Run under ``mpiexec -n K``: faults and resuming of data-parallel training over MPI.

``--mode raise|kill|stop|request``: rank 1 raises, is killed (SIGKILL), stops (SIGSTOP) or
asks the trainer to stop (as a signal handler does) at epoch 1, batch 2, while ``--backup``
saves the state every 3 batches. ``--mode none``: train (or resume from ``--backup``) to the
end; rank 0 writes the parameters to ``--out`` and prints how many batches this run trained.
Float64, 24 samples in batches of 6, a Dropout, SGD with momentum, 3 epochs.
"""

import argparse
import os
import signal

import numpy as np

import numcnn
from numcnn.layers import Dense, Dropout, Flatten, ReLU
from numcnn.training import BackupAndRestore, Callback


class Fault(Callback):
    def __init__(self, mode):
        self.mode, self.batches = mode, 0

    def on_batch_end(self, batch, logs=None):
        self.batches += 1
        trainer = self.model.trainer
        if self.mode == "none" or (trainer.epoch, batch) != (1, 2) or trainer.rank != 1:
            return
        if self.mode == "raise":
            raise RuntimeError("injected fault")
        if self.mode == "request":  # as a signal handler on one rank does
            trainer.request_stop("injected stop request")
            return
        os.kill(os.getpid(), signal.SIGKILL if self.mode == "kill" else signal.SIGSTOP)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mode", default="none")
    p.add_argument("--backup", default=None)
    p.add_argument("--out", default=None)
    p.add_argument("--distribute", default=None)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((24, 6))
    y = (x.sum(axis=1) > 0).astype(np.int64)
    model = numcnn.Sequential([Flatten(), Dense(8), ReLU(), Dropout(0.3), Dense(2)],
                              input_shape=(6,), seed=4, dtype="float64")
    model.compile(optimizer=numcnn.optimizers.SGD(lr=0.1, momentum=0.9),
                  loss="softmax_cross_entropy", metrics=["accuracy"])
    fault = Fault(args.mode)
    callbacks = [fault]
    if args.backup:
        callbacks.append(BackupAndRestore(args.backup, save_freq=3))
    model.fit(x, y, batch_size=6, epochs=3, seed=2, verbose=0, callbacks=callbacks,
              distribute=args.distribute)
    if args.mode == "request":  # every rank stopped after the same batch
        print(f"rank {model.trainer.rank} stopped at epoch {model.trainer.epoch} step "
              f"{model.trainer.step}: {model.trainer.interrupted}", flush=True)
    if args.out and model.trainer.rank == 0:
        np.save(args.out, np.concatenate([a.ravel() for a in
                                          model.trainable_params().values()]))
        print(f"batches {fault.batches}", flush=True)


if __name__ == "__main__":
    main()
