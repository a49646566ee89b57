"""``Conv2D``: a thin stateful wrapper over :mod:`numcnn.functional.conv`."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import initializers
from ..functional import conv2d_backward, conv2d_forward
from ..functional.conv import connection_mask, pad
from ..functional.geometry import (
    check_padding,
    conv_output_hw,
    from_tf_padding,
    pair,
    resolve_padding,
)
from .activations import relu_mode
from .base import LAYERS, Call, Layer
from .data_format import DataFormat
from .gauss_newton import gauss_newton_rule
from .node import Shape


@LAYERS.register("Conv2D")
class Conv2D(DataFormat, Layer):
    """2-D convolution (cross-correlation) over NCHW input (NHWC with
    ``data_format="channels_last"``).

    Args:
        out_channels: number of kernels F (output maps).
        kernel_size: int or (kh, kw); non-square kernels are allowed.
        stride: int or (sh, sw).
        padding: ``"valid"``, ``"same"``, an int, ``(ph, pw)``, ``(top, bottom, left, right)``
            or TensorFlow's ``[[0, 0], [t, b], [l, r], [0, 0]]`` (channels last; channels
            first: ``[[0, 0], [0, 0], [t, b], [l, r]]``).
        use_bias: add a bias per output map.
        kernel_initializer: name or initializer for W (default Glorot uniform, as Keras).
        bias_initializer: name or initializer for b (default zeros).
        connection_table: optional boolean array-like of shape (C_in, C_out) — rows are
            input maps, columns output maps, exactly as LeNet-5's Table I. Output map ``o``
            reads only the input maps ``c`` with ``table[c, o]`` True:
            ``y[o] = Σ_{c: table[c, o]} x[c] ⋆ W[o, c] + b[o]``. Absent kernels are held at
            exactly zero (masked at build and in every gradient), are not counted by
            ``count_params``/``count_connections``, and each output map is initialised with
            its own fan-in ``|{c: table[c, o]}|·kh·kw``.
        groups: G, as PyTorch's ``groups``: the C input maps and the F kernels are split
            into G consecutive groups and kernel ``f`` reads only the maps of its group
            ``g = f // (F/G)``: ``y[f] = Σ_{c' < C/G} x[g·C/G + c'] ⋆ W[f, c'] + b[f]``.
            ``G = 2`` is AlexNet's two columns, ``G = C`` a depthwise convolution. C and F
            must be divisible by G; ``W`` is then (F, C/G, kh, kw), as in PyTorch, and its
            fans are ``C/G·kh·kw`` and ``F·kh·kw`` (PyTorch's and Keras's). Not combined
            with ``connection_table`` (a table can express any grouping).
        padding_value: the constant the padding holds (default 0). Text 003's "same"
            example pads with 1s: ``Conv2D(1, 3, padding="same", padding_value=1)``. The
            border is then part of the input the kernels read — it contributes
            ``v·Σ W`` over the kernel positions that fall on it — and its gradient is
            dropped (it is a constant). Costs one padded copy of the input per call.
        data_format: ``"channels_first"`` (NCHW, default) or ``"channels_last"`` (NHWC,
            TensorFlow's): input and output arrays and shapes in that layout (shapes
            ``(H, W, C)``), the kernels transposed to at the layer's boundary
            (:mod:`numcnn.layers.data_format`; two extra copies per pass). ``W`` keeps
            numcnn's (F, C/G, kh, kw); :meth:`set_hwio` loads TensorFlow's (kh, kw, C/G, F).

    Shape:
        input (N, C, H, W) → output (N, F, Ho, Wo) with ``Ho = (H + pt + pb − kh) // sh + 1``.
        ``params["W"]``: (F, C/G, kh, kw); ``params["b"]``: (F,).

    >>> layer = Conv2D(6, 5, padding=2)
    >>> layer.build((1, 28, 28)); layer.params["W"].shape
    (6, 1, 5, 5)
    """

    def __init__(
        self,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = "valid",
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        connection_table: Any = None,
        groups: int = 1,
        padding_value: float = 0.0,
        data_format: str = "channels_first",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self._set_data_format(data_format)
        if isinstance(padding_value, bool) or not isinstance(
                padding_value, (int, float, np.integer, np.floating)) \
                or not np.isfinite(padding_value):
            raise ValueError(f"padding_value must be a finite number; received "
                             f"padding_value={padding_value!r}")
        self.padding_value = float(padding_value)
        if not isinstance(out_channels, (int, np.integer)) or out_channels <= 0:
            raise ValueError(
                f"out_channels must be a positive int; received out_channels={out_channels!r}"
            )
        self.out_channels = int(out_channels)
        if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
            raise ValueError(f"groups must be a positive int; received groups={groups!r}")
        if out_channels % groups:
            raise ValueError(f"out_channels must be divisible by groups; received "
                             f"out_channels={out_channels}, groups={groups}")
        if groups > 1 and connection_table is not None:
            raise ValueError(f"connection_table and groups={groups} cannot be combined: a "
                             "connection table already says which maps each kernel reads")
        self.groups = int(groups)
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = pair(stride, "stride")
        self.padding = check_padding(from_tf_padding(padding, self.data_format))
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.connection_table: np.ndarray | None = None
        if connection_table is not None:
            t = np.asarray(connection_table)
            if t.ndim != 2 or t.shape[1] != self.out_channels or t.dtype.kind not in "bi":
                raise ValueError(
                    "connection_table must be a boolean (C_in, C_out) table with C_out="
                    f"{self.out_channels}; received shape {t.shape}, dtype {t.dtype}"
                )
            if t.dtype.kind == "i" and not np.isin(t, (0, 1)).all():
                raise ValueError("connection_table must hold only True/False (or 1/0)")
            if not t.astype(bool).any(axis=0).all():
                raise ValueError("connection_table: every output map must read some input map")
            self.connection_table = t.astype(bool)
        self.mask: np.ndarray | None = None

    def _pads(self, hw: tuple[int, int]) -> tuple[int, int, int, int]:
        cache = self.__dict__.setdefault("_pads_of", {})
        pads = cache.get(hw)
        if pads is None:
            pads = cache[hw] = resolve_padding(self.padding, self.kernel_size, self.stride, hw)
        return pads

    @property
    def pads(self) -> tuple[int, int, int, int]:
        """Explicit ``(top, bottom, left, right)`` padding for the built input size."""
        return self._pads(tuple(self._chw(self.input_shape)[1:3]))

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            what = "(H, W, C)" if self.channels_last else "(C, H, W)"
            raise ValueError(
                f"{self.display_name}: expected a {what} input shape; received {input_shape}"
            )
        input_shape = self._chw(input_shape)
        C = input_shape[0]
        if self.groups > 1 and C is not None and C % self.groups:
            raise ValueError(f"{self.display_name}: the {C} input channels must be divisible "
                             f"by groups={self.groups}; received input shape "
                             f"{tuple(input_shape)}")
        return self._own((self.out_channels,) + _spatial_out(self, tuple(input_shape[1:3])))

    def param_shapes(self, input_shape: Shape) -> dict[str, tuple[int, ...]]:
        """``W``: (F, C/G, kh, kw) — absent kernels of a connection table are stored too, as
        zeros — and ``b``: (F,) with ``use_bias``."""
        self.output_shape(input_shape)
        C = self._known_dim(self._chw(input_shape), 0)
        if self.connection_table is not None and self.connection_table.shape[0] != C:
            raise ValueError(
                f"{self.display_name}: connection_table has {self.connection_table.shape[0]} "
                f"input rows but the input has {C} maps"
            )
        shapes = {"W": (self.out_channels, C // self.groups) + self.kernel_size}
        if self.use_bias:
            shapes["b"] = (self.out_channels,)
        return shapes

    def build(self, input_shape: Shape, rng: np.random.Generator | None = None) -> None:
        super().build(input_shape, rng)
        rng = rng if rng is not None else np.random.default_rng()
        C = self._chw(self.input_shape)[0]
        kh, kw = self.kernel_size
        F = self.out_channels
        shape = (F, C, kh, kw)
        if self.connection_table is None:
            Cg = C // self.groups  # input maps each kernel reads
            fan_in, fan_out = Cg * kh * kw, F * kh * kw
            self.add_param("W", self.kernel_initializer((F, Cg, kh, kw), fan_in, fan_out, rng))
            if self.use_bias:
                self.add_param("b", self.bias_initializer((F,), fan_in, fan_out, rng))
        else:
            t = self.connection_table
            if t.shape[0] != C:
                raise ValueError(
                    f"{self.display_name}: connection_table has {t.shape[0]} input rows but "
                    f"the input has {C} maps"
                )
            self.mask = connection_mask(t, (kh, kw), self.dtype)
            fan_in = t.sum(axis=0) * kh * kw  # per output map
            fan_out = t.sum(axis=1) * kh * kw  # per input map (mean used)
            W = np.zeros(shape)
            b = np.zeros(F)
            for o in range(F):  # each output map with its own fan-in
                W[o] = self.kernel_initializer((C, kh, kw), int(fan_in[o]),
                                               int(fan_out.mean()), rng)
                if self.use_bias:
                    b[o] = self.bias_initializer((1,), int(fan_in[o]), int(fan_out.mean()),
                                                 rng)[0]
            self.add_param("W", W * self.mask)
            if self.use_bias:
                self.add_param("b", b)

    def _constant_pad(self, x: np.ndarray, pads: tuple[int, int, int, int]
                      ) -> tuple[np.ndarray, tuple[int, int, int, int]]:
        """``(x, pads)`` for the kernels: with a non-zero ``padding_value`` the input padded
        with it and no padding left to do, else ``x`` and its zero padding unchanged."""
        if self.padding_value == 0.0 or not any(pads):
            return x, pads
        return pad(x, pads, self.padding_value), (0, 0, 0, 0)

    def fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        self.check_input(x)
        x = self._to_nchw(x)  # channels last: the NCHW kernels' layout
        crop = self._pads(x.shape[2:])
        x, pads = self._constant_pad(x, crop)
        crop = None if pads == crop else crop  # the constant border to cut off dx
        if isinstance(call.fused, tuple) and not call.training:
            # ("bn_fold", bn, relu): the BatchNorm after it folded in (models/passes.py),
            # in an inference run that keeps no tape
            W, b = self._folded(call.fused[1])
            y, _ = conv2d_forward(x, W, b, self.stride, pads, call.ws, self.groups,
                                  call.fused[2])
            return self._from_nchw(y)
        # fused with the ReLU that alone reads the output (models/passes.py): max(y, 0)
        y, cache = conv2d_forward(x, self.params["W"], self.params.get("b"), self.stride,
                                  pads, call.ws, self.groups, relu_mode(call.fused))
        call.cache = (x, pads, cache, crop)
        return self._from_nchw(y)

    def _folded(self, bn: Any) -> tuple[np.ndarray, np.ndarray]:
        """Kernels and bias with the inference-mode BatchNorm ``bn`` after them folded in:
        ``s = γ/√(σ² + ε)``, ``W′ = s·W``, ``b′ = s·b + β − μ·s`` (float64, then rounded
        once to the layer dtype)."""
        gamma, beta = (np.asarray(a, np.float64) for a in bn._gamma_beta())
        mu = bn.buffers["running_mean"].astype(np.float64)
        s = gamma / np.sqrt(bn.buffers["running_var"].astype(np.float64) + bn.eps)
        b = beta - mu * s
        if "b" in self.params:
            b = b + s * self.params["b"]
        W = self.params["W"].astype(np.float64) * s.reshape(-1, 1, 1, 1)
        return W.astype(self.dtype), b.astype(self.dtype)

    def bprop(self, dy: np.ndarray, call: Call, accumulate: bool = False) -> np.ndarray | None:
        dx, dW, db = conv2d_backward(self._to_nchw(dy), call.cache[2], need_dx=call.need_dx,
                                     need_db=self.use_bias)
        if self.mask is not None:
            dW *= self.mask  # absent connections get no gradient
        self.store_grad("W", dW, accumulate)
        if self.use_bias:
            self.store_grad("b", db, accumulate)
        return self._from_nchw(_uncropped(dx, call.cache[3]))

    def set_hwio(self, kernel: Any, bias: Any = None) -> None:
        """Load TensorFlow's kernel layout (kh, kw, C/G, F) — ``tf.keras.layers.Conv2D``'s
        ``kernel`` — and optionally its bias (F,): ``W[f, c, i, j] = kernel[i, j, c, f]``.

        The layer must be built; the kernel's shape must match.
        """
        if "W" not in self.params:
            raise ValueError(f"{self.display_name}: build the layer before set_hwio (its "
                             "input size fixes the kernel shape)")
        k = np.asarray(kernel)
        want = self.params["W"].shape
        hwio = (want[2], want[3], want[1], want[0])
        if k.shape != hwio:
            raise ValueError(f"{self.display_name}: expected an HWIO kernel of shape {hwio}; "
                             f"received shape {k.shape}")
        self.params["W"][...] = k.transpose(3, 2, 0, 1)
        if self.mask is not None:
            self.params["W"] *= self.mask
        if bias is not None:
            if not self.use_bias:
                raise ValueError(f"{self.display_name}: use_bias=False; received a bias")
            b = np.asarray(bias)
            if b.shape != (self.out_channels,):
                raise ValueError(f"{self.display_name}: expected a bias of shape "
                                 f"({self.out_channels},); received shape {b.shape}")
            self.params["b"][...] = b

    def get_hwio(self) -> np.ndarray:
        """The kernels in TensorFlow's layout (kh, kw, C/G, F): ``W.transpose(2, 3, 1, 0)``."""
        return np.ascontiguousarray(self.params["W"].transpose(2, 3, 1, 0))

    def count_params(self) -> int:
        if self.connection_table is None or not self.trainable:
            return super().count_params()
        kh, kw = self.kernel_size
        return int(self.connection_table.sum()) * kh * kw + self.use_bias * self.out_channels

    def count_connections(self, input_shape: Shape) -> int | None:
        F, Ho, Wo = self._chw(self.output_shape(input_shape))
        input_shape = self._chw(input_shape)
        if Ho is None or Wo is None:
            return None
        if self.connection_table is not None:
            live = int(self.connection_table.sum())  # Σ_o |inputs of map o|
            kk = self.kernel_size[0] * self.kernel_size[1]
            return Ho * Wo * (live * kk + F * self.use_bias)
        kk = self.kernel_size[0] * self.kernel_size[1]
        per_output = input_shape[0] // self.groups * kk + self.use_bias
        return F * Ho * Wo * per_output

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update(
            out_channels=self.out_channels,
            kernel_size=list(self.kernel_size),
            stride=list(self.stride),
            padding=self.padding if isinstance(self.padding, (str, int)) else list(self.padding),
            use_bias=self.use_bias,
            kernel_initializer=initializers.serialize(self.kernel_initializer),
            bias_initializer=initializers.serialize(self.bias_initializer),
        )
        if self.groups != 1:
            cfg["groups"] = self.groups
        if self.padding_value != 0.0:
            cfg["padding_value"] = self.padding_value
        self._data_format_config(cfg)
        if self.connection_table is not None:
            cfg["connection_table"] = self.connection_table.tolist()
        return cfg

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Conv2D:
        config = dict(config)
        for key in ("kernel_size", "stride"):
            config[key] = tuple(config[key])
        if isinstance(config.get("padding"), list):
            config["padding"] = tuple(config["padding"])
        for key in ("kernel_initializer", "bias_initializer"):
            if key in config:
                config[key] = initializers.deserialize(config[key])
        return cls(**config)


