"""Layers: thin classes that own parameters and call :mod:`numcnn.functional`."""

from .activations import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .base import LAYERS, Layer, deserialize, serialize
from .conv import Conv2D
from .core import Dense, Flatten
from .lenet import Pad2D, RBFOutput, Rescale, ScaledTanh, Subsampling2D
from .norm import BatchNorm1D, BatchNorm2D, LocalResponseNorm
from .pooling import (
    AvgPool2D,
    GlobalAvgPool2D,
    GlobalMaxPool2D,
    LpPool2D,
    MaxPool2D,
    WeightedPool2D,
)
from .regularization import Dropout

__all__ = [
    "LAYERS",
    "AvgPool2D",
    "BatchNorm1D",
    "BatchNorm2D",
    "Dropout",
    "GlobalAvgPool2D",
    "GlobalMaxPool2D",
    "LocalResponseNorm",
    "LpPool2D",
    "WeightedPool2D",
    "Conv2D",
    "Dense",
    "Flatten",
    "Layer",
    "LeakyReLU",
    "MaxPool2D",
    "Pad2D",
    "RBFOutput",
    "ReLU",
    "Rescale",
    "ScaledTanh",
    "Sigmoid",
    "Softmax",
    "Subsampling2D",
    "Tanh",
    "deserialize",
    "serialize",
]
