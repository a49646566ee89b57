"""UFLDL's self-taught learning and convolution-and-pooling exercises, on MNIST.

Course 002 opens with the sparse autoencoder: learn features from unlabeled data, then
convolve them over large images and pool them. This script does both with numcnn's pieces —
``SparseAutoencoder`` (cost J = ½‖x̂ − x‖²/m + (λ/2)‖W‖² + β Σ KL(ρ‖ρ̂_j)), trained
full-batch with ``LBFGS`` as UFLDL trains it with minFunc; ``extract_patches`` and
``ZCAWhitening``; ``encoder_to_conv`` and ``AvgPool2D``; softmax regression (a ``Dense``
with ``WeightDecay`` under ``softmax_cross_entropy``, also by L-BFGS).

1. **Self-taught learning** (UFLDL "Self-Taught Learning"): a 196-unit sparse autoencoder
   (ρ = 0.1, β = 3, λ = 3e-3) learns from the training images of the digits 5–9, without
   their labels; its features σ(W⁽¹⁾x + b⁽¹⁾) of the digits 0–4 train a softmax regression
   (λ = 1e-4). As UFLDL, the labelled 0–4 training images are split in two halves, train
   and test; UFLDL reports about 98 % on that test half. The accuracy on the 0–4 digits of
   MNIST's own test set is printed too.
2. **Convolution and pooling** (UFLDL "Convolution and Pooling", with its "Linear
   Decoders" exercise's features): a sparse autoencoder with a linear decoder (ρ = 0.035,
   β = 5, λ = 3e-3) learns ``--conv-features`` features from random 8×8 patches of the
   training images, ZCA-whitened (ε = 0.1); ``encoder_to_conv`` makes it a convolution (the
   whitening folded into the kernels) over whole 28×28 digits, 21×21 maps are mean-pooled
   over 7×7 regions (3×3 per feature), and a softmax regression classifies the pooled
   features of all ten digits — beside the same softmax regression on the raw pixels.
   Image → Conv2D → Sigmoid → AvgPool2D → Flatten → Dense is one Functional model, which
   gives the test accuracy on MNIST's test set.

The learned bases are saved as pictures (``--figure``; needs matplotlib): the 196 encoder
weight vectors of part 1 as 28×28 images (pen strokes), and the 8×8 kernels of part 2 with
the whitening folded in (edge and stroke detectors).

    python examples/self_taught_learning.py [--iterations 400] [--figure docs/figures/...]

The last two lines printed are ``self-taught test accuracy: X %`` and
``convolution+pooling test accuracy: Y %``. ``--quick`` runs a small version in seconds
(the test suite runs it). The README and docs/self_taught.md record a full run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import numcnn
from numcnn.datasets import mnist
from numcnn.layers import AvgPool2D, Dense, Flatten, Input, Sigmoid
from numcnn.models import SparseAutoencoder, encoder_to_conv
from numcnn.optimizers import LBFGS
from numcnn.preprocessing import ZCAWhitening, extract_patches
from numcnn.regularizers import WeightDecay

ROOT = Path(__file__).resolve().parents[1]


def lbfgs_fit(model, x, y, loss: str, iterations: int, per_epoch: int, label: str) -> None:
    """Full-batch L-BFGS (strong-Wolfe line search, as minFunc) for ``iterations``
    iterations, ``per_epoch`` per ``fit`` epoch (one log line each; the optimizer's history
    carries over the epochs), or until a step stops early on a tolerance (converged:
    minFunc stops there too)."""
    opt = LBFGS(max_iter=per_epoch, max_eval=10 * per_epoch, line_search_fn="strong_wolfe")
    model.compile(optimizer=opt, loss=loss, metrics=[])
    t0 = time.perf_counter()
    epoch = 0
    while opt.n_iter < iterations:
        before = opt.n_iter
        opt.max_iter = min(per_epoch, iterations - opt.n_iter)
        model.fit(x, y, batch_size=None, epochs=epoch + 1, initial_epoch=epoch,
                  shuffle=False, verbose=0)
        logs = model.evaluate(x, y, batch_size=None)  # J where the iterations ended
        terms = ", ".join(f"{k} {v:.5g}" for k, v in logs.items() if k != "loss")
        print(f"  {label}: iteration {opt.n_iter:4d}, J = {logs['loss']:.6g}"
              + (f" ({terms})" if terms else "") + f", {time.perf_counter() - t0:.0f} s",
              flush=True)
        epoch += 1
        if opt.n_iter - before < opt.max_iter:  # stopped on a tolerance: converged
            print(f"  {label}: converged (loss or step below tolerance_change)")
            break
    print(f"  {label}: {opt.n_iter} L-BFGS iterations, {opt.func_evals} evaluations, "
          f"{time.perf_counter() - t0:.0f} s", flush=True)


def softmax_regression(n_in: int, n_classes: int, weight_decay: float, seed: int,
                       dtype: str):
    """UFLDL's softmax regression: logits θx (+ a bias here), cost −mean log p_y + (λ/2)‖θ‖²."""
    x = Input((n_in,), dtype=dtype)
    clf = numcnn.Model(x, Dense(n_classes, kernel_regularizer=WeightDecay(weight_decay),
                                kernel_initializer="zeros", name="softmax")(x), seed=seed)
    return clf


