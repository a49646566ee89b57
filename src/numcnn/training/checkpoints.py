"""Callbacks that write files while training runs: checkpoints, backups, a CSV log.

* :func:`save_training_state` / :func:`restore_training_state` — the whole state of a run
  in one ``.npz`` file (the model file format plus every callback's state): weights and
  buffers, every random generator, the optimizer, the trainer's epoch, step within the
  epoch, data-order generator and running sums, the History so far. A run restored from it
  continues bit for bit as if it had never stopped.
* :class:`BackupAndRestore` — Keras's callback of that name: saves that state every epoch
  (or every N batches) and restores it automatically at the start of ``fit``; removes its
  backup once training completes.
* :class:`ModelCheckpoint` — saves the model (optionally only the best by a monitored
  value) after every epoch or every N batches, Keras's file-name patterns included.
* :class:`CSVLogger` — one CSV row per epoch.

Every file is written to a temporary name in the same folder and renamed into place, and a
path that is a folder, a device, a FIFO or a socket is refused before training starts:
nothing is left half-written and nothing that is not ours is replaced.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..io.paths import check_output_file, remove_stale_parts
from .callbacks import Callback, _finite_logs_value, _mode

CHECKPOINT_NAME = "checkpoint.npz"


# ------------------------------------------------------------------ the state of a run
def _split_state(state: dict[str, Any], prefix: str) -> tuple[dict[str, Any], dict]:
    """JSON-able part of a callback's state, and its arrays (dicts of arrays included)
    under ``prefix``."""
    plain, arrays = {}, {}
    for key, value in state.items():
        if isinstance(value, np.ndarray):
            arrays[f"{prefix}/{key}"] = value
            plain[key] = {"__array__": f"{prefix}/{key}"}
        elif isinstance(value, dict) and value and all(
                isinstance(v, np.ndarray) for v in value.values()):
            plain[key] = {"__arrays__": sorted(value)}
            arrays.update({f"{prefix}/{key}/{k}": v for k, v in value.items()})
        else:
            plain[key] = value
    return plain, arrays


def _join_state(plain: dict[str, Any], arrays: dict[str, np.ndarray],
                prefix: str) -> dict[str, Any]:
    out = {}
    for key, value in plain.items():
        if isinstance(value, dict) and "__array__" in value:
            out[key] = arrays[value["__array__"]]
        elif isinstance(value, dict) and "__arrays__" in value:
            out[key] = {k: arrays[f"{prefix}/{key}/{k}"] for k in value["__arrays__"]}
        else:
            out[key] = value
    return out


def save_training_state(path: str | os.PathLike, model: Any,
                        run: dict[str, Any] | None = None) -> None:
    """Write everything a run needs to continue exactly to ``path`` (atomically).

    The model file format (:func:`numcnn.save_model` with the optimizer and the trainer's
    state), plus the state of every callback of the current ``fit`` (History included) and
    ``run``: JSON metadata the caller checks when resuming (the command line stores its
    arguments there).
    """
    from ..io.saving import save_model

    trainer = model.trainer
    states, arrays = [], {}
    for i, cb in enumerate(getattr(trainer, "callbacks", [])):
        plain, arr = _split_state(cb.state_dict(), f"callback/{i}")
        states.append({"class": type(cb).__name__, "state": plain})
        arrays.update(arr)
    remove_stale_parts(path)
    save_model(model, path, include_optimizer=True,
               extra={"checkpoint": {"callbacks": states, "run": run or {}}},
               arrays=arrays)


def restore_training_state(path: str | os.PathLike, model: Any,
                           callbacks: list[Callback] | None = None) -> dict[str, Any]:
    """Load a state written by :func:`save_training_state` into ``model`` (which must have
    the same architecture and be compiled with the same kind of optimizer) and into
    ``callbacks`` (the k-th callback of a class gets the k-th saved state of that class).
    The next ``fit`` of ``model`` then continues from it, whatever its ``initial_epoch``.
    Returns the stored ``run`` metadata.

    Raises:
        ValueError: the file is not a checkpoint of this model (the message says why).
    """
    from ..io.saving import load_model

    saved = load_model(path, compile=True)
    meta = _checkpoint_meta(saved, path)
    if _architecture(saved) != _architecture(model):
        raise ValueError(f"{path}: the checkpoint holds another model (its layers or shapes "
                         "differ from this one's)")
    if saved.optimizer is None or type(saved.optimizer) is not type(model.optimizer):
        raise ValueError(f"{path}: the checkpoint was trained with "
                         f"{type(saved.optimizer).__name__}; this model is compiled with "
                         f"{type(model.optimizer).__name__}")
    model.load_state_dict(saved.state_dict())
    model.optimizer.load_state_dict(saved.optimizer.state_dict())
    model.trainer.load_state_dict(saved.trainer.state_dict(), force=True)
    arrays = getattr(saved, "saved_arrays", {})
    states = meta.get("callbacks", [])
    # the k-th callback of a class gets the state of the k-th saved callback of that class
    by_class: dict[str, list[int]] = {}
    for i, entry in enumerate(states):
        by_class.setdefault(str(entry.get("class")), []).append(i)
    for cb in callbacks or []:
        slots = by_class.get(type(cb).__name__)
        if slots:
            i = slots.pop(0)
            try:
                cb.load_state_dict(_join_state(states[i]["state"], arrays, f"callback/{i}"))
            except (ValueError, TypeError, KeyError, IndexError, AttributeError,
                    OverflowError) as e:
                raise ValueError(f"{path}: damaged checkpoint: the state of callback {i} "
                                 f"({type(cb).__name__}) does not load ({e})") from None
    return dict(meta["run"])


def read_checkpoint_run(path: str | os.PathLike) -> dict[str, Any]:
    """The ``run`` metadata stored by :func:`save_training_state` (what the command line
    compares before it resumes)."""
    from ..io.saving import load_model

    saved = load_model(path, compile=False)
    return dict(_checkpoint_meta(saved, path)["run"])


def _checkpoint_meta(saved: Any, path: Any) -> dict[str, Any]:
    """The checkpoint metadata of a loaded file, its structure checked (the file is
    untrusted): ``{"callbacks": [{"class": str, "state": dict}, …], "run": dict}`` with
    ``run["settings"]``, when present, a dict."""
    meta = getattr(saved, "saved_extra", {}).get("checkpoint")
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: not a numcnn training checkpoint (no checkpoint metadata)")
    run = meta.get("run", {})
    callbacks = meta.get("callbacks", [])
    problem = None
    if not isinstance(run, dict):
        problem = f"'run' must be an object; received {type(run).__name__}"
    elif not isinstance(run.get("settings", {}), dict):
        problem = f"'run.settings' must be an object; received " \
                  f"{type(run['settings']).__name__}"
    elif not isinstance(callbacks, list):
        problem = f"'callbacks' must be a list; received {type(callbacks).__name__}"
    else:
        for i, entry in enumerate(callbacks):
            if not isinstance(entry, dict) or not isinstance(entry.get("class"), str) \
                    or not isinstance(entry.get("state", {}), dict):
                problem = (f"callback entry {i} must be an object with a 'class' name and "
                           f"a 'state' object; received {str(entry)[:80]!r}")
                break
    if problem:
        raise ValueError(f"{path}: damaged checkpoint metadata: {problem}")
    return {"run": run, "callbacks": [{"class": e["class"], "state": e.get("state", {})}
                                      for e in callbacks]}


def _architecture(model: Any) -> Any:
    """The parts of a model's config that must match for a checkpoint to fit it."""
    return [(q, tuple(lay.params[k].shape)) for q, lay, k in model.named_params()] + \
        [(q, tuple(lay.buffers[k].shape)) for q, lay, k in model.named_buffers()]


