"""Models: the graph ``Model`` every model shares, ``Sequential`` and the model zoo."""

from .flops import MACS, layer_macs, no_macs, register_macs
from .lenet import lenet5
from .lenet1998 import LENET5_C3_TABLE, lenet5_1998
from .model import Model
from .sequential import Sequential
from .summary import summary_of
from .walk import count_macs, count_params, walk

ZOO = {"lenet5": lenet5, "lenet5-1998": lenet5_1998}

__all__ = ["LENET5_C3_TABLE", "MACS", "Model", "Sequential", "ZOO", "count_macs", "count_params",
           "get", "layer_macs", "lenet5", "lenet5_1998", "no_macs", "register_macs",
           "summary_of", "walk"]


def get(name: str, **kwargs):
    """Build a zoo model by name, e.g. ``get("lenet5", seed=0)``."""
    try:
        factory = ZOO[name.lower()]
    except (KeyError, AttributeError):
        raise ValueError(
            f"unknown model {name!r}; expected one of: {', '.join(sorted(ZOO))}"
        ) from None
    return factory(**kwargs)
