"""Sequential: summary figures, shapes, determinism, fit/evaluate/predict, input errors,
and one-to-one equivalence of a training step with PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

from numcnn import Sequential, optimizers
from numcnn.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU
from numcnn.models import lenet5

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

# LeNet-5 (modern, 28x28 input, padding 2) counted by hand from its architecture:
# C1 6 maps of 5x5x1 (+bias), C3 16 maps of 5x5x6 (+bias), F5 400->120, F6 120->84, out 84->10
LENET5_PARAMS = 6 * (25 + 1) + 16 * (6 * 25 + 1) + 120 * (400 + 1) + 84 * (120 + 1) + 10 * (84 + 1)
LENET5_SHAPES = [
    (6, 28, 28), (6, 28, 28), (6, 14, 14),
    (16, 10, 10), (16, 10, 10), (16, 5, 5),
    (400,), (120,), (120,), (84,), (84,), (10,),
]


def blobs(n, seed, size=8, noise=0.4):
    """Two classes of 1×size×size images: a Gaussian bump near the top-left (class 0) or
    the bottom-right (class 1), jittered by ±1 pixel, plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    r = np.arange(size)
    centres = np.where(y[:, None] == 0, 2.0, size - 3.0) + rng.integers(-1, 2, (n, 2))
    dr = (r[None, :] - centres[:, :1]) ** 2
    dc = (r[None, :] - centres[:, 1:]) ** 2
    img = np.exp(-(dr[:, :, None] + dc[:, None, :]) / 2.0)
    x = img + noise * rng.standard_normal(img.shape)
    return x[:, None].astype(np.float32), y


def small_net(seed=0, dtype="float32"):
    return Sequential(
        [Conv2D(4, 3, padding=1), ReLU(), MaxPool2D(2), Flatten(), Dense(2)],
        input_shape=(1, 8, 8), seed=seed, dtype=dtype,
    )


# ------------------------------------------------------------------------- structure


def test_lenet5_summary_before_data():
    assert LENET5_PARAMS == 61706
    model = lenet5(seed=0)
    lines = []
    text = model.summary(print_fn=lines.append)
    assert lines == [text]
    assert model.count_params() == LENET5_PARAMS
    assert f"Total params: {LENET5_PARAMS:,}" in text
    assert f"Trainable params: {LENET5_PARAMS:,}" in text
    assert "Non-trainable params: 0" in text
    for shape in LENET5_SHAPES:
        assert str((None, *shape)) in text


def test_lenet5_output_shape_progression():
    model = lenet5(seed=0)
    shape = (1, 28, 28)
    got = []
    for layer in model.layers:
        shape = layer.output_shape(shape)
        got.append(tuple(shape))
    assert got == LENET5_SHAPES
    x = np.zeros((2, 1, 28, 28), np.float32)
    for layer, expected in zip(model.layers, LENET5_SHAPES):
        x = layer.forward(x)
        assert x.shape == (2, *expected) and x.dtype == np.float32
    assert model.output_shape((1, 28, 28)) == (10,)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_propagates_to_every_layer(dtype):
    model = lenet5(seed=0, dtype=dtype)
    for _, layer, k in model.named_params():
        assert layer.params[k].dtype == np.dtype(dtype)
    out = model.predict(np.zeros((3, 1, 28, 28)))
    assert out.dtype == np.dtype(dtype)


def test_first_layer_skips_input_gradient():
    model = small_net()
    model.compile(optimizer="sgd", loss="softmax_cross_entropy")
    x, y = blobs(4, 0)
    out = model.forward(x, training=True)
    assert [c.need_dx for c in model.last_calls] == [False, True, True, True, True]
    model.loss.forward(out, y)
    assert model.backward(model.loss.backward()) is None


# ----------------------------------------------------------------------- determinism


def _train(seed, shuffle_seed=7, epochs=2):
    x, y = blobs(64, 1)
    model = small_net(seed=seed)
    model.compile(optimizer=optimizers.SGD(lr=0.05, momentum=0.9), loss="softmax_cross_entropy")
    hist = model.fit(x, y, batch_size=16, epochs=epochs, seed=shuffle_seed, verbose=0)
    return model, hist.history


def test_same_seed_same_weights_and_history():
    a, b = small_net(seed=3), small_net(seed=3)
    for (qa, la, ka), (qb, lb, kb) in zip(a.named_params(), b.named_params()):
        assert qa == qb
        np.testing.assert_array_equal(la.params[ka], lb.params[kb])
    m1, h1 = _train(3)
    m2, h2 = _train(3)
    assert h1 == h2
    for k, v in m1.get_weights().items():
        np.testing.assert_array_equal(v, m2.get_weights()[k])


