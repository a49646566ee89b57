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


_FAN_MODES = ("fan_in", "fan_out")


class _He(Initializer):
    def __init__(self, mode: str = "fan_in"):
        if mode not in _FAN_MODES:
            raise ValueError(f"mode must be one of {_FAN_MODES}; received mode={mode!r}")
        self.mode = mode

    def fan(self, fan_in: int, fan_out: int) -> int:
        return fan_in if self.mode == "fan_in" else fan_out

    def get_config(self):
        return {} if self.mode == "fan_in" else {"mode": self.mode}


@INITIALIZERS.register("he_uniform", "kaiming_uniform")
class HeUniform(_He):
    """He et al. (2015), for ReLU nets: ``w ~ U(−a, a)``, ``a = √(6 / fan)``, where ``fan``
    is ``fan_in`` (default) or ``fan_out`` (``mode="fan_out"``, as
    ``torch.nn.init.kaiming_uniform_``)."""

    def sample(self, shape, fan_in, fan_out, rng):
        a = math.sqrt(6.0 / self.fan(fan_in, fan_out))
        return rng.uniform(-a, a, size=shape)


@INITIALIZERS.register("he_normal", "kaiming_normal")
class HeNormal(_He):
    """He et al. (2015): ``w ~ N(0, 2 / fan)``, ``fan`` = ``fan_in`` (default) or
    ``fan_out`` (``mode="fan_out"``: what torchvision's ResNet and VGG use for their
    convolutions, ``kaiming_normal_(mode="fan_out", nonlinearity="relu")``)."""

    def sample(self, shape, fan_in, fan_out, rng):
        return rng.normal(0.0, math.sqrt(2.0 / self.fan(fan_in, fan_out)), size=shape)


_LECUN_VARIANTS = ("modern", "lecun98")


@INITIALIZERS.register("lecun_uniform")
class LecunUniform(Initializer):
    """LeCun uniform: ``w ~ U(−a, a)``.

    * ``variant="modern"`` (default, as Keras ``lecun_uniform``): ``a = √(3 / fan_in)``, so
      ``Var(w) = 1 / fan_in``.
    * ``variant="lecun98"``: ``a = 2.4 / fan_in``, the rule of LeCun et al. (1998),
      "Gradient-based learning applied to document recognition", Appendix C, used to train
      LeNet-5 with the scaled tanh ``1.7159·tanh(2a/3)``. Also registered as
      ``"lecun98_uniform"``.

    Args:
        variant: ``"modern"`` or ``"lecun98"``.

    >>> w = LecunUniform("lecun98")((6, 1, 5, 5), 25, 150, np.random.default_rng(0))
    >>> bool(np.abs(w).max() <= 2.4 / 25)
    True
    """

    def __init__(self, variant: str = "modern"):
        if variant not in _LECUN_VARIANTS:
            raise ValueError(
                f"variant must be one of {_LECUN_VARIANTS}; received variant={variant!r}"
            )
        self.variant = variant

    def bound(self, fan_in: int) -> float:
        """The half-width ``a`` of the uniform interval for a given fan-in."""
        if self.variant == "lecun98":
            return 2.4 / fan_in
        return math.sqrt(3.0 / fan_in)

    def sample(self, shape, fan_in, fan_out, rng):
        a = self.bound(fan_in)
        return rng.uniform(-a, a, size=shape)

    def get_config(self):
        return {} if self.variant == "modern" else {"variant": self.variant}


@INITIALIZERS.register("lecun98_uniform")
class Lecun98Uniform(LecunUniform):
    """LeCun et al. (1998): ``w ~ U(−2.4 / fan_in, 2.4 / fan_in)`` (LeNet-5's initialisation).

    Same as ``LecunUniform(variant="lecun98")``.
    """

    def __init__(self):
        super().__init__("lecun98")

    def get_config(self):
        return {}


@INITIALIZERS.register("lecun_normal")
class LecunNormal(Initializer):
    """LeCun normal (Keras ``lecun_normal``, untruncated): ``w ~ N(0, 1 / fan_in)``."""

    def sample(self, shape, fan_in, fan_out, rng):
        return rng.normal(0.0, math.sqrt(1.0 / fan_in), size=shape)


