"""Models: ``Sequential`` and the model zoo."""

from .lenet import lenet5
from .sequential import Sequential

ZOO = {"lenet5": lenet5}

__all__ = ["Sequential", "ZOO", "get", "lenet5"]


def get(name: str, **kwargs):
    """Build a zoo model by name, e.g. ``get("lenet5", seed=0)``."""
    try:
        factory = ZOO[name.lower()]
    except (KeyError, AttributeError):
        raise ValueError(
            f"unknown model {name!r}; expected one of: {', '.join(sorted(ZOO))}"
        ) from None
    return factory(**kwargs)
