"""The fast pooling kernels with ``ceil_mode``, and the fast path of adaptive pooling, equal
the reference kernels (issue 11): windows hanging off the end, asymmetric padding, ties, ReLU
outputs (the fused backward), inputs in NCHW and batch-innermost memory, float32 and
float64; the 2×2 kept winners only where no window hangs off; a stale cache raises.

float32 gradients are held to the error of the float32 reference against float64 (as in
``test_fast_equals_reference.py``): within ``(K + 2)·ε₃₂·Σ|terms|`` of the float64 result.
"""

from __future__ import annotations

import numpy as np
import pytest

import numcnn.functional as Fn
import numcnn.functional.fast.pool as FP
import numcnn.functional.pool as RP
from numcnn.functional import StaleCacheError, Workspace
from numcnn.functional.fast.workspace import memory_order

LAYOUTS = {"nchw": (0, 1, 2, 3), "chwn": (1, 2, 3, 0)}

# (shape, pool, stride, pads): every case has an overhang in ceil mode
CEIL_CASES = {
    "2x2-odd-sizes": ((3, 2, 7, 9), (2, 2), (2, 2), (0, 0, 0, 0)),
    "3x3s2-even": ((2, 2, 8, 8), (3, 3), (2, 2), (0, 0, 0, 0)),
    "3x2-asym-pads": ((2, 3, 7, 6), (3, 2), (2, 3), (1, 0, 1, 0)),
    "2x3-gaps-batch1": ((1, 2, 8, 7), (2, 3), (3, 2), (0, 1, 1, 1)),
    "window-past-input": ((2, 2, 2, 3), (3, 3), (2, 2), (0, 0, 0, 0)),
    "pad1-start-rule": ((2, 1, 5, 5), (2, 2), (2, 2), (1, 1, 1, 1)),
}


def in_layout(a: np.ndarray, layout: str) -> np.ndarray:
    out = Workspace().fresh_ordered(a.shape, a.dtype, LAYOUTS[layout])
    out[...] = a
    return out


def _data(shape, kind, rng):
    if kind == "ties":
        return rng.integers(0, 3, shape).astype(np.float64)
    if kind == "relu":  # a ReLU output: all-zero windows and ties at 0
        z = rng.integers(-2, 3, shape).astype(np.float64)
        z[:, :, :2, :2] = -1.0
        return np.maximum(z, 0)
    return rng.permutation(np.linspace(-1, 1, int(np.prod(shape)))).reshape(shape)


def _close(got, ref32, exact, scale, terms, dtype):
    """float64: equal to rounding; float32: within (terms + 2)·ε·scale of ``exact`` and as
    close as the float32 reference is, up to that bound."""
    assert got.dtype == ref32.dtype == np.dtype(dtype) and got.shape == exact.shape
    eps = np.finfo(dtype).eps
    bound = (terms + 2) * eps * scale + 1e-300
    assert np.all(np.abs(got.astype(np.float64) - exact) <= bound)
    assert np.all(np.abs(ref32.astype(np.float64) - exact) <= bound)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("winners", [False, True], ids=["offsets", "winners"])
@pytest.mark.parametrize("kind", ["tie-free", "ties", "relu"])
@pytest.mark.parametrize("case", list(CEIL_CASES))
def test_ceil_max_pool_equals_reference(case, kind, winners, layout, dtype, monkeypatch):
    shape, pool, stride, pads = CEIL_CASES[case]
    monkeypatch.setattr(FP, "WINNERS_MIN_BYTES", 0)
    rng = np.random.default_rng(0)
    x = _data(shape, kind, rng).astype(dtype)
    yF, cF = FP.max_pool2d_forward(in_layout(x, layout), pool, stride, pads, Workspace(),
                                   winners, ceil_mode=True)
    assert cF["knockout"] is None  # the kept 2x2 winners need windows inside the input
    yR, cR = RP.max_pool2d_forward(x, pool, stride, pads, ceil_mode=True)
    np.testing.assert_array_equal(yF, yR)
    dy = rng.standard_normal(yR.shape).astype(dtype)
    relu = kind == "relu"
    dxF = FP.max_pool2d_backward(in_layout(dy, layout), cF, relu=relu)
    dxR = RP.max_pool2d_backward(dy, cR, relu=relu)
    if 1 not in shape:
        assert memory_order(yF) == memory_order(dxF) == LAYOUTS[layout]
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    _, c64 = RP.max_pool2d_forward(x64, pool, stride, pads, ceil_mode=True)
    exact = RP.max_pool2d_backward(dy64, c64, relu=relu)
    scale = RP.max_pool2d_backward(abs(dy64), c64, relu=relu)
    _close(dxF, dxR, exact, scale, pool[0] * pool[1], dtype)
    if relu:  # the fused backward is the pooling gradient times ReLU's derivative
        np.testing.assert_array_equal(dxR, RP.max_pool2d_backward(dy, cR) * (x > 0))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("count_include_pad", [True, False], ids=["incl-pad", "excl-pad"])
