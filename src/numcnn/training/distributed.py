"""Data-parallel training over MPI: every rank steps its own copy of the model.

The seam is between backward and the optimizer step (Horovod's and PyTorch DDP's design).
With ``K`` ranks, a global batch of ``m`` samples — the same batch, in the same order, as
one process draws (every rank holds the data and the same data-order generator) — is cut
into ``K`` contiguous shards of ``m_r`` samples by :func:`split_sizes`
(sizes differ by at most one, the first ones larger). Rank ``r`` runs forward, loss and
backward on its shard, giving the gradient ``g_r`` of its shard's mean loss. One allreduce
over a flat float64 buffer then forms on every rank

    g = Σ_r (m_r / m) · g_r,

the gradient of the global batch's mean loss (every built-in loss is a mean over samples;
weight penalties, the same on every rank, come through unchanged since Σ_r m_r / m = 1).
The same buffer carries the batch's running sums of loss and metrics (:class:`.Sums`), so a
step costs exactly one allreduce. Every rank then takes the identical optimizer step on
the identical ``g``, so the copies stay equal without further traffic.

Other rules:

- **Start.** Rank 0's parameters, buffers and random generators are broadcast before the
  first step, so ranks built with different seeds still train one model.
- **Dropout** draws the mask of the whole global batch on every rank (the layer's
  generator advances exactly as in one process) and keeps its shard's rows, so a run
  equals one process on the global batch. No shard may be empty: ``fit`` refuses a batch
  size or dataset whose last batch has fewer samples than there are ranks.
- **BatchNorm** normalises with its shard's statistics (per replica, as DDP does): that
  changes the result. :class:`numcnn.layers.SyncBatchNorm2D` allreduces the statistics.
- **Only rank 0** prints progress, writes logs, checkpoints and the final model; the other
  ranks run every callback (learning-rate schedules, early stopping decide the same on every
  rank from the same reduced logs) with writing switched off (``callback.writes = False``).
- **Evaluation** (validation data) is sharded: rank ``r`` evaluates its contiguous part of
  the set, and the sums are allreduced.

``fit(distribute="mpi")`` chooses this backend, ``distribute=None`` chooses it when the
process was started by ``mpiexec`` with more than one rank (``PMI_SIZE``,
``OMPI_COMM_WORLD_SIZE`` or ``PMIX_SIZE`` in the environment, read without importing MPI),
and ``distribute="local:k"`` k symmetric forked processes with the same step over shared
memory (:mod:`.local_sync`). The choice is never made from the thread count:
:func:`numcnn.set_num_threads` sets BLAS threads only. ``fit(processes=k)`` is a deprecated
alias of ``distribute="local:k"``. :func:`sweep_groups` splits one MPI job into groups that
each train a run of a hyper-parameter sweep.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from .._random import generator_state, set_generator_state

_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE")


def split_sizes(m: int, parts: int) -> list[int]:
    """``parts`` sizes summing to ``m``, the first ones one larger when it does not divide."""
    q, r = divmod(m, parts)
    return [q + (k < r) for k in range(parts)]


def launched_size() -> int:
    """The number of ranks ``mpiexec`` started this process among (1 when not started by
    an MPI launcher), read from the launcher's environment variables."""
    for name in _SIZE_VARS:
        raw = os.environ.get(name, "").strip()
        if raw.isdigit():
            return int(raw)
    return 1


#: Polls of an MPI request before a waiting rank starts to sleep between polls.
SPIN = 50

#: Seconds a rank waits for the others in one collective operation before it stops every
#: rank (``NUMCNN_MPI_TIMEOUT`` overrides it).
MPI_TIMEOUT = 120.0
TIMEOUT_ENV = "NUMCNN_MPI_TIMEOUT"


def timeout() -> float:
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    try:
        value = float(raw) if raw else MPI_TIMEOUT
    except ValueError:
        value = -1.0
    if not (value > 0 and np.isfinite(value)):
        raise ValueError(f"{TIMEOUT_ENV}={raw!r}: expected a positive number of seconds")
    return value


