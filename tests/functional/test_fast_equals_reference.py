"""Every fast kernel path (:mod:`numcnn.functional.fast`) equals the reference path on the same
inputs: values, every gradient, dtypes and (for the fast path) memory layouts.

Each strategy of the fast kernels is forced in turn — the size thresholds are patched on the
fast modules, and spies check that the intended strategy really ran: convolution by im2col
blocks (whole rows, several rows, parts of a row), by row fields, by one product when the
kernel covers the padded input (LeNet-5's C5), the input gradient row by row or by col2im;
max pooling over generic offsets or with the kept 2×2 knock-out winners, ``relu=True``;
average pooling with and without the padding in the divisor; ReLU and tanh(A, S).

Tolerances: float64 to 1e-12 of the largest value; float32 from the rounding of the
reference path itself — both float32 paths are compared to the float64 reference, and the
fast path's error may be at most 4× the reference path's own float32 error plus 2ε of the
largest sum of absolute terms (never tuned to one machine's rounding), and no element may
exceed the worst-case dot-product bound ``(n + 2)·ε·Σ|terms|``.
"""

from __future__ import annotations

import numpy as np
import pytest

import numcnn.functional.activation as RA
import numcnn.functional.conv as RC
import numcnn.functional.fast.activation as FA
import numcnn.functional.fast.conv as FC
import numcnn.functional.fast.pool as FP
import numcnn.functional.pool as RP
from numcnn.functional import Workspace
from numcnn.functional.fast.workspace import memory_order

EPS32 = float(np.finfo(np.float32).eps)
LAYOUTS = {"nchw": (0, 1, 2, 3), "chwn": (1, 2, 3, 0), "nhwc": (0, 2, 3, 1)}


def in_layout(a: np.ndarray, layout: str) -> np.ndarray:
    """The values of ``a`` (N, C, H, W) stored with the axes of ``LAYOUTS[layout]`` from the
    outermost to the innermost."""
    out = Workspace().fresh_ordered(a.shape, a.dtype, LAYOUTS[layout])
    out[...] = a
    return out


def assert_close64(got, ref, what=""):
    assert got.shape == ref.shape, what
    assert got.dtype == ref.dtype == np.float64, what
    scale = float(np.abs(ref).max()) if ref.size else 0.0
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12 * scale + 1e-300,
                               err_msg=what)


def assert_close32(fast, ref32, ref64, scale, terms, what=""):
    """``fast`` (float32) is as close to the exact ``ref64`` as the float32 reference path
    ``ref32`` is, up to 4× its error plus 2ε·max(scale); ``scale`` holds Σ|terms| of every
    result, ``terms`` how many products each sums."""
    assert fast.shape == ref32.shape == ref64.shape, what
    assert fast.dtype == ref32.dtype == np.float32, what
    err_fast = np.abs(fast.astype(np.float64) - ref64)
    err_ref = np.abs(ref32.astype(np.float64) - ref64)
    big = float(np.max(scale)) if np.size(scale) else 0.0
    assert err_fast.max() <= 4 * err_ref.max() + 2 * EPS32 * big, (
        f"{what}: fast error {err_fast.max():.3g}, reference error {err_ref.max():.3g}")
    assert np.all(err_fast <= (terms + 2) * EPS32 * scale + 1e-30), what


# ---------------------------------------------------------------------------- convolution


@pytest.fixture
def spy(monkeypatch):
    """Record which strategies of the fast convolution run."""
    seen = {"blocks": [], "fields": 0, "dx_rows": 0, "whole_bwd": 0}
    block, fields, rows, whole = (FC._im2col_block, FC._row_fields, FC._dx_by_rows,
                                  FC._whole_backward)

    def spy_block(xp, cols, a, q, stride):
        seen["blocks"].append(cols.shape[3:5])  # (rows R, columns Q) of the block
        return block(xp, cols, a, q, stride)

    def spy_fields(*args):
        seen["fields"] += 1
        return fields(*args)

    def spy_rows(*args):
        seen["dx_rows"] += 1
        return rows(*args)

    def spy_whole(*args):
        seen["whole_bwd"] += 1
        return whole(*args)

    monkeypatch.setattr(FC, "_im2col_block", spy_block)
    monkeypatch.setattr(FC, "_row_fields", spy_fields)
    monkeypatch.setattr(FC, "_dx_by_rows", spy_rows)
    monkeypatch.setattr(FC, "_whole_backward", spy_whole)
    return seen


