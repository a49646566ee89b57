"""Train the modern LeNet-5 on MNIST with the Python API (the README's recorded run).

Equivalent to ``numcnn train --model lenet5 --epochs 10``: SGD with momentum 0.9, batch 64,
a per-batch cosine decay of the learning rate from 0.05 to 0, 5,000 training images held
out for validation, 1 BLAS thread.

    NUMCNN_DATA_DIR=/path/to/mnist python examples/train_lenet5.py [--epochs 10] [--seed 0]
        [--output lenet5.npz] [--log run.csv]

``--log`` writes a CSVLogger file (epoch, loss, accuracy, val_loss, val_accuracy, lr) that
``numcnn plot history run.csv`` draws.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import numcnn
from numcnn.datasets import mnist
from numcnn.training import CSVLogger, LearningRateScheduler


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--output", default=None, help="save the trained model (.npz)")
    ap.add_argument("--log", default=None, help="write the per-epoch logs here (CSV)")
    args = ap.parse_args()

    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    x_train = (x_train[:, None] / np.float32(255)).astype(np.float32)  # (N, 1, 28, 28)
    x_test = (x_test[:, None] / np.float32(255)).astype(np.float32)
    x_val, y_val = x_train[55000:], y_train[55000:]
    x_train, y_train = x_train[:55000], y_train[:55000]

    model = numcnn.models.lenet5(seed=args.seed)
    model.summary()
    model.compile(optimizer=numcnn.optimizers.SGD(lr=0.05, momentum=0.9),
                  loss="softmax_cross_entropy", metrics=["accuracy"])
    try:
        from threadpoolctl import threadpool_limits
        limit = threadpool_limits(1)
    except ImportError:  # optional: without it BLAS uses its own default
        limit = None
    t0 = time.perf_counter()
    model.fit(x_train, y_train, batch_size=64, epochs=args.epochs, seed=args.seed,
              validation_data=(x_val, y_val),
              callbacks=[LearningRateScheduler("cosine", per_batch=True),  # logs "lr" first
                         *([CSVLogger(args.log)] if args.log else [])])
    wall = time.perf_counter() - t0
    result = model.evaluate(x_test, y_test)
    if limit is not None:
        limit.restore_original_limits()
    print(f"training time {wall:.1f} s; test accuracy {100 * result['accuracy']:.2f} %")
    if args.output:
        numcnn.save_model(model, args.output)


if __name__ == "__main__":
    main()
