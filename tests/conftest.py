"""Test-session settings: one thread per library in each pytest worker.

`python -m pytest -n 2` runs two workers on a 2-core machine; more threads than cores makes
BLAS and PyTorch collapse, so each worker uses one (set before NumPy or torch loads them).
"""

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
