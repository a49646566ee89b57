"""The course's Matlab-style helpers (:mod:`numcnn.functional.course`) against the course's
formulas written as naive loops, the worked examples of course texts 002 and 003 (numbers
from the text), Matlab's documented ``conv2`` results, and the course's back-propagation
formulas against numcnn's reference kernels."""

from __future__ import annotations

import doctest
from pathlib import Path

import numpy as np
import pytest

import numcnn.functional as F
import numcnn.functional.conv as RC
import numcnn.functional.pool as RP


def up_loop(x, nh, nw):
    """``up(x)[i, j] = x[i // nh, j // nw]``, one element at a time."""
    H, W = x.shape
    y = np.zeros((H * nh, W * nw), x.dtype)
    for i in range(H * nh):
        for j in range(W * nw):
            y[i, j] = x[i // nh, j // nw]
    return y


def down_loop(x, nh, nw, mean=False):
    """Sum (or mean) of every non-overlapping nh×nw block."""
    H, W = x.shape
    y = np.zeros((H // nh, W // nw))
    for u in range(H // nh):
        for v in range(W // nw):
            s = 0.0
            for a in range(nh):
                for b in range(nw):
                    s += x[u * nh + a, v * nw + b]
            y[u, v] = s / (nh * nw) if mean else s
    return y


def conv2_loop(x, k, shape):
    """Matlab's conv2 by its definition: ``full[i, j] = Σ_{a, b} x[a, b] k[i − a, j − b]``,
    then the 'same' part starting at (⌊kh/2⌋, ⌊kw/2⌋) or the 'valid' part."""
    H, W = x.shape
    kh, kw = k.shape
    full = np.zeros((H + kh - 1, W + kw - 1))
    for i in range(H + kh - 1):
        for j in range(W + kw - 1):
            s = 0.0
            for a in range(H):
                for b in range(W):
                    if 0 <= i - a < kh and 0 <= j - b < kw:
                        s += x[a, b] * k[i - a, j - b]
            full[i, j] = s
    if shape == "full":
        return full
    if shape == "same":
        return full[kh // 2 : kh // 2 + H, kw // 2 : kw // 2 + W]
    return full[kh - 1 : H, kw - 1 : W]


def correlate_loop(x, w):
    """numcnn's cross-correlation ``y[p, q] = Σ_{i, j} x[p + i, q + j] w[i, j]`` (valid)."""
    H, W = x.shape
    kh, kw = w.shape
    y = np.zeros((H - kh + 1, W - kw + 1))
    for p in range(H - kh + 1):
        for q in range(W - kw + 1):
            y[p, q] = sum(x[p + i, q + j] * w[i, j] for i in range(kh) for j in range(kw))
    return y


@pytest.mark.parametrize("n", [1, 2, 3, (2, 3)])
def test_up_is_the_kronecker_copy(n):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 3, 4))
    nh, nw = (n, n) if isinstance(n, int) else n
    y = F.up(x, n)
    for b in range(2):
        for c in range(3):
            np.testing.assert_array_equal(y[b, c], up_loop(x[b, c], nh, nw))
    assert y.dtype == x.dtype


@pytest.mark.parametrize("how", ["sum", "mean"])
@pytest.mark.parametrize("n", [2, 3, (2, 3)])
def test_down_is_the_block_sum_or_mean(n, how):
    rng = np.random.default_rng(1)
    nh, nw = (n, n) if isinstance(n, int) else n
    x = rng.standard_normal((2, 2 * nh, 3 * nw))
    y = F.down(x, n, how)
    for b in range(2):
        np.testing.assert_allclose(y[b], down_loop(x[b], nh, nw, how == "mean"),
                                   rtol=1e-14, atol=1e-14)


def test_down_refuses_sizes_not_multiples_and_unknown_modes():
    with pytest.raises(ValueError, match=r"multiples of n=\(2, 2\); received shape \(3, 4\)"):
        F.down(np.zeros((3, 4)), 2)
    with pytest.raises(ValueError, match="how must be 'sum' or 'mean'; received how='max'"):
        F.down(np.zeros((4, 4)), 2, how="max")
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        F.up(np.zeros(4), 2)


@pytest.mark.parametrize("shape", ["full", "same", "valid"])
@pytest.mark.parametrize("kshape", [(3, 3), (2, 2), (2, 3), (4, 1), (1, 1)])
def test_conv2_matlab_equals_its_definition(shape, kshape):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 6))
    k = rng.standard_normal(kshape)
    np.testing.assert_allclose(F.conv2_matlab(x, k, shape), conv2_loop(x, k, shape),
                               rtol=1e-13, atol=1e-13)
    if shape == "full":
        np.testing.assert_allclose(F.conv2d_full(x, k), conv2_loop(x, k, "full"),
                                   rtol=1e-13, atol=1e-13)


def test_conv2_matlab_batched_and_refusals():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 5, 5))
    k = rng.standard_normal((3, 2))
    y = F.conv2_matlab(x, k, "valid")
    for b in range(2):
        for c in range(3):
            np.testing.assert_allclose(y[b, c], conv2_loop(x[b, c], k, "valid"), atol=1e-13)
    assert F.conv2_matlab(np.ones((2, 2)), np.ones((3, 3)), "valid").shape == (0, 0)
    with pytest.raises(ValueError, match="shape must be one of .*received shape='circular'"):
        F.conv2_matlab(x, k, "circular")
    with pytest.raises(ValueError, match=r"k must be a 2-D kernel \(kh, kw\); received shape"):
        F.conv2_matlab(x, np.ones((1, 2, 2)))


