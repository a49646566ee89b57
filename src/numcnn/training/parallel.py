"""Data-parallel training steps on several cores: each process takes a part of every batch.

NumPy runs every call but a matrix product on one core, and splitting single calls between
Python threads costs more than it saves (each lasts microseconds; see docs/performance.md).
So when ``fit`` may use ``n ≥ 2`` cores (:func:`numcnn.set_num_threads`), it forks ``n − 1``
worker processes, each holding a copy of the model, and splits every batch of ``m`` samples
into ``n`` contiguous parts of ``m_k`` samples (sizes differ by at most one; the main process
takes the first). Each process runs forward, loss and backward on its part with one BLAS
thread. The main process then forms the full-batch gradient

    g = Σ_k (m_k / m) · g_k,

which for a loss that is a mean over samples (every built-in loss) is exactly the gradient of
the whole batch, up to float rounding, and takes the optimizer step itself. Before each
batch the main process copies the current parameters into a shared-memory block that the
workers' parameters are views of; workers write their gradients into shared memory too. Only
batch indices and each part's loss and outputs travel through pipes (Unix socket pairs).

Models are eligible when every layer's output for a sample depends on that sample alone
(``Layer.per_sample``; BatchNorm's batch statistics are not) and the loss declares itself a
mean over samples (``Loss.batch_mean``). Random layers (Dropout) draw, in each worker, from
generators seeded afresh for every batch from (worker rank, epoch, step, the generator's
index, a base state that ``fit`` sets at every epoch: its data-order generator's state at the
epoch's start, which checkpoints hold). So runs are reproducible for a given seed and process
count, resume exactly from a checkpoint taken anywhere — mid-epoch included — and differ in
their masks from a 1-process run (the main process draws from its own generators, which are
saved). Forking needs Linux.

Workers and faults. Each worker belongs to the process that forked it and never outlives it:
on Linux it asks the kernel for ``SIGKILL`` when its parent dies (``prctl(PR_SET_PDEATHSIG)``,
which also covers ``kill -9`` of the parent) and checks its parent pid right after, in case
the parent died before that; as a fallback it checks its parent pid every second while it
waits for work, and exits when the parent is gone or its connection closes. Workers ignore
``SIGINT`` and ``SIGTERM``, which a terminal (Ctrl-C) or a batch scheduler sends to the whole
process group: the main process alone decides, and stops them when ``fit`` returns or raises.
The main process never waits on a worker without a bound: it sends and receives without
blocking, watches each worker's process sentinel, and allows a worker's part of a batch
``max(WORKER_TIMEOUT, TIMEOUT_FACTOR × the main process's own part time)`` seconds (60 s
and 20 by default; the environment variable ``NUMCNN_WORKER_TIMEOUT`` sets the first; time
this process itself spends stopped, e.g. after Ctrl-Z, is not counted). A worker that dies,
fails or falls silent stops the run with a ``RuntimeError`` naming its rank, pid and state —
"was killed by signal SIGKILL", "exited unexpectedly (exit code 7)", "failed:" with its
traceback, "was stopped by signal SIGSTOP", "is still running but sent no result" — after
every worker has been killed (``SIGKILL``, and ``SIGCONT`` for stopped ones).
"""

from __future__ import annotations

import math
import mmap
import multiprocessing as mp
import os
import select
import signal
import socket
import struct
import sys
import time
import traceback
import warnings
from typing import Any, NoReturn

import numpy as np

# Messages are (length, tag) headers of 16 bytes (so bodies stay 8-byte aligned) + a body.
_HEAD = struct.Struct("<Qc7x")
_OK, _ERR = b"K", b"E"  # worker -> main: a part's results, or a traceback
_SEED, _PART, _STOP = b"S", b"P", b"Q"  # main -> worker: epoch seeds, part positions, stop

#: ``fit(processes=None)`` splits a batch only while every process gets this many samples:
#: below it the fixed cost of a step (Python, pipes) outweighs the halved arithmetic.
MIN_PART = 32

