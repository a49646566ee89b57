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

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._registry import Registry

OPTIMIZERS = Registry("optimizer")

#: elements per slice when float32 updates are rounded through float64 (bounds the memory)
_CHUNK = 1 << 20


def add_scaled_(p: np.ndarray, x: np.ndarray, alpha: float) -> None:
    """``p ← p + α·x`` rounded once, as PyTorch's fused ``p.add_(x, alpha=α)``.

    float32: ``α`` is rounded to float32 as PyTorch does, the product ``α·x`` is exact in
    float64 and the sum is rounded once to float32 (in slices of :data:`_CHUNK` values).
    float64: ``p += α·x``.
    """
    if p.dtype != np.float32:
        p += p.dtype.type(alpha) * x
        return
    a = float(np.float32(alpha))
    if p.size <= _CHUNK and x.dtype == np.float32:
        t = np.multiply(x, a, dtype=np.float64)  # exact in float64
        t += p
        p[...] = t  # the one rounding
        return
    pf, xf = p.reshape(-1), np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    for s in range(0, pf.size, _CHUNK):
        t = np.multiply(xf[s : s + _CHUNK], a, dtype=np.float64)  # exact in float64
        t += pf[s : s + _CHUNK]
        pf[s : s + _CHUNK] = t  # the one rounding


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


class Optimizer:
    """Base class holding ``lr``, the step count and the state of each named parameter.

    Args:
        lr: learning rate η (> 0), a plain attribute read at every step, so a schedule or
            callback may change it between steps.
    """

    def __init__(self, lr: float = 0.01):
        if isinstance(lr, bool) or not (isinstance(lr, (int, float)) and 0 < lr < np.inf):
            raise ValueError(f"lr must be a positive number; received lr={lr!r}")
        self.lr = float(lr)
        self.iterations = 0
        self.state: dict[str, dict[str, np.ndarray]] = {}

    def step(self, params: Any, grads: Any) -> None:
        """Apply one update to every parameter in place (``{name: array}`` dicts)."""
        params, grads = named(params, grads)
        self.iterations += 1
        for name, p in params.items():
            g = grads[name]
            if p.shape != g.shape:
                raise ValueError(f"parameter {name!r} has shape {p.shape} but its gradient "
                                 f"{g.shape}")
            self.update(name, p, g)

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
        return {"lr": self.lr}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

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
