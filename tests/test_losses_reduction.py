"""``reduction="mean" | "sum" | "none"`` and ``scale`` on every loss, against PyTorch's
``reduction=`` argument (its functional loss, or the unreduced formula written in torch and
reduced there), with the upstream gradient of ``"none"`` as ``Tensor.backward(gradient=g)``;
``half_sse`` (UFLDL's ``(1/N) Σ ½‖ŷ − y‖²``) against the formula, numerical gradients and a
hand-computed case; masks with each reduction; the trainer's handling of reductions."""

from __future__ import annotations

import numpy as np
import pytest

import numcnn
from numcnn import losses
from numcnn.layers import Dense
from references import numerical_grad
from test_losses import CASES as MEAN_CASES
from test_losses import _inputs

torch = pytest.importorskip("torch")
F = torch.nn.functional
EPS = 1e-7


def _reduce(v, reduction):
    return v.mean() if reduction == "mean" else v.sum() if reduction == "sum" else v


# each: the loss's name -> torch(yp, y, reduction) -> tensor
def _fn(name):
    return {
        "mse": lambda a, b, r: F.mse_loss(a, b if b.shape == a.shape
                                          else F.one_hot(b, a.shape[1]).to(a), reduction=r),
        "mae": lambda a, b, r: F.l1_loss(a, b, reduction=r),
        "msle": lambda a, b, r: _reduce((torch.log1p(a.clamp_min(EPS))
                                         - torch.log1p(b.clamp_min(EPS))) ** 2, r),
        "mape": lambda a, b, r: _reduce(100 * (a - b).abs() / b.abs().clamp_min(EPS), r),
        "binary_cross_entropy": lambda a, b, r: F.binary_cross_entropy(a, b.reshape(a.shape),
                                                                       reduction=r),
        "binary_cross_entropy_with_logits":
            lambda a, b, r: F.binary_cross_entropy_with_logits(a, b, reduction=r),
        "nll": lambda a, b, r: F.nll_loss(a, b, reduction=r),
        "categorical_cross_entropy":
            lambda a, b, r: (F.nll_loss(torch.log(a.clamp_min(EPS)), b, reduction=r)
                             if b.dim() == 1
                             else _reduce(-(b * torch.log(a.clamp_min(EPS))).sum(1), r)),
        "softmax_cross_entropy": lambda a, b, r: F.cross_entropy(a, b, reduction=r),
        "hinge": lambda a, b, r: _reduce((1 - b.reshape(a.shape) * a).clamp_min(0), r),
        "exponential": lambda a, b, r: _reduce(torch.exp(-b * a), r),
        "smooth_l1": None, "huber": None, "multiclass_hinge": None,
    }[name]


def _torch_loss(case, a, b, reduction):
    kw = case.kwargs
    if case.name == "smooth_l1":
        return F.smooth_l1_loss(a, b, beta=kw.get("beta", 1.0), reduction=reduction)
    if case.name == "huber":
        return F.huber_loss(a, b, delta=kw.get("delta", 1.0), reduction=reduction)
    if case.name == "multiclass_hinge":
        return F.multi_margin_loss(a, b, p=kw.get("p", 1), margin=kw.get("margin", 1.0),
                                   reduction=reduction)
    return _fn(case.name)(a, b, reduction)


