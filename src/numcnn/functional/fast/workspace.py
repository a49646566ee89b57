"""Scratch and output memory for the fast kernels, owned by the caller: one per call site.

Large temporaries (padded inputs, im2col columns, row fields) otherwise page-fault on every
training step, and so do large fresh outputs. A :class:`Workspace` keeps both kinds:

* **scratch buffers** keyed by (name, shape, dtype), handed out again on every call;
* **fresh arrays** (:meth:`Workspace.fresh`) for results returned to callers: an array is
  handed out again only when nothing but the workspace still references it, so a caller
  that keeps an output (or a view of it, or a cache holding it) never sees it overwritten.
  A workspace and all its children (:meth:`Workspace.child`: one per call site of a model)
  share one pool of fresh arrays, like a caching allocator: an activation that died in one
  layer is re-used by the next layer asking for that shape, so the memory kept is about
  the largest set of arrays alive at once, not one set per call site (issue 11: resnet20
  at batch 64 kept 130 MB more than it used). Scratch that a cache keeps for the backward
  pass (a padded input, row fields) can be fresh arrays too: no later call can take them
  while the cache holds them.

A forward pass that keeps scratch buffers in its cache for the backward pass (the padded
input, the row fields) starts with :meth:`Workspace.begin`, and the backward pass checks
the number it got with :meth:`Workspace.check`. A later forward call on the same workspace
re-uses those buffers, so the earlier cache is *stale*: its backward raises
:class:`StaleCacheError` instead of returning wrong numbers. A layer called several times
before one backward (a shared layer, a recurrent step) therefore needs one workspace per
call — the graph engine gives every node its own (:meth:`Workspace.child`).

The workspace is plain state of whoever owns it; the kernels keep none of their own.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np


def _free_refs() -> int:
    """References ``sys.getrefcount`` reports for a pooled array nobody else holds, taken
    in the same loop form as :meth:`Workspace.fresh` (the list, the loop variable and the
    call's argument on CPython 3.11; measured rather than assumed)."""
    for a in [np.empty(0)]:
        return sys.getrefcount(a)
    raise AssertionError("unreachable")


_FREE_REFS = _free_refs()
_IDENTITY = [tuple(range(n)) for n in range(9)]


class _Pool:
    """Fresh arrays kept for re-use, ``{(shape, dtype, tag): [arrays]}``, and their bytes;
    shared by a workspace and its children."""

    __slots__ = ("arrays", "nbytes")

    def __init__(self) -> None:
        self.arrays: dict[tuple, list[np.ndarray]] = {}
        self.nbytes = 0


#: fresh arrays of one shape kept for re-use (a model's many equally shaped activations)
MAX_POOLED_PER_SHAPE = 64


class StaleCacheError(RuntimeError):
    """A backward pass was given a cache whose workspace buffers a later call re-used."""


class Workspace:
    """Scratch buffers and recycled output arrays for one call site.

    Args:
        max_buffers: scratch buffers kept; beyond it the scratch set starts afresh (a model
            sees two batch shapes per epoch — full batches and the last partial one).
        min_fresh_bytes: fresh arrays smaller than this come straight from ``np.empty``.
        max_fresh_bytes: total size of the fresh arrays kept for re-use (by the workspace
            and its children together).

    >>> ws = Workspace()
    >>> a = ws.empty("cols", (2, 3), np.float32)
    >>> a is ws.empty("cols", (2, 3), np.float32)
    True
    """

    def __init__(self, max_buffers: int = 16, min_fresh_bytes: int = 1 << 18,
                 max_fresh_bytes: int = 1 << 28, pool: _Pool | None = None):
        self.max_buffers = max_buffers
        self.min_fresh_bytes = min_fresh_bytes
        self.max_fresh_bytes = max_fresh_bytes
        self.generation = 0
        self._bufs: dict[tuple, np.ndarray] = {}
        self._pool = pool if pool is not None else _Pool()
        self._children: dict[Any, Workspace] = {}

    # --------------------------------------------------------------- staleness
    def begin(self) -> int:
        """Start a forward call whose cache keeps scratch buffers; returns its number."""
        self.generation += 1
        return self.generation

    def check(self, generation: int, who: str) -> None:
        """Raise :class:`StaleCacheError` unless ``generation`` is the latest forward call."""
        if generation != self.generation:
            raise StaleCacheError(
                f"{who}: this cache is stale — a later forward call on the same Workspace "
                "re-used the buffers it refers to. Call backward before the next forward on "
                "that workspace, or give every call site its own Workspace "
                "(Workspace.child(key))")

    # ------------------------------------------------------------------ scratch
    def _get(self, key: tuple, make) -> np.ndarray:
        buf = self._bufs.get(key)
        if buf is None:
            if len(self._bufs) >= self.max_buffers:
                self._bufs.clear()
            buf = self._bufs[key] = make()
        return buf

    def empty(self, name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """An uninitialised scratch buffer (contents are whatever the last user left)."""
        shape, dtype = tuple(shape), np.dtype(dtype)
        return self._get((name, shape, dtype), lambda: np.empty(shape, dtype=dtype))

    def empty_ordered(self, name: str, shape: tuple[int, ...], dtype: Any,
                      order: tuple[int, ...]) -> np.ndarray:
        """Like :meth:`empty`, laid out in memory with axis ``order[0]`` outermost."""
        perm_shape = tuple(shape[a] for a in order)
        buf = self.empty(name + str(order), perm_shape, dtype)
        return buf.transpose(np.argsort(order))

    def zeros(self, name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """A scratch buffer filled with zeros on every call."""
        buf = self.empty(name, shape, dtype)
        buf.fill(0)
        return buf

    def padded(self, name: str, shape: tuple[int, ...], dtype: Any, fill: float) -> np.ndarray:
        """A scratch buffer whose border keeps ``fill``: filled only when (re)allocated.

        Callers write only the interior, so the border set at allocation time survives.
        """
        shape, dtype = tuple(shape), np.dtype(dtype)
        return self._get((name, shape, dtype, fill), lambda: np.full(shape, fill, dtype=dtype))

    # -------------------------------------------------------------------- fresh
    def fresh(self, shape: tuple[int, ...], dtype: Any, tag: Any = None,
              fill: float | None = None) -> np.ndarray:
        """An uninitialised C-ordered array that nobody else references.

        Large arrays are kept after use; one is handed out again when its only reference
        is the pool's own list — no caller, view (a view holds its base) or cache still
        uses it — so the caller gets memory nobody else can see, exactly as with
        ``np.empty``, without the page faults of new memory.

        ``tag`` keeps arrays apart that must not be mixed; ``fill`` fills an array when it
        is made, not when it is handed out again (a padded input whose callers write only
        the interior: tag it with the padding, so the border stays ``fill``).
        """
        dtype = np.dtype(dtype)
        nbytes = dtype.itemsize * math.prod(shape)
        if nbytes < self.min_fresh_bytes:
            return np.empty(shape, dtype) if fill is None else np.full(shape, fill, dtype)
        shape = tuple(int(d) for d in shape)
        pool = self._pool
        arrays = pool.arrays.setdefault((shape, dtype, tag, fill), [])
        for a in arrays:
            if sys.getrefcount(a) == _FREE_REFS:
                return a
        a = np.empty(shape, dtype) if fill is None else np.full(shape, fill, dtype)
        if len(arrays) < MAX_POOLED_PER_SHAPE and pool.nbytes + nbytes <= self.max_fresh_bytes:
            arrays.append(a)
            pool.nbytes += nbytes
        return a

    def fresh_ordered(self, shape: tuple[int, ...], dtype: Any,
                      order: tuple[int, ...] | None = None, zero: bool = False) -> np.ndarray:
        """A fresh array of ``shape`` whose memory follows ``order`` (axis ``order[0]``
        outermost; C order when None)."""
        if order is None or order == _IDENTITY[len(shape)]:
            a = self.fresh(shape, dtype)
            if zero:
                a.fill(0)
            return a
        a = self.fresh(tuple(shape[ax] for ax in order), dtype)
        if zero:
            a.fill(0)
        inverse = [0] * len(order)
        for k, ax in enumerate(order):
            inverse[ax] = k
        return a.transpose(inverse)

    # ---------------------------------------------------------------- structure
    def child(self, key: Any) -> Workspace:
        """The workspace of a sub-call site ``key`` (created on first use)."""
        ws = self._children.get(key)
        if ws is None:
            ws = self._children[key] = Workspace(self.max_buffers, self.min_fresh_bytes,
                                                 self.max_fresh_bytes, self._pool)
        return ws

    def clear(self) -> None:
        """Forget every buffer (memory is freed once callers drop theirs)."""
        self._bufs.clear()
        self._pool = _Pool()
        self._children.clear()


def memory_order(a: np.ndarray) -> tuple[int, ...]:
    """Axes of ``a`` from the largest stride to the smallest (ties keep their order).

    >>> memory_order(np.empty((2, 3, 4, 5)).transpose(3, 0, 1, 2))
    (1, 2, 3, 0)
    """
    st = a.strides
    if len(st) == 4:  # the two layouts the kernels hand on, recognised without sorting
        s0, s1, s2, s3 = st
        if s0 >= s1 >= s2 >= s3:
            return (0, 1, 2, 3)
        if s1 >= s2 >= s3 > s0:
            return (1, 2, 3, 0)
    return tuple(sorted(range(a.ndim), key=lambda i: -st[i]))  # sorted() is stable


def get_workspace(ws: Workspace | None) -> Workspace:
    """The given workspace, or a throw-away one for stateless calls."""
    return ws if ws is not None else Workspace()
