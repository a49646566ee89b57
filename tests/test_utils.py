"""``numcnn.utils.to_categorical`` against the one-of-c definition written as a loop and
against Keras's convention (the same as ``torch.nn.functional.one_hot`` for on=1, off=0)."""

from __future__ import annotations

import numpy as np
import pytest

from numcnn.utils import to_categorical


def one_of_c_loop(y, c, on, off):
    t = np.empty((len(y), c))
    for n in range(len(y)):
        for k in range(c):
            t[n, k] = on if y[n] == k else off
    return t


@pytest.mark.parametrize("on, off", [(1, 0), (1, -1), (0.8, -0.8)])
def test_one_of_c_targets_equal_the_definition(on, off):
    y = np.random.default_rng(0).integers(0, 10, size=50)
    t = to_categorical(y, 10, on=on, off=off, dtype="float64")
    np.testing.assert_array_equal(t, one_of_c_loop(y, 10, on, off))


def test_tanh_targets_are_plus_minus_one_and_torch_one_hot_agrees():
    torch = pytest.importorskip("torch")
    y = np.array([3, 0, 2, 2, 1])
    t = to_categorical(y, on=1, off=-1)
    assert t.dtype == np.float32 and t.shape == (5, 4)
    ref = 2 * torch.nn.functional.one_hot(torch.tensor(y), 4).numpy() - 1
    np.testing.assert_array_equal(t, ref)
    np.testing.assert_array_equal(to_categorical(y), torch.nn.functional.one_hot(
        torch.tensor(y), 4).numpy())


def test_label_shapes_and_float_labels():
    y = np.array([[0, 1], [2, 0]])
    t = to_categorical(y, 3)
    assert t.shape == (2, 2, 3)
    for i in range(2):
        np.testing.assert_array_equal(t[i], one_of_c_loop(y[i], 3, 1, 0))
    np.testing.assert_array_equal(to_categorical(np.array([1.0, 0.0])), [[0, 1], [1, 0]])


@pytest.mark.parametrize("y, kw, match", [
    ([0, 3], {"num_classes": 3}, r"labels must lie in 0 … 2; received values from 0 to 3"),
    ([-1, 0], {}, r"labels must lie in 0 … 0; received values from -1 to 0"),
    ([0.5], {}, "non-integral"),
    ([0, 1], {"num_classes": 0}, "num_classes must be a positive int; received num_classes=0"),
])
def test_bad_labels_are_refused_clearly(y, kw, match):
    with pytest.raises(ValueError, match=match):
        to_categorical(y, **kw)
    with pytest.raises(TypeError, match="integer class labels; received dtype <U1"):
        to_categorical(["a"])
