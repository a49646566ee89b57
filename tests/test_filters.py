"""Fixed image filters: the course's edge detectors, Sobel/Laplacian on closed-form images."""

from __future__ import annotations

import numpy as np
import pytest

from numcnn import filters
from numcnn.layers import Conv2D
from references import conv2d_ref


def test_course_edge_kernels_as_printed():
    # lesson 003: 卷积核1 提取水平边缘 / 卷积核2 提取垂直边缘
    np.testing.assert_array_equal(filters.get_kernel("horizontal_edge"),
                                  [[1, 1, 1], [0, 0, 0], [-1, -1, -1]])
    np.testing.assert_array_equal(filters.get_kernel("vertical_edge"),
                                  [[1, 0, -1], [1, 0, -1], [1, 0, -1]])
    assert filters.get_kernel("sobel_x").dtype == np.float32
    assert filters.get_kernel("sobel_x", np.float64).dtype == np.float64


def _grid(h, w):
    i, j = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64),
                       indexing="ij")
    return i, j


@pytest.mark.parametrize("a,b", [(1.0, 0.0), (0.0, 2.0), (-0.5, 3.0)])
def test_sobel_and_prewitt_on_a_ramp(a, b):
    i, j = _grid(7, 9)
    x = (a * j + b * i)[None, None]  # intensity a per column to the right, b per row down
    conv = filters.edge_detector(["sobel_x", "sobel_y", "prewitt_x", "prewitt_y"],
                                 input_shape=(1, 7, 9), dtype="float64")
    y = conv.forward(x)
    assert y.shape == (1, 4, 5, 7) and y.dtype == np.float64
    np.testing.assert_allclose(y[0, 0], 8 * a, atol=1e-12)
    np.testing.assert_allclose(y[0, 1], 8 * b, atol=1e-12)
    np.testing.assert_allclose(y[0, 2], 6 * a, atol=1e-12)
    np.testing.assert_allclose(y[0, 3], 6 * b, atol=1e-12)


def test_laplacians_on_a_paraboloid():
    i, j = _grid(6, 6)
    x = (i**2 + j**2)[None, None]  # ∇² = 2 + 2 exactly for the 5-point stencil
    y = filters.edge_detector(["laplacian", "laplacian_diagonal", "identity", "box_blur"],
                              input_shape=(1, 6, 6), dtype="float64").forward(x)
    np.testing.assert_allclose(y[0, 0], 4.0, atol=1e-12)
    # 8-neighbour: axis pairs give 2 + 2, the 4 diagonals give 2·(2 + 2) -> 12
    np.testing.assert_allclose(y[0, 1], 12.0, atol=1e-12)
    np.testing.assert_allclose(y[0, 2], x[0, 0, 1:-1, 1:-1], atol=1e-12)
    np.testing.assert_allclose(y[0, 3], x[0, 0, 1:-1, 1:-1] + 4 / 3, atol=1e-12)


def test_course_edges_find_the_edges():
    x = np.zeros((1, 1, 8, 8))
    x[..., :, :4] = 1.0  # bright left half: a vertical edge between columns 3 and 4
    y = filters.edge_detector(input_shape=(1, 8, 8), dtype="float64").forward(x)
    np.testing.assert_array_equal(y[0, 0], 0.0)  # no horizontal edge anywhere
    cols = np.nonzero(y[0, 1].any(axis=0))[0]
    np.testing.assert_array_equal(cols, [2, 3])  # windows straddling the edge
    assert np.all(y[0, 1][:, cols] == 3.0)
    xt = x.transpose(0, 1, 3, 2).copy()  # bright top half
    yt = filters.edge_detector(input_shape=(1, 8, 8), dtype="float64").forward(xt)
    np.testing.assert_array_equal(yt[0, 1], 0.0)
    assert yt[0, 0].max() == 3.0


@pytest.mark.parametrize("padding", ["valid", "same", 2])
def test_multichannel_feature_maps_match_naive_conv(padding):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 6))
    names = ["horizontal_edge", "vertical_edge", "sobel_x"]
    conv = filters.edge_detector(names, input_shape=(3, 7, 6), padding=padding,
                                 dtype="float64")
    W = np.zeros((3, 3, 3, 3))
    for f, k in enumerate([[[1, 1, 1], [0, 0, 0], [-1, -1, -1]],
                           [[1, 0, -1], [1, 0, -1], [1, 0, -1]],
                           [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]]):
        W[f, :] = k
    pads = {"valid": (0, 0, 0, 0), "same": (1, 1, 1, 1), 2: (2, 2, 2, 2)}[padding]
    np.testing.assert_allclose(conv.forward(x), conv2d_ref(x, W, None, (1, 1), pads),
                               atol=1e-12)


def test_load_kernels_into_existing_layer_and_errors():
    conv = Conv2D(2, 3, dtype="float64")
    conv.build((1, 5, 5), np.random.default_rng(0))
    out = filters.load_kernels(conv, ["sobel_x", np.eye(3)])
    assert out is conv
    np.testing.assert_array_equal(conv.params["W"][1, 0], np.eye(3))
    np.testing.assert_array_equal(conv.params["b"], 0.0)
    with pytest.raises(ValueError, match="out_channels and kernel_size"):
        filters.load_kernels(conv, ["sobel_x"])
    with pytest.raises(ValueError, match="not built"):
        filters.load_kernels(Conv2D(1, 3), ["sobel_x"])
    with pytest.raises(ValueError, match="unknown kernel"):
        filters.get_kernel("roberts")
    with pytest.raises(ValueError, match="one shape"):
        filters.kernel_bank(["sobel_x", np.ones((2, 2))])
