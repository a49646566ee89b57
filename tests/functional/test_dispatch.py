"""The kernel-path switch: ``set_kernels`` / ``use_kernels`` / ``get_kernels`` choose between
the fast and the reference kernels, and whole models give the same numbers on both.

Independent checks: spies record which module's kernel each dispatched call ran; whole
LeNet-5 models (modern and 1998) are run on each path and compared — outputs, input
gradients, every parameter gradient, the 1998 model's Gauss–Newton curvature, and the
weights after a short ``fit``. The path is a context variable: every test starts on
``"fast"`` and puts back what it found (pytest-xdist runs tests in two worker processes;
within one, tests share the main thread's context).
"""

from __future__ import annotations

import contextvars
import threading

import numpy as np
import pytest

import numcnn
import numcnn.functional as Fn
import numcnn.functional.activation as RA
import numcnn.functional.conv as RC
import numcnn.functional.fast.activation as FA
import numcnn.functional.fast.conv as FC
import numcnn.functional.fast.pool as FP
import numcnn.functional.pool as RP
from numcnn.functional import Workspace
from numcnn.losses import LeNetMAP
from numcnn.models import lenet5, lenet5_1998
from numcnn.optimizers import SGD
from numcnn.training.sdlm import estimate_curvature


@pytest.fixture(autouse=True)
def fast_kernels():
    """Start every test on the fast path; restore the caller's path afterwards."""
    before = Fn.get_kernels()
    Fn.set_kernels("fast")
    yield
    Fn.set_kernels(before)


# --------------------------------------------------------------------------- the switch


def test_default_path_is_fast_in_a_fresh_context_and_thread():
    assert contextvars.Context().run(numcnn.get_kernels) == "fast"
    numcnn.set_kernels("reference")
    seen = []
    worker = threading.Thread(target=lambda: seen.append(numcnn.get_kernels()))
    worker.start()
    worker.join()
    assert seen == ["fast"]  # per thread: another thread keeps the default
    assert numcnn.get_kernels() == "reference"


def test_top_level_names_are_the_dispatcher():
    assert numcnn.set_kernels is Fn.set_kernels
    assert numcnn.use_kernels is Fn.use_kernels
    assert numcnn.get_kernels is Fn.get_kernels


def test_set_kernels_round_trip():
    assert numcnn.get_kernels() == "fast"
    numcnn.set_kernels("reference")
    assert numcnn.get_kernels() == "reference"
    numcnn.set_kernels("fast")
    assert numcnn.get_kernels() == "fast"


def test_use_kernels_restores_the_previous_path_even_on_exceptions():
    with numcnn.use_kernels("reference"):
        assert numcnn.get_kernels() == "reference"
        with numcnn.use_kernels("fast"):
            assert numcnn.get_kernels() == "fast"
        assert numcnn.get_kernels() == "reference"
    assert numcnn.get_kernels() == "fast"
    numcnn.set_kernels("reference")
    with pytest.raises(RuntimeError, match="boom"):
        with numcnn.use_kernels("fast"):
            assert numcnn.get_kernels() == "fast"
            raise RuntimeError("boom")
    assert numcnn.get_kernels() == "reference"


@pytest.mark.parametrize("bad", ["slow", "Fast", "", None])
def test_unknown_path_raises_value_error_naming_the_choices(bad):
    with pytest.raises(ValueError, match=r"'fast'.*'reference'"):
        numcnn.set_kernels(bad)
    with pytest.raises(ValueError, match=r"'fast'.*'reference'"):
        with numcnn.use_kernels(bad):
            pass
    assert numcnn.get_kernels() == "fast"


@pytest.fixture
def ran(monkeypatch):
    """Record ``(path, op)`` for every kernel entry point the dispatcher calls."""
    calls = []
    for path, mods in (("fast", (FC, FP, FA)), ("reference", (RC, RP, RA))):
        for mod in mods:
            for op in ("conv2d_forward", "conv2d_backward", "max_pool2d_forward",
                       "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward",
                       "relu_forward", "relu_backward", "tanh_forward", "tanh_backward"):
                real = getattr(mod, op, None)
                if real is not None:
                    def spy(*args, _real=real, _tag=(path, op), **kwargs):
                        calls.append(_tag)
                        return _real(*args, **kwargs)
                    monkeypatch.setattr(mod, op, spy)
    return calls


def _every_op(rng):
    """Call each dispatched op forward and backward once; the results by name."""
    x = rng.standard_normal((2, 2, 6, 6))
    W = rng.standard_normal((3, 2, 3, 3))
    y, c = Fn.conv2d_forward(x, W, None, (1, 1), (1, 1, 1, 1))
    out = {"conv": (y, *Fn.conv2d_backward(np.ones_like(y), c))}
    y, c = Fn.max_pool2d_forward(x, (3, 3), (2, 2), (1, 1, 1, 1))
    out["max"] = (y, Fn.max_pool2d_backward(np.ones_like(y), c))
    y, c = Fn.avg_pool2d_forward(x, (3, 3), (2, 2), (1, 1, 1, 1), False)
    out["avg"] = (y, Fn.avg_pool2d_backward(np.ones_like(y), c))
    y, c = Fn.relu_forward(x)
    out["relu"] = (y, Fn.relu_backward(x, c))
    y, c = Fn.tanh_forward(x, 1.7159, 2 / 3)
    out["tanh"] = (y, Fn.tanh_backward(x, c, 1.7159, 2 / 3))
    return out