def _conv_shapes(N, C, H, W, F, k, stride, pads):
    Ho = (H + pads[0] + pads[1] - k[0]) // stride[0] + 1
    Wo = (W + pads[2] + pads[3] - k[1]) // stride[1] + 1
    return Ho, Wo, C * k[0] * k[1]


def run_conv_both(x, Wt, b, stride, pads, layout, need=(True, True, True), seed=0):
    """Forward and backward on both paths; float32 inputs are also run through the float64
    reference and its absolute-value twin (the sums of |terms|). Returns a dict of results."""
    rng = np.random.default_rng(seed)
    yF, cF = FC.conv2d_forward(in_layout(x, layout), Wt, b, stride, pads, Workspace())
    assert cF["kernel"] == "fast"
    yR, cR = RC.conv2d_forward(x, Wt, b, stride, pads)
    dy = rng.standard_normal(yR.shape).astype(x.dtype)
    gF = FC.conv2d_backward(in_layout(dy, layout), cF, *need)
    gR = RC.conv2d_backward(dy, cR, *need)
    out = {"cache": cF, "fast": (yF, *gF), "ref": (yR, *gR), "dy": dy}
    if x.dtype == np.float32:
        x64, W64, dy64 = (a.astype(np.float64) for a in (x, Wt, dy))
        b64 = None if b is None else b.astype(np.float64)
        y64, c64 = RC.conv2d_forward(x64, W64, b64, stride, pads)
        ya, ca = RC.conv2d_forward(abs(x64), abs(W64), None if b is None else abs(b64),
                                   stride, pads)
        out["ref64"] = (y64, *RC.conv2d_backward(dy64, c64, *need))
        out["scale"] = (ya, *RC.conv2d_backward(abs(dy64), ca, *need))
    return out


def assert_conv_paths_agree(res, need=(True, True, True)):
    F, C, kh, kw = res["cache"]["W"].shape
    N = res["cache"]["x_shape"][0]
    _, _, Ho, Wo = res["ref"][0].shape
    terms = (C * kh * kw + 1, F * kh * kw, N * Ho * Wo, N * Ho * Wo)
    for i, name in enumerate(("y", "dx", "dW", "db")):
        got, ref = res["fast"][i], res["ref"][i]
        if i and not need[i - 1]:
            assert got is None and ref is None, name
            continue
        if ref.dtype == np.float64:
            assert_close64(got, ref, name)
        else:
            assert_close32(got, ref, res["ref64"][i], res["scale"][i], terms[i], name)


# (N, C, H, W, F, kernel, stride, pads)
CONV_CASES = {
    "3x2-pad0": (3, 2, 9, 8, 4, (3, 2), (1, 1), (0, 0, 0, 0)),
    "s2x1-asym-pads": (2, 3, 10, 9, 2, (3, 3), (2, 1), (1, 0, 2, 1)),
    "s1x2-width-stride": (2, 2, 9, 11, 3, (2, 3), (1, 2), (0, 1, 1, 0)),
    "batch1-s3x2-tail": (1, 2, 10, 9, 3, (3, 2), (3, 2), (0, 0, 0, 0)),
    "many-maps-pad1": (2, 1, 8, 8, 6, (3, 3), (1, 1), (1, 1, 1, 1)),
}


