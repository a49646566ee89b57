"""Layers: thin classes that own parameters and call :mod:`numcnn.functional`."""

from .activations import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .adaptive import AdaptiveAvgPool2D, AdaptiveMaxPool2D
from .arithmetic import Arithmetic, MatMul
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
from .recurrent_op import RecurrentOp
from .regularization import Dropout
from .rescaling import Rescale
from .reshaping import Pad2D, PadChannels, Permute, Reshape
from .sync_norm import SyncBatchNorm1D, SyncBatchNorm2D
from .tensor_index import Gather, PadND, Slice
from .tensor_shape import Squeeze, TensorConcat, TensorReshape, Transpose, Unsqueeze
from .tensor_values import (
    AxisSoftmax,
    Constant,
    Fill,
    FullLike,
    LogSoftmax,
    Moments,
    Reduce,
    ShapeOf,
)
from .window_nd import ConvND, ConvTranspose, PoolND
from .wrappers import TimeDistributed

__all__ = [
    "LAYERS",
    "ActivityRegularization",
    "AdaptiveAvgPool2D",
    "AdaptiveMaxPool2D",
    "Add",
    "Arithmetic",
    "Average",
    "AvgPool2D",
    "AxisSoftmax",
    "Bidirectional",
    "BatchNorm1D",
    "BatchNorm2D",
    "SyncBatchNorm1D",
    "SyncBatchNorm2D",
    "Call",
    "Concatenate",
    "Constant",
    "Conv2D",
    "ConvND",
    "ConvTranspose",
    "Dense",
    "Dropout",
    "Embedding",
    "Fill",
    "Flatten",
    "FullLike",
    "Gather",
    "GRU",
    "GlobalAvgPool2D",
    "GlobalMaxPool2D",
    "Input",
    "InputLayer",
    "LogSoftmax",
    "LSTM",
    "Layer",
    "LeakyReLU",
    "LocalResponseNorm",
    "LocallyConnected2D",
    "LpPool2D",
    "Masking",
    "MatMul",
    "Moments",
    "MaxPool2D",
    "Multiply",
    "Pad2D",
    "PadChannels",
    "PadND",
    "PenaltyLayer",
    "Permute",
    "PoolND",
    "RBFOutput",
    "RandomLayer",
    "Recurrent",
    "RecurrentOp",
    "Reduce",
    "ReLU",
    "Rescale",
    "Reshape",
    "ScaledTanh",
    "ShapeOf",
    "SimpleRNN",
    "Slice",
    "Sigmoid",
    "Softmax",
    "SparsityPenalty",
    "Squeeze",
    "Subsampling2D",
    "Subtract",
    "SymbolicTensor",
    "Tanh",
    "TensorConcat",
    "TensorReshape",
    "TimeDistributed",
    "Transpose",
    "Unsqueeze",
    "WeightedPool2D",
    "deserialize",
    "serialize",
]