#: Seconds a worker may take for its part of a batch at least (the environment variable
#: ``NUMCNN_WORKER_TIMEOUT`` overrides it); the bound is ``max(WORKER_TIMEOUT,
#: TIMEOUT_FACTOR × the main process's time for its own part)``, so a slow but live step of
#: a big model never trips it. Past it the run stops with an error naming the worker.
WORKER_TIMEOUT = 60.0
TIMEOUT_FACTOR = 20.0
TIMEOUT_ENV = "NUMCNN_WORKER_TIMEOUT"

_SLICE = 1.0  # seconds: how often a waiting worker checks its parent, and the main process
#               the clock (a slice counts at most this much, so time spent stopped is not)
_PDEATHSIG = True  # ask Linux to kill workers with their parent (tests switch it off)
_PR_SET_PDEATHSIG = 1
_GROUP_SIGNALS = {signal.SIGINT, signal.SIGTERM}  # what workers ignore


def worker_timeout() -> float:
    """The least time, in seconds, a worker may take for its part of a batch:
    ``NUMCNN_WORKER_TIMEOUT`` when set, else :data:`WORKER_TIMEOUT`."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return float(WORKER_TIMEOUT)
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{TIMEOUT_ENV}={raw!r}: expected a positive number of seconds")
    return value


def _leaves(model: Any) -> list[Any]:
    leaves = getattr(model, "leaf_layers", None)
    return leaves() if leaves is not None else [model]


def parallel_problem(model: Any, losses: Any) -> str | None:
    """Why ``model`` with ``losses`` (one per output, ``None`` for outputs without one)
    cannot train data-parallel, or None when it can."""
    if not sys.platform.startswith("linux") or "fork" not in mp.get_all_start_methods():
        return f"data-parallel training needs Linux (fork); this is {sys.platform}"
    for loss in (losses if isinstance(losses, (list, tuple)) else [losses]):
        if loss is not None and not getattr(loss, "batch_mean", False):
            red = getattr(loss, "reduction", "mean")
            why = f" (its reduction is {red!r})" if red != "mean" else ""
            return (f"the loss {type(loss).__name__} does not declare itself a mean over "
                    f"samples (Loss.batch_mean){why}, so part gradients cannot be combined")
    masked = [lo for lo, m in zip(losses if isinstance(losses, (list, tuple)) else [losses],
                                  getattr(getattr(model, "graph", None), "output_masks", []))
              if lo is not None and m is not None]
    if masked:
        return ("an output with a loss carries a padding mask: its loss is a mean over the "
                "real steps, which parts of a batch split unevenly")
    for layer in _leaves(model):
        if not getattr(layer, "per_sample", True):
            return (f"layer {layer.display_name} mixes the samples of a batch "
                    "(e.g. BatchNorm statistics), so parts would compute something else")
    return None


def split_sizes(m: int, parts: int) -> list[int]:
    """``parts`` sizes summing to ``m``, the first ones one larger when it does not divide."""
    q, r = divmod(m, parts)
    return [q + (k < r) for k in range(parts)]


def _trainable_slots(model: Any) -> list[tuple[Any, str]]:
    return [(layer, key) for _, layer, key in model.named_params() if layer.trainable]


def _views(flat: np.ndarray, like: list[np.ndarray]) -> list[np.ndarray]:
    out, start = [], 0
    for a in like:
        out.append(flat[start:start + a.size].reshape(a.shape))
        start += a.size
    return out


def _generators(model: Any) -> list[tuple[Any, str, np.random.Generator]]:
    """``(layer, attribute, generator)`` of every layer's random generator, in a fixed order."""
    out = []
    for layer in _leaves(model):
        for name, value in sorted(vars(layer).items()):
            if isinstance(value, np.random.Generator):
                out.append((layer, name, value))
    return out


