"""Name → object registries, so ``compile(optimizer="adam", loss="mse")`` works.

One small helper shared by losses, optimizers, initializers, schedules and layers: a
``Registry`` maps lower-case names to classes or functions, and ``get`` accepts either a
registered name, an instance, or a class (which it instantiates with no arguments).
"""

from __future__ import annotations

from typing import Any, Callable


class Registry:
    """A case-insensitive mapping from names to factories.

    Args:
        kind: what the registry holds, used in error messages (``"loss"``, ``"optimizer"``).

    >>> r = Registry("thing")
    >>> @r.register("one")
    ... class One: pass
    >>> type(r.get("ONE")).__name__
    'One'
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, Any] = {}

    def register(self, *names: str) -> Callable[[Any], Any]:
        """Decorator that registers an object under one or more names."""

        def deco(obj: Any) -> Any:
            for name in names:
                key = name.lower()
                if key in self._items and self._items[key] is not obj:
                    raise ValueError(f"{self.kind} name {name!r} is already registered")
                self._items[key] = obj
            return obj

        return deco

    def names(self) -> list[str]:
        """All registered names, sorted."""
        return sorted(self._items)

    def lookup(self, name: str) -> Any:
        """Return the registered class or function for ``name`` (not instantiated)."""
        if not isinstance(name, str):
            raise TypeError(f"{self.kind} name must be a string; received {name!r}")
        try:
            return self._items[name.lower()]
        except KeyError:
            raise ValueError(
                f"unknown {self.kind} {name!r}; expected one of: {', '.join(self.names())}"
            ) from None

    def get(self, identifier: Any, **kwargs: Any) -> Any:
        """Resolve a name, a class, or an instance to an instance.

        A string is looked up and called with ``kwargs``; a class is called with ``kwargs``;
        anything else is returned unchanged (it is assumed to already be an instance).
        """
        if isinstance(identifier, str):
            return self.lookup(identifier)(**kwargs)
        if isinstance(identifier, type):
            return identifier(**kwargs)
        if identifier is None:
            raise ValueError(f"a {self.kind} is required; received None")
        return identifier

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items
