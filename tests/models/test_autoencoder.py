"""The sparse autoencoder and its convolved features (UFLDL; course 002).

The cost J = (1/m) Σ ½‖x̂ − x‖² + (λ/2)‖W‖² + β Σ KL(ρ‖ρ̂_j) and its gradient: a
hand-computed case, UFLDL's ``sparseAutoencoderCost`` written out in NumPy (untied, tied,
linear decoder), and UFLDL's own check, a float64 numerical gradient; L-BFGS training
against a torch twin. ``encoder_to_conv``: convolved features equal σ(W·patch + b) patch by
patch in a naive loop (with ZCA whitening folded in too); pooled features equal the naive
mean/max over regions; the whole chain as one Functional model."""

from __future__ import annotations

import numpy as np
import pytest

import numcnn
from numcnn.layers import AvgPool2D, Dense, Flatten, MaxPool2D, Sigmoid
from numcnn.models import SparseAutoencoder, encoder_to_conv
from numcnn.preprocessing import ZCAWhitening
from references import numerical_grad


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def ufldl_cost(x, W1, b1, W2, b2, lam, beta, rho, linear=False):
    """UFLDL's sparseAutoencoderCost, samples as rows (W1 (D, h), W2 (h, D)): the cost and
    the gradients of its backpropagation (delta3, delta2 with the sparsity term)."""
    m = len(x)
    a2 = sigmoid(x @ W1 + b1)
    z3 = a2 @ W2 + b2
    a3 = z3 if linear else sigmoid(z3)
    rho_hat = a2.mean(axis=0)
    kl = rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat))
    cost = (0.5 * ((a3 - x) ** 2).sum() / m + lam / 2 * ((W1 ** 2).sum() + (W2 ** 2).sum())
            + beta * kl.sum())
    delta3 = (a3 - x) * (1 if linear else a3 * (1 - a3))
    sparse = beta * (-rho / rho_hat + (1 - rho) / (1 - rho_hat))
    delta2 = (delta3 @ W2.T + sparse) * a2 * (1 - a2)
    return cost, {"W1": x.T @ delta2 / m + lam * W1, "b1": delta2.sum(0) / m,
                  "W2": a2.T @ delta3 / m + lam * W2, "b2": delta3.sum(0) / m}


def _ae(d=6, h=3, seed=0, **kw):
    kw = {"rho": 0.1, "beta": 3.0, "weight_decay": 3e-3, **kw}
    return SparseAutoencoder(h, input_shape=(d,), seed=seed, dtype="float64", **kw)


def _step(ae, x):
    total, _, _ = ae.trainer.train_step([x], [x])
    return total


def test_hand_computed_cost_and_gradient():
    ae = _ae(d=2, h=1)
    for p in ae.trainable_params().values():
        p[...] = 0  # a = x̂ = ½ everywhere, ρ̂ = ½
    x = np.array([[0.0, 1.0], [1.0, 1.0]])
    kl = 0.1 * np.log(0.1 / 0.5) + 0.9 * np.log(0.9 / 0.5)
    assert _step(ae, x) == pytest.approx(0.25 + 3 * kl, rel=1e-14)
    g = ae.trainable_grads()
    # decoder: δ3 = (x̂ − x)·¼; b2' = mean δ3 = [0, −1/8]; W2' = mean a·δ3 = [0, −1/16]
    np.testing.assert_allclose(g["decoder/b"], [0.0, -0.125], atol=1e-15)
    np.testing.assert_allclose(g["decoder/W"], [[0.0, -0.0625]], atol=1e-15)
    # encoder: δ2 = β(−ρ/ρ̂ + (1−ρ)/(1−ρ̂))·¼ = 3·1.6·¼ = 1.2 for both samples
    np.testing.assert_allclose(g["encoder/b"], [1.2], rtol=1e-14)
    np.testing.assert_allclose(g["encoder/W"], [[0.6], [1.2]], rtol=1e-14)


@pytest.mark.parametrize("linear", [False, True])
def test_cost_and_gradient_equal_ufldl_and_the_numerical_gradient(linear):
    rng = np.random.default_rng(1)
    ae = _ae(decoder="linear" if linear else "sigmoid", rho=0.05, beta=2.0, weight_decay=0.01)
    x = rng.uniform(0, 1, (5, 6)) if not linear else rng.normal(0, 1, (5, 6))
    for p in ae.trainable_params().values():  # away from the initial symmetric point
        p[...] = rng.normal(0, 0.5, p.shape)
    enc, dec = ae.get_layer("encoder").params, ae.get_layer("decoder").params
    cost, grads = ufldl_cost(x, enc["W"], enc["b"], dec["W"], dec["b"], 0.01, 2.0, 0.05,
                             linear)
    assert _step(ae, x) == pytest.approx(cost, rel=1e-13)
    g = ae.trainable_grads()
    for ours, ref in [("encoder/W", "W1"), ("encoder/b", "b1"), ("decoder/W", "W2"),
                      ("decoder/b", "b2")]:
        np.testing.assert_allclose(g[ours], grads[ref], rtol=1e-11, atol=1e-14)
    analytic = {k: v.copy() for k, v in g.items()}
    for name, p in ae.trainable_params().items():  # UFLDL's computeNumericalGradient
        num = numerical_grad(lambda: _step(ae, x), p, eps=1e-6)
        np.testing.assert_allclose(analytic[name], num, rtol=1e-6, atol=1e-9, err_msg=name)


