"""``Arithmetic`` and ``MatMul`` against PyTorch's broadcasting operators (values and
gradients) and central differences."""

from __future__ import annotations

import numpy as np
import pytest

from numcnn.layers import Arithmetic, MatMul
from numcnn.layers.arithmetic import broadcast_shapes, unbroadcast
from references import check_grad

torch = pytest.importorskip("torch")

OPS = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div,
       "pow": torch.pow}
SHAPES = [((2, 3, 1, 5), (3, 4, 1)), ((4, 3), (4, 3)), ((5,), (2, 3, 5)), ((2, 1), (1,))]


def _operands(rng, sa, sb, op):
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    if op == "pow":
        a = np.abs(a) + 0.5  # a real power of a positive base
    if op == "div":
        b = np.where(b >= 0, b + 0.5, b - 0.5)
    return a, b


@pytest.mark.parametrize("op", sorted(OPS))
@pytest.mark.parametrize("sa, sb", SHAPES)
def test_two_tensors_broadcast_like_torch(op, sa, sb):
    rng = np.random.default_rng(0)
    a, b = _operands(rng, sa, sb, op)
    layer = Arithmetic(op, dtype="float64")
    y = layer([a, b])
    at, bt = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    yt = OPS[op](at, bt)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-13)
    expected = layer.output_shape([sa[1:], sb[1:]])  # None where a batch axis decides
    assert len(expected) == y.ndim - 1
    assert all(e is None or e == n for e, n in zip(expected, y.shape[1:]))
    dy = rng.standard_normal(y.shape)
    yt.backward(torch.tensor(dy))
    da, db = layer.backward(dy)
    np.testing.assert_allclose(da, at.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db, bt.grad.numpy(), rtol=1e-12, atol=1e-12)
    check_grad(lambda: float((layer.forward([a, b]) * dy).sum()), a, da)
    check_grad(lambda: float((layer.forward([a, b]) * dy).sum()), b, db)


@pytest.mark.parametrize("op", sorted(OPS))
@pytest.mark.parametrize("first", [False, True])
def test_a_stored_operand_is_a_parameter_with_its_gradient(op, first):
    rng = np.random.default_rng(1)
    x, c = _operands(rng, (3, 4, 5), (4, 1), op)
    if first:
        c, x = _operands(rng, (4, 1), (3, 4, 5), op)
    layer = Arithmetic(op, constant_shape=c.shape, constant_first=first, dtype="float64")
    layer.build((4, 5))
    layer.params["c"][...] = c
    y = layer.forward(x, training=True)
    xt, ct = torch.tensor(x, requires_grad=True), torch.tensor(c, requires_grad=True)
    yt = OPS[op](ct, xt) if first else OPS[op](xt, ct)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-13)
    dy = rng.standard_normal(y.shape)
    yt.backward(torch.tensor(dy))
    dx = layer.backward(dy)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.grads["c"], ct.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_truncating_division_rounds_toward_zero_with_no_gradient():
    layer = Arithmetic("div", truncate=True, dtype="float64")
    a = np.array([[7.0, -7.0, 6.0]])
    b = np.array([[2.0, 2.0, -4.0]])
    np.testing.assert_array_equal(layer([a, b]), [[3.0, -3.0, -1.0]])
    da, db = layer.backward(np.ones((1, 3)))
    assert not da.any() and not db.any()


def test_unbroadcast_sums_over_repeated_and_added_axes():
    g = np.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(unbroadcast(g, (3, 1)), g.sum(axis=(0, 2))[:, None])
    np.testing.assert_array_equal(unbroadcast(g, (1, 4)), g.sum(axis=(0, 1))[None, :])
    assert broadcast_shapes((None, 3, 1), (4,)) == (None, 3, 4)
    with pytest.raises(ValueError, match="do not broadcast"):
        broadcast_shapes((2, 3), (4,))


def test_bad_arguments_and_shapes_are_refused():
    with pytest.raises(ValueError, match="op must be one of"):
        Arithmetic("mod")
    with pytest.raises(ValueError, match="a scalar is"):
        Arithmetic("add", constant_shape=())
    with pytest.raises(ValueError, match="do not broadcast"):
        Arithmetic("add").output_shape([(3, 4), (5,)])
    with pytest.raises(ValueError, match="expected a list of 2 input shapes"):
        Arithmetic("add").output_shape((3, 4))


MATMUL = [((1, 3), (3,)), ((3,), (2, 3, 4)), ((2, 3, 4), (4,)), ((2, 1, 3, 4), (5, 4, 2)),
          ((6, 4), (4, 2))]


@pytest.mark.parametrize("sa, sb", MATMUL)
def test_matmul_follows_numpy_rules_like_torch(sa, sb):
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    layer = MatMul(dtype="float64")
    y = layer([a, b])
    at, bt = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    yt = torch.matmul(at, bt)
    np.testing.assert_allclose(y, yt.detach().numpy().reshape(y.shape), rtol=1e-12)
    dy = rng.standard_normal(y.shape)
    yt.backward(torch.tensor(dy.reshape(tuple(yt.shape))))
    da, db = layer.backward(dy)
    np.testing.assert_allclose(da, at.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db, bt.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_matmul_with_a_stored_b_trains_b():
    rng = np.random.default_rng(3)
    x, B = rng.standard_normal((2, 5, 3)), rng.standard_normal((3, 4))
    layer = MatMul(b_shape=(3, 4), dtype="float64")
    layer.build((5, 3))
    layer.params["B"][...] = B
    y = layer.forward(x, training=True)
    np.testing.assert_allclose(y, x @ B)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    check_grad(lambda: float((layer.forward(x) * dy).sum()), x, dx)
    check_grad(lambda: float((layer.forward(x) * dy).sum()), layer.params["B"],
               layer.grads["B"].copy())
    with pytest.raises(ValueError, match="inner sizes"):
        MatMul(b_shape=(4, 2)).output_shape((5, 3))
    with pytest.raises(ValueError, match="no axis left for the batch"):
        MatMul().output_shape([(), ()])  # vector · vector: a scalar (the importer's (1, K))
