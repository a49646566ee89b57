"""What the picture functions share: one input for a model, layer names checked against the
model with the available names listed."""

from __future__ import annotations

from typing import Any

import numpy as np


def single_input(model: Any, x: Any) -> np.ndarray:
    """``x`` — one sample ``(C, H, W)`` (or ``(1, C, H, W)``) — as a batch of one in the
    model's dtype, its shape checked against the model's input."""
    if getattr(model, "graph", None) is None:
        raise ValueError(f"{getattr(model, 'display_name', model)!r} is not a built model")
    if isinstance(model.input_shape, list):
        raise ValueError(f"{model.display_name} has {len(model.input_shape)} inputs; the "
                         "pictures take models of one input")
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"expected a numeric array; received dtype {a.dtype}")
    shape = tuple(model.input_shape)
    if a.ndim == len(shape):
        a = a[None]
    if a.ndim != len(shape) + 1 or a.shape[0] != 1:
        raise ValueError(f"expected one sample of shape {shape} (or (1, *{shape})); "
                         f"received {a.shape}")
    if any(d is not None and d != n for d, n in zip(shape, a.shape[1:])):
        raise ValueError(f"{model.display_name} takes inputs of shape {shape}; received "
                         f"{a.shape[1:]}")
    if not np.isfinite(a).all():
        raise ValueError("the input holds NaN or infinite values")
    return np.ascontiguousarray(a, dtype=model.dtype)


def names_of(model: Any) -> list[str]:
    """The model's top-level layer names, in call order."""
    return [model.layer_name(layer) for layer in model.layers]


def check_layer_names(model: Any, names: Any, allow_input: bool = True) -> list[str]:
    """``names`` (a list, or one comma-separated string) checked against the model: an
    unknown name is a ``ValueError`` that lists the model's layer names."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    names = list(names)
    if not names:
        raise ValueError("no layer names given")
    known = names_of(model)
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"layer names are strings; received {name!r}")
        if name in known or (allow_input and name == "input"):
            continue
        raise ValueError(f"no layer named {name!r} in {model.display_name}; its layers: "
                         f"{', '.join(known)}")
    return names


def step_of(model: Any, name: str) -> Any:
    """The graph step of the first call of layer ``name``."""
    layer = model.get_layer(name)
    step = next((st for st in model.graph.steps if st.layer is layer), None)
    if step is None:  # pragma: no cover - every layer of a built graph has a step
        raise ValueError(f"layer {name!r} is not called in {model.display_name}")
    return step


def describe_shape(shape: tuple) -> str:
    """``(6, 28, 28)`` → ``"6@28×28"``; other shapes as tuples."""
    if len(shape) == 3:
        return f"{shape[0]}@{shape[1]}×{shape[2]}"
    return "(" + ", ".join(str(d) for d in shape) + ")"


def as_image(x: np.ndarray) -> tuple[np.ndarray, bool]:
    """One sample as ``imshow`` draws it, and whether it is colour: ``(H, W)`` and
    ``(1, H, W)`` as grey ``(H, W)``; ``(3, H, W)`` as RGB ``(x − min)/(max − min)``,
    ``(H, W, 3)`` in [0, 1]; other channel counts as the channel mean, grey."""
    x = np.asarray(x)
    if x.ndim == 2:
        return x, False
    if x.ndim == 3 and x.shape[0] == 3:
        lo, hi = float(x.min()), float(x.max())
        img = (x.astype(np.float64) - lo) / (hi - lo if hi > lo else 1.0)
        return img.transpose(1, 2, 0), True
    if x.ndim == 3:
        return (x[0] if x.shape[0] == 1 else x.astype(np.float64).mean(axis=0)), False
    raise ValueError(f"expected an image (H, W) or (C, H, W); received shape {x.shape}")
