"""Training: the trainer behind ``fit``/``evaluate``/``predict``, callbacks, progress,
data-parallel steps and LeNet-5's SDLM protocol."""

from ..models.model import set_trainer_factory
from .callbacks import (
    Callback,
    CallbackList,
    History,
    LearningRateScheduler,
    ReduceLROnPlateau,
)
from .progress import Progress, resolve_verbose
from .trainer import Trainer

set_trainer_factory(Trainer)

__all__ = [
    "Callback",
    "CallbackList",
    "History",
    "LearningRateScheduler",
    "Progress",
    "ReduceLROnPlateau",
    "Trainer",
    "resolve_verbose",
]