@pytest.mark.parametrize("case", list(CEIL_CASES))
def test_ceil_avg_pool_equals_reference(case, count_include_pad, layout, dtype):
    shape, pool, stride, pads = CEIL_CASES[case]
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(dtype)
    yF, cF = FP.avg_pool2d_forward(in_layout(x, layout), pool, stride, pads,
                                   count_include_pad, Workspace(), ceil_mode=True)
    yR, cR = RP.avg_pool2d_forward(x, pool, stride, pads, count_include_pad, ceil_mode=True)
    dy = rng.standard_normal(yR.shape).astype(dtype)
    dxF = FP.avg_pool2d_backward(in_layout(dy, layout), cF)
    dxR = RP.avg_pool2d_backward(dy, cR)
    if 1 not in shape:
        assert memory_order(yF) == memory_order(dxF) == LAYOUTS[layout]
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    y64, c64 = RP.avg_pool2d_forward(x64, pool, stride, pads, count_include_pad, True)
    ya, _ = RP.avg_pool2d_forward(abs(x64), pool, stride, pads, count_include_pad, True)
    K = pool[0] * pool[1]
    _close(yF, yR, y64, ya, K, dtype)
    _close(dxF, dxR, RP.avg_pool2d_backward(dy64, c64), RP.avg_pool2d_backward(abs(dy64), c64),
           K, dtype)


def test_ceil_divisors_are_the_same_on_both_paths():
    for case in CEIL_CASES.values():
        _, pool, stride, pads = case
        hw = case[0][2:]
        for cip in (True, False):
            fast = FP.window_counts(hw, pool, stride, pads, cip, np.float64, ceil_mode=True)
            ref = RP.window_counts(hw, pool, stride, pads, cip, np.float64, ceil_mode=True)
            np.testing.assert_array_equal(np.broadcast_to(fast, ref.shape), ref)


def test_ceil_mode_without_an_overhang_keeps_the_2x2_winners(monkeypatch):
    monkeypatch.setattr(FP, "WINNERS_MIN_BYTES", 0)
    x = np.random.default_rng(2).standard_normal((2, 2, 8, 8))
    _, cache = FP.max_pool2d_forward(x, (2, 2), (2, 2), winners=True, ceil_mode=True)
    assert cache["knockout"] is not None and cache["pads"] == (0, 0, 0, 0)


@pytest.mark.parametrize("which", ["max", "avg"])
def test_a_ceil_pooling_cache_goes_stale(which):
    ws = Workspace()
    x = np.random.default_rng(3).standard_normal((2, 2, 7, 7))
    fwd = {"max": lambda: FP.max_pool2d_forward(x, (3, 3), (2, 2), ws=ws, ceil_mode=True),
           "avg": lambda: FP.avg_pool2d_forward(x, (3, 3), (2, 2), ws=ws, ceil_mode=True)}
    y, cache = fwd[which]()
    fwd[which]()
    if which == "max":
        with pytest.raises(StaleCacheError):
            FP.max_pool2d_backward(np.ones_like(y), cache)
    else:  # average pooling keeps no scratch in its cache: nothing goes stale
        FP.avg_pool2d_backward(np.ones_like(y), cache)


# ------------------------------------------------------------------- adaptive pooling
# (shape, output size): windows that tile the input, where the fast path applies
TILED = {
    "8x6-to-4x3": ((2, 3, 8, 6), (4, 3)),
    "14-to-7": ((2, 2, 14, 14), (7, 7)),
    "identity": ((2, 2, 6, 6), (6, 6)),
    "to-1x2": ((1, 2, 5, 8), (1, 2)),
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("kind", ["avg", "max"])
@pytest.mark.parametrize("case", list(TILED))
def test_adaptive_fast_path_equals_reference(case, kind, layout, dtype):
    shape, out = TILED[case]
    rng = np.random.default_rng(4)
    x = (rng.integers(0, 3, shape) if kind == "max" else rng.standard_normal(shape))
    x = x.astype(dtype)
    fwd = {"avg": Fn.adaptive_avg_pool2d_forward, "max": Fn.adaptive_max_pool2d_forward}[kind]
    bwd = {"avg": Fn.adaptive_avg_pool2d_backward, "max": Fn.adaptive_max_pool2d_backward}[kind]
    with Fn.use_kernels("fast"):
        yF, cF = fwd(in_layout(x, layout), out, Workspace())
    with Fn.use_kernels("reference"):
        yR, cR = fwd(x, out)
    assert (cF["kernel"], cR["kernel"]) == ("fast", "reference")
    dy = rng.standard_normal(yR.shape).astype(dtype)
    dxF, dxR = bwd(in_layout(dy, layout), cF), bwd(dy, cR)
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    ref_fwd = {"avg": RP.adaptive_avg_pool2d_forward, "max": RP.adaptive_max_pool2d_forward}
    ref_bwd = {"avg": RP.adaptive_avg_pool2d_backward, "max": RP.adaptive_max_pool2d_backward}
    y64, c64 = ref_fwd[kind](x64, out)
    ya, ca = ref_fwd[kind](abs(x64), out)
    K = (shape[2] // out[0]) * (shape[3] // out[1])
    if kind == "max":
        np.testing.assert_array_equal(yF, yR)
        _close(dxF, dxR, ref_bwd[kind](dy64, c64), ref_bwd[kind](abs(dy64), c64), 1, dtype)
    else:
        _close(yF, yR, y64, ya, K, dtype)
        _close(dxF, dxR, ref_bwd[kind](dy64, c64), ref_bwd[kind](abs(dy64), ca), K, dtype)
