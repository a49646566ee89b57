"""Pooling layers over :mod:`numcnn.functional.pool`."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..functional import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)
from ..functional.geometry import (
    check_padding,
    conv_output_hw,
    from_tf_padding,
    pair,
    resolve_padding,
)
from ..functional.pool import (
    gaussian_pool_weights,
    global_avg_pool2d_backward,
    global_avg_pool2d_forward,
    global_max_pool2d_backward,
    global_max_pool2d_forward,
    lp_pool2d_backward,
    lp_pool2d_forward,
    weighted_pool2d_backward,
    weighted_pool2d_forward,
)
from .base import LAYERS, Call, Layer
from .conv import _spatial_out
from .data_format import DataFormat
from .node import Shape


def check_flag(value: Any, what: str) -> bool:
    """A constructor's True/False argument, refused when it is anything else."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{what} must be True or False; received {what}={value!r}")
    return bool(value)


class _Pool2D(DataFormat, Layer):
    """Shared arguments of the window pooling layers.

    Args:
        pool_size: int or (kh, kw).
        stride: int or (sh, sw); defaults to ``pool_size`` (non-overlapping windows).
        padding: an int, ``(ph, pw)``, ``(top, bottom, left, right)``, ``"valid"``, ``"same"``
            or TensorFlow's ``[[0, 0], [t, b], [l, r], [0, 0]]`` (channels last).
        data_format: ``"channels_first"`` (NCHW, default) or ``"channels_last"`` (NHWC):
            arrays and shapes in that layout, transposed to NCHW at the layer's boundary
            (:mod:`numcnn.layers.data_format`).

    Subclasses write ``_fprop`` and ``_bprop`` on NCHW arrays.
    """

    #: round the output size up (MaxPool2D and AvgPool2D take it as an argument)
    ceil_mode = False

    def __init__(self, pool_size: Any = 2, stride: Any = None, padding: Any = 0,
                 data_format: str = "channels_first", **kwargs: Any):
        super().__init__(**kwargs)
        self._set_data_format(data_format)
        self.pool_size = pair(pool_size, "pool_size")
        self.stride = self.pool_size if stride is None else pair(stride, "stride")
        self.padding = check_padding(from_tf_padding(padding, self.data_format))

    def fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        self.check_input(x)
        return self._from_nchw(self._fprop(self._to_nchw(x), call))

    def bprop(self, dy: np.ndarray, call: Call, accumulate: bool = False) -> np.ndarray | None:
        return self._from_nchw(self._bprop(self._to_nchw(dy), call))

    def _fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        raise NotImplementedError

    def _bprop(self, dy: np.ndarray, call: Call) -> np.ndarray | None:
        raise NotImplementedError

    @property
    def kernel_size(self) -> tuple[int, int]:
        return self.pool_size

    @property
    def pads(self) -> tuple[int, int, int, int]:
        """Explicit ``(top, bottom, left, right)`` padding for the built input size."""
        return self._pads(tuple(self._chw(self.input_shape)[1:3]))

    def _pads(self, hw: tuple[int, int]) -> tuple[int, int, int, int]:
        cache = self.__dict__.setdefault("_pads_of", {})
        if hw in cache:
            return cache[hw]
        pads = resolve_padding(self.padding, self.pool_size, self.stride, hw)
        kh, kw = self.pool_size
        if max(pads[0], pads[1]) > kh // 2 or max(pads[2], pads[3]) > kw // 2:
            raise ValueError(
                f"{self.display_name}: padding must be at most half the pool size "
                f"{self.pool_size}; received padding={self.padding!r}"
            )
        cache[hw] = pads
        return pads

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            what = "(H, W, C)" if self.channels_last else "(C, H, W)"
            raise ValueError(
                f"{self.display_name}: expected a {what} input shape; received {input_shape}"
            )
        input_shape = self._chw(input_shape)
        hw = tuple(input_shape[1:3])
        if not self.ceil_mode or None in hw:  # ceil_mode changes no free ('same') size
            return self._own((input_shape[0],) + _spatial_out(self, hw))
        try:
            out = conv_output_hw(hw, self.pool_size, self.stride, self._pads(hw), True)
        except ValueError as e:
            raise ValueError(f"{self.display_name}: input {hw} is too small: {e}") from None
        return self._own((input_shape[0],) + out)

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update(
            pool_size=list(self.pool_size),
            stride=list(self.stride),
            padding=self.padding if isinstance(self.padding, (str, int)) else list(self.padding),
        )
        return self._data_format_config(cfg)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        config = dict(config)
        for key in ("pool_size", "stride", "padding"):
            if isinstance(config.get(key), list):
                config[key] = tuple(config[key])
        return cls(**config)


