"""Side-by-side speed benchmark: numcnn against PyTorch (and ONNX Runtime) on LeNet-5.

Both frameworks train the *same* network from the *same* initial weights (numcnn's, copied
into a PyTorch twin: conv kernels as they are, Dense ``W`` transposed into ``Linear.weight``),
with the same optimizer (SGD, momentum 0.9, PyTorch's update rule in both), on the same
batches in the same order, at the same thread count (``threadpoolctl`` for NumPy's BLAS,
``torch.set_num_threads`` for PyTorch), in one process, alternating which framework runs
first in each repeat. Every figure is the median of the repeats, with the min–max range; the
ratio is numcnn's time over PyTorch's (below 1 means numcnn is faster).

Measures:
    * ``train``: seconds per MNIST epoch (60,000 images; extrapolated from ``steps`` batches
      when ``steps`` is given) and images/s;
    * ``infer``: the 10,000 test images at batch 1,000, images/s (``predict``);
    * ``latency``: one image, milliseconds (median of many calls);
    * ``memory``: peak resident memory of a child process that trains ``steps`` batches,
      one child per framework so that neither pollutes the other, and the peak PSS summed
      over that child and any process it forked (``memory.py`` beside this file).

At ``n ≥ 2`` threads numcnn runs ``n`` BLAS threads in one process, the way it runs for
users after ``numcnn.set_num_threads(n)``; PyTorch runs ``n`` intra-op threads. (numcnn's
data-parallel processes, ``fit(distribute="local:n")``, are timed against one process by
``two_cores.py`` beside this file.)

PyTorch is imported lazily; without it numcnn is timed alone. numcnn itself never needs it:
this file and its neighbours (``torch_twins.py``, ``memory.py``) live in ``benchmarks/`` of
the source checkout, not in the package, and use numcnn as an ordinary library (the timing
of numcnn alone is :mod:`numcnn.benchmark`, also behind ``numcnn bench``). Run it through
``python benchmarks/lenet_vs_torch.py``, or from Python with ``benchmarks/`` on ``sys.path``:

>>> from bench import run_bench
>>> rows = run_bench(threads=(1,), batch_sizes=(128,), steps=20, repeats=3)  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence

import numpy as np

import numcnn
from memory import measure_memory
from numcnn import benchmark
from numcnn import models as zoo
from numcnn.benchmark import (
    EPOCH_IMAGES,
    build_numcnn,
    load_mnist,
    time_numcnn_infer,
    time_numcnn_train,
)
from torch_twins import torch_twin

# ---------------------------------------------------------------------------- helpers
#: the clock of every timing: the wall clock, or the process's CPU time (``--clock cpu``:
#: at 1 thread, the other jobs of a shared host then do not count)
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
_now = time.perf_counter


def _timed(fn, *args) -> float:
    """Seconds of ``fn(*args)`` by the benchmark's clock."""
    t = _now()
    fn(*args)
    return _now() - t


def _torch():
    """PyTorch if importable, else None (numcnn is then timed alone)."""
    try:
        import torch
    except ImportError:
        return None
    return torch


@contextlib.contextmanager
def threads_limited(n: int):
    """Limit NumPy's BLAS (and PyTorch's pools) to ``n`` threads inside the block."""
    torch = _torch() if "torch" in sys.modules else None
    old = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(n)
    try:
        with benchmark.threads_limited(n):  # numcnn's fit/predict use n threads too
            yield
    finally:
        if torch is not None and old is not None:
            torch.set_num_threads(old)


def check_float32_step(net, x: np.ndarray, y: np.ndarray) -> None:
    """One training step with every activation, gradient and parameter asserted float32."""
    names = list(net.intermediates(x[:2]))
    for name, h in net.intermediates(x, names).items():
        assert h.dtype == np.float32, f"{name} output is {h.dtype}"
    h = net.forward(x, training=True)
    net.loss.forward(h, y)
    d = net.loss.backward()
    assert d.dtype == np.float32, f"loss gradient is {d.dtype}"
    net.backward(d)
    params, grads = net.trainable_params(), net.trainable_grads()
    for name, p in params.items():
        g = grads[name]
        assert p.dtype == g.dtype == np.float32, \
            f"{name}: parameter/gradient dtype {p.dtype}/{g.dtype}"