# --------------------------------------------------------------------------- backups
def _check_freq(save_freq: Any) -> Any:
    if save_freq == "epoch":
        return "epoch"
    if isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq <= 0:
        raise ValueError(f"save_freq must be 'epoch' or a positive number of batches; "
                         f"received save_freq={save_freq!r}")
    return save_freq


class BackupAndRestore(Callback):
    """Back up the whole training state, and restore it when ``fit`` starts again
    (Keras's ``BackupAndRestore``).

    At the start of ``fit``, if ``backup_dir`` holds a backup, the model, optimizer,
    trainer (epoch, step within the epoch, data order) and every callback are restored
    from it and training continues where it stopped — bit for bit as an uninterrupted run,
    whatever ``initial_epoch`` says. Then a backup is written at every epoch end (or every
    ``save_freq`` batches), atomically. When training completes the backup is removed
    (``delete_checkpoint=True``); a run stopped early (an exception, a kill, a signal)
    keeps it.

    Args:
        backup_dir: the folder (created if needed; must not be a file).
        save_freq: ``"epoch"`` or a number of batches.
        delete_checkpoint: remove the backup when training completes.
    """

    restores_state = True  # its on_train_begin runs before every other callback's

    def __init__(self, backup_dir: str | os.PathLike, save_freq: Any = "epoch",
                 delete_checkpoint: bool = True):
        self.backup_dir = Path(backup_dir)
        self.save_freq = _check_freq(save_freq)
        self.delete_checkpoint = bool(delete_checkpoint)
        self.path = self.backup_dir / CHECKPOINT_NAME
        self.run: dict[str, Any] = {}
        self.restored_run: dict[str, Any] | None = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        if self.backup_dir.exists() and not self.backup_dir.is_dir():
            raise ValueError(f"BackupAndRestore: {self.backup_dir} exists and is not a "
                             "folder")
        self.backup_dir.mkdir(parents=True, exist_ok=True)
        check_output_file(self.path, "the backup")
        if self.path.is_file():
            trainer = self.model.trainer
            self.restored_run = restore_training_state(self.path, self.model,
                                                       trainer.callbacks)

    def save(self) -> None:
        """Write the backup now (also what a signal handler calls); nothing on an MPI rank
        other than 0 (``writes`` False)."""
        if not getattr(self, "writes", True):
            return
        save_training_state(self.path, self.model, self.run)

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.save_freq != "epoch":
            trainer = self.model.trainer
            done = trainer.epoch * trainer.steps_per_epoch + trainer.step
            if done % self.save_freq == 0 and trainer.step < trainer.steps_per_epoch:
                self.save()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.save()  # every epoch end, whatever save_freq: the cheapest place to resume

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.delete_checkpoint and not self.model.trainer.interrupted \
                and getattr(self, "writes", True) and self.path.is_file():
            self.path.unlink()


