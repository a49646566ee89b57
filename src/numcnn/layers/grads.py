"""A layer's gradient arrays, made when first used.

``Layer.grads`` maps every parameter name to its gradient array, but allocates the array
(zeros shaped like the parameter) only the first time it is looked up — by a backward pass
filling it, an optimizer reading it, or a caller. A model that only predicts never pays
for them (VGG-11's classifier: 513 MB of gradients next to its 513 MB of weights; issue
11). Once made, an array is kept and filled in place by every later backward pass, so
anything holding it (an optimizer step, the data-parallel workers' shared copies) keeps
seeing the current gradient.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping

import numpy as np


class GradDict(MutableMapping):
    """``{parameter name: gradient array}`` with the keys of ``params``; an array is made
    (``np.zeros_like`` the parameter) on its first lookup.

    >>> params = {"W": np.ones((2, 3), np.float32)}
    >>> grads = GradDict(params)
    >>> list(grads), grads.made()
    (['W'], [])
    >>> grads["W"].shape, grads.made()
    ((2, 3), ['W'])
    """

    def __init__(self, params: Mapping[str, np.ndarray]):
        self._params = params
        self._arrays: dict[str, np.ndarray] = {}

    def __getitem__(self, key: str) -> np.ndarray:
        a = self._arrays.get(key)
        if a is None:
            a = self._arrays[key] = np.zeros_like(self._params[key])  # KeyError if unknown
        return a

    def __setitem__(self, key: str, value: np.ndarray) -> None:
        self._arrays[key] = value

    def __delitem__(self, key: str) -> None:
        del self._arrays[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def __repr__(self) -> str:
        return f"GradDict({sorted(self._params)}, made={self.made()})"

    def made(self) -> list[str]:
        """The names whose array exists."""
        return [k for k in self._params if k in self._arrays]

    def forget(self, key: str) -> None:
        """Drop the array of ``key`` (its parameter was replaced by one of another shape)."""
        self._arrays.pop(key, None)
