"""Loss functions: ``forward(y_pred, y_true) -> float`` and ``backward() -> dL/dy_pred``.

By default every loss is the mean over the batch (and over output elements for the
element-wise ones), and ``backward`` returns the gradient with respect to *its own first
input* ``y_pred``, in ``y_pred``'s dtype. Below, ``M`` is the number of elements averaged
over (``y_pred.size`` for the element-wise losses) and ``N`` the batch size for the
per-sample ones.

**Reduction.** Every loss takes ``reduction="mean" | "sum" | "none"`` (PyTorch's argument:
``"sum"`` drops the ``1/M``, ``"none"`` returns the unreduced values and ``backward(g)``
takes their upstream gradient) and a ``scale`` factor; the course's ``E = ½ Σ (y − t)²`` is
``mse(reduction="sum", scale=0.5)``, and UFLDL's reconstruction cost ``(1/N) Σ_n ½‖ŷ_n −
y_n‖²`` is :class:`HalfSSE` (``"half_sse"``). See :mod:`.base`. ``fit`` needs a number:
``reduction="none"`` is refused there.

Guards against ``log 0`` and division by 0 (each docstring states its own):

- ``binary_cross_entropy`` follows PyTorch: each ``log`` is clamped at −100 and the
  gradient's denominator ``p(1 − p)`` at 1e-12;
- ``categorical_cross_entropy``, ``msle`` and ``mape`` follow Keras: the argument of ``log``
  or the divisor is clipped from below at ``EPSILON = 1e-7``;
- ``binary_cross_entropy_with_logits`` and ``softmax_cross_entropy`` take logits and use the
  log-sum-exp form, which needs no guard.

Bad inputs raise ``ValueError``/``TypeError``: shape mismatch, probabilities outside [0, 1],
log-probabilities above 0, class labels out of range or not integers, labels other than ±1
for the margin losses.

**Sequences.** The classification losses (``softmax_cross_entropy``, ``nll``,
``categorical_cross_entropy``, ``multiclass_hinge``, and ``mse`` with class labels) also take
per-step scores ``(N, T, K)`` — classes on the last axis, as Keras — with labels ``(N, T)``
or one-hot ``(N, T, K)``: the loss is the mean over all ``N·T`` steps, PyTorch's
``F.cross_entropy(z.permute(0, 2, 1), t)``. The element-wise losses take any shape already.

**Masks.** ``forward(y_pred, y_true, mask=m)`` with a boolean ``m`` of shape
``y_pred.shape[:m.ndim]`` (usually ``(N, T)``, True for a real step) averages over the real
steps only: the loss is the loss of the real steps taken as one batch, ``Σ_real ℓ / #real``
(PyTorch's ``ignore_index`` mean, Keras's masked mean), and the gradient is zero on the
padding. With no real step the loss is 0 and so is the gradient. ``"sum"`` sums the real
steps; ``"none"`` gives 0 on the padding. ``fit`` and ``evaluate``
pass the mask of an output that carries one (see :mod:`numcnn.layers.masking`).
"""

from __future__ import annotations

from typing import Any

from .base import (
    EPSILON,
    LOSSES,
    REDUCTIONS,
    Loss,
    check_range,
    check_same_shape,
    class_targets,
    elementwise_targets,
    sign_targets,
)
from .classification import (
    NLL,
    BinaryCrossEntropy,
    BinaryCrossEntropyWithLogits,
    CategoricalCrossEntropy,
    Exponential,
    Hinge,
    MulticlassHinge,
    SoftmaxCrossEntropy,
)
from .lenet import LeNetMAP
from .regression import MAE, MAPE, MSE, MSLE, HalfSSE, Huber, SmoothL1

__all__ = ["EPSILON", "LOSSES", "MAE", "MAPE", "MSE", "MSLE", "NLL", "REDUCTIONS",
           "BinaryCrossEntropy", "BinaryCrossEntropyWithLogits", "CategoricalCrossEntropy",
           "Exponential", "HalfSSE", "Hinge", "Huber", "LeNetMAP", "Loss", "MulticlassHinge",
           "SmoothL1", "SoftmaxCrossEntropy", "check_range", "check_same_shape",
           "class_targets", "elementwise_targets", "get", "sign_targets"]


def get(identifier: Any, **kwargs: Any) -> Loss:
    """A loss from a registered name, a class, or an instance."""
    return LOSSES.get(identifier, **kwargs)
