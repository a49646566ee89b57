"""The trainer behind ``model.compile/fit/evaluate/predict``: the loops, kept out of models.

One training step: the graph runs forward on the batch with ``training=True``, each output's
loss gives its value and its gradient (times the output's ``loss_weight``), the graph runs
backward (filling every layer's ``grads``), and the optimizer takes one step over the named
trainable parameters. The dataset stays resident as arrays; batches are gathered through a
permutation into re-used buffers.

**Data order and resuming.** The training order is drawn from one generator, ``rng``, made
from ``fit``'s ``seed``: one permutation per epoch. Its state at every epoch boundary is part
of :meth:`Trainer.state_dict`, so a run restored from a checkpoint continues the same
sequence. Callbacks that draw data-dependent randomness (the curvature samples of SDLM,
augmentation) draw from this generator too, in ``on_epoch_begin``, before the epoch's
permutation. Without a restored state, ``fit(initial_epoch=k, seed=s)`` re-draws only the
first ``k`` permutations: that lands on the same order when no callback draws from the
generator; with such callbacks, resume from a saved state.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from .. import losses as losses_mod
from .. import metrics as metrics_mod
from .. import optimizers as optimizers_mod
from .._random import generator_state, set_generator_state
from ..layers.masking import compute_mask
from ..models.inference import inference_plan
from ..threads import blas_threads, get_num_threads
from . import distributed, local_sync, penalties
from .callbacks import Callback, CallbackList, History
from .data import as_inputs, batches, check_batch_size, check_targets
from .progress import Progress, resolve_verbose
from .sums import Sums


class Trainer:
    """Runs ``compile``, ``fit``, ``evaluate`` and ``predict`` for one model.

    Attributes:
        model: the model. optimizer: its optimizer. losses: one loss per output (``None``
        for an output without one). loss_weights: one weight per output. metrics: ``{name:
        function}``, computed on every output that has a loss. rng: the data-order
        generator of the current (or last) ``fit``. epoch: epochs completed.
    """

    def __init__(self, model: Any):
        self.model = model
        self.optimizer: Any = None
        self.losses: list[Any] = []
        self.loss_weights: list[float] = []
        self.metrics: dict[str, Any] = {}
        self.rng: np.random.Generator | None = None
        self.epoch = 0
        self.step = 0
        self.resuming = 0
        self.interrupted = False
        self.callbacks: list[Callback] = []
        self._stop: str | None = None
        self.sync: Any = None  # the GradientSync of an MPI fit while it runs
        self.rank = 0  # this process's MPI rank in the last fit (0 without MPI)
        self._sums: Sums | None = None
        self.last_terms: dict[str, float] = {}
        self._restored: dict[str, Any] | None = None
        self.x: list[np.ndarray] = []
        self.y: list[Any] = []

    # ----------------------------------------------------------------- compile
    def compile(self, optimizer: Any = "sgd", loss: Any = "softmax_cross_entropy",
                metrics: Iterable[Any] | None = ("accuracy",), loss_weights: Any = None) -> None:
        model = self.model
        names = model.output_names
        k = len(names)
        self.optimizer = optimizers_mod.get(optimizer)
        self.losses = self._per_output(loss, names, "loss", _loss_instance)
        if all(lo is None for lo in self.losses):
            raise ValueError("compile: no output has a loss")
        for name, lo in zip(names, self.losses):
            if getattr(lo, "reduction", "mean") == "none":
                raise ValueError(f"compile: the loss of output {name!r} has reduction='none' "
                                 "and returns one value per element; training needs a number "
                                 "— use reduction='mean' or 'sum'")
        weights = self._per_output(1.0 if loss_weights is None else loss_weights, names,
                                   "loss_weights", lambda w, first: w)
        self.loss_weights = []
        for name, w in zip(names, weights):
            w = 1.0 if w is None else w
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not np.isfinite(w) \
                    or w < 0:
                raise ValueError(f"loss_weights for {name!r} must be a number >= 0; received "
                                 f"{w!r}")
            self.loss_weights.append(float(w))
        self.metrics = {}
        for m in metrics or ():
            fn = metrics_mod.get(m)
            self.metrics[m if isinstance(m, str) else fn.__name__] = fn
        model.optimizer = self.optimizer
        model.loss = self.losses[0] if k == 1 else list(self.losses)
        model.metrics = self.metrics

    @staticmethod
    def _per_output(value: Any, names: list[str], what: str, make: Any) -> list[Any]:
        k = len(names)
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - set(names))
            if unknown:
                raise ValueError(f"compile: {what} for unknown outputs {unknown}; the model's "
                                 f"outputs: {names}")
            return [None if value.get(n) is None else make(value[n], True) for n in names]
        if isinstance(value, (list, tuple)):
            if len(value) != k:
                raise ValueError(f"compile: {what} has {len(value)} entries for {k} outputs "
                                 f"{names}")
            return [None if v is None else make(v, True) for v in value]
        return [make(value, i == 0) for i in range(k)]

    def _require_compiled(self, who: str) -> None:
        if self.optimizer is None or not self.losses:
            raise RuntimeError(f"call model.compile(optimizer=..., loss=...) before {who}()")

    # ----------------------------------------------------------------- targets
    def _targets(self, y: Any, n: int, who: str) -> list[np.ndarray | None]:
        names = self.model.output_names
        if len(names) == 1:
            return [check_targets(n, y, who)]
        if isinstance(y, Mapping):
            unknown = sorted(set(y) - set(names))
            if unknown:
                raise ValueError(f"{who}: targets for unknown outputs {unknown}; the model's "
                                 f"outputs: {names}")
            y = [y.get(name) for name in names]
        if not isinstance(y, (list, tuple)) or len(y) != len(names):
            raise ValueError(f"{who}: the model has {len(names)} outputs {names}; pass one "
                             "target array per output (a list, or a dict by output name)")
        out = []
        for name, loss, t in zip(names, self.losses, y):
            if loss is None:
                out.append(None)
            elif t is None:
                raise ValueError(f"{who}: no target for output {name!r}, which has a loss")
            else:
                out.append(check_targets(n, t, f"{who} ({name})"))
        return out

    # -------------------------------------------------------------------- step
    def losses_and_grads(self, outs: list[np.ndarray], ys: list[Any], grads: bool = True,
                         masks: list[np.ndarray | None] | None = None
                         ) -> tuple[float, list[float], list[np.ndarray | None]]:
        """Weighted total loss, each output's loss, and each output's gradient; ``masks``
        (one per output, or None) restrict an output's loss to its real steps."""
        total, parts, dys = 0.0, [], []
        masks = masks or [None] * len(outs)
        for out, y, loss, w, m in zip(outs, ys, self.losses, self.loss_weights, masks):
            if loss is None:
                parts.append(float("nan"))
                dys.append(None)
                continue
            value = loss.forward(out, y) if m is None else loss.forward(out, y, mask=m)
            parts.append(value)
            total += w * value
            if grads:
                dy = loss.backward()
                dys.append(dy if w == 1.0 else dy * dy.dtype.type(w))
        return total, parts, dys

    def run(self, xs: list[np.ndarray], training: bool, record: bool = True
            ) -> tuple[list[np.ndarray], Any, list[np.ndarray | None]]:
        """The model's outputs on a batch, the tape, and each output's padding mask (None
        for an output that carries none; see :mod:`numcnn.layers.masking`)."""
        spec = self.model.graph.output_masks
        keep = {m[0] for m in spec if m is not None}
        outs, tape, kept = self.model.run(xs, training=training, record=record,
                                          keep=keep or None)
        masks = [None if m is None else compute_mask(kept[m[0]], m[1]) for m in spec]
        return outs, tape, masks

    def train_step(self, xs: list[np.ndarray], ys: list[Any]
                   ) -> tuple[float, list[float], list[np.ndarray]]:
        """Forward, losses, backward on one batch (fills the gradients; no update). The
        outputs' masks stay in ``self.last_masks`` for the metrics.

        The total includes the model's penalties (activity penalties of the forward pass,
        weight penalties with their gradients added after the backward pass; see
        :mod:`.penalties`), each kept by name in ``self.last_terms`` for the logs."""
        model = self.model
        outs, tape, self.last_masks = self.run(xs, training=True)
        total, parts, dys = self.losses_and_grads(outs, ys, masks=self.last_masks)
        terms = penalties.activity_terms(model, tape)
        model.run_backward(tape, dys)
        penalties.weight_terms(model, grads=True, out=terms)
        self.last_terms = terms
        return total + penalties.total(terms), parts, outs

    # --------------------------------------------------------------------- fit
    def fit(self, x: Any, y: Any, batch_size: int | None = 128, epochs: int = 1,
            validation_data: tuple | None = None, shuffle: bool = True, verbose: Any = "auto",
            seed: int | None = None, callbacks: list[Callback] | None = None,
            initial_epoch: int = 0, optimizer: Any = None, loss: Any = None,
            processes: int | None = None, distribute: Any = None) -> History:
        """Train for ``epochs`` passes over ``(x, y)``.

        Args:
            x: inputs (N, *input_shape) — any numeric dtype, converted once to the model dtype;
                a list (or a dict by input name) for several inputs.
            y: targets as the loss expects them (integer labels or one-hot rows); a list (or
                a dict by output name) for several outputs.
            batch_size: samples per update; 1 is stochastic gradient descent, ``None`` the
                whole dataset (full-batch gradient descent), anything else mini-batch. An
                optimizer that ``needs_closure`` (L-BFGS) gets, at every batch, a closure
                that re-evaluates the batch's loss and gradients at the current
                parameters; the batch's logged loss and metrics are those of its first
                evaluation (where the step began, as for every other optimizer).
            epochs: index of the last epoch to run (``initial_epoch`` to resume).
            validation_data: ``(x_val, y_val)`` evaluated after each epoch (``val_*`` logs).
            shuffle: reshuffle the training order every epoch.
            verbose: 0 silent, 1 live bar, 2 one line per epoch, ``"auto"``.
            seed: seed of the data-order generator (same seed, same result).
            callbacks: extra :class:`numcnn.training.Callback` objects.
            initial_epoch: epoch to start from when resuming (see the module docstring).
            optimizer, loss: shortcuts that (re)compile the model first, keeping its metrics.
            processes: deprecated; ``processes=k`` (k ≥ 2) is ``distribute="local:k"``.
            distribute: data-parallel training, where every process steps its own copy of
                the model on its shard of each batch (see
                :mod:`numcnn.training.distributed`): ``"local:K"``, K forked local processes
                of one BLAS thread each; ``"mpi"``, every rank of ``mpiexec``; None (default):
                ``"mpi"`` when started by ``mpiexec`` with more than one rank, else one
                process, whose BLAS uses the threads :func:`numcnn.set_num_threads` set;
                or a ``Communicator`` (a group of :func:`.distributed.sweep_groups`).
                Refused with a ``ValueError`` saying why: losses that are not a mean over
                samples, masked outputs, layers mixing the samples of a batch other than
                BatchNorm (per replica) and SyncBatchNorm, closure optimizers (L-BFGS), a
                batch with fewer samples than processes.

        Returns:
            A :class:`History`: ``history.history["loss"]`` and every metric and ``val_``
            figure, one value per epoch.
        """
        model = self.model
        if optimizer is not None or loss is not None:
            self.compile(optimizer if optimizer is not None else (self.optimizer or "sgd"),
                         loss if loss is not None else (self.losses[0] if self.losses else
                                                        "softmax_cross_entropy"),
                         list(self.metrics) if self.losses else ["accuracy"],
                         self.loss_weights or None)
        self._require_compiled("fit")
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"epochs must be a non-negative int; received epochs={epochs!r}")
        if isinstance(initial_epoch, bool) or not isinstance(initial_epoch, (int, np.integer)) \
                or initial_epoch < 0:
            raise ValueError(f"initial_epoch must be a non-negative int; received "
                             f"initial_epoch={initial_epoch!r}")
        xs = as_inputs(model, x, "fit")
        n = len(xs[0])
        if n == 0:
            raise ValueError("fit: received an empty dataset")
        ys = self._targets(y, n, "fit")
        bs = check_batch_size(batch_size, n)
        val = None
        if validation_data is not None:
            if not (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
                raise ValueError("validation_data must be a tuple (x_val, y_val)")
            xv = as_inputs(model, validation_data[0], "fit(validation_data)")
            if len(xv[0]) == 0:
                raise ValueError("fit(validation_data): received an empty dataset (0 samples); "
                                 "pass validation_data=None for no validation")
            val = (xv, self._targets(validation_data[1], len(xv[0]), "fit(validation_data)"))
        threads = get_num_threads()
        comm = distributed.resolve(distribute, processes)
        if processes is not None and processes > 1:
            distribute = f"local:{processes}"
        self.sync = None
        self.rank = getattr(comm, "rank", 0)
        if comm is not None:
            why = distributed.problem(model, self.losses) or (
                "an optimizer that needs a closure (L-BFGS) is not supported"
                if getattr(self.optimizer, "needs_closure", False) else None)
            if why:
                raise ValueError(f"fit(distribute={distribute!r}): {why}")
            distributed.check_batches(n, bs, comm.size)
            distributed.timeout()  # a bad NUMCNN_MPI_TIMEOUT fails here, before any fork
            if isinstance(comm, distributed.LocalPending):  # fork the local ranks now
                why = local_sync.fork_problem()
                if why:
                    raise ValueError(f"fit(distribute={distribute!r}): {why}")
                comm = local_sync.make(comm.size, model)
                comm.start()
                self.rank = comm.rank
            self.sync = distributed.GradientSync(comm, model)
            distributed.broadcast_model(comm, model)
            if comm.rank != 0:
                verbose = 0
                distributed.quiet_callbacks(callbacks or [])
        self.x, self.y = xs, ys
        self.rng = np.random.default_rng(seed)
        self.interrupted = False
        self._stop = None
        start, resume_step = self._start(initial_epoch, shuffle, n)
        verbose = resolve_verbose(verbose) if self.sync is None or self.sync.comm.rank == 0 \
            else 0
        steps = -(-n // bs)
        history = History()
        cbs = CallbackList([*(callbacks or []), history], model,
                           params={"epochs": epochs, "steps": steps, "samples": n,
                                   "batch_size": bs, "verbose": verbose})
        self.callbacks = cbs.callbacks
        self.steps_per_epoch = steps
        progress = Progress(epochs, steps, n, verbose)
        terms = penalties.term_names(model)
        model.stop_training = False
        params, grads = model.trainable_params(), model.trainable_grads()
        sync = self.sync
        local = sync is not None and hasattr(sync.comm, "finish")
        with blas_threads(1 if local else threads), distributed.guard(sync):
            bufs = [np.empty((bs,) + a.shape[1:], dtype=a.dtype) for a in xs]
            cbs.on_train_begin()
            if self._restored is not None:  # a callback restored a checkpoint (backup)
                start, resume_step = self._start(start, shuffle, n)
                params, grads = model.trainable_params(), model.trainable_grads()
            epoch = start
            while epoch < epochs:
                self.epoch, self.step = epoch, resume_step
                self._epoch_words = generator_state(self.rng)
                self.resuming = resume_step  # callbacks may skip work already done
                cbs.on_epoch_begin(epoch)
                self.resuming = 0
                progress.epoch_begin(epoch)
                xs = self.x  # a callback may have replaced the training inputs (every rank
                #              runs the callback on the same generator: the same inputs)
                order = self.rng.permutation(n) if shuffle else None
                sums = self._sums if resume_step else Sums(model.output_names, self.losses,
                                                            self.metrics, terms)
                self._sums = sums
                for step, idx in enumerate(batches(n, bs, order)):
                    if step < resume_step:
                        continue  # done before the checkpoint this run resumed from
                    cbs.on_batch_begin(step)
                    m = len(range(n)[idx]) if order is None else len(idx)
                    if sync is not None:  # gather this rank's shard of the batch only
                        idx = distributed.shard_of(idx, m, sync)
                    if order is None:
                        xb = [a[idx] for a in xs]
                    else:
                        xb = [np.take(a, idx, axis=0, out=b[: len(idx)]) for a, b in
                              zip(xs, bufs)]
                    yb = [None if t is None else t[idx] for t in ys]
                    loss_value, logs = self._update(m, xb, yb, sums, params, grads)
                    self.step = step + 1
                    progress.batch_end(step, sums.seen, logs)
                    cbs.on_batch_end(step, logs)
                    if self._stop is not None or model.stop_training:
                        break
                    if not np.isfinite(loss_value):
                        raise FloatingPointError(
                            f"loss became {loss_value} at epoch {epoch + 1}, batch {step + 1}; "
                            "lower the learning rate")
                resume_step = 0
                if self._stop is not None and self.step < steps:
                    self.interrupted = True  # mid-epoch: the state says where to go on
                    break
                logs = sums.logs()
                if val is not None:
                    scores = self._evaluate(val[0], val[1], max(bs, 1000))
                    logs.update({f"val_{key}": value for key, value in scores.items()})
                self.epoch, self.step = epoch + 1, 0
                self._epoch_words = generator_state(self.rng)
                cbs.on_epoch_end(epoch, logs)
                progress.epoch_end(epoch, logs)
                epoch += 1
                if self._stop is not None:
                    self.interrupted = epoch < epochs
                if model.stop_training or self._stop is not None:
                    break
            cbs.on_train_end()
        if self.sync is not None and hasattr(self.sync.comm, "finish"):
            self.sync.comm.finish()  # local ranks: the children leave here
        self.sync = None
        self.history = history
        model.history = history
        return history

    def _update(self, m: int, xb: list[np.ndarray], yb: list[Any], sums: Sums,
                params: dict, grads: dict) -> tuple[float, dict[str, float]]:
        """One optimizer step on a batch of ``m`` samples: forward, backward, update; the
        batch is added to ``sums``. ``xb``, ``yb`` hold the batch, or in data-parallel
        training this process's shard of it. Returns the batch's loss and the running logs.
        A closure optimizer (``needs_closure``, L-BFGS) evaluates the batch as often as it
        needs; the logs are those of its first evaluation, where the step began."""
        if getattr(self, "sync", None) is not None:
            loss_value, logs = distributed.sync_step(self, xb, yb, m, sums, self.sync)
            self.optimizer.step(params, grads)
            return loss_value, logs

        def evaluate() -> tuple[float, list[float], list[np.ndarray], Any]:
            loss_value, parts, outs = self.train_step(xb, yb)
            return loss_value, parts, outs, self.last_masks

        if not getattr(self.optimizer, "needs_closure", False):
            loss_value, parts, outs, masks = evaluate()
            self.optimizer.step(params, grads)
            return loss_value, sums.add(m, loss_value, parts, outs, yb, masks,
                                        self.last_terms)
        first: list[tuple[float, dict[str, float]]] = []

        def closure() -> float:
            loss_value, parts, outs, masks = evaluate()
            if not first:  # (the outputs are computed now: a later evaluation reuses them)
                first.append((loss_value, sums.add(m, loss_value, parts, outs, yb, masks,
                                                   self.last_terms)))
            return loss_value

        self.optimizer.step(params, grads, closure)
        return first[0]

    def request_stop(self, reason: str = "stop requested") -> None:
        """Stop ``fit`` at the next batch boundary (a signal handler may call this); the
        trainer's state then says exactly where to continue. Over MPI the request waits for
        the next allreduce, which tells every rank, so all stop at the same batch."""
        if self.sync is not None:
            self.sync.pending = reason
        else:
            self._stop = reason

    def _start(self, initial_epoch: int, shuffle: bool, n: int) -> tuple[int, int]:
        """Where training starts, ``(epoch, step)``, with ``self.rng`` set accordingly.

        From a restored state (a loaded checkpoint) when it was saved at ``initial_epoch``
        or a callback restored it (its epoch wins, as Keras's ``BackupAndRestore``); else
        from ``initial_epoch``, the generator advanced past that many epochs'
        permutations."""
        restored, self._restored = self._restored, None
        if restored is not None and restored.get("rng") is not None and (
                restored.get("epoch") == initial_epoch or restored.get("force")):
            set_generator_state(self.rng, restored["rng"])
            step = int(restored.get("step", 0))
            if step:
                self._sums = Sums.from_state(restored["sums"], self.model.output_names,
                                              self.losses, self.metrics,
                                              penalties.term_names(self.model))
            return int(restored["epoch"]), step
        if shuffle:
            for _ in range(initial_epoch):  # the permutations of the epochs already run
                self.rng.permutation(n)
        return initial_epoch, 0

    # ---------------------------------------------------------------- evaluate
    def evaluate(self, x: Any, y: Any, batch_size: int | None = 1000) -> dict[str, float]:
        """Mean loss (weighted total), each output's loss when there are several, and the
        metrics over ``(x, y)`` in inference mode. As Keras, the loss includes the model's
        penalties (also reported by name, e.g. ``sparsity_loss``); batch-dependent ones
        (a sparsity penalty's ρ̂) are computed per evaluation batch: pass
        ``batch_size=None`` for their full-batch value."""
        self._require_compiled("evaluate")
        xs = as_inputs(self.model, x, "evaluate")
        n = len(xs[0])
        if n == 0:
            raise ValueError("evaluate: received an empty dataset")
        ys = self._targets(y, n, "evaluate")
        return self._evaluate(xs, ys, check_batch_size(batch_size, n))

    def _evaluate(self, xs: list[np.ndarray], ys: list[Any], bs: int) -> dict[str, float]:
        if getattr(self, "sync", None) is not None:
            return distributed.sharded_logs(self, xs, ys, bs, self.sync)
        return self._evaluate_sums(xs, ys, bs).logs()

    def _evaluate_sums(self, xs: list[np.ndarray], ys: list[Any], bs: int) -> Sums:
        n = len(xs[0])
        model = self.model
        sums = Sums(model.output_names, self.losses, self.metrics,
                    penalties.term_names(model))
        record = penalties.has_activity(model)  # the activity penalties are on the tape
        # the fused inference path when no tape and no padding mask is needed
        plan = None if record or any(model.graph.output_masks) else inference_plan(model)
        threads = get_num_threads()
        with blas_threads(1 if plan is not None and threads else threads):
            for idx in batches(n, bs):
                if plan is not None:
                    outs, tape, masks = [plan.predict(xs[0][idx], bs, threads)], None, [None]
                else:
                    outs, tape, masks = self.run([a[idx] for a in xs], training=False,
                                                 record=record)
                yb = [None if t is None else t[idx] for t in ys]
                total, parts, _ = self.losses_and_grads(outs, yb, grads=False, masks=masks)
                terms = penalties.activity_terms(model, tape)
                penalties.weight_terms(model, grads=False, out=terms)
                total += penalties.total(terms)
                sums.add(len(outs[0]), total, parts, outs, yb, masks, terms)
        return sums

    # ----------------------------------------------------------------- predict
    def predict(self, x: Any, batch_size: int | None = 1000) -> Any:
        """Outputs in inference mode, batch by batch: one contiguous array (N, …) per
        output (a list for several outputs)."""
        model = self.model
        xs = as_inputs(model, x, "predict")
        n = len(xs[0])
        bs = check_batch_size(batch_size, n)
        plan = inference_plan(model)  # a chain it handles: the fused inference path
        if plan is not None:
            threads = get_num_threads()  # T threads of one BLAS thread each
            with blas_threads(1 if threads else None):
                return plan.predict(xs[0], bs, threads)
        outs = [np.empty((n,) + tuple(t.shape), dtype=model.dtype)
                if all(d is not None for d in t.shape) else None for t in model.graph.outputs]
        parts: list[list[np.ndarray]] = [[] for _ in outs]
        with blas_threads(get_num_threads()):
            for idx in batches(n, bs):
                ys, _, _ = model.run([a[idx] for a in xs], training=False, record=False)
                for k, v in enumerate(ys):
                    if outs[k] is not None:
                        outs[k][idx] = v
                    else:
                        parts[k].append(np.ascontiguousarray(v))
        outs = [o if o is not None else np.concatenate(p) if p else
                np.empty((0,), model.dtype) for o, p in zip(outs, parts)]
        return outs if model._list_out else outs[0]

    # ------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, np.ndarray]:
        """Where training stands, to continue exactly: ``epoch`` and ``step`` (batches done
        in that epoch; 0 at an epoch boundary), ``rng`` (the data-order generator at the
        start of that epoch, before its callbacks drew from it) and, mid-epoch, the epoch's
        running sums of the losses and metrics (``sums``)."""
        out = {"epoch": np.asarray(self.epoch), "step": np.asarray(self.step)}
        words = getattr(self, "_epoch_words", None)
        if words is not None:
            out["rng"] = words.copy()
        if self.step:
            if self._sums is not None:
                out["sums"] = self._sums.state()
            elif self._restored is not None and self._restored.get("sums") is not None:
                out["sums"] = self._restored["sums"].copy()  # loaded, not yet resumed
        return out

    def load_state_dict(self, state: Mapping[str, np.ndarray], force: bool = False) -> None:
        """Restore :meth:`state_dict`'s output. The next ``fit`` continues from it when
        called with ``initial_epoch`` equal to the saved epoch, or — ``force=True``, what
        ``BackupAndRestore`` uses — whatever ``initial_epoch`` it is given."""
        epoch = int(np.asarray(state.get("epoch", 0)))
        step = int(np.asarray(state.get("step", 0)))
        if epoch < 0 or step < 0:
            raise ValueError(f"trainer state: epoch and step must be >= 0; received {epoch}, "
                             f"{step}")
        rng = state.get("rng")
        words = None
        if rng is not None:
            set_generator_state(np.random.default_rng(), rng)  # validates the words
            words = np.asarray(rng, dtype=np.uint64).copy()
        if step and (words is None or state.get("sums") is None):
            raise ValueError("trainer state: a mid-epoch state needs 'rng' and 'sums'")
        self.epoch, self.step, self._epoch_words = epoch, step, words
        self._restored = {"epoch": epoch, "step": step, "rng": words, "force": force,
                          "sums": None if state.get("sums") is None
                          else np.asarray(state["sums"], dtype=np.float64)}


def _loss_instance(value: Any, first: bool) -> Any:
    """A loss object; an instance given for several outputs is copied for every output
    after the first (a loss keeps the cache of its last call)."""
    loss = losses_mod.get(value)
    return loss if first or isinstance(value, (str, type)) else copy.copy(loss)
