"""Layers: thin classes that own parameters and call :mod:`numcnn.functional`."""

from .activations import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .adaptive import AdaptiveAvgPool2D, AdaptiveMaxPool2D
from .base import LAYERS, Call, Layer, RandomLayer, deserialize, serialize
from .bidirectional import Bidirectional
from .conv import Conv2D
from .core import Dense, Flatten
from .embedding import Embedding
from .input import Input, InputLayer
from .lenet import RBFOutput, ScaledTanh, Subsampling2D
from .local import LocallyConnected2D
from .masking import Masking
from .merge import Add, Average, Concatenate, Multiply, Subtract
from .node import SymbolicTensor
from .norm import BatchNorm1D, BatchNorm2D, LocalResponseNorm
from .penalty import ActivityRegularization, PenaltyLayer, SparsityPenalty
from .pooling import (
    AvgPool2D,
    GlobalAvgPool2D,
    GlobalMaxPool2D,
    LpPool2D,
    MaxPool2D,
    WeightedPool2D,
)
from .recurrent import GRU, LSTM, Recurrent, SimpleRNN
from .regularization import Dropout
from .rescaling import Rescale
from .reshaping import Pad2D, PadChannels, Permute, Reshape
from .wrappers import TimeDistributed

__all__ = [
    "LAYERS",
    "ActivityRegularization",
    "AdaptiveAvgPool2D",
    "AdaptiveMaxPool2D",
    "Add",
    "Average",
    "AvgPool2D",
    "Bidirectional",
    "BatchNorm1D",
    "BatchNorm2D",
    "Call",
    "Concatenate",
    "Conv2D",
    "Dense",
    "Dropout",
    "Embedding",
    "Flatten",
    "GRU",
    "GlobalAvgPool2D",
    "GlobalMaxPool2D",
    "Input",
    "InputLayer",
    "LSTM",
    "Layer",
    "LeakyReLU",
    "LocalResponseNorm",
    "LocallyConnected2D",
    "LpPool2D",
    "Masking",
    "MaxPool2D",
    "Multiply",
    "Pad2D",
    "PadChannels",
    "PenaltyLayer",
    "Permute",
    "RBFOutput",
    "RandomLayer",
    "Recurrent",
    "ReLU",
    "Rescale",
    "Reshape",
    "ScaledTanh",
    "SimpleRNN",
    "Sigmoid",
    "Softmax",
    "SparsityPenalty",
    "Subsampling2D",
    "Subtract",
    "SymbolicTensor",
    "Tanh",
    "TimeDistributed",
    "WeightedPool2D",
    "deserialize",
    "serialize",
]
