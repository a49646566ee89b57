"""L-BFGS against ``torch.optim.LBFGS``, iterate by iterate: every point at which the closure
is evaluated (and the loss there) on logistic regression and a small tanh MLP in float64,
with and without the strong-Wolfe line search, over several ``step`` calls; through
``fit(batch_size=None)`` against torch's closure loop; the state dict resuming exactly;
the line search's cubic step against the closed form; argument checks."""

from __future__ import annotations

import numpy as np
import pytest

import numcnn
from numcnn import optimizers
from numcnn.layers import Dense, Tanh
from numcnn.optimizers.lbfgs import cubic_minimum

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _data(kind, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(40, 5))
    if kind == "logistic":  # separable-ish classes: 3 classes from a random linear map
        y = np.argmax(x @ rng.normal(size=(5, 3)) + 0.5 * rng.normal(size=(40, 3)), axis=1)
    else:  # a smooth regression target
        y = np.sin(x[:, :2]) + 0.1 * rng.normal(size=(40, 2))
    return x, y


def _numcnn_model(kind, seed=0):
    x = numcnn.Input((5,), dtype="float64")
    if kind == "logistic":
        out = Dense(3)(x)
        loss = "softmax_cross_entropy"
    else:
        out = Dense(2)(Tanh()(Dense(6)(x)))
        loss = "mse"
    return numcnn.Model(x, out, seed=seed), loss


def _torch_twin(model, kind):
    """Leaf tensors laid out as numcnn's parameters (W as (in, out)), in the same order."""
    ps = [torch.tensor(p.copy(), requires_grad=True) for p in model.trainable_params().values()]
    F = torch.nn.functional

    def loss_fn(x, y):
        if kind == "logistic":
            return F.cross_entropy(x @ ps[0] + ps[1], y)
        h = torch.tanh(x @ ps[0] + ps[1])
        return F.mse_loss(h @ ps[2] + ps[3], y)
    return ps, loss_fn


def _closure_pair(kind, seed=0):
    x, y = _data(kind, seed)
    model, loss = _numcnn_model(kind, seed)
    model.compile(optimizer="sgd", loss=loss, metrics=[])
    ps, loss_fn = _torch_twin(model, kind)
    tx = torch.tensor(x)
    ty = torch.tensor(y) if kind == "logistic" else torch.tensor(y)
    params, grads = model.trainable_params(), model.trainable_grads()
    seen_n, seen_t = [], []

    def closure():
        seen_n.append(np.concatenate([p.ravel() for p in params.values()]))
        value, _, _ = model.trainer.train_step([x], [y])
        return value

    def tclosure():
        seen_t.append(np.concatenate([p.detach().numpy().ravel() for p in ps]))
        for p in ps:
            p.grad = None
        out = loss_fn(tx, ty)
        out.backward()
        return out.detach()

    return params, grads, closure, ps, tclosure, seen_n, seen_t


CASES = [("logistic", None, {}), ("logistic", "strong_wolfe", {}),
         ("mlp", None, {"lr": 0.5}), ("mlp", "strong_wolfe", {}),
         ("mlp", "strong_wolfe", {"history_size": 3, "lr": 0.8}),
         ("logistic", None, {"history_size": 2, "max_iter": 3})]


@pytest.mark.parametrize("kind, ls, kwargs", CASES,
                         ids=[f"{k}-{ls}-{kw}" for k, ls, kw in CASES])
def test_every_evaluation_point_matches_torch(kind, ls, kwargs):
    params, grads, closure, ps, tclosure, seen_n, seen_t = _closure_pair(kind)
    kw = {"max_iter": 5, **kwargs, "line_search_fn": ls}
    opt = optimizers.LBFGS(**kw)
    topt = torch.optim.LBFGS(ps, **kw)
    losses_n, losses_t = [], []
    for _ in range(4):  # several step calls: the history carries over
        losses_n.append(opt.step(params, grads, closure))
        losses_t.append(float(topt.step(tclosure)))
        assert len(seen_n) == len(seen_t)
    assert len(seen_n) >= 10  # the runs did iterate
    for k, (a, b) in enumerate(zip(seen_n, seen_t)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11, err_msg=f"evaluation {k}")
    np.testing.assert_allclose(losses_n, losses_t, rtol=1e-10)
    state = topt.state[ps[0]]
    assert opt.n_iter == state["n_iter"] and opt.func_evals == state["func_evals"]
    np.testing.assert_allclose(opt.lstate["H_diag"], float(state["H_diag"]), rtol=1e-8)
    assert len(opt.lstate["old_dirs"]) == len(state["old_dirs"])


