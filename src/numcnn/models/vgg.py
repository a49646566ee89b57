"""VGG (Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015), as torchvision builds it: configurations A (11 layers), B (13),
D (16) and E (19), with or without BatchNorm, and :func:`vgg` for any stack of 3×3
convolutions (a small VGG for MNIST).

Layers carry torchvision's module names (``features.0``, ``classifier.6``), so weights move
between the two by name (:func:`numcnn.models.torchvision_state_dict`, ``weights=``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..layers import (
    AdaptiveAvgPool2D,
    BatchNorm2D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    MaxPool2D,
    ReLU,
)
from ._zoo import build, check_input_shape, check_num_classes
from .sequential import Sequential
from .weights import load_weights

#: the paper's Table 1: filters per 3×3 convolution, "M" a 2×2 max pool
CONFIGS: dict[str, list[Any]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512,
          "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512,
          512, 512, 512, "M"],
}
_CONV_INIT = {"name": "he_normal", "config": {"mode": "fan_out"}}
_DENSE_INIT = {"name": "normal", "config": {"mean": 0.0, "std": 0.01}}


def vgg(cfg: Sequence[Any], batch_norm: bool = False, num_classes: int = 1000,
        input_shape: Any = (3, 224, 224), classifier: Sequence[int] = (4096, 4096),
        dropout: float = 0.5, pool_output: Any = (7, 7), seed: int | None = None,
        dtype: Any = "float32", name: str = "vgg", weights: Any = None) -> Sequential:
    """A VGG network: ``features`` (3×3 convolutions with padding 1, each followed by
    BatchNorm when ``batch_norm``, and ReLU; ``"M"`` a 2×2 max pool), an adaptive average
    pool to ``pool_output`` (None: none), and ``classifier`` (hidden fully connected layers,
    each followed by ReLU and Dropout(``dropout``)), then ``num_classes`` logits.

    Convolutions start from ``he_normal(mode="fan_out")``, fully connected layers from
    N(0, 0.01²), biases from 0 — torchvision's initialisation.

    >>> small = vgg([32, 32, "M", 64, 64, "M"], batch_norm=True, num_classes=10,
    ...             input_shape=(1, 28, 28), classifier=(256,), pool_output=None)
    >>> small.output_shape()
    (10,)
    """
    num_classes = check_num_classes(num_classes)
    pools = sum(1 for v in cfg if v == "M")
    shape = check_input_shape(name, input_shape, 2 ** pools, "3×224×224")
    for v in cfg:
        if v != "M" and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ValueError(f"{name}: cfg entries are positive filter counts or 'M'; "
                             f"received {v!r}")
    layers: list[Any] = []
    conv_init = _init(_CONV_INIT)
    for v in cfg:
        i = len(layers)
        if v == "M":
            layers.append(MaxPool2D(2, stride=2, name=f"features.{i}"))
            continue
        layers.append(Conv2D(v, 3, padding=1, kernel_initializer=conv_init,
                             name=f"features.{i}"))
        if batch_norm:
            layers.append(BatchNorm2D(name=f"features.{i + 1}"))
        layers.append(ReLU(name=f"features.{len(layers)}"))
    if pool_output is not None:
        layers.append(AdaptiveAvgPool2D(pool_output, name="avgpool"))
    layers.append(Flatten(name="flatten"))
    j = 0
    for units in classifier:
        layers += [Dense(units, kernel_initializer=_init(_DENSE_INIT),
                         name=f"classifier.{j}"),
                   ReLU(name=f"classifier.{j + 1}"),
                   Dropout(dropout, name=f"classifier.{j + 2}")]
        j += 3
    layers.append(Dense(num_classes, kernel_initializer=_init(_DENSE_INIT),
                        name=f"classifier.{j}"))
    model = build(name, lambda: Sequential(layers, input_shape=shape, seed=seed, name=name,
                                           dtype=dtype), shape, "3×224×224")
    return load_weights(model, weights)


def _init(spec: Any) -> Any:
    from .. import initializers

    return initializers.deserialize(spec)


def _named(config: str, depth: int, batch_norm: bool, kwargs: dict) -> Sequential:
    return vgg(CONFIGS[config], batch_norm=batch_norm,
               name=f"vgg{depth}{'_bn' if batch_norm else ''}", **kwargs)


def vgg11(batch_norm: bool = False, **kwargs: Any) -> Sequential:
    """VGG-11 (configuration A): 132,863,336 parameters (132,868,840 with BatchNorm)."""
    return _named("A", 11, batch_norm, kwargs)


def vgg13(batch_norm: bool = False, **kwargs: Any) -> Sequential:
    """VGG-13 (configuration B): 133,047,848 parameters (133,053,736 with BatchNorm)."""
    return _named("B", 13, batch_norm, kwargs)


def vgg16(batch_norm: bool = False, **kwargs: Any) -> Sequential:
    """VGG-16 (configuration D): 138,357,544 parameters (138,365,992 with BatchNorm)."""
    return _named("D", 16, batch_norm, kwargs)


def vgg19(batch_norm: bool = False, **kwargs: Any) -> Sequential:
    """VGG-19 (configuration E): 143,667,240 parameters (143,678,248 with BatchNorm)."""
    return _named("E", 19, batch_norm, kwargs)


__all__ = ["CONFIGS", "vgg", "vgg11", "vgg13", "vgg16", "vgg19"]
