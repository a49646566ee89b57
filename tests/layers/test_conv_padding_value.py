"""``Conv2D(padding_value=v)``: the input bordered with the constant v, forward and backward,
against PyTorch's ``F.pad(x, value=v)`` followed by an unpadded ``conv2d`` (autograd drops
the border's gradient), the worked "same" example of course text 003 (padded with 1s), the
Gauss–Newton diagonal against squared inputs, the config round trip and the ONNX export."""

from __future__ import annotations

import numpy as np
import pytest

import numcnn
from numcnn.layers import LAYERS, Conv2D, Input

torch = pytest.importorskip("torch")
tF = torch.nn.functional

# (N, C, H, W, F, kernel, stride, padding, value)
CASES = [
    pytest.param(2, 2, 5, 4, 3, 3, 1, "same", 1.0, id="same-ones"),
    pytest.param(1, 3, 7, 6, 2, (2, 3), 2, (1, 0, 2, 1), -0.5, id="asym-s2"),
    pytest.param(2, 1, 6, 6, 2, 4, 1, "same", 2.5, id="same-even-kernel"),
    pytest.param(2, 2, 5, 5, 2, 3, (2, 1), 2, 3.0, id="int-pad-s2x1"),
]


def torch_reference(x, W, b, stride, pads, value, dy):
    """PyTorch: constant padding by F.pad, then conv2d without padding; autograd."""
    xt = torch.tensor(x, requires_grad=True)
    Wt = torch.tensor(W, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    t, bo, left, r = pads
    y = tF.conv2d(tF.pad(xt, (left, r, t, bo), value=value), Wt, bt, stride=stride)
    y.backward(torch.tensor(dy))
    return [a.detach().numpy() for a in (y, xt.grad, Wt.grad, bt.grad)]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("N,C,H,W,F,k,stride,padding,value", CASES)
def test_constant_padding_matches_torch_pad_then_conv(N, C, H, W, F, k, stride, padding, value,
                                                      dtype):
    layer = Conv2D(F, k, stride=stride, padding=padding, padding_value=value, dtype=dtype)
    layer.build((C, H, W), np.random.default_rng(0))
    rng = np.random.default_rng(1)
    x = rng.standard_normal((N, C, H, W))
    Wt = rng.standard_normal(layer.params["W"].shape)
    b = rng.standard_normal(F)
    layer.params["W"][...] = Wt
    layer.params["b"][...] = b
    y = layer.forward(x.astype(dtype))
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy.astype(dtype))
    ours = [y, dx, layer.grads["W"], layer.grads["b"]]
    st = (stride, stride) if isinstance(stride, int) else stride
    ref64 = torch_reference(x, Wt, b, st, layer.pads, value, dy)
    if dtype == "float64":
        for a, r in zip(ours, ref64):
            assert a.dtype == np.float64 and a.shape == r.shape
            np.testing.assert_allclose(a, r, rtol=1e-10, atol=1e-10)
        return
    # float32: within 4× PyTorch's own float32 error against its float64 result (+ 1 ulp)
    ref32 = torch_reference(*(a.astype(np.float32) for a in (x, Wt, b)), st, layer.pads,
                            value, dy.astype(np.float32))
    for a, r64, r32 in zip(ours, ref64, ref32):
        assert a.dtype == np.float32 and a.shape == r64.shape
        tol = 4 * np.abs(r32 - r64).max() + 2 * np.finfo(np.float32).eps * np.abs(r64).max()
        np.testing.assert_allclose(a, r64, rtol=0, atol=tol)


def test_text_003_same_example_pads_with_ones():
    """Course text 003: the 4×4 image, "same" padding with the constant 1 →
    [[11,15,13,9],[7,15,16,15],[13,6,15,11],[13,13,7,9]] (zero padding gives another map)."""
    x = np.array([[1, 2, 3, 0], [0, 1, 2, 3], [3, 0, 1, 2], [2, 3, 0, 1]], float)[None, None]
    k = np.array([[2, 0, 1], [0, 1, 2], [1, 0, 2]], float)
    expected = [[11, 15, 13, 9], [7, 15, 16, 15], [13, 6, 15, 11], [13, 13, 7, 9]]
    for value, same in [(1, True), (0, False)]:
        layer = Conv2D(1, 3, padding="same", padding_value=value, use_bias=False,
                       dtype="float64")
        layer.build((1, 4, 4))
        layer.params["W"][...] = k
        assert np.array_equal(layer.forward(x)[0, 0], expected) == same


