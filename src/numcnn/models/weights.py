"""Weights under PyTorch's names: a numcnn model's parameters, buffers or gradients as a
torchvision ``state_dict`` (``layer1.0.conv1.weight``), and such a dict (or an ``.npz`` of
one) loaded into a model with strict name and shape checks.

The zoo networks name their layers after torchvision's modules, so the mapping is the layer
name plus PyTorch's name for each array:

==================  =====================================  ================================
numcnn layer        numcnn array                           PyTorch
==================  =====================================  ================================
Conv2D              ``W`` (F, C/groups, kh, kw), ``b``     ``weight`` (same layout), ``bias``
Dense               ``W`` (in, out), ``b``                 ``weight`` (out, in): transposed
BatchNorm1D/2D      ``gamma``, ``beta``; ``running_mean``,  ``weight``, ``bias``;
                    ``running_var``                        ``running_mean``, ``running_var``,
                                                           ``num_batches_tracked``
==================  =====================================  ================================

A PyTorch user saves pretrained weights for numcnn in two lines::

    import numpy as np, torchvision
    sd = torchvision.models.resnet18(weights="DEFAULT").state_dict()
    np.savez("resnet18.npz", **{k: v.numpy() for k, v in sd.items()})

and ``numcnn.models.resnet18(weights="resnet18.npz")`` loads it. The file is read as
untrusted input (bounded, no pickle; by :mod:`numcnn.io`, which installs the reader).
"""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

from ..layers.base import Layer

#: numcnn array name -> PyTorch's, per layer class name (Dense's weight is transposed)
_NAMES: dict[str, dict[str, str]] = {
    "Conv2D": {"W": "weight", "b": "bias"},
    "Dense": {"W": "weight", "b": "bias"},
    "BatchNorm1D": {"gamma": "weight", "beta": "bias", "running_mean": "running_mean",
                    "running_var": "running_var"},
    "BatchNorm2D": {"gamma": "weight", "beta": "bias", "running_mean": "running_mean",
                    "running_var": "running_var"},
}
_BN = ("BatchNorm1D", "BatchNorm2D")
_READER: list[Callable[[str], dict[str, np.ndarray]]] = []


def set_weights_reader(reader: Callable[[str], dict[str, np.ndarray]]) -> None:
    """Install the function that reads an ``.npz`` of arrays for ``weights=`` (done by
    :mod:`numcnn.io` on import: models never import the io package)."""
    _READER[:] = [reader]


def _entries(model: Any) -> list[tuple[str, Layer, str, str, bool]]:
    """``(torch_name, layer, numcnn_key, kind, transpose)`` for every array of ``model``;
    ``kind`` is "param" or "buffer"."""
    out = []
    for kind, named in (("param", model.named_params()), ("buffer", model.named_buffers())):
        for q, layer, key in named:
            cls = type(layer).__name__
            names = _NAMES.get(cls)
            if names is None or key not in names:
                raise ValueError(f"layer {q.rsplit('/', 1)[0]!r} ({cls}) has no PyTorch "
                                 f"counterpart for its array {key!r}; torchvision names "
                                 f"exist for {', '.join(sorted(_NAMES))}")
            prefix = q[: -len(key) - 1].replace("/", ".")
            out.append((f"{prefix}.{names[key]}", layer, key, kind,
                        cls == "Dense" and key == "W"))
    return out


def torchvision_state_dict(model: Any, grads: bool = False) -> dict[str, np.ndarray]:
    """The model's arrays under PyTorch's names, as copies.

    Args:
        model: a built numcnn model (a zoo network, or any model of Conv2D, Dense and
            BatchNorm layers named like PyTorch modules).
        grads: give the current gradients of the parameters instead (buffers have none):
            what ``{k: p.grad for k, p in torch_model.named_parameters()}`` holds after
            the same backward pass.

    Returns:
        ``{"layer1.0.conv1.weight": array, …}``; BatchNorm layers also give
        ``num_batches_tracked`` (0: numcnn's running averages use a fixed momentum).
    """
    out: dict[str, np.ndarray] = {}
    for name, layer, key, kind, transpose in _entries(model):
        if grads:
            if kind != "param":
                continue
            a = layer.grads[key]
        else:
            a = layer.params[key] if kind == "param" else layer.buffers[key]
        out[name] = np.array(a.T if transpose else a, copy=True)
        if not grads and kind == "buffer" and key == "running_var":
            out[name[: -len("running_var")] + "num_batches_tracked"] = np.array(0, np.int64)
    return out