def test_every_dispatched_op_runs_on_the_chosen_path(ran):
    fast = _every_op(np.random.default_rng(0))
    assert len(ran) == 10 and {p for p, _ in ran} == {"fast"}
    ran.clear()
    with numcnn.use_kernels("reference"):
        ref = _every_op(np.random.default_rng(0))
    assert len(ran) == 10 and {p for p, _ in ran} == {"reference"}
    for name in fast:
        for f, r in zip(fast[name], ref[name]):
            np.testing.assert_allclose(f, r, rtol=1e-12, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("first, then", [("fast", "reference"), ("reference", "fast")])
def test_backward_follows_the_cache_not_the_current_path(first, then, ran):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 2, 7, 6))
    W = rng.standard_normal((3, 2, 3, 2))
    numcnn.set_kernels(first)
    yc, cc = Fn.conv2d_forward(x, W, None, (2, 1), (1, 0, 0, 1), Workspace())
    ym, cm = Fn.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0, 0, 0), Workspace(), True)
    ya, ca = Fn.avg_pool2d_forward(x, (3, 2), (2, 2), (1, 1, 0, 0), True, Workspace())
    numcnn.set_kernels(then)  # a cache of one path handed to the other would fail
    dyc, dym, dya = (rng.standard_normal(y.shape) for y in (yc, ym, ya))
    got = [*Fn.conv2d_backward(dyc, cc), Fn.max_pool2d_backward(dym, cm),
           Fn.avg_pool2d_backward(dya, ca)]
    backward = [op for p, op in ran if op.endswith("backward")]
    assert len(backward) == 3 and {p for p, op in ran} == {first}
    _, rc = RC.conv2d_forward(x, W, None, (2, 1), (1, 0, 0, 1))
    _, rm = RP.max_pool2d_forward(x, (2, 2), (2, 2))
    _, ra = RP.avg_pool2d_forward(x, (3, 2), (2, 2), (1, 1, 0, 0), True)
    expect = [*RC.conv2d_backward(dyc, rc), RP.max_pool2d_backward(dym, rm),
              RP.avg_pool2d_backward(dya, ra)]
    for g, e in zip(got, expect):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("first, then", [("fast", "reference"), ("reference", "fast")])