@INITIALIZERS.register("small_random")
class SmallRandom(Initializer):
    """The course's "small random numbers": ``w ~ N(0, scale²)`` (or ``U(−scale, scale)``).

    The course asks for weights that are *small* (so sigmoid/tanh units do not start
    saturated) and *different* (so units do not stay identical). The scale is fixed — it does
    not depend on the fans — and defaults to ``0.01``, the ``0.01·randn`` of the classic
    recipes. For deep nets prefer a fan-scaled rule (``glorot_*``, ``he_*``).

    Args:
        scale: standard deviation (``"normal"``) or half-width (``"uniform"``); > 0.
        distribution: ``"normal"`` (default) or ``"uniform"``.
    """

    def __init__(self, scale: float = 0.01, distribution: str = "normal"):
        if not scale > 0:
            raise ValueError(f"small_random needs scale > 0; received scale={scale}")
        if distribution not in ("normal", "uniform"):
            raise ValueError(
                "distribution must be 'normal' or 'uniform'; "
                f"received distribution={distribution!r}"
            )
        self.scale = float(scale)
        self.distribution = distribution

    def sample(self, shape, fan_in, fan_out, rng):
        if self.distribution == "uniform":
            return rng.uniform(-self.scale, self.scale, size=shape)
        return rng.normal(0.0, self.scale, size=shape)

    def get_config(self):
        return {"scale": self.scale, "distribution": self.distribution}


def gabor_kernel(
    size: tuple[int, int], theta: float, wavelength: float, sigma: float, gamma: float, psi: float
) -> np.ndarray:
    """One real Gabor filter sampled on a ``kh × kw`` grid centred on the kernel.

    ``g(x, y) = exp(−(x'² + γ² y'²) / (2σ²)) · cos(2π x' / λ + ψ)`` with
    ``x' = x cos θ + y sin θ``, ``y' = −x sin θ + y cos θ``, where ``x = j − (kw − 1)/2`` is
    the column offset and ``y = i − (kh − 1)/2`` the row offset from the kernel centre.

    Args:
        size: (kh, kw). theta: orientation θ (radians). wavelength: λ (pixels).
        sigma: Gaussian envelope σ (pixels). gamma: spatial aspect ratio γ. psi: phase ψ.

    Returns:
        float64 array of shape (kh, kw), not normalised.
    """
    kh, kw = size
    y = np.arange(kh, dtype=np.float64)[:, None] - (kh - 1) / 2.0
    x = np.arange(kw, dtype=np.float64)[None, :] - (kw - 1) / 2.0
    xr = x * math.cos(theta) + y * math.sin(theta)
    yr = -x * math.sin(theta) + y * math.cos(theta)
    env = np.exp(-(xr**2 + gamma**2 * yr**2) / (2.0 * sigma**2))
    return env * np.cos(2.0 * math.pi * xr / wavelength + psi)


