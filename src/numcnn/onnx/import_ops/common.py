"""What the converters share: registration, and the window attributes of convolutions and
poolings (``kernel_shape``, ``strides``, ``dilations``, ``pads``, ``auto_pad``)."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ...functional.window_nd import same_pads
from ..import_values import CONVERTERS, FOLDERS, Context, Tensor


def converter(*ops: str) -> Callable:
    """Register ``f(ctx, node) -> [values]`` as the converter of ``ops``."""
    def wrap(f: Callable) -> Callable:
        for op in ops:
            CONVERTERS[op] = f
        return f
    return wrap


def folder(*ops: str) -> Callable:
    """Register ``f(ctx, node, arrays) -> [arrays]`` for nodes whose inputs are constants."""
    def wrap(f: Callable) -> Callable:
        for op in ops:
            FOLDERS[op] = f
        return f
    return wrap


def window(ctx: Context, node: Any, x: Tensor, kernel: tuple[int, ...],
           allow_dilation: bool = True) -> tuple[tuple, tuple, tuple]:
    """``(strides, dilations, pads)`` of a window node over ``x``, ``pads`` as
    ``(begin₁ … begin_d, end₁ … end_d)`` with ``auto_pad`` resolved."""
    d = len(kernel)
    if x.rank != d + 2:
        raise ctx.fail(node, f"a {d}-d window needs an input of rank {d + 2} (N, C, spatial…); "
                             f"received rank {x.rank}")
    strides = tuple(ctx.attr(node, "strides", [1] * d, "ints"))
    dilations = tuple(ctx.attr(node, "dilations", [1] * d, "ints"))
    if len(strides) != d or len(dilations) != d or min(strides + dilations) < 1:
        raise ctx.fail(node, f"strides {strides} and dilations {dilations} must be {d} "
                             f"positive ints")
    if not allow_dilation and max(dilations) > 1:
        raise ctx.fail(node, "dilations are not supported at this opset")
    auto = ctx.attr(node, "auto_pad", "NOTSET", "str")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        spatial = x.shape[1:]
        if any(n is None for n in spatial):
            raise ctx.fail(node, f"auto_pad={auto} needs the spatial sizes; the input's are "
                                 f"{spatial}")
        pads = same_pads(spatial, kernel, strides, dilations, lower=auto == "SAME_LOWER")
    elif auto == "VALID":
        pads = (0,) * (2 * d)
    elif auto == "NOTSET":
        pads = tuple(ctx.attr(node, "pads", [0] * (2 * d), "ints"))
        if len(pads) != 2 * d or min(pads) < 0:
            raise ctx.fail(node, f"pads must be {2 * d} non-negative ints; received {pads}")
    else:
        raise ctx.fail(node, f"auto_pad={auto!r} is not one of NOTSET, SAME_UPPER, SAME_LOWER, "
                             f"VALID")
    return strides, dilations, pads


def pads_2d(pads: tuple) -> tuple[int, int, int, int]:
    """ONNX's ``(top, left, bottom, right)`` as numcnn's ``(top, bottom, left, right)``."""
    return (pads[0], pads[2], pads[1], pads[3])


def as_float(ctx: Context, node: Any, a: np.ndarray, what: str) -> np.ndarray:
    if a.dtype.kind not in "fiub":
        raise ctx.fail(node, f"{what} must be numeric; received dtype {a.dtype}")
    return a.astype(ctx.dtype)
