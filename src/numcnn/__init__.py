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
    regularizers,
    schedules,
    training,  # installs the trainer behind Model.fit (models never import it)
)
from .functional import get_kernels, set_kernels, use_kernels
from .io.saving import load_model, save_model
from .layers import Input
from .models import Model, Sequential
from .threads import get_num_threads, set_num_threads

__version__ = "0.1.0"

#: subpackages imported on first use (``numcnn.onnx.load`` after ``import numcnn``): they
#: pull in optional extras (onnx, matplotlib, Flask) or data files only when used
_LAZY = ("benchmark", "datasets", "onnx", "serve", "utils", "viz")


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Input",
    "Model",
    "Sequential",
    "filters",
    "functional",
    "get_kernels",
    "get_num_threads",
    "initializers",
    "layers",
    "load_model",
    "losses",
    "metrics",
    "models",
    "optimizers",
    "preprocessing",
    "regularizers",
    "save_model",
    "schedules",
    "set_kernels",
    "set_num_threads",
    "training",
    "use_kernels",
]
