"""Terms added to the loss: ``SparsityPenalty`` (KL against a direct computation, numerical
gradient, torch autograd), ``ActivityRegularization`` and the weight regularizers against
torch autograd of their formulas; the trainer adding them to the loss and the gradients,
reporting them in the logs and in ``evaluate``, an SGD step against a torch twin, frozen
layers, a bad parameter key, data-parallel refusal, and the epoch sums' state."""

from __future__ import annotations

import numpy as np
import pytest

import numcnn
from numcnn import regularizers
from numcnn.layers import ActivityRegularization, Dense, Sigmoid, SparsityPenalty
from numcnn.training.sums import Sums
from references import numerical_grad

torch = pytest.importorskip("torch")


def _acts(shape=(6, 4), seed=0, dtype=np.float64):
    return np.random.default_rng(seed).uniform(0.05, 0.95, shape).astype(dtype)


def test_sparsity_value_is_beta_sum_of_kl_computed_directly():
    a = _acts()
    rho, beta = 0.1, 3.0
    layer = SparsityPenalty(rho, beta)
    y = layer(a)
    assert y is a  # identity forward
    total = 0.0
    for j in range(a.shape[1]):  # KL(ρ‖ρ̂_j) unit by unit
        rho_hat = sum(a[n, j] for n in range(a.shape[0])) / a.shape[0]
        total += rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat))
    assert layer.penalty_value(layer.last_call) == pytest.approx(beta * total, rel=1e-13)


def test_sparsity_gradient_matches_numerical_and_torch():
    a = _acts((5, 3), seed=1)
    layer = SparsityPenalty(0.05, 2.5)
    layer(a)
    dy = np.random.default_rng(2).normal(size=a.shape)
    dx = layer.backward(dy)
    num = numerical_grad(lambda: (layer(a), layer.penalty_value(layer.last_call))[1], a)
    np.testing.assert_allclose(dx - dy, num, rtol=1e-7, atol=1e-10)
    ta = torch.tensor(a, requires_grad=True)
    rh = ta.mean(0)
    p = 2.5 * (0.05 * torch.log(0.05 / rh) + 0.95 * torch.log(0.95 / (1 - rh))).sum()
    (p + (ta * torch.tensor(dy)).sum()).backward()
    np.testing.assert_allclose(dx, ta.grad.numpy(), rtol=1e-12)


def test_sparsity_float32_and_bad_activations():
    a = _acts((4, 3), seed=3, dtype=np.float32)
    layer = SparsityPenalty(0.1, 3.0)
    layer(a)
    dx = layer.backward(np.zeros_like(a))
    assert dx.dtype == np.float32
    with pytest.raises(ValueError, match=r"activations in \[0, 1\].*received values in"):
        SparsityPenalty()(np.array([[0.5, 1.5]], np.float32))
    with pytest.raises(ValueError, match=r"rho must be a number in \(0.0, 1.0\); received "
                                         r"rho=1"):
        SparsityPenalty(rho=1)
    with pytest.raises(ValueError, match="beta must be a number"):
        SparsityPenalty(beta=-1.0)


def test_activity_regularization_matches_keras_formula_in_torch():
    x = np.random.default_rng(4).normal(size=(5, 2, 3))
    layer = ActivityRegularization(l1=0.3, l2=0.7)
    layer(x)
    dy = np.random.default_rng(5).normal(size=x.shape)
    dx = layer.backward(dy)
    tx = torch.tensor(x, requires_grad=True)
    p = (0.3 * tx.abs().sum() + 0.7 * (tx ** 2).sum()) / 5  # tf.keras: / batch size
    (p + (tx * torch.tensor(dy)).sum()).backward()
    assert layer.penalty_value(layer.last_call) == pytest.approx(p.item(), rel=1e-13)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("reg, formula", [
    (regularizers.WeightDecay(0.3), lambda w: 0.15 * (w ** 2).sum()),
    (regularizers.L2(0.3), lambda w: 0.3 * (w ** 2).sum()),
    (regularizers.L1(0.3), lambda w: 0.3 * w.abs().sum()),
])
def test_weight_regularizers_match_torch_autograd(reg, formula):
    w = np.random.default_rng(6).normal(size=(4, 3))
    tw = torch.tensor(w, requires_grad=True)
    value = formula(tw)
    value.backward()
    assert reg(w) == pytest.approx(value.item(), rel=1e-13)
    np.testing.assert_allclose(reg.gradient(w), tw.grad.numpy(), rtol=1e-13)
    assert reg.gradient(w.astype(np.float32)).dtype == np.float32
    again = regularizers.deserialize(regularizers.serialize(reg))
    assert again == reg


def test_weight_decay_gradient_is_torch_sgd_weight_decay():
    # (λ/2)‖W‖² in the loss = PyTorch's coupled weight_decay=λ
    w = np.random.default_rng(7).normal(size=(3,))
    assert np.array_equal(regularizers.WeightDecay(0.01).gradient(w), w * 0.01)


def _net(seed=0, penalty=True, dtype="float64"):
    x = numcnn.Input((4,), dtype=dtype)
    h = Sigmoid(name="hid")(Dense(3, name="enc",
                                  kernel_regularizer=regularizers.WeightDecay(0.2))(x))
    if penalty:
        h = SparsityPenalty(0.2, 1.5, name="sparse")(h)
    out = Dense(2, name="out", regularizers={"W": regularizers.L2(0.05),
                                             "b": regularizers.L1(0.1)})(h)
    return numcnn.Model(x, out, seed=seed)


