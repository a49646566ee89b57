"""ResNet (He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition", CVPR 2016):
the ImageNet networks as torchvision builds them, and the CIFAR-10 networks of the paper's
§4.2.

Every layer carries torchvision's module name (``layer1.0.conv1``, ``layer2.0.downsample.0``,
``fc``), so :func:`numcnn.models.torchvision_state_dict` and ``weights=`` move weights
between the two by name alone.
"""

from __future__ import annotations

from typing import Any

from ..layers import (
    Add,
    BatchNorm2D,
    Conv2D,
    Dense,
    GlobalAvgPool2D,
    Input,
    MaxPool2D,
    PadChannels,
    ReLU,
)
from ._zoo import build, check_input_shape, check_num_classes
from .model import Model
from .weights import load_weights

#: blocks per stage: (block, counts)
_IMAGENET = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
_CONV_INIT = {"name": "he_normal", "config": {"mode": "fan_out"}}  # torchvision's


def _conv(filters: int, k: int, stride: int, name: str, init: Any = None, dtype: Any = None
          ) -> Conv2D:
    return Conv2D(filters, k, stride=stride, padding=k // 2, use_bias=False, name=name,
                  kernel_initializer=_init(init or _CONV_INIT), dtype=dtype)


def _init(spec: Any) -> Any:
    from .. import initializers

    return initializers.deserialize(spec)


def _bn(name: str, dtype: Any) -> BatchNorm2D:
    return BatchNorm2D(name=name, dtype=dtype)


