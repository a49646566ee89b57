"""LeNet-5 as LeCun et al. (1998) built it (issue 4).

Independent references: the paper's published figures (parameter and connection counts,
Table I written out from the paper's text), PyTorch for forward passes, float64 central
differences for gradients, and a connection-by-connection loop implementation of the
appendix-C Gauss–Newton diagonal (``tests/references.py``) plus, where that diagonal is
exact, ``diag(Jᵀ H J)`` from ``torch.func.jacrev``.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from numcnn.layers import (
    Conv2D,
    Dense,
    Flatten,
    Pad2D,
    RBFOutput,
    Rescale,
    ScaledTanh,
    Subsampling2D,
)
from numcnn.losses import LeNetMAP
from numcnn.models import LENET5_C3_TABLE, Sequential, lenet5_1998
from numcnn.optimizers import SDLM, SGD
from numcnn.schedules import lenet5_eta
from numcnn.training.sdlm import (
    affine_distort,
    estimate_curvature,
    gauss_newton_diagonal,
    penalty_error,
    train_lenet5_1998,
)
from references import check_grad, directional_grad, lenet_gn_diagonal_ref, numerical_grad

# ----------------------------------------------------------------- published figures

#: LeCun et al. (1998), section II.B: (trainable parameters, connections) per layer.
PAPER = {
    "C1": (156, 122_304),
    "S2": (12, 5_880),
    "C3": (1_516, 151_600),
    "S4": (32, 2_000),
    "C5": (48_120, 48_120),
    "F6": (10_164, 10_164),
    "output": (0, 840),  # fixed RBF centres: 840 connections, no trainable parameter
}


@pytest.fixture(scope="module")
def model():
    return lenet5_1998(seed=0)


def test_per_layer_params_and_connections_match_paper(model):
    shape = model.input_shape
    seen = {}
    for layer in model.layers:
        if layer.name in PAPER:
            seen[layer.name] = (layer.count_params(), layer.count_connections(shape))
        elif layer.params:
            pytest.fail(f"unexpected parametrised layer {layer.name}")
        shape = layer.output_shape(shape)
    assert seen == PAPER


def test_totals_match_paper(model):
    assert model.count_params() == 60_000
    conns = 0
    shape = model.input_shape
    for layer in model.layers:
        conns += layer.count_connections(shape) or 0
        shape = layer.output_shape(shape)
    assert conns == 340_908
    assert model.output_shape(model.input_shape) == (10,)


def test_summary_prints_paper_figures(model):
    text = model.summary(print_fn=lambda s: None)
    lines = text.splitlines()
    for name, (params, conns) in PAPER.items():
        row = next(r for r in lines if r.startswith(f"{name} ("))
        assert f"{conns:,}" in row.split()
        if params:
            assert f"{params:,}" in row.split()
    assert "Trainable params: 60,000" in text
    assert "Connections: 340,908" in text


def test_feature_map_shapes_match_paper(model):
    shapes = {}
    shape = model.input_shape
    for layer in model.layers:
        shape = layer.output_shape(shape)
        shapes[layer.name] = shape
    assert shapes["pad"] == (1, 32, 32)
    assert shapes["C1"] == (6, 28, 28) and shapes["S2"] == (6, 14, 14)
    assert shapes["C3"] == (16, 10, 10) and shapes["S4"] == (16, 5, 5)
    assert shapes["C5"] == (120, 1, 1) and shapes["F6"] == (84,)


def test_c3_table_is_table_one():
    # Written out from the paper's text: which S2 maps each C3 map reads.
    reads = [{0, 1, 2}, {1, 2, 3}, {2, 3, 4}, {3, 4, 5}, {4, 5, 0}, {5, 0, 1},
             {0, 1, 2, 3}, {1, 2, 3, 4}, {2, 3, 4, 5}, {3, 4, 5, 0}, {4, 5, 0, 1},
             {5, 0, 1, 2}, {0, 1, 3, 4}, {1, 2, 4, 5}, {0, 2, 3, 5}, {0, 1, 2, 3, 4, 5}]
    t = np.asarray(LENET5_C3_TABLE)
    assert t.shape == (6, 16) and t.dtype == bool
    for o, inputs in enumerate(reads):
        assert {c for c in range(6) if t[c, o]} == inputs, o
    # the paper's Table I, first row (S2 map 0): X . . . X X X . . X X X X . X X
    assert "".join("X" if v else "." for v in t[0]) == "X...XXX..XXXX.XX"


def test_initial_weights_in_range():
    for init, scale in (("fan_in", lambda f: 2.4 / f), ("sqrt_fan_in", lambda f: 2.4 / f**0.5)):
        m = lenet5_1998(seed=1, init=init)
        layers = {layer.name: layer for layer in m.layers}
        for name, fan in (("C1", 25), ("C5", 400), ("F6", 120)):
            w = layers[name].params["W"]
            assert np.abs(w).max() <= scale(fan) and np.abs(w).max() > 0.8 * scale(fan)
        # C3: each output map has its own fan-in (3, 4 or 6 input maps · 25)
        W = layers["C3"].params["W"]
        for o, fan in ((0, 75), (6, 100), (15, 150)):
            assert np.abs(W[o]).max() <= scale(fan) + 1e-9
    with pytest.raises(ValueError, match="init"):
        lenet5_1998(init="glorot")


def test_rbf_centres_are_the_digit_bitmaps(model):
    W = model.layers[-1].params["W"]
    assert W.shape == (10, 84) and set(np.unique(W)) == {-1.0, 1.0}
    assert not model.layers[-1].trainable
    # ten distinct codes, pairwise at least 8 of 84 pixels apart
    diff = (W[:, None, :] != W[None, :, :]).sum(-1)
    assert (diff + 100 * np.eye(10) >= 8).all()


def test_input_normalisation():
    m = lenet5_1998(seed=0)
    x = np.zeros((1, 1, 28, 28), np.float32)
    x[0, 0, 5, 7] = 255
    y = m.layers[1].forward(m.layers[0].forward(x))
    assert y.shape == (1, 1, 32, 32) and y.dtype == np.float32
    np.testing.assert_allclose(y[0, 0, 7, 9], 1.175, rtol=1e-6)
    np.testing.assert_allclose(np.delete(y.ravel(), 7 * 32 + 9), -0.1, rtol=1e-6)


# ----------------------------------------------------------------- forward vs PyTorch

TABLE = np.array([[1, 0, 1, 1], [0, 1, 1, 0], [1, 1, 0, 1]], bool)  # (C_in=3, C_out=4)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sparse_conv_forward_vs_torch(dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    layer = Conv2D(4, (3, 2), stride=(2, 1), padding=1, connection_table=TABLE, dtype=dtype)
    layer.build((3, 7, 6), rng)
    W = layer.params["W"]
    for c in range(3):
        for o in range(4):
            assert (W[o, c] == 0).all() == (not TABLE[c, o])
    x = rng.standard_normal((2, 3, 7, 6)).astype(dtype)
    y = layer.forward(x)
    assert y.dtype == np.dtype(dtype)
    mask = torch.tensor(TABLE.T[:, :, None, None].astype(dtype))
    ref = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(W) * mask,
                                     torch.tensor(layer.params["b"]), stride=(2, 1), padding=1)
    np.testing.assert_allclose(y, ref.numpy(), rtol=1e-5, atol=1e-5)
    # output map o does not depend on input maps outside its table column
    x2 = x.copy()
    x2[:, 1] += 10.0  # input map 1 feeds outputs 1 and 2 only
    y2 = layer.forward(x2)
    np.testing.assert_array_equal(y2[:, [0, 3]], y[:, [0, 3]])
    assert not np.allclose(y2[:, 1], y[:, 1])


def test_sparse_conv_table_validation():
    with pytest.raises(ValueError, match="connection_table"):
        Conv2D(4, 3, connection_table=np.ones((3, 5), bool))
    with pytest.raises(ValueError, match="every output map"):
        Conv2D(2, 3, connection_table=[[True, False], [True, False]])
    layer = Conv2D(4, 3, connection_table=TABLE)
    with pytest.raises(ValueError, match="input rows"):
        layer.build((2, 5, 5), np.random.default_rng(0))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_subsampling_scaledtanh_rbf_map_vs_torch(dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 5, 7)).astype(dtype)
    sub = Subsampling2D(2, dtype=dtype)
    sub.build((3, 5, 7), rng)
    y = sub.forward(x)
    coef, b = (torch.tensor(sub.params[k]) for k in ("coef", "b"))
    ref = torch.nn.functional.avg_pool2d(torch.tensor(x), 2) * 4 * coef[:, None, None] \
        + b[:, None, None]
    assert y.dtype == np.dtype(dtype)
    np.testing.assert_allclose(y, ref.numpy(), rtol=1e-5, atol=1e-6)

    st = ScaledTanh(dtype=dtype)
    z = st.forward(x)
    assert z.dtype == np.dtype(dtype)
    np.testing.assert_allclose(z, (1.7159 * torch.tanh(torch.tensor(x) * 2 / 3)).numpy(),
                               rtol=1e-5, atol=1e-6)

    rbf = RBFOutput(4, centers="random", dtype=dtype)
    rbf.build((6,), rng)
    h = rng.standard_normal((3, 6)).astype(dtype)
    r = rbf.forward(h)
    assert r.dtype == np.dtype(dtype)
    ref = torch.cdist(torch.tensor(h, dtype=torch.float64),
                      torch.tensor(rbf.params["W"], dtype=torch.float64)) ** 2
    np.testing.assert_allclose(r, ref.numpy(), rtol=1e-5, atol=1e-5)

    j = 3.0
    pen = np.abs(rng.standard_normal((5, 4))).astype(dtype) * 4
    t = np.array([0, 3, 1, 2, 3])
    loss = LeNetMAP(j=j)
    e = loss.forward(pen, t)
    tp = torch.tensor(pen, dtype=torch.float64)
    lse = torch.logsumexp(torch.cat([-tp, torch.full((5, 1), -j, dtype=torch.float64)], 1), 1)
    np.testing.assert_allclose(e, float((tp[torch.arange(5), t] + lse).mean()), rtol=1e-5)
    assert loss.backward().dtype == np.dtype(dtype)


def test_map_loss_is_stable_for_huge_and_tiny_penalties():
    loss = LeNetMAP(j=10.0)
    y = np.array([[1e4, 2e4, 3e4], [0.0, 1e-3, 5e3]])
    e = loss.forward(y, np.array([0, 1]))
    # row 0: log(e^{-10} + ...) = -10 exactly in double; row 1: 1e-3 + log(e^{-10}+1+e^{-1e-3})
    expect = ((1e4 - 10.0) + (1e-3 + np.log(np.exp(-10.0) + 1 + np.exp(-1e-3)))) / 2
    np.testing.assert_allclose(e, expect, rtol=1e-12)
    assert np.isfinite(loss.backward()).all()
    with pytest.raises(ValueError, match="j must be"):
        LeNetMAP(j=0)
    with pytest.raises(ValueError, match="labels"):
        loss.forward(y, np.array([0, 3]))


# ----------------------------------------------------------------- gradient checks (f64)


def _layer_gradcheck(layer, in_shape, x, rng):
    layer.build(in_shape, rng)
    dy = rng.standard_normal((x.shape[0],) + layer.output_shape(in_shape))

    def f():
        return float((layer.forward(x) * dy).sum())

    layer.forward(x)
    dx = layer.backward(dy)
    check_grad(f, x, dx)
    for k, p in layer.params.items():
        check_grad(f, p, layer.grads[k].copy())


@pytest.mark.parametrize("stride,padding", [((1, 1), "valid"), ((2, 1), (1, 0, 2, 1))])
def test_sparse_conv_gradcheck(stride, padding):
    rng = np.random.default_rng(2)
    layer = Conv2D(4, (3, 2), stride=stride, padding=padding, connection_table=TABLE,
                   dtype="float64")
    x = rng.standard_normal((2, 3, 6, 5))
    layer.build((3, 6, 5), rng)
    dy = rng.standard_normal((2,) + layer.output_shape((3, 6, 5)))

    def f():
        return float((layer.forward(x) * dy).sum())

    layer.forward(x)
    dx = layer.backward(dy)
    check_grad(f, x, dx)
    num_b = layer.grads["b"].copy()
    check_grad(f, layer.params["b"], num_b)
    # weight gradient: central differences on the live weights; absent ones get exactly 0
    dW = layer.grads["W"].copy()
    live = np.broadcast_to(TABLE.T[:, :, None, None], dW.shape)
    assert (dW[~live] == 0).all()
    num = numerical_grad(f, layer.params["W"])
    np.testing.assert_allclose(dW[live], num[live], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("p,shape", [(2, (3, 6, 4)), (2, (2, 5, 7)), (3, (1, 7, 6))])
def test_subsampling_gradcheck(p, shape):
    rng = np.random.default_rng(3)
    _layer_gradcheck(Subsampling2D(p, dtype="float64"), shape,
                     rng.standard_normal((2,) + shape), rng)


@pytest.mark.parametrize("A,S", [(1.7159, 2 / 3), (1.0, 1.5)])
def test_scaled_tanh_gradcheck(A, S):
    rng = np.random.default_rng(4)
    _layer_gradcheck(ScaledTanh(A, S, dtype="float64"), (3, 4),
                     rng.standard_normal((2, 3, 4)) * 2, rng)


def _batch_innermost(a):
    """``a`` (N, C, H, W) as an NCHW view of (C, H, W, N) memory, as convolutions return."""
    return np.ascontiguousarray(a.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)


@pytest.mark.parametrize("layer,shape", [
    (lambda: Subsampling2D(2, dtype="float64"), (3, 6, 4)),
    (lambda: Subsampling2D(2, dtype="float64"), (2, 5, 7)),
    (lambda: Subsampling2D(1, dtype="float64"), (2, 3, 2)),
    (lambda: ScaledTanh(dtype="float64"), (3, 4, 2)),
])
def test_lenet_layers_on_batch_innermost_input(layer, shape):
    """Conv outputs are (C, H, W, N) in memory: gradients stay right, the layout is kept."""
    rng = np.random.default_rng(5)
    lay = layer()
    base = rng.standard_normal(shape + (3,))  # (C, H, W, N) memory
    x = base.transpose(3, 0, 1, 2)
    lay.build(shape, rng)
    dy = _batch_innermost(rng.standard_normal((3,) + lay.output_shape(shape)))

    def f():
        return float((lay.forward(x) * dy).sum())

    lay.forward(x)
    dx = lay.backward(dy)
    np.testing.assert_allclose(dx.transpose(1, 2, 3, 0), numerical_grad(f, base),
                               rtol=1e-6, atol=1e-8)
    for k, p in lay.params.items():
        np.testing.assert_allclose(lay.grads[k], numerical_grad(f, p), rtol=1e-6, atol=1e-8)
    y = lay.forward(x)
    dx = lay.backward(_batch_innermost(rng.standard_normal(y.shape)))
    for a in (y, dx):
        assert a.strides[0] == a.itemsize, a.strides  # the batch stays innermost


def test_rbf_trainable_gradcheck():
    rng = np.random.default_rng(5)
    _layer_gradcheck(RBFOutput(5, centers="random", trainable=True, dtype="float64"), (7,),
                     rng.standard_normal((3, 7)), rng)


def test_input_layers_gradcheck():
    rng = np.random.default_rng(6)
    _layer_gradcheck(Rescale(0.3, -0.1, dtype="float64"), (2, 3, 3),
                     rng.standard_normal((2, 2, 3, 3)), rng)
    _layer_gradcheck(Pad2D((1, 0, 2, 1), value=-0.1, dtype="float64"), (2, 3, 3),
                     rng.standard_normal((2, 2, 3, 3)), rng)


@pytest.mark.parametrize("j", [0.5, 10.0, 80.0])
def test_map_loss_gradcheck(j):
    rng = np.random.default_rng(7)
    y = np.abs(rng.standard_normal((4, 5))) * 6
    t = np.array([0, 4, 2, 2])
    loss = LeNetMAP(j=j)
    loss.forward(y, t)
    g = loss.backward()
    check_grad(lambda: loss.forward(y, t), y, g)


def test_whole_model_gradcheck_float64():
    rng = np.random.default_rng(8)
    m = lenet5_1998(seed=3, dtype="float64", rbf_trainable=True)
    x = rng.uniform(0, 255, (2, 1, 28, 28))
    t = np.array([3, 7])
    loss = LeNetMAP()

    def f():
        return loss.forward(m.forward(x), t)

    f()
    m.backward(loss.backward())
    for _, lay, k in m.named_params():
        p, g = lay.params[k], lay.grads[k].copy()
        for _ in range(2):  # random directions; within C3 only along live connections
            v = rng.standard_normal(p.shape)
            if getattr(lay, "mask", None) is not None and k == "W":
                v *= lay.mask
            v /= np.linalg.norm(v)
            np.testing.assert_allclose((g * v).sum(), directional_grad(f, p, v),
                                       rtol=1e-5, atol=1e-7, err_msg=f"{lay.name}/{k}")


# ----------------------------------------------------------------- masks survive training


@pytest.mark.parametrize("opt_name", ["sgd", "sdlm"])
def test_masked_weights_stay_zero(opt_name):
    rng = np.random.default_rng(9)
    m = lenet5_1998(seed=4)
    c3 = next(layer for layer in m.layers if layer.name == "C3")
    absent = ~np.broadcast_to(LENET5_C3_TABLE.T[:, :, None, None], c3.params["W"].shape)
    assert (c3.params["W"][absent] == 0).all() and absent.sum() == 36 * 25
    x = rng.uniform(0, 255, (8, 1, 28, 28)).astype(np.float32)
    t = rng.integers(0, 10, 8)
    loss = LeNetMAP()
    if opt_name == "sgd":
        opt = SGD(lr=0.01, momentum=0.9, weight_decay=1e-3)
    else:
        opt = SDLM(lr=5e-4)
        h = estimate_curvature(m, loss, x, t, batch_size=4)
        assert (h["C3/W"][absent] == 0).all()  # absent connections have no curvature
        opt.set_curvature(h)
    W0 = c3.params["W"].copy()
    for _ in range(5):
        loss.forward(m.forward(x, training=True), t)
        m.backward(loss.backward())
        opt.step(m.trainable_params(), m.trainable_grads())
    assert not np.array_equal(c3.params["W"], W0)  # training did move the live weights
    assert (c3.params["W"][absent] == 0).all()


# ----------------------------------------------------------------- SDLM curvature


def _tiny_net(dtype="float64", seed=0):
    table = np.array([[1, 0, 1], [1, 1, 0]], bool)  # (C_in=2, C_out=3)
    return Sequential(
        [Pad2D(1, value=-0.1), Conv2D(3, 3, connection_table=table, bias_initializer="uniform"),
         ScaledTanh(), Subsampling2D(2), ScaledTanh(), Flatten(),
         Dense(5, bias_initializer="uniform"), ScaledTanh(),
         RBFOutput(4, centers="random")],
        input_shape=(2, 5, 5), seed=seed, dtype=dtype,
    ), table


def test_sdlm_diagonal_matches_connection_by_connection_reference():
    rng = np.random.default_rng(10)
    m, table = _tiny_net()
    x = rng.standard_normal((3, 2, 5, 5))
    t = np.array([0, 3, 3])
    hs = gauss_newton_diagonal(m, LeNetMAP(), x, t, trainable_only=False)
    h = [hs[q] for q in m.trainable_params()]
    L = m.layers
    spec = [
        ("pad", {"pads": (1, 1, 1, 1), "value": -0.1}),
        ("conv", {"W": L[1].params["W"], "b": L[1].params["b"], "table": table}),
        ("tanh", {"A": 1.7159, "S": 2 / 3}),
        ("sub", {"coef": L[3].params["coef"], "b": L[3].params["b"], "p": 2}),
        ("tanh", {"A": 1.7159, "S": 2 / 3}),
        ("flatten", {}),
        ("dense", {"W": L[6].params["W"], "b": L[6].params["b"]}),
        ("tanh", {"A": 1.7159, "S": 2 / 3}),
        ("rbf", {"W": L[8].params["W"]}),
    ]
    ref = lenet_gn_diagonal_ref(x, t, spec)
    expect = [ref[1]["W"], ref[1]["b"], ref[3]["coef"], ref[3]["b"], ref[6]["W"], ref[6]["b"]]
    assert len(h) == len(expect)
    for got, want in zip(h, expect):
        assert got.shape == want.shape and (got >= 0).all()
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(hs["rbfoutput/W"], ref[8]["W"], rtol=1e-12)


def test_sdlm_diagonal_equals_exact_gauss_newton_for_one_layer():
    """For Dense → ScaledTanh → RBF the appendix-C diagonal is exact: diag(Jᵀ H J)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    m = Sequential([Dense(4, bias_initializer="uniform"), ScaledTanh(),
                    RBFOutput(3, centers="random")], input_shape=(6,), seed=1, dtype="float64")
    x = rng.standard_normal((5, 6))
    t = np.array([0, 2, 1, 2, 2])
    h = list(estimate_curvature(m, LeNetMAP(), x, t, batch_size=2).values())  # batch mean
    W = torch.tensor(m.layers[0].params["W"])
    b = torch.tensor(m.layers[0].params["b"])
    C = torch.tensor(m.layers[2].params["W"])
    xt = torch.tensor(x)

    def residual(W, b):  # r_n = f(x_n W + b) − c_{t_n}: the MLE term is Σ_n ‖r_n‖² / N
        return 1.7159 * torch.tanh((xt @ W + b) * 2 / 3) - C[torch.tensor(t)]

    JW, Jb = torch.func.jacrev(residual, argnums=(0, 1))(W, b)  # (N, 4, 6, 4), (N, 4, 4)
    N = len(x)
    # Gauss–Newton: G = (1/N) Σ_n J_nᵀ (2 I) J_n; its diagonal:
    gW = (2.0 / N) * (JW ** 2).sum(dim=(0, 1))
    gb = (2.0 / N) * (Jb ** 2).sum(dim=(0, 1))
    np.testing.assert_allclose(h[0], gW.numpy(), rtol=1e-10)
    np.testing.assert_allclose(h[1], gb.numpy(), rtol=1e-10)


