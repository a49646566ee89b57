"""The compute floor of a numcnn model: its matrix products, their FLOPs, and a GEMM probe.

A training step of a convolutional network is, at its core, a handful of matrix products
(GEMMs). Written as im2col products, each ``Conv2D`` (per group ``g``, ``C`` input and ``F``
output channels, a ``kh×kw`` kernel, ``P = N·Ho·Wo`` output positions of a batch of ``N``)
needs

* forward          ``Y (F/g × P)          = W (F/g × C/g·kh·kw) · cols (C/g·kh·kw × P)``
* input gradient   ``dcols (C/g·kh·kw × P) = Wᵀ (C/g·kh·kw × F/g) · dY (F/g × P)``
* weight gradient  ``dW (F/g × C/g·kh·kw)  = dY (F/g × P) · colsᵀ (P × C/g·kh·kw)``

and each ``Dense`` (``in → out`` features) ``Y = X·W`` (``N × in · in × out``),
``dX = dY·Wᵀ`` (``N × out · out × in``) and ``dW = Xᵀ·dY`` (``in × N · N × out``). A product
``C (m × n) = A (m × k) · B (k × n)`` costs ``2·m·n·k`` floating-point operations (one
multiplication and one addition per multiply-accumulate). The input gradient is left out
where the graph engine leaves it out (no trainable parameter upstream: LeNet-5's first
convolution), exactly as :meth:`numcnn.models.graph.Graph.grad_plan` decides.

The **shape floor** of a step is the sum, over those products, of the time NumPy's BLAS
takes for a product of exactly that shape on this machine, each timed alone on float32
operands of the full size (``np.matmul(..., out=...)``, the best of several rounds, at the
given thread count), in the fastest way found: one call, or a loop over pieces of 256 to
8,192 along the product's longest side (as a blocked kernel computes it; OpenBLAS runs
LeNet-5's C1 product ``(6 × 25)·(25 × 100,352)`` 2.5× faster in pieces of 2,048 columns
than in one call), each in either orientation (``C = A·B`` or ``Cᵀ = Bᵀ·Aᵀ``, since a kernel
may lay its data out either way). Nothing else (im2col copies, pooling, activations, the
loss, the optimizer, Python) is counted: this is what the products alone cost with NumPy's
BLAS. The time of each product as written, in one call, is reported beside it. The **peak
floor** divides the FLOPs by the best rate a large square GEMM reaches.

From Python (``benchmarks/`` on ``sys.path``)::

    from floor import compute_floor
    f = compute_floor(numcnn.models.lenet5(seed=0), batch_size=128, threads=1)
    f.flops, f.step_seconds, f.epoch_seconds(), f.peak_epoch_seconds()

On the command line::

    OPENBLAS_NUM_THREADS=1 python benchmarks/floor.py                 # LeNet-5, batch 128
    python benchmarks/floor.py --model resnet20 --batch-size 64 --threads 1 2 --per-gemm

Layers with multiply-accumulates that are not modelled as GEMMs here (recurrent layers,
``LocallyConnected2D``, the RBF output, ...) are reported as *unmodelled MACs* and left out
of the floor. A ``Conv2D`` with a connection table (the 1998 LeNet-5's C3) is counted as the
dense product numcnn computes (the missing kernels are zeros in ``W``).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: images in one MNIST training epoch
EPOCH_IMAGES = 60_000
#: square sizes tried for the peak GEMM rate
PEAK_SIZES = (512, 1024, 1536)
#: chunk sizes tried along a product's longest side (when it is longer than the chunk)
CHUNKS = (256, 512, 1024, 2048, 4096, 8192)


# ------------------------------------------------------------------ the products
@dataclass(frozen=True)
class Gemm:
    """One matrix product ``C (m × n) = A (m × k) · B (k × n)``, ``count`` times (groups).

    Attributes:
        layer: the layer's name. phase: ``"forward"``, ``"input gradient"`` or ``"weight
        gradient"``. m, n, k: the product's sizes. count: how many such products (conv
        groups).
    """

    layer: str
    phase: str
    m: int
    n: int
    k: int
    count: int = 1

    @property
    def flops(self) -> int:
        """``2·m·n·k·count``: a multiplication and an addition per multiply-accumulate."""
        return 2 * self.m * self.n * self.k * self.count


def _conv_gemms(name: str, layer: Any, in_shape: Any, out_shape: Any, batch: int,
                training: bool, need_dx: bool) -> list[Gemm]:
    C, _, _ = layer._chw(tuple(in_shape))
    F, Ho, Wo = layer._chw(tuple(out_shape))
    kh, kw = layer.kernel_size
    g = int(getattr(layer, "groups", 1))
    K, Fg, P = (C // g) * kh * kw, F // g, batch * Ho * Wo
    out = [Gemm(name, "forward", Fg, P, K, g)]
    if training:
        if need_dx:
            out.append(Gemm(name, "input gradient", K, P, Fg, g))
        if layer.trainable:
            out.append(Gemm(name, "weight gradient", Fg, K, P, g))
    return out


def _dense_gemms(name: str, layer: Any, in_shape: Any, out_shape: Any, batch: int,
                 training: bool, need_dx: bool) -> list[Gemm]:
    d_in, d_out = int(in_shape[-1]), int(out_shape[-1])
    rows = batch * math.prod(int(s) for s in in_shape[:-1])  # Dense on (N, ..., in)
    out = [Gemm(name, "forward", rows, d_out, d_in)]
    if training:
        if need_dx:
            out.append(Gemm(name, "input gradient", rows, d_in, d_out))
        if layer.trainable:
            out.append(Gemm(name, "weight gradient", d_in, d_out, rows))
    return out


def _gemm_rule(layer: Any) -> Any:
    from numcnn.layers import Conv2D, Dense
    from numcnn.layers.tied import DenseTranspose

    if isinstance(layer, Conv2D):
        return _conv_gemms
    if isinstance(layer, (Dense, DenseTranspose)):
        return _dense_gemms
    return None


def _walk(model: Any, graph: Any, batch: int, training: bool, input_grads: bool,
          gemms: list[Gemm], unmodelled: dict[str, int], prefix: str = "") -> None:
    from numcnn.models.flops import layer_macs

    plan = graph.grad_plan(input_grads)
    names = getattr(model, "_names", {})
    for st, need in zip(graph.steps, plan):
        layer = st.layer
        name = prefix + names.get(id(layer), layer.display_name)
        ins = [graph.tensors[s].shape for s in st.in_slots]
        outs = [t.shape for t in st.node.outputs]
        inner = getattr(layer, "graph", None)
        if inner is not None:  # a model inside the model
            _walk(layer, inner, batch, training, bool(need), gemms, unmodelled, name + "/")
            continue
        rule = _gemm_rule(layer)
        if rule is not None:
            gemms.extend(rule(name, layer, ins[0], outs[0], batch, training, bool(need)))
            continue
        macs = layer_macs(layer, ins if st.list_input else ins[0],
                          outs if st.multi else outs[0])
        if macs:
            unmodelled[name] = int(macs) * batch


def model_gemms(model: Any, batch_size: int, training: bool = True) -> tuple[list[Gemm],
                                                                              dict[str, int]]:
    """The matrix products of one step of ``model`` on a batch of ``batch_size``.

    Args:
        model: a built numcnn model. batch_size: samples per step. training: forward,
            input and weight gradients (True) or the forward pass alone (False).

    Returns:
        ``(gemms, unmodelled)``: the products in execution order (forward, then the
        gradients of each layer as the layers come), and ``{layer name: MACs of the batch}``
        for layers with multiply-accumulates that are not modelled as GEMMs.
    """
    graph = getattr(model, "graph", None)
    if graph is None:
        raise TypeError(f"model_gemms needs a built numcnn model; received "
                        f"{type(model).__name__}")
    gemms: list[Gemm] = []
    unmodelled: dict[str, int] = {}
    _walk(model, graph, int(batch_size), training, False, gemms, unmodelled)
    return gemms, unmodelled


# --------------------------------------------------------------------- the probe
@contextmanager
def blas_threads(threads: int | None) -> Iterator[None]:
    """NumPy's BLAS limited to ``threads`` (threadpoolctl; nothing when None or missing)."""
    if threads is None:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # the caller's OPENBLAS_NUM_THREADS decides
        yield
        return
    with threadpool_limits(int(threads)):
        yield