def test_tied_weights_cost_gradient_and_one_kernel():
    rng = np.random.default_rng(2)
    ae = _ae(tied=True)
    assert set(ae.trainable_params()) == {"encoder/b", "decoder/W", "decoder/b"}
    x = rng.uniform(0, 1, (4, 6))
    for p in ae.trainable_params().values():
        p[...] = rng.normal(0, 0.5, p.shape)
    W2 = ae.get_layer("decoder").params["W"]  # (h, D); the encoder uses W2ᵀ
    b1, b2 = ae.get_layer("encoder").params["b"], ae.get_layer("decoder").params["b"]
    cost, grads = ufldl_cost(x, W2.T, b1, W2, b2, 3e-3, 3.0, 0.1)
    # one kernel: λ/2‖W‖² once (the reference counted it twice), gradients of both uses
    cost -= 3e-3 / 2 * (W2 ** 2).sum()
    assert _step(ae, x) == pytest.approx(cost, rel=1e-13)
    g = ae.trainable_grads()
    np.testing.assert_allclose(g["decoder/W"], grads["W2"] + grads["W1"].T - 3e-3 * W2,
                               rtol=1e-11)
    analytic = {k: v.copy() for k, v in g.items()}
    for name, p in ae.trainable_params().items():
        num = numerical_grad(lambda: _step(ae, x), p, eps=1e-6)
        np.testing.assert_allclose(analytic[name], num, rtol=1e-6, atol=1e-9, err_msg=name)


def test_lbfgs_training_equals_a_torch_twin():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, (20, 6))
    ae = _ae(optimizer=numcnn.optimizers.LBFGS(max_iter=6, line_search_fn="strong_wolfe"))
    ps = [torch.tensor(p.copy(), requires_grad=True) for p in ae.trainable_params().values()]
    tx = torch.tensor(x)

    def J():
        W1, b1, W2, b2 = ps
        a2 = torch.sigmoid(tx @ W1 + b1)
        a3 = torch.sigmoid(a2 @ W2 + b2)
        rh = a2.mean(0)
        kl = 0.1 * torch.log(0.1 / rh) + 0.9 * torch.log(0.9 / (1 - rh))
        return (0.5 * ((a3 - tx) ** 2).sum() / 20 + 3e-3 / 2 * ((W1 ** 2).sum()
                + (W2 ** 2).sum()) + 3 * kl.sum())

    opt = torch.optim.LBFGS(ps, max_iter=6, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        out = J()
        out.backward()
        return out.detach()

    hist = ae.fit(x, x, batch_size=None, epochs=3, shuffle=False, verbose=0)
    first = [float(opt.step(closure)) for _ in range(3)]
    np.testing.assert_allclose(hist.history["loss"], first, rtol=1e-10)
    for p, tp in zip(ae.trainable_params().values(), ps):
        np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-8, atol=1e-11)
    assert first[-1] < first[0]


def test_patch_shaped_inputs_and_arguments():
    ae = SparseAutoencoder(4, input_shape=(3, 3), seed=0)
    assert [lay.name for lay in ae.layers][0] == "flatten"
    x = np.random.default_rng(4).uniform(0, 1, (5, 3, 3)).astype(np.float32)
    assert ae.predict(x).shape == (5, 3, 3)
    feats = numcnn.Model(ae.input, ae.get_layer("hidden").output).predict(x)
    enc = ae.get_layer("encoder").params
    np.testing.assert_allclose(feats, sigmoid(x.reshape(5, 9) @ enc["W"] + enc["b"]),
                               rtol=1e-6)
    with pytest.raises(ValueError, match="needs input_shape"):
        SparseAutoencoder(4)
    with pytest.raises(ValueError, match="decoder must be one of"):
        SparseAutoencoder(4, input_shape=(3,), decoder="relu")
    with pytest.raises(ValueError, match="hidden_units must be a positive int"):
        SparseAutoencoder(0, input_shape=(3,))


