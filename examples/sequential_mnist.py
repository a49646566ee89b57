"""Sequential MNIST: each image read as 28 rows of 28 pixels by a recurrent layer.

The network sees one row per time step (T = 28, F = 28) and classifies the digit from its
last hidden state: ``Input((28, 28)) → LSTM(128) → Dense(10)`` (``--cell gru``: ``GRU(128)``;
``--cell bilstm``: ``Bidirectional(LSTM(128))``, both directions concatenated; ``--cell
rnn``: ``SimpleRNN(128)``). Adam with a per-batch cosine decay of the learning rate to 0,
gradients clipped to a global norm of 1 (``clipnorm``), batch 128, 5,000 training images
held out for validation, 1 BLAS thread. docs/recurrent.md records the results.

    NUMCNN_DATA_DIR=/path/to/mnist python examples/sequential_mnist.py [--cell lstm] \\
        [--epochs 10] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import numcnn
from numcnn.datasets import mnist
from numcnn.layers import GRU, LSTM, Bidirectional, Dense, Input, SimpleRNN
from numcnn.training import LearningRateScheduler

CELLS = {"lstm": lambda h: LSTM(h), "gru": lambda h: GRU(h), "rnn": lambda h: SimpleRNN(h),
         "bilstm": lambda h: Bidirectional(LSTM(h))}


def build(cell: str, units: int, seed: int) -> numcnn.Model:
    inp = Input((28, 28))  # 28 steps of 28 pixels: the rows, top to bottom
    h = CELLS[cell](units)(inp)  # (N, H), or (N, 2H) for the bidirectional LSTM
    return numcnn.Model(inp, Dense(10)(h), seed=seed, name=f"sequential_mnist_{cell}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cell", choices=sorted(CELLS), default="lstm")
    ap.add_argument("--units", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--clipnorm", type=float, default=1.0)
    ap.add_argument("--train-size", type=int, default=None, help="first N images (quick runs)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--output", default=None, help="save the trained model (.npz)")
    args = ap.parse_args()

    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    x_train = (x_train / np.float32(255)).astype(np.float32)  # (N, 28, 28): (N, T, F)
    x_test = (x_test / np.float32(255)).astype(np.float32)
    x_val, y_val = x_train[55000:], y_train[55000:]
    x_train, y_train = x_train[:55000], y_train[:55000]
    if args.train_size:
        x_train, y_train = x_train[: args.train_size], y_train[: args.train_size]

    model = build(args.cell, args.units, args.seed)
    model.summary()
    model.compile(optimizer=numcnn.optimizers.Adam(lr=args.lr, clipnorm=args.clipnorm),
                  loss="softmax_cross_entropy", metrics=["accuracy"])
    try:
        from threadpoolctl import threadpool_limits
        limit = threadpool_limits(1)
    except ImportError:  # optional: without it BLAS uses its own default
        limit = None
    t0 = time.perf_counter()
    model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
              seed=args.seed, validation_data=(x_val, y_val), verbose=2,
              callbacks=[LearningRateScheduler("cosine", per_batch=True)])
    wall = time.perf_counter() - t0
    result = model.evaluate(x_test, y_test)
    if limit is not None:
        limit.restore_original_limits()
    print(f"{args.cell}({args.units}): {args.epochs} epochs, training time {wall:.0f} s "
          f"({wall / args.epochs:.1f} s/epoch); test loss {result['loss']:.4f}, "
          f"test accuracy {100 * result['accuracy']:.2f} %")
    if args.output:
        numcnn.save_model(model, args.output)


if __name__ == "__main__":
    main()
