"""The layers of LeNet-5 as LeCun et al. (1998) built it.

* :class:`Subsampling2D` — trainable subsampling: each map's ``p×p`` inputs summed, times a
  trainable coefficient, plus a trainable bias (one pair per map);
* :class:`ScaledTanh` — the squashing function ``f(a) = A·tanh(S·a)``;
* :class:`RBFOutput` — Euclidean radial-basis output units ``y_i = Σ_j (x_j − w_ij)²`` whose
  centres are the stylised 7×12 digit bitmaps of the paper's Fig. 3.

Each layer registers its rule for the diagonal Gauss–Newton pass of the paper's appendix C
(:mod:`numcnn.layers.gauss_newton`, used by :class:`numcnn.optimizers.SDLM`) right after
its definition. The input normalisation and the 28 → 32 padding are the generic
:class:`numcnn.layers.Rescale` and :class:`numcnn.layers.Pad2D`.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import numpy as np

from .. import initializers
from ..functional.fast.workspace import Workspace, memory_order
from .base import LAYERS, Call, Layer
from .gauss_newton import gauss_newton_rule
from .node import Shape

# ------------------------------------------------------------------------- subsampling


def _offsets(p: int):
    return [(a, b) for a in range(p) for b in range(p)]


def _channel_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``Σ_{n,h,w} a[n,c,h,w]·b[n,c,h,w]`` per channel ``c``, walking memory in order."""
    order = memory_order(a)
    if order == memory_order(b) and order[0] == 1:  # channel-outermost: one dot per channel
        C = a.shape[1]
        at, bt = a.transpose(order), b.transpose(order)
        if at.flags.c_contiguous and bt.flags.c_contiguous:
            return np.einsum("ij,ij->i", at.reshape(C, -1), bt.reshape(C, -1))
    return np.einsum("nchw,nchw->c", a, b)


