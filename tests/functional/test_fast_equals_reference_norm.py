"""The fast batch normalisation (:mod:`numcnn.functional.fast.norm`) equals the reference
(:mod:`numcnn.functional.norm`): outputs, running statistics, every gradient (training and
inference mode), dtypes, and the input's memory layout kept — in the layouts the kernels
hand on (NCHW, batch-innermost CHWN, NHWC, a strided view) and for (N, C) / (N, C, L).

Tolerances as in ``test_fast_equals_reference.py``: float64 to 1e-12 of the largest value;
float32 compared with the float64 reference, the fast path's error at most 4× the float32
reference path's own error plus 4ε of the largest value (never tuned to one machine)."""

from __future__ import annotations

import numpy as np
import pytest

import numcnn.functional.fast.norm as FN
import numcnn.functional.norm as RN
from numcnn.functional import Workspace
from numcnn.functional.fast.workspace import memory_order

EPS32 = float(np.finfo(np.float32).eps)
ORDERS = {"nchw": (0, 1, 2, 3), "chwn": (1, 2, 3, 0), "nhwc": (0, 2, 3, 1),
          "nchw-w-h": (0, 1, 3, 2)}


def _stored(a: np.ndarray, order: tuple[int, ...]) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(order)).transpose(np.argsort(order))


def _close(fast, ref32, ref64, what):
    if ref64.dtype == np.float64 and fast.dtype == np.float64:
        scale = float(np.abs(ref64).max())
        np.testing.assert_allclose(fast, ref64, rtol=1e-12, atol=1e-12 * scale + 1e-300,
                                   err_msg=what)
        return
    assert fast.dtype == ref32.dtype == np.float32, what
    err_fast = np.abs(fast.astype(np.float64) - ref64).max()
    err_ref = np.abs(ref32.astype(np.float64) - ref64).max()
    big = float(np.abs(ref64).max())
    assert err_fast <= 4 * err_ref + 4 * EPS32 * big, (
        f"{what}: fast error {err_fast:.3g}, reference error {err_ref:.3g}")


def _run(mod, x, g, b, rm, rv, training, dy, **kw):
    rm, rv = rm.copy(), rv.copy()
    y, cache = mod.batch_norm_forward(x, g, b, rm, rv, training, 0.1, 1e-5, **kw)
    dx, dg, db = mod.batch_norm_backward(dy, cache, True, **({"ws": kw["ws"]} if kw else {}))
    return {"y": y, "running_mean": rm, "running_var": rv, "dx": dx, "dgamma": dg,
            "dbeta": db}


CASES = [((5, 3, 4, 6), o) for o in ORDERS] + [((9, 4), "nc"), ((6, 3, 7), "ncl")]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("shape,layout", CASES, ids=[f"{len(s)}d-{o}" for s, o in CASES])
def test_batch_norm_equals_reference_and_keeps_layout(shape, layout, training, dtype):
    rng = np.random.default_rng(3)
    x64 = rng.standard_normal(shape) * 2.5 + 1.5
    dy64 = rng.standard_normal(shape)
    C = shape[1]
    g64, b64 = rng.standard_normal(C), rng.standard_normal(C)
    rm64, rv64 = rng.standard_normal(C), rng.random(C) + 0.5
    order = ORDERS.get(layout, tuple(range(len(shape))))
    cast = [a.astype(dtype) for a in (x64, g64, b64, rm64, rv64, dy64)]
    x, g, b, rm, rv, dy = cast
    ws = Workspace()
    fast = _run(FN, _stored(x, order), g, b, rm, rv, training, _stored(dy, order), ws=ws)
    ref = _run(RN, x, g, b, rm, rv, training, dy)
    ref64 = _run(RN, x64, g64, b64, rm64, rv64, training, dy64)
    for k in fast:
        assert fast[k].dtype == np.dtype(dtype), k
        _close(fast[k], ref[k], ref64[k], k)
    assert memory_order(fast["y"]) == memory_order(_stored(x, order))
    assert memory_order(fast["dx"]) == memory_order(_stored(x, order))


def test_batch_norm_fast_accepts_an_unlaid_view_and_a_gradient_in_another_layout():
    rng = np.random.default_rng(5)
    base = rng.standard_normal((4, 3, 6, 10))
    x = base[:, :, :, ::2]  # a strided view: no contiguous memory order
    dy = _stored(rng.standard_normal(x.shape), (0, 2, 3, 1))
    g, b = rng.standard_normal(3), rng.standard_normal(3)
    ref = _run(RN, x, g, b, np.zeros(3), np.ones(3), True, dy)
    fast = _run(FN, x, g, b, np.zeros(3), np.ones(3), True, dy, ws=Workspace())
    for k in fast:
        np.testing.assert_allclose(fast[k], ref[k], rtol=1e-12, atol=1e-12, err_msg=k)


def test_batch_norm_fast_refuses_one_value_per_channel_in_training():
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        FN.batch_norm_forward(np.ones((1, 3, 1, 1)), np.ones(3), np.zeros(3), np.zeros(3),
                              np.ones(3), True)


@pytest.mark.parametrize("relu", ["grad", "forward", None])
@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("layout", ["chwn", "nchw"])
@pytest.mark.parametrize("blocks", ["one-channel", "all"])
def test_batch_norm_blocks_and_fused_relu_equal_reference_then_relu(blocks, layout, training,
                                                                     relu, monkeypatch):
    """Channel rows processed a block at a time (one channel per block, or all at once), and
    a fused ReLU: ``max(y, 0)`` forward; with ``"grad"`` the gradient of that (``1[y > 0]``
    applied first), with ``"forward"`` the plain BatchNorm gradient (a max pooling applies
    the derivative). Against the reference BatchNorm followed by the reference ReLU."""
    if blocks == "one-channel":
        monkeypatch.setattr(FN, "CHUNK_BYTES", 1)
    rng = np.random.default_rng(7)
    shape = (6, 5, 4, 3)
    x = rng.standard_normal(shape) * 2 + 0.3
    dy = rng.standard_normal(shape)
    g, b = rng.standard_normal(5), rng.standard_normal(5)
    rm, rv = rng.standard_normal(5), rng.random(5) + 0.5
    order = ORDERS[layout]
    rm1, rv1 = rm.copy(), rv.copy()
    y, cache = FN.batch_norm_forward(_stored(x, order), g, b, rm1, rv1, training, 0.1, 1e-5,
                                     Workspace(), relu)
    yr, cr = RN.batch_norm_forward(x, g, b, rm.copy(), rv.copy(), training, 0.1, 1e-5)
    dyr = dy * (yr > 0) if relu == "grad" else dy
    ref = RN.batch_norm_backward(dyr, cr, True)
    if relu:
        yr = np.maximum(yr, 0)
    np.testing.assert_allclose(y, yr, rtol=1e-12, atol=1e-12)
    assert memory_order(y) == memory_order(_stored(x, order))
    got = FN.batch_norm_backward(_stored(dy, order), cache, True, Workspace())
    for k, (a, r) in enumerate(zip(got, ref)):
        np.testing.assert_allclose(a, r, rtol=1e-11, atol=1e-12, err_msg=str(k))
    if relu == "grad":
        assert (yr == 0).any() and (got[0] != RN.batch_norm_backward(dy, cr, True)[0]).any()
