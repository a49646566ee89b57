"""N-d window layers with dilation: ``ConvND``, ``ConvTranspose`` and ``PoolND``.

Thin classes over :mod:`numcnn.functional.window_nd`. They cover what numcnn's 2-D layers
(``Conv2D``, ``MaxPool2D``, …) do not: 1-D and 3-D maps, dilated kernels, any padding
(``(begin₁ … begin_d, end₁ … end_d)``, ONNX's order), transposed convolution. The ONNX
importer uses them where an ONNX node does not fit a 2-D layer; they work on their own too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import initializers
from ..functional.window_nd import (
    conv_nd_backward,
    conv_nd_forward,
    conv_transpose_full_size,
    conv_transpose_nd_backward,
    conv_transpose_nd_forward,
    out_sizes,
    pool_nd_argmax_index,
    pool_nd_backward,
    pool_nd_forward,
)
from .base import LAYERS, Call, Layer
from .node import Shape


def _ints(value: Any, d: int | None, what: str, minimum: int) -> tuple[int, ...]:
    """A tuple of ints ≥ ``minimum`` (an int is repeated ``d`` times)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        if d is None:
            raise ValueError(f"{what} must be a tuple when the rank is not known; "
                             f"received {what}={value!r}")
        value = (int(value),) * d
    if not isinstance(value, (tuple, list)) or not value or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value):
        raise ValueError(f"{what} must be an int or a tuple of ints; received {what}={value!r}")
    out = tuple(int(v) for v in value)
    if d is not None and len(out) != d:
        raise ValueError(f"{what} must have {d} entries; received {what}={value!r}")
    if min(out) < minimum:
        raise ValueError(f"{what} must be at least {minimum}; received {what}={value!r}")
    return out


class _WindowND(Layer):
    """Shared geometry: ``kernel_size`` fixes the number d of spatial axes."""

    #: smallest padding accepted (a transposed convolution may pad by a negative amount)
    _min_padding = 0

    def __init__(self, kernel_size: Any, stride: Any = 1, dilation: Any = 1, padding: Any = 0,
                 kernel_what: str = "kernel_size", **kwargs: Any):
        super().__init__(**kwargs)
        self.kernel_size = _ints(kernel_size, None, kernel_what, 1)
        d = len(self.kernel_size)
        self.stride = _ints(stride, d, "stride", 1)
        self.dilation = _ints(dilation, d, "dilation", 1)
        self.padding = _ints(padding, 2 * d, "padding", self._min_padding)

    @property
    def rank(self) -> int:
        return len(self.kernel_size)

    def _check_rank(self, input_shape: Shape) -> None:
        if len(input_shape) != self.rank + 1:
            raise ValueError(f"{self.display_name}: a {self.rank}-d window expects a (C, "
                             f"{', '.join('n' + str(a + 1) for a in range(self.rank))}) input "
                             f"shape; received {tuple(input_shape)}")

    def _spatial_out(self, spatial: tuple, ceil_mode: bool = False) -> tuple:
        if any(n is None for n in spatial):
            return (None,) * len(spatial)
        try:
            out = out_sizes(spatial, self.kernel_size, self.stride, self.dilation,
                            self.padding, ceil_mode)
        except ValueError as e:
            raise ValueError(f"{self.display_name}: input {spatial} is too small: {e}") from None
        if min(out) <= 0:
            raise ValueError(f"{self.display_name}: input {spatial} gives an empty output")
        return out

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "kernel_size": list(self.kernel_size),
                "stride": list(self.stride), "dilation": list(self.dilation),
                "padding": list(self.padding)}