@LAYERS.register("MaxPool2D")
class MaxPool2D(_Pool2D):
    """Max pooling: each output is the maximum of its window; backward routes δ to the arg-max.

    Args:
        pool_size, stride, padding: as :class:`_Pool2D`; padding is −∞ (it never wins) and at
            most half the window, as in PyTorch.
        ceil_mode: round the output size up, ``Ho = ⌈(H + pt + pb − kh) / sh⌉ + 1``, less one
            if the last window would start past the input and its top padding (PyTorch's
            ``ceil_mode``, Caffe's rounding; GoogLeNet's pools). A window hanging off the end
            is the maximum of its part inside.

    Shape:
        (N, C, H, W) → (N, C, Ho, Wo), ``Ho = (H + pt + pb − kh) // sh + 1``.

    In a model where a ReLU's output feeds only this pooling, the graph pass
    ``fuse_relu_maxpool`` lets the pooling backward apply ReLU's derivative, exactly, at
    pooled resolution, and the ReLU pass the result on unchanged (see
    :func:`numcnn.functional.fast.pool.max_pool2d_backward`); ``summary()`` lists the pairs.

    >>> MaxPool2D(2).output_shape((6, 28, 28))
    (6, 14, 14)
    >>> MaxPool2D(3, stride=2, ceil_mode=True).output_shape((64, 112, 112))
    (64, 56, 56)
    """

    def __init__(self, pool_size: Any = 2, stride: Any = None, padding: Any = 0,
                 ceil_mode: bool = False, **kwargs: Any):
        super().__init__(pool_size, stride, padding, **kwargs)
        self.ceil_mode = check_flag(ceil_mode, "ceil_mode")

    def _fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        y, call.cache = max_pool2d_forward(x, self.pool_size, self.stride,
                                           self._pads(x.shape[2:]), call.ws,
                                           winners=call.training and bool(call.need_dx),
                                           ceil_mode=self.ceil_mode)
        return y

    def _bprop(self, dy: np.ndarray, call: Call) -> np.ndarray | None:
        if not call.need_dx:
            return None
        # fused with the ReLU before it: apply ReLU's derivative here, at pooled resolution
        return max_pool2d_backward(dy, call.cache, relu=call.fused == "relu_in")

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "ceil_mode": self.ceil_mode}


@LAYERS.register("AvgPool2D", "AveragePooling2D")
class AvgPool2D(_Pool2D):
    """Average pooling: each output is the mean of its window; backward spreads δ evenly.

    Args:
        pool_size, stride, padding: as :class:`MaxPool2D` (zero padding).
        count_include_pad: divide by ``kh·kw`` even where the window covers padding
            (PyTorch's default); if False divide by the number of real inputs.
        ceil_mode: round the output size up, as :class:`MaxPool2D`. A window hanging off
            the end divides by its part inside the padded input (``count_include_pad``) or
            inside the input — PyTorch's divisors.

    >>> AvgPool2D(3, stride=2, padding=1).output_shape((1, 7, 7))
    (1, 4, 4)
    """

    def __init__(self, pool_size: Any = 2, stride: Any = None, padding: Any = 0,
                 count_include_pad: bool = True, ceil_mode: bool = False, **kwargs: Any):
        super().__init__(pool_size, stride, padding, **kwargs)
        self.count_include_pad = bool(count_include_pad)
        self.ceil_mode = check_flag(ceil_mode, "ceil_mode")

    def _fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        y, call.cache = avg_pool2d_forward(x, self.pool_size, self.stride,
                                           self._pads(x.shape[2:]), self.count_include_pad,
                                           call.ws, ceil_mode=self.ceil_mode)
        return y

    def _bprop(self, dy: np.ndarray, call: Call) -> np.ndarray | None:
        if not call.need_dx:
            return None
        return avg_pool2d_backward(dy, call.cache)

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg["count_include_pad"] = self.count_include_pad
        cfg["ceil_mode"] = self.ceil_mode
        return cfg


