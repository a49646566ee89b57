"""The converters of :mod:`numcnn.onnx.importer`, one module per family of operators; each
registers ``converter(ctx, node) -> values`` (and, for nodes whose inputs are all
constants, a folder) by operator name."""

from . import activations, constants, conv_pool, dense, recurrent, shapes  # noqa: F401

#: the ONNX operators numcnn imports
SUPPORTED = ("Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool", "GlobalAveragePool",
             "GlobalMaxPool", "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Sum", "Relu",
             "LeakyRelu", "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "BatchNormalization",
             "LRN", "Dropout", "Flatten", "Reshape", "Transpose", "Concat", "Squeeze",
             "Unsqueeze", "Pad", "Identity", "Constant", "ConstantOfShape", "Shape", "Gather",
             "Slice",
             "RNN", "LSTM", "GRU", "ReduceSum", "ReduceMean")