def _set_blocks(monkeypatch, mode, K, Wo, N, itemsize):
    """Patch the fast convolution's thresholds for one blocking ``mode``."""
    monkeypatch.setattr(FC, "MIN_COLS_PER_FILTER", 0)  # blocks sized by BLOCK_BYTES alone
    if mode == "rows":  # blocks of 2 whole output rows, the last one maybe partial
        monkeypatch.setattr(FC, "BLOCK_BYTES", 2 * K * Wo * N * itemsize)
    elif mode == "row-parts":  # parts of one row: 2 output positions per block
        monkeypatch.setattr(FC, "BLOCK_BYTES", 2 * K * N * itemsize)
        monkeypatch.setattr(FC, "ROW_SPLIT_BYTES", 1)
    elif mode == "max-cols":  # rows split because a product may have at most 3·N columns
        monkeypatch.setattr(FC, "MAX_COLS", 3 * N)
    elif mode == "fields":
        monkeypatch.setattr(FC, "MIN_FIELD_COLS", 1)
        monkeypatch.setattr(FC.tuning, "KEEP_FIELD_BYTES", 0)  # built again for dW
    else:
        assert mode == "one"


def _check_blocks(mode, seen, Ho, Wo):
    blocks = seen["blocks"]
    if mode == "fields":
        assert seen["fields"] == 2 and not blocks  # forward, then again for dW
        return
    assert seen["fields"] == 0 and blocks
    if mode == "one":
        assert set(blocks) == {(Ho, Wo)}
    elif mode == "rows":
        assert {q for _, q in blocks} == {Wo} and max(r for r, _ in blocks) == 2
    elif mode == "row-parts":
        assert {r for r, _ in blocks} == {1} and max(q for _, q in blocks) == 2
    elif mode == "max-cols":
        assert {r for r, _ in blocks} == {1} and max(q for _, q in blocks) == 3


def test_conv_blocks_grow_with_the_number_of_kernels():
    """Many kernels: a block has at least MIN_COLS_PER_FILTER·F columns (VGG's 512-channel
    4×4 layer at batch 64: all 1,024 columns at once, not 16 blocks of one position), up to
    MAX_BLOCK_BYTES; few kernels keep the cache-sized BLOCK_BYTES."""
    K, N = 512 * 9, 64
    assert FC._blocks(4, 4, K, N, 4, F=512) == [(0, 4, 0, 4)]
    assert len(FC._blocks(4, 4, K, N, 4)) == 16  # F unknown: cache-sized, one position each
    big = FC._blocks(56, 56, 64 * 9, 16, 4, F=64)
    cols = {R * Q * 16 for _, R, _, Q in big}
    assert cols == {56 * 16}  # ResNet-18's first stage: one whole row per block
    huge = FC._blocks(7, 7, K, 512, 4, F=4096)  # capped by MAX_BLOCK_BYTES
    assert all(K * R * Q * 512 * 4 <= FC.MAX_BLOCK_BYTES for _, R, _, Q in huge)
    assert max(R * Q for _, R, _, Q in huge) > 1


def test_conv_input_gradient_by_rows_only_on_wide_maps():
    """The row-by-row input gradient multiplies over the padded width: not on 4×4 maps with
    512 channels, where the extra products outweigh the memory saved."""
    assert FC._use_row_gemm(16, 16, 3, 3, 32, 34, (1, 1))
    assert FC._use_row_gemm(64, 64, 3, 3, 8, 10, (1, 1))
    assert FC._use_row_gemm(6, 16, 5, 5, 10, 14, (1, 1))  # LeNet-5's C3
    assert not FC._use_row_gemm(512, 512, 3, 3, 4, 6, (1, 1))
    assert not FC._use_row_gemm(512, 512, 3, 3, 2, 4, (1, 1))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("layout", ["nchw", "chwn"])
