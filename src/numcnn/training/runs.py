"""A training run on MNIST, as ``numcnn train`` does it: data, model, optimizer, schedule,
checkpoints, signals, evaluation and the saved model.

The command line parses its arguments into a :class:`RunSpec` and calls :func:`run`; all
the work is here, so a run is as testable from Python as from a shell.

**Checkpoints.** With ``checkpoint_dir``, the whole training state (weights, buffers,
optimizer, schedule position, every random stream, data order, epoch and batch counters,
callback state, History so far) is written atomically to ``<dir>/checkpoint.npz`` at every
epoch end and every ``checkpoint_every`` batches. ``resume=True`` continues from it with
the same settings — the run's settings and a fingerprint of the data are stored with it,
and a resume whose settings disagree is refused with the differences named. A run
continued from a checkpoint ends with the same weights, bit for bit, as one never
interrupted.

**Signals.** SIGINT and SIGTERM stop training at the next batch boundary; with a checkpoint
folder the state is saved first. The run then reports where it stopped and
:attr:`RunResult.exit_status` is the conventional ``128 + signal number``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..io.inputs import default_preprocessing, mnist_digit_preprocessing
from ..io.paths import check_output_file
from ..io.saving import save_model
from .callbacks import LearningRateScheduler
from .checkpoints import CHECKPOINT_NAME, BackupAndRestore, read_checkpoint_run
from .signals import stop_on_signals

#: what a run does to MNIST's uint8 pixels before the modern models see them
PIXEL_SCALE = 1.0 / 255.0


@dataclasses.dataclass
class RunSpec:
    """The settings of one run (the command line's ``numcnn train`` arguments)."""

    model: str = "lenet5"
    dataset: str = "mnist"
    epochs: int | None = None
    batch_size: int | None = None
    augment: str = "none"
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    clipnorm: float | None = None
    clipvalue: float | None = None
    loss: str | None = None
    schedule: str | None = "cosine"
    seed: int = 0
    validation_size: int = 5000
    train_size: int | None = None
    data_dir: str | None = None
    output: str | None = None
    threads: int = 1
    verbose: Any = "auto"
    dropout: float = 0.0
    checkpoint_dir: str | None = None
    checkpoint_every: int | None = None
    resume: bool = False
    distribute: str | None = None

    @property
    def lenet1998(self) -> bool:
        return self.model.lower() in ("lenet5-1998", "lenet5_1998")

    def settings(self) -> dict[str, Any]:
        """What must not change between a run and its resumption."""
        keep = ("model", "dataset", "epochs", "batch_size", "augment", "optimizer", "lr",
                "momentum", "clipnorm", "clipvalue",
                "loss", "schedule", "seed", "validation_size", "train_size", "threads",
                "dropout")
        return {k: getattr(self, k) for k in keep}


@dataclasses.dataclass
class RunResult:
    """What :func:`run` reports."""

    model: Any
    wall: float
    epochs_done: int
    interrupted: str | None = None  # the signal's name
    exit_status: int = 0
    test: dict[str, float] = dataclasses.field(default_factory=dict)
    records: list[dict] = dataclasses.field(default_factory=list)
    where: str = ""


def fingerprint(*arrays: np.ndarray) -> str:
    """A short SHA-256 of the arrays' shapes and bytes: 'the same data' for a resume."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(repr((a.shape, a.dtype.str)).encode())
        h.update(a.data)
    return h.hexdigest()[:16]


def check_spec(spec: RunSpec) -> None:
    """Validate everything that can be checked before any data is read or anything trained:
    output paths (never a folder, a device, a FIFO or a socket), the checkpoint folder, and
    options the chosen model would ignore (an error) or cannot use."""
    if spec.output is not None:
        check_output_file(spec.output, "--output")
    if spec.checkpoint_every is not None and not spec.checkpoint_dir:
        raise ValueError("--checkpoint-every needs --checkpoint-dir")
    if spec.resume and not spec.checkpoint_dir:
        raise ValueError("--resume needs --checkpoint-dir (the folder of the run to continue)")
    if spec.schedule is not None and not str(spec.schedule).strip():
        raise ValueError("--schedule: the spec is empty; expected a schedule such as cosine, "
                         "or constant for none")
    if spec.checkpoint_dir is not None:
        folder = Path(spec.checkpoint_dir)
        if not str(spec.checkpoint_dir).strip():
            raise ValueError("--checkpoint-dir: the path is empty")
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"--checkpoint-dir: {folder} exists and is not a folder")
        path = folder / CHECKPOINT_NAME
        if spec.resume and not path.is_file():
            raise ValueError(f"--resume: no checkpoint in {folder} (expected {path})")
        if not spec.resume and path.exists():
            raise ValueError(f"--checkpoint-dir: {folder} already holds a checkpoint; pass "
                             "--resume to continue that run, or choose another folder")
        check_output_file(path, "--checkpoint-dir", create_parent=True)
    if spec.dataset not in _DATASET_NAMES:
        raise ValueError(f"unknown dataset {spec.dataset!r}; expected one of: "
                         f"{', '.join(_DATASET_NAMES)}")
    if spec.lenet1998 and spec.dataset != "mnist":
        raise ValueError(f"--model lenet5-1998 is the paper's MNIST network; received "
                         f"--dataset {spec.dataset}")
    if spec.lenet1998:
        ignored = [name for name, value, default in (
            ("--optimizer", spec.optimizer, "sgd"), ("--lr", spec.lr, 0.05),
            ("--momentum", spec.momentum, 0.9), ("--loss", spec.loss, None),
            ("--dropout", spec.dropout, 0.0), ("--clipnorm", spec.clipnorm, None),
            ("--clipvalue", spec.clipvalue, None)) if value != default]
        if spec.schedule not in ("cosine", None):
            ignored.append("--schedule")
        if ignored:
            raise ValueError(f"{', '.join(ignored)}: not used by --model lenet5-1998, which "
                             "trains with the paper's protocol (SDLM, its η schedule, the "
                             "MAP loss); drop them")
    else:
        if spec.augment != "none":
            raise ValueError(f"--augment is only supported with --model lenet5-1998; "
                             f"received --model {spec.model}")
        if spec.momentum != 0.9 and spec.optimizer.lower() not in ("sgd", "rmsprop"):
            raise ValueError(f"--momentum: not used by --optimizer {spec.optimizer} (only sgd "
                             "and rmsprop take a momentum); drop it")
        if spec.optimizer.lower() == "sdlm":
            raise ValueError("--optimizer sdlm needs curvature estimates, which only the "
                             "lenet5-1998 protocol computes; use --model lenet5-1998 or "
                             "another optimizer")


#: the zoo networks that take ``dropout=`` (the ResNets have none)
_DROPOUT = {"lenet5", "alexnet", "zfnet", "vgg11", "vgg13", "vgg16", "vgg19", "googlenet"}
_DATASET_NAMES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}


def _dataset_shape(name: str) -> tuple[int, int, int]:
    return (3, 32, 32) if name == "cifar10" else (1, 28, 28)


def make_model(spec: RunSpec) -> Any:
    """The zoo network ``spec.model`` for ``spec.dataset``'s images and 10 classes."""
    from .. import models

    name = spec.model.lower()
    shape = _dataset_shape(spec.dataset)
    kwargs: dict[str, Any] = {"seed": spec.seed}
    if spec.dropout:
        if name not in _DROPOUT:
            raise ValueError(f"--dropout: not used by --model {spec.model} (it has no "
                             "dropout layer); drop it")
        kwargs["dropout"] = spec.dropout
    if name == "lenet5":
        if shape != (1, 28, 28):
            raise ValueError(f"--model lenet5 takes 1×28×28 images; --dataset {spec.dataset} "
                             f"has {shape[0]}×{shape[1]}×{shape[2]}")
        return models.get(name, **kwargs)
    return models.get(name, input_shape=shape, num_classes=10, **kwargs)


def _load(spec: RunSpec) -> tuple:
    from .. import datasets

    (x_train, y_train), (x_test, y_test) = datasets.load(spec.dataset, data_dir=spec.data_dir)
    if spec.train_size is not None:
        x_train, y_train = x_train[: spec.train_size], y_train[: spec.train_size]
    return (x_train, y_train), (x_test, y_test)


def scale(x: np.ndarray, factor: float) -> np.ndarray:
    """uint8 images (N, H, W) or (N, C, H, W) as float32 (N, C, H, W) times ``factor``."""
    out = x.astype(np.float32)
    out *= np.float32(factor)
    return out[:, None] if out.ndim == 3 else out


def _checkpointing(spec: RunSpec, data_id: str) -> BackupAndRestore | None:
    if not spec.checkpoint_dir:
        return None
    path = Path(spec.checkpoint_dir) / CHECKPOINT_NAME
    run_meta = {"settings": spec.settings(), "data": data_id}
    if spec.resume:
        saved = read_checkpoint_run(path)
        diffs = [f"{k}: {saved.get('settings', {}).get(k)!r} in the checkpoint, {v!r} now"
                 for k, v in run_meta["settings"].items()
                 if saved.get("settings", {}).get(k) != v]
        if saved.get("data") != data_id:
            diffs.append("the training data differ (another --data-dir, --train-size or "
                         "--validation-size?)")
        if diffs:
            raise ValueError(f"--resume: the command line disagrees with the checkpoint in "
                             f"{spec.checkpoint_dir}: {'; '.join(diffs)}")
    backup = BackupAndRestore(spec.checkpoint_dir, save_freq=spec.checkpoint_every or "epoch",
                              delete_checkpoint=False)
    backup.run = run_meta
    return backup


def run(spec: RunSpec, say: Callable[[str], Any] = print) -> RunResult:
    """Train as ``numcnn train`` does and report; see the module docstring."""
    from ..threads import num_threads

    check_spec(spec)
    if spec.lenet1998:
        return _run_1998(spec, say)
    from .. import optimizers

    spec.epochs = spec.epochs or 1
    spec.batch_size = spec.batch_size or 64
    model = make_model(spec)
    kwargs: dict[str, Any] = {"lr": spec.lr}
    if spec.optimizer.lower() in ("sgd", "rmsprop"):
        kwargs["momentum"] = spec.momentum
    for key in ("clipnorm", "clipvalue"):
        if getattr(spec, key) is not None:
            kwargs[key] = getattr(spec, key)
    optimizer = optimizers.get(spec.optimizer, **kwargs)
    model.compile(optimizer=optimizer, loss=spec.loss or "softmax_cross_entropy",
                  metrics=["accuracy"])
    callbacks: list = []
    if spec.schedule:
        callbacks.append(LearningRateScheduler(spec.schedule, epochs=spec.epochs,
                                               initial_lr=spec.lr, per_batch=True))
    (x_train, y_train), (x_test, y_test) = _load(spec)
    x_train, x_test = scale(x_train, PIXEL_SCALE), scale(x_test, PIXEL_SCALE)
    val = None
    if spec.validation_size:
        if spec.validation_size >= len(x_train):
            raise ValueError(f"--validation-size must be below {len(x_train)}; received "
                             f"{spec.validation_size}")
        k = len(x_train) - spec.validation_size
        val = (x_train[k:], y_train[k:])
        x_train, y_train = x_train[:k], y_train[:k]
    backup = _checkpointing(spec, fingerprint(x_train, y_train))
    if backup is not None:
        callbacks.insert(0, backup)
    say(f"{'Resuming' if spec.resume else 'Training'} {spec.model} on {len(x_train):,} "
        f"{_DATASET_NAMES.get(spec.dataset, spec.dataset)} "
        f"images for {spec.epochs} epoch(s) (batch {spec.batch_size}, {optimizer!r}, seed "
        f"{spec.seed}, {spec.threads} thread(s))")
    t0 = time.perf_counter()
    with num_threads(spec.threads), stop_on_signals(model) as stop:
        model.fit(x_train, y_train, batch_size=spec.batch_size, epochs=spec.epochs,
                  validation_data=val, verbose=spec.verbose, seed=spec.seed,
                  callbacks=callbacks, distribute=spec.distribute)
        wall = time.perf_counter() - t0
        result = RunResult(model, wall, model.trainer.epoch)
        if _stopped(model, stop, backup, result):
            return result
        result.test = model.evaluate(x_test, y_test)
    if spec.output and _rank(model) == 0:  # over MPI only rank 0 writes the model
        extra = {"pixel_scale": PIXEL_SCALE, "epochs": spec.epochs, "dataset": spec.dataset}
        # how `numcnn predict` and `numcnn serve` make a picture this model's input
        extra["preprocessing"] = default_preprocessing(model.input_shape, extra)
        save_model(model, spec.output, extra=extra)
    return result


def _rank(model: Any) -> int:
    """0, or this process's MPI rank when the model was trained over MPI."""
    return getattr(model.trainer, "rank", 0)


def _stopped(model: Any, stop: Any, backup: BackupAndRestore | None,
             result: RunResult) -> bool:
    """After ``fit``: if a signal stopped it, save the state and fill ``result``."""
    if stop.signum is None:
        return False
    trainer = model.trainer
    result.interrupted = stop.name
    result.exit_status = stop.exit_status
    result.where = (f"at epoch {trainer.epoch + 1}, batch {trainer.step}" if trainer.step
                    else f"after epoch {trainer.epoch}")
    if backup is not None:
        backup.save()
    return True


def _run_1998(spec: RunSpec, say: Callable[[str], Any]) -> RunResult:
    """The paper's protocol: SDLM, the η schedule, one pattern per update."""
    from .. import models
    from ..threads import num_threads
    from .sdlm import train_lenet5_1998

    spec.epochs = spec.epochs or 20
    spec.batch_size = spec.batch_size or 1
    model = models.get("lenet5-1998", seed=spec.seed)
    (x_train, y_train), (x_test, y_test) = _load(spec)
    backup = _checkpointing(spec, fingerprint(x_train, y_train))
    say(f"{'Resuming' if spec.resume else 'Training'} lenet5-1998 on {len(x_train):,} MNIST "
        f"images for {spec.epochs} pass(es) (SDLM, batch {spec.batch_size}, augment "
        f"{spec.augment}, seed {spec.seed})")
    t0 = time.perf_counter()
    with num_threads(spec.threads), stop_on_signals(model) as stop:
        records = train_lenet5_1998(
            model, x_train, y_train, x_test, y_test, passes=spec.epochs,
            batch_size=spec.batch_size, augment=None if spec.augment == "none" else
            spec.augment, seed=spec.seed, verbose=spec.verbose != 0,
            callbacks=[backup] if backup is not None else None)
        result = RunResult(model, time.perf_counter() - t0, model.trainer.epoch,
                           records=records)
        if _stopped(model, stop, backup, result):
            return result
    err = records[-1]["test_error"] if records else float("nan")
    result.test = {"error": err, "accuracy": 1 - err}
    if spec.output:
        save_model(model, spec.output, extra={
            "pixel_scale": 1.0, "epochs": spec.epochs, "dataset": "mnist", "output": "rbf",
            "preprocessing": mnist_digit_preprocessing(1.0)})  # the model scales inside
    return result


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