def test_conv2_matlab_documented_results():
    """Matlab's conv2 of [1 2; 3 4] with ones(2): full [1 3 2; 4 10 6; 3 7 4], and 'same'
    the lower-right 2×2 (Matlab starts 'same' at ⌊kh/2⌋ + 1, 1-based)."""
    A = np.array([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(F.conv2_matlab(A, np.ones((2, 2)), "full"),
                                  [[1, 3, 2], [4, 10, 6], [3, 7, 4]])
    np.testing.assert_array_equal(F.conv2_matlab(A, np.ones((2, 2)), "same"), [[10, 6], [7, 4]])
    np.testing.assert_array_equal(F.conv2_matlab(A, np.ones((2, 2)), "valid"), [[10]])


# ---------------------------------------------------------------- the course's worked examples
X003 = np.array([[1, 2, 3, 0], [0, 1, 2, 3], [3, 0, 1, 2], [2, 3, 0, 1]], float)
K003 = np.array([[2, 0, 1], [0, 1, 2], [1, 0, 2]], float)


def test_text_003_valid_example_is_correlation_not_matlab_convolution():
    """Text 003's 4×4 image and 3×3 kernel give [[15, 16], [6, 15]]: the course's
    "convolution" is numcnn's cross-correlation, i.e. conv2 with the rotated kernel."""
    expected = [[15, 16], [6, 15]]
    np.testing.assert_array_equal(correlate_loop(X003, K003), expected)
    y, _ = RC.conv2d_forward(X003[None, None], K003[None, None], None)
    np.testing.assert_array_equal(y[0, 0], expected)
    np.testing.assert_array_equal(F.conv2_matlab(X003, F.rot180(K003), "valid"), expected)
    # the true convolution with the unrotated kernel is a different map
    assert not np.array_equal(F.conv2_matlab(X003, K003, "valid"), expected)


def test_text_003_same_example_pads_with_ones():
    """Text 003's "same" figure pads the image with the constant 1."""
    expected = [[11, 15, 13, 9], [7, 15, 16, 15], [13, 6, 15, 11], [13, 13, 7, 9]]
    padded = np.pad(X003, 1, constant_values=1.0)
    np.testing.assert_array_equal(correlate_loop(padded, K003), expected)
    np.testing.assert_array_equal(F.conv2_matlab(padded, F.rot180(K003), "valid"), expected)


def test_text_002_binary_image_example():
    """Text 002's 5×5 binary image and the kernel (101, 010, 101) give
    [[4, 3, 4], [2, 4, 3], [2, 3, 4]]; the kernel is symmetric, so conv2 and correlation
    agree."""
    x = np.array([[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0],
                  [0, 1, 1, 0, 0]], float)
    k = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]], float)
    expected = [[4, 3, 4], [2, 4, 3], [2, 3, 4]]
    np.testing.assert_array_equal(correlate_loop(x, k), expected)
    np.testing.assert_array_equal(F.conv2_matlab(x, k, "valid"), expected)
    np.testing.assert_array_equal(RC.conv2d_forward(x[None, None], k[None, None], None)[0][0, 0],
                                  expected)