def _clock(clock: str, threads: int | None) -> Any:
    if clock == "auto":  # CPU time is the fairer clock on a shared host, but only for 1 thread
        clock = "cpu" if threads == 1 else "wall"
    if clock not in ("cpu", "wall"):
        raise ValueError(f"clock must be 'auto', 'cpu' or 'wall'; received {clock!r}")
    return time.process_time if clock == "cpu" else time.perf_counter


_PROBES: dict[tuple[Any, ...], tuple[float, float]] = {}


def _pieces(m: int, n: int, k: int, side: str, chunk: int | None) -> Any:
    """A function computing ``C = A·B`` on float32 operands of the full shape, in pieces of
    ``chunk`` along ``side`` (``m``: row blocks of ``A`` and ``C``; ``n``: column blocks of
    ``B`` and ``C``; ``k``: partial products added into ``C``), or in one call."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    c = np.empty((m, n), np.float32)
    size = {"m": m, "n": n, "k": k}[side] if chunk else 0
    cuts = [slice(s, min(s + chunk, size)) for s in range(0, size, chunk)] if chunk else []
    mm, add = np.matmul, np.add
    if not cuts:
        return lambda: mm(a, b, out=c)
    if side == "m":
        parts = [(a[s], c[s]) for s in cuts]
        return lambda: [mm(x, b, out=y) for x, y in parts]
    if side == "n":
        parts = [(b[:, s], c[:, s]) for s in cuts]
        return lambda: [mm(a, x, out=y) for x, y in parts]
    tmp = np.empty_like(c)
    first, rest = (a[:, cuts[0]], b[cuts[0]]), [(a[:, s], b[s]) for s in cuts[1:]]

    def run() -> None:
        mm(*first, out=c)
        for x, y in rest:
            mm(x, y, out=tmp)
            add(c, tmp, out=c)
    return run


def probe_gemm(m: int, n: int, k: int, threads: int | None = 1, repeats: int = 7,
               min_seconds: float = 0.02, clock: str = "auto", side: str = "n",
               chunk: int | None = None) -> tuple[float, float]:
    """Seconds of ``C = A·B`` with float32 ``A (m×k)``, ``B (k×n)``: one
    ``np.matmul(A, B, out=C)``, or with ``chunk`` a loop over pieces of ``chunk`` along
    ``side`` (``"m"``, ``"n"`` or ``"k"``) of the same full-size operands, so the pieces read
    and write the whole matrices as a blocked kernel would.

    Each of ``repeats`` rounds runs the product enough times to last ``min_seconds``; the
    result is ``(best, median)`` of the rounds' per-product times. Results are cached per
    shape, plan, thread count and clock.
    """
    key = (int(m), int(n), int(k), side if chunk else "", chunk, threads, clock)
    if key in _PROBES:
        return _PROBES[key]
    run = _pieces(int(m), int(n), int(k), side, chunk)
    now = _clock(clock, threads)
    with blas_threads(threads):
        run()  # warm-up: pages, BLAS buffers
        number = 1
        while True:  # calls per round
            t0 = now()
            for _ in range(number):
                run()
            t = now() - t0
            if t >= min_seconds or number >= 1 << 16:
                break
            number *= 2 if t <= 0 else max(2, min(16, int(min_seconds / t) + 1))
        per_call = []
        for _ in range(repeats):
            t0 = now()
            for _ in range(number):
                run()
            per_call.append((now() - t0) / number)
    result = (min(per_call), statistics.median(per_call))
    _PROBES[key] = result
    return result


def peak_gflops(threads: int | None = 1, sizes: tuple[int, ...] = PEAK_SIZES,
                repeats: int = 5, clock: str = "auto") -> float:
    """The best GFLOP/s of ``np.matmul`` on square float32 matrices of ``sizes``."""
    best = 0.0
    for s in sizes:
        t, _ = probe_gemm(s, s, s, threads, repeats=repeats, min_seconds=0.05, clock=clock)
        best = max(best, 2 * s**3 / t / 1e9)
    return best


# --------------------------------------------------------------------- the floor
@dataclass
class ProbedGemm:
    """A :class:`Gemm` with its probed time (seconds per step, all ``count`` products)."""

    gemm: Gemm
    seconds: float  # best way, best round
    seconds_median: float  # the same way, median round
    seconds_as_written: float  # C = A·B as listed in one call, best round
    how: str = "as written"  # the way that was fastest

    @property
    def gflops(self) -> float:
        return self.gemm.flops / self.seconds / 1e9


@dataclass
class Floor:
    """The floor of one step of a model (see the module docstring).

    Attributes:
        flops: FLOPs of the modelled GEMMs in one step. step_seconds: their probed time
        (best rounds). step_seconds_median: the same with median rounds.
        peak_gflops: the best square-GEMM rate. unmodelled_macs: per layer, MACs left out.
    """

    model: str
    batch_size: int
    threads: int | None
    training: bool
    gemms: list[ProbedGemm]
    peak_gflops: float
    unmodelled_macs: dict[str, int] = field(default_factory=dict)

    @property
    def flops(self) -> int:
        return sum(p.gemm.flops for p in self.gemms)

    @property
    def step_seconds(self) -> float:
        return sum(p.seconds for p in self.gemms)

    @property
    def step_seconds_median(self) -> float:
        return sum(p.seconds_median for p in self.gemms)

    @property
    def step_seconds_as_written(self) -> float:
        return sum(p.seconds_as_written for p in self.gemms)

    @property
    def peak_step_seconds(self) -> float:
        return self.flops / (self.peak_gflops * 1e9)

    def epoch_seconds(self, images: int = EPOCH_IMAGES) -> float:
        """Shape floor of ``images`` images (steps extrapolated: ``images / batch_size``)."""
        return self.step_seconds * images / self.batch_size

    def peak_epoch_seconds(self, images: int = EPOCH_IMAGES) -> float:
        return self.peak_step_seconds * images / self.batch_size

    def images_per_second(self) -> float:
        """The floor as a throughput (images/s at the shape floor)."""
        return self.batch_size / self.step_seconds

    def by_phase(self) -> dict[str, float]:
        """Probed seconds per step, per phase."""
        out: dict[str, float] = {}
        for p in self.gemms:
            out[p.gemm.phase] = out.get(p.gemm.phase, 0.0) + p.seconds
        return out


def probe_best(g: Gemm, threads: int | None = 1, repeats: int = 7,
               clock: str = "auto") -> ProbedGemm:
    """The fastest way found to compute ``g``'s product with ``np.matmul``: in one call or
    cut along its longest side into pieces of :data:`CHUNKS` (pieces of ``m`` or ``n`` are
    independent products; pieces of ``k`` are partial products added up), each in either
    orientation (``C = A·B`` or ``Cᵀ = Bᵀ·Aᵀ``). Each way is probed with :func:`probe_gemm`
    on full-size operands."""
    swap = {"m": "n", "n": "m", "k": "k"}
    as_written = probe_gemm(g.m, g.n, g.k, threads, repeats, clock=clock)
    best, how = as_written, "one call"
    side = max(("m", "n", "k"), key=lambda a: getattr(g, a))
    size = getattr(g, side)
    plans: list[tuple[int | None, bool]] = [(None, True)]
    plans += [(c, t) for c in CHUNKS if c < size for t in (False, True)]
    for chunk, transposed in plans:
        if transposed:
            r = probe_gemm(g.n, g.m, g.k, threads, repeats, clock=clock, side=swap[side],
                           chunk=chunk)
        else:
            r = probe_gemm(g.m, g.n, g.k, threads, repeats, clock=clock, side=side,
                           chunk=chunk)
        if r[0] < best[0]:
            best = r
            how = ("one call" if chunk is None else f"{side} in pieces of {chunk}") + \
                (", transposed" if transposed else "")
    c = g.count
    return ProbedGemm(g, best[0] * c, best[1] * c, as_written[0] * c, how)


def compute_floor(model: Any, batch_size: int, threads: int | None = 1,
                  training: bool = True, repeats: int = 5, clock: str = "auto",
                  peak: float | None = None) -> Floor:
    """Enumerate ``model``'s GEMMs for one step, probe each shape, and return the floor.

    Args:
        model: a built numcnn model. batch_size: samples per step. threads: BLAS threads
            for the probes (None: leave the BLAS pool as it is). training: a training step
            (forward + gradients) or inference (forward only). repeats: rounds per probe.
            clock: ``"cpu"`` (process CPU time), ``"wall"`` or ``"auto"`` (CPU time at 1
            thread, wall time otherwise). peak: a peak GFLOP/s already measured (else
            :func:`peak_gflops` is run).
    """
    gemms, unmodelled = model_gemms(model, batch_size, training)
    probed = [probe_best(g, threads, repeats, clock) for g in gemms]
    if peak is None:
        peak = peak_gflops(threads, clock=clock)
    return Floor(getattr(model, "name", type(model).__name__), int(batch_size), threads,
                 training, probed, peak, unmodelled)


def independent_flops(model: Any, batch_size: int, training: bool = True) -> int:
    """FLOPs of a step from :func:`numcnn.models.count_macs` (the per-layer MAC formulas of
    ``summary()``, another code path): ``2·N·MACs`` forward; for training ``3×`` that, less
    one forward's worth for each layer whose input gradient is not computed."""
    from numcnn.models import count_macs
    from numcnn.models.flops import layer_macs

    fwd = 2 * batch_size * count_macs(model)
    if not training:
        return fwd
    graph = model.graph
    skipped = 0
    for st, need in zip(graph.steps, graph.grad_plan(False)):
        if not need and _gemm_rule(st.layer) is not None:
            skipped += layer_macs(st.layer, graph.tensors[st.in_slots[0]].shape,
                                  st.node.outputs[0].shape)
    return 3 * fwd - 2 * batch_size * skipped


