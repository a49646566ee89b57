"""``extract_patches``: every patch on the stride grid against a naive loop (one and several
channels, non-square patches and strides), random patches reproducible from their seed and
each one a real window of some image, and bad arguments."""

from __future__ import annotations

import numpy as np
import pytest

from numcnn.preprocessing import extract_patches


def _naive(images, h, w, sh, sw):
    out = []
    chan = images.ndim == 4
    for i in range(images.shape[0]):
        for r in range(0, images.shape[-2] - h + 1, sh):
            for c in range(0, images.shape[-1] - w + 1, sw):
                out.append(images[i, :, r:r + h, c:c + w] if chan
                           else images[i, r:r + h, c:c + w])
    return np.array(out)


@pytest.mark.parametrize("shape, size, stride", [((2, 7, 6), 3, 1), ((3, 9, 8), (3, 2), (2, 3)),
                                                  ((2, 3, 6, 7), (2, 4), (1, 2)),
                                                  ((1, 5, 5), 5, 1)])
def test_all_patches_equal_a_naive_loop(shape, size, stride):
    images = np.random.default_rng(0).integers(0, 255, shape).astype(np.uint8)
    h, w = (size, size) if isinstance(size, int) else size
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    got = extract_patches(images, size, stride=stride)
    ref = _naive(images, h, w, sh, sw)
    assert got.dtype == np.uint8 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, ref)


def test_random_patches_are_reproducible_windows():
    images = np.random.default_rng(1).random((4, 2, 10, 9))
    a = extract_patches(images, 4, n=50, seed=3)
    b = extract_patches(images, 4, n=50, seed=3)
    assert a.shape == (50, 2, 4, 4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, extract_patches(images, 4, n=50, seed=4))
    every = _naive(images, 4, 4, 1, 1).reshape(-1, 32)
    for p in a.reshape(50, -1):  # each one is a window of some image
        assert (np.abs(every - p).max(axis=1) == 0).any()
    assert len({p.tobytes() for p in a}) > 30  # drawn widely (≈ 43 of 168 expected)


def test_bad_arguments_are_named():
    x = np.zeros((2, 5, 5))
    with pytest.raises(ValueError, match=r"do not fit in images of 5×5"):
        extract_patches(x, 6)
    with pytest.raises(ValueError, match="size must be a positive int"):
        extract_patches(x, 0)
    with pytest.raises(ValueError, match="stride must be a positive int"):
        extract_patches(x, 2, stride=(1,))
    with pytest.raises(ValueError, match="n must be a positive int or None; received n=0"):
        extract_patches(x, 2, n=0)
    with pytest.raises(ValueError, match=r"\(N, H, W\) or \(N, C, H, W\)"):
        extract_patches(np.zeros((5, 5)), 2)
    with pytest.raises(TypeError, match="numeric numpy array"):
        extract_patches([[1, 2]], 1)