# --------------------------------------------------- the course's back-propagation formulas
@pytest.mark.parametrize("kshape", [(3, 3), (2, 3)])
def test_convolution_layer_gradients_are_the_courses_conv2_formulas(kshape):
    """For y = x ⋆ W (numcnn) = conv2(x, rot180(W), 'valid'): ∂E/∂x = conv2(δ, W, 'full'),
    ∂E/∂W = conv2(x, rot180(δ), 'valid') (the course's ∂E/∂k = rot180 of it for k =
    rot180(W)), ∂E/∂b = Σ δ — each against numcnn's reference backward pass."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((7, 6))
    W = rng.standard_normal(kshape)
    y, cache = RC.conv2d_forward(x[None, None], W[None, None], np.zeros(1))
    np.testing.assert_allclose(y[0, 0], F.conv2_matlab(x, F.rot180(W), "valid"), atol=1e-13)
    d = rng.standard_normal(y.shape[2:])
    dx, dW, db = RC.conv2d_backward(d[None, None], cache)
    np.testing.assert_allclose(dx[0, 0], F.conv2_matlab(d, W, "full"), atol=1e-13)
    np.testing.assert_allclose(dW[0, 0], F.conv2_matlab(x, F.rot180(d), "valid"), atol=1e-13)
    k = F.rot180(W)  # the course's true-convolution kernel
    np.testing.assert_allclose(F.rot180(dW[0, 0]),
                               F.rot180(F.conv2_matlab(x, F.rot180(d), "valid")), atol=1e-13)
    np.testing.assert_allclose(dx[0, 0], F.conv2_matlab(d, F.rot180(k), "full"), atol=1e-13)
    np.testing.assert_allclose(db, [d.sum()], rtol=1e-13)


@pytest.mark.parametrize("n", [2, 3])
def test_pooling_backward_is_the_courses_up_sampling(n):
    """Tiled average pooling: y = down(x, n)/n² and ∂E/∂x = up(δ)/n²; tiled max pooling:
    ∂E/∂x = up(δ) ⊙ M with M the winners' map (the reference kernels' tiled branch)."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 2 * n, 3 * n))
    y, cache = RP.avg_pool2d_forward(x, (n, n), (n, n))
    np.testing.assert_allclose(y, F.down(x, n, "mean"), rtol=1e-13)
    d = rng.standard_normal(y.shape)
    dx = RP.avg_pool2d_backward(d, cache)
    for b in range(2):
        for c in range(3):
            np.testing.assert_allclose(dx[b, c], up_loop(d[b, c], n, n) / n**2, rtol=1e-14)
    ym, cm = RP.max_pool2d_forward(x, (n, n), (n, n))
    dxm = RP.max_pool2d_backward(d, cm)
    winners = x == F.up(ym, n)  # ties have probability 0 with normal data
    np.testing.assert_array_equal(dxm, F.up(d, n) * winners)


def test_subsampling_layer_is_the_courses_beta_down_layer():
    """The course's S layer u = β·down(x) + b: ∂E/∂β = Σ δ ⊙ down(x), ∂E/∂b = Σ δ,
    ∂E/∂x = β·up(δ) — against numcnn's Subsampling2D (LeNet-5's trainable pooling)."""
    from numcnn.layers import Subsampling2D

    rng = np.random.default_rng(6)
    layer = Subsampling2D(2, dtype="float64")
    layer.build((3, 6, 4), rng)
    beta, b = layer.params["coef"], layer.params["b"]
    x = rng.standard_normal((2, 3, 6, 4))
    y = layer.forward(x)
    for n in range(2):
        for c in range(3):
            np.testing.assert_allclose(y[n, c], beta[c] * down_loop(x[n, c], 2, 2) + b[c],
                                       rtol=1e-13)
    d = rng.standard_normal(y.shape)
    dx = layer.backward(d)
    dbeta = [sum((d[n, c] * down_loop(x[n, c], 2, 2)).sum() for n in range(2))
             for c in range(3)]
    np.testing.assert_allclose(layer.grads["coef"], dbeta, rtol=1e-12)
    np.testing.assert_allclose(layer.grads["b"], d.sum(axis=(0, 2, 3)), rtol=1e-12)
    for n in range(2):
        for c in range(3):
            np.testing.assert_allclose(dx[n, c], beta[c] * up_loop(d[n, c], 2, 2), rtol=1e-13)


def test_the_docs_examples_run():
    doc = Path(__file__).resolve().parents[2] / "docs" / "course_conventions.md"
    result = doctest.testfile(str(doc), module_relative=False,
                              optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 8 and result.failed == 0
