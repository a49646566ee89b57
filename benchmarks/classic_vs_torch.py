"""The classic networks side by side with PyTorch: training steps and inference, same
weights, same batches, same thread count, in one process, alternating which framework runs
first in each repeat. Prints medians (min–max) and the ratio numcnn / PyTorch (below 1:
numcnn is faster).

Networks (issue 11's benchmark set):

* ``resnet20`` — He et al.'s CIFAR ResNet, 3×32×32, batch 64: training step and inference;
* ``vgg11`` — torchvision's VGG-11, 3×32×32, batch 64: training step and inference;
* ``resnet18`` — torchvision's ResNet-18, 3×224×224: inference at batch 16.

A training step is forward, softmax cross-entropy, backward and an SGD step (momentum
0.9) — ``fit`` in numcnn, the usual loop in PyTorch, both on random images and labels.
The PyTorch twins (``zoo_twins.py``) hold numcnn's initial weights
(``torchvision_state_dict``). Run from the source checkout::

    OPENBLAS_NUM_THREADS=1 python benchmarks/classic_vs_torch.py --threads 1 --repeats 5

``--nets`` picks a subset, ``--steps`` the batches per timed run. ``--clock cpu`` times
with the process's CPU time instead of the wall clock: on a shared machine a process that
waits for a core loses wall time but no CPU time, so CPU-time ratios stay steady where wall
ratios swing (at 1 thread both measure the same work). ``--memory`` measures peak memory
instead of time: each framework in a fresh child process (``memory.py``'s method: the
kernel's peak RSS, reset when the timed loop starts; the rise above the resident memory
before the loop is what the run itself allocates).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

import numpy as np

import numcnn
from numcnn import models
from numcnn.models import torchvision_state_dict

NETS = {
    # name: (factory kwargs, input shape, batch, measures, twin builder)
    "resnet20": ({"input_shape": (3, 32, 32)}, (3, 32, 32), 64, ("train", "infer")),
    "vgg11": ({"input_shape": (3, 32, 32), "num_classes": 10, "dropout": 0.0},
              (3, 32, 32), 64, ("train", "infer")),
    "resnet18": ({}, (3, 224, 224), 16, ("infer",)),
}


def twin_of(name: str, model):
    import torch

    import zoo_twins as tw

    if name == "resnet20":
        net = tw.ResNet(tw.BasicBlock, (3, 3, 3), 3, 10, cifar=True)
    elif name == "vgg11":
        from numcnn.models.vgg import CONFIGS

        net = tw.vgg_twin(CONFIGS["A"], False, 3, 10)
        with torch.no_grad():
            net.eval()(torch.zeros(1, 3, 32, 32))
    elif name == "resnet18":
        net = tw.ResNet(tw.BasicBlock, (2, 2, 2, 2), 3, 1000)
    else:
        raise ValueError(name)
    net.load_state_dict({k: torch.tensor(v) for k, v in
                         torchvision_state_dict(model).items()}, strict=True)
    return net


#: the clock of the timed runs (``--clock``): wall time or the process's CPU time
CLOCK = {"wall": time.perf_counter, "cpu": time.process_time}
_clock = time.perf_counter


def time_numcnn_train(model, x, y, bs) -> float:
    t = _clock()
    model.fit(x, y, batch_size=bs, epochs=1, shuffle=False, verbose=0)
    return (_clock() - t) / (len(x) // bs)


def time_torch_train(net, opt, xt, yt, bs) -> float:
    import torch

    net.train()
    t = _clock()
    for i in range(0, len(xt), bs):
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(xt[i:i + bs]), yt[i:i + bs])
        loss.backward()
        opt.step()
    return (_clock() - t) / (len(xt) // bs)


def time_numcnn_infer(model, x, bs) -> float:
    t = _clock()
    model.predict(x, batch_size=bs)
    return (_clock() - t) / len(x)


def time_torch_infer(net, xt, bs) -> float:
    import torch

    net.eval()
    t = _clock()
    with torch.no_grad():
        for i in range(0, len(xt), bs):
            net(xt[i:i + bs])
    return (_clock() - t) / len(xt)


def setup(name: str, steps: int):
    """The numcnn model, its PyTorch twin with the same weights, both optimizers' models,
    and ``steps`` batches of random images and labels (numpy and torch)."""
    import torch

    kwargs, shape, bs, _ = NETS[name]
    model = models.get(name, seed=0, **kwargs)
    model.compile(optimizer=numcnn.optimizers.SGD(lr=0.01, momentum=0.9),
                  loss="softmax_cross_entropy")
    net = twin_of(name, model)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((steps * bs,) + shape).astype(np.float32)
    y = rng.integers(0, model.output_shape()[0], len(x))
    return model, net, opt, x, y, torch.from_numpy(x), torch.from_numpy(y)


def memory_child(name: str, measure: str, framework: str, steps: int, threads: int) -> dict:
    """In a fresh process: build, reset the peak, run ``steps`` batches of ``measure`` with
    one framework; the resident memory before and the peak (MiB). The other framework's
    model is dropped first (the twin is built from numcnn's weights)."""
    import gc

    import torch
    from threadpoolctl import threadpool_limits

    from memory import _reset_peak, status_mib
    from numcnn.threads import num_threads

    torch.set_num_threads(threads)
    bs = NETS[name][2]
    model, net, opt, x, y, xt, yt = setup(name, steps)
    with threadpool_limits(threads), num_threads(threads):
        if framework == "torch":
            del model
            gc.collect()
            if measure == "train":
                def go(k):
                    time_torch_train(net, opt, xt[:k * bs], yt[:k * bs], bs)
            else:
                def go(k):
                    time_torch_infer(net, xt[:k * bs], bs)
        else:
            del net, opt
            gc.collect()
            if measure == "train":
                def go(k):
                    time_numcnn_train(model, x[:k * bs], y[:k * bs], bs)
            else:
                def go(k):
                    time_numcnn_infer(model, x[:k * bs], bs)
        base = status_mib("VmRSS")
        _reset_peak()
        go(steps)
        peak = status_mib("VmHWM")
    return {"base_mib": base, "peak_mib": peak}


def measure_memory(nets: Sequence[str], threads: int, steps: int) -> list[dict]:
    """Peak memory of each network and measure, one fresh child process per framework."""
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    rows = []
    for name in nets:
        for measure in NETS[name][3]:
            got = {}
            for fw in ("numcnn", "torch"):
                code = ("import json, sys; sys.path.insert(0, sys.argv[1]); "
                        "from classic_vs_torch import memory_child; "
                        "print(json.dumps(memory_child(*json.loads(sys.argv[2]))))")
                args = json.dumps([name, measure, fw, steps, threads])
                out = subprocess.run([sys.executable, "-c", code, here, args], env=env,
                                     capture_output=True, text=True, check=True)
                got[fw] = json.loads(out.stdout.strip().splitlines()[-1])
            n, t = got["numcnn"], got["torch"]
            rise_n, rise_t = n["peak_mib"] - n["base_mib"], t["peak_mib"] - t["base_mib"]
            rows.append({"net": name, "measure": measure, **{f"{k}_{fw}": v for fw in got
                                                             for k, v in got[fw].items()}})
            print(f"{name:<9} {measure:<6} peak RSS numcnn {n['peak_mib']:7.0f} MiB "
                  f"(+{rise_n:.0f} during the run)   torch {t['peak_mib']:7.0f} MiB "
                  f"(+{rise_t:.0f})   peak ratio {n['peak_mib'] / t['peak_mib']:.2f}",
                  flush=True)
    return rows


def run(nets: Sequence[str], threads: int, steps: int, repeats: int) -> list[dict]:
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    rows = []
    from numcnn.threads import num_threads

    with threadpool_limits(threads), num_threads(threads):
        for name in nets:
            bs, measures = NETS[name][2], NETS[name][3]
            model, net, opt, x, y, xt, yt = setup(name, steps)
            for measure in measures:
                tn, tt = [], []
                for r in range(repeats + 1):  # the first is a warm-up
                    order = (0, 1) if r % 2 else (1, 0)
                    for who in order:
                        if measure == "train":
                            v = (time_numcnn_train(model, x, y, bs) if who == 0 else
                                 time_torch_train(net, opt, xt, yt, bs))
                        else:
                            v = (time_numcnn_infer(model, x, bs) if who == 0 else
                                 time_torch_infer(net, xt, bs))
                        if r:
                            (tn if who == 0 else tt).append(v)
                rows.append({"net": name, "measure": measure, "batch": bs,
                             "numcnn": tn, "torch": tt})
                _print_row(rows[-1])
    return rows


def _fmt(values: list[float], unit: str) -> str:
    scale = 1e3
    med = statistics.median(values) * scale
    return f"{med:8.2f} ({min(values) * scale:.2f}–{max(values) * scale:.2f}) {unit}"


def _print_row(row: dict) -> None:
    unit = "ms/step" if row["measure"] == "train" else "ms/image"
    ratio = statistics.median(row["numcnn"]) / statistics.median(row["torch"])
    print(f"{row['net']:<9} {row['measure']:<6} batch {row['batch']:<4} numcnn "
          f"{_fmt(row['numcnn'], unit)}   torch {_fmt(row['torch'], unit)}   "
          f"ratio {ratio:.2f}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=4, help="batches per timed run")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--clock", choices=list(CLOCK), default="wall",
                   help="wall time (default) or the process's CPU time")
    p.add_argument("--memory", action="store_true",
                   help="measure peak memory (fresh child processes) instead of time")
    args = p.parse_args(argv)
    import platform

    import torch

    global _clock
    _clock = CLOCK[args.clock]
    print(f"numcnn {numcnn.__version__}, torch {torch.__version__}, NumPy {np.__version__}, "
          f"{platform.processor() or platform.machine()}, {args.threads} thread(s), "
          + ("peak memory" if args.memory else
             f"{args.repeats} repeats of {args.steps} batches, {args.clock} clock"))
    if args.memory:
        measure_memory(args.nets, args.threads, args.steps)
    else:
        run(args.nets, args.threads, args.steps, args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