def test_gauss_newton_diagonal_uses_the_constant_border():
    """The SDLM diagonal with a constant border: h_W = Σ xp² · d2y with xp the input padded
    with v (torch computes it as the gradient of Σ d2y·conv(xp², W) with respect to W);
    d2x = the border-cropped full convolution with W²."""
    from numcnn.layers.base import Call
    from numcnn.layers.gauss_newton import rule_for

    layer = Conv2D(2, 3, padding="same", padding_value=1.5, dtype="float64")
    layer.build((2, 5, 4), np.random.default_rng(0))
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 2, 5, 4))
    call = Call(training=True)
    layer.fprop(x, call)
    d2y = rng.random((2, 2, 5, 4))
    d2x, h = rule_for(layer)(layer, d2y, call)
    xt = torch.tensor(x, requires_grad=True)
    W2 = torch.tensor(layer.params["W"] ** 2, requires_grad=True)
    xp2 = tF.pad(xt, (1, 1, 1, 1), value=1.5) ** 2
    out = (tF.conv2d(xp2, W2) * torch.tensor(d2y)).sum()
    (gW,) = torch.autograd.grad(out, [W2])
    np.testing.assert_allclose(h["W"], gW.numpy(), rtol=1e-10)
    ref_d2x = tF.conv_transpose2d(torch.tensor(d2y), W2.detach())[:, :, 1:-1, 1:-1]
    np.testing.assert_allclose(d2x, ref_d2x.numpy(), rtol=1e-10, atol=1e-12)


def test_config_round_trip_and_bad_values():
    layer = Conv2D(2, 3, padding="same", padding_value=1.0)
    cfg = layer.get_config()
    assert cfg["padding_value"] == 1.0
    again = LAYERS.lookup("Conv2D").from_config(cfg)
    assert again.padding_value == 1.0
    assert "padding_value" not in Conv2D(2, 3).get_config()  # old configs unchanged
    for bad in (float("nan"), "1", True, None):
        with pytest.raises(ValueError, match=r"padding_value must be a finite number; "
                                             r"received padding_value="):
            Conv2D(2, 3, padding_value=bad)


def test_model_with_constant_padding_trains_like_torch():
    """One SGD step of a two-layer model equals PyTorch's (the border constant in both
    convolutions)."""
    inp = Input((1, 6, 6), dtype="float64")
    h = Conv2D(2, 3, padding="same", padding_value=1.0, name="c1", dtype="float64")(inp)
    out = Conv2D(1, 3, padding=1, padding_value=-1.0, name="c2", dtype="float64")(h)
    model = numcnn.Model(inp, out, seed=0)
    model.compile(optimizer=numcnn.optimizers.get("sgd", lr=0.1), loss="mse", metrics=())
    rng = np.random.default_rng(3)
    x, t = rng.standard_normal((4, 1, 6, 6)), rng.standard_normal((4, 1, 6, 6))
    c1, c2 = model.get_layer("c1"), model.get_layer("c2")
    tw = [torch.tensor(a.copy(), requires_grad=True) for a in
          (c1.params["W"], c1.params["b"], c2.params["W"], c2.params["b"])]
    xt = torch.tensor(x)
    ht = tF.conv2d(tF.pad(xt, (1, 1, 1, 1), value=1.0), tw[0], tw[1])
    yt = tF.conv2d(tF.pad(ht, (1, 1, 1, 1), value=-1.0), tw[2], tw[3])
    tF.mse_loss(yt, torch.tensor(t)).backward()
    model.fit(x, t, batch_size=4, epochs=1, shuffle=False, verbose=0)
    for a, w in zip((c1.params["W"], c1.params["b"], c2.params["W"], c2.params["b"]), tw):
        np.testing.assert_allclose(a, (w - 0.1 * w.grad).detach().numpy(), rtol=1e-10,
                                   atol=1e-12)
