"""The speed machinery must not change the numbers.

Checks, against PyTorch and the naive references, the parts added for speed: the
batch-innermost conv internals with row blocking (several blocks and a partial last block),
inputs in any memory layout, layout-preserving pooling with exact first-maximum tie routing,
the recycling allocator (never hands out memory someone still references), and a smoke run
of the side-by-side benchmark (``benchmarks/bench.py``, on ``sys.path`` through conftest).
"""

from __future__ import annotations

import numpy as np
import pytest

import numcnn.functional.fast.conv as FC
from numcnn.functional import (
    StaleCacheError,
    Workspace,
    conv2d_backward,
    conv2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
    relu_backward,
    relu_forward,
)
from numcnn.functional import conv as reference_conv
from numcnn.functional.fast.workspace import memory_order
from references import conv2d_backward_ref, conv2d_ref, max_pool2d_ref

LAYOUTS = {
    "nchw": (0, 1, 2, 3),
    "chwn": (1, 2, 3, 0),  # the internal batch-innermost order
    "cnhw": (1, 0, 2, 3),
    "nhwc": (0, 2, 3, 1),
}


def in_layout(x: np.ndarray, order: tuple[int, ...]) -> np.ndarray:
    """The same values as ``x`` (N, C, H, W), stored with axis ``order[0]`` outermost."""
    out = Workspace().fresh_ordered(x.shape, x.dtype, order)
    out[...] = x
    assert memory_order(out) == order or min(x.shape) == 1
    return out


@pytest.fixture
def small_blocks(monkeypatch):
    """Force blocks of 3 output positions (parts of rows)."""
    monkeypatch.setattr(FC, "BLOCK_BYTES", 3 * 6 * 25 * 16 * 4)
    monkeypatch.setattr(FC, "ROW_SPLIT_BYTES", 1)
    yield


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("blocks", ["one", "two-rows", "sub-row"])
@pytest.mark.parametrize(
    "N, C, H, W, F, k, stride, pads",
    [
        (3, 2, 9, 8, 4, (3, 2), (1, 1), (0, 0, 0, 0)),
        (2, 1, 7, 7, 3, (5, 5), (1, 1), (2, 2, 2, 2)),
        (2, 3, 10, 9, 2, (3, 3), (2, 3), (1, 0, 2, 1)),
        (1, 2, 6, 5, 3, (2, 3), (1, 2), (0, 1, 0, 0)),
    ],
)
def test_conv_any_layout_and_blocking_matches_reference(layout, blocks, N, C, H, W, F, k,
                                                        stride, pads, monkeypatch):
    Wo = FC.conv_output_hw((H, W), k, stride, pads)[1]
    if blocks == "two-rows":  # blocks of 2 whole output rows, the last one maybe partial
        monkeypatch.setattr(FC, "BLOCK_BYTES", 2 * C * k[0] * k[1] * Wo * N * 8)
    elif blocks == "sub-row":  # parts of single rows: 2 output positions per block
        monkeypatch.setattr(FC, "BLOCK_BYTES", 2 * C * k[0] * k[1] * N * 8)
        monkeypatch.setattr(FC, "ROW_SPLIT_BYTES", 1)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, C, H, W))
    Wt = rng.standard_normal((F, C) + k)
    b = rng.standard_normal(F)
    y, cache = conv2d_forward(in_layout(x, LAYOUTS[layout]), Wt, b, stride, pads)
    np.testing.assert_allclose(y, conv2d_ref(x, Wt, b, stride, pads), rtol=1e-10, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    dx, dW, db = conv2d_backward(in_layout(dy, LAYOUTS[layout]), cache)
    rdx, rdW, rdb = conv2d_backward_ref(x, Wt, dy, stride, pads)
    np.testing.assert_allclose(dx, rdx, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dW, rdW, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(db, dy.sum(axis=(0, 2, 3)), rtol=1e-10)


def test_conv_matches_torch_float32_lenet_shapes_with_blocks(small_blocks):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((16, 6, 14, 14)).astype(np.float32)
    Wt = rng.standard_normal((16, 6, 5, 5)).astype(np.float32) * 0.1
    b = rng.standard_normal(16).astype(np.float32)
    y, cache = conv2d_forward(x, Wt, b)
    assert y.dtype == np.float32
    xt = torch.from_numpy(x).requires_grad_()
    Wtt = torch.from_numpy(Wt).requires_grad_()
    yt = torch.nn.functional.conv2d(xt, Wtt, torch.from_numpy(b))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-5, atol=1e-5)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    yt.backward(torch.from_numpy(dy))
    dx, dW, db = conv2d_backward(dy, cache)
    assert dx.dtype == dW.dtype == db.dtype == np.float32
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dW, Wtt.grad.numpy(), rtol=1e-4, atol=1e-3)


