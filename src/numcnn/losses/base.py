"""The loss contract: values, reduction, masks, and the input checks the losses share.

A loss computes its *unreduced values* ``ℓ`` — one per element for the element-wise losses
(``mse``, ``mae``, …), one per sample (per step of a sequence) for the losses that sum over
classes or features (``softmax_cross_entropy``, ``half_sse``, …) — and then reduces them:

=============  ======================================  ==========================================
reduction      ``forward`` returns                     ``backward()`` returns
=============  ======================================  ==========================================
``"mean"``     ``s · Σ ℓ / M`` (a float)               ``s · ∂ℓ/∂ŷ / M``
``"sum"``      ``s · Σ ℓ`` (a float)                   ``s · ∂ℓ/∂ŷ``
``"none"``     the array ``s · ℓ``                     ``backward(g)``: ``s · Σ g ∂ℓ/∂ŷ`` (g = 1)
=============  ======================================  ==========================================

with ``M`` the number of values (elements, or samples/steps) and ``s`` the loss's ``scale``
(default 1). These are PyTorch's ``reduction=`` of its functional losses, exactly;
``scale`` writes the course's ``E = ½ Σ (y − t)²`` as ``mse(reduction="sum", scale=0.5)``.
With ``"none"``, ``backward`` takes the upstream gradient ``g`` of the values (default all
ones: the gradient of their sum), as ``torch.Tensor.backward(gradient=g)``.

A subclass implements ``_values(y_pred, y_true) -> ℓ`` (keeping what its gradient needs in
``self._cache``) and ``_grad(c) -> Σ c·∂ℓ/∂ŷ``, where ``c`` is a number or an array that
broadcasts against ``y_pred`` (the base class folds the reduction and ``scale`` into ``c``, so
each loss scales its gradient once). ``value_axes`` says which values it has: ``0`` one per
element, ``1`` one per row of the last axis (class scores), ``"sample"`` one per sample.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._registry import Registry

LOSSES = Registry("loss")

#: the reductions every loss takes (PyTorch's ``reduction=``)
REDUCTIONS = ("mean", "sum", "none")

#: Lower clip used by the Keras-convention guards (``keras.backend.epsilon()``).
EPSILON = 1e-7


class _BatchMean:
    """``Loss.batch_mean``: on a class, its ``sample_mean``; on an instance, also
    ``reduction == "mean"`` (a subclass may still set ``batch_mean = True`` itself)."""

    def __get__(self, obj: Any, cls: Any) -> bool:
        return bool(cls.sample_mean) and (obj is None or obj.reduction == "mean")


class Loss:
    """Base class. Subclasses implement ``_values`` and ``_grad`` (see the module docstring).

    Args:
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` — how the values are reduced.
        scale: a positive factor ``s`` multiplying the loss and its gradient (default 1).

    Class attributes:
        sample_mean: True when the ``"mean"`` of a batch is the mean over its samples of a
            per-sample quantity, so the gradient of a batch is the size-weighted mean of its
            parts' gradients — what data-parallel ``fit(distribute=...)`` relies on. The
            property ``batch_mean`` is True only with ``reduction="mean"``; a custom loss is
            assumed not to be such a mean until it says so (``batch_mean = True`` on the class
            overrides the property, as before reductions existed).
        class_scores: True for the losses on class scores ``(N, K)``: scores ``(N, T, K)``
            are then read as ``N·T`` rows (see :mod:`numcnn.losses`).
        value_axes: ``0`` (one value per element), ``1`` (one per row of the last axis) or
            ``"sample"`` (one per sample, summed over every other axis).
    """

    sample_mean = False
    class_scores = False
    value_axes: Any = 0
    #: set by a subclass written to the contract before reductions:
    #: ``_forward(y_pred, y_true) -> float`` and ``_backward() -> dL/dŷ`` (still honoured,
    #: with ``reduction="mean"`` and ``scale=1`` only)
    _forward: Any = None
    _backward: Any = None

    def __init__(self, reduction: str = "mean", scale: float = 1.0) -> None:
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {list(REDUCTIONS)}; received "
                             f"reduction={reduction!r}")
        if isinstance(scale, bool) or not isinstance(scale, (int, float, np.integer,
                                                              np.floating)) \
                or not 0 < scale < np.inf:
            raise ValueError(f"scale must be a positive number; received scale={scale!r}")
        self.reduction = reduction
        self.scale = float(scale)
        self._cache: Any = None
        self._layout: Any = None  # how forward reshaped or masked y_pred (undone by backward)
        self._count = 0
        self._vshape: tuple[int, ...] = ()
        self._pred_ndim = 0

    batch_mean = _BatchMean()

    # ----------------------------------------------------------------- forward
    def forward(self, y_pred: np.ndarray, y_true: np.ndarray, mask: Any = None) -> Any:
        """The reduced loss (a float), or the array of values with ``reduction="none"``.

        ``mask`` (boolean, ``y_pred.shape[:m.ndim]``): only the real steps count (see
        :mod:`numcnn.losses`); with ``"none"`` the padding's values are 0.
        """
        who = type(self).__name__
        if not isinstance(y_pred, np.ndarray) or y_pred.dtype.kind != "f":
            raise TypeError(f"{who}: y_pred must be a float array; received "
                            f"{getattr(y_pred, 'dtype', type(y_pred))}")
        y_true = np.asarray(y_true)
        self._layout = None
        full_shape = y_pred.shape
        if mask is not None:
            mask = _check_mask(mask, y_pred, y_true, who)
            self._layout = ("mask", y_pred.shape, mask, y_pred.dtype)
            if not mask.any():  # nothing to reduce: loss 0, gradient 0
                self._cache, self._count = (), 0
                if self.reduction == "none":
                    shape = mask.shape if self.value_axes == "sample" else \
                        self._none_shape(full_shape)
                    return np.zeros(shape, dtype=y_pred.dtype)
                return 0.0
            y_pred, y_true = y_pred[mask], y_true[mask]
        if self.class_scores and y_pred.ndim > 2:
            shape, k = y_pred.shape, y_pred.shape[-1]
            lead = shape[:-1]
            if y_true.shape not in (lead, shape):
                raise ValueError(f"{who}: expected labels {lead} or one-hot targets {shape} "
                                 f"for scores {shape}; received {y_true.shape}")
            y_pred = y_pred.reshape(-1, k)
            y_true = y_true.reshape(-1, k) if y_true.shape == shape else y_true.reshape(-1)
            if self._layout is None:
                self._layout = ("rows", shape)
        if self._forward is not None:  # a loss written to the contract before reductions
            if self.reduction != "mean" or self.scale != 1.0:
                raise ValueError(f"{who} defines _forward/_backward (the contract without "
                                 "reductions): it takes reduction='mean' and scale=1 only; "
                                 "define _values/_grad for the others")
            return float(self._forward(y_pred, y_true))
        values = self._values(y_pred, y_true)
        self._count = values.size
        self._vshape, self._pred_ndim = values.shape, y_pred.ndim
        if self.reduction == "none":
            out = values * values.dtype.type(self.scale) if self.scale != 1.0 else values
            return self._unfold(out, full_shape)
        total = np.mean(values) if self.reduction == "mean" else np.sum(values)
        return float(total) * self.scale if self.scale != 1.0 else float(total)

    __call__ = forward

    def _none_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape of the values of ``y_pred`` of ``shape`` (``reduction="none"``)."""
        if self.value_axes == "sample":
            return shape[:1]
        return shape[: len(shape) - int(self.value_axes)]

    def _unfold(self, values: np.ndarray, full_shape: tuple[int, ...]) -> np.ndarray:
        """The values in the layout of the caller's ``y_pred`` (rows and masks undone)."""
        layout = self._layout
        if layout is None:
            return values
        if layout[0] == "rows":
            return values.reshape(self._none_shape(layout[1]))
        _, shape, mask, _ = layout
        if self.value_axes == "sample":
            out = np.zeros(mask.shape, dtype=values.dtype)  # one value per real step
        else:
            out = np.zeros(self._none_shape(shape), dtype=values.dtype)
        out[mask] = values.reshape((-1,) + out.shape[mask.ndim:])
        return out

    # ---------------------------------------------------------------- backward
    def backward(self, grad: Any = None) -> np.ndarray:
        """dL/dŷ for the latest ``forward``, in ``y_pred``'s shape and dtype.

        Args:
            grad: only with ``reduction="none"``: the upstream gradient of the values, of
                the shape ``forward`` returned (default: ones).
        """
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward() called before forward()")
        layout = self._layout
        if layout is not None and layout[0] == "mask" and isinstance(self._cache, tuple) \
                and self._cache == ():
            return np.zeros(layout[1], dtype=layout[3])
        if self._backward is not None:
            g = self._backward()
        elif self.reduction == "none":
            g = self._grad(self._upstream(grad))
        else:
            if grad is not None:
                raise ValueError(f"{type(self).__name__}.backward(grad) takes an upstream "
                                 f"gradient only with reduction='none'; this loss has "
                                 f"reduction={self.reduction!r}")
            g = self._grad(self.scale / self._count if self.reduction == "mean" else self.scale)
        if layout is None:
            return g
        if layout[0] == "rows":
            return g.reshape(layout[1])
        _, shape, mask, _ = layout
        full = np.zeros(shape, dtype=g.dtype)
        full[mask] = g.reshape((-1,) + shape[mask.ndim:])
        return full

    def _upstream(self, grad: Any) -> Any:
        """``s · g`` for ``reduction="none"``, laid out like the values and shaped to
        broadcast against ``y_pred`` (a trailing axis per reduced axis)."""
        if grad is None:
            return self.scale
        g = np.asarray(grad)
        layout = self._layout
        if layout is None:
            expect = self._vshape
        elif layout[0] == "rows":
            expect = self._none_shape(layout[1])
        else:
            _, shape, mask, _ = layout
            expect = mask.shape if self.value_axes == "sample" else self._none_shape(shape)
        if g.shape != tuple(expect):
            raise ValueError(f"{type(self).__name__}.backward: the upstream gradient must have "
                             f"the values' shape {tuple(expect)}; received {g.shape}")
        if layout is not None and layout[0] == "mask":
            g = g[layout[2]]
        g = g.reshape(self._vshape)
        g = g * self.scale if self.scale != 1.0 else g
        return g.reshape(g.shape + (1,) * (self._pred_ndim - len(self._vshape)))

    # -------------------------------------------------------------- subclasses
    def _values(self, y_pred: np.ndarray, y_true: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def _grad(self, c: Any) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments that differ from the defaults."""
        cfg: dict[str, Any] = {}
        if self.reduction != "mean":
            cfg["reduction"] = self.reduction
        if self.scale != 1.0:
            cfg["scale"] = self.scale
        return cfg

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def times(a: np.ndarray, c: Any) -> np.ndarray:
    """``a · c`` in ``a``'s dtype: ``c`` a number (cast first: a float64 scalar would promote
    float32) or an array that broadcasts against ``a``."""
    if isinstance(c, np.ndarray):
        return a * c.astype(a.dtype, copy=False)
    return a * a.dtype.type(c)


def _check_mask(mask: Any, y_pred: np.ndarray, y_true: np.ndarray, who: str) -> np.ndarray:
    """A loss's mask as a boolean array of shape ``y_pred.shape[:m.ndim]`` (which ``y_true``
    must share), or a ``ValueError``/``TypeError`` naming what was received."""
    m = np.asarray(mask)
    if m.dtype.kind not in "biuf":
        raise TypeError(f"{who}: the mask must be a boolean or 0/1 array; received dtype "
                        f"{m.dtype}")
    if m.ndim == 0 or m.ndim > y_pred.ndim or m.shape != y_pred.shape[:m.ndim]:
        raise ValueError(f"{who}: the mask must have the leading shape of y_pred "
                         f"{y_pred.shape}, e.g. {y_pred.shape[:2]}; received {m.shape}")
    if y_true.shape[:m.ndim] != m.shape:
        raise ValueError(f"{who}: targets {y_true.shape} do not match the mask {m.shape}: "
                         f"each masked step needs its target")
    if m.dtype.kind != "b":
        if not np.isin(m, (0, 1)).all():
            raise ValueError(f"{who}: a numeric mask must hold only 0 and 1")
        m = m != 0
    return m


def class_targets(y_true: np.ndarray, n: int, k: int, who: str) -> np.ndarray:
    """Integer labels (N,) from integer labels or one-hot/probability rows (N, K).

    Raises a clear error for a wrong shape or labels outside ``[0, K)``.
    """
    if y_true.ndim == 2:
        if y_true.shape != (n, k):
            raise ValueError(f"{who}: expected one-hot targets of shape {(n, k)}; received "
                             f"{y_true.shape}")
        return y_true.argmax(axis=1)
    if y_true.shape != (n,):
        raise ValueError(f"{who}: expected integer labels of shape ({n},); received {y_true.shape}")
    if y_true.dtype.kind not in "iu":
        if y_true.dtype.kind == "f" and np.all(y_true == np.round(y_true)):
            y_true = y_true.astype(np.int64)
        else:
            raise TypeError(f"{who}: labels must be integers; received dtype {y_true.dtype}")
    if n and (y_true.min() < 0 or y_true.max() >= k):
        raise ValueError(
            f"{who}: labels must be in [0, {k}); received values in "
            f"[{y_true.min()}, {y_true.max()}]"
        )
    return y_true


def check_same_shape(y_pred: np.ndarray, y_true: np.ndarray, who: str) -> None:
    if y_pred.shape != y_true.shape:
        raise ValueError(
            f"{who}: y_pred and y_true must have the same shape; received {y_pred.shape} "
            f"and {y_true.shape}"
        )


def check_range(a: np.ndarray, lo: float, hi: float, what: str, who: str) -> None:
    """Raise unless every value of ``a`` lies in ``[lo, hi]`` (NaN fails too)."""
    if a.size:
        mn, mx = a.min(), a.max()
        if not (lo <= mn and mx <= hi):
            raise ValueError(f"{who}: {what} must be in [{lo}, {hi}]; received values in "
                             f"[{mn}, {mx}]")


def elementwise_targets(y_pred: np.ndarray, y_true: np.ndarray, who: str) -> np.ndarray:
    """Targets of ``y_pred``'s shape and dtype; labels (N,) are accepted for outputs (N, 1)."""
    if y_pred.ndim == 2 and y_pred.shape[1] == 1 and y_true.shape == (y_pred.shape[0],):
        y_true = y_true.reshape(-1, 1)
    check_same_shape(y_pred, y_true, who)
    if y_true.dtype.kind not in "fiub":
        raise TypeError(f"{who}: targets must be numeric; received dtype {y_true.dtype}")
    return y_true.astype(y_pred.dtype, copy=False)


def sign_targets(y_pred: np.ndarray, y_true: np.ndarray, who: str) -> np.ndarray:
    """Targets that must be exactly −1 or +1 (margin losses)."""
    y = elementwise_targets(y_pred, y_true, who)
    if y.size and not np.all((y == 1) | (y == -1)):
        bad = np.unique(y[(y != 1) & (y != -1)])[:5]
        raise ValueError(f"{who}: labels must be -1 or +1; received values such as {bad}")
    return y


def one_hot_like(y_pred: np.ndarray, y_true: np.ndarray, who: str) -> np.ndarray:
    """Integer class labels (N,) one-hot encoded for an output (N, K); other targets as
    they are."""
    if y_true.shape != y_pred.shape and y_pred.ndim == 2 and y_true.ndim == 1:
        t = class_targets(y_true, *y_pred.shape, who)
        y_true = np.zeros_like(y_pred)
        y_true[np.arange(len(t)), t] = 1
    return y_true
