"""The optimizer base class: state keyed by parameter *name*, and PyTorch's rounding.

``step(params, grads)`` takes two dicts ``{name: array}`` with the same keys (a model's
``trainable_params()`` and ``trainable_grads()``) and updates the parameters in place. Each
parameter's state (velocity, moments) is kept under its name, so freezing a layer, adding
one, or reordering them never hands one parameter's state to another. Plain sequences are
accepted too, named by position (``"0"``, ``"1"``, …).

Every update follows ``torch.optim`` operation by operation, including where PyTorch fuses
a multiply and an add into one rounding (``Tensor.add_(x, alpha=a)`` runs as a fused
multiply-add in its vectorised kernels): :func:`add_scaled_` reproduces it by computing
``p + a·x`` in float64 and rounding once to float32, so float32 trajectories keep PyTorch's
accuracy on every x86-64 host. ``addcdiv_`` is ``p + (value·t1)/t2``, in that order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._registry import Registry

OPTIMIZERS = Registry("optimizer")

#: elements per slice when float32 updates are rounded through float64 (bounds the memory)
_CHUNK = 1 << 20
#: elements per slice of add_scaled_'s float64 buffer (256 kB: stays in the L2 cache)
_SLICE = 1 << 15


def add_scaled_(p: np.ndarray, x: np.ndarray, alpha: float) -> None:
    """``p ← p + α·x`` rounded once, as PyTorch's fused ``p.add_(x, alpha=α)``.

    float32: ``α`` is rounded to float32 as PyTorch does, the product ``α·x`` is exact in
    float64 and the sum is rounded once to float32. Large arrays go through one float64
    buffer of :data:`_SLICE` values that stays in the cache (VGG-11's 102.8 M-weight layer:
    0.21 s → 0.14 s per update here, against 0.13 s for a plain float32 ``p += α·x``).
    float64: ``p += α·x``.
    """
    if p.dtype != np.float32:
        p += p.dtype.type(alpha) * x
        return
    a = float(np.float32(alpha))
    if p.size <= _SLICE and x.dtype == np.float32:
        t = np.multiply(x, a, dtype=np.float64)  # exact in float64
        t += p
        p[...] = t  # the one rounding
        return
    pf, xf = p.reshape(-1), np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    buf = np.empty(min(_SLICE, pf.size))
    for s in range(0, pf.size, _SLICE):
        e = min(s + _SLICE, pf.size)
        t = buf[: e - s]
        np.multiply(xf[s:e], a, out=t, dtype=np.float64)  # exact in float64
        t += pf[s:e]
        pf[s:e] = t  # the one rounding


def scaled_sum(g: np.ndarray, x: np.ndarray, alpha: float) -> np.ndarray:
    """A new array ``g + α·x`` rounded once (PyTorch's ``g.add(x, alpha=α)``)."""
    out = g.copy()
    add_scaled_(out, x, alpha)
    return out


def addcdiv_(p: np.ndarray, t1: np.ndarray, t2: np.ndarray, value: float) -> None:
    """``p ← p + (value·t1)/t2`` (PyTorch's ``addcdiv_``, in its order)."""
    q = t1 * p.dtype.type(value)
    q /= t2
    p += q


def lerp_(a: np.ndarray, b: np.ndarray, w: float) -> None:
    """``a ← a + w·(b − a)`` in place (= ``(1 − w)·a + w·b``), rounded as PyTorch's ``lerp``."""
    wt = a.dtype.type(w)
    if w < 0.5:
        a += wt * (b - a)
    else:
        a[...] = b - (b - a) * a.dtype.type(1 - w)


def with_decay(p: np.ndarray, g: np.ndarray, weight_decay: float) -> np.ndarray:
    """``g + λ·p`` (L2 penalty folded into the gradient, PyTorch's coupled weight decay)."""
    return scaled_sum(g, p, weight_decay) if weight_decay else g


def check_range(name: str, value: Any, lo: float, hi: float, hi_open: bool = True) -> float:
    """``value`` as a float, checked to lie in ``[lo, hi)`` (or ``[lo, hi]``)."""
    ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)
    ok = ok and lo <= value and (value < hi if hi_open else value <= hi)
    if not ok:
        bracket = ")" if hi_open else "]"
        raise ValueError(f"{name} must be in [{lo}, {hi}{bracket}; received {name}={value!r}")
    return float(value)


def check_betas(betas: Any) -> tuple[float, float]:
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
        raise ValueError(f"betas must be a pair (beta1, beta2); received betas={betas!r}")
    return (check_range("betas[0]", betas[0], 0.0, 1.0),
            check_range("betas[1]", betas[1], 0.0, 1.0))


