"""LeNet-5 in its modern form (ReLU, max pooling, softmax output)."""

from __future__ import annotations

from typing import Any

from ..layers import Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU
from .sequential import Sequential


def lenet5(seed: int | None = None, dtype: Any = "float32", dropout: float = 0.0) -> Sequential:
    """The modern LeNet-5 for 28×28 MNIST: 61,706 parameters.

    Conv 5×5 (6, padding 2) → ReLU → MaxPool 2 → Conv 5×5 (16) → ReLU → MaxPool 2 → Flatten
    → Dense 120 → ReLU → Dense 84 → ReLU → Dense 10 (logits; train with
    ``softmax_cross_entropy``). He-uniform initial weights, as the net uses ReLU. With
    ``dropout > 0`` a ``Dropout(dropout)`` follows each hidden Dense layer's ReLU.

    >>> lenet5(seed=0).count_params()
    61706
    """
    he = "he_uniform"
    drop = [Dropout(dropout)] if dropout else []
    return Sequential(
        [
            Conv2D(6, 5, padding=2, kernel_initializer=he),
            ReLU(),
            MaxPool2D(2),
            Conv2D(16, 5, kernel_initializer=he),
            ReLU(),
            MaxPool2D(2),
            Flatten(),
            Dense(120, kernel_initializer=he),
            ReLU(),
            *drop,
            Dense(84, kernel_initializer=he),
            ReLU(),
            *([Dropout(dropout)] if dropout else []),
            Dense(10, kernel_initializer="glorot_uniform"),
        ],
        input_shape=(1, 28, 28),
        seed=seed,
        name="lenet5",
        dtype=dtype,
    )