def wait(req: Any, what: str, comm: Any) -> None:
    """Wait for the MPI request ``req``; past :func:`timeout` seconds, say so on stderr and
    abort every rank (``MPI_Abort``), so no rank waits forever on one that died."""
    for _ in range(SPIN):  # a step's allreduce takes microseconds when both ranks are there
        if req.Test():
            return
    limit = timeout()
    start = time.monotonic()
    pause = 2e-5
    while not req.Test():
        elapsed = time.monotonic() - start
        if elapsed > limit:
            fail(comm, f"waited {elapsed:.0f} s for {what}: another rank died or hangs "
                       f"(the bound is {TIMEOUT_ENV}={limit:g} s)")
        time.sleep(pause)
        pause = min(5e-4, pause * 1.5)  # then back off: few polls while the other computes


def fail(comm: Any, message: str) -> None:
    """Print ``message`` for this rank on stderr (MPI; local processes leave it for the
    parent's error) and abort every rank."""
    note = getattr(comm, "note", None)
    if note is not None:  # local processes: the parent raises it (no line of its own)
        note(message)
    else:
        print(f"numcnn: MPI rank {comm.rank} of {comm.size}: {message}; stopping every rank",
              file=sys.stderr, flush=True)
        time.sleep(0.25)  # let mpiexec forward the line before the abort tears the job down
    comm.abort(1)


@contextlib.contextmanager
def guard(sync: Any) -> Iterator[None]:
    """Around an MPI fit: an exception on one rank aborts every rank with its message
    (the others would wait for it in the next allreduce)."""
    try:
        yield
    except BaseException as e:  # noqa: B036 (a KeyboardInterrupt on one rank too)
        if sync is None:
            raise
        fail(sync.comm, f"{type(e).__name__}: {e}")
        raise


class Communicator:
    """The collective operations data-parallel training needs (the interface a backend
    implements): ``rank``, ``size``, an in-place sum over ranks of a float64 buffer, a
    broadcast from rank 0, and ``abort`` to stop every rank."""

    rank = 0
    size = 1

    def allreduce_sum(self, buf: np.ndarray) -> None:
        """Replace ``buf`` (contiguous) by the element-wise sum of every rank's ``buf``."""

    def allreduce_weighted(self, arrays: list[np.ndarray], weight: float,
                           extra: np.ndarray) -> np.ndarray:
        """Replace each array ``a`` of ``arrays`` by the sum over ranks of ``weight · a``
        (formed in float64, written back in ``a``'s dtype) and return the sum over ranks of
        ``extra`` — one allreduce of a flat float64 buffer."""
        count = sum(a.size for a in arrays)
        flat = np.empty(count + extra.size, np.float64)
        start = 0
        for a in arrays:
            np.multiply(a.ravel(), weight, out=flat[start:start + a.size])
            start += a.size
        flat[start:] = extra
        self.allreduce_sum(flat)
        start = 0
        for a in arrays:
            a[...] = flat[start:start + a.size].reshape(a.shape)
            start += a.size
        return flat[start:]

    def bcast(self, buf: np.ndarray) -> None:
        """Replace ``buf`` (contiguous) on every rank by rank 0's."""

    def abort(self, code: int = 1) -> None:
        raise SystemExit(code)


class MPIComm(Communicator):
    """:class:`Communicator` over ``mpi4py``'s ``COMM_WORLD`` (imported only here)."""

    def __init__(self, comm: Any = None) -> None:
        try:
            from mpi4py import MPI
        except ImportError as e:
            raise ImportError(
                "distribute='mpi' needs mpi4py and an MPI library: pip install "
                "'numcnn[mpi]' (mpi4py and the mpich wheel), or mpi4py over a system MPI"
            ) from e
        self.MPI = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()

    def allreduce_sum(self, buf: np.ndarray) -> None:
        """A non-blocking allreduce, waited for at most :func:`timeout` seconds: a rank
        that died or hangs stops the run with an error instead of a hang."""
        req = self.comm.Iallreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)
        wait(req, f"the allreduce of {buf.size} numbers", self)

    def bcast(self, buf: np.ndarray) -> None:
        wait(self.comm.Ibcast(buf, root=0), f"rank 0's {buf.size} numbers", self)

    def abort(self, code: int = 1) -> None:
        self.comm.Abort(code)