def _reseed(model: Any, rank: int, epoch: int, step: int, base: np.ndarray) -> None:
    """Give every layer's random generator in worker ``rank`` the stream of this batch:
    seeded from (rank, epoch, step, its index, the epoch's base state), so a run resumed
    from a checkpoint anywhere draws the same masks in every process."""
    words = [int(v) for v in base]
    for j, (layer, name, _) in enumerate(_generators(model)):
        seed = [int(rank), int(epoch), int(step), j, *words]
        setattr(layer, name, np.random.default_rng(seed))


def _prctl() -> Any:
    """libc's ``prctl`` (resolved in the main process, before forking), or None."""
    global _PRCTL
    if _PRCTL is False:
        _PRCTL = None
        if sys.platform.startswith("linux"):
            try:
                import ctypes

                fn = ctypes.CDLL(None, use_errno=True).prctl
                fn.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
                fn.restype = ctypes.c_int
                _PRCTL = fn
            except (OSError, AttributeError, ImportError):
                pass
    return _PRCTL


_PRCTL: Any = False


def _die_with_parent(parent: int) -> None:
    """First thing in a worker: be killed when the parent dies (Linux), and exit now if it
    already has (then this process was re-parented before the request took effect)."""
    prctl = _prctl() if _PDEATHSIG else None
    if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:
        os._exit(0)


def _recv_exact(sock: socket.socket, n: int) -> bytearray | None:
    """``n`` bytes from a blocking socket, or None when it closes first."""
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = sock.recv_into(view[got:])
        if k == 0:
            return None
        got += k
    return buf


def _write(sock: socket.socket, tag: bytes, body: bytes) -> None:
    """Send one message on a blocking socket (worker side)."""
    head = _HEAD.pack(len(body), tag)
    sent = sock.sendmsg([head, body])
    if sent < len(head) + len(body):  # cut short (a signal): send the rest
        sock.sendall((head + body)[sent:])


