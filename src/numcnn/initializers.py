"""Weight initializers, selectable by name (``numcnn.initializers.get("he_uniform")``).

An initializer is called as ``init(shape, fan_in, fan_out, rng, dtype)``. Fans are supplied by
the layer: for a convolution kernel (F, C, kh, kw) ``fan_in = C·kh·kw`` and
``fan_out = F·kh·kw``; for a dense matrix (in, units) ``fan_in = in``, ``fan_out = units``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._registry import Registry

INITIALIZERS = Registry("initializer")


class Initializer:
    """Base class; subclasses implement ``sample``."""

    def __call__(
        self,
        shape: tuple[int, ...],
        fan_in: int,
        fan_out: int,
        rng: np.random.Generator,
        dtype: Any = np.float32,
    ) -> np.ndarray:
        return np.asarray(self.sample(tuple(shape), fan_in, fan_out, rng), dtype=dtype)

    def sample(self, shape, fan_in, fan_out, rng) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


@INITIALIZERS.register("zeros")
class Zeros(Initializer):
    """``w = 0``."""

    def sample(self, shape, fan_in, fan_out, rng):
        return np.zeros(shape)


@INITIALIZERS.register("constant")
class Constant(Initializer):
    """``w = value``."""

    def __init__(self, value: float = 0.0):
        self.value = float(value)

    def sample(self, shape, fan_in, fan_out, rng):
        return np.full(shape, self.value)

    def get_config(self):
        return {"value": self.value}


@INITIALIZERS.register("uniform")
class Uniform(Initializer):
    """``w ~ U(low, high)``."""

    def __init__(self, low: float = -0.05, high: float = 0.05):
        if not high > low:
            raise ValueError(f"uniform needs high > low; received low={low}, high={high}")
        self.low, self.high = float(low), float(high)

    def sample(self, shape, fan_in, fan_out, rng):
        return rng.uniform(self.low, self.high, size=shape)

    def get_config(self):
        return {"low": self.low, "high": self.high}


@INITIALIZERS.register("normal")
class Normal(Initializer):
    """``w ~ N(mean, std²)``."""

    def __init__(self, mean: float = 0.0, std: float = 0.05):
        if not std > 0:
            raise ValueError(f"normal needs std > 0; received std={std}")
        self.mean, self.std = float(mean), float(std)

    def sample(self, shape, fan_in, fan_out, rng):
        return rng.normal(self.mean, self.std, size=shape)

    def get_config(self):
        return {"mean": self.mean, "std": self.std}


@INITIALIZERS.register("glorot_uniform", "xavier_uniform")
class GlorotUniform(Initializer):
    """Glorot & Bengio (2010): ``w ~ U(−a, a)``, ``a = √(6 / (fan_in + fan_out))``."""

    def sample(self, shape, fan_in, fan_out, rng):
        a = math.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-a, a, size=shape)


@INITIALIZERS.register("glorot_normal", "xavier_normal")
class GlorotNormal(Initializer):
    """Glorot & Bengio (2010): ``w ~ N(0, 2 / (fan_in + fan_out))``."""

    def sample(self, shape, fan_in, fan_out, rng):
        return rng.normal(0.0, math.sqrt(2.0 / (fan_in + fan_out)), size=shape)


@INITIALIZERS.register("he_uniform", "kaiming_uniform")
class HeUniform(Initializer):
    """He et al. (2015), for ReLU nets: ``w ~ U(−a, a)``, ``a = √(6 / fan_in)``."""

    def sample(self, shape, fan_in, fan_out, rng):
        a = math.sqrt(6.0 / fan_in)
        return rng.uniform(-a, a, size=shape)


@INITIALIZERS.register("he_normal", "kaiming_normal")
class HeNormal(Initializer):
    """He et al. (2015): ``w ~ N(0, 2 / fan_in)``."""

    def sample(self, shape, fan_in, fan_out, rng):
        return rng.normal(0.0, math.sqrt(2.0 / fan_in), size=shape)


@INITIALIZERS.register("lecun_uniform")
class LecunUniform(Initializer):
    """LeCun: ``w ~ U(−a, a)``, ``a = √(3 / fan_in)`` (variance 1 / fan_in)."""

    def sample(self, shape, fan_in, fan_out, rng):
        a = math.sqrt(3.0 / fan_in)
        return rng.uniform(-a, a, size=shape)


def get(identifier: Any, **kwargs: Any) -> Initializer:
    """An initializer from a registered name, a class, or an instance."""
    return INITIALIZERS.get(identifier, **kwargs)


def serialize(init: Initializer) -> Any:
    """A name (when the initializer has no arguments) or ``{"name": ..., "config": ...}``."""
    for name in INITIALIZERS.names():
        if INITIALIZERS.lookup(name) is type(init):
            cfg = init.get_config()
            return name if not cfg else {"name": name, "config": cfg}
    raise ValueError(f"initializer {init!r} is not registered and cannot be saved")


def deserialize(spec: Any) -> Initializer:
    """Inverse of :func:`serialize`; also accepts a plain name."""
    if isinstance(spec, dict):
        return get(spec["name"], **spec.get("config", {}))
    return get(spec)