@LAYERS.register("LpPool2D", "LPPool2D")
class LpPool2D(_Pool2D):
    """Lp (power-average) pooling — the course's "L2-norm pooling" for ``p = 2``.

    * ``mode="sum"`` (default): ``y = (Σ_window x^p)^(1/p)``, exactly PyTorch's
      ``nn.LPPool2d(p, kernel_size, stride)`` and ONNX ``LpPool``.
    * ``mode="mean"``: ``y = ((1 / (kh·kw)) Σ_window x^p)^(1/p)``, the power mean (between
      average pooling at ``p = 1`` and max pooling as ``p → ∞`` for non-negative inputs).

    Negative inputs follow PyTorch: ``x`` is raised to the power ``p`` without an absolute
    value, which for even ``p`` (the default 2) is the L_p norm; for odd ``p`` negative values
    subtract, and a negative window sum gives NaN. ``abs_input=True`` uses ``|x|^p`` (the true
    norm, ONNX's definition). Where a window's power sum is 0 the gradient is 0 (PyTorch's
    rule). Zero padding (an extension: PyTorch has none) adds ``0^p = 0``.

    Backward: ``dx = x^(p−1) · Σ_windows dy · y^(1−p) / K`` with ``K = 1`` (sum) or ``kh·kw``.

    Args:
        p: the norm order, a finite number ≥ 1.
        pool_size, stride, padding: as :class:`MaxPool2D`.
        mode: ``"sum"`` or ``"mean"``.
        abs_input: raise ``|x|`` rather than ``x`` to the power ``p``.

    >>> LpPool2D(2, pool_size=2).output_shape((6, 28, 28))
    (6, 14, 14)
    """

    def __init__(self, p: float = 2.0, pool_size: Any = 2, stride: Any = None,
                 padding: Any = 0, mode: str = "sum", abs_input: bool = False, **kwargs: Any):
        super().__init__(pool_size, stride, padding, **kwargs)
        if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)) \
                or not np.isfinite(p) or p < 1:
            raise ValueError(f"p must be a finite number >= 1; received p={p!r}")
        if mode not in ("sum", "mean"):
            raise ValueError(f"mode must be 'sum' or 'mean'; received mode={mode!r}")
        self.p = float(p)
        self.mode = mode
        self.abs_input = bool(abs_input)

    def _fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        y, call.cache = lp_pool2d_forward(x, self.p, self.pool_size, self.stride,
                                          self._pads(x.shape[2:]), self.mode == "mean",
                                          self.abs_input)
        return y

    def _bprop(self, dy: np.ndarray, call: Call) -> np.ndarray | None:
        if not call.need_dx:
            return None
        return lp_pool2d_backward(dy, call.cache)

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update(p=self.p, mode=self.mode, abs_input=self.abs_input)
        return cfg


