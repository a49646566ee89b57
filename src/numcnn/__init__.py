"""numcnn: convolutional neural networks in NumPy, every forward and backward pass explicit."""

from . import functional, initializers, layers, losses, metrics, models, optimizers
from .io.saving import load_model, save_model
from .models import Sequential

__version__ = "0.1.0"

__all__ = [
    "Sequential",
    "functional",
    "initializers",
    "layers",
    "load_model",
    "losses",
    "metrics",
    "models",
    "optimizers",
    "save_model",
]
