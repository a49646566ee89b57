"""numcnn vs PyTorch on LeNet-5 (modern or 1998), side by side in one process.

Same network, same initial weights (numcnn's, copied into a PyTorch twin), same optimizer
(SGD, momentum 0.9), same batches in the same order, same thread count (threadpoolctl and
``torch.set_num_threads``), alternating repeats; medians with min–max, and the ratio
numcnn/PyTorch as the last line. All the work is in ``bench.py`` beside this script (with
``torch_twins.py`` and ``memory.py``), which uses numcnn as an ordinary library; ``numcnn
bench`` times numcnn alone.

Examples::

    python benchmarks/lenet_vs_torch.py                       # 1 thread, batch 128, 100 steps
    python benchmarks/lenet_vs_torch.py --threads 1 2 --batch-size 64 128 256
    python benchmarks/lenet_vs_torch.py --epochs 1            # whole epochs, no extrapolation
    python benchmarks/lenet_vs_torch.py --inference-only --latency
    python benchmarks/lenet_vs_torch.py --memory --no-inference --steps 200
    python benchmarks/lenet_vs_torch.py --model lenet5-1998 --threads 1 2
"""

from __future__ import annotations

import sys

from bench import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
