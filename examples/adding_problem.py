"""The adding problem (Hochreiter & Schmidhuber 1997, experiment 4): SimpleRNN against LSTM.

Each sequence has T = 100 steps of two features: a random number u_t ~ U(0, 1) and a marker
m_t ∈ {0, 1}, with exactly two markers — one in the first half, one in the second (the
version of Le et al. 2015 and Arjovsky et al. 2016). The target is the sum of the two marked
numbers. Predicting the mean, 1, scores the variance of a sum of two U(0, 1):
MSE = 2/12 ≈ 0.1667, the trivial baseline. To beat it a network must carry a number across
up to 99 steps. ``Input((T, 2)) → SimpleRNN(H) or LSTM(H) → Dense(1)``, mean squared error,
Adam (lr 1e-3, constant; ``--schedule cosine`` decays it to 0 over the run) with gradients
clipped to a global norm of 1, batch 64, 40,000 training sequences; the test MSE on 2,000
held-out sequences is recorded every ``--eval-every`` batches. The LSTM drives it below 1 %
of the baseline; the SimpleRNN stays at the baseline — the course's argument for the LSTM.
docs/recurrent.md records the runs.

    python examples/adding_problem.py [--steps 100] [--epochs 8] [--plot adding.png]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import numcnn
from numcnn.layers import LSTM, Dense, Input, SimpleRNN
from numcnn.training import Callback, LearningRateScheduler

BASELINE = 2 / 12  # MSE of always predicting 1, the mean of the sum


def adding_data(n: int, T: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``x`` (n, T, 2) float32 — numbers and markers — and the targets ``y`` (n, 1)."""
    x = np.zeros((n, T, 2), dtype=np.float32)
    x[:, :, 0] = rng.random((n, T), dtype=np.float32)
    half = T // 2
    first = rng.integers(0, half, n)  # one marker in each half
    second = rng.integers(half, T, n)
    rows = np.arange(n)
    x[rows, first, 1] = 1.0
    x[rows, second, 1] = 1.0
    y = (x[rows, first, 0] + x[rows, second, 0])[:, None]
    return x, y


class TestCurve(Callback):
    """The test MSE every ``every`` batches: ``(batches seen, mse)`` in ``self.points``."""

    def __init__(self, x: np.ndarray, y: np.ndarray, every: int, say=print):
        super().__init__()
        self.x, self.y, self.every, self.say = x, y, every, say
        self.points: list[tuple[int, float]] = []
        self.seen = 0

    def _record(self) -> None:
        pred = self.model.predict(self.x, batch_size=1000)
        mse = float(np.mean((pred.astype(np.float64) - self.y) ** 2))
        self.points.append((self.seen, mse))
        self.say(f"  batch {self.seen:5d}: test MSE {mse:.5f} ({mse / BASELINE:.4f} of the "
                 "baseline)", flush=True)

    def on_train_begin(self, logs=None) -> None:
        self._record()

    def on_batch_end(self, batch, logs=None) -> None:
        self.seen += 1
        if self.seen % self.every == 0:
            self._record()


def run(cell: str, args: argparse.Namespace, train, test) -> dict:
    inp = Input((args.steps, 2))
    rnn = LSTM(args.units) if cell == "lstm" else SimpleRNN(args.units)
    model = numcnn.Model(inp, Dense(1)(rnn(inp)), seed=args.seed, name=f"adding_{cell}")
    model.compile(optimizer=numcnn.optimizers.Adam(lr=args.lr, clipnorm=args.clipnorm),
                  loss="mse", metrics=[])
    curve = TestCurve(*test, every=args.eval_every)
    print(f"{cell}({args.units}), T = {args.steps}:", flush=True)
    t0 = time.perf_counter()
    callbacks = [curve]
    if args.schedule == "cosine":  # from lr down to 0 over the run, before every batch
        callbacks.append(LearningRateScheduler("cosine", per_batch=True))
    model.fit(*train, batch_size=args.batch_size, epochs=args.epochs, seed=args.seed,
              verbose=0, callbacks=callbacks)
    wall = time.perf_counter() - t0
    final = curve.points[-1][1]
    best = min(m for _, m in curve.points)
    print(f"{cell}: final test MSE {final:.5f} = {final / BASELINE:.4f} of the baseline "
          f"{BASELINE:.4f} (best {best:.5f}); {curve.seen} batches in {wall:.0f} s", flush=True)
    return {"cell": cell, "units": args.units, "T": args.steps, "curve": curve.points,
            "final_mse": final, "best_mse": best, "wall_s": wall, "batches": curve.seen}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=100, help="sequence length T")
    ap.add_argument("--cells", nargs="+", choices=("rnn", "lstm"), default=["rnn", "lstm"])
    ap.add_argument("--units", type=int, default=128)
    ap.add_argument("--train-size", type=int, default=40000)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--clipnorm", type=float, default=1.0)
    ap.add_argument("--schedule", choices=("constant", "cosine"), default="constant",
                    help="learning rate: constant, or a per-batch cosine decay to 0")
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="write the curves here")
    ap.add_argument("--plot", default=None, help="draw the curves into this image "
                                                 "(needs matplotlib)")
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    train = adding_data(args.train_size, args.steps, rng)
    test = adding_data(2000, args.steps, rng)
    print(f"baseline (always predict 1): test MSE "
          f"{float(np.mean((test[1] - 1.0) ** 2)):.4f} (expected {BASELINE:.4f})")
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)
    except ImportError:  # optional: without it BLAS uses its own default
        pass
    results = [run(cell, args, train, test) for cell in args.cells]
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"baseline": BASELINE, "results": results}, f, indent=1)
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        for r in results:
            b, m = zip(*r["curve"])
            name = {"rnn": "SimpleRNN", "lstm": "LSTM"}[r["cell"]]
            ax.semilogy(b, m, label=f"{name}({r['units']})")
        ax.axhline(BASELINE, color="gray", ls="--", label="predict 1 (0.1667)")
        ax.axhline(0.01 * BASELINE, color="gray", ls=":", label="1 % of that")
        ax.set_xlabel("training batches (64 sequences each)")
        ax.set_ylabel("test mean squared error")
        ax.set_title(f"The adding problem, T = {args.steps}")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=100)
        print(f"plot written to {args.plot}")


if __name__ == "__main__":
    main()