@LAYERS.register("ConvND")
class ConvND(_WindowND):
    """Convolution over d = 1, 2, 3 … spatial axes with dilation and groups.

    ``y[n, f, j] = Σ_{c, o} W[f, c, o]·xp[n, g·C/G + c, j·s + o·r] + b[f]`` (``xp`` the
    zero-padded input, ``g`` the group of kernel f) — ``torch.nn.Conv{1,2,3}d`` and ONNX
    ``Conv``.

    Args:
        out_channels: F. kernel_size: (k₁ … k_d). stride, dilation: int or d ints.
        padding: int or ``(begin₁ … begin_d, end₁ … end_d)``. groups: G (divides C and F).
        use_bias, kernel_initializer, bias_initializer: as :class:`Conv2D`.

    Shape:
        (N, C, n₁ … n_d) → (N, F, m₁ … m_d), ``m = (n + p₀ + p₁ − r(k − 1) − 1) // s + 1``;
        ``params["W"]``: (F, C/G, k₁ … k_d).

    >>> ConvND(4, (3,), dilation=2).output_shape((2, 9))
    (4, 5)
    """

    def __init__(self, out_channels: int, kernel_size: Any, stride: Any = 1, dilation: Any = 1,
                 padding: Any = 0, groups: int = 1, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 **kwargs: Any):
        super().__init__(kernel_size, stride, dilation, padding, **kwargs)
        self.out_channels = _ints((out_channels,), 1, "out_channels", 1)[0]
        self.groups = _ints((groups,), 1, "groups", 1)[0]
        if self.out_channels % self.groups:
            raise ValueError(f"out_channels must be divisible by groups; received "
                             f"out_channels={out_channels}, groups={groups}")
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def output_shape(self, input_shape: Shape) -> Shape:
        self._check_rank(input_shape)
        C = input_shape[0]
        if C is not None and C % self.groups:
            raise ValueError(f"{self.display_name}: the {C} input channels must be divisible "
                             f"by groups={self.groups}")
        return (self.out_channels,) + self._spatial_out(tuple(input_shape[1:]))

    def param_shapes(self, input_shape: Shape) -> dict[str, tuple[int, ...]]:
        """``W``: (F, C/G, k₁ … k_d); ``b``: (F,) with ``use_bias``."""
        self.output_shape(input_shape)
        C = self._known_dim(input_shape, 0)
        shapes = {"W": (self.out_channels, C // self.groups) + self.kernel_size}
        if self.use_bias:
            shapes["b"] = (self.out_channels,)
        return shapes

    def build(self, input_shape: Shape, rng: np.random.Generator | None = None) -> None:
        super().build(input_shape, rng)
        rng = rng if rng is not None else np.random.default_rng()
        shapes = self.param_shapes(self.input_shape)
        K = int(np.prod(self.kernel_size))
        fan_in, fan_out = shapes["W"][1] * K, self.out_channels * K
        self.add_param("W", self.kernel_initializer(shapes["W"], fan_in, fan_out, rng))
        if self.use_bias:
            self.add_param("b", self.bias_initializer(shapes["b"], fan_in, fan_out, rng))

    def fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        self.check_input(x)
        y, call.cache = conv_nd_forward(x, self.params["W"], self.params.get("b"),
                                        self.stride, self.dilation, self.padding, self.groups)
        return y

    def bprop(self, dy: np.ndarray, call: Call, accumulate: bool = False) -> np.ndarray | None:
        dx, dW, db = conv_nd_backward(dy, call.cache, bool(call.need_dx), self.use_bias)
        self.store_grad("W", dW, accumulate)
        if self.use_bias:
            self.store_grad("b", db, accumulate)
        return dx

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "out_channels": self.out_channels,
                "groups": self.groups, "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ConvND:
        config = dict(config)
        for key in ("kernel_initializer", "bias_initializer"):
            if key in config:
                config[key] = initializers.deserialize(config[key])
        return cls(**config)


@LAYERS.register("ConvTranspose", "ConvTransposeND")
class ConvTranspose(ConvND):
    """Transposed convolution ("deconvolution"): the input gradient of a convolution, used
    as a layer to up-sample — ``torch.nn.ConvTranspose{1,2,3}d`` and ONNX ``ConvTranspose``.

    ``y_full[n, g·F/G + f, j·s + o·r] += Σ_c x[n, g·C/G + c, j]·W[g·C/G + c, f, o]``, then the
    ``padding`` is cut from both ends and ``b`` added.

    Args:
        out_channels: F. output_padding: int or d ints, positions added at the end (PyTorch
            keeps each smaller than its stride or dilation, which makes the size of the
            convolution it inverts unambiguous). padding: as :class:`ConvND`, and a negative
            amount adds zeros at that end. The rest as :class:`ConvND`.

    Shape:
        (N, C, n₁ … n_d) → (N, F, m₁ … m_d), ``m = s(n − 1) + r(k − 1) + 1 + output_padding −
        p₀ − p₁``; ``params["W"]``: (C, F/G, k₁ … k_d) (PyTorch's and ONNX's layout).
        Backward: ``dx`` is the convolution of ``dy`` with ``W``, ``dW`` the correlation of
        ``dy``'s columns with ``x``.

    >>> ConvTranspose(2, (3, 3), stride=2, padding=1, output_padding=1).output_shape((4, 5, 5))
    (2, 10, 10)
    """

    _min_padding = -(1 << 30)  # a negative amount adds zeros (ONNX's output_shape rule)

    def __init__(self, out_channels: int, kernel_size: Any, stride: Any = 1, dilation: Any = 1,
                 padding: Any = 0, output_padding: Any = 0, groups: int = 1, **kwargs: Any):
        super().__init__(out_channels, kernel_size, stride, dilation, padding, groups, **kwargs)
        self.output_padding = _ints(output_padding, self.rank, "output_padding", 0)

    def output_shape(self, input_shape: Shape) -> Shape:
        self._check_rank(input_shape)
        C = input_shape[0]
        if C is not None and C % self.groups:
            raise ValueError(f"{self.display_name}: the {C} input channels must be divisible "
                             f"by groups={self.groups}")
        out = []
        d = self.rank
        for a, n in enumerate(input_shape[1:]):
            if n is None:
                out.append(None)
                continue
            m = conv_transpose_full_size(n, self.kernel_size[a], self.stride[a],
                                         self.dilation[a], self.output_padding[a])
            m -= self.padding[a] + self.padding[d + a]
            if m <= 0:
                raise ValueError(f"{self.display_name}: input {tuple(input_shape[1:])} gives "
                                 f"an empty output")
            out.append(m)
        return (self.out_channels,) + tuple(out)

    def param_shapes(self, input_shape: Shape) -> dict[str, tuple[int, ...]]:
        """``W``: (C, F/G, k₁ … k_d); ``b``: (F,) with ``use_bias``."""
        self.output_shape(input_shape)
        C = self._known_dim(input_shape, 0)
        shapes = {"W": (C, self.out_channels // self.groups) + self.kernel_size}
        if self.use_bias:
            shapes["b"] = (self.out_channels,)
        return shapes

    def fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        self.check_input(x)
        y, call.cache = conv_transpose_nd_forward(x, self.params["W"], self.params.get("b"),
                                                  self.stride, self.dilation, self.padding,
                                                  self.output_padding, self.groups)
        return y

    def bprop(self, dy: np.ndarray, call: Call, accumulate: bool = False) -> np.ndarray | None:
        dx, dW, db = conv_transpose_nd_backward(dy, call.cache, bool(call.need_dx),
                                                self.use_bias)
        self.store_grad("W", dW, accumulate)
        if self.use_bias:
            self.store_grad("b", db, accumulate)
        return dx

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "output_padding": list(self.output_padding)}


@LAYERS.register("PoolND")
class PoolND(_WindowND):
    """Max, average or Lp pooling over d spatial axes with dilation (ONNX ``MaxPool``,
    ``AveragePool``, ``LpPool``; ``torch.nn.{Max,Avg,LP}Pool{1,2,3}d``).

    * ``"max"``: ``y = max_o xp[j·s + o·r]``, padding −∞; backward routes ``dy`` to the first
      maximum of each window;
    * ``"avg"``: the mean of the taps inside the input (``count_include_pad=False``) or inside
      the padded input; backward spreads ``dy / count``;
    * ``"lp"``: ``y = (Σ_o |xp|^p)^{1/p}``, zero padding; backward
      ``dx = dy·sign(x)|x|^{p−1} y^{1−p}``.

    Args:
        kind: ``"max"``, ``"avg"`` or ``"lp"``. pool_size: (k₁ … k_d). stride: defaults to 1
            (ONNX's default). dilation, padding: as :class:`ConvND`.
        ceil_mode: round the output size up (a window must start inside the input or its
            leading padding). count_include_pad: see above. p: the Lp order (≥ 1).
        return_indices: also output (max only) the flat index of each maximum in the
            input, as ONNX ``MaxPool``'s ``Indices`` (``storage_order`` 0: row-major, 1:
            the spatial axes column-major); it carries no gradient.

    >>> PoolND("max", (2, 2, 2), stride=2).output_shape((3, 8, 8, 8))
    (3, 4, 4, 4)
    """

    def __init__(self, kind: str, pool_size: Any, stride: Any = 1, dilation: Any = 1,
                 padding: Any = 0, ceil_mode: bool = False, count_include_pad: bool = False,
                 p: float = 2.0, return_indices: bool = False, storage_order: int = 0,
                 **kwargs: Any):
        super().__init__(pool_size, stride, dilation, padding, "pool_size", **kwargs)
        if kind not in ("max", "avg", "lp"):
            raise ValueError(f"kind must be 'max', 'avg' or 'lp'; received kind={kind!r}")
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not np.isfinite(p) \
                or p < 1:
            raise ValueError(f"p must be a finite number >= 1; received p={p!r}")
        if return_indices and kind != "max":
            raise ValueError("return_indices needs kind='max'")
        if storage_order not in (0, 1):
            raise ValueError(f"storage_order must be 0 or 1; received {storage_order!r}")
        self.kind = kind
        self.ceil_mode = bool(ceil_mode)
        self.count_include_pad = bool(count_include_pad)
        self.p = float(p)
        self.return_indices = bool(return_indices)
        self.storage_order = int(storage_order)

    @property
    def pool_size(self) -> tuple[int, ...]:
        return self.kernel_size

    def output_shape(self, input_shape: Shape) -> Any:
        self._check_rank(input_shape)
        y = (input_shape[0],) + self._spatial_out(tuple(input_shape[1:]), self.ceil_mode)
        return [y, y] if self.return_indices else y

    def fprop(self, x: np.ndarray, call: Call) -> Any:
        self.check_input(x)
        y, cache = pool_nd_forward(x, self.kind, self.kernel_size, self.stride, self.dilation,
                                   self.padding, self.ceil_mode, self.count_include_pad,
                                   self.p)
        call.cache = cache
        if self.return_indices:
            return y, pool_nd_argmax_index(cache, self.storage_order).astype(x.dtype)
        return y

    def bprop(self, dy: Any, call: Call, accumulate: bool = False) -> np.ndarray | None:
        if self.return_indices:
            dy = dy[0]  # the indices carry no gradient
        if not call.need_dx or dy is None:
            return None
        return pool_nd_backward(dy, call.cache)

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg["pool_size"] = cfg.pop("kernel_size")
        cfg.update(kind=self.kind, ceil_mode=self.ceil_mode,
                   count_include_pad=self.count_include_pad, p=self.p,
                   return_indices=self.return_indices, storage_order=self.storage_order)
        return cfg