@LAYERS.register("Subsampling2D")
class Subsampling2D(Layer):
    """LeNet's trainable subsampling (S2, S4): ``y[c] = coef[c] · Σ_{p×p} x[c] + b[c]``.

    Non-overlapping ``p×p`` windows (stride ``p``; trailing rows/columns that do not fill a
    window are dropped, like pooling). The paper follows it with the squashing function — add
    a :class:`ScaledTanh` layer.

    Args:
        pool_size: window side ``p`` (2 in LeNet-5).
        coef_initializer, bias_initializer: initializers, called with ``fan_in = p²``
            (default ``"lecun98_uniform"``: ``U(±2.4 / fan_in)``).

    Shape:
        (N, C, H, W) → (N, C, H // p, W // p); ``params["coef"]``, ``params["b"]``: (C,).
        Backward: ``dcoef[c] = Σ dy[c]·s[c]`` with ``s`` the window sums, ``db[c] = Σ dy[c]``,
        ``dx`` = ``coef[c]·dy[c]`` spread to every input of the window.
        Connections per sample: ``C·Ho·Wo·(p² + 1)`` (S2: 5,880).

    >>> s = Subsampling2D(2); s.build((6, 28, 28)); s.count_params()
    12
    """

    def __init__(self, pool_size: int = 2, coef_initializer: Any = "lecun98_uniform",
                 bias_initializer: Any = "lecun98_uniform", **kwargs: Any):
        super().__init__(**kwargs)
        if not isinstance(pool_size, (int, np.integer)) or isinstance(pool_size, bool) \
                or pool_size <= 0:
            raise ValueError(f"pool_size must be a positive int; received pool_size={pool_size!r}")
        self.pool_size = int(pool_size)
        self.coef_initializer = initializers.get(coef_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            raise ValueError(
                f"{self.display_name}: expected a (C, H, W) input shape; received {input_shape}"
            )
        C, H, W = input_shape
        p = self.pool_size
        if H < p or W < p:
            raise ValueError(f"{self.display_name}: input {input_shape} is smaller than the "
                             f"{p}×{p} window")
        return (C, H // p, W // p)

    def param_shapes(self, input_shape: Shape) -> dict[str, tuple[int, ...]]:
        """``coef`` and ``b``: (C,)."""
        self.output_shape(input_shape)
        C = self._known_dim(input_shape, 0)
        return {"coef": (C,), "b": (C,)}

    def build(self, input_shape: Shape, rng: np.random.Generator | None = None) -> None:
        super().build(input_shape, rng)
        rng = rng if rng is not None else np.random.default_rng()
        C = self.input_shape[0]
        k = self.pool_size ** 2
        self.add_param("coef", self.coef_initializer((C,), k, k, rng))
        self.add_param("b", self.bias_initializer((C,), k, k, rng))

    def _views(self, a: np.ndarray) -> list[np.ndarray]:
        """The ``p²`` strided slabs of ``a`` (N, C, H, W), one per window offset."""
        p = self.pool_size
        Ho, Wo = a.shape[2] // p, a.shape[3] // p
        return [a[:, :, i : i + p * Ho : p, j : j + p * Wo : p] for i, j in _offsets(p)]

    def fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        self.check_input(x)
        views = self._views(x)
        # window sums and output in x's memory order (batch-innermost after a convolution)
        order = memory_order(x)
        s = call.ws.fresh_ordered(views[0].shape, x.dtype, order)
        if len(views) > 1:
            np.add(views[0], views[1], out=s)
        else:
            s[...] = views[0]
        for v in views[2:]:
            s += v
        call.cache = (x, s)
        c, b = self.params["coef"], self.params["b"]
        y = call.ws.fresh_ordered(s.shape, np.result_type(s, c, b), order)
        np.multiply(s, c[:, None, None], out=y)
        y += b[:, None, None]
        return y

    def spread(self, d: np.ndarray, w: np.ndarray, x_shape: tuple[int, ...],
               ws: Workspace) -> np.ndarray:
        """``dx[n, c, p·i + u, p·j + v] = w[c]·d[n, c, i, j]`` (0 in dropped rows/columns)."""
        p = self.pool_size
        _, _, H, W = x_shape
        order = memory_order(d)
        dx = ws.fresh_ordered(x_shape, d.dtype, order)
        dm = d.transpose(order)
        if order in ((1, 2, 3, 0), (0, 1, 2, 3)) and not (H % p or W % p) \
                and dm.flags.c_contiguous:
            # one pass: each window's p×p outputs as broadcast axes of dx's memory
            h = order.index(2)  # position of the H axis in memory order
            a, b = dm.shape[:h], dm.shape[h + 2:]
            d6 = dm.reshape(a + (dm.shape[h], 1, dm.shape[h + 1], 1) + b)
            w6 = w.reshape(-1, 1, 1, 1, 1, 1) if order[0] == 1 else w.reshape(-1, 1, 1, 1, 1)
            out = dx.transpose(order).reshape(a + (H // p, p, W // p, p) + b)
            np.multiply(d6, w6, out=out)
            return dx
        g = np.multiply(d, w[:, None, None], out=ws.fresh_ordered(d.shape, d.dtype, order))
        if H % p or W % p:  # dropped trailing rows/columns get no gradient
            dx.fill(0)
        for v in self._views(dx):
            v[...] = g
        return dx

    def bprop(self, dy: np.ndarray, call: Call, accumulate: bool = False) -> np.ndarray | None:
        x, s = call.cache
        self.store_grad("coef", _channel_dot(dy, s), accumulate)
        self.store_grad("b", dy.sum(axis=(0, 2, 3)), accumulate)
        if not call.need_dx:
            return None
        return self.spread(dy, self.params["coef"], x.shape, call.ws)

    def count_connections(self, input_shape: Shape) -> int | None:
        C, Ho, Wo = self.output_shape(input_shape)
        return C * Ho * Wo * (self.pool_size ** 2 + 1)

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update(pool_size=self.pool_size,
                   coef_initializer=initializers.serialize(self.coef_initializer),
                   bias_initializer=initializers.serialize(self.bias_initializer))
        return cfg

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Subsampling2D:
        config = dict(config)
        for key in ("coef_initializer", "bias_initializer"):
            if key in config:
                config[key] = initializers.deserialize(config[key])
        return cls(**config)


# -------------------------------------------------------------------------- squashing


@LAYERS.register("ScaledTanh")
class ScaledTanh(Layer):
    """LeNet's squashing function ``f(a) = A·tanh(S·a)``.

    With ``A = 1.7159`` and ``S = 2/3`` (the paper's choice), ``f(±1) = ±1`` and the gain
    at ±1 is about 1, so the ±1 targets of the RBF units sit inside the linear-ish range.
    Derivative: ``f′(a) = A·S·(1 − tanh²(S·a)) = (S/A)·(A² − y²)``.

    Args:
        A: amplitude (> 0). S: slope at the origin divided by ``A`` (> 0).

    >>> y = ScaledTanh(dtype="float64")(np.array([[1.0, -1.0]]))
    >>> np.round(y, 3)
    array([[ 1., -1.]])
    """

    def __init__(self, A: float = 1.7159, S: float = 2.0 / 3.0, **kwargs: Any):
        super().__init__(**kwargs)
        for what, v in (("A", A), ("S", S)):
            if not isinstance(v, (int, float)) or not v > 0 or not np.isfinite(v):
                raise ValueError(f"{what} must be a positive number; received {what}={v!r}")
        self.A = float(A)
        self.S = float(S)

    def fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        self.check_input(x)
        t = x.dtype.type
        # one fresh array in x's memory order, updated in place: y = A·tanh(S·x)
        y = np.multiply(x, t(self.S), out=call.ws.fresh_ordered(x.shape, x.dtype,
                                                                 memory_order(x)))
        np.tanh(y, out=y)
        y *= t(self.A)
        call.cache = y
        return y

    def derivative(self, y: np.ndarray, dtype: Any, ws: Workspace) -> np.ndarray:
        """``f′ = (A² − y²)·(S/A)`` from the output ``y``, a fresh array in its memory order."""
        t = np.dtype(dtype).type
        if np.dtype(dtype) != y.dtype:  # mixed precision: let NumPy promote
            return (t(self.A * self.A) - y * y) * t(self.S / self.A)
        d = np.multiply(y, y, out=ws.fresh_ordered(y.shape, y.dtype, memory_order(y)))
        np.subtract(t(self.A * self.A), d, out=d)
        d *= t(self.S / self.A)
        return d

    def bprop(self, dy: np.ndarray, call: Call, accumulate: bool = False) -> np.ndarray | None:
        if not call.need_dx:
            return None
        d = self.derivative(call.cache, dy.dtype, call.ws)
        if d.dtype != np.result_type(dy, d):
            return dy * d
        return np.multiply(dy, d, out=d)  # d is ours and fresh: reuse it for dx

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "A": self.A, "S": self.S}


# ------------------------------------------------------------------------------ output


def lenet5_digit_bitmaps() -> np.ndarray:
    """The ten stylised 7×12 digit bitmaps (paper's Fig. 3) shipped with the package.

    Returns:
        float64 array (10, 12, 7) of ±1: +1 foreground ('#'), −1 background ('.').
    """
    text = (resources.files("numcnn.models") / "lenet5_rbf_digits.txt").read_text("ascii")
    rows: dict[int, list[str]] = {}
    cur = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(";"):
            continue
        if line.startswith("digit"):
            cur = int(line.split()[1])
            rows[cur] = []
        else:
            rows[cur].append(line)  # type: ignore[index]
    out = np.array([[[1.0 if ch == "#" else -1.0 for ch in r] for r in rows[d]]
                    for d in range(10)])
    if out.shape != (10, 12, 7):
        raise ValueError(f"corrupt bitmap file: expected (10, 12, 7); parsed {out.shape}")
    return out


@LAYERS.register("RBFOutput")
class RBFOutput(Layer):
    """Euclidean radial-basis output units: ``y_i = Σ_j (x_j − w_ij)²``.

    Each output is the squared distance between the input vector and the unit's centre —
    a penalty, low for the recognised class. In LeNet-5 the 10 centres are the ±1 stylised
    7×12 bitmaps of the digits (84 = 7·12 inputs) and are fixed (``trainable=False``, the
    default): the layer then holds 840 non-trainable parameters and 840 connections.

    Args:
        units: number of RBF units (classes).
        centers: ``"digits"`` (the paper's bitmaps; needs ``units == 10`` and 84 inputs) or
            ``"random"`` (random ±1 codes).
        trainable: whether an optimizer may move the centres (default False, as the paper).

    Shape:
        (N, D) → (N, units); ``params["W"]``: (units, D). Backward:
        ``dx_j = 2 Σ_i dy_i (x_j − w_ij)``, ``dw_ij = −2 Σ_n dy_ni (x_nj − w_ij)``.

    >>> r = RBFOutput(10); r.build((84,)); r.count_params(), r.count_non_trainable()
    (0, 840)
    """

    def __init__(self, units: int = 10, centers: str = "digits", trainable: bool = False,
                 **kwargs: Any):
        super().__init__(trainable=trainable, **kwargs)
        if not isinstance(units, (int, np.integer)) or isinstance(units, bool) or units <= 0:
            raise ValueError(f"units must be a positive int; received units={units!r}")
        if centers not in ("digits", "random"):
            raise ValueError(f"centers must be 'digits' or 'random'; received centers={centers!r}")
        self.units = int(units)
        self.centers = centers

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 1:
            raise ValueError(f"{self.display_name}: expected a flat (features,) input shape; "
                             f"received {tuple(input_shape)}")
        return (self.units,)

    def param_shapes(self, input_shape: Shape) -> dict[str, tuple[int, ...]]:
        """``W``: (units, D); the digit centres need (10, 84)."""
        self.output_shape(input_shape)
        D = self._known_dim(input_shape, 0)
        if self.centers == "digits" and (self.units, D) != (10, 84):
            raise ValueError(f"{self.display_name}: centers='digits' needs 10 units on 84 "
                             f"inputs; received units={self.units}, inputs={D}")
        return {"W": (self.units, D)}

    def build(self, input_shape: Shape, rng: np.random.Generator | None = None) -> None:
        super().build(input_shape, rng)
        D = self.input_shape[0]
        if self.centers == "digits":
            if (self.units, D) != (10, 84):
                raise ValueError(f"{self.display_name}: centers='digits' needs 10 units on 84 "
                                 f"inputs; received units={self.units}, inputs={D}")
            W = lenet5_digit_bitmaps().reshape(10, 84)
        else:
            rng = rng if rng is not None else np.random.default_rng()
            W = rng.choice([-1.0, 1.0], size=(self.units, D))
        self.add_param("W", W)

    def fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        self.check_input(x)
        diff = x[:, None, :] - self.params["W"][None]  # (N, units, D)
        call.cache = diff
        return np.einsum("nij,nij->ni", diff, diff)

    def bprop(self, dy: np.ndarray, call: Call, accumulate: bool = False) -> np.ndarray | None:
        t = dy.dtype.type
        g = dy[:, :, None] * call.cache  # (N, units, D)
        self.store_grad("W", g.sum(axis=0) * t(-2.0), accumulate)  # even when frozen (cheap)
        if not call.need_dx:
            return None
        return g.sum(axis=1) * t(2.0)

    def count_connections(self, input_shape: Shape) -> int | None:
        return self.units * input_shape[0]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units, "centers": self.centers}


# ---------------------------------------------------------------- Gauss–Newton rules


@gauss_newton_rule(Subsampling2D)
def _subsampling_gn(layer: Subsampling2D, d2y: np.ndarray, call: Call):
    """``h_coef[c] = Σ d2y[c] · Σ_{window} x²`` (the p² connections share ``coef``),
    ``h_b[c] = Σ d2y[c]``, ``d2x = coef[c]² · d2y`` spread to the window."""
    x, _ = call.cache
    views = layer._views(x)
    s2 = views[0] * views[0]
    for v in views[1:]:
        s2 += v * v
    h = {"coef": np.einsum("nchw,nchw->c", d2y, s2), "b": d2y.sum(axis=(0, 2, 3))}
    if not call.need_dx:
        return None, h
    c = layer.params["coef"]
    return layer.spread(d2y, c * c, x.shape, Workspace()), h


@gauss_newton_rule(ScaledTanh)
def _scaled_tanh_gn(layer: ScaledTanh, d2y: np.ndarray, call: Call):
    """``d2a = f′(a)² · d2y`` (the ``f″`` term is dropped, as Gauss–Newton does)."""
    if not call.need_dx:
        return None, {}
    ws = Workspace()
    d = layer.derivative(call.cache, d2y.dtype, ws)
    if d.dtype != np.result_type(d2y, d):
        return d2y * d * d, {}
    r = np.multiply(d2y, d, out=ws.fresh_ordered(d.shape, d.dtype, memory_order(d)))
    r *= d
    return r, {}


@gauss_newton_rule(RBFOutput)
def _rbf_gn(layer: RBFOutput, d2y: np.ndarray, call: Call):
    """Gauss–Newton pass for squared-distance units.

    Here ``d2y[n, i] ≥ 0`` is the Gauss–Newton weight of the squared residual
    ``‖x − w_i‖²`` in the loss (what :meth:`numcnn.losses.LeNetMAP.backward_gn` returns).
    The curvature of ``c·Σ_j (x_j − w_ij)²`` is ``2c`` for every ``x_j`` and ``w_ij``, so
    ``d2x_j = 2 Σ_i d2y_i`` and ``h_w[i, j] = 2 Σ_n d2y_ni``.
    """
    t = d2y.dtype.type
    D = call.cache.shape[2]
    h = {"W": np.repeat(d2y.sum(axis=0)[:, None] * t(2.0), D, axis=1)}
    if not call.need_dx:
        return None, h
    return np.repeat(d2y.sum(axis=1, keepdims=True) * t(2.0), D, axis=1), h
