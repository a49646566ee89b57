"""The fit loop's helpers: callbacks, history, progress display."""

from .callbacks import (
    Callback,
    CallbackList,
    History,
    LearningRateScheduler,
    ReduceLROnPlateau,
)
from .progress import Progress, resolve_verbose

__all__ = [
    "Callback",
    "CallbackList",
    "History",
    "LearningRateScheduler",
    "Progress",
    "ReduceLROnPlateau",
    "resolve_verbose",
]
