"""A CNN → LSTM model in one graph, over sequences of shifted MNIST digits.

Each sample is a sequence of T frames (default 3) of 28×28 MNIST digits, each frame shifted
by its own random offset of up to ±3 pixels. Two tasks:

* ``--task sum`` (default): every frame a different digit; the target is the sum of the T
  digits (0 … 9T, a class each), learnt from the sums alone, with no digit labels — the
  convolutions learn to read digits because the LSTM needs them to add;
* ``--task digit``: one digit jittering about over the T frames (a short "video"); the target
  is that digit.

The same convolutional network reads every frame through ``TimeDistributed``, an LSTM reads
the T feature vectors in order, and a Dense layer classifies::

    Input((None, 1, 28, 28))                                  T free: any number of frames
    → TimeDistributed(Conv2D(8, 5, padding=2)) → ReLU → TimeDistributed(MaxPool2D(2))
    → TimeDistributed(Conv2D(16, 5)) → ReLU → TimeDistributed(MaxPool2D(2))
    → TimeDistributed(Flatten())                               (N, T, 400)
    → LSTM(64) → Dense(9T + 1)

Trained end to end from the sums alone (no digit labels): the convolutions learn to read
digits because the LSTM needs them to add. Adam with a per-batch cosine decay, gradients
clipped to a global norm of 1, batch 64, 1 BLAS thread. Sequences are drawn from the first
55,000 training images (the last 5,000 make the validation sequences) and the test images.
The per-digit reading accuracy is reported too: the sum is right when all T digits are
read, so ``sum accuracy ≈ digit accuracy ** T``.

    NUMCNN_DATA_DIR=/path/to/mnist python examples/cnn_lstm_digits.py [--frames 3] \\
        [--epochs 8] [--train-size 40000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import numcnn
from numcnn.datasets import mnist
from numcnn.layers import (
    LSTM,
    Conv2D,
    Dense,
    Flatten,
    Input,
    MaxPool2D,
    ReLU,
    TimeDistributed,
)
from numcnn.training import LearningRateScheduler


def shifted(images: np.ndarray, rng: np.random.Generator, max_shift: int) -> np.ndarray:
    """Each (28, 28) image moved by a random (dy, dx) in [−max_shift, max_shift], zero fill."""
    out = np.zeros_like(images)
    n = len(images)
    dys = rng.integers(-max_shift, max_shift + 1, n)
    dxs = rng.integers(-max_shift, max_shift + 1, n)
    for dy in range(-max_shift, max_shift + 1):  # loop over offsets, vectorised over images
        for dx in range(-max_shift, max_shift + 1):
            k = np.flatnonzero((dys == dy) & (dxs == dx))
            if k.size:
                src = images[k][:, max(0, -dy): 28 - max(0, dy), max(0, -dx): 28 - max(0, dx)]
                out[k, max(0, dy): 28 - max(0, -dy), max(0, dx): 28 - max(0, -dx)] = src
    return out


def sequences(images: np.ndarray, labels: np.ndarray, n: int, frames: int,
              rng: np.random.Generator, task: str = "sum", max_shift: int = 3):
    """``n`` sequences of ``frames`` shifted digits: x (n, T, 1, 28, 28) float32, the
    targets (the sums, or the one digit of each sequence), and the digits (n, T)."""
    if task == "sum":
        idx = rng.integers(0, len(images), (n, frames))
    else:  # one digit per sequence, shifted anew in every frame
        idx = np.repeat(rng.integers(0, len(images), (n, 1)), frames, axis=1)
    x = shifted(images[idx.reshape(-1)], rng, max_shift).reshape(n, frames, 1, 28, 28)
    digits = labels[idx]
    target = digits.sum(axis=1) if task == "sum" else digits[:, 0]
    return (x / np.float32(255)).astype(np.float32), target, digits


def build(classes: int, seed: int) -> numcnn.Model:
    inp = Input((None, 1, 28, 28))
    h = TimeDistributed(Conv2D(8, 5, padding=2))(inp)  # (N, T, 8, 28, 28)
    h = ReLU()(h)
    h = TimeDistributed(MaxPool2D(2))(h)  # (N, T, 8, 14, 14)
    h = TimeDistributed(Conv2D(16, 5))(h)  # (N, T, 16, 10, 10)
    h = ReLU()(h)
    h = TimeDistributed(MaxPool2D(2))(h)  # (N, T, 16, 5, 5)
    h = TimeDistributed(Flatten())(h)  # (N, T, 400)
    h = LSTM(64)(h)  # (N, 64): the last state
    return numcnn.Model(inp, Dense(classes)(h), seed=seed, name="cnn_lstm_digits")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", choices=("sum", "digit"), default="sum")
    ap.add_argument("--frames", type=int, default=3)
    ap.add_argument("--train-size", type=int, default=40000, help="training sequences")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--output", default=None, help="save the trained model (.npz)")
    args = ap.parse_args()

    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    rng = np.random.default_rng(args.seed)
    T = args.frames
    train = sequences(x_train[:55000], y_train[:55000], args.train_size, T, rng, args.task)
    val = sequences(x_train[55000:], y_train[55000:], 2000, T, rng, args.task)
    test = sequences(x_test, y_test, 10000, T, rng, args.task)

    model = build(9 * T + 1 if args.task == "sum" else 10, args.seed)
    model.summary()
    model.compile(optimizer=numcnn.optimizers.Adam(lr=args.lr, clipnorm=1.0),
                  loss="softmax_cross_entropy", metrics=["accuracy"])
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)
    except ImportError:  # optional: without it BLAS uses its own default
        pass
    t0 = time.perf_counter()
    model.fit(train[0], train[1], batch_size=args.batch_size, epochs=args.epochs,
              seed=args.seed, validation_data=val[:2], verbose=2,
              callbacks=[LearningRateScheduler("cosine", per_batch=True)])
    wall = time.perf_counter() - t0
    result = model.evaluate(test[0], test[1])
    chance = np.mean(test[1] == np.bincount(train[1]).argmax())
    print(f"task {args.task}, T = {T} frames, {args.train_size} sequences, {args.epochs} "
          f"epochs: training time {wall:.0f} s ({wall / args.epochs:.1f} s/epoch); test "
          f"accuracy {100 * result['accuracy']:.2f} % on 10,000 sequences (the most frequent "
          f"class: {100 * chance:.1f} %)")
    if args.output:
        numcnn.save_model(model, args.output)


if __name__ == "__main__":
    main()
