"""The 1998 LeNet-5 against the modern one, in numcnn, per training image, in one process.

Both models train on the same MNIST batches with SGD (momentum 0.9), each with its own
loss — the modern net softmax cross-entropy at lr 0.05, the 1998 net its ``lenet_map`` on
the RBF penalties at lr 5e-4 (grey levels 0..255 as its input, which it normalises itself)
— at one BLAS thread unless ``--threads`` says otherwise. (Training the 1998 net with
cross-entropy at lr 0.05, as this script once did, makes its weights grow by orders of
magnitude within a few hundred batches, and its step time then depends on where that run
went; with its own loss it trains, and its timing is stable.) Rounds alternate which model
goes first; each round times ``--steps`` batches of ``fit`` per model. The last line is the
median time of the 1998 net over the median time of the modern one (below 1: the 1998 net
is faster per image).

    python benchmarks/lenet1998_vs_modern.py                  # 15 rounds of 100 batches
    python benchmarks/lenet1998_vs_modern.py --batch-size 64 --rounds 21
"""

from __future__ import annotations

import argparse
import statistics
import sys

from numcnn.benchmark import build_numcnn, load_mnist, threads_limited, time_numcnn_train
from numcnn.optimizers import SGD


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=100, help="batches per model per round")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--synthetic", action="store_true")
    a = p.parse_args(argv)
    x, y, _, _ = load_mnist(a.data_dir, a.synthetic)
    names = ["lenet5-1998", "lenet5"]
    nets = {n: build_numcnn(n, 0, 0.05, 0.9) for n in names}
    nets["lenet5-1998"].compile(SGD(5e-4, momentum=0.9), "lenet_map", metrics=[])
    data = {"lenet5": x, "lenet5-1998": x * x.dtype.type(255)}  # its own input scale
    times: dict[str, list[float]] = {n: [] for n in names}
    with threads_limited(a.threads):
        for n in names:  # warm-up: workspaces, caches
            time_numcnn_train(nets[n], data[n], y, a.batch_size, 3)
        for r in range(a.rounds):
            for n in (names if r % 2 == 0 else names[::-1]):
                times[n].append(time_numcnn_train(nets[n], data[n], y, a.batch_size, a.steps))
    images = a.steps * a.batch_size
    print(f"batch {a.batch_size}, {a.threads} thread(s), {a.rounds} rounds of {a.steps} "
          "batches per model")
    print("| model | ms per batch, median (min–max) | images/s (median) |")
    print("|---|---|---|")
    for n in names:
        ms = [t / a.steps * 1e3 for t in times[n]]
        print(f"| {n} | {statistics.median(ms):.2f} ({min(ms):.2f}–{max(ms):.2f}) | "
              f"{images / statistics.median(times[n]):.0f} |")
    ratios = [t98 / t for t98, t in zip(times["lenet5-1998"], times["lenet5"])]
    print(f"per-round ratios: {min(ratios):.3f}–{max(ratios):.3f}")
    ratio = statistics.median(times["lenet5-1998"]) / statistics.median(times["lenet5"])
    print(f"ratio lenet5-1998/lenet5 (time per image; <1 = the 1998 net is faster): {ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