# ---------------------------------------------------------------------------- timers
def time_torch_train(module, opt, xt, yt, bs: int, steps: int) -> float:
    """Seconds for ``steps`` batches of the usual PyTorch loop on the same batches."""
    torch = _torch()
    loss_fn = torch.nn.CrossEntropyLoss()
    module.train()
    t = _now()
    for s in range(steps):
        xb, yb = xt[s * bs : (s + 1) * bs], yt[s * bs : (s + 1) * bs]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(module(xb), yb)
        loss.backward()
        opt.step()
        loss.item()
    return _now() - t


def time_torch_infer(module, xt, bs: int) -> float:
    torch = _torch()
    module.eval()
    t = _now()
    with torch.inference_mode():
        for s in range(0, len(xt), bs):
            module(xt[s : s + bs]).numpy()
    return _now() - t


def time_latency(fn, calls: int = 200) -> float:
    """Median seconds of one call of ``fn`` (after a warm-up call)."""
    fn()
    ts = []
    for _ in range(calls):
        t = _now()
        fn()
        ts.append(_now() - t)
    return statistics.median(ts)


def onnx_session(module, threads: int):
    """An ONNX Runtime session for the PyTorch twin, or ``(None, reason)``."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None, "onnxruntime not installed"
    torch = _torch()
    path = os.path.join(tempfile.mkdtemp(prefix="numcnn-bench-"), "lenet.onnx")
    module.eval()
    onnx_log = logging.getLogger("torch.onnx")
    level = onnx_log.level
    try:  # the exporter's progress lines and its internal deprecation warnings are noise here
        onnx_log.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (torch.zeros(2, 1, 28, 28),), path, input_names=["x"],
                              output_names=["y"],
                              dynamic_shapes=({0: torch.export.Dim("n")},))
    except Exception as err:  # the exporter may need extra packages or the network
        return None, f"torch.onnx.export failed ({type(err).__name__}: {err})"
    finally:
        onnx_log.setLevel(level)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"]), ""


# ---------------------------------------------------------------------------- driver
def _stats(values: Sequence[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def _fmt(values: Sequence[float] | None, scale: float = 1.0, digits: int = 2) -> str:
    if not values:
        return "—"
    med, lo, hi = _stats([v * scale for v in values])
    return f"{med:.{digits}f} ({lo:.{digits}f}–{hi:.{digits}f})"


def run_bench(
    threads: Sequence[int] = (1,),
    batch_sizes: Sequence[int] = (128,),
    steps: int | None = 100,
    epochs: int = 1,
    repeats: int = 5,
    inference: bool = True,
    latency: bool = False,
    memory: bool = False,
    onnx: bool = True,
    model: str = "lenet5",
    data_dir: str | None = None,
    synthetic: bool = False,
    torch: bool = True,
    lr: float = 0.05,
    momentum: float = 0.9,
    seed: int = 0,
    print_fn=print,
    clock: str = "wall",
) -> list[dict]:
    """Time numcnn (and PyTorch when installed) and print one table; return its rows.

    Args:
        threads: thread counts to compare at (each framework gets the same count).
        batch_sizes: training batch sizes.
        steps: time this many batches and extrapolate to a 60,000-image epoch; ``None``
            times ``epochs`` whole epochs.
        epochs: whole epochs per repeat when ``steps`` is None.
        repeats: alternating repeats per measurement (median and min–max are reported).
        inference: time ``predict`` on the 10,000 test images at batch 1,000.
        latency: time one-image prediction.
        memory: peak RSS of a child process per framework training ``steps`` batches.
        onnx: also time ONNX Runtime inference (when installed and the export works).
        model: zoo model name; PyTorch is compared only when a twin can be built.
        data_dir: where MNIST is (else ``$NUMCNN_DATA_DIR``, the cache, a download).
        synthetic: time on random images instead of MNIST.
        torch: compare with PyTorch (when importable).
        lr, momentum, seed: optimizer and initial weights (the same for both frameworks).
        print_fn: where the table goes.
        clock: ``"wall"`` (default) or ``"cpu"``: the process's CPU time, for 1 thread on a
            shared host (at more threads it would add up the threads' times).

    Returns:
        One dict per row: ``measure``, ``threads``, ``batch``, ``unit``, ``numcnn`` and
        ``torch`` (lists of per-repeat values), ``ratio`` (median numcnn / median torch, in
        time, or None).
    """
    global _now
    if clock not in CLOCKS or (clock == "cpu" and max(threads, default=1) > 1):
        raise ValueError(f"clock must be 'wall', or 'cpu' at 1 thread; received {clock!r} at "
                         f"threads {tuple(threads)}")
    _now = CLOCKS[clock]
    tch = _torch() if torch else None
    if torch and tch is None:
        print_fn("PyTorch is not installed: timing numcnn alone (pip install torch to compare)")
    x, y, xte, yte = load_mnist(data_dir, synthetic)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]  # one shuffled epoch, shared by both frameworks
    twin_ok = tch is not None
    if twin_ok:
        try:
            torch_twin(build_numcnn(model, seed, lr, momentum), lr, momentum)
        except NotImplementedError as err:
            print_fn(f"no PyTorch twin for {model} ({err}): timing numcnn alone")
            twin_ok = False
    if twin_ok:
        xt, yt, xtet = tch.from_numpy(x), tch.from_numpy(y), tch.from_numpy(xte)

    rows: list[dict] = []
    for th in threads:
        with threads_limited(th):
            for bs in batch_sizes:
                n_steps = steps if steps is not None else epochs * -(-len(x) // bs)
                n_steps = min(n_steps, len(x) // bs)
                per_epoch = -(-EPOCH_IMAGES // bs) / n_steps  # batches per epoch / timed
                net = build_numcnn(model, seed, lr, momentum)
                check_float32_step(build_numcnn(model, seed, lr, momentum), x[:bs], y[:bs])
                if twin_ok:
                    module, opt = torch_twin(net, lr, momentum)
                # warm-up (allocates workspaces, JIT-free but caches warm)
                time_numcnn_train(net, x, y, bs, 3)
                if twin_ok:
                    time_torch_train(module, opt, xt, yt, bs, 3)
                tn: list[float] = []
                tt: list[float] = []
                for r in range(repeats):
                    first_torch = twin_ok and r % 2 == 1
                    if first_torch:
                        tt.append(time_torch_train(module, opt, xt, yt, bs, n_steps))
                    tn.append(_timed(time_numcnn_train, net, x, y, bs, n_steps))
                    if twin_ok and not first_torch:
                        tt.append(time_torch_train(module, opt, xt, yt, bs, n_steps))
                rows.append(_row("train s/epoch", th, bs, "s",
                                 [t * per_epoch for t in tn], [t * per_epoch for t in tt]))
                rows.append(_row("train images/s", th, bs, "img/s",
                                 [n_steps * bs / t for t in tn], [n_steps * bs / t for t in tt],
                                 higher_better=True))
            if inference:
                net = build_numcnn(model, seed, lr, momentum)
                if twin_ok:
                    module, _ = torch_twin(net, lr, momentum)
                sess, why = (onnx_session(module, th) if (onnx and twin_ok) else (None, ""))
                time_numcnn_infer(net, xte, 1000)
                if twin_ok:
                    time_torch_infer(module, xtet, 1000)
                tn, tt, to = [], [], []
                for r in range(repeats):
                    if twin_ok and r % 2 == 1:
                        tt.append(time_torch_infer(module, xtet, 1000))
                    tn.append(_timed(time_numcnn_infer, net, xte, 1000))
                    if twin_ok and r % 2 == 0:
                        tt.append(time_torch_infer(module, xtet, 1000))
                    if sess is not None:
                        t = _now()
                        for s in range(0, len(xte), 1000):
                            sess.run(None, {"x": xte[s : s + 1000]})
                        to.append(_now() - t)
                n = len(xte)
                rows.append(_row("infer images/s (batch 1000)", th, 1000, "img/s",
                                 [n / t for t in tn], [n / t for t in tt], higher_better=True))
                if sess is not None:
                    rows.append(_row("onnxruntime infer images/s", th, 1000, "img/s",
                                     [n / t for t in to], [n / t for t in tt],
                                     higher_better=True, left="onnxruntime"))
                elif onnx and twin_ok and why:
                    print_fn(f"ONNX Runtime skipped: {why}")
            if latency:
                net = build_numcnn(model, seed, lr, momentum)
                x1 = xte[:1]
                ln = [time_latency(lambda n=net, v=x1: n.predict(v, batch_size=1))
                      for _ in range(3)]
                lt = []
                if twin_ok:
                    module, _ = torch_twin(net, lr, momentum)
                    module.eval()
                    x1t = tch.from_numpy(x1)

                    def one(m=module, v=x1t):
                        with tch.inference_mode():
                            m(v).numpy()
                    lt = [time_latency(one) for _ in range(3)]
                rows.append(_row("latency ms (1 image)", th, 1, "ms",
                                 [t * 1e3 for t in ln], [t * 1e3 for t in lt]))
            if memory:
                mem_steps = steps if steps is not None else 200
                bs = batch_sizes[0] if batch_sizes else 128
                mn = measure_memory("numcnn", model, bs, mem_steps, th, data_dir, synthetic)
                mt = (measure_memory("torch", model, bs, mem_steps, th, data_dir, synthetic)
                      if twin_ok else None)
                rows.append(_row("peak RSS MiB (training)", th, bs, "MiB", [mn["peak_mib"]],
                                 [mt["peak_mib"]] if mt else []))
                rows.append(_row("RSS growth MiB in training", th, bs, "MiB",
                                 [mn["peak_mib"] - mn["base_mib"]],
                                 [mt["peak_mib"] - mt["base_mib"]] if mt else []))
                if mn["pss_peak_mib"] is not None:
                    rows.append(_row("peak PSS MiB, all processes", th, bs, "MiB",
                                     [mn["pss_peak_mib"]], [mt["pss_peak_mib"]] if mt else []))
    print_table(rows, print_fn, header=_header(tch, threads, model, steps, repeats))
    return rows


def _row(measure: str, th: int, bs: int, unit: str, vn: list[float], vt: list[float],
         higher_better: bool = False, left: str = "numcnn") -> dict:
    ratio = None
    if vn and vt and min(statistics.median(vn), statistics.median(vt)) > 0:
        mn, mt = statistics.median(vn), statistics.median(vt)
        ratio = (mt / mn) if higher_better else (mn / mt)  # always: left's time / torch's time
    return {"measure": measure, "threads": th, "batch": bs, "unit": unit, "left": left,
            "numcnn": vn, "torch": vt, "ratio": ratio}


def _header(tch, threads, model, steps, repeats) -> str:
    ver = numcnn.__version__
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    tv = tch.__version__ if tch is not None else "not installed"
    mode = f"{steps} batches per repeat, extrapolated to 60,000 images" if steps else "epochs"
    return (f"model {model}; numcnn {ver}, NumPy {np.__version__}, PyTorch {tv}, "
            f"Python {platform.python_version()}; CPU {cpu} ({os.cpu_count()} logical); "
            f"threads {', '.join(map(str, threads))}; {repeats} repeats, {mode}"
            + ("; CPU time" if _now is time.process_time else "")
            + ("; numcnn at n ≥ 2 threads: fit with n BLAS threads, predict with n threads "
               "of one BLAS thread, in one process" if max(threads, default=1) >= 2 else ""))


#: labels of the memory rows in the summary line (the others use their first word)
SHORT = {"peak RSS MiB (training)": "peak-RSS", "RSS growth MiB in training": "RSS-growth",
         "peak PSS MiB, all processes": "peak-PSS"}


def print_table(rows: list[dict], print_fn=print, header: str = "") -> None:
    """Markdown table; the last line summarises the numcnn/PyTorch time ratios."""
    if header:
        print_fn(header)
    digits = {"s": 2, "img/s": 0, "ms": 3, "MiB": 0}
    print_fn("| measure | threads | batch | numcnn median (min–max) | PyTorch median (min–max) "
             "| ratio numcnn/PyTorch (time) |")
    print_fn("|---|---|---|---|---|---|")
    for r in rows:
        d = digits.get(r["unit"], 2)
        name = r["measure"] if r["left"] == "numcnn" else f"{r['measure']} (left: ONNX Runtime)"
        ratio = "—" if r["ratio"] is None else f"{r['ratio']:.3g}"
        print_fn(f"| {name} | {r['threads']} | {r['batch']} | {_fmt(r['numcnn'], digits=d)} | "
                 f"{_fmt(r['torch'], digits=d)} | {ratio} |")
    parts = []
    for r in rows:
        if r["ratio"] is None or r["left"] != "numcnn":
            continue
        if r["unit"] == "img/s" and not r["measure"].startswith("infer"):
            continue  # training images/s repeats the s/epoch ratio
        label = SHORT.get(r["measure"], r["measure"].split(" ")[0])
        parts.append(f"{label} {r['threads']}t/b{r['batch']} "
                     f"{r['ratio']:.3g}")
    for r in rows:  # numcnn against ONNX Runtime, the inference reference
        ours = [q for q in rows if q["measure"].startswith("infer") and q["left"] == "numcnn"
                and q["threads"] == r["threads"]]
        if r["left"] == "onnxruntime" and r["numcnn"] and ours and ours[0]["numcnn"]:
            ratio = statistics.median(r["numcnn"]) / statistics.median(ours[0]["numcnn"])
            parts.append(f"numcnn/onnxruntime infer {r['threads']}t/b{r['batch']} {ratio:.3g}")
    print_fn("ratio numcnn/PyTorch (time; <1 = numcnn faster): "
             + ("; ".join(parts) if parts else "n/a (PyTorch not compared)"))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Time numcnn against PyTorch (same net, weights, optimizer, batches and "
                    "thread count) and print a table; the last line is numcnn/PyTorch.")
    p.add_argument("--threads", type=int, nargs="+", default=[1], help="thread counts")
    p.add_argument("--batch-size", type=int, nargs="+", default=[128], dest="batch_sizes",
                   help="training batch sizes (e.g. 64 128 256)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, default=100,
                   help="batches timed per repeat, extrapolated to an epoch (default 100)")
    g.add_argument("--epochs", type=int, default=None, help="time whole epochs instead")
    p.add_argument("--repeats", type=int, default=5, help="alternating repeats (default 5)")
    p.add_argument("--no-inference", action="store_false", dest="inference",
                   help="skip the 10k-image inference timing")
    p.add_argument("--inference-only", action="store_true",
                   help="time inference (and latency/memory if asked) but not training")
    p.add_argument("--latency", action="store_true", help="time one-image prediction")
    p.add_argument("--memory", action="store_true",
                   help="peak RSS while training, one child process per framework")
    p.add_argument("--no-onnx", action="store_false", dest="onnx", help="skip ONNX Runtime")
    p.add_argument("--no-torch", action="store_false", dest="torch", help="numcnn alone")
    p.add_argument("--model", default="lenet5", help="zoo model (default lenet5)")
    p.add_argument("--data-dir", default=None, help="directory with the MNIST IDX files")
    p.add_argument("--synthetic", action="store_true", help="random images instead of MNIST")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                   help="wall clock (default) or the process's CPU time (1 thread only: on a "
                        "shared host other jobs then do not count)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python benchmarks/lenet_vs_torch.py``; returns the exit status."""
    parser = build_parser()
    a = parser.parse_args(argv)
    bad = [v for v in [*a.threads, *a.batch_sizes, a.repeats] if v <= 0]
    if bad or (a.steps is not None and a.steps <= 0) or (a.epochs is not None and a.epochs <= 0):
        print(f"{parser.prog}: threads, batch sizes, steps, epochs and repeats must be positive",
              file=sys.stderr)
        return 2
    if a.model.lower() not in zoo.ZOO:
        print(f"{parser.prog}: unknown model {a.model!r}; expected one of: "
              f"{', '.join(sorted(zoo.ZOO))}", file=sys.stderr)
        return 2
    if a.clock == "cpu" and max(a.threads) > 1:
        print(f"{parser.prog}: --clock cpu adds up the threads' times; use it with --threads 1",
              file=sys.stderr)
        return 2
    steps = None if a.epochs is not None else a.steps
    batch_sizes = a.batch_sizes
    if a.inference_only:
        batch_sizes = []
    run_bench(threads=a.threads, batch_sizes=batch_sizes, steps=steps, epochs=a.epochs or 1,
              repeats=a.repeats, inference=a.inference or a.inference_only, latency=a.latency,
              memory=a.memory, onnx=a.onnx, model=a.model, data_dir=a.data_dir,
              synthetic=a.synthetic, torch=a.torch, lr=a.lr, momentum=a.momentum, seed=a.seed,
              clock=a.clock)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
