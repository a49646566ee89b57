"""PyTorch twins of numcnn models for the side-by-side benchmark (PyTorch imported lazily).

A twin is the network a PyTorch user would write for the same model, holding the *same*
weights: conv kernels as they are, Dense ``W`` (in, units) transposed into
``Linear.weight``. Besides the modern LeNet-5's Conv2D/ReLU/MaxPool2D/Flatten/Dense it
expresses the 1998 LeNet-5's own layers with stock PyTorch operations:

* ``Rescale``: ``x·scale + offset``; ``Pad2D``: ``F.pad`` with the fill value;
* C3's connection table: ``F.conv2d`` with the kernel multiplied by the fixed 0/1 mask of
  Table I (absent kernels then get zero gradient, as in numcnn);
* ``Subsampling2D``: ``coef[c]·Σ_{p×p} x + b[c]`` with the window sum
  ``F.avg_pool2d(x, p, divisor_override=1)``;
* ``ScaledTanh``: ``A·tanh(S·x)``; ``RBFOutput``: ``Σ_j (x_j − w_ij)²`` (centres a buffer
  when frozen, as in the paper).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from numcnn.layers import (
    Conv2D,
    Dense,
    Flatten,
    MaxPool2D,
    Pad2D,
    RBFOutput,
    ReLU,
    Rescale,
    ScaledTanh,
    Subsampling2D,
)


@functools.lru_cache(maxsize=1)
def _modules() -> dict[str, type]:
    """The twin module classes (defined on first use: importing this file needs no torch)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Affine(nn.Module):
        def __init__(self, scale: float, offset: float):
            super().__init__()
            self.scale, self.offset = scale, offset

        def forward(self, x):
            return x * self.scale + self.offset

    class Pad(nn.Module):
        def __init__(self, pads: tuple[int, int, int, int], value: float):
            super().__init__()
            pt, pb, pl, pr = pads
            self.pads, self.value = (pl, pr, pt, pb), value

        def forward(self, x):
            return F.pad(x, self.pads, value=self.value)

    class MaskedConv2d(nn.Conv2d):
        def __init__(self, *args: Any, mask: Any, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.register_buffer("mask", mask)

        def forward(self, x):
            return self._conv_forward(x, self.weight * self.mask, self.bias)

    class Subsample(nn.Module):
        def __init__(self, p: int, coef: Any, b: Any):
            super().__init__()
            self.p = p
            self.coef, self.b = nn.Parameter(coef), nn.Parameter(b)

        def forward(self, x):
            s = F.avg_pool2d(x, self.p, divisor_override=1)  # window sums
            return s * self.coef.view(1, -1, 1, 1) + self.b.view(1, -1, 1, 1)

    class ScaledTanhT(nn.Module):
        def __init__(self, A: float, S: float):
            super().__init__()
            self.A, self.S = A, S

        def forward(self, x):
            return self.A * torch.tanh(self.S * x)

    class RBF(nn.Module):
        def __init__(self, W: Any, trainable: bool):
            super().__init__()
            if trainable:
                self.W = nn.Parameter(W)
            else:
                self.register_buffer("W", W)

        def forward(self, x):
            return (x.unsqueeze(1) - self.W).pow(2).sum(2)

    return {"Affine": Affine, "Pad": Pad, "MaskedConv2d": MaskedConv2d,
            "Subsample": Subsample, "ScaledTanh": ScaledTanhT, "RBF": RBF}


def _tensor(a: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(a).copy())


def _conv(layer: Conv2D):
    from torch import nn

    F_, C, kh, kw = layer.params["W"].shape
    pt, pb, pl, pr = layer.pads
    if pt != pb or pl != pr:
        raise NotImplementedError("asymmetric padding has no torch.nn.Conv2d twin")
    args = (C, F_, (kh, kw), layer.stride, (pt, pl))
    table = getattr(layer, "connection_table", None)
    if table is None:
        m = nn.Conv2d(*args, bias=layer.use_bias)
    else:  # table[c, o]: output map o reads input map c
        mask = _tensor(np.asarray(table, dtype=layer.dtype).T[:, :, None, None])
        m = _modules()["MaskedConv2d"](*args, bias=layer.use_bias, mask=mask)
    m.weight.data.copy_(_tensor(layer.params["W"]))
    if layer.use_bias:
        m.bias.data.copy_(_tensor(layer.params["b"]))
    return m


def twin_layer(layer: Any):
    """The PyTorch module computing what ``layer`` computes, with its weights."""
    from torch import nn

    mods = _modules()
    if isinstance(layer, Conv2D):
        m = _conv(layer)
    elif isinstance(layer, Dense):
        n_in, units = layer.params["W"].shape
        m = nn.Linear(n_in, units, bias=layer.use_bias)
        m.weight.data.copy_(_tensor(layer.params["W"].T))
        if layer.use_bias:
            m.bias.data.copy_(_tensor(layer.params["b"]))
    elif type(layer) is ReLU:
        m = nn.ReLU()
    elif type(layer) is MaxPool2D and len(set(layer.pads)) == 1:
        m = nn.MaxPool2d(layer.pool_size, layer.stride, layer.pads[0])
    elif isinstance(layer, Flatten):
        m = nn.Flatten()
    elif isinstance(layer, Rescale):
        m = mods["Affine"](layer.scale, layer.offset)
    elif isinstance(layer, Pad2D):
        m = mods["Pad"](layer.padding, layer.value)
    elif isinstance(layer, Subsampling2D):
        m = mods["Subsample"](layer.pool_size, _tensor(layer.params["coef"]),
                              _tensor(layer.params["b"]))
    elif isinstance(layer, ScaledTanh):
        m = mods["ScaledTanh"](layer.A, layer.S)
    elif isinstance(layer, RBFOutput):
        m = mods["RBF"](_tensor(layer.params["W"]), layer.trainable)
    else:
        raise NotImplementedError(f"no PyTorch twin for {type(layer).__name__}")
    if not layer.trainable:
        for p in m.parameters():
            p.requires_grad_(False)
    return m


def torch_twin(net: Any, lr: float, momentum: float):
    """``(module, optimizer)``: the PyTorch copy of a numcnn ``Sequential`` and SGD with
    momentum on its trainable parameters; ``NotImplementedError`` names a layer it lacks."""
    import torch

    module = torch.nn.Sequential(*[twin_layer(layer) for layer in net.layers])
    module.to(getattr(torch, np.dtype(net.dtype).name))
    params = [p for p in module.parameters() if p.requires_grad]
    return module, torch.optim.SGD(params, lr=lr, momentum=momentum)
