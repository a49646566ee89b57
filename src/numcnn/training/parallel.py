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
batch indices and each part's loss and outputs travel through pipes.

Models are eligible when every layer's output for a sample depends on that sample alone
(``Layer.per_sample``; BatchNorm's batch statistics are not) and the loss declares itself a
mean over samples (``Loss.batch_mean``). Random layers (Dropout) draw, in each worker, from a
generator seeded at the start of every epoch from (worker rank, epoch, the main process's
generator state then), so runs are reproducible for a given seed and process count, resume
exactly from a checkpoint at an epoch boundary, and differ in their masks from a 1-process
run. Forking needs Linux.
"""

from __future__ import annotations

import mmap
import multiprocessing as mp
import sys
import traceback
import warnings
from typing import Any

import numpy as np

_OK, _ERR = b"K", b"E"
_SEED, _PART = b"S", b"P"  # main -> worker: an epoch's seeds, or a part's sample positions

#: ``fit(processes=None)`` splits a batch only while every process gets this many samples:
#: below it the fixed cost of a step (Python, pipes) outweighs the halved arithmetic.
MIN_PART = 32


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
            return (f"the loss {type(loss).__name__} does not declare itself a mean over "
                    "samples (Loss.batch_mean), so part gradients cannot be combined")
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


def _reseed(model: Any, rank: int, epoch: int, words: np.ndarray) -> None:
    """Give every layer's random generator in worker ``rank`` the stream of this epoch:
    seeded from (rank, epoch, the main process's generator state at the epoch's start), so
    a run resumed at an epoch boundary draws the same masks in every process."""
    words = words.reshape(-1, 6) if words.size else words
    for (layer, name, _), w in zip(_generators(model), words):
        seed = [int(rank), int(epoch), *(int(v) for v in w)]
        setattr(layer, name, np.random.default_rng(seed))


def _worker(conn: Any, trainer: Any, xs: list[np.ndarray], ys: list[Any],
            shared_params: list[np.ndarray], shared_grads: list[np.ndarray], rank: int) -> None:
    """Loop of a forked worker: receive part indices, send back losses and outputs."""
    model = trainer.model
    for (layer, key), view in zip(_trainable_slots(model), shared_params):
        layer.params[key] = view  # the main process publishes the weights here
    grads = list(model.trainable_grads().values())
    while True:
        try:
            msg = conn.recv_bytes()
        except (EOFError, OSError):
            return
        if not msg:
            return
        try:
            if msg[:1] == _SEED:  # a new epoch: its random streams
                head = np.frombuffer(msg[1:9], dtype=np.int64)
                _reseed(model, rank, int(head[0]), np.frombuffer(msg[9:], dtype=np.uint64))
                continue
            idx = np.frombuffer(msg[1:], dtype=np.int64)
            total, parts, outs = trainer.train_step(
                [np.take(a, idx, axis=0) for a in xs],
                [None if t is None else t[idx] for t in ys])
            for dst, src in zip(shared_grads, grads):
                np.copyto(dst, src)
            body = np.asarray([total, *parts], dtype=np.float64).tobytes()
            body += b"".join(np.ascontiguousarray(o).tobytes() for o in outs)
            conn.send_bytes(_OK + body)
        except BaseException:  # report everything, Ctrl-C included, then stop
            try:
                conn.send_bytes(_ERR + traceback.format_exc().encode())
            except OSError:
                pass
            return


class DataParallel:
    """Forward and backward of each batch split across ``processes`` processes.

    Use as a context manager (workers are stopped on exit, errors included)::

        with DataParallel(trainer, xs, ys, processes=2) as dp:
            loss, parts, outs = dp.forward_backward(idx, xb, yb)  # fills the model's grads
            trainer.optimizer.step(params, grads)

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
        self._conns: list[Any] = []
        self._procs: list[Any] = []
        ctx = mp.get_context("fork")
        try:
            for rank in range(1, processes):
                parent, child = ctx.Pipe()
                proc = ctx.Process(
                    target=_worker, name=f"numcnn-data-parallel-{rank}", daemon=True,
                    args=(child, trainer, xs, ys, self._shared_params,
                          self._shared_grads[rank - 1], rank))
                with warnings.catch_warnings():
                    # Python ≥ 3.12 warns on fork() in a process with threads; here those are
                    # BLAS pools (OpenBLAS shuts its pool down around fork via pthread_atfork)
                    # and the child only runs NumPy on its own copy of the model.
                    warnings.filterwarnings("ignore", message=r".*fork\(\) may lead to deadlocks",
                                            category=DeprecationWarning)
                    proc.start()
                child.close()
                self._conns.append(parent)
                self._procs.append(proc)
            self.reseed(0)  # never the main process's own stream (fit re-seeds every epoch)
        except BaseException:
            self.close()
            raise

    def _publish(self) -> None:
        for dst, src in zip(self._shared_params, self.params):
            np.copyto(dst, src)

    def _receive(self, k: int) -> bytes:
        try:
            msg = self._conns[k].recv_bytes()
        except (EOFError, OSError):
            self._procs[k].join(1.0)
            raise RuntimeError(f"data-parallel worker {k + 1} exited unexpectedly (exit code "
                               f"{self._procs[k].exitcode})") from None
        if msg[:1] == _ERR:
            raise RuntimeError(f"data-parallel worker {k + 1} failed:\n"
                               f"{msg[1:].decode(errors='replace')}")
        return msg[1:]

    def forward_backward(self, idx: Any, xb: list[np.ndarray], yb: list[Any]
                         ) -> tuple[float, list[float], list[np.ndarray]]:
        """Fill the model's gradients for the batch ``xb = [x[idx] for x in xs]``; return
        ``(loss, losses per output, outputs)`` of the whole batch.

        ``idx`` holds the batch's positions in the training set (an index array or a slice).
        """
        m = len(xb[0])
        if isinstance(idx, slice):
            idx = np.arange(idx.start or 0, (idx.start or 0) + m)
        idx = np.asarray(idx, dtype=np.int64)
        sizes = split_sizes(m, self.processes)
        stops = np.cumsum(sizes)
        busy = [(k, int(stops[k]), int(stops[k + 1])) for k in range(len(self._conns))
                if stops[k + 1] > stops[k]]
        if busy:  # workers read the current weights, then their part of the batch
            self._publish()
        for k, start, stop in busy:
            self._conns[k].send_bytes(_PART + idx[start:stop].tobytes())
        n0 = sizes[0]
        total, parts, outs0 = self.trainer.train_step(
            [a[:n0] for a in xb], [None if t is None else t[:n0] for t in yb])
        if not busy:
            return total, parts, outs0
        total *= n0
        parts = [p * n0 for p in parts]
        outs = [[o] for o in outs0]
        dtype = outs0[0].dtype
        scale = dtype.type(n0 / m)
        for g in self.grads:
            g *= scale
        k_out = len(outs0)
        for k, start, stop in busy:
            msg = self._receive(k)
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

    def reseed(self, epoch: int) -> None:
        """Start ``epoch`` in every worker with random streams derived from (rank, epoch,
        this process's generator states now), which a checkpoint at the epoch boundary
        restores — so a resumed data-parallel run draws the same Dropout masks."""
        from .._random import generator_state

        words = [generator_state(g) for _, _, g in _generators(self.model)]
        body = np.asarray([epoch], dtype=np.int64).tobytes()
        if words:
            body += np.concatenate(words).tobytes()
        for conn in self._conns:
            conn.send_bytes(_SEED + body)

    def close(self) -> None:
        """Stop the workers (they exit on an empty message or a closed pipe)."""
        for conn in self._conns:
            try:
                conn.send_bytes(b"")
            except OSError:
                pass
            conn.close()
        for proc in self._procs:
            proc.join(5.0)
            if proc.is_alive():
                proc.terminate()
                proc.join(1.0)
        self._conns, self._procs = [], []

    def __enter__(self) -> DataParallel:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
