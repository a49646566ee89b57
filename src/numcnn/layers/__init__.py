"""Layers: thin classes that own parameters and call :mod:`numcnn.functional`."""

from .activations import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .base import LAYERS, Layer, deserialize, serialize
from .conv import Conv2D
from .core import Dense, Flatten
from .pooling import AvgPool2D, MaxPool2D

__all__ = [
    "LAYERS",
    "AvgPool2D",
    "Conv2D",
    "Dense",
    "Flatten",
    "Layer",
    "LeakyReLU",
    "MaxPool2D",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "deserialize",
    "serialize",
]