def test_different_seed_different_weights_and_history():
    w1, w2 = small_net(seed=3).get_weights(), small_net(seed=4).get_weights()
    assert not np.array_equal(w1["conv2d/W"], w2["conv2d/W"])
    _, h1 = _train(3)
    _, h2 = _train(4)
    assert h1["loss"] != h2["loss"]
    _, h3 = _train(3, shuffle_seed=8)
    assert h1["loss"] != h3["loss"]


# -------------------------------------------------------------------------- training


@pytest.mark.parametrize("batch_size,steps_per_epoch", [(None, 1), (1, 20), (7, 3)])
def test_fit_batch_sizes(batch_size, steps_per_epoch):
    x, y = blobs(20, 2)
    model = small_net(seed=0)
    model.compile(optimizer=optimizers.SGD(lr=0.05), loss="softmax_cross_entropy")
    hist = model.fit(x, y, batch_size=batch_size, epochs=2, verbose=0, seed=0)
    assert model.optimizer.iterations == 2 * steps_per_epoch
    assert len(hist.history["loss"]) == 2
    assert all(np.isfinite(hist.history["loss"]))


def test_full_batch_step_is_one_gradient_descent_step():
    x, y = blobs(12, 3)
    model = small_net(seed=1, dtype="float64")
    model.compile(optimizer=optimizers.SGD(lr=0.1), loss="softmax_cross_entropy")
    w0 = model.get_weights()
    # gradient by central differences of the mean cross-entropy, for the Dense bias only
    b = model.layers[-1].params["b"]
    from references import numerical_grad

    def loss():
        z = model.forward(x.astype(np.float64))
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-logp[np.arange(len(y)), y].mean())

    g = numerical_grad(loss, b)
    model.fit(x, y, batch_size=None, epochs=1, shuffle=False, verbose=0)
    np.testing.assert_allclose(model.get_weights()["dense/b"], w0["dense/b"] - 0.1 * g,
                               rtol=1e-6, atol=1e-9)


def test_learns_a_separable_problem():
    x, y = blobs(256, 10)
    xv, yv = blobs(200, 11)
    model = small_net(seed=0)
    model.compile(optimizer=optimizers.SGD(lr=0.05, momentum=0.9),
                  loss="softmax_cross_entropy", metrics=["accuracy"])
    hist = model.fit(x, y, batch_size=16, epochs=6, validation_data=(xv, yv), verbose=0,
                     seed=0)
    h = hist.history
    assert set(h) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 6 for v in h.values())
    assert h["loss"][-1] < 0.5 * h["loss"][0]
    assert h["val_accuracy"][-1] >= 0.97  # chance is 0.5
    # val_accuracy must be the real accuracy on the held-out set
    pred = model.predict(xv).argmax(axis=1)
    assert h["val_accuracy"][-1] == pytest.approx(float((pred == yv).mean()))


def test_evaluate_and_predict_agree_with_manual_forward():
    x, y = blobs(50, 4)
    model = small_net(seed=2)
    model.compile(optimizer="sgd", loss="softmax_cross_entropy", metrics=["accuracy"])
    manual = model.forward(x)
    pred = model.predict(x, batch_size=16)
    np.testing.assert_allclose(pred, manual, rtol=1e-6, atol=1e-7)
    z = manual.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    ce = -logp[np.arange(len(y)), y].mean()
    res = model.evaluate(x, y, batch_size=16)
    assert res["loss"] == pytest.approx(ce, rel=1e-5)
    assert res["accuracy"] == pytest.approx(float((manual.argmax(1) == y).mean()))
    # against torch's cross-entropy too
    tce = torch.nn.functional.cross_entropy(torch.tensor(manual), torch.tensor(y)).item()
    assert res["loss"] == pytest.approx(tce, rel=1e-5)


# ------------------------------------------------------------------------ bad inputs


