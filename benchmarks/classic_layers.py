"""The classic networks' layers one by one: numcnn's kernels beside PyTorch's operators on the
same shapes, in one process, 1 thread, CPU time, alternating, medians; and the matrix
products behind the convolutions in each orientation and width (``--gemm``).

Where ``classic_vs_torch.py`` gives the ratio of whole training steps, this shows which
layers make it (issue 11's speed goal; docs/performance.md, "The classic networks")::

    OPENBLAS_NUM_THREADS=1 python benchmarks/classic_layers.py              # resnet20's layers
    OPENBLAS_NUM_THREADS=1 python benchmarks/classic_layers.py --net vgg11      # or resnet18
    OPENBLAS_NUM_THREADS=1 python benchmarks/classic_layers.py --gemm

Convolutions: numcnn's ``conv2d_forward`` (with the bias and a fused ReLU, as folded for
inference) against ``relu(conv2d)``, and ``conv2d_backward`` (input and weight gradients)
against ``torch.ops.aten.convolution_backward``; numcnn's input is batch-innermost (as its
layers hand it on), PyTorch's NCHW-contiguous (as its layers hand it on). BatchNorm (resnet20):
a training forward with its fused ReLU and the backward through both, against
``batch_norm`` + ``relu`` and autograd. Before each timed call a 32 MB buffer is touched so
the operands come from memory (``--hot``: not). numcnn's calls inside ``fit`` take about
their cold time; PyTorch's training step takes about the sum of its hot times
(docs/performance.md, "Third round").
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from numcnn.functional.fast import conv as fc
from numcnn.functional.fast import norm as fn
from numcnn.functional.fast.workspace import Workspace

#: (C, F, H, k, stride, pad, batch, repeats in the network)
LAYERS = {
    "resnet20": [(3, 16, 32, 3, 1, 1, 64, 1), (16, 16, 32, 3, 1, 1, 64, 6),
                 (16, 32, 32, 3, 2, 1, 64, 1),
                 (32, 32, 16, 3, 1, 1, 64, 5), (32, 64, 16, 3, 2, 1, 64, 1),
                 (64, 64, 8, 3, 1, 1, 64, 5)],
    "vgg11": [(3, 64, 32, 3, 1, 1, 64, 1), (64, 128, 16, 3, 1, 1, 64, 1),
              (128, 256, 8, 3, 1, 1, 64, 1), (256, 256, 8, 3, 1, 1, 64, 1),
              (256, 512, 4, 3, 1, 1, 64, 1), (512, 512, 4, 3, 1, 1, 64, 1),
              (512, 512, 2, 3, 1, 1, 64, 2)],
    "resnet18": [(3, 64, 224, 7, 2, 3, 16, 1), (64, 64, 56, 3, 1, 1, 16, 4),
                 (128, 128, 28, 3, 1, 1, 16, 3), (256, 256, 14, 3, 1, 1, 16, 3),
                 (512, 512, 7, 3, 1, 1, 16, 3)],
}
_FLUSH = np.ones(8 << 20, np.float32)
COLD = True
clock = time.process_time


def timed(f) -> float:
    if COLD:
        _FLUSH[::16] += 1  # every cache line of 32 MB: the operands come from memory
    t = clock()
    f()
    return clock() - t


def pair(fa, fb, rounds: int) -> tuple[float, float]:
    """Medians (ms) of ``fa`` and ``fb`` over ``rounds`` alternating calls (after one each)."""
    fa(), fb()
    a, b = [], []
    for r in range(rounds):
        for f, acc in ((fa, a), (fb, b)) if r % 2 else ((fb, b), (fa, a)):
            acc.append(timed(f))
    return statistics.median(a) * 1e3, statistics.median(b) * 1e3


def conv_layer(C, F, H, k, s, p, N, n, rounds, backward, rng, ws) -> None:
    """One convolution's rows: forward (and backward) of numcnn and PyTorch."""
    import torch

    Ho = (H + 2 * p - k) // s + 1
    x = rng.standard_normal((C, H, H, N), dtype=np.float32).transpose(3, 0, 1, 2)
    x = np.ascontiguousarray(x) if C == 3 else x  # the images arrive NCHW
    W = (rng.standard_normal((F, C, k, k)) * 0.1).astype(np.float32)
    b = rng.standard_normal(F).astype(np.float32)
    dy = rng.standard_normal((F, Ho, Ho, N), dtype=np.float32).transpose(3, 0, 1, 2)
    xt, Wt, bt = (torch.from_numpy(np.ascontiguousarray(a)) for a in (x, W, b))
    dyt = torch.from_numpy(np.ascontiguousarray(dy))
    name = f"conv {C}->{F} {H}x{H} k{k} s{s} (x{n})"
    a, t = pair(lambda: fc.conv2d_forward(x, W, b, (s, s), (p,) * 4, ws, 1, "forward"),
                lambda: torch.relu(torch.nn.functional.conv2d(xt, Wt, bt, s, p)), rounds)
    print(f"{name + ' fwd':<32} {a:8.2f} {t:8.2f} {a / t:6.2f}")
    if not backward:
        return
    _, cache = fc.conv2d_forward(x, W, None, (s, s), (p,) * 4, ws)
    a, t = pair(lambda: fc.conv2d_backward(dy, cache, True, True, False),
                lambda: torch.ops.aten.convolution_backward(
                    dyt, xt, Wt, None, [s, s], [p, p], [1, 1], False, [0, 0], 1,
                    [True, True, False]), rounds)
    print(f"{name + ' bwd':<32} {a:8.2f} {t:8.2f} {a / t:6.2f}")