@INITIALIZERS.register("gabor")
class Gabor(Initializer):
    """A bank of Gabor filters for convolution kernels (F, C, kh, kw).

    Gabor filters resemble the receptive fields of simple cells in the visual cortex; the
    course suggests them for initialising the first convolution layer. Each filter is
    (see :func:`gabor_kernel`)

    ``g(x, y) = exp(−(x'² + γ² y'²) / (2σ²)) · cos(2π x' / λ + ψ)``,
    ``x' = x cos θ + y sin θ``, ``y' = −x sin θ + y cos θ``

    with ``(x, y)`` the column/row offset from the kernel centre.

    **Bank.** With ``n_o = n_orientations``, ``n_s = n_scales`` and ``P = len(phases)``,
    output map ``f`` uses

    * orientation ``θ = (f mod n_o) · π / n_o``,
    * scale ``s = ⌊f / n_o⌋ mod n_s`` with wavelength ``λ_s = max(2, K / 2^s)``,
      ``K = max(kh, kw)`` (or ``wavelengths[s]`` when given), and ``σ_s = sigma_ratio · λ_s``,
    * phase ``ψ = phases[⌊f / (n_o·n_s)⌋]`` while ``f < n_o·n_s·P``; filters beyond the full
      bank draw ``ψ ~ U(0, 2π)`` from ``rng`` so that no two kernels are identical.

    **Normalisation.** If ``zero_mean`` the kernel's mean is subtracted (no response to a flat
    image). Then it is scaled to unit L2 norm (left as is if its norm is 0), copied into every
    input channel, and multiplied by ``gain / √C`` so the whole filter ``W[f]`` (over C, kh,
    kw) has L2 norm ``gain``.

    Args:
        n_orientations: number of orientations ``n_o`` (≥ 1).
        n_scales: number of scales ``n_s`` (≥ 1); ignored when ``wavelengths`` is given.
        wavelengths: explicit wavelengths λ in pixels (each > 0), one per scale.
        sigma_ratio: ``σ / λ`` (0.56 ≈ a one-octave bandwidth).
        gamma: spatial aspect ratio γ (> 0).
        phases: phase offsets ψ used by the first full bank.
        zero_mean: subtract each kernel's mean before normalising.
        gain: L2 norm of each output filter ``W[f]``.

    >>> W = Gabor(n_orientations=4)((8, 1, 5, 5), 25, 200, np.random.default_rng(0))
    >>> W.shape, round(float(np.linalg.norm(W[0])), 6)
    ((8, 1, 5, 5), 1.0)
    """

    def __init__(
        self,
        n_orientations: int = 4,
        n_scales: int = 2,
        wavelengths: Any = None,
        sigma_ratio: float = 0.56,
        gamma: float = 0.5,
        phases: Any = (0.0, math.pi / 2),
        zero_mean: bool = True,
        gain: float = 1.0,
    ):
        if not isinstance(n_orientations, (int, np.integer)) or n_orientations < 1:
            raise ValueError(
                f"n_orientations must be a positive int; received n_orientations={n_orientations!r}"
            )
        if not isinstance(n_scales, (int, np.integer)) or n_scales < 1:
            raise ValueError(f"n_scales must be a positive int; received n_scales={n_scales!r}")
        if wavelengths is not None:
            wavelengths = [float(w) for w in wavelengths]
            if not wavelengths or min(wavelengths) <= 0:
                raise ValueError(
                    f"wavelengths must be a non-empty list of positive numbers; "
                    f"received wavelengths={wavelengths!r}"
                )
        if not sigma_ratio > 0:
            raise ValueError(f"sigma_ratio must be positive; received sigma_ratio={sigma_ratio}")
        if not gamma > 0:
            raise ValueError(f"gamma must be positive; received gamma={gamma}")
        phases = [float(p) for p in phases]
        if not phases:
            raise ValueError(f"phases must not be empty; received phases={phases!r}")
        self.n_orientations = int(n_orientations)
        self.wavelengths = wavelengths
        self.n_scales = len(wavelengths) if wavelengths is not None else int(n_scales)
        self.sigma_ratio = float(sigma_ratio)
        self.gamma = float(gamma)
        self.phases = phases
        self.zero_mean = bool(zero_mean)
        self.gain = float(gain)

    def filter_params(self, f: int, size: tuple[int, int]) -> tuple[float, float, float]:
        """``(θ, λ, σ)`` of output map ``f``; its phase comes from :meth:`sample`."""
        s = (f // self.n_orientations) % self.n_scales
        theta = (f % self.n_orientations) * math.pi / self.n_orientations
        if self.wavelengths is not None:
            lam = self.wavelengths[s]
        else:
            lam = max(2.0, max(size) / 2.0**s)
        return theta, lam, self.sigma_ratio * lam

    def sample(self, shape, fan_in, fan_out, rng):
        if len(shape) != 4:
            raise ValueError(
                f"gabor initialises convolution kernels (F, C, kh, kw); received shape={shape}"
            )
        F, C, kh, kw = shape
        bank = self.n_orientations * self.n_scales
        W = np.empty(shape, dtype=np.float64)
        for f in range(F):
            theta, lam, sigma = self.filter_params(f, (kh, kw))
            r = f // bank
            psi = self.phases[r] if r < len(self.phases) else rng.uniform(0.0, 2.0 * math.pi)
            g = gabor_kernel((kh, kw), theta, lam, sigma, self.gamma, psi)
            if self.zero_mean:
                g = g - g.mean()
            norm = np.linalg.norm(g)
            if norm > 0:
                g = g / norm
            W[f] = g * (self.gain / math.sqrt(C))
        return W

    def get_config(self):
        return {
            "n_orientations": self.n_orientations,
            "n_scales": self.n_scales,
            "wavelengths": self.wavelengths,
            "sigma_ratio": self.sigma_ratio,
            "gamma": self.gamma,
            "phases": list(self.phases),
            "zero_mean": self.zero_mean,
            "gain": self.gain,
        }


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