def test_clear_errors_for_bad_inputs():
    x, y = blobs(10, 5)
    model = small_net()
    with pytest.raises(RuntimeError, match="compile"):
        model.fit(x, y, verbose=0)
    model.compile(optimizer="sgd", loss="softmax_cross_entropy")
    with pytest.raises(ValueError, match=r"shape \(N, 1, 8, 8\)"):
        model.fit(np.zeros((10, 1, 9, 8), np.float32), y, verbose=0)
    with pytest.raises(ValueError, match="shape"):
        model.predict(np.zeros((10, 2, 8, 8), np.float32))
    bad = x.copy()
    bad[3, 0, 2, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.fit(bad, y, verbose=0)
    with pytest.raises(ValueError, match="10 samples but y has 9"):
        model.fit(x, y[:9], verbose=0)
    with pytest.raises(ValueError, match="batch_size"):
        model.fit(x, y, batch_size=0, verbose=0)
    with pytest.raises(ValueError):
        model.fit(x, y + 5, verbose=0)  # labels outside [0, 2)
    with pytest.raises(TypeError):
        Sequential([Dense(2), "relu"])
    unbuilt = Sequential([Flatten(), Dense(2)])
    with pytest.raises(RuntimeError, match="not built"):
        unbuilt.summary()
    fresh = small_net()
    with pytest.raises(RuntimeError, match="compile"):
        fresh.evaluate(x, y)


# ------------------------------------------------------------------ PyTorch one-to-one


def torch_lenet5(model, dtype):
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 6, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(6, 16, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(400, 120), torch.nn.ReLU(),
        torch.nn.Linear(120, 84), torch.nn.ReLU(),
        torch.nn.Linear(84, 10),
    ).to(dtype)
    ours = [layer for layer in model.layers if layer.params]
    theirs = [m for m in net if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert len(ours) == len(theirs)
    with torch.no_grad():
        for a, t in zip(ours, theirs):
            W = a.params["W"]
            t.weight.copy_(torch.tensor(W if W.ndim == 4 else W.T))  # Dense W is (in, units)
            t.bias.copy_(torch.tensor(a.params["b"]))
    return net, ours, theirs


@pytest.mark.parametrize("dtype,rtol,atol", [("float64", 1e-9, 1e-11), ("float32", 2e-4, 2e-6)])
def test_training_steps_match_torch(dtype, rtol, atol):
    rng = np.random.default_rng(0)
    x = rng.random((24, 1, 28, 28)).astype(dtype)
    y = rng.integers(0, 10, 24)
    model = lenet5(seed=0, dtype=dtype)
    net, ours, theirs = torch_lenet5(model, getattr(torch, dtype))
    lr, mu = 0.05, 0.9
    model.compile(optimizer=optimizers.SGD(lr=lr, momentum=mu), loss="softmax_cross_entropy")
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=mu)

    # three momentum steps on batches of 8 in order (shuffle=False)
    hist = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    losses = []
    for s in range(0, 24, 8):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(torch.tensor(x[s:s + 8])),
                                                 torch.tensor(y[s:s + 8]))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert hist.history["loss"][0] == pytest.approx(np.mean(losses), rel=rtol * 10)
    for a, t in zip(ours, theirs):
        W = t.weight.detach().numpy()
        np.testing.assert_allclose(a.params["W"], W if W.ndim == 4 else W.T, rtol=rtol,
                                   atol=atol)
        np.testing.assert_allclose(a.params["b"], t.bias.detach().numpy(), rtol=rtol,
                                   atol=atol)
    # and the next forward pass agrees
    out = model.predict(x[:8])
    np.testing.assert_allclose(out, net(torch.tensor(x[:8])).detach().numpy(), rtol=rtol * 10,
                               atol=atol * 10)


def test_config_round_trip_rebuilds_same_model():
    model = lenet5(seed=0)
    clone = Sequential.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    clone.set_weights(model.get_weights())
    x = np.random.default_rng(0).random((2, 1, 28, 28)).astype(np.float32)
    np.testing.assert_array_equal(clone.predict(x), model.predict(x))
    with pytest.raises(ValueError, match="missing"):
        clone.set_weights({})


def test_whole_model_gradcheck_float64():
    from references import check_grad

    x, y = blobs(4, 6)
    x = x.astype(np.float64)
    x[np.abs(x) < 1e-3] = 1e-3  # nothing sits on a kink
    model = small_net(seed=5, dtype="float64")
    model.compile(optimizer="sgd", loss="softmax_cross_entropy")

    def loss():
        return model.loss.forward(model.forward(x, training=True), y)

    loss()
    model.backward(model.loss.backward())
    grads = {q: lay.grads[k].copy() for q, lay, k in model.named_params()}
    for q, lay, k in model.named_params():
        check_grad(loss, lay.params[k], grads[q], rtol=1e-5, atol=1e-8)


