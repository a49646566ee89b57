"""LocallyConnected2D (local connections without weight sharing, course 002): both kernel
paths against the naive loops of ``references.py`` and a PyTorch twin built from
``torch.nn.functional.unfold``, float64 central differences, Keras's kernel layout, the
course's 10⁸-parameter count without allocating, the layer's arguments, saving and its
Gauss–Newton rule."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

import numcnn
from numcnn.functional import (
    locally_connected2d_backward,
    locally_connected2d_forward,
    use_kernels,
)
from numcnn.functional.fast import tuning
from numcnn.layers import Dense, Flatten, LocallyConnected2D
from numcnn.layers.base import Call
from numcnn.layers.gauss_newton import rule_for
from references import (
    assert_float32_close,
    check_grad,
    locally_connected2d_backward_ref,
    locally_connected2d_ref,
    pads4,
)

# (N, C, H, W, F, kernel, stride, pads)
CASES = {
    "k3x2-valid": (2, 3, 7, 6, 4, (3, 2), (1, 1), (0, 0, 0, 0)),
    "s2x1-asym-pads": (2, 2, 8, 9, 3, (3, 3), (2, 1), (1, 0, 2, 1)),
    "s1x2-batch1": (1, 2, 9, 11, 2, (2, 3), (1, 2), (0, 1, 1, 0)),
    "s3-uneven": (3, 1, 10, 9, 2, (4, 4), (3, 3), (0, 0, 0, 0)),
    "whole-kernel": (2, 2, 5, 5, 3, (5, 5), (1, 1), (0, 0, 0, 0)),
}


def _out(case):
    N, C, H, W, F, k, s, p = CASES[case]
    return (H + p[0] + p[1] - k[0]) // s[0] + 1, (W + p[2] + p[3] - k[1]) // s[1] + 1


def _data(case, dtype, seed=0):
    N, C, H, W, F, k, stride, pads = CASES[case]
    Ho, Wo = _out(case)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    Wt = rng.standard_normal((Ho, Wo, F, C) + k).astype(dtype)
    b = rng.standard_normal((F, Ho, Wo)).astype(dtype)
    return x, Wt, b, stride, pads


def torch_local(x, W, b, stride, pads, dy):
    """A PyTorch twin from ``unfold``: the receptive fields (N, C·kh·kw, Ho·Wo), one
    kernel per position, autograd for the gradients: ``(y, dx, dW, db)``."""
    torch = pytest.importorskip("torch")
    tF = torch.nn.functional
    Ho, Wo, F, C, kh, kw = W.shape
    xt, Wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, W, b))
    pt, pb, pl, pr = pads
    cols = tF.unfold(tF.pad(xt, (pl, pr, pt, pb)), (kh, kw), stride=stride)  # (N, K, L)
    Wl = Wt.reshape(Ho * Wo, F, C * kh * kw)
    y = torch.einsum("nkl,lfk->nfl", cols, Wl).reshape(x.shape[0], F, Ho, Wo) + bt
    y.backward(torch.tensor(dy))
    return tuple(a.detach().numpy() for a in (y, xt.grad, Wt.grad, bt.grad))


@pytest.mark.parametrize("path", ["fast", "reference"])
@pytest.mark.parametrize("case", list(CASES))
def test_locally_connected_matches_naive_loops(case, path):
    x, Wt, b, stride, pads = _data(case, np.float64)
    with use_kernels(path):
        y, cache = locally_connected2d_forward(x, Wt, b, stride, pads)
    assert cache["kernel"] == path
    np.testing.assert_allclose(y, locally_connected2d_ref(x, Wt, b, stride, pads),
                               rtol=1e-10, atol=1e-10)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    got = locally_connected2d_backward(dy, cache)
    ref = locally_connected2d_backward_ref(x, Wt, dy, stride, pads)
    for g, r, name in zip(got, ref, ("dx", "dW", "db")):
        assert g.shape == r.shape and g.dtype == np.float64, name
        np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-10, err_msg=name)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("path", ["fast", "reference"])
@pytest.mark.parametrize("case", list(CASES))
def test_locally_connected_matches_torch_unfold_twin(case, path, dtype):
    pytest.importorskip("torch")
    x, Wt, b, stride, pads = _data(case, dtype, seed=2)
    with use_kernels(path):
        y, cache = locally_connected2d_forward(x, Wt, b, stride, pads)
    dy = np.random.default_rng(3).standard_normal(y.shape).astype(dtype)
    got = (y, *locally_connected2d_backward(dy, cache))
    ref = torch_local(x, Wt, b, stride, pads, dy)
    names = ("y", "dx", "dW", "db")
    if dtype == "float64":
        for g, r, name in zip(got, ref, names):
            assert g.dtype == np.float64
            np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-10, err_msg=name)
        return
    a64 = [a.astype(np.float64) for a in (x, Wt, b, dy)]
    ref64 = torch_local(*a64[:3], stride, pads, a64[3])
    scale = torch_local(*(np.abs(a) for a in a64[:3]), stride, pads, np.abs(a64[3]))
    N, C, _, _, F, k, _, _ = CASES[case]
    terms = (C * k[0] * k[1] + 1, F * k[0] * k[1], N, N)
    for i, name in enumerate(names):
        assert_float32_close(got[i], ref[i], ref64[i], scale[i], terms[i], name)


@pytest.mark.parametrize("path", ["fast", "reference"])
def test_backward_flags_skip_gradients(path):
    x, Wt, b, stride, pads = _data("s2x1-asym-pads", np.float64)
    with use_kernels(path):
        y, cache = locally_connected2d_forward(x, Wt, b, stride, pads)
    dy = np.ones_like(y)
    rdx, rdW, rdb = locally_connected2d_backward_ref(x, Wt, dy, stride, pads)
    dx, dW, db = locally_connected2d_backward(dy, cache, need_dx=False, need_db=False)
    assert dx is None and db is None
    np.testing.assert_allclose(dW, rdW, rtol=1e-10, atol=1e-10)
    dx, dW, db = locally_connected2d_backward(dy, cache, need_dW=False)
    assert dW is None
    np.testing.assert_allclose(dx, rdx, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(db, rdb, rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------------------- the layer


@pytest.mark.parametrize("path", ["fast", "reference"])
@pytest.mark.parametrize("C,H,W,F,k,stride,padding", [
    (2, 5, 6, 2, (3, 2), 1, "valid"),
    (1, 7, 6, 2, 3, 2, "same"),
    (2, 6, 7, 2, (2, 3), (2, 1), (0, 1, 2, 1)),
    (3, 12, 11, 2, (3, 4), (2, 1), "same"),  # x has 792 values: random directions
])
def test_locally_connected_gradcheck_float64(path, C, H, W, F, k, stride, padding):
    rng = np.random.default_rng(11)
    layer = LocallyConnected2D(F, k, stride=stride, padding=padding, dtype="float64",
                               bias_initializer="normal")
    layer.build((C, H, W), rng)
    x = rng.standard_normal((2, C, H, W))
    R = rng.standard_normal((2,) + layer.output_shape((C, H, W)))

    def loss():
        return float((layer.forward(x) * R).sum())

    with use_kernels(path):
        layer.forward(x)
        dx = layer.backward(R)
        dW, db = layer.grads["W"].copy(), layer.grads["b"].copy()
        check_grad(loss, x, dx, rtol=1e-6, atol=1e-7)
        check_grad(loss, layer.params["W"], dW, rtol=1e-6, atol=1e-7)
        check_grad(loss, layer.params["b"], db, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("padding", ["valid", "same", 1, (1, 2), (0, 1, 2, 0)])
def test_layer_matches_naive_loops_for_every_padding_form(padding):
    layer = LocallyConnected2D(3, (3, 2), stride=(2, 1), padding=padding, dtype="float64")
    layer.build((2, 7, 6), np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((2, 2, 7, 6))
    pads = pads4(padding, (3, 2), (2, 1), (7, 6))
    ref = locally_connected2d_ref(x, layer.params["W"], layer.params["b"], (2, 1), pads)
    np.testing.assert_allclose(layer.forward(x), ref, rtol=1e-10, atol=1e-10)
    assert layer.output_shape((2, 7, 6)) == ref.shape[1:]


def test_same_padding_keeps_ceil_n_over_s():
    layer = LocallyConnected2D(2, 4, stride=3, padding="same")
    assert layer.output_shape((1, 10, 11)) == (2, 4, 4)
    assert layer.param_shapes((1, 10, 11)) == {"W": (4, 4, 2, 1, 4, 4), "b": (2, 4, 4)}


def test_keras_kernel_layout():
    """Keras's kernel (Ho·Wo, kh·kw·C, F) on channels-last patches in (i, j, c) order gives
    the same output as numcnn's W (Ho, Wo, F, C, kh, kw), as the docstring says."""
    layer = LocallyConnected2D(3, (2, 3), stride=(1, 2), use_bias=False, dtype="float64")
    layer.build((2, 5, 7), np.random.default_rng(0))
    W = layer.params["W"]
    Ho, Wo, F, C, kh, kw = W.shape
    keras_kernel = W.transpose(0, 1, 4, 5, 3, 2).reshape(Ho * Wo, kh * kw * C, F)
    x = np.random.default_rng(1).standard_normal((2, C, 5, 7))
    xl = x.transpose(0, 2, 3, 1)  # channels last
    y = np.zeros((2, Ho, Wo, F))
    for p in range(Ho):
        for q in range(Wo):
            patch = xl[:, p : p + kh, q * 2 : q * 2 + kw, :].reshape(2, kh * kw * C)
            y[:, p, q] = patch @ keras_kernel[p * Wo + q]
    np.testing.assert_allclose(layer.forward(x), y.transpose(0, 3, 1, 2), rtol=1e-12)