def test_conv_outputs_are_independent_arrays():
    """Recycled outputs: a held output is never overwritten by the next call."""
    rng = np.random.default_rng(2)
    Wt = rng.standard_normal((4, 1, 3, 3)).astype(np.float32)
    x1 = rng.standard_normal((64, 1, 30, 30)).astype(np.float32)  # outputs > recycler minimum
    x2 = rng.standard_normal((64, 1, 30, 30)).astype(np.float32)
    y1, _ = conv2d_forward(x1, Wt, None)
    keep = y1.copy()
    y2, _ = conv2d_forward(x2, Wt, None)
    assert not np.shares_memory(y1, y2)
    np.testing.assert_array_equal(y1, keep)
    np.testing.assert_allclose(y2, conv2d_ref(x2, Wt), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_max_pool_ties_go_to_first_maximum_like_torch(layout):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    # integers in a small range: many ties inside 2x2 and overlapping 3x3/2 windows
    x = rng.integers(0, 3, (3, 2, 8, 8)).astype(np.float32)
    for pool, stride in (((2, 2), (2, 2)), ((3, 3), (2, 2))):
        y, cache = max_pool2d_forward(in_layout(x, LAYOUTS[layout]), pool, stride)
        xt = torch.from_numpy(x).requires_grad_()
        yt = torch.nn.functional.max_pool2d(xt, pool, stride)
        np.testing.assert_array_equal(y, yt.detach().numpy())
        assert memory_order(y) == memory_order(in_layout(x, LAYOUTS[layout]))
        dy = rng.standard_normal(y.shape).astype(np.float32)
        yt.backward(torch.from_numpy(dy))
        dx = max_pool2d_backward(in_layout(dy, LAYOUTS[layout]), cache)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-6, atol=1e-6)


def test_max_pool_reference_with_padding_in_chwn_layout():
    rng = np.random.default_rng(4)
    x = rng.permutation(np.linspace(-1, 1, 2 * 3 * 7 * 6)).reshape(2, 3, 7, 6)
    pads = (1, 1, 1, 0)
    y, cache = max_pool2d_forward(in_layout(x, LAYOUTS["chwn"]), (3, 2), (2, 2), pads)
    ry, rdx_fn = max_pool2d_ref(x, (3, 2), (2, 2), pads)
    np.testing.assert_array_equal(y, ry)
    dy = rng.standard_normal(y.shape)
    np.testing.assert_allclose(max_pool2d_backward(dy, cache), rdx_fn(dy), rtol=1e-12)


def test_relu_keeps_layout_and_matches_definition():
    rng = np.random.default_rng(5)
    x = in_layout(rng.standard_normal((8, 3, 20, 20)).astype(np.float32), LAYOUTS["chwn"])
    y, cache = relu_forward(x)
    assert y.dtype == np.float32 and memory_order(y) == LAYOUTS["chwn"]
    np.testing.assert_array_equal(y, np.where(x > 0, x, 0))
    dy = rng.standard_normal(x.shape).astype(np.float32)
    dx = relu_backward(dy, cache)
    assert dx.dtype == np.float32
    np.testing.assert_array_equal(dx, np.where(x > 0, dy, 0))


