"""``Permute`` against ``torch.permute`` and a numerical gradient; ``Permute``/``Reshape``
moving between image and sequence shapes, with -1 and a free T, in graphs."""

from __future__ import annotations

import numpy as np
import pytest

import numcnn
from numcnn.layers import Input, Permute, Reshape, TimeDistributed
from references import check_grad

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("dims, shape", [((2, 1), (3, 4)), ((3, 1, 2), (2, 3, 4)),
                                         ((1,), (5,)), ((2, 1, 3), (3, 4, 5)),
                                         ((4, 3, 2, 1), (2, 1, 3, 2))])
def test_matches_torch_permute(dims, shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2,) + shape)
    layer = Permute(dims, dtype="float64")
    y = layer(x)
    xt = torch.tensor(x, requires_grad=True)
    yt = xt.permute(0, *dims)
    np.testing.assert_array_equal(y, yt.detach().numpy())
    assert y.flags.c_contiguous and y.shape[1:] == layer.output_shape(shape)
    dy = rng.standard_normal(y.shape)
    yt.backward(torch.tensor(dy))
    dx = layer.backward(dy)
    np.testing.assert_array_equal(dx, xt.grad.numpy())
    assert dx.flags.c_contiguous
    check_grad(lambda: float((layer.forward(x) * dy).sum()), x, dx)


@pytest.mark.parametrize("dims", [(0, 1), (1, 1), (1, 3), (), (1.0, 2), "12", (True, 2), None])
def test_bad_dims_are_refused(dims):
    with pytest.raises(ValueError, match="dims must be a permutation of 1 … rank"):
        Permute(dims)


def test_rank_mismatch_is_refused():
    with pytest.raises(ValueError, match=r"permutes inputs of 2 axes per sample; received"):
        Permute((2, 1)).output_shape((2, 3, 4))


def test_free_sizes_move_with_their_axis():
    assert Permute((2, 1)).output_shape((None, 28)) == (28, None)


def test_image_rows_as_a_sequence_like_torch():
    """(N, C, H, W) → Permute((2, 1, 3)) → (N, H, C, W) → Reshape((H, -1)): H steps of C·W
    features, as ``x.permute(0, 2, 1, 3).reshape(N, H, -1)``."""
    rng = np.random.default_rng(1)
    inp = Input((3, 5, 4), dtype="float64")
    out = Reshape((5, -1))(Permute((2, 1, 3))(inp))
    model = numcnn.Model(inp, out)
    x = rng.standard_normal((2, 3, 5, 4))
    ref = torch.tensor(x).permute(0, 2, 1, 3).reshape(2, 5, -1).numpy()
    np.testing.assert_array_equal(model.predict(x), ref)


def test_reshape_between_sequences_and_images_with_a_free_length():
    """(T, 784) → Reshape((-1, 1, 28, 28)) → per-step images → Reshape((-1, 784)) back, with
    T free: shapes, values and the backward pass."""
    inp = Input((None, 784), dtype="float64")
    img = Reshape((-1, 1, 28, 28))(inp)
    assert img.shape == (None, 1, 28, 28)
    flat = TimeDistributed(numcnn.layers.Flatten())(img)
    back = Reshape((-1, 784))(img)
    assert flat.shape == (None, 784) and back.shape == (None, 784)
    model = numcnn.Model(inp, [img, back])
    rng = np.random.default_rng(2)
    for T in (1, 3):
        x = rng.standard_normal((2, T, 784))
        a, b = model.predict(x)
        np.testing.assert_array_equal(a, x.reshape(2, T, 1, 28, 28))
        np.testing.assert_array_equal(b, x)
    r = Reshape((-1, 1, 28, 28), dtype="float64")
    x = rng.standard_normal((2, 3, 784))
    y = r(x)
    assert r.backward(np.ones_like(y)).shape == x.shape
    with pytest.raises(ValueError, match="cannot reshape"):
        Reshape((-1, 1, 28, 28)).output_shape((3, 780))