def _basic(x: Any, planes: int, stride: int, name: str, downsample: bool, dtype: Any,
           shortcut: str = "B", init: Any = None) -> Any:
    """conv3×3 (stride) → BN → ReLU → conv3×3 → BN, plus the shortcut, → ReLU."""
    out = ReLU(name=f"{name}.relu1")(_bn(f"{name}.bn1", dtype)(
        _conv(planes, 3, stride, f"{name}.conv1", init, dtype)(x)))
    out = _bn(f"{name}.bn2", dtype)(_conv(planes, 3, 1, f"{name}.conv2", init, dtype)(out))
    if downsample and shortcut == "B":
        x = _conv(planes, 1, stride, f"{name}.downsample.0", init, dtype)(x)
        x = _bn(f"{name}.downsample.1", dtype)(x)
    elif downsample:  # option A: subsample, then zero channels (no parameter)
        c_in = x.shape[0]
        if stride != 1:
            x = MaxPool2D(1, stride=stride, name=f"{name}.shortcut.subsample")(x)
        extra = planes - c_in
        x = PadChannels(extra // 2, extra - extra // 2, name=f"{name}.shortcut.pad")(x)
    return ReLU(name=f"{name}.relu")(Add(name=f"{name}.add")([out, x]))


def _bottleneck(x: Any, planes: int, stride: int, name: str, downsample: bool,
                dtype: Any) -> Any:
    """conv1×1 → BN → ReLU → conv3×3 (stride, torchvision's "v1.5") → BN → ReLU → conv1×1
    (4·planes) → BN, plus the shortcut, → ReLU."""
    out = ReLU(name=f"{name}.relu1")(_bn(f"{name}.bn1", dtype)(
        _conv(planes, 1, 1, f"{name}.conv1", None, dtype)(x)))
    out = ReLU(name=f"{name}.relu2")(_bn(f"{name}.bn2", dtype)(
        _conv(planes, 3, stride, f"{name}.conv2", None, dtype)(out)))
    out = _bn(f"{name}.bn3", dtype)(_conv(4 * planes, 1, 1, f"{name}.conv3", None,
                                          dtype)(out))
    if downsample:
        x = _conv(4 * planes, 1, stride, f"{name}.downsample.0", None, dtype)(x)
        x = _bn(f"{name}.downsample.1", dtype)(x)
    return ReLU(name=f"{name}.relu")(Add(name=f"{name}.add")([out, x]))


def resnet(depth: int, num_classes: int = 1000, input_shape: Any = (3, 224, 224),
           seed: int | None = None, dtype: Any = "float32", weights: Any = None) -> Model:
    """The ImageNet ResNet of ``depth`` 18, 34, 50, 101 or 152 layers, as torchvision's
    ``resnet18`` … ``resnet152`` (bottleneck stride on the 3×3 convolution).

    conv7×7/2 (64) → BN → ReLU → max pool 3×3/2 → four stages of 64, 128, 256, 512 planes
    (basic blocks of two 3×3 convolutions for 18/34; bottlenecks 1×1, 3×3, 1×1 with 4×
    expansion for 50+), the first block of stages 2–4 with stride 2 and a 1×1 projection
    shortcut (option B) → global average pool → fully connected. Convolutions have no
    bias; they start from ``he_normal(mode="fan_out")``, BatchNorm from γ = 1, β = 0.
    Accepts any input size (stride 32 overall, every layer padded: 1×28×28 MNIST ends in
    1×1 maps). ``num_classes`` outputs (logits).
    """
    if depth not in _IMAGENET:
        raise ValueError(f"resnet depth must be one of {sorted(_IMAGENET)}; received "
                         f"depth={depth!r}")
    kind, counts = _IMAGENET[depth]
    num_classes = check_num_classes(num_classes)
    name = f"resnet{depth}"
    shape = check_input_shape(name, input_shape, 1, "3×224×224")
    expansion = 1 if kind == "basic" else 4

    def make() -> Model:
        x = inp = Input(shape, dtype=dtype)
        x = ReLU(name="relu")(_bn("bn1", dtype)(_conv(64, 7, 2, "conv1", None, dtype)(x)))
        x = MaxPool2D(3, stride=2, padding=1, name="maxpool")(x)
        channels = 64
        for stage, (planes, n) in enumerate(zip((64, 128, 256, 512), counts), start=1):
            for i in range(n):
                stride = 2 if stage > 1 and i == 0 else 1
                down = i == 0 and (stride != 1 or channels != planes * expansion)
                block = f"layer{stage}.{i}"
                if kind == "basic":
                    x = _basic(x, planes, stride, block, down, dtype)
                else:
                    x = _bottleneck(x, planes, stride, block, down, dtype)
                channels = planes * expansion
        x = GlobalAvgPool2D(name="avgpool")(x)
        out = Dense(num_classes, name="fc", kernel_initializer="glorot_uniform",
                    dtype=dtype)(x)
        return Model(inp, out, name=name, seed=seed)

    return load_weights(build(name, make, shape, "3×224×224"), weights)


def resnet18(**kwargs: Any) -> Model:
    """ResNet-18: 11,689,512 parameters at 1,000 classes (torchvision's ``resnet18``)."""
    return resnet(18, **kwargs)


def resnet34(**kwargs: Any) -> Model:
    """ResNet-34: 21,797,672 parameters at 1,000 classes."""
    return resnet(34, **kwargs)


def resnet50(**kwargs: Any) -> Model:
    """ResNet-50: 25,557,032 parameters at 1,000 classes."""
    return resnet(50, **kwargs)


def resnet101(**kwargs: Any) -> Model:
    """ResNet-101: 44,549,160 parameters at 1,000 classes."""
    return resnet(101, **kwargs)


def resnet152(**kwargs: Any) -> Model:
    """ResNet-152: 60,192,808 parameters at 1,000 classes."""
    return resnet(152, **kwargs)


def cifar_resnet(depth: int, num_classes: int = 10, input_shape: Any = (3, 32, 32),
                 seed: int | None = None, dtype: Any = "float32", shortcut: str = "A",
                 weights: Any = None) -> Model:
    """The CIFAR-10 ResNet of He et al. (2016), §4.2: ``depth = 6n + 2`` layers.

    conv3×3 (16) → BN → ReLU → three stages of ``n`` basic blocks with 16, 32 and 64 filters
    on maps of 32², 16², 8² (the first block of stages 2 and 3 with stride 2) → global
    average pool → fully connected. Shortcuts are identities; where the maps halve and the
    filters double, option A (the paper's choice for these nets): subsample by 2 and pad
    the new channels with zeros, no parameter (``shortcut="B"``: a 1×1 projection +
    BatchNorm instead). Convolutions start from ``he_normal`` (fan-in, the paper's [13]).
    ResNet-20 has 0.27 M parameters, ResNet-32 0.46 M, ResNet-56 0.85 M (the paper's
    Table 6). Any input size: 3×32×32 (CIFAR-10) or 1×28×28 (MNIST).
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(f"a CIFAR ResNet has 6n + 2 layers (20, 32, 44, 56, 110, …); "
                         f"received depth={depth!r}")
    if shortcut not in ("A", "B"):
        raise ValueError(f"shortcut must be 'A' or 'B'; received shortcut={shortcut!r}")
    n = (depth - 2) // 6
    num_classes = check_num_classes(num_classes)
    name = f"resnet{depth}"
    shape = check_input_shape(name, input_shape, 1, "3×32×32")
    init = "he_normal"

    def make() -> Model:
        x = inp = Input(shape, dtype=dtype)
        x = ReLU(name="relu")(_bn("bn1", dtype)(_conv(16, 3, 1, "conv1", init, dtype)(x)))
        channels = 16
        for stage, planes in enumerate((16, 32, 64), start=1):
            for i in range(n):
                stride = 2 if stage > 1 and i == 0 else 1
                down = i == 0 and (stride != 1 or channels != planes)
                x = _basic(x, planes, stride, f"layer{stage}.{i}", down, dtype, shortcut,
                           init)
                channels = planes
        x = GlobalAvgPool2D(name="avgpool")(x)
        out = Dense(num_classes, name="fc", kernel_initializer="glorot_uniform",
                    dtype=dtype)(x)
        return Model(inp, out, name=name, seed=seed)

    return load_weights(build(name, make, shape, "3×32×32"), weights)


def resnet20(**kwargs: Any) -> Model:
    """ResNet-20 for CIFAR-10 (He et al. 2016, §4.2): 0.27 M parameters."""
    return cifar_resnet(20, **kwargs)


def resnet32(**kwargs: Any) -> Model:
    """ResNet-32 for CIFAR-10: 0.46 M parameters."""
    return cifar_resnet(32, **kwargs)


def resnet56(**kwargs: Any) -> Model:
    """ResNet-56 for CIFAR-10: 0.85 M parameters."""
    return cifar_resnet(56, **kwargs)


__all__ = ["cifar_resnet", "resnet", "resnet18", "resnet20", "resnet32", "resnet34",
           "resnet50", "resnet56", "resnet101", "resnet152"]