def named(params: Any, grads: Any) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``params`` and ``grads`` as two dicts with the same keys (sequences: by position)."""
    if isinstance(params, Mapping):
        if not isinstance(grads, Mapping):
            raise TypeError("params is a dict of named arrays, so grads must be one too")
        missing = [k for k in params if k not in grads]
        if missing:
            raise ValueError(f"no gradient for parameters {missing}")
        return dict(params), {k: grads[k] for k in params}
    if isinstance(params, Sequence) and isinstance(grads, Sequence):
        if len(params) != len(grads):
            raise ValueError(f"params and grads must be parallel; received {len(params)} and "
                             f"{len(grads)}")
        return ({str(i): p for i, p in enumerate(params)},
                {str(i): g for i, g in enumerate(grads)})
    raise TypeError(f"params and grads must be dicts {{name: array}} or sequences; received "
                    f"{type(params).__name__} and {type(grads).__name__}")


def check_clip(name: str, value: Any) -> float | None:
    """``value`` as a positive finite float, or None (no clipping)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
            or not 0 < value < np.inf:
        raise ValueError(f"{name} must be a positive number or None; received "
                         f"{name}={value!r}")
    return float(value)


def _sum_of_squares(g: np.ndarray) -> float:
    """``Σ g²`` accumulated in float64, in slices of :data:`_CHUNK` values (a float32
    gradient of 10⁸ values is not copied whole to float64)."""
    flat = g.reshape(-1)
    if flat.dtype == np.float64:
        return float(np.dot(flat, flat))
    total = 0.0
    for s in range(0, flat.size, _CHUNK):
        part = flat[s: s + _CHUNK].astype(np.float64)
        total += float(np.dot(part, part))
    return total


def clip_grad_norm(grads: Mapping[str, np.ndarray], max_norm: float) -> dict[str, np.ndarray]:
    """The gradients scaled by one factor so that their global norm is at most ``max_norm``,
    as ``torch.nn.utils.clip_grad_norm_`` (new arrays; the inputs are not changed)::

        n = ‖(g₁, g₂, …)‖₂ = √(Σ_k Σ g_k²)        (all gradients as one vector)
        c = min(1, max_norm / (n + 10⁻⁶))
        g_k ← c · g_k

    Like PyTorch, every gradient is multiplied by ``c``, also when ``c = 1``; ``n`` is
    rounded to the gradients' dtype and ``c`` computed in it. A non-finite norm makes the
    gradients non-finite (PyTorch's ``error_if_nonfinite=False``); training then stops with
    its "loss became nan" error.

    >>> g = clip_grad_norm({"a": np.array([3.0]), "b": np.array([4.0])}, 1.0)
    >>> np.round(g["a"], 6), np.round(g["b"], 6)  # norm 5 → 1
    (array([0.6]), array([0.8]))
    """
    sq = math.fsum(_sum_of_squares(g) for g in grads.values())
    out = {}
    with np.errstate(over="ignore", invalid="ignore"):
        for k, g in grads.items():
            t = g.dtype.type
            n = t(math.sqrt(sq))  # the total norm, rounded to the gradient's dtype
            c = np.minimum(t(max_norm) / (n + t(1e-6)), t(1.0))
            out[k] = g * c
    return out


def clip_grad_value(grads: Mapping[str, np.ndarray], clip_value: float) -> dict[str, np.ndarray]:
    """Every gradient value clamped to ``[−clip_value, clip_value]``, as
    ``torch.nn.utils.clip_grad_value_`` (new arrays; NaN stays NaN).

    >>> clip_grad_value({"a": np.array([-3.0, 0.5, 2.0])}, 1.0)["a"]
    array([-1. ,  0.5,  1. ])
    """
    return {k: np.clip(g, -g.dtype.type(clip_value), g.dtype.type(clip_value))
            for k, g in grads.items()}