def test_nested_sequential_equals_flat_model():
    flat = Sequential([Conv2D(4, 3, padding=1), ReLU(), MaxPool2D(2), Flatten(), Dense(2)],
                      input_shape=(1, 8, 8), seed=9)
    nested = Sequential([Sequential([Conv2D(4, 3, padding=1), ReLU()]), MaxPool2D(2),
                         Sequential([Flatten(), Dense(2)])], input_shape=(1, 8, 8), seed=9)
    assert nested.count_params() == flat.count_params() == 4 * 10 + 64 * 2 + 2
    pf = [lay.params[k] for _, lay, k in flat.named_params()]
    pn = [lay.params[k] for _, lay, k in nested.named_params()]
    assert len(pf) == len(pn)
    for a, b in zip(pf, pn):
        np.testing.assert_array_equal(a, b)
    x, y = blobs(6, 7)
    np.testing.assert_array_equal(nested.predict(x), flat.predict(x))
    for m in (flat, nested):
        m.compile(optimizer=optimizers.SGD(lr=0.1, momentum=0.5), loss="softmax_cross_entropy")
    hf = flat.fit(x, y, batch_size=3, epochs=2, seed=1, verbose=0).history
    hn = nested.fit(x, y, batch_size=3, epochs=2, seed=1, verbose=0).history
    assert hf == hn
    nested.forward(x, training=True)
    outer = nested.last_calls
    assert [c.need_dx for c in outer] == [False, True, True]
    assert [c.need_dx for c in outer[0].cache] == [False, True]  # the inner graph's calls
    assert [c.need_dx for c in outer[2].cache] == [True, True]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_training_keeps_the_dtype(dtype):
    x, y = blobs(12, 8)
    model = small_net(seed=0, dtype=dtype)
    model.compile(optimizer=optimizers.SGD(lr=0.1, momentum=0.9, nesterov=True,
                                           weight_decay=1e-3),
                  loss="softmax_cross_entropy")
    model.fit(x.astype(np.float64), y, batch_size=5, epochs=2, verbose=0, seed=0)
    for q, lay, k in model.named_params():
        assert lay.params[k].dtype == np.dtype(dtype), q
        assert lay.grads[k].dtype == np.dtype(dtype), q
    for k, v in model.optimizer.state_dict().items():
        if v.ndim:
            assert v.dtype == np.dtype(dtype), k
    assert model.predict(x).dtype == np.dtype(dtype)


def test_fit_accepts_nhw_for_single_channel_models():
    x, y = blobs(10, 9)
    model = small_net(seed=0)
    model.compile(optimizer="sgd", loss="softmax_cross_entropy")
    np.testing.assert_array_equal(model.predict(x[:, 0]), model.predict(x))
    model.fit(x[:, 0], y, batch_size=5, epochs=1, verbose=0)


def test_fit_accepts_optimizer_and_loss_names_directly():
    import numcnn as nc
    from numcnn.layers import Dense, Flatten

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 1, 2, 2)).astype(np.float32)
    y = (x.reshape(64, -1).sum(axis=1) > 0).astype(np.int64)
    m = nc.Sequential([Flatten(), Dense(2)], input_shape=(1, 2, 2), seed=0)
    h = m.fit(x, y, epochs=150, batch_size=16, verbose=0, seed=0,
              optimizer="adam", loss="softmax_cross_entropy")
    assert type(m.optimizer).__name__ == "Adam" and "accuracy" in h.history
    assert h.history["accuracy"][-1] >= 0.9  # a linearly separable problem


def test_input_gradient_is_skipped_until_the_first_parametrised_layer():
    import numcnn as nc
    from numcnn.layers import Dense, Flatten, ReLU

    m = nc.Sequential([ReLU(), Flatten(), Dense(4), ReLU(), Dense(2)], input_shape=(1, 3, 3))
    x = np.random.default_rng(0).normal(size=(5, 1, 3, 3)).astype(np.float32)
    m.forward(x, training=True)
    assert [c.need_dx for c in m.last_calls] == [False, False, False, True, True]
    assert m.backward(np.ones((5, 2), np.float32)) is None
    m.need_input_grad = True  # asking for the model's input gradient turns them all on
    m.forward(x, training=True)
    assert all(c.need_dx for c in m.last_calls)
    assert m.backward(np.ones((5, 2), np.float32)).shape == x.shape


def test_unbuilt_sequential_builds_from_the_first_data_like_keras():
    x, y = blobs(12, 11)
    model = Sequential([Conv2D(2, 3), ReLU(), Flatten(), Dense(2)], seed=3)
    model.compile(optimizer="sgd", loss="softmax_cross_entropy")  # kept until built
    hist = model.fit(x, y, batch_size=4, epochs=1, verbose=0, seed=0)
    assert model.input_shape == (1, 8, 8) and "loss" in hist.history
    same = Sequential([Conv2D(2, 3), ReLU(), Flatten(), Dense(2)], input_shape=(1, 8, 8),
                      seed=3)
    same.compile(optimizer="sgd", loss="softmax_cross_entropy")
    same.fit(x, y, batch_size=4, epochs=1, verbose=0, seed=0)
    for q, w in same.get_weights().items():
        np.testing.assert_array_equal(model.get_weights()[q], w)
    assert Sequential([Flatten(), Dense(3)]).predict(x).shape == (12, 3)
