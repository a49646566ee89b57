"""Train the classic networks on MNIST and report their test accuracy and time per epoch:
the CIFAR ResNet-20 (He et al. 2016), a small VGG (3×3 convolutions with BatchNorm, two
pools) and GoogLeNet with its two auxiliary classifiers trained with loss weights 0.3
(Szegedy et al. 2015) — issue 11's demonstrations. The results recorded in the README and
docs/zoo.md come from this script.

Each run: 55,000 training images (5,000 held out for validation), SGD with momentum 0.9 and
weight decay 5e-4, a cosine learning rate from ``--lr`` evaluated every batch, batch 128,
pixels scaled to [0, 1]; the test accuracy on the 10,000 test images after the last epoch.

Usage::

    OPENBLAS_NUM_THREADS=1 NUMCNN_DATA_DIR=/path/to/mnist \\
        python examples/train_classic_mnist.py [--nets resnet20 small_vgg googlenet] \\
        [--epochs 3] [--threads 2] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import numcnn
from numcnn import models
from numcnn.datasets import mnist
from numcnn.training import LearningRateScheduler


def build(name: str, seed: int):
    if name == "resnet20":
        return models.resnet20(input_shape=(1, 28, 28), seed=seed)
    if name == "small_vgg":
        return models.vgg([32, 32, "M", 64, 64, "M", 128, 128, "M"], batch_norm=True,
                          num_classes=10, input_shape=(1, 28, 28), classifier=(256,),
                          pool_output=None, dropout=0.5, seed=seed, name="small_vgg")
    if name == "googlenet":
        return models.googlenet(num_classes=10, input_shape=(1, 28, 28), aux_logits=True,
                                seed=seed)
    raise ValueError(name)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nets", nargs="+", default=["resnet20", "small_vgg", "googlenet"])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    x_train = (x_train[:, None] / np.float32(255)).astype(np.float32)
    x_test = (x_test[:, None] / np.float32(255)).astype(np.float32)
    x_val, y_val = x_train[55000:], y_train[55000:]
    x_train, y_train = x_train[:55000], y_train[:55000]
    numcnn.set_num_threads(args.threads)
    results = []
    for name in args.nets:
        model = build(name, args.seed)
        aux = isinstance(model.output_names, list) and len(model.output_names) == 3
        opt = numcnn.optimizers.SGD(lr=args.lr, momentum=0.9, weight_decay=5e-4)
        if aux:  # the paper: auxiliary losses weighted 0.3, discarded at inference
            model.compile(optimizer=opt, loss=["softmax_cross_entropy"] * 3,
                          loss_weights=[1.0, 0.3, 0.3], metrics=["accuracy"])
            ys, ys_val = [y_train] * 3, [y_val] * 3
        else:
            model.compile(optimizer=opt, loss="softmax_cross_entropy", metrics=["accuracy"])
            ys, ys_val = y_train, y_val
        sched = LearningRateScheduler("cosine", epochs=args.epochs, initial_lr=args.lr,
                                      per_batch=True)
        t0 = time.perf_counter()
        hist = model.fit(x_train, ys, batch_size=args.batch_size, epochs=args.epochs,
                         validation_data=(x_val, ys_val), seed=args.seed, verbose=2,
                         callbacks=[sched])
        wall = time.perf_counter() - t0
        out = model.predict(x_test, batch_size=500)
        logits = out[0] if isinstance(out, list) else out
        acc = float((logits.argmax(1) == y_test).mean())
        row = {"net": name, "params": model.count_params(), "epochs": args.epochs,
               "threads": args.threads, "test_accuracy": acc,
               "s_per_epoch": wall / args.epochs,
               "val_accuracy": {k: v for k, v in hist.history.items() if "val" in k}}
        results.append(row)
        print(f"{name}: {model.count_params():,} parameters, test accuracy {100 * acc:.2f} %, "
              f"{wall / args.epochs:.0f} s/epoch ({args.threads} thread(s))", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=float)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