def resolve(distribute: Any, processes: Any = None) -> Any:
    """``fit``'s ``distribute`` (and the deprecated ``processes``) as a communicator: an
    :class:`MPIComm`, a :class:`LocalPending` (``"local:K"``, forked by ``fit``), or None
    for one process.

    ``"local:k"``: ``k`` forked local processes. ``"mpi"``: the MPI communicator.
    ``None``: MPI when started by ``mpiexec`` with more than one rank, else one process.
    ``processes=k`` (k ≥ 2) is ``distribute="local:k"`` with a ``DeprecationWarning``;
    ``processes=1`` changes nothing."""
    if processes is not None:
        if isinstance(processes, bool) or not isinstance(processes, (int, np.integer)) \
                or processes < 1:
            raise ValueError(f"processes must be a positive int or None; received "
                             f"processes={processes!r}")
        if processes > 1:
            alias = f"local:{int(processes)}"
            if distribute is not None and distribute != alias:
                raise ValueError(f"fit(processes={processes}) is distribute={alias!r}; "
                                 f"received distribute={distribute!r} as well")
            warnings.warn(f"fit(processes={processes}) is deprecated: use "
                          f"distribute={alias!r} (the same {processes} symmetric local "
                          "processes)", DeprecationWarning, stacklevel=4)
            distribute = alias
    if isinstance(distribute, Communicator):  # e.g. a group of sweep_groups
        return distribute if distribute.size > 1 else None
    if distribute is None:
        if launched_size() <= 1:
            return None
        distribute = "mpi"
    if not isinstance(distribute, str):
        raise ValueError(f"distribute must be 'mpi', 'local:K', a Communicator or None; "
                         f"received {distribute!r}")
    spec = distribute.strip().lower()
    if spec == "mpi":
        comm = MPIComm()
        return comm if comm.size > 1 else None
    if spec.startswith("local:") and spec[6:].isdigit() and int(spec[6:]) >= 1:
        k = int(spec[6:])
        return LocalPending(k) if k > 1 else None
    raise ValueError(f"distribute must be 'mpi', 'local:K' (K >= 1) or None; received "
                     f"{distribute!r}")


def sweep_groups(groups: int) -> tuple[int, MPIComm]:
    """Split an ``mpiexec`` job into ``groups`` data-parallel groups for a sweep.

    The ranks ``0 … K − 1`` of ``COMM_WORLD`` are cut into ``groups`` contiguous groups whose
    sizes differ by at most one (:func:`split_sizes`; ``mpiexec -n 4`` and 2 groups: ranks
    0–1 and 2–3) with MPI's own ``MPI_Comm_split``. Returns this rank's group index ``g`` and
    an :class:`MPIComm` over its group; ``fit(..., distribute=comm)`` then trains one
    data-parallel run per group, each equal to the same run alone (the groups never talk to
    each other), and rank 0 of each group alone prints and writes. Pick the run's
    hyper-parameters from ``g``::

        g, comm = sweep_groups(2)
        lr = [0.01, 0.05][g]
        model.fit(x, y, distribute=comm, optimizer=SGD(lr=lr))
        if comm.rank == 0:
            numcnn.save_model(model, f"lr{lr}.npz")
    """
    world = MPIComm()
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) \
            or not 1 <= groups <= world.size:
        raise ValueError(f"sweep_groups: groups must be an int from 1 to the {world.size} "
                         f"rank(s) of this job; received {groups!r}")
    bounds = np.cumsum(split_sizes(world.size, int(groups)))
    g = int(np.searchsorted(bounds, world.rank, side="right"))
    return g, MPIComm(world.comm.Split(g, world.rank))


class LocalPending:
    """``distribute="local:K"`` before ``fit`` forks (see :mod:`.local_sync`)."""

    def __init__(self, size: int):
        self.size = size


