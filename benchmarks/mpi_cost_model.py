"""The allreduce cost model of docs/distributed.md, printed as its tables.

    python benchmarks/mpi_cost_model.py [--lenet-ms 0.13] [--resnet20-ms 9.3]

A step of data-parallel training over K nodes with global batch G takes (no overlap of
communication and computation: numcnn allreduces once, after the whole backward pass)

    T(K) = G·t / K  +  2·(K − 1)/K · S / B  +  2·(K − 1)·α

t: compute time per image on one node (measured: benchmarks/mpi_scaling.py at 1 rank), S:
bytes of the gradient, B: link bandwidth, α: per-message latency (ring allreduce: a
reduce-scatter and an allgather of K − 1 messages of S/K bytes each). The scaling limit is
the K beyond which T(K) no longer falls: K* = sqrt((G·t − 2·S/B) / (2·α)) (at most G), and
the K at which the allreduce costs as much as the computation (50 % efficiency).
"""

from __future__ import annotations

import argparse
import math

MODELS = {  # name: (parameters, compute ms per image on one node of this machine)
    "LeNet-5": (61_706, None),
    "resnet20": (269_722, None),
    "ResNet-50": (25_557_032, None),
}
GBPS = (10, 25, 100)
NODES = (2, 4, 8, 16, 32, 64)
ALPHA = 5e-6  # seconds per message (a typical TCP/RoCE latency)


def allreduce_s(size_bytes: float, k: int, gbps: float, alpha: float = ALPHA) -> float:
    return 2 * (k - 1) / k * size_bytes / (gbps * 1e9 / 8) + 2 * (k - 1) * alpha


def step_s(g: int, t: float, size_bytes: float, k: int, gbps: float) -> float:
    return g * t / k + allreduce_s(size_bytes, k, gbps)


def best_k(g: int, t: float, size_bytes: float, gbps: float) -> float:
    """The K of the shortest step, at most G (one image per node)."""
    work = g * t - 2 * size_bytes / (gbps * 1e9 / 8)
    return 1.0 if work <= 0 else min(float(g), max(1.0, math.sqrt(work / (2 * ALPHA))))


def half_k(g: int, t: float, size_bytes: float, gbps: float) -> int:
    """The first K at which the allreduce takes as long as the computation (50 % scaling
    efficiency), or G when it never does."""
    for k in range(2, g + 1):
        if allreduce_s(size_bytes, k, gbps) >= g * t / k:
            return k
    return g


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--lenet-ms", type=float, default=0.13)
    p.add_argument("--resnet20-ms", type=float, default=9.3)
    p.add_argument("--resnet50-ms", type=float, default=None,
                   help="default: resnet20's time scaled by the MACs (4.09 G / 40.8 M)")
    p.add_argument("--batch", type=int, default=256, help="global batch G")
    p.add_argument("--bytes", type=int, default=4, help="bytes per gradient value (4: float32)")
    a = p.parse_args()
    r50 = a.resnet50_ms if a.resnet50_ms is not None else a.resnet20_ms * 4.09e9 / 40.8e6
    per_img = {"LeNet-5": a.lenet_ms, "resnet20": a.resnet20_ms, "ResNet-50": r50}
    print("| model | parameters | bytes per allreduce | " +
          " | ".join(f"{g} Gb/s, K = {k}" for g in GBPS for k in (2, 64)) + " |")
    print("|---" * (3 + 2 * len(GBPS)) + "|")
    for name, (n, _) in MODELS.items():
        s = n * a.bytes
        cells = [f"{1e3 * allreduce_s(s, k, g):.3g} ms" for g in GBPS for k in (2, 64)]
        print(f"| {name} | {n:,} | {s / 1e6:.3g} MB | " + " | ".join(cells) + " |")
    print()
    print(f"Step time T(K) in ms at global batch {a.batch} (compute per image: " +
          ", ".join(f"{k} {v:.3g} ms" for k, v in per_img.items()) + ")")
    print()
    print("| model | link | " + " | ".join(f"K = {k}" for k in (1, *NODES)) +
          " | K at 50 % efficiency | K* (shortest step) |")
    print("|---" * (3 + len(NODES) + 2) + "|")
    for name, (n, _) in MODELS.items():
        t = per_img[name] / 1e3
        s = n * a.bytes
        for g in GBPS:
            cells = [f"{1e3 * a.batch * t:.4g}"] + [
                f"{1e3 * step_s(a.batch, t, s, k, g):.4g}" for k in NODES]
            print(f"| {name} | {g} Gb/s | " + " | ".join(cells) +
                  f" | {half_k(a.batch, t, s, g)} | {best_k(a.batch, t, s, g):.0f} |")


if __name__ == "__main__":
    main()
