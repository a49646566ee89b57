"""Timing numcnn alone: training seconds per epoch and inference images/s of a zoo model.

This is what ``numcnn bench`` runs. It imports nothing beyond numcnn and NumPy. The
side-by-side comparison with PyTorch and ONNX Runtime (same weights, optimizer, batches and
thread count) is a script of the source checkout built on the helpers here::

    python benchmarks/lenet_vs_torch.py --threads 1 2 --batch-size 64 128 256

Measures, each the median of ``repeats`` runs with the min–max range:

* ``train s/epoch``: seconds per 60,000-image epoch of ``fit`` (extrapolated from ``steps``
  batches when ``steps`` is given) and ``train images/s``;
* ``infer images/s (batch 1000)``: ``predict`` on the 10,000 test images at batch 1,000.

At ``n ≥ 2`` threads ``fit`` runs in one process with ``n`` BLAS threads and ``predict``
with ``n`` threads of one BLAS thread each, as after ``numcnn.set_num_threads(n)``. Training
in ``n`` data-parallel processes is ``fit(distribute="local:n")``, timed against one process
by ``benchmarks/two_cores.py``.

>>> rows = run_benchmark(threads=(1,), batch_sizes=(128,), steps=20)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any, Callable

import numpy as np

from . import models as zoo
from .optimizers import SGD
from .threads import blas_threads, num_threads

EPOCH_IMAGES = 60000
TEST_IMAGES = 10000
INFER_BATCH = 1000


# ---------------------------------------------------------------------------- helpers
@contextlib.contextmanager
def threads_limited(n: int) -> Iterator[None]:
    """NumPy's BLAS and numcnn's ``fit``/``predict`` use ``n`` threads inside the block."""
    with blas_threads(n), num_threads(n):
        yield


def load_mnist(data_dir: str | None = None, synthetic: bool = False):
    """MNIST as resident float32 arrays in [0, 1], shaped (N, 1, 28, 28), plus int64 labels.

    Falls back to random images (same shapes) when the files are not found and cannot be
    downloaded, saying so on stderr; timing does not depend on the pixel values.

    Returns:
        ``(x_train, y_train, x_test, y_test)``: (60000, 1, 28, 28), (60000,),
        (10000, 1, 28, 28), (10000,).
    """
    if not synthetic:
        try:
            from .datasets import mnist

            (xtr, ytr), (xte, yte) = mnist.load_data(data_dir, verbose=False)
        except Exception as err:  # any failure to get MNIST: time on random data instead
            print(f"note: MNIST unavailable ({err}); timing on random images", file=sys.stderr)
        else:
            def prep(a):
                return (a.astype(np.float32) / np.float32(255))[:, None]
            return prep(xtr), ytr.astype(np.int64), prep(xte), yte.astype(np.int64)
    rng = np.random.default_rng(0)
    return (rng.random((EPOCH_IMAGES, 1, 28, 28), dtype=np.float32),
            rng.integers(0, 10, EPOCH_IMAGES),
            rng.random((TEST_IMAGES, 1, 28, 28), dtype=np.float32),
            rng.integers(0, 10, TEST_IMAGES))


def build_numcnn(model: str, seed: int, lr: float, momentum: float):
    """A compiled zoo model for MNIST's 1×28×28 images and 10 classes (SGD with momentum; no
    metrics: the bare training step). A network that cannot take 28×28 images says so."""
    if model.lower() in ("lenet5", "lenet5-1998"):
        net = zoo.get(model, seed=seed)
    else:  # the classic networks default to ImageNet's or CIFAR's shapes
        net = zoo.get(model, seed=seed, input_shape=(1, 28, 28), num_classes=10)
    net.compile(SGD(lr, momentum=momentum), "softmax_cross_entropy", metrics=[])
    return net


def time_numcnn_train(net, x: np.ndarray, y: np.ndarray, bs: int, steps: int) -> float:
    """Seconds for ``steps`` batches of ``net.fit`` on the (pre-shuffled) data, no shuffle."""
    n = steps * bs
    t = time.perf_counter()
    net.fit(x[:n], y[:n], batch_size=bs, epochs=1, shuffle=False, verbose=0)
    return time.perf_counter() - t


def time_numcnn_infer(net, x: np.ndarray, bs: int) -> float:
    """Seconds for ``net.predict`` on all of ``x`` at batch ``bs``."""
    t = time.perf_counter()
    net.predict(x, batch_size=bs)
    return time.perf_counter() - t


# ---------------------------------------------------------------------------- driver
def run_benchmark(
    threads: Sequence[int] = (1,),
    batch_sizes: Sequence[int] = (128,),
    steps: int | None = 100,
    epochs: int = 1,
    repeats: int = 5,
    inference: bool = True,
    model: str = "lenet5",
    data_dir: str | None = None,
    synthetic: bool = False,
    lr: float = 0.05,
    momentum: float = 0.9,
    seed: int = 0,
    print_fn: Callable[[str], Any] = print,
) -> list[dict]:
    """Time numcnn's training and inference and print one table; return its rows.

    Args:
        threads: thread counts to time at.
        batch_sizes: training batch sizes.
        steps: time this many batches and extrapolate to a 60,000-image epoch; ``None``
            times ``epochs`` whole epochs.
        epochs: whole epochs per repeat when ``steps`` is None.
        repeats: runs per measurement (median and min–max are reported).
        inference: time ``predict`` on the 10,000 test images at batch 1,000.
        model: zoo model name.
        data_dir: where MNIST is (else ``$NUMCNN_DATA_DIR``, the cache, a download).
        synthetic: time on random images instead of MNIST.
        lr, momentum, seed: the SGD optimizer and the initial weights.
        print_fn: where the table goes.

    Returns:
        One dict per row: ``measure``, ``threads``, ``batch``, ``unit`` and ``values`` (the
        per-repeat figures).
    """
    build_numcnn(model, seed, lr, momentum)  # an unknown model fails before data loading
    x, y, xte, _ = load_mnist(data_dir, synthetic)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]  # one shuffled epoch
    rows: list[dict] = []
    for th in threads:
        with threads_limited(th):
            for bs in batch_sizes:
                n_steps = steps if steps is not None else epochs * -(-len(x) // bs)
                n_steps = min(n_steps, len(x) // bs)
                per_epoch = -(-EPOCH_IMAGES // bs) / n_steps  # batches per epoch / timed
                net = build_numcnn(model, seed, lr, momentum)
                time_numcnn_train(net, x, y, bs, min(3, n_steps))  # warm-up: workspaces
                tn = [time_numcnn_train(net, x, y, bs, n_steps) for _ in range(repeats)]
                rows.append(_row("train s/epoch", th, bs, "s", [t * per_epoch for t in tn]))
                rows.append(_row("train images/s", th, bs, "img/s",
                                 [n_steps * bs / t for t in tn]))
            if inference:
                net = build_numcnn(model, seed, lr, momentum)
                time_numcnn_infer(net, xte, INFER_BATCH)
                ti = [time_numcnn_infer(net, xte, INFER_BATCH) for _ in range(repeats)]
                rows.append(_row(f"infer images/s (batch {INFER_BATCH})", th, INFER_BATCH,
                                 "img/s", [len(xte) / t for t in ti]))
    print_table(rows, print_fn, header=header(model, threads, steps, repeats))
    return rows


def _row(measure: str, th: int, bs: int, unit: str, values: list[float]) -> dict:
    return {"measure": measure, "threads": th, "batch": bs, "unit": unit, "values": values}


def header(model: str, threads: Sequence[int], steps: int | None, repeats: int) -> str:
    """One line: model, versions, CPU, threads and how the figures were taken."""
    from . import __version__

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    mode = f"{steps} batches per repeat, extrapolated to 60,000 images" if steps else "epochs"
    return (f"model {model}; numcnn {__version__}, NumPy {np.__version__}, "
            f"Python {platform.python_version()}; CPU {cpu} ({os.cpu_count()} logical); "
            f"threads {', '.join(map(str, threads))}; {repeats} repeats, {mode}"
            + ("; at n ≥ 2 threads: fit with n BLAS threads, predict with n threads, in one "
               "process (data-parallel processes: fit(distribute='local:n'))"
               if max(threads, default=1) >= 2 else ""))


def print_table(rows: list[dict], print_fn: Callable[[str], Any] = print,
                header: str = "") -> None:
    """A markdown table: measure, threads, batch, median (min–max)."""
    if header:
        print_fn(header)
    digits = {"s": 2, "img/s": 0}
    print_fn("| measure | threads | batch | numcnn median (min–max) |")
    print_fn("|---|---|---|---|")
    for r in rows:
        d = digits.get(r["unit"], 2)
        med, lo, hi = statistics.median(r["values"]), min(r["values"]), max(r["values"])
        print_fn(f"| {r['measure']} | {r['threads']} | {r['batch']} | "
                 f"{med:.{d}f} ({lo:.{d}f}–{hi:.{d}f}) |")
