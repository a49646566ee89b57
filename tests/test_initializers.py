"""Initializer statistics (bounds, mean, variance) and the Gabor bank against its formula.

Every registered initializer name must have a case in ``CASES``; the coverage test fails
otherwise. Fans are computed by the layers themselves (Conv2D, Dense) so the test also checks
that the fan-in/fan-out the layers pass match the textbook definitions.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import numcnn  # noqa: F401  (imports every module, so every initializer is registered)
from numcnn import initializers
from numcnn.initializers import INITIALIZERS
from numcnn.layers import Conv2D, Dense

# (layer factory, per-sample input shape, fan_in, fan_out) — fans written out by hand
SHAPES = {
    "conv": (lambda init: Conv2D(48, (3, 5), kernel_initializer=init, dtype="float64"),
             (16, 9, 9), 16 * 3 * 5, 48 * 3 * 5),
    "dense": (lambda init: Dense(300, kernel_initializer=init, dtype="float64"),
              (200,), 200, 300),
}


def _uniform(a_fn):
    """Check: all |w| ≤ a, max close to a, mean 0, variance a²/3."""

    def check(w, fi, fo):
        a = a_fn(fi, fo)
        assert np.abs(w).max() <= a
        assert np.abs(w).max() > 0.99 * a
        n = w.size
        assert abs(w.mean()) < 5 * a / math.sqrt(3 * n)
        np.testing.assert_allclose(w.var(), a * a / 3, rtol=0.05)

    return check


def _normal(std_fn, mean=0.0):
    def check(w, fi, fo):
        s = std_fn(fi, fo)
        assert abs(w.mean() - mean) < 5 * s / math.sqrt(w.size)
        np.testing.assert_allclose(w.std(), s, rtol=0.03)
        # tails: a normal sample of this size reaches beyond 3σ, a uniform one never does
        assert np.abs(w - mean).max() > 3 * s

    return check


def _const(v):
    def check(w, fi, fo):
        assert np.all(w == v)

    return check


def _uniform_range(lo, hi):
    def check(w, fi, fo):
        assert w.min() >= lo and w.max() <= hi
        assert w.min() < lo + 0.01 * (hi - lo) and w.max() > hi - 0.01 * (hi - lo)
        np.testing.assert_allclose(w.mean(), (lo + hi) / 2, atol=5 * (hi - lo) / math.sqrt(
            12 * w.size))
        np.testing.assert_allclose(w.var(), (hi - lo) ** 2 / 12, rtol=0.05)

    return check


# name -> list of (kwargs, check(w, fan_in, fan_out))
CASES = {
    "zeros": [({}, _const(0.0))],
    "constant": [({"value": 0.25}, _const(0.25))],
    "uniform": [({}, _uniform_range(-0.05, 0.05)), ({"low": -1, "high": 3},
                                                     _uniform_range(-1, 3))],
    "normal": [({}, _normal(lambda fi, fo: 0.05)),
               ({"mean": 1.0, "std": 0.2}, _normal(lambda fi, fo: 0.2, mean=1.0))],
    "small_random": [({}, _normal(lambda fi, fo: 0.01)),
                     ({"scale": 0.1, "distribution": "uniform"}, _uniform(lambda fi, fo: 0.1))],
    "glorot_uniform": [({}, _uniform(lambda fi, fo: math.sqrt(6 / (fi + fo))))],
    "xavier_uniform": [({}, _uniform(lambda fi, fo: math.sqrt(6 / (fi + fo))))],
    "glorot_normal": [({}, _normal(lambda fi, fo: math.sqrt(2 / (fi + fo))))],
    "xavier_normal": [({}, _normal(lambda fi, fo: math.sqrt(2 / (fi + fo))))],
    "he_uniform": [({}, _uniform(lambda fi, fo: math.sqrt(6 / fi))),
                   ({"mode": "fan_out"}, _uniform(lambda fi, fo: math.sqrt(6 / fo)))],
    "kaiming_uniform": [({}, _uniform(lambda fi, fo: math.sqrt(6 / fi)))],
    "he_normal": [({}, _normal(lambda fi, fo: math.sqrt(2 / fi))),
                  ({"mode": "fan_out"}, _normal(lambda fi, fo: math.sqrt(2 / fo)))],
    "kaiming_normal": [({}, _normal(lambda fi, fo: math.sqrt(2 / fi)))],
    "lecun_uniform": [({}, _uniform(lambda fi, fo: math.sqrt(3 / fi))),
                      ({"variant": "lecun98"}, _uniform(lambda fi, fo: 2.4 / fi))],
    "lecun98_uniform": [({}, _uniform(lambda fi, fo: 2.4 / fi))],
    "lecun_normal": [({}, _normal(lambda fi, fo: math.sqrt(1 / fi)))],
    # registered by numcnn.models.lenet1998 (the faithful LeNet-5 build)
    "lecun98_sqrt_uniform": [({}, _uniform(lambda fi, fo: 2.4 / math.sqrt(fi)))],
    "gabor": "conv-only; see test_gabor_* below",
}


def test_every_registered_initializer_has_a_case():
    missing = [n for n in INITIALIZERS.names() if n not in CASES]
    assert not missing, f"initializers without a test case: {missing}"


STAT_CASES = [
    (name, i, kw, chk)
    for name, cases in CASES.items()
    if isinstance(cases, list)
    for i, (kw, chk) in enumerate(cases)
]


@pytest.mark.parametrize("where", sorted(SHAPES))
@pytest.mark.parametrize("name,i,kwargs,check", STAT_CASES, ids=[f"{c[0]}-{c[1]}" for c in
                                                                  STAT_CASES])
def test_initializer_statistics(name, i, kwargs, check, where):
    if name not in INITIALIZERS:
        pytest.skip(f"{name!r} is not registered in this build")
    make, in_shape, fi, fo = SHAPES[where]
    layer = make(initializers.get(name, **kwargs))
    layer.build(in_shape, np.random.default_rng(1234))
    w = layer.params["W"]
    assert w.dtype == np.float64
    check(w, fi, fo)


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if isinstance(c, list)))
def test_serialize_round_trip_and_dtype(name):
    if name not in INITIALIZERS:
        pytest.skip(f"{name!r} is not registered in this build")
    for kwargs, _ in CASES[name]:
        init = initializers.get(name, **kwargs)
        back = initializers.deserialize(initializers.serialize(init))
        assert type(back) is type(init) and back.get_config() == init.get_config()
        a = init((4, 3), 3, 4, np.random.default_rng(0))
        b = back((4, 3), 3, 4, np.random.default_rng(0))
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, b)


def test_lecun98_alias_equals_variant():
    a = initializers.get("lecun98_uniform")((6, 1, 5, 5), 25, 150, np.random.default_rng(3))
    b = initializers.get("lecun_uniform", variant="lecun98")(
        (6, 1, 5, 5), 25, 150, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a).max() <= np.float32(0.096)


@pytest.mark.parametrize("bad", [
    ("uniform", {"low": 1, "high": 1}), ("normal", {"std": 0}),
    ("small_random", {"scale": -1}), ("small_random", {"distribution": "cauchy"}),
    ("lecun_uniform", {"variant": "1989"}), ("he_normal", {"mode": "fan_avg"}),
    ("gabor", {"n_orientations": 0}),
    ("gabor", {"wavelengths": [0.0]}), ("gabor", {"gamma": 0}),
])
def test_bad_arguments_raise(bad):
    name, kwargs = bad
    with pytest.raises(ValueError, match="received"):
        initializers.get(name, **kwargs)


# ------------------------------------------------------------------------------ Gabor


def _gabor_formula(kh, kw, theta, lam, sigma, gamma, psi):
    """The Gabor formula evaluated point by point (independent of the library)."""
    g = np.zeros((kh, kw))
    for i in range(kh):
        for j in range(kw):
            x = j - (kw - 1) / 2
            y = i - (kh - 1) / 2
            xr = x * math.cos(theta) + y * math.sin(theta)
            yr = -x * math.sin(theta) + y * math.cos(theta)
            g[i, j] = math.exp(-(xr**2 + gamma**2 * yr**2) / (2 * sigma**2)) * math.cos(
                2 * math.pi * xr / lam + psi)
    return g


@pytest.mark.parametrize("shape,kwargs", [
    ((8, 1, 5, 5), {}),
    ((6, 3, 7, 5), {"n_orientations": 3, "n_scales": 1, "zero_mean": False}),
    ((12, 2, 5, 5), {"wavelengths": [4.0, 2.5, 3.0], "gamma": 1.0, "phases": [0.3],
                     "gain": 2.0}),
])
def test_gabor_bank_matches_formula(shape, kwargs):
    F, C, kh, kw = shape
    init = initializers.get("gabor", **kwargs)
    W = init(shape, C * kh * kw, F * kh * kw, np.random.default_rng(0), dtype=np.float64)
    n_o = kwargs.get("n_orientations", 4)
    lams = kwargs.get("wavelengths")
    n_s = len(lams) if lams else kwargs.get("n_scales", 2)
    phases = kwargs.get("phases", [0.0, math.pi / 2])
    gamma = kwargs.get("gamma", 0.5)
    gain = kwargs.get("gain", 1.0)
    for f in range(F):
        theta = (f % n_o) * math.pi / n_o
        s = (f // n_o) % n_s
        lam = lams[s] if lams else max(2.0, max(kh, kw) / 2**s)
        g = _gabor_formula(kh, kw, theta, lam, 0.56 * lam, gamma, phases[f // (n_o * n_s)])
        if kwargs.get("zero_mean", True):
            g -= g.mean()
        g /= np.linalg.norm(g)
        for c in range(C):
            np.testing.assert_allclose(W[f, c], g * gain / math.sqrt(C), rtol=1e-10,
                                       atol=1e-12)
        np.testing.assert_allclose(np.linalg.norm(W[f]), gain, rtol=1e-10)


def test_gabor_orientations_really_rotate():
    # θ = 0 (cos along x): constant along columns' orthogonal direction -> strong vertical
    # stripes; θ = π/2 gives the transpose on a square kernel
    W = initializers.get("gabor", n_orientations=2, n_scales=1, phases=[0.0])(
        (2, 1, 7, 7), 49, 98, np.random.default_rng(0), dtype=np.float64)
    np.testing.assert_allclose(W[1, 0], W[0, 0].T, atol=1e-12)


def test_gabor_extra_filters_are_distinct_and_rng_driven():
    init = initializers.get("gabor", n_orientations=2, n_scales=1, phases=[0.0])
    W1 = init((6, 1, 5, 5), 25, 150, np.random.default_rng(0))
    W2 = init((6, 1, 5, 5), 25, 150, np.random.default_rng(1))
    np.testing.assert_array_equal(W1[:2], W2[:2])  # first bank is deterministic
    assert not np.allclose(W1[2:], W2[2:])
    flat = W1.reshape(6, -1)
    assert len({tuple(np.round(r, 5)) for r in flat}) == 6


def test_gabor_rejects_dense_shapes():
    with pytest.raises(ValueError, match="convolution kernels"):
        initializers.get("gabor")((10, 5), 10, 5, np.random.default_rng(0))


def test_he_fans_are_torchs():
    """The fans numcnn's layers hand to ``mode="fan_in"``/``"fan_out"`` are the ones
    ``torch.nn.init.kaiming_normal_`` computes for the same weight (torch's layouts)."""
    torch = pytest.importorskip("torch")
    fan = torch.nn.init._calculate_fan_in_and_fan_out
    for factory, in_shape, fi, fo in SHAPES.values():
        layer = factory("he_normal")
        layer.build(in_shape)
        w = layer.params["W"]
        tw = torch.empty(w.shape if w.ndim == 4 else w.shape[::-1])  # Dense is (in, out)
        assert fan(tw) == (fi, fo)
