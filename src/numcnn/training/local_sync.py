"""``fit(distribute="local:K")``: K symmetric forked processes behind the MPI interface.

The same data-parallel step as over MPI (:mod:`.distributed`): ``fit`` forks K − 1 copies of
the process right before training; each, rank ``r``, trains its shard of every batch and
takes the same optimizer step, and the parent (rank 0) returns from ``fit`` holding the
model. The collectives go through shared memory:

- **Slots.** Two banks of one float64 slot per rank. An allreduce writes this rank's numbers
  into its slot of the current bank, meets the others at a barrier, and sums the K slots in
  rank order (so every rank gets bitwise the same sum, and the same as
  :meth:`.distributed.Communicator.allreduce_sum` over MPI would give from a rank-order
  sum). The next operation uses the other bank: a rank can write it only after passing that
  operation's barrier, which every rank reaches only after reading this bank — so one
  barrier per operation suffices.
- **Barrier.** One POSIX semaphore per ordered pair of ranks: arriving, rank ``r`` posts to
  every other rank's semaphore from ``r`` and takes one post from each of its own. It first
  polls for a few microseconds (the other rank is usually about to arrive), then sleeps in
  slices of :data:`SLICE` seconds, checking between them that no rank failed (a shared flag),
  that the children are alive (parent) or the parent is (children), and that the wait has
  not passed ``NUMCNN_MPI_TIMEOUT`` seconds.
- **Gradients.** :meth:`LocalComm.allreduce_weighted` writes ``w·g`` straight into the slot
  and sums the slots straight into the gradient arrays: one pass in, one out.

A rank that fails sets the flag, which the others see within a slice; one that dies is seen
by the parent within a slice; one that hangs leaves the others waiting at most
``NUMCNN_MPI_TIMEOUT`` seconds; in every case the parent kills the children and raises.
Children ask Linux to kill
them when the parent dies (``prctl(PR_SET_PDEATHSIG)``), ignore ``SIGINT``/``SIGTERM`` (a
terminal or scheduler signals the whole process group: the parent decides), start a session
of their own (``setsid``, as MPI's launcher does for each rank: Linux's autogroup scheduler
gives each session one share of a busy machine, so K processes in one session would get one
core's worth between them) and leave with
``os._exit`` when training ends, never returning into the caller's code. Needs Linux (fork).
"""

from __future__ import annotations

import mmap
import multiprocessing as mp
import os
import signal
import sys
import time
import warnings
from typing import Any

import numpy as np

from . import distributed

#: Seconds a waiting rank sleeps between its checks of the other ranks.
SLICE = 0.05
#: Polls of a semaphore before sleeping on it (a few microseconds).
SPIN = 200
_NOTE = 1024  # bytes kept of a failing rank's message


def _prctl() -> Any:
    """libc's ``prctl`` (Linux), or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        fn = ctypes.CDLL(None, use_errno=True).prctl
        fn.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
        fn.restype = ctypes.c_int
        return fn
    except (OSError, AttributeError, ImportError):
        return None


_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int, prctl: Any) -> None:
    """First thing in a child: be killed when the parent dies (Linux), and exit now if it
    already has (then this process was re-parented before the request took effect)."""
    if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:
        os._exit(0)


def fork_problem() -> str | None:
    """Why this platform cannot fork local data-parallel processes, or None."""
    if not sys.platform.startswith("linux") or "fork" not in mp.get_all_start_methods():
        return f"local data-parallel processes need Linux (fork); this is {sys.platform}"
    return None


def _state(pid: int) -> str:
    """How process ``pid`` is doing, from ``/proc/<pid>/stat``, in words."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            letter = f.read().rsplit(b")", 1)[1].split()[0].decode()
    except (OSError, IndexError, UnicodeDecodeError):
        return "in an unknown state"
    names = {"R": "running", "S": "sleeping", "D": "in uninterruptible sleep",
             "T": "stopped (a signal such as SIGSTOP)", "t": "stopped by a debugger"}
    return names.get(letter, f"in state {letter}")


