"""Training callbacks: hooks the fit loop calls at the start and end of epochs and batches."""

from __future__ import annotations

from typing import Any

import numpy as np


class Callback:
    """Base class. ``self.model`` is set by ``fit`` before ``on_train_begin``.

    Hooks receive ``logs``: a dict of the current figures (``loss``, ``accuracy``, …).
    Setting ``self.model.stop_training = True`` ends training after the current epoch.
    """

    model: Any = None
    params: dict = {}

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_params(self, params: dict) -> None:
        """Run facts from ``fit`` (Keras's convention): ``epochs``, ``steps``, ``samples``…"""
        self.params = dict(params)

    def state_dict(self) -> dict[str, Any]:
        """What this callback must keep to continue exactly after a checkpoint (numbers,
        strings, lists: JSON-friendly). Empty for stateless callbacks."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""
        if state:
            raise ValueError(f"{type(self).__name__} has no state; received {sorted(state)}")

    def on_train_begin(self, logs: dict | None = None) -> None: ...
    def on_train_end(self, logs: dict | None = None) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None: ...
    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None: ...
    def on_batch_begin(self, batch: int, logs: dict | None = None) -> None: ...
    def on_batch_end(self, batch: int, logs: dict | None = None) -> None: ...


class History(Callback):
    """Records every epoch's logs: ``history.history["loss"]`` is a list, one value per epoch.

    Attributes:
        history: dict name → list of per-epoch floats.
        epoch: list of epoch indices recorded.
    """

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": list(self.epoch), "history": {k: list(v) for k, v in
                                                       self.history.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = [int(e) for e in state.get("epoch", [])]
        self.history = {str(k): [float(v) for v in vals]
                        for k, vals in dict(state.get("history", {})).items()}


class CallbackList:
    """Calls a hook on every callback in order."""

    def __init__(self, callbacks: list[Callback], model: Any, params: dict | None = None):
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            cb.set_model(model)
            if params is not None:
                cb.set_params(params)

    def on_train_begin(self, logs: dict | None = None) -> None:
        """Callbacks that restore a saved state (``BackupAndRestore``) go first, so every
        other callback starts from the restored state."""
        first = [cb for cb in self.callbacks if getattr(cb, "restores_state", False)]
        for cb in first + [cb for cb in self.callbacks if cb not in first]:
            cb.on_train_begin(logs)

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """Callbacks that save the state (``BackupAndRestore``) go last, so what they save
        includes every other callback's update of this batch."""
        for cb in self._last_order():
            cb.on_batch_end(batch, logs)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """As :meth:`on_batch_end`: the savers see the History of this epoch too."""
        for cb in self._last_order():
            cb.on_epoch_end(epoch, logs)

    def _last_order(self) -> list[Callback]:
        savers = [cb for cb in self.callbacks if getattr(cb, "restores_state", False)]
        return [cb for cb in self.callbacks if cb not in savers] + savers

    def __getattr__(self, hook: str):
        if not hook.startswith("on_"):
            raise AttributeError(hook)

        def call(*args: Any, **kwargs: Any) -> None:
            for cb in self.callbacks:
                getattr(cb, hook)(*args, **kwargs)

        return call