@pytest.mark.parametrize("mode", ["one", "rows", "row-parts", "max-cols", "fields"])
@pytest.mark.parametrize("case", list(CONV_CASES))
def test_conv_strategies_equal_reference(case, mode, layout, dtype, spy, monkeypatch):
    N, C, H, W, F, k, stride, pads = CONV_CASES[case]
    Ho, Wo, K = _conv_shapes(*CONV_CASES[case])
    _set_blocks(monkeypatch, mode, K, Wo, N, np.dtype(dtype).itemsize)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    Wt = rng.standard_normal((F, C) + k).astype(dtype)
    b = rng.standard_normal(F).astype(dtype)
    res = run_conv_both(x, Wt, b, stride, pads, layout)
    _check_blocks(mode, spy, Ho, Wo)
    row_dx = FC._use_row_gemm(C, F, k[0], k[1], Wo, W + pads[2] + pads[3], stride)
    assert spy["dx_rows"] == int(row_dx)
    assert not res["cache"]["whole"]
    assert_conv_paths_agree(res)
    if N > 1:  # outputs are batch-innermost memory, whatever the input's layout
        assert memory_order(res["fast"][0]) == memory_order(res["fast"][1]) == LAYOUTS["chwn"]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", ["3x2-pad0", "s2x1-asym-pads", "batch1-s3x2-tail"])
def test_conv_col2im_input_gradient_equals_reference_at_width_stride_1(case, dtype, spy,
                                                                        monkeypatch):
    """The col2im scatter is also right where the row-by-row input gradient is chosen."""
    N, C, H, W, F, k, stride, pads = CONV_CASES[case]
    monkeypatch.setattr(FC, "_use_row_gemm", lambda *args: False)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    Wt = rng.standard_normal((F, C) + k).astype(dtype)
    res = run_conv_both(x, Wt, None, stride, pads, "chwn")
    assert spy["dx_rows"] == 0
    assert_conv_paths_agree(res)


@pytest.mark.parametrize("need", [(True, False, False), (False, True, False),
                                  (False, False, True), (False, True, True),
                                  (True, True, False)],
                         ids=["dx", "dW", "db", "dW+db", "dx+dW"])
@pytest.mark.parametrize("mode", ["one", "row-parts", "fields"])
@pytest.mark.parametrize("case", ["s2x1-asym-pads", "s1x2-width-stride"])
def test_conv_gradient_subsets_equal_reference(case, mode, need, spy, monkeypatch):
    N, C, H, W, F, k, stride, pads = CONV_CASES[case]
    Ho, Wo, K = _conv_shapes(*CONV_CASES[case])
    _set_blocks(monkeypatch, mode, K, Wo, N, 8)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((N, C, H, W))
    Wt = rng.standard_normal((F, C) + k)
    res = run_conv_both(x, Wt, rng.standard_normal(F), stride, pads, "nchw", need)
    assert_conv_paths_agree(res, need)


@pytest.mark.parametrize("keep", [True, False])
def test_conv_row_fields_at_a_real_batch_size_equal_reference(spy, monkeypatch, keep):
    """No patched threshold: 64 samples × 8 output columns = 512 columns per row. The
    fields (123 kB, 3 kernels) stay in the cache for dW; above ``KEEP_FIELD_BYTES`` the
    backward pass builds them again."""
    if not keep:
        monkeypatch.setattr(FC.tuning, "KEEP_FIELD_BYTES", 0)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((64, 2, 10, 10)).astype(np.float32)
    Wt = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    res = run_conv_both(x, Wt, b, (1, 1), (0, 0, 0, 0), "chwn")
    # forward, then again for dW unless kept
    assert spy["fields"] == (1 if keep else 2) and not spy["blocks"]
    assert_conv_paths_agree(res)


