"""numcnn: convolutional neural networks in NumPy, every forward and backward pass explicit."""

from . import (
    filters,
    functional,
    initializers,
    layers,
    losses,
    metrics,
    models,
    optimizers,
    preprocessing,
    schedules,
)
from .io.saving import load_model, save_model
from .models import Sequential
from .threads import get_num_threads, set_num_threads

__version__ = "0.1.0"

__all__ = [
    "Sequential",
    "filters",
    "functional",
    "get_num_threads",
    "initializers",
    "layers",
    "load_model",
    "losses",
    "metrics",
    "models",
    "optimizers",
    "preprocessing",
    "save_model",
    "schedules",
    "set_num_threads",
]