def test_course_example_ten_to_the_eight_parameters_counted_without_allocating():
    """Course 002: a 1000×1000 image, 10⁶ hidden units each connected to a 10×10 window:
    10⁸ weights without sharing, 100 with it."""
    tracemalloc.start()
    try:
        layer = LocallyConnected2D(1, 10, padding="same", use_bias=False)
        shapes = layer.param_shapes((1, 1000, 1000))
        conns = layer.count_connections((1, 1000, 1000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert shapes == {"W": (1000, 1000, 1, 1, 10, 10)}
    assert math.prod(shapes["W"]) == 10**8 == conns
    assert peak < 1 << 20  # nothing close to the 400 MB the weights would take
    assert not layer.built and not layer.params
    with_bias = LocallyConnected2D(1, 10, padding="same").param_shapes((1, 1000, 1000))
    assert sum(map(math.prod, with_bias.values())) == 10**8 + 10**6
    shared = numcnn.layers.Conv2D(1, 10, padding="same", use_bias=False)
    assert math.prod(shared.param_shapes((1, 1000, 1000))["W"]) == 100


@pytest.mark.parametrize("path", ["fast", "reference"])
def test_scratch_memory_does_not_grow_with_the_image(path):
    """One large image: the passes keep a block (fast) or a row (reference) of receptive
    fields, never all of them (which would be as large as the weights)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 1, 300, 300)).astype(np.float32)
    W = rng.standard_normal((291, 291, 1, 1, 10, 10)).astype(np.float32)  # 34 MB
    with use_kernels(path):
        tracemalloc.start()
        try:
            y, cache = locally_connected2d_forward(x, W, None)
            _, dW, _ = locally_connected2d_backward(np.ones_like(y), cache, need_dx=False,
                                                    need_db=False)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    # the outputs (y, dy, dW) plus a few blocks of fields
    assert peak < 2 * y.nbytes + dW.nbytes + 4 * tuning.BLOCK_BYTES


def test_parameters_and_connections():
    layer = LocallyConnected2D(4, (3, 2), stride=(2, 1))
    assert layer.output_shape((3, 9, 8)) == (4, 4, 7)
    layer.build((3, 9, 8), np.random.default_rng(0))
    assert layer.params["W"].shape == (4, 7, 4, 3, 3, 2)
    assert layer.params["b"].shape == (4, 4, 7)
    n = 4 * 7 * 4 * (3 * 3 * 2 + 1)
    assert layer.count_params() == n == layer.count_connections((3, 9, 8))


def test_free_spatial_size_gives_free_output_but_no_parameters():
    layer = LocallyConnected2D(4, 3)
    assert layer.output_shape((2, None, 9)) == (4, None, None)  # as Conv2D
    with pytest.raises(ValueError, match="dimension 1 of the input, which must be known"):
        layer.param_shapes((2, None, 9))


@pytest.mark.parametrize("kwargs,match", [
    ({"out_channels": 0, "kernel_size": 3}, r"out_channels must be a positive int; "
                                            r"received out_channels=0"),
    ({"out_channels": 2.5, "kernel_size": 3}, r"received out_channels=2.5"),
    ({"out_channels": 2, "kernel_size": 0}, r"kernel_size"),
    ({"out_channels": 2, "kernel_size": 3, "stride": (0, 1)}, r"stride=\(0, 1\)"),
    ({"out_channels": 2, "kernel_size": 3, "padding": "full"}, r"padding='full'"),
    ({"out_channels": 2, "kernel_size": 3, "padding": -1}, r"padding=-1"),
])
def test_rejects_bad_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        LocallyConnected2D(**kwargs)


def test_rejects_wrong_inputs():
    layer = LocallyConnected2D(2, 3)
    with pytest.raises(ValueError, match=r"input \(2, 2\) is too small"):
        layer.output_shape((1, 2, 2))
    layer.build((1, 5, 5))
    with pytest.raises(ValueError, match="shape"):
        layer.forward(np.zeros((1, 1, 6, 5), np.float32))  # other size: other positions
    with pytest.raises(TypeError, match="dtype"):
        layer.forward(np.zeros((1, 1, 5, 5), np.float64))
    for path in ("fast", "reference"):
        with use_kernels(path):
            with pytest.raises(ValueError, match=r"kernels are for 3×3 output positions; "
                                                 r"input \(6, 5\) gives 4×3"):
                locally_connected2d_forward(np.zeros((1, 1, 6, 5)), np.zeros((3, 3, 2, 1, 3, 3)),
                                            None)
            with pytest.raises(ValueError, match=r"kernel expects 1 input channels; input has 2"):
                locally_connected2d_forward(np.zeros((1, 2, 5, 5)), np.zeros((3, 3, 2, 1, 3, 3)),
                                            None)
            with pytest.raises(ValueError, match=r"\(Ho, Wo, F, C, kh, kw\)"):
                locally_connected2d_forward(np.zeros((1, 1, 5, 5)), np.zeros((2, 1, 3, 3)), None)


def test_set_kernels_switches_the_layer():
    layer = LocallyConnected2D(2, 3)
    x = np.random.default_rng(0).standard_normal((2, 1, 6, 6)).astype(np.float32)
    layer(x)
    with use_kernels("reference"):
        layer.forward(x)
        assert layer._last_call.cache[2]["kernel"] == "reference"
    layer.forward(x)
    assert layer._last_call.cache[2]["kernel"] == "fast"


def test_model_trains_saves_and_loads(tmp_path):
    model = numcnn.Sequential([LocallyConnected2D(3, 3, stride=2, name="lc"), Flatten(),
                               Dense(2)], input_shape=(1, 7, 7), seed=0)
    assert "lc (LocallyConnected2D)" in model.summary(print_fn=lambda s: None)
    model.compile(optimizer="sgd")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 1, 7, 7)).astype(np.float32)
    model.fit(x, np.arange(16) % 2, batch_size=8, epochs=1, verbose=0, seed=0)
    path = tmp_path / "lc.npz"
    numcnn.save_model(model, path)
    back = numcnn.load_model(path)
    assert back.get_layer("lc").params["W"].shape == (3, 3, 3, 1, 3, 3)
    np.testing.assert_array_equal(back.predict(x), model.predict(x))


def test_gauss_newton_rule_against_naive_loops():
    """``h_W = Σ_n x²·d2y`` per connection and ``d2x = Σ W²·d2y``: the naive backward with
    squared inputs and weights."""
    layer = LocallyConnected2D(2, (2, 3), stride=(1, 2), padding=(1, 0, 0, 1), dtype="float64")
    layer.build((2, 5, 6), np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((3, 2, 5, 6))
    d2y = np.random.default_rng(2).random((3,) + layer.output_shape((2, 5, 6)))
    for path in ("fast", "reference"):
        with use_kernels(path):
            call = Call(True)
            layer.fprop(x, call)
            d2x, h = rule_for(layer)(layer, d2y, call)
        rdx, rdW, rdb = locally_connected2d_backward_ref(x * x, layer.params["W"] ** 2, d2y,
                                                         (1, 2), (1, 0, 0, 1))
        np.testing.assert_allclose(d2x, rdx, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(h["W"], rdW, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(h["b"], rdb, rtol=1e-12, atol=1e-12)