def _worker(sock: socket.socket, inherited: list[socket.socket], parent: int, trainer: Any,
            xs: list[np.ndarray], ys: list[Any], shared_params: list[np.ndarray],
            shared_grads: list[np.ndarray], rank: int) -> None:
    """Loop of a forked worker: receive part indices, send back losses and outputs."""
    _die_with_parent(parent)
    for other in inherited:  # the main process's ends: its death must close our connection
        other.close()
    for sig in _GROUP_SIGNALS:  # the main process decides (see above); they were blocked
        try:  # since before the fork, and one pending now is dropped
            signal.signal(sig, signal.SIG_IGN)
        except (ValueError, OSError):
            pass
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _GROUP_SIGNALS)
    model = trainer.model
    for (layer, key), view in zip(_trainable_slots(model), shared_params):
        layer.params[key] = view  # the main process publishes the weights here
    grads = list(model.trainable_grads().values())
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    epoch, base = 0, np.zeros(0, np.uint64)
    while True:
        try:
            while not poller.poll(int(_SLICE * 1000)):
                if os.getppid() != parent:  # the parent died (without PR_SET_PDEATHSIG)
                    return
            head = _recv_exact(sock, _HEAD.size)
            if head is None:
                return
            size, tag = _HEAD.unpack(head)
            msg = _recv_exact(sock, size)
        except OSError:
            return
        if msg is None or tag == _STOP:
            return
        try:
            if tag == _SEED:  # a new epoch: the base of its random streams
                epoch = int(np.frombuffer(msg[:8], dtype=np.int64)[0])
                base = np.frombuffer(msg, dtype=np.uint64)[1:].copy()
                continue
            step = int(np.frombuffer(msg[:8], dtype=np.int64)[0])
            idx = np.frombuffer(msg, dtype=np.int64)[1:]
            _reseed(model, rank, epoch, step, base)
            total, parts, outs = trainer.train_step(
                [np.take(a, idx, axis=0) for a in xs],
                [None if t is None else t[idx] for t in ys])
            for dst, src in zip(shared_grads, grads):
                np.copyto(dst, src)
            body = np.asarray([total, *parts], dtype=np.float64).tobytes()
            body += b"".join(np.ascontiguousarray(o).tobytes() for o in outs)
            _write(sock, _OK, body)
        except BaseException:  # report everything, then stop
            try:
                _write(sock, _ERR, traceback.format_exc().encode())
            except OSError:
                pass
            return


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _proc_state(pid: int) -> str:
    """The state letter of ``/proc/<pid>/stat`` (``T`` stopped, ``R``/``S``/``D`` running or
    sleeping, ``Z`` exited), or ``?`` where there is no such file."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0].decode()
    except (OSError, IndexError, UnicodeDecodeError):
        return "?"


def _stop_signal(pid: int) -> str | None:
    """The signal that stopped child ``pid`` (its wait status left in place), or None."""
    try:
        info = os.waitid(os.P_PID, pid, os.WSTOPPED | os.WNOHANG | os.WNOWAIT)
    except (AttributeError, OSError):
        return None
    if info is None or info.si_code != os.CLD_STOPPED:
        return None
    return _signal_name(info.si_status)


def _how(proc: Any) -> tuple[str, bool]:
    """How worker ``proc`` is doing, in words, and whether it is still alive."""
    code = proc.exitcode
    if code is not None:
        if code < 0:
            return f"was killed by signal {_signal_name(-code)}", False
        return f"exited unexpectedly (exit code {code})", False
    state = _proc_state(proc.pid)
    if state == "T":
        sig = _stop_signal(proc.pid)
        return (f"was stopped by signal {sig}" if sig else "was stopped (state T)"), True
    if state == "t":
        return "was stopped by a debugger (tracing stop)", True
    if state in ("Z", "X"):  # exiting: its status is on the way
        proc.join(1.0)
        if proc.exitcode is not None:
            return _how(proc)
    names = {"R": "running", "S": "sleeping", "D": "in uninterruptible sleep"}
    return f"is still running ({names.get(state, 'state ' + state)})", True


def _poll(pairs: list[tuple[int, int]], seconds: float) -> set[int]:
    """The descriptors among ``pairs`` (fd, events) that are ready within ``seconds``."""
    poller = select.poll()
    for fd, events in pairs:
        poller.register(fd, events)
    return {fd for fd, _ in poller.poll(max(0, math.ceil(seconds * 1000)))}


class _Incoming:
    """A message arriving in pieces on a non-blocking read."""

    def __init__(self) -> None:
        self.head = bytearray(_HEAD.size)
        self.tag = b""
        self.body: bytearray | None = None
        self.got = 0


class DataParallel:
    """Forward and backward of each batch split across ``processes`` processes.

    Use as a context manager (workers are stopped on exit, errors included)::

        with DataParallel(trainer, xs, ys, processes=2) as dp:
            loss, parts, outs = dp.forward_backward(idx, xb, yb)  # fills the model's grads
            trainer.optimizer.step(params, grads)

    A worker that dies, fails or stays silent past the time limit (see the module's
    docstring) raises ``RuntimeError`` naming it, after all workers were killed; the object
    is then unusable.

    Args:
        trainer: the compiled model's :class:`~numcnn.training.Trainer`.
        xs, ys: the whole training set (one array per input, one target array per output),
            as ``fit`` prepared it; workers index it by position.
        processes: total processes including this one (≥ 2).
    """

    def __init__(self, trainer: Any, xs: list[np.ndarray], ys: list[Any], processes: int):
        if isinstance(processes, bool) or not isinstance(processes, int) or processes < 2:
            raise ValueError(f"processes must be an int >= 2; received {processes!r}")
        model = trainer.model
        problem = parallel_problem(model, trainer.losses)
        if problem is not None:
            raise ValueError(problem)
        self.trainer, self.model, self.processes = trainer, model, processes
        self.timeout = worker_timeout()
        self.xs = list(xs)  # what the workers inherit when forked, and all they ever see
        self._step = 0
        self._limit = self.timeout  # for sends: the bound of the last batch
        self._failed: str | None = None
        self.params = list(model.trainable_params().values())
        self.grads = list(model.trainable_grads().values())
        dtype = model.dtype
        total = sum(p.size for p in self.params)
        nbytes = max(dtype.itemsize * total * processes, 1)
        self._mem = mmap.mmap(-1, nbytes)  # anonymous, shared with forked children
        flat = np.frombuffer(self._mem, dtype=dtype, count=total * processes)
        self._shared_params = _views(flat[:total], self.params)
        self._shared_grads = [_views(flat[total * k:total * (k + 1)], self.params)
                              for k in range(1, processes)]
        self._publish()
        self._socks: list[socket.socket] = []
        self._procs: list[Any] = []
        ctx = mp.get_context("fork")
        if _PDEATHSIG:
            _prctl()  # resolved here, so that a worker's first act is one call
        try:
            for rank in range(1, processes):
                ours, theirs = socket.socketpair()
                proc = ctx.Process(
                    target=_worker, name=f"numcnn-data-parallel-{rank}", daemon=True,
                    args=(theirs, [*self._socks, ours], os.getpid(), trainer, xs, ys,
                          self._shared_params, self._shared_grads[rank - 1], rank))
                with warnings.catch_warnings():
                    # Python ≥ 3.12 warns on fork() in a process with threads; here those are
                    # BLAS pools (OpenBLAS shuts its pool down around fork via pthread_atfork)
                    # and the child only runs NumPy on its own copy of the model.
                    warnings.filterwarnings("ignore", message=r".*fork\(\) may lead to deadlocks",
                                            category=DeprecationWarning)
                    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _GROUP_SIGNALS)
                    try:  # (blocked until the worker ignores them)
                        proc.start()
                    finally:
                        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
                        theirs.close()
                self._socks.append(ours)
                self._procs.append(proc)
            self.reseed(0)  # never the main process's own stream (fit re-seeds every epoch)
        except BaseException:
            self.close(wait=0.0)
            raise

    def _publish(self) -> None:
        for dst, src in zip(self._shared_params, self.params):
            np.copyto(dst, src)

    # -- talking to workers, never without a bound ------------------------------------------

    def _check_usable(self) -> None:
        if self._failed is not None:
            raise RuntimeError(f"data-parallel workers were stopped after an error: "
                               f"{self._failed}")

    def _fail(self, message: str) -> NoReturn:
        """Kill every worker, then raise ``message``."""
        self._failed = message.split("\n", 1)[0]
        self.close(wait=0.0)
        raise RuntimeError(message)

    def _died(self, k: int, when: str) -> NoReturn:
        proc = self._procs[k]
        proc.join(1.0)  # its exit status, which the closed connection announced
        how, alive = _how(proc)
        if alive:
            how = f"closed its connection and {how}"
        self._fail(f"data-parallel worker {k + 1} {how} {when} (pid {proc.pid})")

    def _timed_out(self, ks: list[int], limit: float, what: str) -> NoReturn:
        lines = []
        for k in ks:
            proc = self._procs[k]
            how, alive = _how(proc)
            link = " but" if how.startswith("is still running") else " and"
            lines.append(f"data-parallel worker {k + 1} {how}{link} {what} for "
                         f"{limit:.3g} s (pid {proc.pid})")
        self._fail("; ".join(lines) + f". All workers were stopped. A worker may take "
                   f"max({TIMEOUT_ENV}={self.timeout:g} s, {TIMEOUT_FACTOR:g} x the main "
                   f"process's part time) per part; raise {TIMEOUT_ENV} for slower steps.")

    def _send(self, k: int, tag: bytes, body: bytes, when: str) -> None:
        """Send a message to worker ``k`` without blocking on it for more than the limit."""
        sock, proc = self._socks[k], self._procs[k]
        data = memoryview(_HEAD.pack(len(body), tag) + body)
        waited = 0.0
        while len(data):
            try:
                data = data[sock.send(data, socket.MSG_DONTWAIT):]
                continue
            except BlockingIOError:
                pass
            except OSError:  # broken pipe, connection reset: the worker is gone
                self._died(k, when)
            if waited >= self._limit:
                self._timed_out([k], self._limit, "did not read its messages")
            start = time.monotonic()
            ready = _poll([(sock.fileno(), select.POLLOUT), (proc.sentinel, select.POLLIN)],
                          min(_SLICE, self._limit - waited))
            waited += min(time.monotonic() - start, _SLICE)
            if proc.sentinel in ready:
                self._died(k, when)

    def _pull(self, k: int, inc: _Incoming) -> bool:
        """Read what worker ``k`` has sent so far; True once the message is complete."""
        sock = self._socks[k]
        while True:
            view = memoryview(inc.head if inc.body is None else inc.body)[inc.got:]
            if inc.body is not None and not len(view):
                return True
            try:
                got = sock.recv_into(view, len(view), socket.MSG_DONTWAIT)
            except BlockingIOError:
                return False
            except OSError:
                got = 0
            if got == 0:  # closed: the worker is gone
                self._died(k, "while it computed its part of a batch")
            inc.got += got
            if inc.body is None and inc.got == _HEAD.size:
                size, inc.tag = _HEAD.unpack(inc.head)
                inc.body, inc.got = bytearray(size), 0

    def _gather(self, ks: list[int], limit: float) -> dict[int, bytearray]:
        """The results of workers ``ks``, each within ``limit`` seconds of waiting."""
        incoming = {k: _Incoming() for k in ks}
        done: dict[int, bytearray] = {}
        waited = 0.0
        while len(done) < len(ks):
            pending = [k for k in ks if k not in done]
            if waited >= limit:
                self._timed_out(pending, limit, "sent no result")
            pairs = []
            for k in pending:
                pairs += [(self._socks[k].fileno(), select.POLLIN),
                          (self._procs[k].sentinel, select.POLLIN)]
            start = time.monotonic()
            ready = _poll(pairs, min(_SLICE, limit - waited))
            waited += min(time.monotonic() - start, _SLICE)
            for k in pending:
                sock_ready = self._socks[k].fileno() in ready
                dead = self._procs[k].sentinel in ready
                if not (sock_ready or dead):
                    continue
                if self._pull(k, incoming[k]):  # (read first: a traceback before exiting)
                    inc = incoming[k]
                    if inc.tag == _ERR:
                        self._fail(f"data-parallel worker {k + 1} failed (pid "
                                   f"{self._procs[k].pid}):\n"
                                   f"{inc.body.decode(errors='replace')}")
                    done[k] = inc.body
                elif dead:
                    self._died(k, "while it computed its part of a batch")
        return done

    def forward_backward(self, idx: Any, xb: list[np.ndarray], yb: list[Any],
                         step: int | None = None
                         ) -> tuple[float, list[float], list[np.ndarray]]:
        """Fill the model's gradients for the batch ``xb = [x[idx] for x in xs]``; return
        ``(loss, losses per output, outputs)`` of the whole batch.

        ``idx`` holds the batch's positions in the training set (an index array or a slice).
        ``step``: the batch's number within the epoch, which seeds the workers' random
        streams (default: one more than the last call's, from 0 after :meth:`reseed`).
        """
        self._check_usable()
        step = self._step if step is None else int(step)
        self._step = step + 1
        m = len(xb[0])
        if isinstance(idx, slice):
            idx = np.arange(idx.start or 0, (idx.start or 0) + m)
        idx = np.asarray(idx, dtype=np.int64)
        sizes = split_sizes(m, self.processes)
        stops = np.cumsum(sizes)
        busy = [(k, int(stops[k]), int(stops[k + 1])) for k in range(len(self._socks))
                if stops[k + 1] > stops[k]]
        if busy:  # workers read the current weights, then their part of the batch
            self._publish()
        head = np.asarray([step], dtype=np.int64).tobytes()
        for k, start, stop in busy:
            self._send(k, _PART, head + idx[start:stop].tobytes(),
                       "before it received its part of a batch")
        n0 = sizes[0]
        began = time.perf_counter()
        total, parts, outs0 = self.trainer.train_step(
            [a[:n0] for a in xb], [None if t is None else t[:n0] for t in yb])
        if not busy:
            return total, parts, outs0
        self._limit = max(self.timeout, TIMEOUT_FACTOR * (time.perf_counter() - began))
        msgs = self._gather([k for k, _, _ in busy], self._limit)
        total *= n0
        parts = [p * n0 for p in parts]
        outs = [[o] for o in outs0]
        dtype = outs0[0].dtype
        scale = dtype.type(n0 / m)
        for g in self.grads:
            g *= scale
        k_out = len(outs0)
        for k, start, stop in busy:
            msg = msgs[k]
            mk = stop - start
            head = np.frombuffer(msg[: 8 * (1 + k_out)], dtype=np.float64)
            total += float(head[0]) * mk
            parts = [p + float(v) * mk for p, v in zip(parts, head[1:])]
            pos = 8 * (1 + k_out)
            for j, o in enumerate(outs0):
                size = mk * int(np.prod(o.shape[1:])) * o.itemsize
                outs[j].append(np.frombuffer(msg[pos:pos + size], dtype=o.dtype).reshape(
                    (mk,) + o.shape[1:]))
                pos += size
            weight = dtype.type(mk / m)
            for g, part in zip(self.grads, self._shared_grads[k]):
                g += part * weight
        return total / m, [p / m for p in parts], [np.concatenate(o) for o in outs]

    def reseed(self, epoch: int, base: np.ndarray | None = None) -> None:
        """Start ``epoch`` in every worker: its random streams are derived, batch by batch,
        from (rank, epoch, step, ``base``). ``fit`` passes its data-order generator's state
        at the epoch's start, which checkpoints hold — so a data-parallel run resumed
        anywhere draws the same Dropout masks. Default ``base``: this process's layer
        generators' states now."""
        from .._random import generator_state

        if base is None:
            words = [generator_state(g) for _, _, g in _generators(self.model)]
            base = np.concatenate(words) if words else np.zeros(0, np.uint64)
        body = np.asarray([epoch], dtype=np.int64).tobytes()
        body += np.ascontiguousarray(base, dtype=np.uint64).tobytes()
        self._step = 0
        self._check_usable()
        for k in range(len(self._socks)):
            self._send(k, _SEED, body, "before it received the epoch's random seeds")

    def close(self, wait: float = 5.0) -> None:
        """Stop the workers: ask them to exit (a stop message, then a closed connection),
        give them ``wait`` seconds in all, then kill those left (``SIGKILL``, and
        ``SIGCONT`` for stopped ones) and reap them."""
        socks, procs = self._socks, self._procs
        self._socks, self._procs = [], []
        for sock in socks:
            try:
                sock.send(_HEAD.pack(0, _STOP), socket.MSG_DONTWAIT)
            except OSError:
                pass
            sock.close()
        deadline = time.monotonic() + wait
        for proc in procs:
            proc.join(max(0.0, deadline - time.monotonic()))
        for proc in procs:
            if proc.exitcode is None:  # not reaped, so its pid is still its own
                for sig in (signal.SIGKILL, signal.SIGCONT):
                    try:
                        os.kill(proc.pid, sig)
                    except OSError:
                        pass
        for proc in procs:
            proc.join(5.0)

    def __enter__(self) -> DataParallel:
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self.close(wait=0.0 if exc_type is not None else 5.0)  # after an error: kill now