class LocalComm(distributed.Communicator):
    """Shared-memory :class:`~.distributed.Communicator` for ``size`` forked processes."""

    def __init__(self, size: int, capacity: int):
        self.size, self.rank, self.capacity = int(size), 0, int(capacity)
        ctx = mp.get_context("fork")
        # sems[a][b]: rank a has arrived, for rank b to take
        self.sems = [[ctx.Semaphore(0) if a != b else None for b in range(self.size)]
                     for a in range(self.size)]
        head = 8 + _NOTE // 8  # the flag, the note's length, the note, then the slots
        self._mem = mmap.mmap(-1, 8 * (head + 2 * self.size * self.capacity))
        words = np.frombuffer(self._mem, np.float64)
        self.flag = np.frombuffer(self._mem, np.int64, count=2)  # 1 + a failed rank; length
        self.note_bytes = np.frombuffer(self._mem, np.uint8, count=_NOTE, offset=64)
        self.banks = words[head:].reshape(2, self.size, self.capacity)
        self.turn = 0
        self.work = np.empty(self.capacity, np.float64)
        self.children: list[int] = []
        self.dead: dict[int, int] = {}  # pid: wait status of a child collected early
        self.parent = os.getpid()

    def start(self) -> None:
        """Fork ranks 1 … size − 1; each returns from here with its ``rank`` set."""
        prctl = _prctl()
        for r in range(1, self.size):
            with warnings.catch_warnings():
                # Python >= 3.12 and libraries with thread pools (JAX) warn about fork() in
                # a process with threads; the child only runs NumPy on its copy of the model
                warnings.filterwarnings("ignore", message=r".*fork\(\)", category=Warning)
                pid = os.fork()
            if pid == 0:
                self.rank, self.children = r, []
                die_with_parent(self.parent, prctl)
                try:  # a session of its own, as hydra gives each MPI rank: under Linux's
                    os.setsid()  # autogroup scheduling each process then gets its own share
                except OSError:
                    pass
                for sig in (signal.SIGINT, signal.SIGTERM):  # the parent decides
                    signal.signal(sig, signal.SIG_IGN)
                return
            self.children.append(pid)

    # -- the barrier ------------------------------------------------------------------------
    def _failed(self, why: str) -> RuntimeError:
        return RuntimeError(f"another local data-parallel process {why}")

    def note(self, message: str) -> None:
        """Leave ``message`` (why this rank fails) for the others' error."""
        raw = message.encode("utf-8", "replace")[:_NOTE]
        self.note_bytes[:len(raw)] = np.frombuffer(raw, np.uint8)
        self.flag[1] = len(raw)

    def _failure(self) -> RuntimeError:
        raw = self.note_bytes[:int(self.flag[1])].tobytes().decode("utf-8", "replace")
        return self._failed(f"failed: rank {int(self.flag[0]) - 1}: {raw or 'an error'}")

    def _check(self, start: float, limit: float) -> None:
        """Between two sleeps of a wait: raise when a rank failed, died or hangs."""
        if self.flag[0]:
            raise self._failure()
        if self.rank == 0:
            for r, pid in enumerate(self.children, 1):
                if pid in self.dead:
                    continue
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    self.dead[pid] = status
                    how = (f"was killed by signal {signal.Signals(os.WTERMSIG(status)).name}"
                           if os.WIFSIGNALED(status) else
                           f"exited (code {os.waitstatus_to_exitcode(status)})")
                    raise self._failed(f"died: rank {r} (pid {pid}) {how}")
        elif os.getppid() != self.parent:
            os._exit(1)  # the parent is gone: nobody wants this rank's result
        elapsed = time.monotonic() - start
        if elapsed > limit:
            states = "".join(f"; rank {r} (pid {pid}) is {_state(pid)}"
                             for r, pid in enumerate(self.children, 1))
            raise self._failed(f"hangs: waited {elapsed:.0f} s{states} (bound: "
                               f"{distributed.TIMEOUT_ENV}={limit:g} s)")

    def _take(self, sem: Any) -> None:
        for _ in range(SPIN):
            if sem.acquire(False):
                return
        start, limit = time.monotonic(), distributed.timeout()
        while not sem.acquire(True, SLICE):
            self._check(start, limit)

    def _wait(self) -> None:
        me = self.rank
        for r in range(self.size):
            if r != me:
                self.sems[me][r].release()
        for r in range(self.size):
            if r != me:
                self._take(self.sems[r][me])

    def _bank(self, n: int) -> np.ndarray:
        if n > self.capacity:
            raise ValueError(f"local allreduce of {n} numbers; the shared slots hold "
                             f"{self.capacity}")
        bank = self.banks[self.turn]
        self.turn ^= 1
        return bank

    # -- collectives ------------------------------------------------------------------------
    def _sum(self, bank: np.ndarray, lo: int, hi: int) -> np.ndarray:
        """The slots' sum over ranks, in rank order, of positions lo … hi (a work view)."""
        total = self.work[lo:hi]
        np.add(bank[0, lo:hi], bank[1, lo:hi], out=total)
        for r in range(2, self.size):
            total += bank[r, lo:hi]
        return total

    def allreduce_sum(self, buf: np.ndarray) -> None:
        n = buf.size
        bank = self._bank(n)
        bank[self.rank, :n] = buf.ravel()
        self._wait()
        buf.ravel()[...] = self._sum(bank, 0, n)

    def allreduce_weighted(self, arrays: list[np.ndarray], weight: float,
                           extra: np.ndarray) -> np.ndarray:
        """Every rank's ``weight · a`` summed into each array of ``arrays`` in place, and
        the sum of ``extra`` returned — one barrier, no packing buffer."""
        n = sum(a.size for a in arrays) + extra.size
        bank = self._bank(n)
        mine, start = bank[self.rank], 0
        for a in arrays:
            np.multiply(a.ravel(), weight, out=mine[start:start + a.size])
            start += a.size
        mine[start:n] = extra
        self._wait()
        start = 0
        for a in arrays:
            stop = start + a.size
            if self.size == 2:  # the float64 sum rounded once into a's dtype, no temporary
                np.add(bank[0, start:stop], bank[1, start:stop], out=a.reshape(-1),
                       casting="same_kind")
            else:
                a.reshape(-1)[...] = self._sum(bank, start, stop)
            start = stop
        return self._sum(bank, start, n).copy()

    def bcast(self, buf: np.ndarray) -> None:
        n = buf.size
        bank = self._bank(n)
        raw = buf.ravel().view(np.float64)  # 8-byte numbers (float64, uint64) bit for bit
        if self.rank == 0:
            bank[0, :n] = raw
        self._wait()
        if self.rank != 0:
            raw[...] = bank[0, :n]

    def abort(self, code: int = 1) -> None:
        self.flag[0] = 1 + self.rank  # a waiting rank sees it within SLICE seconds
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
            if pid in self.dead:
                continue
            if kill:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        self.children, self.dead = [], {}


def make(size: int, model: Any) -> LocalComm:
    """A communicator for ``size`` local processes training ``model``."""
    count = sum(a.size for a in model.trainable_params().values())
    buffers = sum(lay.buffers[k].size for _, lay, k in model.named_buffers())
    return LocalComm(size, count + buffers + 4096)
