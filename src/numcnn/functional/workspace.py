"""Re-usable scratch buffers keyed by name, shape and dtype.

Large temporaries (padded inputs, im2col columns) otherwise page-fault on every training
step; a layer keeps one ``Workspace`` and asks it for buffers. Only *internal* temporaries
live here — arrays returned to callers are always fresh, so holding on to an output is safe.
"""

from __future__ import annotations

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
    return tuple(int(i) for i in np.argsort([-s for s in a.strides], kind="stable"))


def empty_ordered(shape: tuple[int, ...], dtype: np.dtype, order: tuple[int, ...],
                  zero: bool = False) -> np.ndarray:
    """A fresh array of ``shape`` whose memory layout follows ``order`` (see above)."""
    make = np.zeros if zero else np.empty
    return make(tuple(shape[a] for a in order), dtype).transpose(np.argsort(order))


def get_workspace(ws: Workspace | None) -> Workspace:
    """The given workspace, or a throw-away one for stateless calls."""
    return ws if ws is not None else Workspace()
