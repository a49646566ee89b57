"""The whole-array layers (``Transpose``, ``Squeeze``, ``Unsqueeze``, ``TensorReshape``,
``TensorConcat``, ``Gather``, ``PadND``), the value layers (``ShapeOf``, ``Constant``,
``FullLike``, ``Fill``) and the reductions (``AxisSoftmax``, ``LogSoftmax``, ``Moments``)
against PyTorch and NumPy, gradients included."""

from __future__ import annotations

import numpy as np
import pytest

from numcnn.layers import (
    AxisSoftmax,
    Constant,
    Fill,
    FullLike,
    Gather,
    LogSoftmax,
    Moments,
    PadND,
    ShapeOf,
    Slice,
    Squeeze,
    TensorConcat,
    TensorReshape,
    Transpose,
    Unsqueeze,
)
from numcnn.layers.tensor_index import pad_sources
from references import check_grad

torch = pytest.importorskip("torch")


def _against_torch(layer, x, torch_fn, rng):
    """Forward and backward of ``layer`` on ``x`` (or a list) equal ``torch_fn``'s."""
    xs = x if isinstance(x, list) else [x]
    ts = [torch.tensor(a, requires_grad=True) for a in xs]
    y = layer.forward(x, training=True)
    yt = torch_fn(*ts)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-13, atol=1e-15)
    dy = rng.standard_normal(y.shape)
    yt.backward(torch.tensor(dy))
    dx = layer.backward(dy)
    for d, t in zip(dx if isinstance(x, list) else [dx], ts):
        np.testing.assert_allclose(d, t.grad.numpy(), rtol=1e-13, atol=1e-15)
    return y, dy, dx


@pytest.mark.parametrize("perm", [(1, 0, 2), (2, 0, 1), (0, 2, 1)])
def test_transpose_moves_any_axis_like_torch(perm):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4))
    layer = Transpose(perm, dtype="float64")
    _against_torch(layer, x, lambda t: t.permute(*perm), rng)
    assert layer.per_sample == (perm[0] == 0)
    assert layer.output_shape((3, 4)) == tuple((None, 3, 4)[p] for p in perm)[1:]


def test_squeeze_and_unsqueeze_like_torch():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 3, 1, 4))
    _against_torch(Squeeze((0, 2), dtype="float64"), x, lambda t: t.squeeze(2).squeeze(0), rng)
    y = rng.standard_normal((3, 4))
    _against_torch(Unsqueeze((0, -1), dtype="float64"), y,
                   lambda t: t.unsqueeze(0).unsqueeze(-1), rng)
    with pytest.raises(ValueError, match="cannot squeeze axes"):
        Squeeze((0,), dtype="float64")(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="has size 3, not 1"):
        Squeeze((1,)).output_shape((3,))


@pytest.mark.parametrize("shape, ref", [((0, -1), (2, 12)), ((-1, 4), (6, 4)),
                                        ((4, 0, -1), (4, 3, 2)), ((1, 24), (1, 24))])
def test_tensor_reshape_copies_zeros_and_infers_minus_one(shape, ref):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 4))
    target = tuple(x.shape[k] if d == 0 else d for k, d in enumerate(shape))
    y, _, _ = _against_torch(TensorReshape(shape, dtype="float64"), x,
                             lambda t: t.reshape(target), rng)
    assert y.shape == ref


def test_tensor_reshape_allowzero_makes_an_empty_axis():
    y = TensorReshape((0, 3), allowzero=True, dtype="float64")(np.zeros((0, 3)))
    assert y.shape == (0, 3)
    with pytest.raises(ValueError, match="both 0 and"):
        TensorReshape((0, -1), allowzero=True)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_tensor_concat_joins_any_axis_like_torch(axis):
    rng = np.random.default_rng(3)
    shapes = {0: [(2, 3), (1, 3)], 1: [(2, 3), (2, 2)], -1: [(2, 3), (2, 1)]}[axis]
    xs = [rng.standard_normal(s) for s in shapes]
    _against_torch(TensorConcat(axis, dtype="float64"), xs, lambda *t: torch.cat(t, axis), rng)


@pytest.mark.parametrize("indices, axis", [([2, 0, 2], 0), ([[1, -1], [0, 0]], 1), (-2, 2)])
def test_gather_takes_rows_and_adds_repeated_gradients(indices, axis):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 4, 5))
    idx = np.asarray(indices)
    n = x.shape[axis]
    pos = torch.tensor(np.where(idx < 0, idx + n, idx))
    y, dy, dx = _against_torch(
        Gather(indices, axis, dtype="float64"), x,
        lambda t: t.index_select(axis, pos.reshape(-1)).reshape(
            t.shape[:axis] + tuple(idx.shape) + t.shape[axis + 1:]), rng)
    np.testing.assert_array_equal(y, np.take(x, np.where(idx < 0, idx + n, idx), axis=axis))
    with pytest.raises(ValueError, match="out of range"):
        Gather([4], 0, dtype="float64")(x)