def _uncropped(dx: np.ndarray | None, crop: tuple[int, int, int, int] | None
               ) -> np.ndarray | None:
    """The gradient of the input inside a constant border of ``crop = (top, bottom, left,
    right)`` (the border's gradient dropped), in dx's memory layout; ``dx`` itself when
    nothing was padded with a constant."""
    if dx is None or crop is None:
        return dx
    pt, pb, pl, pr = crop
    H, W = dx.shape[2] - pt - pb, dx.shape[3] - pl - pr
    return dx[:, :, pt : pt + H, pl : pl + W].copy(order="K")


def _spatial_out(layer: Any, hw: tuple) -> tuple:
    """``(Ho, Wo)`` of a convolution or pooling ``layer`` for input ``(H, W)``; ``None``
    where the input size is free, a clear error where the window does not fit."""
    if hw[0] is None or hw[1] is None:
        out = []
        for n, s in zip(hw, layer.stride):
            out.append(None if n is None else -(-n // s) if layer.padding == "same" else None)
        return tuple(out)
    pads = layer._pads(hw)
    try:
        ho, wo = conv_output_hw(hw, layer.kernel_size, layer.stride, pads)
    except ValueError as e:
        raise ValueError(f"{layer.display_name}: input {hw} is too small: {e}") from None
    if ho <= 0 or wo <= 0:
        raise ValueError(f"{layer.display_name}: input {hw} gives an empty output")
    return (ho, wo)


@gauss_newton_rule(Conv2D)
def _conv_gn(layer: Conv2D, d2y: np.ndarray, call: Call):
    """Diagonal Gauss–Newton pass (LeCun et al. 1998, appendix C).

    ``h_W[o, c, i, j] = Σ_{n, p} x[n, c, p + (i, j)]² · d2y[n, o, p]`` (summed over the
    connections sharing the weight), ``h_b[o] = Σ_{n, p} d2y[n, o, p]`` and
    ``d2x = full_conv(d2y, rot180(W²))`` — the usual backward with every weight and input
    squared. Absent connections get ``h = 0``; with groups, each group's rule is its own.
    """
    x, pads, _, crop = call.cache  # x padded with a non-zero padding_value already; NCHW
    d2y = layer._to_nchw(d2y)
    W = layer.params["W"]
    _, cache = conv2d_forward(x * x, W * W, None, layer.stride, pads, groups=layer.groups)
    d2x, hW, hb = conv2d_backward(d2y, cache, need_dx=call.need_dx, need_db=layer.use_bias)
    h = {"W": hW if layer.mask is None else hW * layer.mask}
    if layer.use_bias:
        h["b"] = hb
    return layer._from_nchw(_uncropped(d2x, crop)), h