def test_sdlm_step_and_schedule():
    opt = SDLM(lr=2e-4, mu=0.02)
    p = np.array([1.0, 2.0, 3.0], np.float32)
    g = np.array([1.0, -1.0, 2.0], np.float32)
    h = np.array([0.0, 0.18, 1.98])
    opt.set_curvature([h])
    opt.step([p], [g])
    np.testing.assert_allclose(p, [1 - 2e-4 / 0.02, 2 + 2e-4 / 0.2, 3 - 2 * 2e-4 / 2.0],
                               rtol=1e-6)
    assert p.dtype == np.float32
    # paper: 5e-4 for 2 passes, 2e-4 for 3, 1e-4 for 3, 5e-5 for 4, then 1e-5
    expect = [5e-4] * 2 + [2e-4] * 3 + [1e-4] * 3 + [5e-5] * 4 + [1e-5] * 8
    assert [lenet5_eta(k) for k in range(20)] == expect
    with pytest.raises(ValueError, match="mu"):
        SDLM(mu=0)
    with pytest.raises(ValueError, match="negative"):
        opt.set_curvature([np.array([-1.0])])


# ----------------------------------------------------------------- distortions


def test_affine_distort_identity_and_shape():
    rng = np.random.default_rng(12)
    x = rng.uniform(0, 255, (4, 28, 28))
    same = affine_distort(x, rng, max_shift=0, max_scale=0, max_squeeze=0, max_shear=0)
    assert same.dtype == np.float64
    np.testing.assert_allclose(same, x, atol=1e-9)
    x8 = np.zeros((3, 1, 28, 28), np.uint8)
    x8[:, 0, 8:20, 10:18] = 255
    d = affine_distort(x8, rng)
    assert d.shape == x8.shape and d.dtype == np.float32
    assert not np.allclose(d, x8)
    mass = d.sum(axis=(1, 2, 3)) / x8.sum(axis=(1, 2, 3))
    assert ((mass > 0.7) & (mass < 1.4)).all()  # scale/squeeze within ±10 %, ink conserved