def accuracy(model, x, y) -> float:
    return float(np.mean(np.argmax(model.predict(x, batch_size=2000), axis=1) == y))


def save_bases(path: Path, W: np.ndarray, cols: int, title: str) -> None:
    """Kernels (F, 1, h, w) drawn with numcnn.viz (matplotlib needed)."""
    try:
        from numcnn import viz
        fig = viz.plot_kernels(W, cols=cols, max_filters=len(W), title=title,
                               panel_size=0.45)
    except ImportError as e:
        print(f"  (no picture: {e})")
        return
    viz.save(fig, path)
    print(f"  bases saved to {path}")


def self_taught(args, x_train, y_train, x_test, y_test) -> float:
    print("1. self-taught learning: features learned from the digits 5-9, used for 0-4")
    unlabeled = x_train[y_train >= 5][: args.unlabeled]
    labeled = np.flatnonzero(y_train <= 4)
    half = len(labeled) // 2  # UFLDL: the first half trains, the second half tests
    tr, te = labeled[:half][: args.labeled], labeled[half:][: args.labeled]
    print(f"  {len(unlabeled)} unlabeled images (5-9); softmax on {len(tr)} labeled (0-4), "
          f"tested on {len(te)}")
    ae = SparseAutoencoder(args.hidden, rho=0.1, beta=3.0, weight_decay=3e-3,
                           input_shape=(784,), seed=args.seed, dtype=args.dtype)
    lbfgs_fit(ae, unlabeled, unlabeled, "half_sse", args.iterations, args.per_epoch,
              "autoencoder")
    encoder = numcnn.Model(ae.input, ae.get_layer("hidden").output)  # x → σ(W⁽¹⁾x + b⁽¹⁾)
    f_tr = encoder.predict(x_train[tr], batch_size=2000)
    clf = softmax_regression(args.hidden, 5, 1e-4, args.seed, args.dtype)
    lbfgs_fit(clf, f_tr, y_train[tr], "softmax_cross_entropy", args.softmax_iterations,
              args.per_epoch, "softmax")
    # the chain as one model: raw pixels → encoder → sigmoid → softmax regression
    x = Input((784,), dtype=args.dtype)
    chain = numcnn.Model(x, clf.get_layer("softmax")(
        Sigmoid()(ae.get_layer("encoder")(x))))
    acc = accuracy(chain, x_train[te], y_train[te])
    mnist_test = y_test <= 4
    acc_test = accuracy(chain, x_test[mnist_test], y_test[mnist_test])
    raw = softmax_regression(784, 5, 1e-4, args.seed, args.dtype)
    lbfgs_fit(raw, x_train[tr], y_train[tr], "softmax_cross_entropy",
              args.softmax_iterations, args.per_epoch, "raw-pixel softmax")
    print(f"  self-taught features: {100 * acc:.2f} % on the held-out half of the 0-4 "
          f"training digits (UFLDL: about 98 %), {100 * acc_test:.2f} % on MNIST's 0-4 "
          f"test digits; raw pixels: {100 * accuracy(raw, x_train[te], y_train[te]):.2f} %",
          flush=True)
    if args.figure:
        W = ae.get_layer("encoder").params["W"].T.reshape(-1, 1, 28, 28)
        save_bases(Path(args.figure), W, 14,
                   f"sparse autoencoder bases ({len(W)} × 28×28, 5-9 digits, no labels)")
    return acc


