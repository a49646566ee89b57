"""One door to two kernel paths: the readable reference and the fast one.

Every op with a fast path is called through the functions here, which the layers use. They
run the fast path (:mod:`numcnn.functional.fast`) by default and the reference path (the
course's math in :mod:`numcnn.functional.conv`, ``pool``, ``activation``, ``recurrent``)
after ``set_kernels("reference")`` or inside ``with use_kernels("reference"):``, so a learner
can step through a whole model on the reference path in a debugger. Both give the same numbers up to
float rounding; the test suite checks every fast path against its reference.

A convolution or pooling backward pass follows the path of the forward pass that made its
cache (the cache says which), so switching paths between forward and backward is safe; the
activations' caches are plain arrays that either path's backward accepts. The choice is a
context variable, per thread and per asyncio task: the one setting of
:mod:`numcnn.functional`, which otherwise keeps nothing between calls.

>>> import numcnn
>>> with numcnn.use_kernels("reference"):
...     pass  # every layer computes on the reference path here
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import numpy as np

from . import activation as ref_act
from . import conv as ref_conv
from . import local as ref_local
from . import norm as ref_norm
from . import pool as ref_pool
from . import recurrent as ref_rec
from .fast import activation as fast_act
from .fast import conv as fast_conv
from .fast import local as fast_local
from .fast import norm as fast_norm
from .fast import pool as fast_pool
from .fast import recurrent as fast_rec
from .fast.workspace import Workspace

PATHS = ("fast", "reference")
_path: contextvars.ContextVar[str] = contextvars.ContextVar("numcnn_kernels", default="fast")


def _check(path: str) -> str:
    if path not in PATHS:
        raise ValueError(f"kernels must be one of {PATHS}; received {path!r}")
    return path


def set_kernels(path: str) -> None:
    """Run every layer on the ``"fast"`` (default) or the ``"reference"`` kernel path."""
    _path.set(_check(path))


def get_kernels() -> str:
    """The kernel path in use: ``"fast"`` or ``"reference"``."""
    return _path.get()


@contextlib.contextmanager
def use_kernels(path: str) -> Iterator[None]:
    """Within the block, every layer runs on ``path`` (``"fast"`` or ``"reference"``)."""
    token = _path.set(_check(path))
    try:
        yield
    finally:
        _path.reset(token)


def _fast() -> bool:
    return _path.get() == "fast"


# ------------------------------------------------------------------------ convolution
def conv2d_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray | None,
                   stride: tuple[int, int] = (1, 1),
                   pads: tuple[int, int, int, int] = (0, 0, 0, 0),
                   ws: Workspace | None = None, groups: int = 1,
                   relu: str | None = None) -> tuple[np.ndarray, dict]:
    """:func:`numcnn.functional.conv.conv2d_forward` or its fast version (``ws`` used by the
    fast path only); ``groups`` splits maps and kernels into that many groups. ``relu``
    (``"grad"`` or ``"forward"``) returns ``max(y, 0)``: a ReLU fused by a graph pass; with
    ``"grad"`` the backward pass expects the gradient of that and applies ``1[y > 0]``."""
    if _fast():
        return fast_conv.conv2d_forward(x, W, b, stride, pads, ws, groups, relu)
    y, cache = ref_conv.conv2d_forward(x, W, b, stride, pads, groups)
    if relu:
        y = ref_act.relu_forward(y)[0]
        cache["relu_y"] = y if relu == "grad" else None
    return y, cache


def conv2d_backward(dy: np.ndarray, cache: dict, need_dx: bool = True, need_dW: bool = True,
                    need_db: bool = True):
    """The backward pass of the path that made ``cache``: ``(dx, dW, db)``."""
    if cache["kernel"] == "fast":
        return fast_conv.conv2d_backward(dy, cache, need_dx, need_dW, need_db)
    if cache.get("relu_y") is not None:
        dy = ref_act.relu_backward(dy, cache["relu_y"])
    return ref_conv.conv2d_backward(dy, cache, need_dx, need_dW, need_db)


def locally_connected2d_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray | None,
                                stride: tuple[int, int] = (1, 1),
                                pads: tuple[int, int, int, int] = (0, 0, 0, 0),
                                ws: Workspace | None = None) -> tuple[np.ndarray, dict]:
    """:func:`numcnn.functional.local.locally_connected2d_forward` or its fast version."""
    if _fast():
        return fast_local.locally_connected2d_forward(x, W, b, stride, pads, ws)
    return ref_local.locally_connected2d_forward(x, W, b, stride, pads)


def locally_connected2d_backward(dy: np.ndarray, cache: dict, need_dx: bool = True,
                                 need_dW: bool = True, need_db: bool = True):
    """The backward pass of the path that made ``cache``: ``(dx, dW, db)``."""
    mod = fast_local if cache["kernel"] == "fast" else ref_local
    return mod.locally_connected2d_backward(dy, cache, need_dx, need_dW, need_db)


# ---------------------------------------------------------------- batch normalisation
def batch_norm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
                       running_mean: np.ndarray, running_var: np.ndarray, training: bool,
                       momentum: float = 0.1, eps: float = 1e-5,
                       ws: Workspace | None = None,
                       relu: str | None = None) -> tuple[np.ndarray, dict]:
    """:func:`numcnn.functional.norm.batch_norm_forward` or its fast version (``ws`` used
    by the fast path only). ``relu`` (``"grad"`` or ``"forward"``) returns ``max(y, 0)``:
    a ReLU fused by a graph pass; with ``"grad"`` the backward pass expects the gradient of
    that and applies ``1[y > 0]`` first."""
    if _fast():
        return fast_norm.batch_norm_forward(x, gamma, beta, running_mean, running_var,
                                            training, momentum, eps, ws, relu)
    y, cache = ref_norm.batch_norm_forward(x, gamma, beta, running_mean, running_var,
                                           training, momentum, eps)
    if relu:
        y = ref_act.relu_forward(y)[0]
        cache["relu_y"] = y if relu == "grad" else None
    return y, cache


def batch_norm_backward(dy: np.ndarray, cache: dict, need_dx: bool = True,
                        ws: Workspace | None = None):
    """The backward pass of the path that made ``cache``: ``(dx, dgamma, dbeta)``."""
    if cache.get("kernel") == "fast":
        return fast_norm.batch_norm_backward(dy, cache, need_dx, ws=ws)
    if cache.get("relu_y") is not None:
        dy = ref_act.relu_backward(dy, cache["relu_y"])
    return ref_norm.batch_norm_backward(dy, cache, need_dx)


# ---------------------------------------------------------------------------- pooling
def max_pool2d_forward(x: np.ndarray, pool: tuple[int, int], stride: tuple[int, int],
                       pads: tuple[int, int, int, int] = (0, 0, 0, 0),
                       ws: Workspace | None = None,
                       winners: bool = False, ceil_mode: bool = False
                       ) -> tuple[np.ndarray, dict]:
    """Max pooling on the current path (``ws`` and ``winners`` used by the fast path only)."""
    if _fast():
        return fast_pool.max_pool2d_forward(x, pool, stride, pads, ws, winners, ceil_mode)
    return ref_pool.max_pool2d_forward(x, pool, stride, pads, ceil_mode)


def max_pool2d_backward(dy: np.ndarray, cache: dict, relu: bool = False) -> np.ndarray:
    """The backward pass of the path that made ``cache`` (``relu``: see the kernels)."""
    mod = fast_pool if cache["kernel"] == "fast" else ref_pool
    return mod.max_pool2d_backward(dy, cache, relu)


def avg_pool2d_forward(x: np.ndarray, pool: tuple[int, int], stride: tuple[int, int],
                       pads: tuple[int, int, int, int] = (0, 0, 0, 0),
                       count_include_pad: bool = True,
                       ws: Workspace | None = None,
                       ceil_mode: bool = False) -> tuple[np.ndarray, dict]:
    """Average pooling on the current path."""
    if _fast():
        return fast_pool.avg_pool2d_forward(x, pool, stride, pads, count_include_pad, ws,
                                            ceil_mode)
    return ref_pool.avg_pool2d_forward(x, pool, stride, pads, count_include_pad, ceil_mode)


def avg_pool2d_backward(dy: np.ndarray, cache: dict) -> np.ndarray:
    """The backward pass of the path that made ``cache``."""
    mod = fast_pool if cache["kernel"] == "fast" else ref_pool
    return mod.avg_pool2d_backward(dy, cache)


def _tiles(x: np.ndarray, out_hw: tuple[int, int]) -> tuple[int, int] | None:
    """The window of an adaptive pooling whose output size divides the input's (its tiled
    windows are those of an ordinary pooling with stride = window), else None."""
    (H, W), (Ho, Wo) = x.shape[2:], out_hw
    return (H // Ho, W // Wo) if H % Ho == 0 and W % Wo == 0 else None


def adaptive_avg_pool2d_forward(x: np.ndarray, out_hw: tuple[int, int],
                                ws: Workspace | None = None) -> tuple[np.ndarray, dict]:
    """Adaptive average pooling on the current path. The fast path is the fast average
    pooling where the windows tile the input (Ho, Wo divide H, W); other sizes run the
    reference kernel (two small products) on either path."""
    k = _tiles(x, out_hw) if _fast() else None
    if k is not None:
        return fast_pool.avg_pool2d_forward(x, k, k, (0, 0, 0, 0), True, ws)
    return ref_pool.adaptive_avg_pool2d_forward(x, out_hw)


def adaptive_avg_pool2d_backward(dy: np.ndarray, cache: dict) -> np.ndarray:
    """The backward pass of the kernel that made ``cache``."""
    if cache["kernel"] == "fast":
        return fast_pool.avg_pool2d_backward(dy, cache)
    return ref_pool.adaptive_avg_pool2d_backward(dy, cache)


def adaptive_max_pool2d_forward(x: np.ndarray, out_hw: tuple[int, int],
                                ws: Workspace | None = None,
                                winners: bool = False) -> tuple[np.ndarray, dict]:
    """Adaptive max pooling on the current path: the fast max pooling where the windows
    tile the input, else the reference kernel."""
    k = _tiles(x, out_hw) if _fast() else None
    if k is not None:
        return fast_pool.max_pool2d_forward(x, k, k, (0, 0, 0, 0), ws, winners)
    return ref_pool.adaptive_max_pool2d_forward(x, out_hw)


def adaptive_max_pool2d_backward(dy: np.ndarray, cache: dict) -> np.ndarray:
    """The backward pass of the kernel that made ``cache``."""
    if cache["kernel"] == "fast":
        return fast_pool.max_pool2d_backward(dy, cache)
    return ref_pool.adaptive_max_pool2d_backward(dy, cache)


# ------------------------------------------------------------------------ activations
def relu_forward(x: np.ndarray, ws: Workspace | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``y = max(x, 0)`` on the current path; the cache is ``y``."""
    return fast_act.relu_forward(x, ws) if _fast() else ref_act.relu_forward(x)