# ----------------------------------------------------------------- short MNIST run


@pytest.fixture(scope="module")
def mnist():
    if not os.environ.get("NUMCNN_DATA_DIR"):
        pytest.skip("set NUMCNN_DATA_DIR to the MNIST directory to run MNIST tests")
    from numcnn.datasets.mnist import load_data

    return load_data(os.environ["NUMCNN_DATA_DIR"], download=False)


@pytest.mark.mnist
def test_short_training_run_learns_mnist(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    m = lenet5_1998(seed=0)
    x_te, y_te = x_test[:2000], y_test[:2000]
    before = penalty_error(m, x_te[:, None].astype(np.float32), y_te)
    hist = train_lenet5_1998(m, x_train[:5000], y_train[:5000], x_te, y_te, passes=1,
                             seed=0, verbose=False)
    assert before > 0.8  # untrained: chance level
    # 5,000 patterns, one update each (measured: 15.7 % on these 2,000 test digits, train loss
    # 15.9; the full 60,000-pattern first pass reaches 3.0 %): far below chance (90 %)
    assert hist[0]["test_error"] < 0.25
    assert hist[0]["train_loss"] < 30  # untrained: ≈ 84 − j = 74 per pattern


def test_save_load_round_trip(tmp_path):
    from numcnn import load_model, save_model

    m = lenet5_1998(seed=5)
    x = np.random.default_rng(13).uniform(0, 255, (3, 1, 28, 28)).astype(np.float32)
    save_model(m, tmp_path / "lenet98.npz")
    m2 = load_model(tmp_path / "lenet98.npz")
    np.testing.assert_array_equal(m2.predict(x), m.predict(x))
    assert m2.count_params() == 60_000
    np.testing.assert_array_equal(m2.layers[6].connection_table, LENET5_C3_TABLE)


@pytest.mark.parametrize("padding", [2, (1, 0), (0, 2, 3, 1)])
def test_pad2d_matches_np_pad_in_batch_innermost_layout(padding):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 2, 4, 5)).astype(np.float32)
    pad = Pad2D(padding, value=-0.1)
    pad.build((2, 4, 5))
    y = pad.forward(x)
    p = (padding,) * 4 if isinstance(padding, int) else padding
    p = (p[0], p[0], p[1], p[1]) if len(p) == 2 else p
    ref = np.pad(x, ((0, 0), (0, 0), p[:2], p[2:]), constant_values=np.float32(-0.1))
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, ref)
    assert y.strides[0] == y.itemsize  # batch innermost: the next conv needs no transpose


@pytest.mark.parametrize("layout", ["nchw", "batch_innermost"])
@pytest.mark.parametrize("p,shape", [(2, (3, 6, 4)), (3, (2, 6, 9)), (2, (2, 5, 7))])
def test_subsampling_backward_in_both_layouts_vs_torch(layout, p, shape):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4,) + shape)
    if layout == "batch_innermost":  # what a convolution hands on: (C, H, W, N) memory
        x = np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
    sub = Subsampling2D(p, dtype="float64")
    sub.build(shape, rng)
    y = sub.forward(x)
    dy = rng.standard_normal(y.shape)
    dx = sub.backward(dy)
    xt = torch.tensor(x, requires_grad=True)
    coef, b = (torch.tensor(sub.params[k], requires_grad=True) for k in ("coef", "b"))
    yt = torch.nn.functional.avg_pool2d(xt, p, divisor_override=1) * coef[:, None, None] \
        + b[:, None, None]
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sub.grads["coef"], coef.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(sub.grads["b"], b.grad.numpy(), rtol=1e-10)