def test_activation_caches_work_with_either_backward(first, then):
    """ReLU's and tanh's caches are plain arrays: a backward on the other path accepts them
    and gives the same gradients as the reference path."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 3, 4, 5))
    dy = rng.standard_normal(x.shape)
    with numcnn.use_kernels(first):
        _, relu_cache = Fn.relu_forward(x)
        _, tanh_cache = Fn.tanh_forward(x, 1.7159, 2 / 3)
    with numcnn.use_kernels(then):
        drelu = Fn.relu_backward(dy, relu_cache)
        dtanh = Fn.tanh_backward(dy, tanh_cache, 1.7159, 2 / 3)
    np.testing.assert_array_equal(drelu, np.where(x > 0, dy, 0.0))
    expect = dy * 1.7159 * (2 / 3) * (1 - np.tanh(x * (2 / 3)) ** 2)
    np.testing.assert_allclose(dtanh, expect, rtol=1e-12, atol=1e-15)


# ------------------------------------------------------------------------- whole models


def _kernel_caches(model):
    """Every kernel cache (a dict with a ``"kernel"`` entry) of the latest forward pass."""
    found = []

    def walk(obj):
        if isinstance(obj, dict) and "kernel" in obj:
            found.append(obj)
        elif isinstance(obj, (tuple, list)):
            for item in obj:
                walk(item)

    for call in model.last_calls:
        walk(call.cache)
    return found


def _run(model, x, dy, path):
    """Forward (training) and backward on ``path``: output, dL/dx and every gradient."""
    with numcnn.use_kernels(path):
        y = model.forward(x, training=True).copy()
        caches = _kernel_caches(model)
        dx = model.backward(dy).copy()
    assert caches and {c["kernel"] for c in caches} == {path}
    grads = {k: g.copy() for k, g in model.trainable_grads().items()}
    return y, dx, grads, caches


def _assert_close(a, b, rtol, what):
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * float(np.abs(b).max()),
                               err_msg=what)


def _compare_paths(model, x, seed):
    model.need_input_grad = True
    rng = np.random.default_rng(seed)
    dy = rng.standard_normal((x.shape[0], 10))  # both models end in 10 outputs
    yR, dxR, gR, _ = _run(model, x, dy, "reference")
    yF, dxF, gF, caches = _run(model, x, dy, "fast")
    _assert_close(yF, yR, 1e-10, "output")
    _assert_close(dxF, dxR, 1e-10, "dL/dx")
    assert gF.keys() == gR.keys() == {q for q, lay, _ in model.named_params() if lay.trainable}
    for name in gR:
        assert np.any(gR[name] != 0), name
        _assert_close(gF[name], gR[name], 1e-10, name)
    return caches


@pytest.mark.parametrize("tuning", ["default", "fields+winners"])
def test_lenet5_gradients_equal_on_both_paths(tuning, monkeypatch):
    if tuning != "default":  # the row fields and the kept 2×2 winners at a small batch
        monkeypatch.setattr(FC, "MIN_FIELD_COLS", 1)
        monkeypatch.setattr(FP, "WINNERS_MIN_BYTES", 0)
    model = lenet5(seed=0, dtype="float64")
    x = np.random.default_rng(2).random((3, 1, 28, 28))
    caches = _compare_paths(model, x, 3)
    fields = [c.get("fields") is not None for c in caches if "W" in c]
    winners = [c.get("knockout") is not None for c in caches if "pool" in c]
    assert len(fields) == 2 and len(winners) == 2
    assert all(fields + winners) if tuning != "default" else not any(fields + winners)


def test_lenet5_1998_gradients_and_curvature_equal_on_both_paths(ran):
    model = lenet5_1998(seed=0, dtype="float64")
    rng = np.random.default_rng(4)
    x = rng.integers(0, 256, (3, 1, 28, 28)).astype(np.float64)  # grey levels
    caches = _compare_paths(model, x, 5)
    assert [c.get("whole") for c in caches] == [False, False, True]  # C5: one product
    t = rng.integers(0, 10, 3)
    ran.clear()
    with numcnn.use_kernels("reference"):
        hR = estimate_curvature(model, LeNetMAP(), x, t, batch_size=2)
    assert ("reference", "conv2d_backward") in ran and {p for p, _ in ran} == {"reference"}
    hF = estimate_curvature(model, LeNetMAP(), x, t, batch_size=2)
    assert hF.keys() == hR.keys()
    for name in hR:
        _assert_close(hF[name], hR[name], 1e-10, f"curvature {name}")


def _fit(factory, x, y, loss, path, ran):
    model = factory(seed=0, dtype="float64")
    w0 = model.get_weights()
    model.compile(optimizer=SGD(lr=0.01, momentum=0.9), loss=loss, metrics=None)
    ran.clear()
    with numcnn.use_kernels(path):
        hist = model.fit(x, y, batch_size=4, epochs=2, seed=0, verbose=0, processes=1)
    assert ran and {p for p, _ in ran} == {path}  # every kernel of the fit on that path
    return w0, model.get_weights(), hist.history["loss"]


@pytest.mark.parametrize("name", ["lenet5", "lenet5_1998"])
def test_short_fit_gives_the_same_weights_on_both_paths(name, ran):
    rng = np.random.default_rng(6)
    if name == "lenet5":
        factory, loss = lenet5, "softmax_cross_entropy"
        x = rng.random((8, 1, 28, 28))
    else:
        factory, loss = lenet5_1998, "lenet_map"
        x = rng.integers(0, 256, (8, 1, 28, 28)).astype(np.float64)
    y = rng.integers(0, 10, 8)
    w0, wR, lossR = _fit(factory, x, y, loss, "reference", ran)
    _, wF, lossF = _fit(factory, x, y, loss, "fast", ran)
    np.testing.assert_allclose(lossF, lossR, rtol=1e-9)
    assert wF.keys() == wR.keys()
    moved = 0
    for k in wR:
        _assert_close(wF[k], wR[k], 1e-9, k)
        moved += not np.array_equal(wR[k], w0[k])
    assert moved >= len(wR) // 2  # four steps of training really moved the weights


@pytest.mark.parametrize("layer", ["conv", "max", "avg"])
def test_model_with_free_input_size_equals_reference_after_a_size_change(layer):
    """``padding="same"`` with stride 2 pads a 6-row input (0, 1) and a 5-row one (1, 1):
    padded buffers of one shape in the layer's workspace. The fast path must not keep the
    first input's rows in the border of the second."""
    from numcnn.layers import AvgPool2D, Conv2D, MaxPool2D
    from numcnn.models import Sequential

    make = {"conv": lambda: Conv2D(2, 3, stride=2, padding="same"),
            "max": lambda: MaxPool2D(3, stride=2, padding="same"),
            "avg": lambda: AvgPool2D(3, stride=2, padding="same")}[layer]
    model = Sequential([make()], input_shape=(1, None, None), dtype="float64", seed=0)
    rng = np.random.default_rng(7)
    for size in (6, 5, 6, 12, 11):
        x = rng.standard_normal((2, 1, size, size)) + 3.0  # a stale border would win
        yF = model.forward(x).copy()
        with numcnn.use_kernels("reference"):
            yR = model.forward(x)
        _assert_close(yF, yR, 1e-12, f"input {size}x{size}")
