"""Weight penalties added to the training loss: ``L1``, ``L2`` (Keras's) and ``WeightDecay``
(the course's and UFLDL's ``(λ/2)‖W‖²``).

Attach one to a parameter of any layer with ``regularizers={"W": WeightDecay(3e-3)}`` (or
``Dense(..., kernel_regularizer=...)``, Keras's spelling). While training, the trainer adds
each penalty ``R(W)`` of a trainable layer to the loss of every batch and ``∂R/∂W`` to the
parameter's gradient (after the backward pass), and reports the penalties in the logs under
the regularizer's ``log_name`` (``weight_decay_loss``, ``regularization_loss``); ``evaluate``
adds them too, as Keras does. Putting the penalty in the loss rather than in the optimizer
(PyTorch's ``weight_decay=``) makes it part of the reported cost, lets each layer have its
own, and lets a closure optimizer (L-BFGS) see the true objective.

========================  ==================  ===============  ======================
class (name)              ``R(W)``            ``∂R/∂W``        log name
========================  ==================  ===============  ======================
``WeightDecay(λ)``        ``(λ/2) Σ W²``      ``λ W``          ``weight_decay_loss``
``L2(l2)``                ``l2 Σ W²``         ``2 l2 W``       ``regularization_loss``
``L1(l1)``                ``l1 Σ |W|``        ``l1 sign(W)``   ``regularization_loss``
========================  ==================  ===============  ======================

``WeightDecay(λ)`` has PyTorch's coupled ``weight_decay=λ`` gradient ``λW`` exactly;
``L2(l2)`` is Keras's ``regularizers.L2`` (no ½).

>>> WeightDecay(0.5)(np.array([1.0, -2.0]))  # (0.5 / 2) · (1 + 4)
1.25
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._registry import Registry

REGULARIZERS = Registry("regularizer")


def _coefficient(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not 0 <= value < np.inf:
        raise ValueError(f"{name} must be a number >= 0; received {name}={value!r}")
    return float(value)


class Regularizer:
    """A penalty ``R(W)`` on one parameter: ``__call__(W) -> float`` and
    ``gradient(W) -> ∂R/∂W`` (in ``W``'s dtype)."""

    #: the key of the training logs this penalty is reported under (summed over layers)
    log_name = "regularization_loss"

    def __call__(self, w: np.ndarray) -> float:  # pragma: no cover
        raise NotImplementedError

    def gradient(self, w: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.get_config() == self.get_config()

    __hash__ = None  # type: ignore[assignment]


def _sum_squares(w: np.ndarray) -> float:
    """``Σ w²`` accumulated in float64."""
    flat = w.reshape(-1).astype(np.float64, copy=False)
    return float(np.dot(flat, flat))


@REGULARIZERS.register("weight_decay")
class WeightDecay(Regularizer):
    """``R(W) = (λ/2) Σ W²``, ``∂R/∂W = λ W`` — UFLDL's weight decay term and the course's.

    Args:
        weight_decay: λ ≥ 0.
    """

    log_name = "weight_decay_loss"

    def __init__(self, weight_decay: float = 1e-4):
        self.weight_decay = _coefficient("weight_decay", weight_decay)

    def __call__(self, w):
        return 0.5 * self.weight_decay * _sum_squares(w)

    def gradient(self, w):
        return w * w.dtype.type(self.weight_decay)

    def get_config(self):
        return {"weight_decay": self.weight_decay}


@REGULARIZERS.register("l2")
class L2(Regularizer):
    """``R(W) = l2 Σ W²``, ``∂R/∂W = 2 l2 W`` — Keras's ``regularizers.L2``.

    Args:
        l2: the factor ≥ 0 (Keras's default 0.01).
    """

    def __init__(self, l2: float = 0.01):
        self.l2 = _coefficient("l2", l2)

    def __call__(self, w):
        return self.l2 * _sum_squares(w)

    def gradient(self, w):
        return w * w.dtype.type(2 * self.l2)

    def get_config(self):
        return {"l2": self.l2}


@REGULARIZERS.register("l1")
class L1(Regularizer):
    """``R(W) = l1 Σ |W|``, ``∂R/∂W = l1 sign(W)`` (0 at 0) — Keras's ``regularizers.L1``.

    Args:
        l1: the factor ≥ 0 (Keras's default 0.01).
    """

    def __init__(self, l1: float = 0.01):
        self.l1 = _coefficient("l1", l1)

    def __call__(self, w):
        return self.l1 * float(np.abs(w).sum(dtype=np.float64))

    def gradient(self, w):
        return np.sign(w) * w.dtype.type(self.l1)

    def get_config(self):
        return {"l1": self.l1}


def get(identifier: Any, **kwargs: Any) -> Regularizer:
    """A regularizer from a registered name, a class, an instance, or ``serialize``'s dict."""
    if isinstance(identifier, dict):
        return deserialize(identifier)
    reg = REGULARIZERS.get(identifier, **kwargs)
    if not isinstance(reg, Regularizer):
        raise TypeError(f"expected a regularizer (numcnn.regularizers); received {reg!r}")
    return reg


def serialize(reg: Regularizer) -> dict[str, Any]:
    """``{"name": ..., "config": ...}`` for a registered regularizer."""
    for name in REGULARIZERS.names():
        if REGULARIZERS.lookup(name) is type(reg):
            return {"name": name, "config": reg.get_config()}
    raise ValueError(f"regularizer {reg!r} is not registered and cannot be saved")


def deserialize(spec: Any) -> Regularizer:
    """Inverse of :func:`serialize` (a config read from a file: checked, never trusted)."""
    if isinstance(spec, str):
        return get(spec)
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) \
            or not isinstance(spec.get("config", {}), dict):
        raise ValueError(f"a regularizer spec must be {{'name': str, 'config': dict}}; "
                         f"received {spec!r}")
    try:
        return get(spec["name"], **spec.get("config", {}))
    except TypeError as e:
        raise ValueError(f"bad config for regularizer {spec['name']!r}: {e}") from None


def check_map(value: Any, who: str) -> dict[str, Regularizer]:
    """``{parameter key: Regularizer}`` from a layer's ``regularizers=`` argument."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and k for k in value):
        raise ValueError(f"{who}: regularizers must be a dict {{parameter name: regularizer}}, "
                         f"e.g. {{'W': WeightDecay(3e-3)}}; received {value!r}")
    return {k: get(v) for k, v in value.items() if v is not None}


__all__ = ["L1", "L2", "REGULARIZERS", "Regularizer", "WeightDecay", "check_map",
           "deserialize", "get", "serialize"]