def conv_pool(args, x_train, y_train, x_test, y_test) -> float:
    print("2. convolution and pooling: 8x8 patch features convolved over the digits")
    patches = extract_patches(x_train[: args.patch_images].reshape(-1, 28, 28), 8,
                              n=args.patches,
                              seed=args.seed).reshape(-1, 64)
    zca = ZCAWhitening(eps=0.1).fit(patches)
    white = zca.transform(patches).astype(args.dtype)
    print(f"  {len(patches)} random 8x8 patches, ZCA-whitened (eps 0.1)")
    ae = SparseAutoencoder(args.conv_features, rho=0.035, beta=5.0, weight_decay=3e-3,
                           input_shape=(64,), decoder="linear", seed=args.seed,
                           dtype=args.dtype)
    lbfgs_fit(ae, white, white, "half_sse", args.iterations, args.per_epoch,
              "patch autoencoder")
    conv = encoder_to_conv(ae.get_layer("encoder"), (8, 8), whitening=zca, name="conv")
    img = Input((1, 28, 28), dtype=args.dtype)
    pooled = Flatten()(AvgPool2D(7, name="pool")(Sigmoid()(conv(img))))  # 21×21 → 3×3
    features = numcnn.Model(img, pooled)
    n_feat = features.output_shape()[0]
    t0 = time.perf_counter()
    f_train = features.predict(x_train.reshape(-1, 1, 28, 28), batch_size=500)
    print(f"  convolved and pooled features: {n_feat} per image, "
          f"{time.perf_counter() - t0:.0f} s for {len(x_train)} training images", flush=True)
    clf = softmax_regression(n_feat, 10, 1e-4, args.seed, args.dtype)
    lbfgs_fit(clf, f_train, y_train, "softmax_cross_entropy", args.softmax_iterations,
              args.per_epoch, "softmax")
    chain = numcnn.Model(img, clf.get_layer("softmax")(pooled))  # one Functional model
    acc = accuracy(chain, x_test.reshape(-1, 1, 28, 28), y_test)
    raw = softmax_regression(784, 10, 1e-4, args.seed, args.dtype)
    lbfgs_fit(raw, x_train, y_train, "softmax_cross_entropy", args.softmax_iterations,
              args.per_epoch, "raw-pixel softmax")
    acc_raw = accuracy(raw, x_test, y_test)
    print(f"  convolution+pooling: {100 * acc:.2f} % on MNIST's test set; softmax on raw "
          f"pixels: {100 * acc_raw:.2f} %", flush=True)
    if args.figure:
        path = Path(args.figure)
        save_bases(path.with_name(path.stem + "_patches" + path.suffix),
                   conv.params["W"], 20, "8×8 patch bases, whitening folded in")
    return acc


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iterations", type=int, default=400,
                    help="L-BFGS iterations of each autoencoder (UFLDL: 400)")
    ap.add_argument("--softmax-iterations", type=int, default=100,
                    help="L-BFGS iterations of each softmax regression (UFLDL: 100)")
    ap.add_argument("--per-epoch", type=int, default=25,
                    help="L-BFGS iterations between two progress lines")
    ap.add_argument("--hidden", type=int, default=196)
    ap.add_argument("--conv-features", type=int, default=100)
    ap.add_argument("--patches", type=int, default=100000)
    ap.add_argument("--patch-images", type=int, default=60000,
                    help="how many training images the patches are cut from")
    ap.add_argument("--unlabeled", type=int, default=None, help="limit (default: all)")
    ap.add_argument("--labeled", type=int, default=None, help="limit each half")
    ap.add_argument("--train", type=int, default=None,
                    help="limit part 2's training and test images")
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--figure", default=str(ROOT / "docs" / "figures" / "self_taught_bases.png"),
                    help="where to save the bases (and *_patches); '' for none")
    ap.add_argument("--quick", action="store_true",
                    help="a small version that runs in seconds (for the tests)")
    ap.add_argument("--data-dir", default=None, help="MNIST files (else $NUMCNN_DATA_DIR, "
                                                     "the cache, a download)")
    args = ap.parse_args(argv)
    if args.quick:
        args.iterations, args.softmax_iterations, args.per_epoch = 40, 40, 20
        args.hidden, args.conv_features, args.patches = 36, 16, 4000
        args.patch_images, args.unlabeled, args.labeled, args.train = 2000, 2000, 2000, 3000
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(numcnn.get_num_threads() or 1)
    except ImportError:  # optional: without it BLAS uses its own default
        pass
    try:
        (x_train, y_train), (x_test, y_test) = mnist.load_data(args.data_dir)
    except (OSError, ValueError) as e:
        sys.exit(f"self_taught_learning: cannot load MNIST: {e}")
    x_train = (x_train.reshape(-1, 784) / 255.0).astype(args.dtype)  # UFLDL: pixels in [0, 1]
    x_test = (x_test.reshape(-1, 784) / 255.0).astype(args.dtype)
    t0 = time.perf_counter()
    a1 = self_taught(args, x_train, y_train, x_test, y_test)
    if args.train:
        x_train, y_train = x_train[: args.train], y_train[: args.train]
        x_test, y_test = x_test[: args.train], y_test[: args.train]
    a2 = conv_pool(args, x_train, y_train, x_test, y_test)
    print(f"total {time.perf_counter() - t0:.0f} s")
    print(f"self-taught test accuracy: {100 * a1:.2f} %")
    print(f"convolution+pooling test accuracy: {100 * a2:.2f} %")


if __name__ == "__main__":
    main()
