"""Training callbacks: hooks the fit loop calls at the start and end of epochs and batches."""

from __future__ import annotations

from typing import Any


class Callback:
    """Base class. ``self.model`` is set by ``fit`` before ``on_train_begin``.

    Hooks receive ``logs``: a dict of the current figures (``loss``, ``accuracy``, …).
    Setting ``self.model.stop_training = True`` ends training after the current epoch.
    """

    model: Any = None

    def set_model(self, model: Any) -> None:
        self.model = model

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


class CallbackList:
    """Calls a hook on every callback in order."""

    def __init__(self, callbacks: list[Callback], model: Any):
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            cb.set_model(model)

    def __getattr__(self, hook: str):
        if not hook.startswith("on_"):
            raise AttributeError(hook)

        def call(*args: Any, **kwargs: Any) -> None:
            for cb in self.callbacks:
                getattr(cb, hook)(*args, **kwargs)

        return call