def load_torchvision_state_dict(model: Any, state: dict[str, Any], strict: bool = True,
                                source: str = "the weights") -> None:
    """Copy a PyTorch ``state_dict`` (names → arrays) into ``model``.

    Every name must be one of the model's and every model array must be given (``strict``;
    ``num_batches_tracked`` may be absent), with its exact shape (Dense weights in
    PyTorch's (out, in) layout), a real dtype and finite values; arrays are converted to
    the model's dtype. Nothing is changed unless all checks pass.

    Raises:
        ValueError: naming the missing and unexpected names, or the array and what was
            expected and received.
    """
    if not isinstance(state, dict):
        raise ValueError(f"{source}: expected a dict of arrays (a state_dict); received "
                         f"{type(state).__name__}")
    entries = {name: rest for name, *rest in _entries(model)}
    tracked = {n[: -len("running_var")] + "num_batches_tracked"
               for n, (layer, key, _, _) in entries.items() if key == "running_var"}
    keys = [str(k) for k in state]
    missing = sorted(set(entries) - set(keys))
    unexpected = sorted(set(keys) - set(entries) - tracked)
    if strict and (missing or unexpected):
        parts = []
        if missing:
            parts.append(f"missing {len(missing)}: {_few(missing)}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)}: {_few(unexpected)}")
        raise ValueError(f"{source} do not fit the model {model.name!r}: "
                         f"{'; '.join(parts)}")
    staged = []
    for name, (layer, key, kind, transpose) in entries.items():
        if name not in state:
            continue
        a = _array(state[name], name, source)
        target = layer.params[key] if kind == "param" else layer.buffers[key]
        expected = target.shape[::-1] if transpose else target.shape
        if a.shape != expected:
            raise ValueError(f"{source}: {name!r} has shape {a.shape}; the model expects "
                             f"{expected}")
        if not np.isfinite(a).all():
            raise ValueError(f"{source}: {name!r} holds {int((~np.isfinite(a)).sum())} "
                             "non-finite values")
        staged.append((target, a.T if transpose else a))
    for name in tracked & set(keys):
        a = _array(state[name], name, source, integer=True)
        if a.shape != ():
            raise ValueError(f"{source}: {name!r} must be a scalar; received shape {a.shape}")
    for target, a in staged:
        target[...] = a


def _array(value: Any, name: str, source: str, integer: bool = False) -> np.ndarray:
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor, if given one
        value = value.detach().cpu().numpy()
    a = np.asarray(value)
    kinds = "iu" if integer else "f"
    if a.dtype.kind not in kinds:
        want = "an integer" if integer else "a floating-point"
        raise ValueError(f"{source}: {name!r} must be {want} array; received dtype {a.dtype}")
    return a


def _few(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", … ({len(names) - limit} more)" if len(names) > limit else "")


def load_weights(model: Any, weights: Any) -> Any:
    """``weights=`` of the zoo constructors: a ``state_dict``-like dict, or the path of an
    ``.npz`` holding one; returns ``model``."""
    if weights is None:
        return model
    if isinstance(weights, (str, os.PathLike)):
        if not _READER:
            raise RuntimeError("no .npz reader installed (import numcnn)")
        source = os.fspath(weights)
        state = _READER[0](source)
    else:
        source = "the weights"
        state = weights
    load_torchvision_state_dict(model, state, source=source)
    return model


__all__ = ["load_torchvision_state_dict", "load_weights", "set_weights_reader",
           "torchvision_state_dict"]
