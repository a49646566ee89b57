"""``fit(distribute="local:K")``: K symmetric forked processes behind the MPI interface.

The same data-parallel step as over MPI (:mod:`.distributed`): ``fit`` forks K − 1 copies of
the process right before training; each, rank ``r``, trains its shard of every batch and
takes the same optimizer step, and the parent (rank 0) returns from ``fit`` holding the
model. The collectives go through shared memory: one slot of float64 numbers per rank, a
barrier, and every rank summing the slots in rank order (so all get bitwise the same sum).
A rank that fails aborts the barrier; one that dies or hangs leaves the others waiting at
most ``NUMCNN_MPI_TIMEOUT`` seconds; either way the parent kills the children and raises.
Children ask Linux to kill them when the parent dies and leave with ``os._exit`` when
training ends, never returning into the caller's code. Needs Linux (fork).
"""

from __future__ import annotations

import mmap
import multiprocessing as mp
import os
import signal
import threading
from typing import Any

import numpy as np

from . import distributed


class LocalComm(distributed.Communicator):
    """Shared-memory :class:`~.distributed.Communicator` for ``size`` forked processes."""

    def __init__(self, size: int, capacity: int):
        self.size, self.rank, self.capacity = int(size), 0, int(capacity)
        self.barrier = mp.get_context("fork").Barrier(self.size)
        self._mem = mmap.mmap(-1, 8 * self.size * self.capacity)
        self.slots = np.frombuffer(self._mem, np.float64).reshape(self.size, self.capacity)
        self.children: list[int] = []

    def start(self) -> None:
        """Fork ranks 1 … size − 1; each returns from here with its ``rank`` set."""
        from .parallel import _die_with_parent

        parent = os.getpid()
        for r in range(1, self.size):
            pid = os.fork()
            if pid == 0:
                self.rank, self.children = r, []
                _die_with_parent(parent)
                for sig in (signal.SIGINT, signal.SIGTERM):  # the parent decides
                    signal.signal(sig, signal.SIG_IGN)
                return
            self.children.append(pid)

    def _wait(self) -> None:
        try:
            self.barrier.wait(distributed.timeout())
        except threading.BrokenBarrierError:
            raise RuntimeError("another local data-parallel process failed, died or hangs "
                               f"(bound: {distributed.TIMEOUT_ENV}="
                               f"{distributed.timeout():g} s)") from None

    def _check(self, buf: np.ndarray) -> None:
        if buf.size > self.capacity:
            raise ValueError(f"local allreduce of {buf.size} numbers; the shared slots hold "
                             f"{self.capacity}")

    def allreduce_sum(self, buf: np.ndarray) -> None:
        self._check(buf)
        n = buf.size
        self.slots[self.rank, :n] = buf.ravel()
        self._wait()
        total = self.slots[0, :n].copy()
        for r in range(1, self.size):
            total += self.slots[r, :n]
        self._wait()  # nobody writes its slot again before every rank has read
        buf.ravel()[...] = total

    def bcast(self, buf: np.ndarray) -> None:
        self._check(buf)
        n = buf.size
        raw = buf.ravel().view(np.float64)  # 8-byte numbers (float64, uint64) bit for bit
        if self.rank == 0:
            self.slots[0, :n] = raw
        self._wait()
        if self.rank != 0:
            raw[...] = self.slots[0, :n]
        self._wait()

    def abort(self, code: int = 1) -> None:
        self.barrier.abort()
        if self.rank != 0:
            os._exit(code)
        self._reap(kill=True)

    def finish(self) -> None:
        """End of training: children leave, the parent collects them."""
        if self.rank != 0:
            os._exit(0)
        self._reap(kill=False)

    def _reap(self, kill: bool) -> None:
        for pid in self.children:
            if kill:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        self.children = []


def make(size: int, model: Any) -> LocalComm:
    """A communicator for ``size`` local processes training ``model``."""
    count = sum(a.size for a in model.trainable_params().values())
    buffers = sum(lay.buffers[k].size for _, lay, k in model.named_buffers())
    return LocalComm(size, count + buffers + 4096)
