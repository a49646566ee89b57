"""Where inference time goes: numcnn's graph path layer by layer, its fused path stage by
stage, and ONNX Runtime operator by operator, for one LeNet-5 at one batch size.

* graph path (``set_fusion(False)``, what ``predict`` ran before issue 17): every layer's
  ``fprop`` timed inside ``predict``;
* fused path (``numcnn.models.inference``): every stage of a chunk timed, summed over the
  chunks of the batch;
* ONNX Runtime (default optimisations, numcnn's export): its own profiler's kernel times.

Times are the thread's CPU time (``time.thread_time``), so other jobs on a shared host count
less; medians over ``--repeats`` runs, per image.

    OPENBLAS_NUM_THREADS=1 python benchmarks/infer_profile.py --model lenet5 --batch 1000
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import tempfile
import time

import numpy as np

import numcnn
from numcnn import models as zoo
from numcnn.models.inference import CHUNK, inference_plan
from numcnn.threads import blas_threads

clock = time.thread_time


def graph_profile(model, x: np.ndarray, repeats: int) -> dict[str, float]:
    """Seconds per batch per layer of the unfused graph path (median of ``repeats``)."""
    model.set_fusion(False)
    acc: dict[str, list[float]] = collections.defaultdict(list)
    originals = []
    for st in model.graph.steps:
        lay, name = st.layer, model.layer_name(st.layer)
        originals.append((lay, lay.fprop))

        def timed(h, call, f=lay.fprop, name=name):
            t = clock()
            y = f(h, call)
            acc[name].append(clock() - t)
            return y
        lay.fprop = timed
    try:
        for _ in range(repeats + 1):
            model.predict(x, batch_size=len(x))
    finally:
        for lay, f in originals:
            lay.fprop = f
        model.set_fusion(True)
    return {k: statistics.median(v[1:]) for k, v in acc.items()}


def fused_profile(model, x: np.ndarray, repeats: int) -> dict[str, float]:
    """Seconds per batch per stage of the fused path (chunks of ``CHUNK``)."""
    plan = inference_plan(model)
    names = [_stage_name(model, st) for st in plan.stages]
    ws = plan.weights(len(x))
    bufs = plan._buffers(0)
    runs: list[list[float]] = []
    for _ in range(repeats + 1):
        per = [0.0] * len(plan.stages)
        for a in range(0, len(x), CHUNK):
            h = x[a : a + CHUNK]
            for k, (st, w) in enumerate(zip(plan.stages, ws)):
                t = clock()
                h = st.run(h, w, bufs, k)
                per[k] += clock() - t
        runs.append(per)
    return {n: statistics.median(r[k] for r in runs[1:]) for k, n in enumerate(names)}


def _stage_name(model, st) -> str:
    layers = [getattr(st, a, None) for a in ("conv", "bn", "pool", "layer")]
    return " + ".join(model.layer_name(lay) for lay in layers if lay is not None) + \
        f" [{type(st).__name__}]"


def ort_profile(model, x: np.ndarray, repeats: int) -> dict[str, float]:
    """ONNX Runtime's kernel times per operator (median, seconds per batch)."""
    import onnxruntime as ort

    import numcnn.onnx

    d = tempfile.mkdtemp(prefix="infer-profile-")
    path = os.path.join(d, "model.onnx")
    numcnn.onnx.export(model, path)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.enable_profiling = True
    opts.profile_file_prefix = os.path.join(d, "ort")
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    for _ in range(repeats + 1):
        sess.run(None, {name: x})
    with open(sess.end_profiling()) as f:
        events = json.load(f)
    acc: dict[str, list[float]] = collections.defaultdict(list)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            key = f"{e['name'][: -len('_kernel_time')]} ({e['args'].get('op_name')})"
            acc[key].append(e["dur"] * 1e-6)
    return {k: statistics.median(v[1:]) for k, v in acc.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=("lenet5", "lenet5-1998"), default="lenet5")
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--no-onnx", action="store_true")
    a = p.parse_args(argv)
    model = zoo.get(a.model, seed=0)
    scale = 255.0 if a.model == "lenet5-1998" else 1.0
    x = np.random.default_rng(0).random((a.batch, 1, 28, 28), dtype=np.float32) * scale
    print(f"{a.model}, batch {a.batch}, 1 thread, µs per image (thread CPU time, median of "
          f"{a.repeats}); load {os.getloadavg()[0]:.1f}; numcnn {numcnn.__version__}")
    parts = [("graph path (before)", graph_profile), ("fused path (after)", fused_profile)]
    if not a.no_onnx:
        parts.append(("ONNX Runtime", ort_profile))
    with blas_threads(1):
        for title, fn in parts:
            try:
                prof = fn(model, x, a.repeats)
            except ImportError as err:
                print(f"\n{title}: skipped ({err})")
                continue
            print(f"\n{title}:")
            for k, v in prof.items():
                print(f"  {k:48s} {v * 1e6 / a.batch:8.2f}")
            print(f"  {'total':48s} {sum(prof.values()) * 1e6 / a.batch:8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