@pytest.mark.parametrize("starts, ends, axes, steps", [
    ((1,), (3,), (1,), None), ((0, -1), (None, None), (0, 2), (2, -2)),
    ((-100, 7), (100, -100), (2, 1), (1, -1)), ((2,), (1,), (1,), None),
])
def test_slice_picks_the_positions_onnx_names(starts, ends, axes, steps):
    # the reference: each axis's positions from ONNX's clamping rule written out
    # (start/end clamped to [0, n] for a positive step, [−1, n − 1] for a negative one),
    # gathered by torch.index_select, whose autograd gives the gradient
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 5, 6))
    steps_ = steps or (1,) * len(axes)

    def positions(n, s, e, st):
        s = n if s is None and st < 0 else 0 if s is None else s
        e = n if e is None and st > 0 else -n - 1 if e is None else e
        s, e = (s + n if s < 0 else s), (e + n if e < 0 else e)
        lo, hi = (0, n) if st > 0 else (-1, n - 1)
        s, e = min(max(s, lo), hi), min(max(e, lo), hi)
        return list(range(s, e, st))

    picks = {a: positions(x.shape[a], s, e, st)
             for a, s, e, st in zip(axes, starts, ends, steps_)}

    def reference(t):
        for a, pos in picks.items():
            t = t.index_select(a, torch.tensor(pos, dtype=torch.long))
        return t

    _against_torch(Slice(starts, ends, axes, steps, dtype="float64"), x, reference, rng)
    assert Slice(starts, ends, axes, steps).output_shape((5, 6)) == tuple(
        len(picks.get(a, range(x.shape[a]))) if a else None for a in range(3))[1:]


def test_slice_arguments_are_checked():
    with pytest.raises(ValueError, match="steps must be non-zero"):
        Slice((0,), (1,), (1,), (0,))
    with pytest.raises(ValueError, match=r"ends must be 1 ints \(or None\)"):
        Slice((0,), (1, 2), (1,))
    with pytest.raises(ValueError, match="axes must be distinct"):
        Slice((0, 0), (1, 1), (1, 1))
    with pytest.raises(ValueError, match="axis 3 does not fit rank 3"):
        Slice((0,), (1,), (3,)).output_shape((2, 2))


@pytest.mark.parametrize("mode, torch_mode", [("constant", "constant"), ("reflect", "reflect"),
                                              ("edge", "replicate"), ("wrap", "circular")])
def test_pad_modes_like_torch(mode, torch_mode):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 4, 5))
    pads = (0, 0, 2, 1, 0, 0, 1, 3)  # H: 2 before, 1 after; W: 1 before, 3 after
    layer = PadND(pads, mode, value=0.25 if mode == "constant" else 0.0, dtype="float64")
    kwargs = {"value": 0.25} if mode == "constant" else {}
    _, dy, dx = _against_torch(layer, x, lambda t: torch.nn.functional.pad(
        t, (1, 3, 2, 1), mode=torch_mode, **kwargs), rng)
    check_grad(lambda: float((layer.forward(x) * dy).sum()), x, dx)


@pytest.mark.parametrize("mode", ["reflect", "edge", "wrap", "constant"])
def test_pad_wider_than_the_input_matches_numpy(mode):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3))
    y = PadND((0, 5, 0, 7), mode, dtype="float64")(x)
    np_mode = {"edge": "edge", "reflect": "reflect", "wrap": "wrap", "constant": "constant"}
    np.testing.assert_array_equal(y, np.pad(x, ((0, 0), (5, 7)), mode=np_mode[mode]))
    assert list(pad_sources(3, -1, 0, "constant")) == [1, 2]  # a negative amount crops
    z = PadND((0, -1, 0, 2), dtype="float64")(x)
    np.testing.assert_array_equal(z, np.pad(x[:, 1:], ((0, 0), (0, 2))))


def test_value_layers_ignore_the_values_and_pass_no_gradient():
    x = np.ones((4, 2, 3))
    s = ShapeOf(1, dtype="float64")
    np.testing.assert_array_equal(s(x), [2.0, 3.0])
    assert not s.backward(np.ones(2)).any()
    c = Constant((2, 2), dtype="float64")
    c.build((2, 3))
    c.buffers["value"][...] = [[1, 2], [3, 4]]
    np.testing.assert_array_equal(c(x), [[1, 2], [3, 4]])
    np.testing.assert_array_equal(FullLike(1.0, dtype="float64")(x), np.ones_like(x))
    assert Fill((2, -1, 3), 0.5, dtype="float64")(x).shape == (2, 4, 3)


@pytest.mark.parametrize("axes, log", [((1,), False), ((1, 2), False), ((0,), True),
                                       ((-1,), True)])
def test_softmax_over_any_axes_like_torch(axes, log):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 4, 5)) * 3
    layer = LogSoftmax(axes, dtype="float64") if log else AxisSoftmax(axes, dtype="float64")
    ax = sorted(a % 3 for a in axes)
    rest = [a for a in range(3) if a not in ax]

    def ref(t):  # the softmax axes flattened last, then put back
        p = t.permute(*rest, *ax)
        flat = p.reshape(*p.shape[:len(rest)], -1)
        out = (torch.log_softmax if log else torch.softmax)(flat, -1).reshape(p.shape)
        return out.permute(*np.argsort(rest + ax))

    _, dy, dx = _against_torch(layer, x, ref, rng)
    check_grad(lambda: float((layer.forward(x) * dy).sum()), x, dx)


def test_moments_are_the_biased_mean_and_variance():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((3, 4, 5))
    layer = Moments((0, 2), dtype="float64")
    mu, var = layer.forward(x, training=True)
    vt, mt = torch.var_mean(torch.tensor(x), dim=(0, 2), unbiased=False, keepdim=True)
    np.testing.assert_allclose(mu, mt.numpy(), rtol=1e-13)
    np.testing.assert_allclose(var, vt.numpy(), rtol=1e-13)
    dm, dv = rng.standard_normal(mu.shape), rng.standard_normal(var.shape)
    dx = layer.backward((dm, dv))
    check_grad(lambda: float(sum((a * b).sum() for a, b in zip(layer.forward(x), (dm, dv)))),
               x, dx)
