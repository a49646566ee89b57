"""Training: the trainer behind ``fit``/``evaluate``/``predict``, callbacks, progress,
data-parallel steps and LeNet-5's SDLM protocol."""

from ..models.model import set_trainer_factory
from .callbacks import (
    Callback,
    CallbackList,
    EarlyStopping,
    History,
    LearningRateScheduler,
    ReduceLROnPlateau,
    TerminateOnNaN,
)
from .checkpoints import (
    BackupAndRestore,
    CSVLogger,
    ModelCheckpoint,
    restore_training_state,
    save_training_state,
)
from .progress import Progress, resolve_verbose
from .trainer import Trainer

set_trainer_factory(Trainer)

__all__ = [
    "BackupAndRestore",
    "CSVLogger",
    "Callback",
    "CallbackList",
    "EarlyStopping",
    "History",
    "ModelCheckpoint",
    "TerminateOnNaN",
    "LearningRateScheduler",
    "Progress",
    "ReduceLROnPlateau",
    "Trainer",
    "resolve_verbose",
    "restore_training_state",
    "save_training_state",
]
