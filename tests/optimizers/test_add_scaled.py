"""add_scaled_ (the SGD/Adam parameter update) against PyTorch's fused ``p.add_(x, alpha=a)``.

Sizes on both sides of the float64 buffer's slice length, a non-contiguous and a float64
``x``: every float32 result must equal PyTorch's bit for bit, and the float64 route must
equal a naive per-element reference rounded once.
"""

import numpy as np
import pytest

from numcnn.optimizers.base import _SLICE, add_scaled_

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("size", [1, 7, _SLICE - 1, _SLICE, _SLICE + 1, 3 * _SLICE + 5])
@pytest.mark.parametrize("alpha", [-0.01, 0.9, -1.7e-3])
def test_float32_update_equals_torch_add_with_alpha(size, alpha):
    rng = np.random.default_rng(size)
    p = rng.standard_normal(size).astype(np.float32)
    x = (rng.standard_normal(size) * 3).astype(np.float32)
    want = torch.from_numpy(p.copy())
    want.add_(torch.from_numpy(x), alpha=alpha)
    got = p.copy()
    add_scaled_(got, x, alpha)
    np.testing.assert_array_equal(got, want.numpy())
    # the naive reference: the exact product and sum in float64, one rounding to float32
    a = np.float64(np.float32(alpha))
    naive = (p.astype(np.float64) + x.astype(np.float64) * a).astype(np.float32)
    np.testing.assert_array_equal(got, naive)


def test_non_contiguous_and_2d_operands():
    rng = np.random.default_rng(1)
    p = rng.standard_normal((300, 250)).astype(np.float32)
    x = rng.standard_normal((250, 300)).astype(np.float32).T  # a transposed view
    want = torch.from_numpy(p.copy())
    want.add_(torch.from_numpy(np.ascontiguousarray(x)), alpha=-0.05)
    got = p.copy()
    add_scaled_(got, x, -0.05)
    np.testing.assert_array_equal(got, want.numpy())


def test_float64_parameters_add_in_float64():
    rng = np.random.default_rng(2)
    p = rng.standard_normal(2 * _SLICE + 3)
    x = rng.standard_normal(p.size)
    got = p.copy()
    add_scaled_(got, x, 0.3)
    np.testing.assert_array_equal(got, p + 0.3 * x)
