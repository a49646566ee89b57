"""Reproduce LeNet-5's MNIST result (LeCun et al. 1998): test error after each of 20 passes.

The paper's protocol: LeNet-5 with the C3 connection table, trainable subsampling, scaled
tanh and fixed RBF outputs; the MAP loss; stochastic diagonal Levenberg–Marquardt with
μ = 0.02, h re-estimated on 500 patterns before each pass; η = 5e-4 (2 passes), 2e-4 (3),
1e-4 (3), 5e-5 (4), 1e-5 after; one pattern per update. Paper: 0.95 % test error (0.8 %
with affine distortions of the training set).

Usage (1 BLAS thread is fastest for one pattern per update)::

    OPENBLAS_NUM_THREADS=1 NUMCNN_DATA_DIR=/path/to/mnist \\
        python examples/reproduce_lenet5_1998.py [--passes 20] [--augment affine] \\
        [--batch-size 1] [--seed 0] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from numcnn.datasets.mnist import load_data
from numcnn.models import lenet5_1998
from numcnn.training.sdlm import capped_mu, train_lenet5_1998


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--passes", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--augment", choices=["none", "affine"], default="none")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--j", type=float, default=10.0, help="MAP loss constant j")
    ap.add_argument("--mu", type=float, default=1.0, help="SDLM damping (paper: 0.02)")
    ap.add_argument("--mu-schedule", choices=["const", "capped"], default="capped",
                    help="capped: mu_k = max(0.02, mu * eta_k / eta_0)")
    ap.add_argument("--init", choices=["sqrt_fan_in", "fan_in"], default="fan_in")
    ap.add_argument("--train-size", type=int, default=60000)
    ap.add_argument("--data-dir", default=os.environ.get("NUMCNN_DATA_DIR"))
    ap.add_argument("--json", help="write the per-pass records to this file")
    args = ap.parse_args(argv)

    (x_train, y_train), (x_test, y_test) = load_data(args.data_dir)
    x_train, y_train = x_train[: args.train_size], y_train[: args.train_size]
    model = lenet5_1998(seed=args.seed, init=args.init)
    model.summary()
    print(f"command: {' '.join([os.path.basename(sys.executable)] + sys.argv)}", flush=True)
    records: list[dict] = []

    def save(rec: dict) -> None:
        records.append(rec)
        if args.json:
            tmp = args.json + ".part"
            with open(tmp, "w") as f:
                json.dump({"args": vars(args), "passes": records,
                           "wall_seconds": time.perf_counter() - t0}, f, indent=1)
            os.replace(tmp, args.json)

    t0 = time.perf_counter()
    train_lenet5_1998(model, x_train, y_train, x_test, y_test, passes=args.passes,
                      batch_size=args.batch_size,
                      augment=None if args.augment == "none" else args.augment,
                      seed=args.seed, j=args.j,
                      mu=capped_mu(args.mu) if args.mu_schedule == "capped" else args.mu,
                      callback=save)
    wall = time.perf_counter() - t0
    errs = np.array([r["test_error"] for r in records]) * 100
    print(f"final test error {errs[-1]:.2f} %  (best {errs.min():.2f} % at pass "
          f"{errs.argmin() + 1}); wall time {wall / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