def relu_backward(dy: np.ndarray, y: np.ndarray, ws: Workspace | None = None) -> np.ndarray:
    """``dx = dy · 1[y > 0]`` on the current path."""
    return fast_act.relu_backward(dy, y, ws) if _fast() else ref_act.relu_backward(dy, y)


def tanh_forward(x: np.ndarray, A: float = 1.0, S: float = 1.0,
                 ws: Workspace | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``y = A·tanh(S·x)`` on the current path; the cache is ``tanh(S·x)``."""
    return fast_act.tanh_forward(x, A, S, ws) if _fast() else ref_act.tanh_forward(x, A, S)


def tanh_backward(dy: np.ndarray, t: np.ndarray, A: float = 1.0, S: float = 1.0,
                  ws: Workspace | None = None) -> np.ndarray:
    """``dx = dy·A·S·(1 − t²)`` on the current path."""
    if _fast():
        return fast_act.tanh_backward(dy, t, A, S, ws)
    return ref_act.tanh_backward(dy, t, A, S)


# ------------------------------------------------------------------------- recurrent
def recurrent_forward(cell: str, x: np.ndarray, states: tuple, W_ih: np.ndarray,
                      W_hh: np.ndarray, b_ih: np.ndarray, b_hh: np.ndarray,
                      mask: np.ndarray | None = None, reverse: bool = False,
                      activation: str = "tanh", ws: Workspace | None = None,
                      training: bool = True):
    """A recurrent cell (``"rnn"``, ``"lstm"``, ``"gru"``) over a sequence on the current path:
    ``(y, final_states, cache)`` (see :func:`numcnn.functional.recurrent.recurrent_forward`;
    ``ws`` and ``training`` used by the fast path only: with ``training=False`` it keeps no
    per-step history, and a backward pass recomputes it)."""
    if _fast():
        return fast_rec.recurrent_forward(cell, x, states, W_ih, W_hh, b_ih, b_hh, mask,
                                          reverse, activation, ws, training)
    return ref_rec.recurrent_forward(cell, x, states, W_ih, W_hh, b_ih, b_hh, mask, reverse,
                                     activation)


def recurrent_backward(dy: np.ndarray | None, dstates: tuple | None, cache: dict,
                       need_dx: bool = True, need_dstates: bool = True):
    """Back-propagation through time on the path that made ``cache``:
    ``(dx, dstates0, grads)``."""
    mod = fast_rec if cache["kernel"] == "fast" else ref_rec
    return mod.recurrent_backward(dy, dstates, cache, need_dx, need_dstates)
