"""Pure NumPy kernels: ``forward(...) -> (y, cache)`` and ``backward(dy, cache) -> grads``.

Two paths compute every op that has a fast version:

* the **reference** modules — :mod:`.conv`, :mod:`.pool`, :mod:`.activation`,
  :mod:`.norm`, :mod:`.recurrent` — write the course's math out (im2col, the full
  convolution with the rotated kernel, the Kronecker up-sampling of pooling, back-propagation
  through time one step at a time), short enough to read in one sitting;
* :mod:`.fast` re-orders the same arithmetic for speed (batch-innermost layouts, row
  fields, blocked im2col, kept pooling comparisons) with scratch memory from a caller-owned
  :class:`Workspace`.

The functions exported here (``conv2d_forward``, ``max_pool2d_forward``, …) go through the
dispatcher (:mod:`.dispatch`): the fast path by default, the reference path after
``set_kernels("reference")`` or inside ``use_kernels("reference")``. Geometry shared by both
(``output_size``, padding) lives in :mod:`.geometry`. Nothing here keeps state between calls.
The course's Matlab-style helpers (``up``, ``down``, ``rot180``, ``conv2_matlab``,
``conv2d_full``) live in :mod:`.course`.
"""

from .activation import (
    leaky_relu_backward,
    leaky_relu_forward,
    log_softmax,
    sigmoid_backward,
    sigmoid_forward,
    softmax_backward,
    softmax_forward,
)
from .conv import connection_mask
from .course import conv2_matlab, conv2d_full, down, rot180, up
from .dispatch import (
    adaptive_avg_pool2d_backward,
    adaptive_avg_pool2d_forward,
    adaptive_max_pool2d_backward,
    adaptive_max_pool2d_forward,
    avg_pool2d_backward,
    avg_pool2d_forward,
    conv2d_backward,
    conv2d_forward,
    get_kernels,
    locally_connected2d_backward,
    locally_connected2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
    recurrent_backward,
    recurrent_forward,
    relu_backward,
    relu_forward,
    set_kernels,
    tanh_backward,
    tanh_forward,
    use_kernels,
)
from .fast.workspace import StaleCacheError, Workspace
from .geometry import check_padding, conv_output_hw, output_size, pair, resolve_padding
from .recurrent import (
    gru_step_backward,
    gru_step_forward,
    lstm_step_backward,
    lstm_step_forward,
    rnn_step_backward,
    rnn_step_forward,
)

__all__ = [
    "StaleCacheError",
    "Workspace",
    "adaptive_avg_pool2d_backward",
    "adaptive_avg_pool2d_forward",
    "adaptive_max_pool2d_backward",
    "adaptive_max_pool2d_forward",
    "avg_pool2d_backward",
    "avg_pool2d_forward",
    "check_padding",
    "connection_mask",
    "conv2_matlab",
    "conv2d_backward",
    "conv2d_forward",
    "conv2d_full",
    "conv_output_hw",
    "down",
    "get_kernels",
    "gru_step_backward",
    "gru_step_forward",
    "leaky_relu_backward",
    "leaky_relu_forward",
    "locally_connected2d_backward",
    "locally_connected2d_forward",
    "log_softmax",
    "lstm_step_backward",
    "lstm_step_forward",
    "max_pool2d_backward",
    "max_pool2d_forward",
    "output_size",
    "pair",
    "recurrent_backward",
    "recurrent_forward",
    "relu_backward",
    "relu_forward",
    "resolve_padding",
    "rnn_step_backward",
    "rnn_step_forward",
    "rot180",
    "set_kernels",
    "sigmoid_backward",
    "sigmoid_forward",
    "softmax_backward",
    "softmax_forward",
    "tanh_backward",
    "tanh_forward",
    "up",
    "use_kernels",
]
