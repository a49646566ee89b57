"""How many cores numcnn may use while it trains or predicts (default 1).

The design notes measured that two OpenBLAS threads collapse when the other core is busy
(a LeNet-5 epoch ran ~20× slower on a loaded 2-core machine), so ``fit``, ``evaluate`` and
``predict`` run their loops inside :func:`blas_threads` with the count set here, and restore
the previous setting afterwards — like ``torch.set_num_threads``.

The count means threads, never processes: ``fit`` (in one process) gives BLAS ``n``
threads; ``predict`` and ``evaluate`` of a model the fused inference path handles
(:mod:`numcnn.models.inference`, the LeNet-5 chains) split each batch between ``n`` threads
of one BLAS thread each — the same results as one thread, bit for bit — and other models
give BLAS ``n`` threads. NumPy's own loops (im2col, pooling, activations) in training stay
on one core, so for training on several cores use data-parallel processes instead, chosen
explicitly: ``fit(distribute="local:K")`` (K forked processes of one BLAS thread each),
``fit(distribute="mpi")`` or ``mpiexec -n K`` (see :mod:`numcnn.training.distributed`).

>>> import numcnn
>>> numcnn.set_num_threads(2)     # 2 threads inside fit/evaluate/predict
>>> numcnn.set_num_threads(None)  # leave BLAS alone
>>> numcnn.set_num_threads(1)     # the default (or $NUMCNN_NUM_THREADS)

The limit is applied with ``threadpoolctl`` when it is installed, and otherwise by calling
OpenBLAS's own ``openblas_set_num_threads`` through ctypes (the library NumPy ships); where
neither is possible the block simply runs with BLAS's own setting.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import re
from collections.abc import Iterator


def _check(n: int | None) -> int | None:
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ValueError(f"the number of threads must be a positive int or None; received {n!r}")
    return n


def _from_env() -> int | None:
    text = os.environ.get("NUMCNN_NUM_THREADS", "1").strip().lower()
    if text in ("", "none", "0"):
        return None
    try:
        return _check(int(text))
    except ValueError:
        raise ValueError(f"NUMCNN_NUM_THREADS must be a positive integer or 'none'; received "
                         f"{text!r}") from None


_UNSET = object()
_default: object = _UNSET


def set_num_threads(n: int | None) -> None:
    """Set the cores used inside ``fit``/``evaluate``/``predict`` (None: leave BLAS alone)."""
    global _default
    _default = _check(n)


def get_num_threads() -> int | None:
    """The count :func:`set_num_threads` set, else ``$NUMCNN_NUM_THREADS``, else 1."""
    return _from_env() if _default is _UNSET else _default  # type: ignore[return-value]


def _openblas_candidates() -> list[str]:
    paths: list[str] = []
    try:
        with open("/proc/self/maps") as f:  # Linux: the libraries actually loaded
            paths += re.findall(r"(/\S*openblas\S*\.so[.\d]*)", f.read())
    except OSError:
        pass
    import numpy as np

    root = os.path.dirname(os.path.dirname(np.__file__))
    for pattern in ("numpy.libs/*openblas*", "numpy/.dylibs/*openblas*",
                    "numpy/_core/*openblas*", "numpy.libs/*openblas*.dll"):
        paths += glob.glob(os.path.join(root, pattern))
    return list(dict.fromkeys(paths))


def _openblas_functions():
    """``(get, set)`` ctypes functions of the process's OpenBLAS, or None."""
    for path in _openblas_candidates():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                put = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                if get is not None and put is not None:
                    get.restype = ctypes.c_int
                    put.argtypes = [ctypes.c_int]
                    return get, put
    return None


_ctypes_functions: list = []


@contextlib.contextmanager
def blas_threads(n: int | None) -> Iterator[None]:
    """Limit BLAS to ``n`` threads inside the block (``None``: change nothing).

    Uses OpenBLAS's ``openblas_set_num_threads`` through ctypes when the process has the
    OpenBLAS NumPy ships (two C calls: cheap enough around a single-image ``predict``), else
    ``threadpoolctl`` when installed (MKL, BLIS…), else runs the block unchanged.
    """
    n = _check(n)
    if n is None:
        yield
        return
    if not _ctypes_functions:
        _ctypes_functions.append(_openblas_functions())
    funcs = _ctypes_functions[0]
    if funcs is not None:
        get, put = funcs
        before = get()
        put(n)
        try:
            yield
        finally:
            put(before)
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=n, user_api="blas"):
        yield


@contextlib.contextmanager
def num_threads(n: int | None) -> Iterator[None]:
    """Within the block, ``fit``/``evaluate``/``predict`` use ``n`` BLAS threads."""
    global _default
    before = _default
    set_num_threads(n)
    try:
        yield
    finally:
        _default = before