class LearningRateScheduler(Callback):
    """Sets ``model.optimizer.lr = schedule(epoch)`` at the start of every epoch.

    Args:
        schedule: a :mod:`numcnn.schedules` schedule, anything
            :func:`numcnn.schedules.get` accepts (``"cosine"``,
            ``"piecewise:0=5e-4,2=2e-4"``, ``{0: 5e-4, 2: 2e-4}``), or a function
            ``f(epoch) -> lr`` or, as in Keras, ``f(epoch, lr) -> lr`` (``lr`` the current one).
        epochs: the run's number of epochs, for schedules that need it (``cosine`` without
            ``t_max``); if ``None`` it is read from ``self.params["epochs"]`` when the fit loop
            provides it (Keras convention).
        initial_lr: η₀ for relative schedules built without one. ``None``: the optimizer's
            ``lr`` when this callback first sees training begin (kept across later ``fit``
            calls, so ``initial_epoch=`` continues the same curve). Pass it when resuming from
            a checkpoint, whose optimizer ``lr`` is the last scheduled one.
        verbose: print the new rate at each epoch start.
        per_batch: also update the rate before every batch, evaluating the schedule at the
            fractional epoch ``e + b/steps`` (Keras's per-step decay: ``cosine`` then anneals
            smoothly to η_min at the end of the last batch instead of holding each epoch's
            rate). Schedules written as ``f(epoch)`` must then accept a float.

    At each epoch end the rate in use is added to the logs as ``"lr"``.

    >>> from numcnn.training.callbacks import LearningRateScheduler
    >>> cb = LearningRateScheduler("step:step_size=2,gamma=0.5")
    """

    def __init__(self, schedule: Any, epochs: int | None = None,
                 initial_lr: float | None = None, verbose: int = 0, per_batch: bool = False):
        from .. import schedules

        self.per_batch = bool(per_batch)
        self._epoch = 0
        self.schedule = schedules.get(schedule)
        if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int)
                                   or epochs <= 0):
            raise ValueError(f"epochs must be a positive int; received epochs={epochs!r}")
        self.epochs = epochs
        if initial_lr is not None and not (isinstance(initial_lr, (int, float))
                                           and 0 < initial_lr < float("inf")):
            raise ValueError(f"initial_lr must be a positive number; received "
                             f"initial_lr={initial_lr!r}")
        self.verbose = verbose
        self.initial_lr: float | None = None if initial_lr is None else float(initial_lr)
        self.params: dict = {}
        self._call = self._caller(self.schedule)

    @staticmethod
    def _caller(fn: Any):
        from ..schedules import Schedule

        if isinstance(fn, Schedule):
            return lambda epoch, eta0, current, total: fn(epoch, eta0, total)
        import inspect

        try:
            n = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                    for p in inspect.signature(fn).parameters.values())
        except (TypeError, ValueError):  # builtins without a signature
            n = 1
        if n >= 2:
            return lambda epoch, eta0, current, total: fn(epoch, current)
        return lambda epoch, eta0, current, total: fn(epoch)

    def on_train_begin(self, logs: dict | None = None) -> None:
        if self.initial_lr is None:
            self.initial_lr = float(self.model.optimizer.lr)

    def state_dict(self) -> dict[str, Any]:
        """η₀ (the rate the schedule scales) and the epoch reached; the schedule itself is a
        function of the epoch."""
        return {"initial_lr": self.initial_lr, "epoch": self._epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        lr = state.get("initial_lr")
        self.initial_lr = None if lr is None else float(lr)
        self._epoch = int(state.get("epoch", 0))

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch = epoch
        self._set_lr(epoch)

    def on_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        steps = (self.params or {}).get("steps")
        if self.per_batch and batch and steps:
            self._set_lr(self._epoch + batch / steps)

    def _set_lr(self, epoch: int | float) -> None:
        opt = self.model.optimizer
        if self.initial_lr is None:
            self.initial_lr = float(opt.lr)
        total = self.epochs if self.epochs is not None else (self.params or {}).get("epochs")
        lr = self._call(epoch, self.initial_lr, float(opt.lr), total)
        try:
            lr = float(lr)
        except (TypeError, ValueError):
            raise ValueError(f"the schedule returned {lr!r} for epoch {epoch}; expected a "
                             "number") from None
        if not (lr >= 0 and lr < float("inf")):
            raise ValueError(f"the schedule returned lr={lr!r} for epoch {epoch}; expected a "
                             "finite number >= 0")
        opt.lr = lr
        if self.verbose and not isinstance(epoch, float):
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr:.6g}.")

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["lr"] = float(self.model.optimizer.lr)