class ModelCheckpoint(Callback):
    """Save the model while it trains (Keras's ``ModelCheckpoint``).

    Args:
        filepath: where to write; may hold Keras's fields, e.g.
            ``"ckpt/model-{epoch:02d}-{val_loss:.4f}.npz"`` (``epoch`` counts from 1).
        monitor: the log key for ``save_best_only``. mode: ``"auto"``, ``"min"`` or
            ``"max"``. verbose: print every save.
        save_best_only: write only when ``monitor`` improved on the best so far (always the
            same file when ``filepath`` has no fields).
        save_weights_only: write the weights without the optimizer and trainer state.
        save_freq: ``"epoch"`` or a number of batches.
        initial_value_threshold: a value ``monitor`` must beat first.
    """

    def __init__(self, filepath: str | os.PathLike, monitor: str = "val_loss",
                 verbose: int = 0, save_best_only: bool = False,
                 save_weights_only: bool = False, mode: str = "auto", save_freq: Any = "epoch",
                 initial_value_threshold: float | None = None):
        self.filepath = str(filepath)
        if not self.filepath:
            raise ValueError("ModelCheckpoint: filepath must not be empty")
        self.monitor, self.verbose = str(monitor), verbose
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        self.mode = _mode(self.monitor, mode)
        self.save_freq = _check_freq(save_freq)
        self.best = (float("inf") if self.mode == "min" else -float("inf")) \
            if initial_value_threshold is None else float(initial_value_threshold)
        self._batches = 0

    def _path(self, epoch: int, logs: dict | None) -> Path:
        try:
            return Path(self.filepath.format(epoch=epoch + 1, **(logs or {})))
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(f"ModelCheckpoint: cannot fill {self.filepath!r} from the logs "
                             f"({e}); available: epoch, {', '.join(sorted(logs or {}))}") \
                from None

    def on_train_begin(self, logs: dict | None = None) -> None:
        if "{" not in self.filepath:
            check_output_file(self.filepath, "ModelCheckpoint")

    def _save(self, epoch: int, logs: dict | None) -> None:
        from ..io.saving import save_model

        if not getattr(self, "writes", True):  # an MPI rank other than 0
            return
        if self.save_best_only:
            current = _finite_logs_value(logs, self.monitor, "ModelCheckpoint")
            if current is None:
                return
            better = current < self.best if self.mode == "min" else current > self.best
            if not better:
                return
            self.best = current
        path = self._path(epoch, logs)
        check_output_file(path, "ModelCheckpoint")
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_parts(path)
        save_model(self.model, path, include_optimizer=not self.save_weights_only)
        if self.verbose:
            print(f"Epoch {epoch + 1}: saved the model to {path}")

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.save_freq != "epoch":
            self._batches += 1
            if self._batches % self.save_freq == 0:
                self._save(self.model.trainer.epoch, logs)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.save_freq == "epoch":
            self._save(epoch, logs)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "batches": self._batches}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = float(state["best"])
        self._batches = int(state.get("batches", 0))


