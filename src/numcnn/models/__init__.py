"""Models: the graph ``Model`` every model shares, ``Sequential`` and the model zoo."""

from .lenet import lenet5
from .lenet1998 import LENET5_C3_TABLE, lenet5_1998
from .model import Model
from .sequential import Sequential

ZOO = {"lenet5": lenet5, "lenet5-1998": lenet5_1998}

__all__ = ["LENET5_C3_TABLE", "Model", "Sequential", "ZOO", "get", "lenet5", "lenet5_1998"]


def get(name: str, **kwargs):
    """Build a zoo model by name, e.g. ``get("lenet5", seed=0)``."""
    try:
        factory = ZOO[name.lower()]
    except (KeyError, AttributeError):
        raise ValueError(
            f"unknown model {name!r}; expected one of: {', '.join(sorted(ZOO))}"
        ) from None
    return factory(**kwargs)
