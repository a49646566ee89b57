"""Test-session settings: one thread per library in each pytest worker, and the benchmarks.

`python -m pytest -n 2` runs two workers on a 2-core machine; more threads than cores makes
BLAS and PyTorch collapse, so each worker uses one (set before NumPy or torch loads them).

The side-by-side benchmark (`benchmarks/bench.py`, `torch_twins.py`, `memory.py`) is not
part of the package; its tests import it from the checkout's `benchmarks/` folder.
"""

import os
import sys
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))
