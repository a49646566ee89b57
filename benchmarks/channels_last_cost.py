"""The cost of ``data_format="channels_last"``: each layer against its NCHW twin, same
weights, same data (transposed), one forward and backward pass per repetition, alternated
in one run, CPU time, medians. The channels-last layer transposes at its boundary
(numcnn.layers.data_format), so the ratio is the price of those copies.

    OPENBLAS_NUM_THREADS=1 python benchmarks/channels_last_cost.py [--reps 15]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from numcnn.layers import Conv2D, MaxPool2D

CASES = [
    (Conv2D, {"out_channels": 32, "kernel_size": 3, "padding": 1}, (64, 16, 28, 28)),
    (Conv2D, {"out_channels": 6, "kernel_size": 5, "padding": 2}, (64, 1, 28, 28)),
    (MaxPool2D, {"pool_size": 2}, (64, 32, 28, 28)),
]


def one(cls, kwargs, shape, reps: int) -> tuple[float, float]:
    """Median CPU seconds of forward + backward for the NCHW layer and its NHWC twin."""
    N, C, H, W = shape
    first = cls(**kwargs)
    first.build((C, H, W), np.random.default_rng(0))
    last = cls(**kwargs, data_format="channels_last")
    last.build((H, W, C), np.random.default_rng(0))
    for k in first.params:
        last.params[k][...] = first.params[k]
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    xl = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    times: dict[int, list[float]] = {0: [], 1: []}
    for _ in range(reps):
        for k, (layer, data) in enumerate(((first, x), (last, xl))):
            t0 = time.process_time()
            y = layer.forward(data, training=True)
            layer.backward(np.ones_like(y))
            times[k].append(time.process_time() - t0)
    return float(np.median(times[0])), float(np.median(times[1]))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=15)
    args = ap.parse_args(argv)
    for cls, kwargs, shape in CASES:
        a, b = one(cls, kwargs, shape, args.reps)
        print(f"{cls.__name__}({kwargs}) on {shape}: NCHW {a * 1e3:.2f} ms, "
              f"NHWC {b * 1e3:.2f} ms, ratio {b / a:.2f}")


if __name__ == "__main__":
    main()