# --------------------------------------------------------------- convolution and pooling
def _naive_features(images, W, b, ph, pw, transform=None):
    """σ(W·x_s + b) for every patch x_s (valid positions, stride 1), one patch at a time."""
    n, c, H, Wd = images.shape
    f = W.shape[1]
    out = np.zeros((n, f, H - ph + 1, Wd - pw + 1))
    for i in range(n):
        for r in range(H - ph + 1):
            for s in range(Wd - pw + 1):
                patch = images[i, :, r:r + ph, s:s + pw]
                if transform is not None:
                    patch = transform(patch[None])[0]
                out[i, :, r, s] = sigmoid(patch.reshape(-1) @ W + b)
    return out


@pytest.mark.parametrize("channels, patch", [(1, (3, 3)), (2, (2, 3))])
def test_convolved_features_equal_the_encoder_patch_by_patch(channels, patch):
    rng = np.random.default_rng(5)
    d = channels * patch[0] * patch[1]
    enc = Dense(4, dtype="float64")
    enc.build((d,), rng)
    enc.params["b"][...] = rng.normal(size=4)
    conv = encoder_to_conv(enc, patch if channels == 1 else (channels, *patch))
    images = rng.uniform(0, 1, (2, channels, 7, 6))
    got = Sigmoid()(conv(images))
    np.testing.assert_allclose(got, _naive_features(images, enc.params["W"], enc.params["b"],
                                                    *patch), rtol=1e-13)


def test_zca_whitening_is_folded_into_the_kernel():
    rng = np.random.default_rng(6)
    images = rng.uniform(0, 1, (3, 1, 8, 7))
    patches = numcnn.preprocessing.extract_patches(images[:, 0], 3, n=200, seed=0)
    zca = ZCAWhitening(eps=0.1).fit(patches)
    enc = Dense(5, dtype="float64")
    enc.build((9,), rng)
    enc.params["b"][...] = rng.normal(size=5)
    conv = encoder_to_conv(enc, (3, 3), whitening=zca)
    got = Sigmoid()(conv(images))
    ref = _naive_features(images, enc.params["W"], enc.params["b"], 3, 3,
                          transform=lambda p: zca.transform(p[:, 0])[:, None])
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-13)


def test_tied_encoder_converts_too():
    ae = SparseAutoencoder(3, input_shape=(2, 2), tied=True, seed=1, dtype="float64")
    conv = encoder_to_conv(ae.get_layer("encoder"), (2, 2))
    images = np.random.default_rng(7).uniform(0, 1, (1, 1, 4, 5))
    W = ae.get_layer("decoder").params["W"].T
    np.testing.assert_allclose(Sigmoid()(conv(images)), _naive_features(
        images, W, ae.get_layer("encoder").params["b"], 2, 2), rtol=1e-13)
    with pytest.raises(ValueError, match="holds 9 values but the encoder takes 4"):
        encoder_to_conv(ae.get_layer("encoder"), (3, 3))


@pytest.mark.parametrize("pool_cls, reduce", [(AvgPool2D, np.mean), (MaxPool2D, np.max)])
def test_pooled_features_equal_the_naive_region_mean_or_max(pool_cls, reduce):
    rng = np.random.default_rng(8)
    feats = rng.uniform(0, 1, (2, 3, 6, 9))
    got = pool_cls(pool_size=(3, 3))(feats)
    ref = np.zeros((2, 3, 2, 3))
    for i in range(2):
        for f in range(3):
            for r in range(2):  # disjoint 3×3 regions
                for c in range(3):
                    ref[i, f, r, c] = reduce(feats[i, f, 3 * r:3 * r + 3, 3 * c:3 * c + 3])
    np.testing.assert_allclose(got, ref, rtol=1e-14)


def test_the_whole_chain_is_one_functional_model():
    rng = np.random.default_rng(9)
    enc = Dense(4, dtype="float64")
    enc.build((9,), rng)
    conv = encoder_to_conv(enc, (3, 3))
    clf = Dense(3, dtype="float64")
    x = numcnn.Input((1, 8, 8), dtype="float64")
    pooled = AvgPool2D(3)(Sigmoid()(conv(x)))
    model = numcnn.Model(x, clf(Flatten()(pooled)), seed=0)
    images = rng.uniform(0, 1, (2, 1, 8, 8))
    feats = _naive_features(images, enc.params["W"], enc.params["b"], 3, 3)  # (2, 4, 6, 6)
    pooled_ref = feats.reshape(2, 4, 2, 3, 2, 3).mean(axis=(3, 5))
    logits = pooled_ref.reshape(2, -1) @ clf.params["W"] + clf.params["b"]
    np.testing.assert_allclose(model.predict(images), logits, rtol=1e-12)
