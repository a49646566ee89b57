"""Filter figures: kernels on the documented scales (read back from the pixels), LeNet-5's
C3 connection table left blank where the paper's Table I has no connection, the RBF
bitmaps, and the Gabor bank against its formula written out here."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import matplotlib  # noqa: E402
from viz_pixels import drawn_rgb, expected_rgb, images_by_label  # noqa: E402

import numcnn  # noqa: E402
from numcnn.layers import Conv2D, Dense, Flatten  # noqa: E402
from numcnn.viz import (  # noqa: E402
    gabor_bank,
    plot_filters,
    plot_gabor_bank,
    plot_kernels,
    plot_rbf_bitmaps,
)

# LeNet-5's Table I (LeCun et al. 1998), as the design notes list it: C3 map -> S2 maps read
TABLE_I = [{0, 1, 2}, {1, 2, 3}, {2, 3, 4}, {3, 4, 5}, {4, 5, 0}, {5, 0, 1},
           {0, 1, 2, 3}, {1, 2, 3, 4}, {2, 3, 4, 5}, {3, 4, 5, 0}, {4, 5, 0, 1}, {5, 0, 1, 2},
           {0, 1, 3, 4}, {1, 2, 4, 5}, {0, 2, 3, 5}, {0, 1, 2, 3, 4, 5}]


def test_grey_first_layer_kernels_share_a_symmetric_scale():
    W = np.random.default_rng(0).standard_normal((5, 1, 4, 4))
    fig = plot_kernels(W, panel_size=1.2)
    ims = images_by_label(fig)
    m = np.abs(W).max()
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())
    for f in range(5):
        im = ims[f"W[{f}]"]
        np.testing.assert_array_equal(im.get_array(), W[f, 0])
        assert im.get_clim() == (-m, m)
        got = drawn_rgb(fig, im, pixels)
        assert np.abs(got - expected_rgb(W[f, 0], matplotlib.colormaps["gray"], -m, m)).max() <= 2


def test_rgb_kernels_are_each_scaled_to_0_1():
    W = np.random.default_rng(1).standard_normal((4, 3, 5, 5))
    fig = plot_kernels(W, panel_size=1.2)
    ims = images_by_label(fig)
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())
    for f in range(4):
        w = W[f]
        want = np.empty((5, 5, 3))
        for c in range(3):  # (w − min) / (max − min) over the whole filter, channels last
            want[:, :, c] = (w[c] - w.min()) / (w.max() - w.min())
        np.testing.assert_allclose(ims[f"W[{f}]"].get_array(), want, rtol=1e-12)
        got = drawn_rgb(fig, ims[f"W[{f}]"], pixels)
        assert np.abs(got - np.round(want * 255)).max() <= 2


def test_lenet1998_c3_is_a_grid_blank_where_table_i_has_no_connection():
    model = numcnn.models.get("lenet5-1998", seed=0)
    fig = plot_filters(model, "C3")
    ims = images_by_label(fig)
    W = model.get_layer("C3").params["W"]
    m = np.abs(W).max()
    for o in range(16):
        for c in range(6):
            label = f"W[{o},{c}]"
            if c in TABLE_I[o]:
                np.testing.assert_array_equal(ims[label].get_array(), W[o, c])
                assert ims[label].get_clim() == (-m, m)
            else:
                assert label not in ims
    assert len(ims) == sum(len(s) for s in TABLE_I) == 60


def test_rbf_centres_are_the_paper_bitmaps():
    model = numcnn.models.get("lenet5-1998", seed=0)
    fig = plot_filters(model, "output")
    ims = images_by_label(fig)
    W = model.get_layer("output").params["W"]
    assert set(np.unique(W)) == {-1.0, 1.0}
    for d in range(10):
        img = ims[f"rbf[{d}]"].get_array()
        np.testing.assert_array_equal(img, W[d].reshape(12, 7))
        assert ims[f"rbf[{d}]"].get_clim() == (-1.0, 1.0)
    # "1" is thin and "8" heavy: the stroke counts of Fig. 3's stylised digits differ
    assert (W[1] > 0).sum() < (W[8] > 0).sum()
    got = drawn_rgb(fig, ims["rbf[0]"])  # +1 is drawn black, -1 white (gray_r)
    want = np.where(W[0].reshape(12, 7)[..., None] > 0, 0, 255)
    assert np.abs(got - want).max() <= 2
    default = images_by_label(plot_rbf_bitmaps())
    np.testing.assert_array_equal(default["rbf[7]"].get_array(), W[7].reshape(12, 7))


def gabor_formula(k, theta, lam, psi, sigma_ratio=0.56, gamma=0.5):
    """g = exp(−(x'² + γ²y'²)/2σ²)·cos(2πx'/λ + ψ), zero mean, unit L2 norm (docs/layers.md)."""
    g = np.zeros((k, k))
    sigma = sigma_ratio * lam
    for i in range(k):
        for j in range(k):
            x, y = j - (k - 1) / 2, i - (k - 1) / 2
            xr = x * math.cos(theta) + y * math.sin(theta)
            yr = -x * math.sin(theta) + y * math.cos(theta)
            g[i, j] = math.exp(-(xr ** 2 + gamma ** 2 * yr ** 2) / (2 * sigma ** 2)) \
                * math.cos(2 * math.pi * xr / lam + psi)
    g -= g.mean()
    return g / np.linalg.norm(g)


def test_gabor_bank_matches_the_formula_and_its_labels():
    W, labels = gabor_bank(16, 7)
    fig = plot_gabor_bank(16, 7)
    ims = images_by_label(fig)
    for f in range(16):
        theta = (f % 4) * math.pi / 4
        lam = max(2.0, 7 / 2 ** ((f // 4) % 2))
        psi = (0.0, math.pi / 2)[f // 8]
        np.testing.assert_allclose(ims[f"W[{f}]"].get_array(), gabor_formula(7, theta, lam, psi),
                                   atol=1e-12)
        assert labels[f].startswith(f"θ={round(math.degrees(theta))}° λ={lam:g}")
    titles = [ax.get_title() for ax in fig.axes if ax.get_images()]
    assert titles == labels


def test_deep_layers_truncate_and_say_so():
    W = np.random.default_rng(2).standard_normal((10, 20, 3, 3))
    fig = plot_kernels(W, max_filters=4, max_channels=5)
    ims = images_by_label(fig)
    assert len(ims) == 20 and "W[3,4]" in ims and "W[4,0]" not in ims
    np.testing.assert_array_equal(ims["W[2,3]"].get_array(), W[2, 3])
    assert ims["W[2,3]"].get_clim() == (-np.abs(W[:4, :5]).max(), np.abs(W[:4, :5]).max())
    assert "first 4 of 10 filters" in fig._suptitle.get_text()
    assert "first 5 of 20 input maps" in fig._suptitle.get_text()


def test_first_conv_is_the_default_and_other_layers_are_refused():
    model = numcnn.Sequential([Conv2D(3, 3, name="c"), Flatten(), Dense(2, name="d")],
                              input_shape=(1, 5, 5), seed=0)
    ims = images_by_label(plot_filters(model))
    np.testing.assert_array_equal(ims["W[2]"].get_array(), model.get_layer("c").params["W"][2, 0])
    with pytest.raises(ValueError, match=r"layer 'd' is a Dense; filters are drawn for Conv2D"):
        plot_filters(model, "d")
    with pytest.raises(ValueError, match=r"no layer named 'x' in .*; its layers: c, flatten, d"):
        plot_filters(model, "x")
    with pytest.raises(ValueError, match=r"expected kernels of shape \(F, C, kh, kw\)"):
        plot_kernels(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="rgb=True needs 3 input channels"):
        plot_kernels(np.zeros((2, 1, 3, 3)), rgb=True)
