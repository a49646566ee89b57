"""The recurrent examples' data and models (the runs themselves are recorded in
docs/recurrent.md): the adding problem's sequences and baseline, the shifted digit
sequences, and each model's output shape on a free or fixed length."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_adding_problem_data_and_baseline():
    ex = load("adding_problem")
    x, y = ex.adding_data(20000, 100, np.random.default_rng(0))
    assert x.shape == (20000, 100, 2) and x.dtype == np.float32 and y.shape == (20000, 1)
    marks = x[:, :, 1]
    assert (marks.sum(axis=1) == 2).all()
    assert (marks[:, :50].sum(axis=1) == 1).all()  # one marker in each half
    np.testing.assert_allclose(y[:, 0], (x[:, :, 0] * marks).sum(axis=1), rtol=1e-6)
    # predicting the mean 1 scores the variance of a sum of two U(0, 1): 2/12
    assert abs(float(np.mean((y - 1.0) ** 2)) - ex.BASELINE) < 0.006


def test_shifted_digit_sequences():
    ex = load("cnn_lstm_digits")
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (50, 28, 28)).astype(np.uint8)
    out = ex.shifted(images, rng, 3)
    for a, b in zip(images, out):  # every output is its image moved by some (dy, dx)
        assert any((np.roll(np.roll(a, dy, 0), dx, 1)[max(0, dy): 28 + min(0, dy),
                                                         max(0, dx): 28 + min(0, dx)]
                    == b[max(0, dy): 28 + min(0, dy), max(0, dx): 28 + min(0, dx)]).all()
                   and b.sum() <= a.sum()
                   for dy in range(-3, 4) for dx in range(-3, 4))
    labels = rng.integers(0, 10, 50)
    x, sums, digits = ex.sequences(images, labels, 7, 3, rng)
    assert x.shape == (7, 3, 1, 28, 28) and x.dtype == np.float32 and x.max() <= 1
    np.testing.assert_array_equal(sums, digits.sum(axis=1))
    x, target, digits = ex.sequences(images, labels, 7, 3, rng, task="digit")
    assert (digits == target[:, None]).all() and x.shape == (7, 3, 1, 28, 28)


@pytest.mark.parametrize("cell", ["lstm", "gru", "bilstm", "rnn"])
def test_sequential_mnist_models(cell):
    ex = load("sequential_mnist")
    model = ex.build(cell, 8, seed=0)
    x = np.random.default_rng(2).random((2, 28, 28), dtype=np.float32)
    assert model.predict(x).shape == (2, 10)


def test_cnn_lstm_model_takes_any_number_of_frames():
    ex = load("cnn_lstm_digits")
    model = ex.build(28, seed=0)
    for T in (1, 3, 4):
        x = np.random.default_rng(3).random((2, T, 1, 28, 28), dtype=np.float32)
        assert model.predict(x).shape == (2, 28)