def test_fit_full_batch_matches_torch_closure_loop():
    x, y = _data("mlp", 1)
    model, loss = _numcnn_model("mlp", seed=1)
    ps, loss_fn = _torch_twin(model, "mlp")
    model.compile(optimizer=optimizers.LBFGS(max_iter=4, line_search_fn="strong_wolfe"),
                  loss=loss, metrics=[])
    hist = model.fit(x, y, batch_size=None, epochs=3, shuffle=False, verbose=0)
    topt = torch.optim.LBFGS(ps, max_iter=4, line_search_fn="strong_wolfe")
    tx, ty = torch.tensor(x), torch.tensor(y)

    def tclosure():
        topt.zero_grad()
        out = loss_fn(tx, ty)
        out.backward()
        return out.detach()

    first = [float(topt.step(tclosure)) for _ in range(3)]
    for p, tp in zip(model.trainable_params().values(), ps):
        np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-9, atol=1e-12)
    # each epoch logs the loss where its step began (torch's return value)
    np.testing.assert_allclose(hist.history["loss"], first, rtol=1e-10)


def test_state_dict_resumes_exactly():
    params, grads, closure, *_ = _closure_pair("mlp")
    start = {k: v.copy() for k, v in params.items()}
    opt = optimizers.LBFGS(max_iter=3, line_search_fn="strong_wolfe")
    for _ in range(4):
        opt.step(params, grads, closure)
    straight = {k: v.copy() for k, v in params.items()}
    for k, v in start.items():
        params[k][...] = v
    first = optimizers.LBFGS(max_iter=3, line_search_fn="strong_wolfe")
    for _ in range(2):
        first.step(params, grads, closure)
    state = {k: np.array(v) for k, v in first.state_dict().items()}
    resumed = optimizers.get("lbfgs", **first.get_config())
    resumed.load_state_dict(state)
    for _ in range(2):
        resumed.step(params, grads, closure)
    for k in params:
        np.testing.assert_array_equal(params[k], straight[k])
    with pytest.raises(ValueError, match="inconsistent history shapes"):
        bad = dict(state)
        bad["lbfgs/d"] = bad["lbfgs/d"][:-1]
        optimizers.LBFGS(max_iter=3).load_state_dict(bad)


def test_cubic_step_is_the_minimiser_of_the_interpolating_cubic():
    # f(x) = x³ − 3x (minimum at 1): through (0, 0, f'=−3) and (2, 2, f'=9)
    assert cubic_minimum(0.0, 0.0, -3.0, 2.0, 2.0, 9.0) == pytest.approx(1.0, rel=1e-14)
    assert cubic_minimum(2.0, 2.0, 9.0, 0.0, 0.0, -3.0) == pytest.approx(1.0, rel=1e-14)
    assert cubic_minimum(0.0, 0.0, -3.0, 2.0, 2.0, 9.0, bounds=(1.5, 3.0)) == 1.5
    # no real minimiser (d1 = 1 + 1 − 3·(0 − 2/3)/(0 − 1) = 0 < g1 g2): the midpoint
    assert cubic_minimum(0.0, 0.0, 1.0, 1.0, 2 / 3, 1.0) == 0.5


def test_lbfgs_arguments_and_closure_are_checked():
    for kwargs, pat in [({"max_iter": 0}, "max_iter must be a positive int"),
                        ({"history_size": 1.5}, "history_size must be a positive int"),
                        ({"max_eval": 0}, "max_eval must be a positive int or None"),
                        ({"tolerance_grad": -1}, "tolerance_grad must be a number >= 0"),
                        ({"line_search_fn": "armijo"}, "line_search_fn must be None or "
                                                        "'strong_wolfe'")]:
        with pytest.raises(ValueError, match=pat):
            optimizers.LBFGS(**kwargs)
    w = {"w": np.zeros(2)}
    with pytest.raises(ValueError, match="needs a closure"):
        optimizers.LBFGS().step(w, {"w": np.zeros(2)})
    assert optimizers.LBFGS().max_eval == 25 and optimizers.LBFGS.needs_closure


def test_save_model_resumes_lbfgs_exactly_and_bounds_a_hostile_history(tmp_path):
    x = np.random.default_rng(5).uniform(0, 1, (30, 9))

    def make():
        return numcnn.models.SparseAutoencoder(
            4, input_shape=(9,), seed=0, dtype="float64",
            optimizer=optimizers.LBFGS(max_iter=5, line_search_fn="strong_wolfe"))

    straight = make()
    straight.fit(x, x, batch_size=None, epochs=4, shuffle=False, verbose=0)
    first = make()
    first.fit(x, x, batch_size=None, epochs=2, shuffle=False, verbose=0)
    path = tmp_path / "ae.npz"
    numcnn.save_model(first, path)
    again = numcnn.load_model(path)
    assert again.optimizer.n_iter == first.optimizer.n_iter > 0
    again.fit(x, x, batch_size=None, epochs=4, initial_epoch=2, shuffle=False, verbose=0)
    for k, v in straight.get_weights().items():
        np.testing.assert_array_equal(again.get_weights()[k], v, err_msg=k)
    # a file whose history is longer than the model's parameters is refused unread
    with np.load(path, allow_pickle=False) as npz:
        entries = {k: npz[k] for k in npz.files}
    entries["optim/lbfgs/d"] = np.zeros(10_000)
    bad = tmp_path / "bad.npz"
    np.savez(bad, **entries)
    with pytest.raises(numcnn.io.npzfile.ModelFileError, match=r"at most shape \(85,\)"):
        numcnn.load_model(bad)
