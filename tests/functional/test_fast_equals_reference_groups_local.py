"""The fast paths of the grouped convolution and of the locally connected layer equal their
reference paths (issue 11), in the style of ``test_fast_equals_reference.py``.

Every strategy of the fast grouped convolution is forced in turn — im2col blocks (one,
whole rows, parts of a row, capped columns), row fields, the whole-kernel product, the input
gradient by rows or by col2im — and a spy checks it ran; inputs come in several memory
layouts. The locally connected layer is run with one block, blocks of rows and parts of
rows. float64 must agree to 1e-12 of the largest value; float32 results are compared with
the float64 reference, allowed 4× the float32 reference path's own error plus 2ε of the
largest sum of |terms|, and never more than the worst-case bound of a sum.
"""

from __future__ import annotations

import numpy as np
import pytest

import numcnn.functional.conv as RC
import numcnn.functional.fast.conv as FC
import numcnn.functional.fast.local as FL
import numcnn.functional.local as RL
from numcnn.functional import StaleCacheError, Workspace
from numcnn.functional.fast.workspace import memory_order
from references import assert_float32_close

LAYOUTS = {"nchw": (0, 1, 2, 3), "chwn": (1, 2, 3, 0), "nhwc": (0, 2, 3, 1)}


def in_layout(a: np.ndarray, layout: str) -> np.ndarray:
    out = Workspace().fresh_ordered(a.shape, a.dtype, LAYOUTS[layout])
    out[...] = a
    return out


def assert_close64(got, ref, what=""):
    assert got.shape == ref.shape and got.dtype == ref.dtype == np.float64, what
    scale = float(np.abs(ref).max()) if ref.size else 0.0
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12 * scale + 1e-300,
                               err_msg=what)


def compare(fast, ref, ref64, scale, terms, need):
    """Every result of the fast path against the reference path's."""
    for i, name in enumerate(("y", "dx", "dW", "db")):
        if i and not need[i - 1]:
            assert fast[i] is None and ref[i] is None, name
            continue
        if ref[i].dtype == np.float64:
            assert_close64(fast[i], ref[i], name)
        else:
            assert_float32_close(fast[i], ref[i], ref64[i], scale[i], terms[i], name)


def _both(fast_fwd, fast_bwd, ref_fwd, ref_bwd, arrays, layout, need, seed):
    """Run both paths (and, for float32, the float64 reference and its |terms| twin)."""
    x, W, b = arrays
    yF, cF = fast_fwd(in_layout(x, layout), W, b)
    assert cF["kernel"] == "fast"
    yR, cR = ref_fwd(x, W, b)
    dy = np.random.default_rng(seed).standard_normal(yR.shape).astype(x.dtype)
    fast = (yF, *fast_bwd(in_layout(dy, layout), cF, *need))
    ref = (yR, *ref_bwd(dy, cR, *need))
    ref64 = scale = None
    if x.dtype == np.float32:
        a64 = [None if a is None else a.astype(np.float64) for a in (x, W, b, dy)]
        y64, c64 = ref_fwd(*a64[:3])
        ref64 = (y64, *ref_bwd(a64[3], c64, *need))
        ya, ca = ref_fwd(*(None if a is None else np.abs(a) for a in a64[:3]))
        scale = (ya, *ref_bwd(np.abs(a64[3]), ca, *need))
    return fast, ref, ref64, scale, cF


# ------------------------------------------------------------------- grouped convolution


@pytest.fixture
def spy(monkeypatch):
    seen = {"blocks": [], "fields": 0, "dx_rows": 0, "whole_bwd": 0}
    block, fields, rows, whole = (FC._im2col_block, FC._row_fields, FC._dx_by_rows,
                                  FC._whole_backward)

    def spy_block(xp, cols, a, q, stride):
        seen["blocks"].append(cols.shape[3:5])
        return block(xp, cols, a, q, stride)

    def count(key, fn):
        def wrapped(*args):
            seen[key] += 1
            return fn(*args)
        return wrapped

    monkeypatch.setattr(FC, "_im2col_block", spy_block)
    monkeypatch.setattr(FC, "_row_fields", count("fields", fields))
    monkeypatch.setattr(FC, "_dx_by_rows", count("dx_rows", rows))
    monkeypatch.setattr(FC, "_whole_backward", count("whole_bwd", whole))
    return seen