def bn_layer(C, H, N, rounds, rng, ws) -> None:
    """One BatchNorm + ReLU's rows (training): forward and backward, numcnn and PyTorch."""
    import torch

    x = rng.standard_normal((C, H, H, N), dtype=np.float32).transpose(3, 0, 1, 2)
    dy = rng.standard_normal((C, H, H, N), dtype=np.float32).transpose(3, 0, 1, 2)
    g, be = np.ones(C, np.float32), np.zeros(C, np.float32)
    rm, rv = np.zeros(C, np.float32), np.ones(C, np.float32)
    _, cache = fn.batch_norm_forward(x, g, be, rm, rv, True, 0.1, 1e-5, ws, "grad")
    xt = torch.from_numpy(np.ascontiguousarray(x)).requires_grad_()
    gt, bt = torch.ones(C, requires_grad=True), torch.zeros(C, requires_grad=True)
    rmt, rvt = torch.zeros(C), torch.ones(C)
    dyt = torch.from_numpy(np.ascontiguousarray(dy))

    def tf():
        return torch.relu(torch.nn.functional.batch_norm(xt, rmt, rvt, gt, bt, True))

    yt = tf()
    a, t = pair(lambda: fn.batch_norm_forward(x, g, be, rm, rv, True, 0.1, 1e-5, ws, "grad"),
                tf, rounds)
    print(f"{f'batchnorm+relu {C}x{H}x{H} fwd':<32} {a:8.2f} {t:8.2f} {a / t:6.2f}")
    a, t = pair(lambda: fn.batch_norm_backward(dy, cache, True, ws),
                lambda: torch.autograd.grad(yt, (xt, gt, bt), dyt, retain_graph=True), rounds)
    print(f"{f'batchnorm+relu {C}x{H}x{H} bwd':<32} {a:8.2f} {t:8.2f} {a / t:6.2f}")


def layers(net: str, rounds: int) -> None:
    rng = np.random.default_rng(0)
    ws = Workspace()
    print(f"{'layer':<32} {'numcnn':>8} {'torch':>8} {'ratio':>6}   (ms, CPU time, medians)")
    for C, F, H, k, s, p, N, n in LAYERS[net]:
        conv_layer(C, F, H, k, s, p, N, n, rounds, net != "resnet18", rng, ws)
    if net == "resnet20":
        for C, H in ((16, 32), (32, 16), (64, 8)):
            bn_layer(C, H, 64, rounds, rng, ws)


def gflops(F: int, K: int, n: int, rounds: int, rng) -> tuple[float, float]:
    """GFLOP/s of ``W (F, K) @ cols (K, n)`` and ``colsᵀ (n, K) @ Wᵀ (K, F)``, hot."""
    W = rng.standard_normal((F, K), dtype=np.float32)
    B = rng.standard_normal((K, n), dtype=np.float32)
    WT, BT = np.ascontiguousarray(W.T), np.ascontiguousarray(B.T)
    o, oT = np.empty((F, n), np.float32), np.empty((n, F), np.float32)
    reps = max(1, int(2e8 // (F * K * n)))
    out = []
    for f in (lambda: np.matmul(W, B, out=o), lambda: np.matmul(BT, WT, out=oT)):
        f()
        ts = []
        for _ in range(rounds):
            t = clock()
            for _ in range(reps):
                f()
            ts.append((clock() - t) / reps)
        out.append(2 * F * K * n / statistics.median(ts) / 1e9)
    return out[0], out[1]


def gemm(rounds: int) -> None:
    """GFLOP/s of the convolution's products: kernels-major ``W (F, K) @ cols (K, n)`` and
    positions-major ``colsᵀ (n, K) @ Wᵀ (K, F)``, by width ``n``, operands hot in cache."""
    rng = np.random.default_rng(0)
    print("F    K     n      W@cols  colsT@WT   GFLOP/s (F*K*n <= 1e6: OpenBLAS's small "
          "kernels)")
    for F, K in ((16, 144), (32, 288), (64, 576), (128, 1152), (256, 2304)):
        for n in (64, 256, 448, 1024, 2048, 4096):
            a, t = gflops(F, K, n, rounds, rng)
            print(f"{F:<4} {K:<5} {n:<6} {a:7.0f} {t:9.0f}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--net", choices=list(LAYERS), default="resnet20")
    p.add_argument("--gemm", action="store_true", help="the products' table instead")
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--hot", action="store_true",
                   help="no 32 MB sweep before each call: operands stay in the cache")
    args = p.parse_args(argv)
    global COLD
    COLD = not args.hot
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        if args.gemm:
            gemm(args.rounds)
        else:
            import torch

            torch.set_num_threads(1)
            layers(args.net, args.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