class ReduceLROnPlateau(Callback):
    """Multiplies the learning rate by ``factor`` when ``monitor`` stops improving (Keras).

    After each epoch: an improvement is ``current < best − min_delta`` (mode ``"min"``) or
    ``current > best + min_delta`` (``"max"``; ``"auto"`` picks max for accuracy-like
    names). After ``patience`` epochs without one, ``lr ← max(lr · factor, min_lr)``, then
    ``cooldown`` epochs pass before waiting starts again. The rate in use is logged as
    ``"lr"``.

    Args:
        monitor: the log key to watch (``"val_loss"``; needs ``validation_data``).
        factor: multiplier in (0, 1). patience: epochs without improvement before reducing.
        verbose: print each reduction. mode: ``"auto"``, ``"min"`` or ``"max"``.
        min_delta: the smallest change that counts as an improvement (absolute, as Keras).
        cooldown: epochs to wait after a reduction before counting again.
        min_lr: lower bound on the learning rate.
    """

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                 verbose: int = 0, mode: str = "auto", min_delta: float = 1e-4,
                 cooldown: int = 0, min_lr: float = 0.0):
        if not 0 < factor < 1:
            raise ValueError(f"factor must be in (0, 1); received factor={factor!r}")
        for name, value in (("patience", patience), ("cooldown", cooldown)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int; received "
                                 f"{name}={value!r}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max'; received mode={mode!r}")
        if not min_lr >= 0:
            raise ValueError(f"min_lr must be >= 0; received min_lr={min_lr!r}")
        if not min_delta >= 0:
            raise ValueError(f"min_delta must be >= 0; received min_delta={min_delta!r}")
        self.monitor = monitor
        self.factor = float(factor)
        self.patience = patience
        self.verbose = verbose
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        self.mode = mode
        self.min_delta = float(min_delta)
        self.cooldown = cooldown
        self.min_lr = float(min_lr)
        self._restored = False
        self._reset()

    def _reset(self) -> None:
        self.best = float("inf") if self.mode == "min" else -float("inf")
        self.wait = 0
        self.cooldown_counter = 0

    def _improved(self, current: float) -> bool:
        if self.mode == "min":
            return current < self.best - self.min_delta
        return current > self.best + self.min_delta

    def on_train_begin(self, logs: dict | None = None) -> None:
        if not self._restored:
            self._reset()
        self._restored = False

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "wait": self.wait, "cooldown_counter": self.cooldown_counter}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = float(state["best"])
        self.wait = int(state["wait"])
        self.cooldown_counter = int(state["cooldown_counter"])
        self._restored = True

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs if logs is not None else {}
        opt = self.model.optimizer
        logs["lr"] = float(opt.lr)
        current = logs.get(self.monitor)
        if current is None:
            import warnings

            warnings.warn(f"ReduceLROnPlateau: the metric {self.monitor!r} is not in the logs "
                          f"(available: {', '.join(sorted(logs))}); pass validation_data to "
                          "fit for val_* metrics", RuntimeWarning, stacklevel=2)
            return
        current = float(current)
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improved(current):
            self.best = current
            self.wait = 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience and opt.lr > self.min_lr:
                new_lr = max(opt.lr * self.factor, self.min_lr)
                opt.lr = float(new_lr)
                if self.verbose:
                    print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to "
                          f"{new_lr:.6g}.")
                self.cooldown_counter = self.cooldown
                self.wait = 0