def _torch_loss(model, x, y):
    """The same objective written out in torch (the twin of _net)."""
    We, be = (torch.tensor(model.get_layer("enc").params[k], requires_grad=True)
              for k in ("W", "b"))
    Wo, bo = (torch.tensor(model.get_layer("out").params[k], requires_grad=True)
              for k in ("W", "b"))
    h = torch.sigmoid(torch.tensor(x) @ We + be)
    rh = h.mean(0)
    sparse = 1.5 * (0.2 * torch.log(0.2 / rh) + 0.8 * torch.log(0.8 / (1 - rh))).sum()
    data = torch.nn.functional.mse_loss(h @ Wo + bo, torch.tensor(y))
    reg = 0.1 * (We ** 2).sum() + 0.05 * (Wo ** 2).sum() + 0.1 * bo.abs().sum()
    return data + sparse + reg, data, sparse, reg, (We, be, Wo, bo)


def test_train_step_adds_the_terms_and_their_gradients_like_torch():
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(7, 4)), rng.normal(size=(7, 2))
    model = _net()
    model.compile(optimizer="sgd", loss="mse", metrics=[])
    total, parts, _ = model.trainer.train_step([x], [y])
    t_total, data, sparse, reg, tps = _torch_loss(model, x, y)
    t_total.backward()
    assert total == pytest.approx(t_total.item(), rel=1e-12)
    assert parts[0] == pytest.approx(data.item(), rel=1e-12)
    terms = model.trainer.last_terms
    assert set(terms) == {"sparsity_loss", "weight_decay_loss", "regularization_loss"}
    assert terms["sparsity_loss"] == pytest.approx(sparse.item(), rel=1e-12)
    assert terms["weight_decay_loss"] + terms["regularization_loss"] == pytest.approx(
        reg.item(), rel=1e-12)
    for (layer, key), tp in zip([("enc", "W"), ("enc", "b"), ("out", "W"), ("out", "b")],
                                tps):
        np.testing.assert_allclose(model.get_layer(layer).grads[key], tp.grad.numpy(),
                                   rtol=1e-11, atol=1e-14, err_msg=f"{layer}/{key}")


def test_fit_logs_and_evaluate_report_the_terms():
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=(12, 4)), rng.normal(size=(12, 2))
    model = _net()
    model.compile(optimizer=numcnn.optimizers.SGD(lr=0.1), loss="mse", metrics=[])
    before = _torch_loss(model, x, y)[0].item()
    hist = model.fit(x, y, batch_size=None, epochs=3, verbose=0, shuffle=False)
    assert set(hist.history) == {"loss", "sparsity_loss", "weight_decay_loss",
                                 "regularization_loss"}
    assert hist.history["loss"][0] == pytest.approx(before, rel=1e-12)  # the full objective
    scores = model.evaluate(x, y, batch_size=None)
    after, data, sparse, reg, _ = _torch_loss(model, x, y)
    assert scores["loss"] == pytest.approx(after.item(), rel=1e-12)
    assert scores["sparsity_loss"] == pytest.approx(sparse.item(), rel=1e-12)
    assert after.item() < before


def test_frozen_layers_add_no_penalty_and_bad_keys_are_named():
    model = _net(penalty=False)
    model.get_layer("enc").trainable = False
    model.compile(optimizer="sgd", loss="mse", metrics=[])
    x, y = np.ones((3, 4)), np.zeros((3, 2))
    model.trainer.train_step([x], [y])
    assert "weight_decay_loss" not in model.trainer.last_terms
    bad = numcnn.Model(inp := numcnn.Input((4,), dtype="float64"),
                       Dense(2, regularizers={"kernel": "l2"})(inp))
    bad.compile(optimizer="sgd", loss="mse", metrics=[])
    with pytest.raises(ValueError, match=r"names the parameter 'kernel'.*\['W', 'b'\]"):
        bad.fit(x, y, verbose=0)
    with pytest.raises(ValueError, match="regularizers must be a dict"):
        Dense(2, regularizers=["l2"])


def test_regularizers_survive_save_and_load(tmp_path):
    model = _net(penalty=True, dtype="float32")
    path = tmp_path / "m.npz"
    numcnn.save_model(model, path)
    again = numcnn.load_model(path)
    assert again.get_layer("enc").regularizers == {"W": regularizers.WeightDecay(0.2)}
    assert again.get_layer("out").regularizers["b"] == regularizers.L1(0.1)
    assert again.get_layer("sparse").rho == pytest.approx(0.2)


def test_a_sparsity_penalty_keeps_fit_in_one_process():
    model = _net()
    model.compile(optimizer="sgd", loss="mse", metrics=[])
    with pytest.raises(ValueError, match="mixes the samples of a batch"):
        model.fit(np.zeros((64, 4)), np.zeros((64, 2)), distribute="local:2", verbose=0)


def test_sums_state_round_trips_with_terms():
    sums = Sums(["out"], [object()], {}, ["sparsity_loss", "weight_decay_loss"])
    sums.add(4, 2.0, [1.5], [np.zeros((4, 1))], [np.zeros(4)], None,
             {"sparsity_loss": 0.25, "weight_decay_loss": 0.25})
    logs = sums.logs()
    assert logs == {"loss": 2.0, "sparsity_loss": 0.25, "weight_decay_loss": 0.25}
    again = Sums.from_state(sums.state(), ["out"], [object()], {},
                            ["sparsity_loss", "weight_decay_loss"])
    assert again.logs() == logs
    with pytest.raises(ValueError, match="need 5 values"):
        Sums.from_state(sums.state()[:3], ["out"], [object()], {}, ["sparsity_loss",
                                                                     "weight_decay_loss"])