# (N, C, H, W, F, kernel, stride, pads): the kernel covers the whole padded input
WHOLE_CASES = {
    "lenet-c5": (4, 16, 5, 5, 12, (5, 5), (1, 1), (0, 0, 0, 0)),
    "padded": (3, 2, 3, 4, 5, (5, 6), (1, 1), (1, 1, 2, 0)),
    "strided": (2, 3, 4, 4, 2, (4, 4), (2, 3), (0, 0, 0, 0)),
    "batch1": (1, 2, 3, 3, 4, (3, 3), (1, 1), (0, 0, 0, 0)),
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("layout", ["nchw", "chwn"])
@pytest.mark.parametrize("need", [(True, True, True), (False, True, True),
                                  (True, False, False)], ids=["all", "dW+db", "dx"])
@pytest.mark.parametrize("case", list(WHOLE_CASES))
def test_conv_whole_kernel_product_equals_reference(case, need, layout, dtype, spy):
    N, C, H, W, F, k, stride, pads = WHOLE_CASES[case]
    rng = np.random.default_rng(5)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    Wt = rng.standard_normal((F, C) + k).astype(dtype)
    b = rng.standard_normal(F).astype(dtype)
    res = run_conv_both(x, Wt, b, stride, pads, layout, need)
    assert res["cache"]["whole"] and spy["whole_bwd"] == 1 and not spy["blocks"]
    assert_conv_paths_agree(res, need)


def test_conv_workspace_reused_with_other_pads_of_the_same_padded_shape():
    """A call site's workspace sees pads (0, 1) for a 6-row input and (1, 1) for a 5-row one
    (``padding="same"``, stride 2): the padded buffers have the same shape, and the border
    of the second call must still be zeros (it held the first input's last row)."""
    rng = np.random.default_rng(6)
    Wt = rng.standard_normal((2, 1, 3, 3))
    ws = Workspace()
    for H, pads in ((6, (0, 1, 0, 1)), (5, (1, 1, 1, 1)), (6, (0, 1, 0, 1))):
        x = rng.standard_normal((2, 1, H, H))
        y, cache = FC.conv2d_forward(x, Wt, None, (2, 2), pads, ws)
        dy = rng.standard_normal(y.shape)
        yR, cR = RC.conv2d_forward(x, Wt, None, (2, 2), pads)
        assert_close64(y, yR)
        for g, r in zip(FC.conv2d_backward(dy, cache), RC.conv2d_backward(dy, cR)):
            assert_close64(g, r)


# -------------------------------------------------------------------------------- pooling
# (shape, pool, stride, pads)
POOL_CASES = {
    "2x2": ((3, 2, 8, 8), (2, 2), (2, 2), (0, 0, 0, 0)),
    "2x2-odd-sizes": ((2, 2, 7, 9), (2, 2), (2, 2), (0, 0, 0, 0)),
    "3x3s2-overlap": ((2, 2, 7, 7), (3, 3), (2, 2), (0, 0, 0, 0)),
    "3x2-overlap-asym-pads": ((2, 3, 7, 6), (3, 2), (2, 1), (1, 1, 1, 0)),
    "2x2-pad1": ((2, 2, 6, 6), (2, 2), (2, 2), (1, 1, 1, 1)),
    "2x3-gaps-batch1": ((1, 2, 8, 7), (2, 3), (3, 2), (0, 1, 1, 1)),
    "1x1-s2": ((2, 2, 5, 6), (1, 1), (2, 2), (0, 0, 0, 0)),
}
KNOCKOUT = {"2x2", "2x2-odd-sizes"}  # unpadded 2×2 stride 2: the kept winners apply


def _pool_data(shape, kind, rng):
    if kind == "ties":  # small integers: tied maxima inside windows
        return rng.integers(0, 3, shape).astype(np.float64)
    if kind == "relu":  # a ReLU output: all-zero windows and ties at 0
        z = rng.integers(-2, 3, shape).astype(np.float64)
        z[:, :, :3, :3] = -1.0
        return np.maximum(z, 0)
    return rng.permutation(np.linspace(-1, 1, int(np.prod(shape)))).reshape(shape)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("layout", ["nchw", "chwn"])
@pytest.mark.parametrize("winners", [False, True], ids=["offsets", "winners"])
@pytest.mark.parametrize("kind", ["tie-free", "ties", "relu"])
@pytest.mark.parametrize("case", list(POOL_CASES))
def test_max_pool_equals_reference(case, kind, winners, layout, dtype, monkeypatch):
    shape, pool, stride, pads = POOL_CASES[case]
    monkeypatch.setattr(FP, "WINNERS_MIN_BYTES", 0)
    rng = np.random.default_rng(7)
    x = _pool_data(shape, kind, rng).astype(dtype)
    xF = in_layout(x, layout)
    yF, cF = FP.max_pool2d_forward(xF, pool, stride, pads, Workspace(), winners)
    assert (cF["knockout"] is not None) == (winners and case in KNOCKOUT)
    yR, cR = RP.max_pool2d_forward(x, pool, stride, pads)
    assert yF.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(yF, yR)  # a maximum is exact
    dy = rng.standard_normal(yR.shape).astype(dtype)
    relu = kind == "relu"
    dxF = FP.max_pool2d_backward(in_layout(dy, layout), cF, relu=relu)
    dxR = RP.max_pool2d_backward(dy, cR, relu=relu)
    if 1 not in shape:
        assert memory_order(yF) == memory_order(dxF) == LAYOUTS[layout]
    if dtype == "float64":
        assert_close64(dxF, dxR)
    else:  # routed values are exact; overlapping windows add a few of them
        _, c64 = RP.max_pool2d_forward(x.astype(np.float64), pool, stride, pads)
        dx64 = RP.max_pool2d_backward(dy.astype(np.float64), c64, relu=relu)
        scale = RP.max_pool2d_backward(abs(dy.astype(np.float64)), c64, relu=relu)
        assert_close32(dxF, dxR, dx64, scale, pool[0] * pool[1])
    if relu:  # and it is the pooling gradient times ReLU's derivative
        plain = RP.max_pool2d_backward(dy, cR)
        assert np.any(plain[x == 0] != 0)
        np.testing.assert_allclose(dxF, plain * (x > 0), rtol=4 * np.finfo(dtype).eps, atol=0)


def test_max_pool_winners_only_from_the_size_threshold_on(monkeypatch):
    """The kept comparisons start at WINNERS_MIN_BYTES of input, and only when asked for."""
    monkeypatch.setattr(FP, "WINNERS_MIN_BYTES", 2 * 2 * 8 * 8 * 8)
    small, big = np.zeros((2, 2, 8, 6)), np.zeros((2, 2, 8, 8))
    assert FP.max_pool2d_forward(small, (2, 2), (2, 2), winners=True)[1]["knockout"] is None
    assert FP.max_pool2d_forward(big, (2, 2), (2, 2), winners=True)[1]["knockout"] is not None
    assert FP.max_pool2d_forward(big, (2, 2), (2, 2), winners=False)[1]["knockout"] is None


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("layout", ["nchw", "chwn"])
@pytest.mark.parametrize("count_include_pad", [True, False], ids=["incl-pad", "excl-pad"])
@pytest.mark.parametrize("case", list(POOL_CASES))
def test_avg_pool_equals_reference(case, count_include_pad, layout, dtype):
    shape, pool, stride, pads = POOL_CASES[case]
    rng = np.random.default_rng(8)
    x = rng.standard_normal(shape).astype(dtype)
    yF, cF = FP.avg_pool2d_forward(in_layout(x, layout), pool, stride, pads,
                                   count_include_pad, Workspace())
    yR, cR = RP.avg_pool2d_forward(x, pool, stride, pads, count_include_pad)
    dy = rng.standard_normal(yR.shape).astype(dtype)
    dxF = FP.avg_pool2d_backward(in_layout(dy, layout), cF)
    dxR = RP.avg_pool2d_backward(dy, cR)
    if 1 not in shape:
        assert memory_order(yF) == memory_order(dxF) == LAYOUTS[layout]
    if dtype == "float64":
        assert_close64(yF, yR, "y")
        assert_close64(dxF, dxR, "dx")
        return
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    y64, c64 = RP.avg_pool2d_forward(x64, pool, stride, pads, count_include_pad)
    ya, _ = RP.avg_pool2d_forward(abs(x64), pool, stride, pads, count_include_pad)
    n = pool[0] * pool[1]
    assert_close32(yF, yR, y64, ya, n, "y")
    assert_close32(dxF, dxR, RP.avg_pool2d_backward(dy64, c64),
                   RP.avg_pool2d_backward(abs(dy64), c64), n, "dx")


@pytest.mark.parametrize("which", ["max", "avg"])
def test_pool_workspace_reused_with_other_pads_of_the_same_padded_shape(which):
    """As for convolution: pads (0, 1) then (1, 1) give padded buffers of one shape; the
    border must be −∞ (max) or 0 (average) again, not the previous input's last row."""
    rng = np.random.default_rng(9)
    ws = Workspace()
    for H, pads in ((6, (0, 1, 0, 1)), (5, (1, 1, 1, 1)), (6, (0, 1, 0, 1))):
        x = rng.standard_normal((2, 2, H, H)) + 5.0  # the border would win every window
        if which == "max":
            yF, cF = FP.max_pool2d_forward(x, (3, 3), (2, 2), pads, ws)
            yR, cR = RP.max_pool2d_forward(x, (3, 3), (2, 2), pads)
            dy = rng.standard_normal(yR.shape)
            dxF, dxR = FP.max_pool2d_backward(dy, cF), RP.max_pool2d_backward(dy, cR)
        else:
            yF, cF = FP.avg_pool2d_forward(x, (3, 3), (2, 2), pads, True, ws)
            yR, cR = RP.avg_pool2d_forward(x, (3, 3), (2, 2), pads, True)
            dy = rng.standard_normal(yR.shape)
            dxF, dxR = FP.avg_pool2d_backward(dy, cF), RP.avg_pool2d_backward(dy, cR)
        assert_close64(yF, yR, "y")
        assert_close64(dxF, dxR, "dx")


# ---------------------------------------------------------------------------- activations


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_relu_equals_reference_and_keeps_layout(layout, dtype):
    rng = np.random.default_rng(10)
    x = rng.standard_normal((3, 4, 5, 6)).astype(dtype)
    x[0, 0, 0, :2] = 0.0
    xF = in_layout(x, layout)
    yF, cF = FA.relu_forward(xF, Workspace())
    yR, cR = RA.relu_forward(x)
    dy = rng.standard_normal(x.shape).astype(dtype)
    dxF = FA.relu_backward(in_layout(dy, layout), cF, Workspace())
    dxR = RA.relu_backward(dy, cR)
    assert yF.dtype == dxF.dtype == np.dtype(dtype)
    assert memory_order(yF) == memory_order(dxF) == LAYOUTS[layout]
    np.testing.assert_array_equal(yF, yR)  # max and a 0/1 mask are exact
    np.testing.assert_array_equal(dxF, dxR)
    assert np.all(dxF[x <= 0] == 0) and np.all(dxF[x > 0] == dy[x > 0])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("A, S", [(1.0, 1.0), (1.7159, 2.0 / 3.0), (2.0, 1.0), (1.0, 0.5)])
def test_tanh_equals_reference_and_keeps_layout(A, S, layout, dtype):
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((3, 4, 5, 6)) * 2).astype(dtype)
    yF, tF = FA.tanh_forward(in_layout(x, layout), A, S, Workspace())
    yR, tR = RA.tanh_forward(x, A, S)
    dy = rng.standard_normal(x.shape).astype(dtype)
    dxF = FA.tanh_backward(in_layout(dy, layout), tF, A, S, Workspace())
    dxR = RA.tanh_backward(dy, tR, A, S)
    assert yF.dtype == tF.dtype == dxF.dtype == np.dtype(dtype)
    assert memory_order(yF) == memory_order(tF) == memory_order(dxF) == LAYOUTS[layout]
    if dtype == "float64":
        for name, f, r in (("y", yF, yR), ("t", tF, tR), ("dx", dxF, dxR)):
            assert_close64(f, r, name)
        return
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    y64, t64 = RA.tanh_forward(x64, A, S)
    dx64 = RA.tanh_backward(dy64, t64, A, S)
    # element-wise: a handful of roundings per value, scaled by the value's own size
    assert_close32(yF, yR, y64, abs(A) * np.ones(x.shape), 4, "y")
    assert_close32(tF, tR, t64, np.ones(x.shape), 4, "t")
    assert_close32(dxF, dxR, dx64, abs(dy64) * abs(A * S), 8, "dx")