class Optimizer:
    """Base class holding ``lr``, the step count and the state of each named parameter.

    Every optimizer takes the gradient-clipping arguments, applied by :meth:`step` to the
    gradients it receives (after data-parallel workers' gradients were summed) before the
    update rule and its weight decay see them:

    1. ``clipnorm``: one factor for all gradients, so that their *global* norm is at most
       ``clipnorm`` — PyTorch's ``torch.nn.utils.clip_grad_norm_(params, clipnorm)`` (see
       :func:`clip_grad_norm`). ``global_clipnorm`` is another name for it, Keras's. Keras's
       own ``clipnorm`` clips each parameter's gradient by its own norm instead.
    2. ``clipvalue``: then every value clamped to ``[−clipvalue, clipvalue]``, PyTorch's
       ``clip_grad_value_`` (see :func:`clip_grad_value`).

    Args:
        lr: learning rate η (> 0), a plain attribute read at every step, so a schedule or
            callback may change it between steps.
        clipnorm: the largest global gradient norm (> 0), or None.
        clipvalue: the largest absolute gradient value (> 0), or None.
        global_clipnorm: ``clipnorm`` under Keras's name for the global norm (give one).
    """

    def __init__(self, lr: float = 0.01, *, clipnorm: float | None = None,
                 clipvalue: float | None = None, global_clipnorm: float | None = None):
        if isinstance(lr, bool) or not (isinstance(lr, (int, float)) and 0 < lr < np.inf):
            raise ValueError(f"lr must be a positive number; received lr={lr!r}")
        self.lr = float(lr)
        if clipnorm is not None and global_clipnorm is not None:
            raise ValueError(f"clipnorm and global_clipnorm are one setting (the global norm); "
                             f"give one; received clipnorm={clipnorm!r}, "
                             f"global_clipnorm={global_clipnorm!r}")
        if global_clipnorm is not None:
            self.clipnorm = check_clip("global_clipnorm", global_clipnorm)
        else:
            self.clipnorm = check_clip("clipnorm", clipnorm)
        self.clipvalue = check_clip("clipvalue", clipvalue)
        self.iterations = 0
        self.state: dict[str, dict[str, np.ndarray]] = {}

    def step(self, params: Any, grads: Any) -> None:
        """Apply one update to every parameter in place (``{name: array}`` dicts), after
        clipping the gradients (``clipnorm``, ``clipvalue``; the arrays passed in are not
        changed)."""
        params, grads = named(params, grads)
        for name, p in params.items():
            g = grads[name]
            if p.shape != g.shape:
                raise ValueError(f"parameter {name!r} has shape {p.shape} but its gradient "
                                 f"{g.shape}")
        grads = self.clip(grads)
        self.iterations += 1
        for name, p in params.items():
            self.update(name, p, grads[name])

    def clip(self, grads: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The gradients after ``clipnorm`` and then ``clipvalue`` (unchanged without)."""
        if self.clipnorm is not None:
            grads = clip_grad_norm(grads, self.clipnorm)
        if self.clipvalue is not None:
            grads = clip_grad_value(grads, self.clipvalue)
        return grads

    def update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:  # pragma: no cover
        raise NotImplementedError

    def count_step(self, name: str) -> int:
        """Advance and return parameter ``name``'s own step count ``t`` (from 1).

        As in ``torch.optim``, a parameter counts only the steps it took part in: a layer
        frozen for a while resumes its bias corrections where it stopped.
        """
        st = self.state.setdefault(name, {})
        t = int(st.get("step", 0)) + 1
        st["step"] = np.asarray(float(t))
        return t

    def slot(self, name: str, slot: str, like: np.ndarray) -> np.ndarray:
        """State array ``slot`` of parameter ``name``, created as zeros on first use."""
        st = self.state.setdefault(name, {})
        if slot not in st:
            st[slot] = np.zeros_like(like)
        return st[slot]

    def get_config(self) -> dict[str, Any]:
        """``lr``, and the clipping arguments when set (subclasses add theirs)."""
        cfg: dict[str, Any] = {"lr": self.lr}
        if self.clipnorm is not None:
            cfg["clipnorm"] = self.clipnorm
        if self.clipvalue is not None:
            cfg["clipvalue"] = self.clipvalue
        return cfg

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def state_bounds(self, n: int) -> dict[str, tuple[int, ...]]:
        """The largest shapes of the optimizer's own ``state_dict`` entries whose size
        depends on the model, for ``n`` trainable values in all (a model file's loader
        checks them before reading); none by default — L-BFGS's history has some."""
        return {}

    def state_dict(self) -> dict[str, np.ndarray]:
        """Flat dict of arrays: ``"state/<parameter name>/<slot>"``, ``"iterations"``, ``"lr"``."""
        out = {f"state/{name}/{k}": v.copy() for name, st in self.state.items()
               for k, v in st.items()}
        out["iterations"] = np.asarray(self.iterations)
        out["lr"] = np.asarray(self.lr)
        return out

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore :meth:`state_dict`'s output."""
        new: dict[str, dict[str, np.ndarray]] = {}
        for key, value in state.items():
            if key in ("iterations", "lr"):
                continue
            if not key.startswith("state/") or key.count("/") < 2:
                raise ValueError(f"optimizer state: unexpected entry {key!r}")
            name, slot = key[len("state/"):].rsplit("/", 1)
            new.setdefault(name, {})[slot] = np.array(value)
        self.state = new
        self.iterations = int(state.get("iterations", 0))
        if "lr" in state:
            lr = float(state["lr"])
            if not 0 < lr < np.inf:
                raise ValueError(f"optimizer state: lr must be positive; received {lr!r}")
            self.lr = lr