def random_layers(model: Any) -> list[Any]:
    leaves = getattr(model, "leaf_layers", None)
    layers = leaves() if leaves is not None else [model]
    return [lay for lay in layers if isinstance(getattr(lay, "rng", None), np.random.Generator)]


def broadcast_model(comm: Communicator, model: Any) -> None:
    """Give every rank rank 0's parameters, buffers and layers' random generators."""
    arrays = [lay.params[k] for _, lay, k in model.named_params()]
    arrays += [lay.buffers[k] for _, lay, k in model.named_buffers()]
    if arrays:
        flat = np.concatenate([np.asarray(a, np.float64).ravel() for a in arrays])
        comm.bcast(flat)
        start = 0
        for a in arrays:
            a[...] = flat[start:start + a.size].reshape(a.shape)
            start += a.size
    gens = random_layers(model)
    if gens:
        words = np.concatenate([generator_state(lay.rng) for lay in gens])
        comm.bcast(words)
        for j, lay in enumerate(gens):
            set_generator_state(lay.rng, words[6 * j:6 * j + 6])


def set_shard(model: Any, shard: tuple[int, int, int] | None,
              comm: Communicator | None = None) -> None:
    """Tell the random layers which rows ``(start, stop, m)`` of the global batch this
    rank computes (None: the whole batch), and the SyncBatchNorm layers also ``comm``."""
    from ..layers.sync_norm import _SyncBatchNorm

    for lay in random_layers(model):
        lay.batch_shard = shard
    leaves = getattr(model, "leaf_layers", None)
    for lay in leaves() if leaves is not None else [model]:
        if isinstance(lay, _SyncBatchNorm):
            lay.distributed = None if shard is None else (comm, *shard)


def quiet_callbacks(callbacks: list[Any]) -> None:
    """Ranks other than 0: callbacks keep running but write nothing."""
    for cb in callbacks:
        cb.writes = False


class GradientSync:
    """One rank's side of a data-parallel step: the shard of a batch, and one allreduce
    of the size-weighted gradients and the batch's sums."""

    def __init__(self, comm: Communicator, model: Any):
        self.comm = comm
        self.model = model
        self.grads = list(model.trainable_grads().values())
        self.sizes = [g.size for g in self.grads]
        self.count = sum(self.sizes)
        self.enabled = True  # tests switch the allreduce off (the negative control)
        from ..layers.sync_norm import _SyncBatchNorm

        leaves = getattr(model, "leaf_layers", None)
        self.random = random_layers(model)
        self.sync_norms = [lay for lay in (leaves() if leaves is not None else [model])
                           if isinstance(lay, _SyncBatchNorm)]
        self.pending: str | None = None  # a stop requested on this rank, not yet agreed

    def set_shard(self, shard: tuple[int, int, int] | None) -> None:
        """:func:`set_shard` with the layers found once."""
        for lay in self.random:
            lay.batch_shard = shard
        for lay in self.sync_norms:
            lay.distributed = None if shard is None else (self.comm, *shard)

    def shard(self, m: int) -> tuple[int, int]:
        sizes = split_sizes(m, self.comm.size)
        start = sum(sizes[:self.comm.rank])
        return start, start + sizes[self.comm.rank]

    def reduce(self, weight: float, sums: np.ndarray) -> np.ndarray:
        """Allreduce ``weight · (this rank's gradients)`` and ``sums``; writes the reduced
        gradients back into the layers and returns the reduced sums."""
        if self.enabled:
            return self.comm.allreduce_weighted(self.grads, weight, sums)
        for g in self.grads:  # the negative control: each rank keeps its own share
            g *= g.dtype.type(weight)
        return sums

    def reduce_sums(self, sums: np.ndarray) -> np.ndarray:
        out = np.ascontiguousarray(sums, np.float64).copy()
        self.comm.allreduce_sum(out)
        return out


# the step itself, in its own module (re-exported: ``distributed.sync_step`` etc.)
from .sync_step import (  # noqa: E402,F401
    check_batches,
    merge_sums,
    problem,
    shard_of,
    sharded_logs,
    sync_step,
)
