"""AlexNet (Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep
Convolutional Neural Networks", NIPS 2012) and ZFNet (Zeiler & Fergus, "Visualizing and
Understanding Convolutional Networks", ECCV 2014).

``alexnet(variant="torchvision")`` is torchvision's one-column AlexNet (its module names,
so its weights load by name); ``variant="paper"`` is the network of the paper: two columns
(convolutions 2, 4 and 5 see only their own column's maps: ``groups=2``), local response
normalisation after the first two layers, 96 first-layer kernels, 227×227 inputs.
"""

from __future__ import annotations

from typing import Any

from ..layers import (
    AdaptiveAvgPool2D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    LocalResponseNorm,
    MaxPool2D,
    ReLU,
)
from ._zoo import build, check_input_shape, check_num_classes
from .sequential import Sequential
from .weights import load_weights

_VARIANTS = ("torchvision", "paper")


def alexnet(variant: str = "torchvision", num_classes: int = 1000, input_shape: Any = None,
            dropout: float = 0.5, seed: int | None = None, dtype: Any = "float32",
            weights: Any = None) -> Sequential:
    """AlexNet.

    * ``"torchvision"`` (default; 61,100,840 parameters): conv 11×11/4 (64, padding 2) →
      ReLU → max pool 3/2 → conv 5×5 (192, padding 2) → ReLU → pool → conv 3×3 (384) →
      ReLU → conv 3×3 (256) → ReLU → conv 3×3 (256) → ReLU → pool → adaptive average pool
      to 6×6 → Dropout → FC 4096 → ReLU → Dropout → FC 4096 → ReLU → FC. Any input of at
      least 63×63 (the adaptive pool makes the classifier fit); 3×224×224 by default.
    * ``"paper"`` (60,965,224 parameters, the count of the two-GPU network): conv 11×11/4
      (96) → ReLU → LRN → pool 3/2 → conv 5×5 (256, two groups) → ReLU → LRN → pool →
      conv 3×3 (384, both columns) → ReLU → conv 3×3 (384, two groups) → ReLU → conv 3×3
      (256, two groups) → ReLU → pool → Dropout → FC 4096 → ReLU → Dropout → FC 4096 →
      ReLU → FC (the paper's dropout on the first two fully connected layers). LRN with
      k = 2, n = 5,
      α = 10⁻⁴ (undivided, the paper's formula), β = 0.75. Inputs 3×227×227 (the paper's
      "224" does not give its 55×55 maps); only sizes giving 6×6 final maps, 227–258
      pixels a side, as its first fully connected layer expects.

    Weights start from ``he_uniform`` (convolutions) and ``glorot_uniform`` (fully
    connected); biases from 0.
    """
    if variant not in _VARIANTS:
        raise ValueError(f"variant must be one of {_VARIANTS}; received variant={variant!r}")
    num_classes = check_num_classes(num_classes)
    paper = variant == "paper"
    if input_shape is None:
        input_shape = (3, 227, 227) if paper else (3, 224, 224)
    usual = "3×227×227" if paper else "3×224×224"
    name = "alexnet"
    shape = check_input_shape(name, input_shape, 227 if paper else 63, usual)
    he = "he_uniform"
    if paper:
        layers = [
            Conv2D(96, 11, stride=4, kernel_initializer=he, name="conv1"),
            ReLU(name="relu1"), _lrn("norm1"), MaxPool2D(3, stride=2, name="pool1"),
            Conv2D(256, 5, padding=2, groups=2, kernel_initializer=he, name="conv2"),
            ReLU(name="relu2"), _lrn("norm2"), MaxPool2D(3, stride=2, name="pool2"),
            Conv2D(384, 3, padding=1, kernel_initializer=he, name="conv3"),
            ReLU(name="relu3"),
            Conv2D(384, 3, padding=1, groups=2, kernel_initializer=he, name="conv4"),
            ReLU(name="relu4"),
            Conv2D(256, 3, padding=1, groups=2, kernel_initializer=he, name="conv5"),
            ReLU(name="relu5"), MaxPool2D(3, stride=2, name="pool5"),
            Flatten(name="flatten"),
            Dropout(dropout, name="drop6"), Dense(4096, name="fc6"), ReLU(name="relu6"),
            Dropout(dropout, name="drop7"), Dense(4096, name="fc7"), ReLU(name="relu7"),
            Dense(num_classes, name="fc8"),
        ]
        _check_final_maps(name + " (paper)", layers, shape, usual)
    else:
        layers = [
            Conv2D(64, 11, stride=4, padding=2, kernel_initializer=he, name="features.0"),
            ReLU(name="features.1"), MaxPool2D(3, stride=2, name="features.2"),
            Conv2D(192, 5, padding=2, kernel_initializer=he, name="features.3"),
            ReLU(name="features.4"), MaxPool2D(3, stride=2, name="features.5"),
            Conv2D(384, 3, padding=1, kernel_initializer=he, name="features.6"),
            ReLU(name="features.7"),
            Conv2D(256, 3, padding=1, kernel_initializer=he, name="features.8"),
            ReLU(name="features.9"),
            Conv2D(256, 3, padding=1, kernel_initializer=he, name="features.10"),
            ReLU(name="features.11"), MaxPool2D(3, stride=2, name="features.12"),
            AdaptiveAvgPool2D(6, name="avgpool"), Flatten(name="flatten"),
            Dropout(dropout, name="classifier.0"), Dense(4096, name="classifier.1"),
            ReLU(name="classifier.2"), Dropout(dropout, name="classifier.3"),
            Dense(4096, name="classifier.4"), ReLU(name="classifier.5"),
            Dense(num_classes, name="classifier.6"),
        ]
    model = build(name, lambda: Sequential(layers, input_shape=shape, seed=seed, name=name,
                                           dtype=dtype), shape, usual)
    return load_weights(model, weights)


