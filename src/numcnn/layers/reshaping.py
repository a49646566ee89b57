"""Layers that move values without arithmetic: ``Pad2D``, ``PadChannels``, ``Reshape`` and
``Permute``.

(``Flatten`` lives beside ``Dense`` in :mod:`.core`.)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..functional.fast.workspace import memory_order
from ..functional.geometry import check_padding
from .base import LAYERS, Call, Layer
from .gauss_newton import gauss_newton_rule
from .node import Shape


@LAYERS.register("Pad2D", "ZeroPadding2D")
class Pad2D(Layer):
    """Constant padding of the two spatial axes of NCHW input.

    Args:
        padding: int ``p``, ``(ph, pw)`` or ``(top, bottom, left, right)``.
        value: the fill value (LeNet-5 pads with the background level −0.1).

    Shape:
        (N, C, H, W) → (N, C, H + top + bottom, W + left + right); the output is an NCHW
        view of batch-innermost ``(C, H, W, N)`` memory, the layout a following convolution
        computes in. Backward: ``dx`` is ``dy`` with the border cropped.

    >>> Pad2D(2, value=-0.1).output_shape((1, 28, 28))
    (1, 32, 32)
    """

    def __init__(self, padding: Any = 0, value: float = 0.0, **kwargs: Any):
        super().__init__(**kwargs)
        padding = check_padding(padding)
        if isinstance(padding, str):
            raise ValueError(f"padding must be numbers, not a mode; received padding={padding!r}")
        if isinstance(padding, int):
            padding = (padding,) * 4
        elif len(padding) == 2:
            padding = (padding[0], padding[0], padding[1], padding[1])
        self.padding: tuple[int, int, int, int] = tuple(padding)  # type: ignore[assignment]
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not np.isfinite(value):
            raise ValueError(f"value must be a finite number; received value={value!r}")
        self.value = float(value)

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            raise ValueError(
                f"{self.display_name}: expected a (C, H, W) input shape; received {input_shape}"
            )
        pt, pb, pl, pr = self.padding
        C, H, W = input_shape
        return (C, None if H is None else H + pt + pb, None if W is None else W + pl + pr)

    def fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        self.check_input(x)
        pt, pb, pl, pr = self.padding
        N, C, H, W = x.shape
        # batch-innermost (C, H, W, N) memory, the order convolutions compute in: the conv
        # after the padding then reads its input without a transposing copy
        y = call.ws.fresh_ordered((N, C, H + pt + pb, W + pl + pr), x.dtype, (1, 2, 3, 0))
        v = x.dtype.type(self.value)
        y[:, :, :pt] = v
        y[:, :, pt + H :] = v
        y[:, :, pt : pt + H, :pl] = v
        y[:, :, pt : pt + H, pl + W :] = v
        y[:, :, pt : pt + H, pl : pl + W] = x
        return y

    def crop(self, d: np.ndarray) -> np.ndarray:
        """``d`` (N, C, H', W') without the padded border, as a fresh array."""
        pt, pb, pl, pr = self.padding
        return d[:, :, pt : d.shape[2] - pb, pl : d.shape[3] - pr].copy()

    def bprop(self, dy: np.ndarray, call: Call, accumulate: bool = False) -> np.ndarray | None:
        return self.crop(dy) if call.need_dx else None

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "padding": list(self.padding), "value": self.value}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Pad2D:
        config = dict(config)
        if isinstance(config.get("padding"), list):
            config["padding"] = tuple(config["padding"])
        return cls(**config)


@gauss_newton_rule(Pad2D)
def _pad_gn(layer: Pad2D, d2y: np.ndarray, call: Call):
    """Second derivatives are cropped like first derivatives."""
    return (layer.crop(d2y) if call.need_dx else None), {}


@LAYERS.register("Reshape")
class Reshape(Layer):
    """Give each sample a new shape with the same number of values (C order, as
    ``np.reshape``); one entry may be ``-1`` (inferred).

    Args:
        target_shape: the per-sample output shape, e.g. ``(16, 5, 5)``.

    >>> Reshape((16, 5, 5)).output_shape((400,))
    (16, 5, 5)
    """

    def __init__(self, target_shape: Any, **kwargs: Any):
        super().__init__(**kwargs)
        if not isinstance(target_shape, (tuple, list)) or not target_shape or not all(
                isinstance(d, (int, np.integer)) and not isinstance(d, bool)
                and (d > 0 or d == -1) for d in target_shape) \
                or sum(d == -1 for d in target_shape) > 1:
            raise ValueError("target_shape must be a tuple of positive ints (one may be -1); "
                             f"received target_shape={target_shape!r}")
        self.target_shape = tuple(int(d) for d in target_shape)

    def output_shape(self, input_shape: Shape) -> Shape:
        if any(d is None for d in input_shape):
            if -1 in self.target_shape:
                return tuple(None if d == -1 else d for d in self.target_shape)
            return self.target_shape
        n = math.prod(input_shape)
        known = math.prod(d for d in self.target_shape if d != -1)
        if (-1 in self.target_shape and n % known) or (-1 not in self.target_shape
                                                       and n != known):
            raise ValueError(f"{self.display_name}: cannot reshape {tuple(input_shape)} "
                             f"({n} values) into {self.target_shape}")
        return tuple(n // known if d == -1 else d for d in self.target_shape)

    def fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        self.check_input(x)
        call.cache = x.shape[1:]
        return x.reshape((x.shape[0],) + self.output_shape(x.shape[1:]))

    def bprop(self, dy: np.ndarray, call: Call, accumulate: bool = False) -> np.ndarray | None:
        return dy.reshape((dy.shape[0],) + tuple(call.cache)) if call.need_dx else None

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "target_shape": list(self.target_shape)}


@gauss_newton_rule(Reshape)
def _reshape_gn(layer: Reshape, d2y: np.ndarray, call: Call):
    return layer.bprop(d2y, call), {}


@LAYERS.register("PadChannels")
class PadChannels(Layer):
    """Zero channels added before and after the existing ones: ``(N, C, …)`` →
    ``(N, before + C + after, …)``.

    The "option A" shortcut of He et al. (2016, §4.2, the CIFAR-10 ResNets): when a stage
    doubles the channels, the identity shortcut subsamples (``MaxPool2D(1, stride=2)``) and
    pads the new channels with zeros, adding no parameter.

    Args:
        before: zero channels put first. after: zero channels put last (default ``before``).

    >>> PadChannels(8).output_shape((16, 16, 16))
    (32, 16, 16)
    """

    def __init__(self, before: int, after: int | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        after = before if after is None else after
        for name, v in (("before", before), ("after", after)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"{name} must be a non-negative int; received {name}={v!r}")
        self.before, self.after = int(before), int(after)

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) < 1:
            raise ValueError(f"{self.display_name}: expected a (C, ...) input shape; "
                             f"received {input_shape}")
        C = input_shape[0]
        return (None if C is None else self.before + C + self.after,) + tuple(input_shape[1:])

    def fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        self.check_input(x)
        # laid out in memory like x (a convolution's batch-innermost output stays so: the
        # residual Add and the next convolution then read matching, contiguous memory)
        shape = (x.shape[0], self.before + x.shape[1] + self.after) + x.shape[2:]
        y = call.ws.fresh_ordered(shape, x.dtype, memory_order(x), zero=True)
        y[:, self.before: self.before + x.shape[1]] = x
        return y

    def bprop(self, dy: np.ndarray, call: Call, accumulate: bool = False) -> np.ndarray | None:
        if not call.need_dx:
            return None
        return dy[:, self.before: dy.shape[1] - self.after].copy(order="K")

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "before": self.before, "after": self.after}


@gauss_newton_rule(PadChannels)
def _pad_channels_gn(layer: PadChannels, d2y: np.ndarray, call: Call):
    return layer.bprop(d2y, call), {}


@LAYERS.register("Permute")
class Permute(Layer):
    """Reorder the axes of each sample (Keras's ``Permute``): ``dims`` numbers the
    per-sample axes from 1 (the batch axis, 0, stays first), ``y = x.transpose((0, *dims))``.

    ``Permute((2, 1))`` swaps time and features of an (N, T, F) sequence; ``Permute((2, 1,
    3))`` turns an (N, C, H, W) image into (N, H, C, W), whose rows an ``Reshape((H, -1))``
    then reads as a sequence of H steps of C·W features. PyTorch: ``x.permute(0, *dims)``.

    Args:
        dims: a permutation of ``1 … rank`` (rank = the per-sample rank).

    Shape:
        (N, d₁, …, d_k) → (N, d_{dims[0]}, …, d_{dims[k−1]}), a new contiguous array.
        Backward: ``dy`` transposed by the inverse permutation.

    >>> Permute((2, 1)).output_shape((28, 10))
    (10, 28)
    """

    def __init__(self, dims: Any, **kwargs: Any):
        super().__init__(**kwargs)
        ok = isinstance(dims, (tuple, list)) and len(dims) > 0 and all(
            isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in dims)
        if not ok or sorted(int(d) for d in dims) != list(range(1, len(dims) + 1)):
            raise ValueError(f"dims must be a permutation of 1 … rank (the batch axis 0 is not "
                             f"listed); received dims={dims!r}")
        self.dims = tuple(int(d) for d in dims)

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != len(self.dims):
            raise ValueError(f"{self.display_name}: dims={self.dims} permutes inputs of "
                             f"{len(self.dims)} axes per sample; received input shape "
                             f"{tuple(input_shape)}")
        return tuple(input_shape[d - 1] for d in self.dims)

    def fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        self.check_input(x)
        return np.ascontiguousarray(x.transpose((0,) + self.dims))

    def bprop(self, dy: np.ndarray, call: Call, accumulate: bool = False) -> np.ndarray | None:
        if not call.need_dx:
            return None
        inverse = np.argsort((0,) + self.dims)
        return np.ascontiguousarray(dy.transpose(tuple(int(a) for a in inverse)))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "dims": list(self.dims)}


@gauss_newton_rule(Permute)
def _permute_gn(layer: Permute, d2y: np.ndarray, call: Call):
    return layer.bprop(d2y, call), {}
