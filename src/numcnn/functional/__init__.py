"""Pure NumPy kernels: ``forward(...) -> (y, cache)`` and ``backward(dy, cache) -> grads``."""

from .activation import (
    leaky_relu_backward,
    leaky_relu_forward,
    log_softmax,
    relu_backward,
    relu_forward,
    sigmoid_backward,
    sigmoid_forward,
    softmax_backward,
    softmax_forward,
    tanh_backward,
    tanh_forward,
)
from .conv import (
    check_padding,
    conv2d_backward,
    conv2d_forward,
    conv_output_hw,
    output_size,
    pair,
    resolve_padding,
)
from .pool import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)
from .workspace import Workspace

__all__ = [
    "Workspace",
    "avg_pool2d_backward",
    "avg_pool2d_forward",
    "check_padding",
    "conv2d_backward",
    "conv2d_forward",
    "conv_output_hw",
    "leaky_relu_backward",
    "leaky_relu_forward",
    "log_softmax",
    "max_pool2d_backward",
    "max_pool2d_forward",
    "output_size",
    "pair",
    "relu_backward",
    "relu_forward",
    "resolve_padding",
    "sigmoid_backward",
    "sigmoid_forward",
    "softmax_backward",
    "softmax_forward",
    "tanh_backward",
    "tanh_forward",
]