@pytest.mark.parametrize("winners", [False, True], ids=["offsets", "winners"])
def test_max_pool_routes_the_gradient_of_a_nan_window_like_reference(winners, monkeypatch):
    monkeypatch.setattr(FP, "WINNERS_MIN_BYTES", 0)
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    x[0, 0, 0, 1] = np.nan
    dy = np.ones((1, 1, 2, 2))
    yF, cF = FP.max_pool2d_forward(x, (2, 2), (2, 2), winners=winners)
    yR, cR = RP.max_pool2d_forward(x, (2, 2), (2, 2))
    np.testing.assert_array_equal(yF, yR)  # NaN where the window holds one
    np.testing.assert_array_equal(FP.max_pool2d_backward(dy, cF),
                                  RP.max_pool2d_backward(dy, cR))


@pytest.mark.parametrize("relu", [False, True])
def test_max_pool_1x1_window_routes_every_gradient_like_reference(relu):
    """A 1×1 window (the subsampling shortcut): its only input wins, a NaN included."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 2, 5, 7))
    x[0, 1, 2, 4] = np.nan
    x[1, 0, 0, 0] = 0.0
    for layout in ("nchw", "chwn"):
        yF, cF = FP.max_pool2d_forward(in_layout(x, layout), (1, 1), (2, 2))
        yR, cR = RP.max_pool2d_forward(x, (1, 1), (2, 2))
        np.testing.assert_array_equal(yF, yR)
        dy = rng.standard_normal(yR.shape)
        dxF = FP.max_pool2d_backward(in_layout(dy, layout), cF, relu=relu)
        np.testing.assert_array_equal(dxF, RP.max_pool2d_backward(dy, cR, relu=relu))
        assert memory_order(dxF) == LAYOUTS[layout]


@pytest.mark.parametrize("relu", ["grad", "forward"])
@pytest.mark.parametrize("mode", ["one", "rows", "fields", "whole"])
def test_conv_fused_relu_equals_reference_then_relu(mode, relu, monkeypatch):
    """A ReLU fused into the convolution (applied to each output block while in cache):
    ``max(y, 0)`` forward; with ``"grad"`` the backward pass applies ``1[y > 0]`` first."""
    if mode == "whole":
        N, C, H, W, F, k, stride, pads = WHOLE_CASES["padded"]
    else:
        N, C, H, W, F, k, stride, pads = CONV_CASES["many-maps-pad1"]
        Ho, Wo, K = _conv_shapes(N, C, H, W, F, k, stride, pads)
        _set_blocks(monkeypatch, mode, K, Wo, N, 8)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((N, C, H, W))
    Wt = rng.standard_normal((F, C) + k)
    b = rng.standard_normal(F)
    y, cache = FC.conv2d_forward(in_layout(x, "chwn"), Wt, b, stride, pads, Workspace(),
                                 relu=relu)
    yR, cR = RC.conv2d_forward(x, Wt, b, stride, pads)
    assert (yR < 0).any()
    assert_close64(y, np.maximum(yR, 0), "y")
    dy = rng.standard_normal(yR.shape)
    got = FC.conv2d_backward(in_layout(dy, "chwn"), cache)
    ref = RC.conv2d_backward(dy * (yR > 0) if relu == "grad" else dy, cR)
    for name, a, r in zip(("dx", "dW", "db"), got, ref):
        assert_close64(a, r, name)