def _final_maps(layers: list, shape: tuple) -> tuple | None:
    """The maps reaching ``Flatten`` for ``shape``, by shapes alone (None: too small)."""
    for layer in layers:
        if isinstance(layer, Flatten):
            return shape
        try:
            shape = layer.output_shape(shape)
        except ValueError:
            return None
    return shape


def _check_final_maps(name: str, layers: list, shape: tuple, usual: str) -> None:
    """The fully connected layers of these nets expect 6×6 maps: refuse other sizes (they
    would silently change the first fully connected layer's size)."""
    if (_final_maps(layers, shape) or (0, 0, 0))[1:] == (6, 6):
        return
    ok = [n for n in range(1, 512) if (_final_maps(layers, (shape[0], n, n)) or
                                       (0, 0, 0))[1:] == (6, 6)]
    raise ValueError(f"{name} takes images of {ok[0]} to {ok[-1]} pixels a side (its fully "
                     f"connected layers expect 6×6 maps; usually {usual}); received "
                     f"input_shape={shape}")


def _lrn(name: str) -> LocalResponseNorm:
    # the paper's b = a / (k + α Σ a²)^β; numcnn's (and torch's) α is divided by n
    return LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0, name=name)


def zfnet(num_classes: int = 1000, input_shape: Any = (3, 224, 224), dropout: float = 0.5,
          seed: int | None = None, dtype: Any = "float32", weights: Any = None
          ) -> Sequential:
    """ZFNet, the network of Zeiler & Fergus (2014), Fig. 3: 62,357,608 parameters.

    conv 7×7/2 (96, padding 1) → ReLU → max pool 3/2 → contrast normalisation (LRN) →
    conv 5×5/2 (256) → ReLU → max pool 3/2 → LRN → conv 3×3 (384) → ReLU → conv 3×3 (384)
    → ReLU → conv 3×3 (256) → ReLU → max pool 3/2 → FC 4096 → FC 4096 → FC, Dropout before
    the last two. The pools round up (Caffe's rule, ``ceil_mode=True``): that gives the
    figure's 110 → 55 → 26 → 13 → 6 maps on 224×224 inputs. Only sizes giving 6×6 final
    maps (207–238 pixels a side): the fully connected layers expect them.
    """
    num_classes = check_num_classes(num_classes)
    name, usual = "zfnet", "3×224×224"
    shape = check_input_shape(name, input_shape, 207, usual)
    he = "he_uniform"
    layers = [
        Conv2D(96, 7, stride=2, padding=1, kernel_initializer=he, name="conv1"),
        ReLU(name="relu1"), MaxPool2D(3, stride=2, ceil_mode=True, name="pool1"),
        _lrn("norm1"),
        Conv2D(256, 5, stride=2, kernel_initializer=he, name="conv2"),
        ReLU(name="relu2"), MaxPool2D(3, stride=2, ceil_mode=True, name="pool2"),
        _lrn("norm2"),
        Conv2D(384, 3, padding=1, kernel_initializer=he, name="conv3"), ReLU(name="relu3"),
        Conv2D(384, 3, padding=1, kernel_initializer=he, name="conv4"), ReLU(name="relu4"),
        Conv2D(256, 3, padding=1, kernel_initializer=he, name="conv5"), ReLU(name="relu5"),
        MaxPool2D(3, stride=2, ceil_mode=True, name="pool5"),
        Flatten(name="flatten"),
        Dropout(dropout, name="drop6"), Dense(4096, name="fc6"), ReLU(name="relu6"),
        Dropout(dropout, name="drop7"), Dense(4096, name="fc7"), ReLU(name="relu7"),
        Dense(num_classes, name="fc8"),
    ]
    _check_final_maps(name, layers, shape, usual)
    model = build(name, lambda: Sequential(layers, input_shape=shape, seed=seed, name=name,
                                           dtype=dtype), shape, usual)
    return load_weights(model, weights)


__all__ = ["alexnet", "zfnet"]
