"""What every classic network of the zoo shares: argument checks, and a clear message when
an input is too small for the architecture."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np


def check_num_classes(num_classes: Any) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) \
            or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int; received "
                         f"num_classes={num_classes!r}")
    return int(num_classes)


def check_input_shape(name: str, input_shape: Any, min_hw: int, usual: str) -> tuple:
    """``input_shape`` as a ``(C, H, W)`` tuple of positive ints, at least ``min_hw`` high
    and wide; else a ``ValueError`` saying which sizes ``name`` accepts."""
    ok = isinstance(input_shape, (tuple, list)) and len(input_shape) == 3 and all(
        isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0
        for d in input_shape)
    if not ok:
        raise ValueError(f"{name}: input_shape must be (channels, height, width), positive "
                         f"ints; received input_shape={input_shape!r}")
    c, h, w = (int(d) for d in input_shape)
    if h < min_hw or w < min_hw:
        raise ValueError(f"{name} accepts images of at least {min_hw}×{min_hw} pixels "
                         f"(usually {usual}); received input_shape={(c, h, w)}")
    return c, h, w


def build(name: str, make: Callable[[], Any], input_shape: tuple, usual: str) -> Any:
    """``make()``, with a failure of the layers' shape checks (an input size the
    architecture cannot take) said in terms of the whole network."""
    try:
        return make()
    except ValueError as e:
        raise ValueError(f"{name} cannot take input_shape={input_shape} (usually {usual}): "
                         f"{e}") from None


__all__ = ["build", "check_input_shape", "check_num_classes", "imagenet_classes"]


def imagenet_classes() -> list[str]:
    """The 1,000 ImageNet (ILSVRC-2012) class names, in the order of torchvision's (and
    Keras's) pretrained networks' outputs: ``imagenet_classes()[0] == "tench"``."""
    from importlib import resources

    text = (resources.files("numcnn.models") / "imagenet_classes.txt").read_text("utf-8")
    names = [line.strip() for line in text.splitlines() if line.strip()]
    assert len(names) == 1000, len(names)
    return names
