"""``PadChannels`` (the option-A shortcut of the CIFAR ResNets) against ``torch.nn.functional
.pad`` and a float64 numerical gradient."""

from __future__ import annotations

import numpy as np
import pytest

from numcnn.layers import PadChannels
from references import check_grad

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("before, after, shape", [(2, None, (3, 4, 5)), (0, 3, (2, 1, 1)),
                                                  (4, 1, (5,))])
def test_pad_channels_matches_torch(before, after, shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, *shape))
    layer = PadChannels(before, after, dtype="float64")
    y = layer.forward(x)
    a = before if after is None else after
    xt = torch.tensor(x, requires_grad=True)
    # F.pad's pairs run from the last axis backwards: (…, channels before, channels after)
    yt = torch.nn.functional.pad(xt, (0, 0) * (len(shape) - 1) + (before, a))
    np.testing.assert_array_equal(y, yt.detach().numpy())
    dy = rng.standard_normal(y.shape)
    yt.backward(torch.tensor(dy))
    np.testing.assert_array_equal(layer.backward(dy), xt.grad.numpy())
    check_grad(lambda: float((layer.forward(x) * dy).sum()), x, layer.backward(dy))


def test_pad_channels_keeps_a_batch_innermost_layout():
    """A convolution's (C, H, W, N) output stays so through the shortcut (the residual Add
    then adds matching memory), forward and backward."""
    rng = np.random.default_rng(1)
    x = np.ascontiguousarray(rng.standard_normal((3, 4, 5, 6)).transpose(1, 2, 3, 0))
    x = x.transpose(3, 0, 1, 2)  # (N, C, H, W) view of (C, H, W, N) memory
    layer = PadChannels(2, 1, dtype="float64")
    y = layer.forward(x)
    yt = torch.nn.functional.pad(torch.tensor(np.ascontiguousarray(x)), (0, 0, 0, 0, 2, 1))
    np.testing.assert_array_equal(y, yt.numpy())
    assert y.transpose(1, 2, 3, 0).flags.c_contiguous
    dy = np.ascontiguousarray(rng.standard_normal(y.shape).transpose(1, 2, 3, 0))
    dx = layer.backward(dy.transpose(3, 0, 1, 2))
    np.testing.assert_array_equal(dx, dy.transpose(3, 0, 1, 2)[:, 2:6])
    assert dx.transpose(1, 2, 3, 0).flags.c_contiguous


def test_pad_channels_rejects_bad_counts():
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="non-negative int; received"):
            PadChannels(bad)
