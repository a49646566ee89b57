"""Re-usable scratch buffers keyed by name, shape and dtype.

Large temporaries (padded inputs, im2col columns) otherwise page-fault on every training
step; a layer keeps one ``Workspace`` and asks it for buffers. Only *internal* temporaries
live here — arrays returned to callers are always fresh, so holding on to an output is safe.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np


class Workspace:
    """Scratch arrays keyed by (name, shape, dtype), allocated once and then re-used.

    >>> ws = Workspace()
    >>> a = ws.empty("cols", (2, 3), np.float32)
    >>> a is ws.empty("cols", (2, 3), np.float32)
    True
    """

    #: at most this many buffers are kept; beyond it the workspace starts afresh (a model
    #: sees two batch shapes per epoch — full batches and the last partial one).
    max_buffers = 16

    def __init__(self) -> None:
        self._bufs: dict[tuple, np.ndarray] = {}

    def _get(self, key: tuple, make) -> np.ndarray:
        buf = self._bufs.get(key)
        if buf is None:
            if len(self._bufs) >= self.max_buffers:
                self._bufs.clear()
            buf = self._bufs[key] = make()
        return buf

    def empty(self, name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """An uninitialised buffer (contents are whatever the last user left)."""
        shape, dtype = tuple(shape), np.dtype(dtype)
        return self._get((name, shape, dtype), lambda: np.empty(shape, dtype=dtype))

    def empty_ordered(self, name: str, shape: tuple[int, ...], dtype: np.dtype,
                      order: tuple[int, ...]) -> np.ndarray:
        """Like :meth:`empty`, laid out in memory with axis ``order[0]`` outermost.

        ``order`` is a permutation of the axes, e.g. :func:`memory_order` of another array, so
        the buffer and that array can be walked together with contiguous inner loops.
        """
        perm_shape = tuple(shape[a] for a in order)
        buf = self.empty(name + str(order), perm_shape, dtype)
        return buf.transpose(np.argsort(order))

    def zeros(self, name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """A buffer filled with zeros on every call."""
        buf = self.empty(name, shape, dtype)
        buf.fill(0)
        return buf

    def padded(self, name: str, shape: tuple[int, ...], dtype: np.dtype, fill: float) -> np.ndarray:
        """A buffer whose border keeps ``fill``: filled only when (re)allocated.

        Callers write only the interior, so the border set at allocation time survives.
        """
        shape, dtype = tuple(shape), np.dtype(dtype)
        return self._get((name, shape, dtype, fill), lambda: np.full(shape, fill, dtype=dtype))

    def clear(self) -> None:
        self._bufs.clear()


def memory_order(a: np.ndarray) -> tuple[int, ...]:
    """Axes of ``a`` from the largest stride to the smallest (ties keep their order).

    >>> memory_order(np.empty((2, 3, 4, 5)).transpose(3, 0, 1, 2))
    (1, 2, 3, 0)
    """
    st = a.strides
    return tuple(sorted(range(a.ndim), key=lambda i: -st[i]))  # sorted() is stable


class Recycler:
    """Fresh-array allocator that re-uses large arrays nobody references any more.

    Allocating a large array maps new pages, and every first touch of a page is a page fault;
    on a virtual machine a fault costs microseconds, and a LeNet-5 step at batch 128 made
    ≈570 of them (≈3 ms, ~20 % of the step). The recycler keeps the large arrays it handed
    out; when the same shape and dtype is asked for again, it returns one whose only
    reference is its own list — no caller, view (a view holds its base) or cache still uses
    it — so the caller gets memory nobody else can see, exactly as with ``np.empty``.

    Args:
        min_bytes: arrays smaller than this come straight from ``np.empty``.
        max_bytes: total size kept for re-use (beyond it, new arrays are not kept).
        per_key: at most this many arrays kept per (shape, dtype).
    """

    def __init__(self, min_bytes: int = 1 << 18, max_bytes: int = 1 << 29, per_key: int = 8):
        self.min_bytes, self.max_bytes, self.per_key = min_bytes, max_bytes, per_key
        self._pool: dict[tuple, list[np.ndarray]] = {}
        self._bytes = 0
        probe = [np.empty(0)]
        self._free_refs = sys.getrefcount(probe[0])  # references of an unused pooled array

    def empty(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """An uninitialised C-ordered array that no one else references."""
        shape, dtype = tuple(int(d) for d in shape), np.dtype(dtype)
        nbytes = dtype.itemsize * math.prod(shape)
        if nbytes < self.min_bytes:
            return np.empty(shape, dtype)
        arrays = self._pool.setdefault((shape, dtype), [])
        for k in range(len(arrays)):
            if sys.getrefcount(arrays[k]) == self._free_refs:
                return arrays[k]
        a = np.empty(shape, dtype)
        if len(arrays) < self.per_key and self._bytes + nbytes <= self.max_bytes:
            arrays.append(a)
            self._bytes += nbytes
        return a

    def clear(self) -> None:
        """Forget every kept array (memory is freed once callers drop theirs)."""
        self._pool.clear()
        self._bytes = 0


#: the process-wide recycler used by the kernels for their large outputs
RECYCLER = Recycler()


def empty_ordered(shape: tuple[int, ...], dtype: np.dtype, order: tuple[int, ...] | None = None,
                  zero: bool = False) -> np.ndarray:
    """A fresh array of ``shape`` whose memory layout follows ``order`` (axis ``order[0]``
    outermost; C order when None), from the :data:`RECYCLER`."""
    if order is None:
        order = tuple(range(len(shape)))
    a = RECYCLER.empty(tuple(shape[ax] for ax in order), dtype)
    if zero:
        a.fill(0)
    inverse = [0] * len(order)
    for k, ax in enumerate(order):
        inverse[ax] = k
    return a.transpose(inverse)


def get_workspace(ws: Workspace | None) -> Workspace:
    """The given workspace, or a throw-away one for stateless calls."""
    return ws if ws is not None else Workspace()
