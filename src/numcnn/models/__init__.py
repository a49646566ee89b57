"""Models: the graph ``Model`` every model shares, ``Sequential`` and the model zoo."""

from ._zoo import imagenet_classes
from .alexnet import alexnet, zfnet
from .autoencoder import SparseAutoencoder, encoder_to_conv
from .flops import MACS, layer_macs, no_macs, register_macs
from .googlenet import googlenet
from .lenet import lenet5
from .lenet1998 import LENET5_C3_TABLE, lenet5_1998
from .model import Model
from .resnet import (
    cifar_resnet,
    resnet,
    resnet18,
    resnet20,
    resnet32,
    resnet34,
    resnet50,
    resnet56,
    resnet101,
    resnet152,
)
from .sequential import Sequential
from .summary import summary_of
from .vgg import vgg, vgg11, vgg13, vgg16, vgg19
from .walk import count_macs, count_params, walk
from .weights import load_torchvision_state_dict, torchvision_state_dict

ZOO = {"lenet5": lenet5, "lenet5-1998": lenet5_1998}
#: the classic networks (issue 11): the names ``numcnn train/summary --model`` accept
ZOO.update({
    "alexnet": alexnet, "zfnet": zfnet, "vgg11": vgg11, "vgg13": vgg13, "vgg16": vgg16,
    "vgg19": vgg19, "googlenet": googlenet, "resnet18": resnet18, "resnet34": resnet34,
    "resnet50": resnet50, "resnet101": resnet101, "resnet152": resnet152,
    "resnet20": resnet20, "resnet32": resnet32, "resnet56": resnet56,
})

__all__ = ["LENET5_C3_TABLE", "MACS", "Model", "Sequential", "ZOO", "count_macs", "count_params",
           "get", "layer_macs", "lenet5", "lenet5_1998", "no_macs", "register_macs",
           "summary_of", "walk"]
__all__ += ["SparseAutoencoder", "encoder_to_conv"]
__all__ += ["alexnet", "cifar_resnet", "googlenet", "imagenet_classes",
            "load_torchvision_state_dict", "resnet", "resnet18", "resnet20", "resnet32",
            "resnet34", "resnet50", "resnet56", "resnet101", "resnet152",
            "torchvision_state_dict", "vgg", "vgg11", "vgg13", "vgg16", "vgg19", "zfnet"]


def get(name: str, **kwargs):
    """Build a zoo model by name, e.g. ``get("lenet5", seed=0)``."""
    try:
        factory = ZOO[name.lower()]
    except (KeyError, AttributeError):
        raise ValueError(
            f"unknown model {name!r}; expected one of: {', '.join(sorted(ZOO))}"
        ) from None
    return factory(**kwargs)