class CSVLogger(Callback):
    """One CSV row per epoch: ``epoch`` and every log value (Keras's ``CSVLogger``).

    Args:
        filename: the CSV file. separator: the field separator.
        append: add to an existing file (a resumed run continues it) instead of starting
            it afresh.

    Rows are written and flushed at every epoch end. Its state is the number of rows it
    wrote, so a run resumed from a checkpoint first drops rows written after that
    checkpoint (an epoch that ended after the last backup) and the file reads like one
    uninterrupted run.
    """

    def __init__(self, filename: str | os.PathLike, separator: str = ",",
                 append: bool = False):
        self.filename = Path(filename)
        if not str(filename):
            raise ValueError("CSVLogger: filename must not be empty")
        self.sep, self.append = separator, bool(append)
        self.keys: list[str] | None = None
        self.rows = 0
        self._restored: int | None = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        if not getattr(self, "writes", True):  # an MPI rank other than 0
            return
        check_output_file(self.filename, "CSVLogger")
        existing = self._read() if self.append or self._restored is not None else []
        if self._restored is not None:
            existing = existing[: self._restored + 1] if existing else []
        if existing:
            self.keys = existing[0][1:]
            self.rows = len(existing) - 1
        else:
            self.keys, self.rows = None, 0
        self._rewrite(existing)
        self._restored = None

    def _read(self) -> list[list[str]]:
        if not self.filename.is_file():
            return []
        with open(self.filename, newline="", encoding="utf-8") as f:
            return [row for row in csv.reader(f, delimiter=self.sep) if row]

    def _rewrite(self, rows: list[list[str]]) -> None:
        from ..io.saving import atomic_write

        def write(fb: Any) -> None:
            text = "".join(self.sep.join(r) + "\n" for r in rows)
            fb.write(text.encode("utf-8"))

        atomic_write(self.filename, write)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if not getattr(self, "writes", True):
            return
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            header = ["epoch", *self.keys]
            with open(self.filename, "a", encoding="utf-8") as f:
                f.write(self.sep.join(header) + "\n")
        row = [str(epoch)] + [_fmt(logs.get(k, "")) for k in self.keys]
        with open(self.filename, "a", encoding="utf-8") as f:
            f.write(self.sep.join(row) + "\n")
            f.flush()
        self.rows += 1

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._restored = int(state.get("rows", 0))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


__all__ = ["CHECKPOINT_NAME", "BackupAndRestore", "CSVLogger", "ModelCheckpoint",
           "read_checkpoint_run", "restore_training_state", "save_training_state"]
