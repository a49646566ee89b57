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

``--nets`` picks a subset, ``--steps`` the batches per timed run.
"""

from __future__ import annotations

import argparse
import statistics
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


def time_numcnn_train(model, x, y, bs) -> float:
    t = time.perf_counter()
    model.fit(x, y, batch_size=bs, epochs=1, shuffle=False, verbose=0)
    return (time.perf_counter() - t) / (len(x) // bs)


def time_torch_train(net, opt, xt, yt, bs) -> float:
    import torch

    net.train()
    t = time.perf_counter()
    for i in range(0, len(xt), bs):
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(xt[i:i + bs]), yt[i:i + bs])
        loss.backward()
        opt.step()
    return (time.perf_counter() - t) / (len(xt) // bs)


def time_numcnn_infer(model, x, bs) -> float:
    t = time.perf_counter()
    model.predict(x, batch_size=bs)
    return (time.perf_counter() - t) / len(x)


def time_torch_infer(net, xt, bs) -> float:
    import torch

    net.eval()
    t = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(xt), bs):
            net(xt[i:i + bs])
    return (time.perf_counter() - t) / len(xt)


def run(nets: Sequence[str], threads: int, steps: int, repeats: int) -> list[dict]:
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    rows = []
    from numcnn.threads import num_threads

    with threadpool_limits(threads), num_threads(threads):
        for name in nets:
            kwargs, shape, bs, measures = NETS[name]
            model = models.get(name, seed=0, **kwargs)
            model.compile(optimizer=numcnn.optimizers.SGD(lr=0.01, momentum=0.9),
                          loss="softmax_cross_entropy")
            net = twin_of(name, model)
            opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
            rng = np.random.default_rng(0)
            x = rng.standard_normal((steps * bs,) + shape).astype(np.float32)
            classes = model.output_shape()[0]
            y = rng.integers(0, classes, len(x))
            xt, yt = torch.from_numpy(x), torch.from_numpy(y)
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
    args = p.parse_args(argv)
    import platform

    import torch

    print(f"numcnn {numcnn.__version__}, torch {torch.__version__}, NumPy {np.__version__}, "
          f"{platform.processor() or platform.machine()}, {args.threads} thread(s), "
          f"{args.repeats} repeats of {args.steps} batches")
    run(args.nets, args.threads, args.steps, args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