# ---------------------------------------------------------------------- printing
def describe(f: Floor, per_gemm: bool = False) -> str:
    """Lines for a floor: FLOPs, the shape floor per step and per 60,000 images, the peak."""
    kind = "training step" if f.training else "inference (forward)"
    lines = [
        f"{f.model}, batch {f.batch_size}, {f.threads} thread(s), {kind}: "
        f"{f.flops / 1e6:.1f} MFLOP in {len(f.gemms)} GEMMs",
        f"  shape floor {f.step_seconds * 1e3:.3f} ms/step (median rounds "
        f"{f.step_seconds_median * 1e3:.3f}, as written {f.step_seconds_as_written * 1e3:.3f})"
        f"\n    = {f.epoch_seconds():.2f} s per {EPOCH_IMAGES:,} images "
        f"({f.images_per_second():,.0f} images/s, {f.flops / f.step_seconds / 1e9:.1f} GFLOP/s)",
        f"  peak floor  {f.peak_step_seconds * 1e3:.3f} ms/step at {f.peak_gflops:.1f} GFLOP/s"
        f" = {f.peak_epoch_seconds():.2f} s per {EPOCH_IMAGES:,} images",
    ]
    if f.training:
        lines.append("  by phase: " + ", ".join(f"{k} {v * 1e3:.3f} ms"
                                                 for k, v in f.by_phase().items()))
    if f.unmodelled_macs:
        lines.append("  not modelled as GEMMs (left out): " + ", ".join(
            f"{k} {v:,} MACs" for k, v in f.unmodelled_macs.items()))
    if per_gemm:
        for p in f.gemms:
            g = p.gemm
            cnt = f" ×{g.count}" if g.count > 1 else ""
            lines.append(f"    {g.layer:<14} {g.phase:<16} m={g.m:<6} n={g.n:<7} k={g.k:<6}"
                         f"{cnt} {g.flops / 1e6:8.2f} MFLOP {p.seconds * 1e3:8.3f} ms "
                         f"{p.gflops:6.1f} GFLOP/s ({p.how})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="lenet5", help="zoo model (default lenet5)")
    p.add_argument("--batch-size", type=int, nargs="+", default=[128], dest="batch_sizes")
    p.add_argument("--infer-batch-size", type=int, default=1000,
                   help="batch of the inference floor (default 1000)")
    p.add_argument("--threads", type=int, nargs="+", default=[1])
    p.add_argument("--repeats", type=int, default=5, help="rounds per probe (best is kept)")
    p.add_argument("--clock", choices=("auto", "cpu", "wall"), default="auto")
    p.add_argument("--per-gemm", action="store_true", help="list every product")
    args = p.parse_args(argv)
    try:
        from numcnn import models
        net = models.get(args.model, seed=0)
    except (ImportError, ValueError, KeyError) as e:
        print(f"floor.py: cannot build model {args.model!r}: {e}", file=sys.stderr)
        return 2
    for threads in args.threads:
        peak = peak_gflops(threads, clock=args.clock)
        for bs in args.batch_sizes:
            f = compute_floor(net, bs, threads, True, args.repeats, args.clock, peak)
            print(describe(f, args.per_gemm))
            check = independent_flops(net, bs, True)
            print(f"  check: FLOPs from count_macs (2·N·MACs ×3, less skipped input "
                  f"gradients) = {check / 1e6:.1f} MFLOP "
                  f"({'equal' if check == f.flops else 'DIFFERENT'})")
        f = compute_floor(net, args.infer_batch_size, threads, False, args.repeats,
                          args.clock, peak)
        print(describe(f, args.per_gemm))
    return 0


if __name__ == "__main__":
    sys.exit(main())
