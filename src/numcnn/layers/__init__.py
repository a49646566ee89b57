"""Layers: thin classes that own parameters and call :mod:`numcnn.functional`."""

from .activations import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .adaptive import AdaptiveAvgPool2D, AdaptiveMaxPool2D
from .base import LAYERS, Call, Layer, RandomLayer, deserialize, serialize
from .conv import Conv2D
from .core import Dense, Flatten
from .embedding import Embedding
from .input import Input, InputLayer
from .lenet import RBFOutput, ScaledTanh, Subsampling2D
from .local import LocallyConnected2D
from .merge import Add, Average, Concatenate, Multiply, Subtract
from .node import SymbolicTensor
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
from .rescaling import Rescale
from .reshaping import Pad2D, PadChannels, Permute, Reshape
from .wrappers import TimeDistributed

__all__ = [
    "LAYERS",
    "AdaptiveAvgPool2D",
    "AdaptiveMaxPool2D",
    "Add",
    "Average",
    "AvgPool2D",
    "BatchNorm1D",
    "BatchNorm2D",
    "Call",
    "Concatenate",
    "Conv2D",
    "Dense",
    "Dropout",
    "Embedding",
    "Flatten",
    "GlobalAvgPool2D",
    "GlobalMaxPool2D",
    "Input",
    "InputLayer",
    "Layer",
    "LeakyReLU",
    "LocalResponseNorm",
    "LocallyConnected2D",
    "LpPool2D",
    "MaxPool2D",
    "Multiply",
    "Pad2D",
    "PadChannels",
    "Permute",
    "RBFOutput",
    "RandomLayer",
    "ReLU",
    "Rescale",
    "Reshape",
    "ScaledTanh",
    "Sigmoid",
    "Softmax",
    "Subsampling2D",
    "Subtract",
    "SymbolicTensor",
    "Tanh",
    "TimeDistributed",
    "WeightedPool2D",
    "deserialize",
    "serialize",
]