# (N, C, H, W, F, kernel, stride, pads, groups)
GROUP_CASES = {
    "two-columns-3x2": (3, 4, 9, 8, 6, (3, 2), (1, 1), (0, 0, 0, 0), 2),
    "g3-s2x1-asym-pads": (2, 6, 10, 9, 3, (3, 3), (2, 1), (1, 0, 2, 1), 3),
    "depthwise-s1x2": (2, 3, 9, 11, 3, (2, 3), (1, 2), (0, 1, 1, 0), 3),
    "depthwise-x2-batch1-tail": (1, 2, 10, 9, 4, (3, 2), (3, 2), (0, 0, 0, 0), 2),
    "g2-pad1": (2, 4, 8, 8, 8, (3, 3), (1, 1), (1, 1, 1, 1), 2),
}


def _grouped_arrays(case, dtype, seed, bias=True):
    N, C, H, W, F, k, stride, pads, G = GROUP_CASES[case]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    Wt = rng.standard_normal((F, C // G) + k).astype(dtype)
    b = rng.standard_normal(F).astype(dtype) if bias else None
    return x, Wt, b


def run_grouped(case, dtype, layout, need=(True, True, True), seed=1, bias=True):
    N, C, H, W, F, k, stride, pads, G = GROUP_CASES[case]
    fast, ref, ref64, scale, cache = _both(
        lambda x, Wt, b: FC.conv2d_forward(x, Wt, b, stride, pads, Workspace(), G),
        FC.conv2d_backward,
        lambda x, Wt, b: RC.conv2d_forward(x, Wt, b, stride, pads, G),
        RC.conv2d_backward, _grouped_arrays(case, dtype, seed, bias), layout, need, seed + 1)
    _, _, Ho, Wo = ref[0].shape
    kk = k[0] * k[1]
    terms = (C // G * kk + 1, F // G * kk, N * Ho * Wo, N * Ho * Wo)
    compare(fast, ref, ref64, scale, terms, need)
    assert cache["groups"] == G
    return fast, cache


def _grouped_dims(case):
    N, C, H, W, F, k, stride, pads, G = GROUP_CASES[case]
    Ho = (H + pads[0] + pads[1] - k[0]) // stride[0] + 1
    Wo = (W + pads[2] + pads[3] - k[1]) // stride[1] + 1
    return N, C * k[0] * k[1], Ho, Wo


def _set_mode(monkeypatch, mode, K, Wo, N, itemsize):
    monkeypatch.setattr(FC, "MIN_COLS_PER_FILTER", 0)  # blocks sized by BLOCK_BYTES alone
    if mode == "rows":  # blocks of 2 whole output rows
        monkeypatch.setattr(FC, "BLOCK_BYTES", 2 * K * Wo * N * itemsize)
    elif mode == "row-parts":  # parts of one row: 2 output positions per block
        monkeypatch.setattr(FC, "BLOCK_BYTES", 2 * K * N * itemsize)
        monkeypatch.setattr(FC, "ROW_SPLIT_BYTES", 1)
    elif mode == "max-cols":  # at most 3·N columns per product
        monkeypatch.setattr(FC, "MAX_COLS", 3 * N)
    elif mode == "fields":
        monkeypatch.setattr(FC, "MIN_FIELD_COLS", 1)
        monkeypatch.setattr(FC.tuning, "KEEP_FIELD_BYTES", 0)  # built again for dW
    else:
        assert mode == "one"


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("layout", ["nchw", "chwn"])
@pytest.mark.parametrize("mode", ["one", "rows", "row-parts", "max-cols", "fields"])
@pytest.mark.parametrize("case", list(GROUP_CASES))
def test_grouped_conv_strategies_equal_reference(case, mode, layout, dtype, spy, monkeypatch):
    N, K, Ho, Wo = _grouped_dims(case)
    _set_mode(monkeypatch, mode, K, Wo, N, np.dtype(dtype).itemsize)
    fast, cache = run_grouped(case, dtype, layout)
    blocks = spy["blocks"]
    if mode == "fields":
        assert spy["fields"] == 2 and not blocks  # forward, then again for dW
    else:
        assert spy["fields"] == 0 and blocks
        if mode == "one":
            assert set(blocks) == {(Ho, Wo)}
        elif mode == "rows":
            assert {q for _, q in blocks} == {Wo} and max(r for r, _ in blocks) == 2
        elif mode == "row-parts":
            assert {r for r, _ in blocks} == {1} and max(q for _, q in blocks) == 2
        else:
            assert {r for r, _ in blocks} == {1} and max(q for _, q in blocks) == 3
    _, C, H, W, F, k, stride, pads, G = GROUP_CASES[case]
    row_dx = FC._use_row_gemm(C, F, k[0], k[1], Wo, W + pads[2] + pads[3], stride)
    assert spy["dx_rows"] == int(row_dx)
    if N > 1:
        assert memory_order(fast[0]) == memory_order(fast[1]) == LAYOUTS["chwn"]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", ["two-columns-3x2", "g2-pad1", "depthwise-x2-batch1-tail"])
def test_grouped_conv_col2im_input_gradient_equals_reference(case, dtype, spy, monkeypatch):
    """The col2im scatter is also right where the row-by-row input gradient is chosen."""
    monkeypatch.setattr(FC, "_use_row_gemm", lambda *args: False)
    run_grouped(case, dtype, "chwn", bias=False)
    assert spy["dx_rows"] == 0


@pytest.mark.parametrize("case", ["two-columns-3x2", "g2-pad1"])
def test_grouped_conv_input_gradient_by_rows_equals_reference(case, spy, monkeypatch):
    monkeypatch.setattr(FC, "_use_row_gemm", lambda *args: True)
    run_grouped(case, "float64", "nchw")
    assert spy["dx_rows"] == 1


@pytest.mark.parametrize("need", [(True, False, False), (False, True, False),
                                  (False, False, True), (True, True, False)],
                         ids=["dx", "dW", "db", "dx+dW"])
@pytest.mark.parametrize("mode", ["one", "row-parts", "fields"])
@pytest.mark.parametrize("case", ["g3-s2x1-asym-pads", "depthwise-s1x2"])
def test_grouped_conv_gradient_subsets_equal_reference(case, mode, need, spy, monkeypatch):
    N, K, Ho, Wo = _grouped_dims(case)
    _set_mode(monkeypatch, mode, K, Wo, N, 8)
    run_grouped(case, "float64", "nchw", need)


# (N, C, H, W, F, kernel, stride, pads, groups): the kernel covers the whole padded input
WHOLE_GROUP_CASES = {
    "g2": (4, 4, 5, 5, 6, (5, 5), (1, 1), (0, 0, 0, 0), 2),
    "depthwise-padded": (3, 3, 3, 4, 3, (5, 6), (1, 1), (1, 1, 2, 0), 3),
    "g2-batch1": (1, 2, 3, 3, 4, (3, 3), (1, 1), (0, 0, 0, 0), 2),
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("layout", ["nchw", "chwn"])
@pytest.mark.parametrize("need", [(True, True, True), (False, True, True),
                                  (True, False, False)], ids=["all", "dW+db", "dx"])
@pytest.mark.parametrize("case", list(WHOLE_GROUP_CASES))
def test_grouped_whole_kernel_product_equals_reference(case, need, layout, dtype, spy,
                                                        monkeypatch):
    monkeypatch.setitem(GROUP_CASES, case, WHOLE_GROUP_CASES[case])
    _, cache = run_grouped(case, dtype, layout, need)
    assert cache["whole"] and spy["whole_bwd"] == 1 and not spy["blocks"]


def test_grouped_conv_at_a_real_batch_size_uses_row_fields(spy):
    """No patched threshold: 64 samples × 8 output columns = 512 columns per row."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((64, 4, 10, 10)).astype(np.float32)
    Wt = rng.standard_normal((6, 2, 3, 3)).astype(np.float32)
    yF, cF = FC.conv2d_forward(in_layout(x, "chwn"), Wt, None, (1, 1), (0, 0, 0, 0),
                               Workspace(), 2)
    assert spy["fields"] == 1 and not spy["blocks"]
    x64, W64 = x.astype(np.float64), Wt.astype(np.float64)
    y64, _ = RC.conv2d_forward(x64, W64, None, groups=2)
    yR, _ = RC.conv2d_forward(x, Wt, None, groups=2)
    ya, _ = RC.conv2d_forward(np.abs(x64), np.abs(W64), None, groups=2)
    assert_float32_close(yF, yR, y64, ya, 2 * 9, "y")


# ------------------------------------------------------------------ locally connected


@pytest.fixture
def lc_blocks(monkeypatch):
    seen = []
    real = FL._fields

    def spy(xp, cols, a, q, stride):
        seen.append(cols.shape[:2])  # (rows R, columns Q)
        return real(xp, cols, a, q, stride)

    monkeypatch.setattr(FL, "_fields", spy)
    return seen


# (N, C, H, W, F, kernel, stride, pads)
LOCAL_CASES = {
    "k3x2": (3, 2, 9, 8, 4, (3, 2), (1, 1), (0, 0, 0, 0)),
    "s2x1-asym-pads": (2, 3, 10, 9, 2, (3, 3), (2, 1), (1, 0, 2, 1)),
    "s1x2-width-stride": (2, 2, 9, 11, 3, (2, 3), (1, 2), (0, 1, 1, 0)),
    "batch1-s3x2-tail": (1, 2, 10, 9, 3, (3, 2), (3, 2), (0, 0, 0, 0)),
    "whole-kernel": (2, 2, 5, 5, 3, (5, 5), (1, 1), (0, 0, 0, 0)),
}


def run_local(case, dtype, layout, need=(True, True, True), seed=1, ws=None):
    N, C, H, W, F, k, stride, pads = LOCAL_CASES[case]
    Ho = (H + pads[0] + pads[1] - k[0]) // stride[0] + 1
    Wo = (W + pads[2] + pads[3] - k[1]) // stride[1] + 1
    rng = np.random.default_rng(seed)
    arrays = (rng.standard_normal((N, C, H, W)).astype(dtype),
              rng.standard_normal((Ho, Wo, F, C) + k).astype(dtype),
              rng.standard_normal((F, Ho, Wo)).astype(dtype))
    fast, ref, ref64, scale, cache = _both(
        lambda x, Wt, b: FL.locally_connected2d_forward(x, Wt, b, stride, pads,
                                                        ws or Workspace()),
        FL.locally_connected2d_backward,
        lambda x, Wt, b: RL.locally_connected2d_forward(x, Wt, b, stride, pads),
        RL.locally_connected2d_backward, arrays, layout, need, seed + 1)
    terms = (C * k[0] * k[1] + 1, F * k[0] * k[1], N, N)
    compare(fast, ref, ref64, scale, terms, need)
    return fast, (Ho, Wo)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("mode", ["one", "rows", "row-parts"])
@pytest.mark.parametrize("case", list(LOCAL_CASES))
def test_locally_connected_blocks_equal_reference(case, mode, layout, dtype, lc_blocks,
                                                  monkeypatch):
    N, C, H, W, F, k, stride, pads = LOCAL_CASES[case]
    K = C * k[0] * k[1]
    itemsize = np.dtype(dtype).itemsize
    Wo = (W + pads[2] + pads[3] - k[1]) // stride[1] + 1
    _set_mode(monkeypatch, mode, K, Wo, N, itemsize)
    fast, (Ho, Wo) = run_local(case, dtype, layout)
    if mode == "one":
        assert set(lc_blocks) == {(Ho, Wo)}
    elif mode == "rows" and Ho > 2:
        assert {q for _, q in lc_blocks} == {Wo} and max(r for r, _ in lc_blocks) == 2
    elif mode == "row-parts" and Wo > 2:
        assert {r for r, _ in lc_blocks} == {1} and max(q for _, q in lc_blocks) == 2
    if N > 1:  # outputs are batch-innermost, as a convolution's
        assert memory_order(fast[0]) == memory_order(fast[1]) == LAYOUTS["chwn"]


@pytest.mark.parametrize("need", [(True, False, False), (False, True, False),
                                  (False, False, True), (False, True, True)],
                         ids=["dx", "dW", "db", "dW+db"])
@pytest.mark.parametrize("case", ["s2x1-asym-pads", "batch1-s3x2-tail"])
def test_locally_connected_gradient_subsets_equal_reference(case, need):
    run_local(case, "float64", "nchw", need)


def test_locally_connected_stale_cache_raises():
    rng = np.random.default_rng(0)
    ws = Workspace()
    x = rng.standard_normal((2, 1, 5, 5))
    W = rng.standard_normal((4, 4, 2, 1, 3, 3))
    y, old = FL.locally_connected2d_forward(x, W, None, (1, 1), (1, 0, 0, 1), ws)
    FL.locally_connected2d_forward(2 * x, W, None, (1, 1), (1, 0, 0, 1), ws)
    with pytest.raises(StaleCacheError, match="locally_connected2d_backward"):
        FL.locally_connected2d_backward(np.ones_like(y), old)


def test_locally_connected_workspace_reused_with_other_pads_of_the_same_padded_shape():
    """pads (0, 1) for 6 rows and (1, 1) for 5 rows give the same padded shape: the second
    call's border must still be zeros."""
    rng = np.random.default_rng(6)
    ws = Workspace()
    for H, pads in ((6, (0, 1, 0, 1)), (5, (1, 1, 1, 1)), (6, (0, 1, 0, 1))):
        x = rng.standard_normal((2, 1, H, H))
        W = rng.standard_normal((3, 3, 2, 1, 3, 3))
        y, cache = FL.locally_connected2d_forward(x, W, None, (2, 2), pads, ws)
        yR, cR = RL.locally_connected2d_forward(x, W, None, (2, 2), pads)
        assert_close64(y, yR)
        dy = rng.standard_normal(y.shape)
        for g, r in zip(FL.locally_connected2d_backward(dy, cache),
                        RL.locally_connected2d_backward(dy, cR)):
            assert_close64(g, r)