def test_fresh_arrays_never_hand_out_referenced_memory():
    ws = Workspace(min_fresh_bytes=0)
    a = ws.fresh((100,), np.float32)
    b = ws.fresh((100,), np.float32)
    assert not np.shares_memory(a, b)  # a is still referenced
    view = a[10:20]
    del a
    c = ws.fresh((100,), np.float32)
    assert not np.shares_memory(c, view)  # a view keeps its base in use
    del view, c
    d = ws.fresh((100,), np.float32)
    e = ws.fresh((100,), np.float32)
    assert not np.shares_memory(d, e)
    ids = {id(d), id(e)}
    del d, e
    assert id(ws.fresh((100,), np.float32)) in ids  # released arrays are re-used


@pytest.mark.parametrize("pads", [(0, 0, 0, 0), (1, 1, 1, 1)])
@pytest.mark.parametrize("N", [2, 64])  # 64: the row-field path for a 12-wide output
def test_two_conv_calls_on_one_workspace_both_back_propagate_correctly(N, pads):
    """Two forward calls on one workspace, then both backward passes: the buffers the first
    cache keeps (padded input, row fields) are fresh arrays no later call can take while the
    cache holds them (the defect once: weight gradients off by 33–144)."""
    rng = np.random.default_rng(7)
    W = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    ws = Workspace()
    xs = [rng.standard_normal((N, 3, 14, 14)).astype(np.float32) for _ in range(2)]
    calls = [conv2d_forward(x, W, None, (1, 1), pads, ws) for x in xs]
    for x, (y, cache) in zip(xs, calls):
        _, dW, _ = conv2d_backward(np.ones_like(y), cache)
        _, rc = reference_conv.conv2d_forward(x.astype(np.float64), W.astype(np.float64),
                                              None, (1, 1), pads)
        _, dW_ref, _ = reference_conv.conv2d_backward(np.ones(y.shape), rc)
        np.testing.assert_allclose(dW, dW_ref, rtol=1e-4, atol=1e-3)


def test_workspace_children_share_one_pool_of_fresh_arrays():
    """A model's call sites re-use each other's dead arrays (a caching allocator), so the
    memory kept is the largest live set, not one set per call site."""
    ws = Workspace()
    a, b = ws.child(0), ws.child(1)
    x = a.fresh((1000, 100), np.float32)
    ident = id(x)
    del x
    assert id(b.fresh((1000, 100), np.float32)) == ident
    p = a.fresh((10, 100, 100), np.float32, ("xp", 1), 0.0)
    assert not p.any()
    p[:] = 5.0
    del p
    assert b.fresh((10, 100, 100), np.float32, ("xp", 2), 0.0).max() == 0.0  # other tag
    assert b.fresh((10, 100, 100), np.float32, ("xp", 1), 0.0).max() == 5.0  # same tag: reused


def test_stale_max_pool_cache_raises():
    rng = np.random.default_rng(8)
    ws = Workspace()
    x = rng.standard_normal((4, 2, 8, 8)).astype(np.float32)
    y1, c1 = max_pool2d_forward(x, (2, 2), (2, 2), (1, 1, 1, 1), ws)
    max_pool2d_forward(x + 1, (2, 2), (2, 2), (1, 1, 1, 1), ws)
    with pytest.raises(StaleCacheError):
        max_pool2d_backward(np.ones_like(y1), c1)


def test_bench_smoke_without_torch(capsys, monkeypatch):
    import bench

    rng = np.random.default_rng(6)
    data = (rng.random((64, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 64),
            rng.random((2000, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 2000))
    monkeypatch.setattr(bench, "load_mnist", lambda *a, **k: data)
    rows = bench.run_bench(threads=(1,), batch_sizes=(16,), steps=2, repeats=1, inference=True,
                     latency=True, synthetic=True, torch=False)
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("ratio numcnn/PyTorch")
    measures = {r["measure"] for r in rows}
    assert {"train s/epoch", "infer images/s (batch 1000)", "latency ms (1 image)"} <= measures
    assert all(v > 0 for r in rows for v in r["numcnn"])