@pytest.mark.parametrize("reduction", ["sum", "none"])
@pytest.mark.parametrize("case", MEAN_CASES, ids=lambda c: c.id)
def test_reduction_matches_torch(case, reduction):
    yp, yt = _inputs(case, np.float64, seed=4)
    loss = losses.get(case.name, reduction=reduction, **case.kwargs)
    value = loss.forward(yp, yt)
    tp = torch.tensor(yp, requires_grad=True)
    ref = _torch_loss(case, tp, torch.tensor(yt), reduction)
    if reduction == "none":
        assert isinstance(value, np.ndarray) and value.shape == tuple(ref.shape)
        g = np.random.default_rng(5).uniform(-1, 2, value.shape)
        ref.backward(torch.tensor(g))
        grad = loss.backward(g)
    else:
        assert isinstance(value, float)
        ref.backward()
        grad = loss.backward()
    np.testing.assert_allclose(value, ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grad, tp.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert grad.shape == yp.shape


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("case", [c for c in MEAN_CASES if c.name in
                                  ("mse", "softmax_cross_entropy", "huber")],
                         ids=lambda c: c.id)
def test_float32_reductions_match_torch_and_stay_float32(case, reduction):
    yp, yt = _inputs(case, np.float32, seed=6)
    loss = losses.get(case.name, reduction=reduction, scale=0.5, **case.kwargs)
    value = loss.forward(yp, yt)
    tp = torch.tensor(yp, requires_grad=True)
    ref = 0.5 * _torch_loss(case, tp, torch.tensor(yt), reduction)
    g = None
    if reduction == "none":
        g = np.ones(value.shape, np.float32)
        ref.backward(torch.tensor(g))
        assert value.dtype == np.float32
    else:
        ref.backward()
    grad = loss.backward(g)
    assert grad.dtype == np.float32
    np.testing.assert_allclose(value, ref.detach().numpy(), rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(grad, tp.grad.numpy(), rtol=2e-6, atol=1e-7)


def test_course_half_squared_error_is_mse_sum_scaled_and_half_sse():
    rng = np.random.default_rng(7)
    yp, y = rng.normal(size=(5, 3, 2)), rng.normal(size=(5, 3, 2))
    e = 0.5 * ((yp - y) ** 2).sum()  # the course's E = ½ Σ (y − t)², by hand
    course = losses.get("mse", reduction="sum", scale=0.5)
    assert course(yp, y) == pytest.approx(e, rel=1e-13)
    np.testing.assert_allclose(course.backward(), yp - y, rtol=1e-13)
    half = losses.get("half_sse", reduction="sum")
    assert half(yp, y) == pytest.approx(e, rel=1e-13)
    np.testing.assert_allclose(half.backward(), yp - y, rtol=1e-13)
    ufldl = losses.get("half_sse")  # (1/m) Σ_i ½‖x̂_i − x_i‖²
    assert ufldl(yp, y) == pytest.approx(e / 5, rel=1e-13)
    np.testing.assert_allclose(ufldl.backward(), (yp - y) / 5, rtol=1e-13)
    per = losses.get("half_sse", reduction="none")(yp, y)
    np.testing.assert_allclose(per, [0.5 * ((yp[i] - y[i]) ** 2).sum() for i in range(5)],
                               rtol=1e-13)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_half_sse_against_torch_and_numerical_gradient(reduction):
    rng = np.random.default_rng(8)
    yp, y = rng.normal(size=(4, 6)), rng.normal(size=(4, 6))
    loss = losses.HalfSSE(reduction=reduction)
    tp = torch.tensor(yp, requires_grad=True)
    ref = _reduce(0.5 * ((tp - torch.tensor(y)) ** 2).sum(1), reduction)
    value = loss(yp, y)
    g = rng.uniform(0.5, 2, 4) if reduction == "none" else None
    ref.backward(None if g is None else torch.tensor(g))
    np.testing.assert_allclose(value, ref.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(loss.backward(g), tp.grad.numpy(), rtol=1e-12)
    if reduction != "none":
        num = numerical_grad(lambda: loss(yp, y), yp)
        loss(yp, y)
        np.testing.assert_allclose(loss.backward(), num, rtol=1e-7, atol=1e-9)


def test_half_sse_hand_computed():
    # ŷ = [[1, 3], [0, 0]], y = [[0, 1], [0, 2]]: ½(1 + 4) = 2.5 and ½·4 = 2 → mean 2.25
    loss = losses.get("half_sse")
    assert loss(np.array([[1.0, 3.0], [0.0, 0.0]]), np.array([[0.0, 1.0], [0.0, 2.0]])) == 2.25
    np.testing.assert_array_equal(loss.backward(), [[0.5, 1.0], [0.0, -1.0]])


SEQ = [("softmax_cross_entropy", lambda z, t, r: F.cross_entropy(z, t, ignore_index=-1,
                                                                  reduction=r)),
       ("nll", lambda z, t, r: F.nll_loss(z, t, ignore_index=-1, reduction=r))]


@pytest.mark.parametrize("reduction", ["sum", "none"])
@pytest.mark.parametrize("name, ref", SEQ, ids=[s[0] for s in SEQ])
def test_masked_sequence_reductions_match_ignore_index(name, ref, reduction):
    rng = np.random.default_rng(9)
    N, T, K = 3, 5, 4
    z = rng.normal(0, 1.5, (N, T, K))
    if name == "nll":
        z = z - np.log(np.exp(z).sum(-1, keepdims=True))
    t = rng.integers(0, K, (N, T))
    mask = np.ones((N, T), bool)
    mask[0, 3:] = False
    mask[2, 1:] = False
    loss = losses.get(name, reduction=reduction)
    value = loss.forward(z, t, mask=mask)
    tz = torch.tensor(z, requires_grad=True)
    out = ref(tz.permute(0, 2, 1), torch.tensor(np.where(mask, t, -1)), reduction)
    g = rng.uniform(0.5, 2, (N, T)) if reduction == "none" else None
    out.backward(None if g is None else torch.tensor(g))
    np.testing.assert_allclose(value, out.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(loss.backward(g), tz.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_masked_elementwise_none_is_zero_on_the_padding():
    rng = np.random.default_rng(10)
    yp, y = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 3, 4))
    mask = np.array([[True, True, False], [True, False, False]])
    values = losses.get("mse", reduction="none").forward(yp, y, mask=mask)
    assert values.shape == (2, 3, 4)
    np.testing.assert_allclose(values[mask], ((yp - y) ** 2)[mask], rtol=1e-14)
    assert not values[~mask].any()
    per_step = losses.get("half_sse", reduction="none").forward(yp, y, mask=mask)
    assert per_step.shape == (2, 3)
    np.testing.assert_allclose(per_step[mask], 0.5 * ((yp - y) ** 2).sum(-1)[mask])
    assert not per_step[~mask].any()
    total = losses.get("mse", reduction="sum").forward(yp, y, mask=mask)
    assert total == pytest.approx(((yp - y) ** 2)[mask].sum(), rel=1e-13)


def test_batch_mean_only_for_the_mean_reduction():
    assert losses.get("mse").batch_mean
    assert not losses.get("mse", reduction="sum").batch_mean
    assert not losses.get("softmax_cross_entropy", reduction="none").batch_mean
    assert losses.get("half_sse").batch_mean


def test_config_round_trip_and_bad_arguments():
    loss = losses.get("huber", delta=2.0, reduction="sum", scale=0.5)
    assert loss.get_config() == {"delta": 2.0, "reduction": "sum", "scale": 0.5}
    assert losses.get("huber", **loss.get_config()).get_config() == loss.get_config()
    with pytest.raises(ValueError, match=r"reduction must be one of .*received "
                                         r"reduction='avg'"):
        losses.get("mse", reduction="avg")
    with pytest.raises(ValueError, match="scale must be a positive number; received scale=0"):
        losses.get("mse", scale=0)
    loss = losses.get("mse")
    loss(np.zeros((2, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="only with reduction='none'"):
        loss.backward(np.ones((2, 2)))
    none = losses.get("softmax_cross_entropy", reduction="none")
    none(np.zeros((2, 3)), np.array([0, 1]))
    with pytest.raises(ValueError, match=r"values' shape \(2,\); received \(2, 3\)"):
        none.backward(np.ones((2, 3)))


# ------------------------------------------------------------------------------ the trainer
def _twin(seed=0):
    x = numcnn.Input((3,), dtype="float64")
    model = numcnn.Model(x, Dense(2)(x), seed=seed)
    net = torch.nn.Linear(3, 2).double()
    with torch.no_grad():
        net.weight.copy_(torch.tensor(model.get_layer("dense").params["W"].T))
        net.bias.copy_(torch.tensor(model.get_layer("dense").params["b"]))
    return model, net


def test_fit_with_a_sum_reduction_takes_torch_steps():
    rng = np.random.default_rng(11)
    x, y = rng.normal(size=(8, 3)), rng.normal(size=(8, 2))
    model, net = _twin()
    model.compile(optimizer=numcnn.optimizers.SGD(lr=0.05),
                  loss=losses.get("mse", reduction="sum", scale=0.5), metrics=[])
    hist = model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    first = []
    for _ in range(2):
        for s in range(0, 8, 4):
            opt.zero_grad()
            out = 0.5 * F.mse_loss(net(torch.tensor(x[s:s + 4])), torch.tensor(y[s:s + 4]),
                                   reduction="sum")
            out.backward()
            opt.step()
            first.append(out.item())
    np.testing.assert_allclose(model.get_layer("dense").params["W"],
                               net.weight.detach().numpy().T, rtol=1e-12)
    # the epoch's logged loss: the sample-weighted mean of the batch values
    assert hist.history["loss"][0] == pytest.approx(np.mean(first[:2]), rel=1e-12)


def test_fit_refuses_none_and_data_parallel_sums():
    model, _ = _twin()
    x, y = np.zeros((8, 3)), np.zeros((8, 2))
    with pytest.raises(ValueError, match="reduction='none'"):
        model.compile(loss=losses.get("mse", reduction="none"))
    model.compile(loss=losses.get("mse", reduction="sum"), metrics=[])
    with pytest.raises(ValueError, match="does not declare itself a mean over samples"):
        model.fit(x, y, batch_size=8, distribute="local:2", verbose=0)
