"""GoogLeNet, Inception v1 (Szegedy et al., "Going Deeper with Convolutions", CVPR 2015), as
torchvision builds it (BatchNorm after every convolution), with the paper's two auxiliary
classifiers as extra outputs.

Layers carry torchvision's module names (``inception4a.branch2.1.conv``, ``aux1.fc2``), so
weights move between the two by name (:func:`numcnn.models.torchvision_state_dict`).
"""

from __future__ import annotations

from typing import Any

from ..layers import (
    AdaptiveAvgPool2D,
    BatchNorm2D,
    Concatenate,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    Input,
    MaxPool2D,
    ReLU,
)
from ._zoo import build, check_input_shape, check_num_classes
from .model import Model
from .weights import load_weights

#: the paper's Table 1: #1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj
INCEPTION = {
    "3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64), "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128), "5b": (384, 192, 384, 48, 128, 128),
}
_INIT = {"name": "normal", "config": {"mean": 0.0, "std": 0.01}}  # torchvision: trunc. ±2


def _init() -> Any:
    from .. import initializers

    return initializers.deserialize(_INIT)


def _basic(x: Any, filters: int, k: int, name: str, stride: int = 1, padding: int = 0) -> Any:
    """torchvision's ``BasicConv2d``: conv (no bias) → BatchNorm (ε = 0.001) → ReLU."""
    x = Conv2D(filters, k, stride=stride, padding=padding, use_bias=False,
               kernel_initializer=_init(), name=f"{name}.conv")(x)
    x = BatchNorm2D(eps=0.001, name=f"{name}.bn")(x)
    return ReLU(name=f"{name}.relu")(x)


def _inception(x: Any, name: str, spec: tuple) -> Any:
    """Four branches concatenated along the channels: 1×1; 1×1 → 3×3; 1×1 → "5×5" (a 3×3
    in torchvision, whose weights this matches; the paper's is 5×5); 3×3 max pool → 1×1."""
    c1, c3r, c3, c5r, c5, pool = spec
    b1 = _basic(x, c1, 1, f"{name}.branch1")
    b2 = _basic(_basic(x, c3r, 1, f"{name}.branch2.0"), c3, 3, f"{name}.branch2.1",
                padding=1)
    b3 = _basic(_basic(x, c5r, 1, f"{name}.branch3.0"), c5, 3, f"{name}.branch3.1",
                padding=1)
    b4 = MaxPool2D(3, stride=1, padding=1, ceil_mode=True, name=f"{name}.branch4.0")(x)
    b4 = _basic(b4, pool, 1, f"{name}.branch4.1")
    return Concatenate(axis=1, name=name)([b1, b2, b3, b4])


def _aux(x: Any, name: str, num_classes: int, dropout: float) -> Any:
    """An auxiliary classifier: average pool to 4×4 → 1×1 conv (128) → FC 1024 → ReLU →
    Dropout → FC (torchvision's ``InceptionAux``)."""
    x = AdaptiveAvgPool2D(4, name=f"{name}.pool")(x)
    x = _basic(x, 128, 1, f"{name}.conv")
    x = Flatten(name=f"{name}.flatten")(x)
    x = ReLU(name=f"{name}.relu")(Dense(1024, kernel_initializer=_init(),
                                        name=f"{name}.fc1")(x))
    x = Dropout(dropout, name=f"{name}.dropout")(x)
    return Dense(num_classes, kernel_initializer=_init(), name=f"{name}.fc2")(x)


def googlenet(num_classes: int = 1000, input_shape: Any = (3, 224, 224),
              aux_logits: bool = False, dropout: float = 0.2, dropout_aux: float = 0.7,
              seed: int | None = None, dtype: Any = "float32", weights: Any = None
              ) -> Model:
    """GoogLeNet: 6,624,904 parameters at 1,000 classes without the auxiliary heads
    (13,004,888 with them), as torchvision's ``googlenet``.

    conv 7×7/2 (64) → max pool 3/2 → conv 1×1 (64) → conv 3×3 (192) → max pool 3/2 →
    inception 3a, 3b → max pool 3/2 → 4a … 4e → max pool 2/2 → 5a, 5b → global average pool
    → Dropout(``dropout``) → FC. Every convolution is followed by BatchNorm and ReLU; the
    pools round up (``ceil_mode=True``). With ``aux_logits`` the model has three outputs,
    ``[logits, aux2, aux1]`` (torchvision's order): the auxiliary classifiers on 4d's and
    4a's maps. Train them as the paper does with
    ``compile(loss=[...] * 3, loss_weights=[1.0, 0.3, 0.3])``; ``predict`` then returns
    the three. Weights start from N(0, 0.01²), BatchNorm from γ = 1, β = 0. Any input of
    at least 15×15 (1×28×28 MNIST works).
    """
    num_classes = check_num_classes(num_classes)
    name, usual = "googlenet", "3×224×224"
    shape = check_input_shape(name, input_shape, 15, usual)

    def make() -> Model:
        x = inp = Input(shape, dtype=dtype)
        x = _basic(x, 64, 7, "conv1", stride=2, padding=3)
        x = MaxPool2D(3, stride=2, ceil_mode=True, name="maxpool1")(x)
        x = _basic(x, 64, 1, "conv2")
        x = _basic(x, 192, 3, "conv3", padding=1)
        x = MaxPool2D(3, stride=2, ceil_mode=True, name="maxpool2")(x)
        x = _inception(x, "inception3a", INCEPTION["3a"])
        x = _inception(x, "inception3b", INCEPTION["3b"])
        x = MaxPool2D(3, stride=2, ceil_mode=True, name="maxpool3")(x)
        x = _inception(x, "inception4a", INCEPTION["4a"])
        aux1 = _aux(x, "aux1", num_classes, dropout_aux) if aux_logits else None
        for block in ("4b", "4c", "4d"):
            x = _inception(x, f"inception{block}", INCEPTION[block])
        aux2 = _aux(x, "aux2", num_classes, dropout_aux) if aux_logits else None
        x = _inception(x, "inception4e", INCEPTION["4e"])
        x = MaxPool2D(2, stride=2, ceil_mode=True, name="maxpool4")(x)
        x = _inception(x, "inception5a", INCEPTION["5a"])
        x = _inception(x, "inception5b", INCEPTION["5b"])
        x = GlobalAvgPool2D(name="avgpool")(x)
        x = Dropout(dropout, name="dropout")(x)
        out = Dense(num_classes, kernel_initializer=_init(), name="fc")(x)
        outputs = [out, aux2, aux1] if aux_logits else out
        return Model(inp, outputs, name=name, seed=seed)

    return load_weights(build(name, make, shape, usual), weights)


__all__ = ["INCEPTION", "googlenet"]