@LAYERS.register("WeightedPool2D")
class WeightedPool2D(_Pool2D):
    """Average pooling weighted by a Gaussian of the distance from the window centre.

    The course's "weighted average pooling by distance from the centre pixel":
    ``y = Σ_ij w_ij · x_window[i, j]`` with
    ``w_ij = exp(−d_ij² / (2σ²)) / Σ exp(−d²/(2σ²))``, ``d_ij²  = (i − ci)² + (j − cj)²`` and
    ``(ci, cj) = ((kh − 1)/2, (kw − 1)/2)``. The weights are fixed (not trained) and sum to 1,
    so a constant input is passed through unchanged. Zero padding counts as zeros. For an
    even window (e.g. 2×2) every pixel is equally far from the centre and this is plain
    average pooling; ``σ → ∞`` also gives average pooling.

    Backward: ``dx`` at window position ``(i, j)`` receives ``w_ij · dy`` (summed on overlaps).

    Args:
        pool_size, stride, padding: as :class:`MaxPool2D` (default 3×3, stride 3).
        sigma: the Gaussian's standard deviation in pixels (> 0).

    >>> WeightedPool2D(3, stride=2, padding=1).output_shape((1, 8, 8))
    (1, 4, 4)
    """

    def __init__(self, pool_size: Any = 3, stride: Any = None, padding: Any = 0,
                 sigma: float = 1.0, **kwargs: Any):
        super().__init__(pool_size, stride, padding, **kwargs)
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float, np.integer,
                                                               np.floating)) or not sigma > 0:
            raise ValueError(f"sigma must be a positive number; received sigma={sigma!r}")
        self.sigma = float(sigma)
        self.weights = gaussian_pool_weights(self.pool_size, self.sigma)

    def _fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        y, call.cache = weighted_pool2d_forward(x, self.weights, self.stride,
                                                self._pads(x.shape[2:]))
        return y

    def _bprop(self, dy: np.ndarray, call: Call) -> np.ndarray | None:
        if not call.need_dx:
            return None
        return weighted_pool2d_backward(dy, call.cache)

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg["sigma"] = self.sigma
        return cfg


class _GlobalPool2D(DataFormat, Layer):
    """(N, C, H, W) → (N, C): one number per feature map; (N, H, W, C) → (N, C) with
    ``data_format="channels_last"``. Subclasses write ``_fprop``/``_bprop`` on NCHW."""

    def __init__(self, data_format: str = "channels_first", **kwargs: Any):
        super().__init__(**kwargs)
        self._set_data_format(data_format)

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            what = "(H, W, C)" if self.channels_last else "(C, H, W)"
            raise ValueError(
                f"{self.display_name}: expected a {what} input shape; received {input_shape}"
            )
        return (int(self._chw(input_shape)[0]),)

    def fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        self.check_input(x)
        return self._fprop(self._to_nchw(x), call)

    def bprop(self, dy: np.ndarray, call: Call, accumulate: bool = False) -> np.ndarray | None:
        return self._from_nchw(self._bprop(dy, call)) if call.need_dx else None

    def get_config(self) -> dict[str, Any]:
        return self._data_format_config(super().get_config())


@LAYERS.register("GlobalAvgPool2D", "GlobalAveragePooling2D")
class GlobalAvgPool2D(_GlobalPool2D):
    """Global average pooling ``y[n, c] = mean_hw x[n, c, h, w]`` (output (N, C)).

    Equals ``torch.nn.AdaptiveAvgPool2d(1)`` followed by a flatten. Backward spreads
    ``dy / (H·W)`` over the map.

    >>> GlobalAvgPool2D().output_shape((16, 5, 5))
    (16,)
    """

    def _fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        y, call.cache = global_avg_pool2d_forward(x)
        return y

    def _bprop(self, dy: np.ndarray, call: Call) -> np.ndarray | None:
        return global_avg_pool2d_backward(dy, call.cache)


@LAYERS.register("GlobalMaxPool2D", "GlobalMaxPooling2D")
class GlobalMaxPool2D(_GlobalPool2D):
    """Global max pooling ``y[n, c] = max_hw x[n, c, h, w]`` (output (N, C)).

    Equals ``torch.nn.AdaptiveMaxPool2d(1)`` followed by a flatten. Backward routes ``dy`` to
    the first (row-major) maximum of each map.

    >>> GlobalMaxPool2D().output_shape((16, 5, 5))
    (16,)
    """

    def _fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        y, call.cache = global_max_pool2d_forward(x)
        return y

    def _bprop(self, dy: np.ndarray, call: Call) -> np.ndarray | None:
        return global_max_pool2d_backward(dy, call.cache)
