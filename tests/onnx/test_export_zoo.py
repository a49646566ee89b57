"""Every network of the zoo exported and run in ONNX Runtime against numcnn, within numcnn's
own float32 error (see ``export_harness``); BatchNorm's running statistics randomised so
that inference mode is really compared.

Every network runs at its lowest and highest opsets, on batches of 1 and 7 (GoogLeNet, the
VGG-11s and ResNet-18: 1 and 3); the small ones in float64 too. The ImageNet networks run
on small inputs (the architectures take them: the convolutions are the same, the maps
smaller) — VGG and the ResNets with all their layers; the networks whose fully connected
layers fix the input (AlexNet's paper variant, ZFNet) at their smallest size (AlexNet and
ZFNet hold 61–62 M parameters whatever the input size). Every VGG runs with a small
classifier; VGG-16 once with torchvision's (25,088 → 4,096 → 4,096 → 1,000)."""

from __future__ import annotations

import numpy as np
import pytest
from export_harness import check_model, normal_inputs

from numcnn import models

#: (label, zoo name, factory arguments, input shape, opsets, batches, float64 too)
SMALL = dict(opsets="both", batches=(1, 7), float64=True)
BIG = dict(opsets="both", batches=(1, 7), float64=False)
CASES = [
    ("lenet5", "lenet5", {}, (1, 28, 28), SMALL),
    ("lenet5-1998", "lenet5-1998", {}, (1, 28, 28), SMALL),
    ("resnet20", "resnet20", {"input_shape": (3, 16, 16)}, (3, 16, 16), SMALL),
    ("resnet32-B", "resnet32", {"input_shape": (1, 12, 12), "shortcut": "B"}, (1, 12, 12),
     dict(SMALL, float64=False)),
    ("resnet56", "resnet56", {"input_shape": (3, 8, 8)}, (3, 8, 8), BIG),
    ("googlenet-aux", "googlenet", {"aux_logits": True, "num_classes": 10,
                                    "input_shape": (3, 40, 40)}, (3, 40, 40),
     dict(SMALL, batches=(1, 3), float64=False)),
    ("alexnet", "alexnet", {"num_classes": 10, "input_shape": (3, 63, 63)}, (3, 63, 63), BIG),
    ("alexnet-paper", "alexnet", {"variant": "paper", "num_classes": 10}, (3, 227, 227), BIG),
    ("zfnet", "zfnet", {"num_classes": 10, "input_shape": (3, 207, 207)}, (3, 207, 207), BIG),
] + [
    (f"{v}{'-bn' * bn}", v, {"batch_norm": bn, "num_classes": 10, "input_shape": (3, 32, 32),
                             "classifier": (32, 32), "pool_output": (2, 2)}, (3, 32, 32),
     dict(SMALL, batches=(1, 3), float64=False) if v == "vgg11" else BIG)
    for v in ("vgg11", "vgg13", "vgg16", "vgg19") for bn in (False, True)
] + [
    (r, r, {"num_classes": 10, "input_shape": (3, 32, 32)}, (3, 32, 32),
     dict(SMALL, batches=(1, 3), float64=False) if r == "resnet18" else BIG)
    for r in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
]


def randomise_statistics(model, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for lay in model.leaf_layers():
        if "running_var" in lay.buffers:
            C = lay.buffers["running_var"].shape[0]
            lay.buffers["running_mean"][...] = rng.normal(0.0, 0.1, C)
            lay.buffers["running_var"][...] = rng.uniform(0.5, 1.5, C)


@pytest.mark.parametrize("label,name,kwargs,shape,how", CASES, ids=[c[0] for c in CASES])
def test_zoo_network_in_onnxruntime(label, name, kwargs, shape, how):
    model = models.get(name, seed=0, **kwargs)
    randomise_statistics(model, 1)
    opsets = how["opsets"]
    if opsets == (None,):
        from numcnn.onnx.exporter import supported_opsets

        opsets = (supported_opsets()[-1],)
    scale = 255.0 if name == "lenet5-1998" else 1.0  # LeCun's model takes grey levels
    base = normal_inputs([shape] * 1)

    def make(rng, n, dtype):
        return [a * dtype(scale) for a in base(rng, n, dtype)]

    info = check_model(model, make, opsets=opsets, batches=how["batches"],
                       float64=how["float64"])
    proto = info["proto"]
    assert [o.name for o in proto.graph.output] == model.output_names
    names = {n.name for n in proto.graph.node}
    assert {model.layer_name(lay) for lay in model.layers} <= names