def _mode(monitor: str, mode: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max'; received mode={mode!r}")
    if mode == "auto":
        return "max" if ("acc" in monitor or monitor.startswith("fmeasure")) else "min"
    return mode


def _finite_logs_value(logs: dict | None, monitor: str, who: str) -> float | None:
    value = (logs or {}).get(monitor)
    if value is None:
        import warnings

        warnings.warn(f"{who}: the metric {monitor!r} is not in the logs (available: "
                      f"{', '.join(sorted(logs or {}))}); pass validation_data to fit for "
                      "val_* metrics", RuntimeWarning, stacklevel=3)
        return None
    return float(value)


class EarlyStopping(Callback):
    """Stop training when ``monitor`` has stopped improving (Keras's ``EarlyStopping``).

    After each epoch (from ``start_from_epoch`` on): an improvement is
    ``current < best − min_delta`` (mode ``"min"``) or ``current > best + min_delta``
    (``"max"``; ``"auto"`` picks max for accuracy-like names). After ``patience`` epochs
    without one, ``model.stop_training`` is set. With ``baseline``, training also stops
    when the first ``patience`` epochs do not beat it. With ``restore_best_weights``, the
    weights of the best epoch are put back when training stops (or ends, once an
    improvement was seen, as Keras).

    Args:
        monitor: the log key to watch. min_delta: smallest change that counts (≥ 0).
        patience: epochs without improvement before stopping. verbose: print when stopping.
        mode: ``"auto"``, ``"min"`` or ``"max"``. baseline: a value to beat, or None.
        restore_best_weights: put back the best epoch's weights at the end.
        start_from_epoch: epochs to wait before watching at all.

    Its state (``state_dict``) holds the counters, the best value and, with
    ``restore_best_weights``, the best weights, so a checkpointed run stops where an
    uninterrupted one would.
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0,
                 verbose: int = 0, mode: str = "auto", baseline: float | None = None,
                 restore_best_weights: bool = False, start_from_epoch: int = 0):
        for name, value in (("patience", patience), ("start_from_epoch", start_from_epoch)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int; received "
                                 f"{name}={value!r}")
        if isinstance(min_delta, bool) or not isinstance(min_delta, (int, float)) \
                or not min_delta >= 0:
            raise ValueError(f"min_delta must be a number >= 0; received min_delta={min_delta!r}")
        self.monitor = str(monitor)
        self.mode = _mode(self.monitor, mode)
        self.min_delta = float(min_delta)
        self.patience, self.verbose = patience, verbose
        self.baseline = None if baseline is None else float(baseline)
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = start_from_epoch
        self._restored = False
        self._reset()

    def _reset(self) -> None:
        self.wait = 0
        self.stopped_epoch = 0
        self.best = float("inf") if self.mode == "min" else -float("inf")
        self.best_epoch = 0
        self.best_weights: dict[str, Any] | None = None

    def _improved(self, current: float, reference: float) -> bool:
        if self.mode == "min":
            return current < reference - self.min_delta
        return current > reference + self.min_delta

    def on_train_begin(self, logs: dict | None = None) -> None:
        if not self._restored:
            self._reset()
        self._restored = False

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if epoch < self.start_from_epoch:
            return
        current = _finite_logs_value(logs, self.monitor, "EarlyStopping")
        if current is None:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()  # before any improvement
        self.wait += 1
        if self._improved(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._improved(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.stopped_epoch and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)

    def state_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"wait": self.wait, "stopped_epoch": self.stopped_epoch,
                               "best": self.best, "best_epoch": self.best_epoch}
        if self.best_weights is not None:
            out["best_weights"] = {k: v.copy() for k, v in self.best_weights.items()}
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.wait = int(state["wait"])
        self.stopped_epoch = int(state["stopped_epoch"])
        self.best = float(state["best"])
        self.best_epoch = int(state["best_epoch"])
        best = state.get("best_weights")
        self.best_weights = None if best is None else {k: np.array(v) for k, v in best.items()}
        self._restored = True


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch's loss is NaN or infinite (Keras's
    ``TerminateOnNaN``), instead of the ``FloatingPointError`` ``fit`` raises otherwise."""

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(loss):
            print(f"Batch {batch}: invalid loss {loss}, terminating training")
            self.model.stop_training = True
