"""Losses on sequences and under padding masks, against PyTorch: per-step scores (N, T, K)
as ``F.cross_entropy(z.permute(0, 2, 1), t)``, masked means as ``ignore_index`` or as the
torch loss of the real rows; a sequence tagger trained through ``fit`` against a PyTorch
twin (Embedding → LSTM → per-step Dense, loss over the real steps only)."""

from __future__ import annotations

import numpy as np
import pytest

import numcnn
from numcnn import losses
from numcnn.layers import LSTM, Dense, Embedding, Masking, TimeDistributed
from references import numerical_grad
from test_losses import CASES, Case, _inputs

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _tol(dtype):
    return dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_a_masked_loss_is_the_torch_loss_of_the_real_rows(case: Case, dtype):
    # every loss: a mask over the rows keeps the real rows only (value and gradient), and
    # the padding rows get a zero gradient
    yp, yt = _inputs(case, dtype, seed=3)
    mask = np.zeros(len(yp), bool)
    mask[[0, 2, len(yp) - 1]] = True
    loss = losses.get(case.name, **case.kwargs)
    value = loss.forward(yp, yt, mask=mask)
    grad = loss.backward()
    assert grad.shape == yp.shape and grad.dtype == yp.dtype
    tp = torch.tensor(yp, requires_grad=True)
    ref = case.ref(F, torch, tp[torch.tensor(mask)], torch.tensor(yt[mask]))
    ref.backward()
    np.testing.assert_allclose(value, ref.item(), **_tol(dtype))
    np.testing.assert_allclose(grad, tp.grad.numpy(), **_tol(dtype))
    assert not grad[~mask].any()


def _sequence(rng, N, T, K, kind):
    z = rng.normal(0, 1.5, (N, T, K))
    if kind == "logprob":
        z = z - np.log(np.exp(z).sum(-1, keepdims=True))
    elif kind == "prob":
        z = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    return z, rng.integers(0, K, (N, T))


SEQ = [  # name, scores, torch loss on (N, K, T) scores with labels (N, T) and ignore_index
    ("softmax_cross_entropy", "logits", lambda z, t: F.cross_entropy(z, t, ignore_index=-1)),
    ("nll", "logprob", lambda z, t: F.nll_loss(z, t, ignore_index=-1)),
    ("categorical_cross_entropy", "prob",
     lambda z, t: F.nll_loss(torch.log(z.clamp_min(1e-7)), t, ignore_index=-1)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("name,kind,ref", SEQ, ids=[s[0] for s in SEQ])
def test_per_step_scores_match_torch(name, kind, ref, masked, dtype):
    rng = np.random.default_rng(4)
    N, T, K = 3, 5, 4
    z, t = _sequence(rng, N, T, K, kind)
    z = z.astype(dtype)
    mask = rng.random((N, T)) < 0.6 if masked else None
    loss = losses.get(name)
    value = loss.forward(z, t, mask=mask)
    grad = loss.backward()
    assert grad.shape == z.shape and grad.dtype == z.dtype
    tz = torch.tensor(z, requires_grad=True)
    tt = torch.tensor(t if mask is None else np.where(mask, t, -1))
    r = ref(tz.permute(0, 2, 1), tt)
    r.backward()
    np.testing.assert_allclose(value, r.item(), **_tol(dtype))
    np.testing.assert_allclose(grad, tz.grad.numpy(), **_tol(dtype))
    # one-hot targets (N, T, K) give the same
    value2 = loss.forward(z, np.eye(K)[t], mask=mask)
    np.testing.assert_allclose(value2, value, rtol=1e-12)
    np.testing.assert_allclose(loss.backward(), grad, rtol=1e-12, atol=1e-30)


@pytest.mark.parametrize("name,kind,torch_rows", [
    ("multiclass_hinge", "logits", lambda z, t: F.multi_margin_loss(z, t)),
    ("mse", "prob", lambda z, t: F.mse_loss(z, F.one_hot(t, z.shape[1]).to(z))),
])
def test_per_step_scores_are_the_rows_of_the_flattened_batch(name, kind, torch_rows):
    rng = np.random.default_rng(5)
    z, t = _sequence(rng, 2, 3, 4, kind)
    loss = losses.get(name)
    value = loss.forward(z, t)
    grad = loss.backward()
    tz = torch.tensor(z, requires_grad=True)
    r = torch_rows(tz.reshape(-1, 4), torch.tensor(t.reshape(-1)))
    r.backward()
    np.testing.assert_allclose(value, r.item(), rtol=1e-10)
    np.testing.assert_allclose(grad, tz.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name,kind", [(s[0], s[1]) for s in SEQ] + [("mse", "prob")])
def test_masked_sequence_gradient_matches_central_differences(name, kind):
    rng = np.random.default_rng(6)
    z, t = _sequence(rng, 2, 4, 3, kind)
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 0]], bool)
    loss = losses.get(name)
    loss.forward(z, t, mask=mask)
    analytic = loss.backward()
    numeric = numerical_grad(lambda: loss.forward(z, t, mask=mask), z, eps=1e-6)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


def test_element_wise_losses_average_the_real_steps_of_every_feature():
    # (N, T, F) regression under an (N, T) mask: mean over the real steps' elements
    rng = np.random.default_rng(7)
    yp, y = rng.standard_normal((3, 4, 2)), rng.standard_normal((3, 4, 2))
    mask = rng.random((3, 4)) < 0.5
    mask[0, 0] = True
    value = losses.get("mse").forward(yp, y, mask=mask)
    tm = torch.tensor(mask)[..., None].expand(3, 4, 2)
    assert value == pytest.approx(F.mse_loss(torch.tensor(yp)[tm], torch.tensor(y)[tm]).item(),
                                  rel=1e-12)


def test_all_padding_gives_zero_loss_and_gradient():
    z, t = _sequence(np.random.default_rng(8), 2, 3, 4, "logits")
    loss = losses.get("softmax_cross_entropy")
    assert loss.forward(z.astype(np.float32), t, mask=np.zeros((2, 3), bool)) == 0.0
    g = loss.backward()
    assert g.shape == (2, 3, 4) and g.dtype == np.float32 and not g.any()


@pytest.mark.parametrize("mask, targets, exc, says", [
    (np.ones((3, 2), bool), None, ValueError, r"leading shape of y_pred \(2, 3, 4\).*"
                                              r"received \(3, 2\)"),
    (np.ones((2, 3, 4, 1), bool), None, ValueError, r"received \(2, 3, 4, 1\)"),
    (np.full((2, 3), 2), None, ValueError, "only 0 and 1"),
    (np.full((2, 3), "a"), None, TypeError, "boolean or 0/1 array; received dtype <U1"),
    (np.ones((2, 3), bool), np.zeros((2, 4), int), ValueError,
     r"targets \(2, 4\) do not match the mask \(2, 3\)"),
    (None, np.zeros((2, 4), int), ValueError,
     r"expected labels \(2, 3\) or one-hot targets \(2, 3, 4\).*received \(2, 4\)"),
])
def test_bad_masks_and_targets_are_named(mask, targets, exc, says):
    z = np.zeros((2, 3, 4))
    t = np.zeros((2, 3), int) if targets is None else targets
    with pytest.raises(exc, match=says):
        losses.get("softmax_cross_entropy").forward(z, t, mask=mask)


# ------------------------------------------------------------------ through fit / evaluate
def _tagger(V, E, H, K, masking):
    ids = numcnn.Input((None,), dtype="float64")
    h = Embedding(V, E, mask_zero=masking)(ids)
    h = LSTM(H, return_sequences=True)(h)
    out = TimeDistributed(Dense(K))(h)
    return numcnn.Model(ids, out, seed=0)


def _torch_tagger(model):
    emb, lstm, td = model.layers
    te = torch.nn.Embedding(*emb.params["W"].shape).double()
    tl = torch.nn.LSTM(lstm.params["W_ih"].shape[1], lstm.units, batch_first=True).double()
    tdense = torch.nn.Linear(*td.params["W"].shape).double()
    with torch.no_grad():
        te.weight.copy_(torch.from_numpy(emb.params["W"]))
        for k, name in (("W_ih", "weight_ih_l0"), ("W_hh", "weight_hh_l0"),
                        ("b_ih", "bias_ih_l0"), ("b_hh", "bias_hh_l0")):
            getattr(tl, name).copy_(torch.from_numpy(lstm.params[k]))
        tdense.weight.copy_(torch.from_numpy(td.params["W"].T))
        tdense.bias.copy_(torch.from_numpy(td.params["b"]))

    def run(ids):
        y, _ = tl(te(torch.as_tensor(ids, dtype=torch.long)))
        return tdense(y)
    return run, [te.weight, tl.weight_ih_l0, tl.weight_hh_l0, tl.bias_ih_l0, tl.bias_hh_l0,
                 tdense.weight, tdense.bias]


def _padded_ids(rng, N, T, V, lengths):
    ids = rng.integers(1, V, (N, T)).astype(np.float64)
    for n, L in enumerate(lengths):
        ids[n, L:] = 0  # padding after the sequence: the real steps never see it
    return ids


def test_a_masked_tagger_trains_as_torch_with_ignore_index():
    """Embedding(mask_zero) → LSTM(return_sequences) → TimeDistributed(Dense): the mask
    reaches the loss, which averages the real steps only; one SGD step of fit equals
    PyTorch's step on ``F.cross_entropy(..., ignore_index)`` and evaluate's accuracy counts
    the real steps only."""
    V, E, H, K, N, T = 7, 3, 4, 5, 4, 6
    rng = np.random.default_rng(9)
    lengths = [6, 2, 4, 1]
    ids = _padded_ids(rng, N, T, V, lengths)
    tags = rng.integers(0, K, (N, T))
    tags[ids == 0] = K - 1  # labels on the padding must not count
    model = _tagger(V, E, H, K, masking=True)
    assert model.graph.output_masks[0] is not None
    run, params = _torch_tagger(model)
    model.compile(optimizer=numcnn.optimizers.SGD(lr=0.1), loss="softmax_cross_entropy",
                  metrics=["accuracy"])
    real = ids != 0
    logits = run(ids)
    ref = F.cross_entropy(logits.permute(0, 2, 1), torch.tensor(np.where(real, tags, -100)))
    before = model.evaluate(ids, tags, batch_size=N)
    assert before["loss"] == pytest.approx(ref.item(), rel=1e-12)
    pred = logits.detach().numpy().argmax(-1)
    assert before["accuracy"] == pytest.approx((pred == tags)[real].mean(), rel=1e-12)
    ref.backward()
    model.fit(ids, tags, batch_size=N, epochs=1, shuffle=False, verbose=0)
    with torch.no_grad():
        for p in params:
            p -= 0.1 * p.grad
    emb, lstm, td = model.layers
    np.testing.assert_allclose(emb.params["W"], params[0].detach().numpy(),
                               rtol=1e-10, atol=1e-12)
    for k, p in zip(("W_ih", "W_hh", "b_ih", "b_hh"), params[1:5]):
        np.testing.assert_allclose(lstm.params[k], p.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(td.params["W"], params[5].detach().numpy().T, rtol=1e-10,
                               atol=1e-12)


def test_without_the_mask_every_step_counts():
    # the same tagger without mask_zero: the loss averages all N·T steps
    V, E, H, K, N, T = 6, 3, 4, 3, 3, 5
    rng = np.random.default_rng(10)
    ids = _padded_ids(rng, N, T, V, [5, 3, 2])
    tags = rng.integers(0, K, (N, T))
    model = _tagger(V, E, H, K, masking=False)
    assert model.graph.output_masks == [None]
    run, _ = _torch_tagger(model)
    model.compile(optimizer="sgd", loss="softmax_cross_entropy", metrics=["accuracy"])
    ref = F.cross_entropy(run(ids).permute(0, 2, 1), torch.tensor(tags))
    assert model.evaluate(ids, tags)["loss"] == pytest.approx(ref.item(), rel=1e-12)


def test_masking_layer_mask_travels_through_per_step_layers_to_the_loss():
    # Masking → LSTM(seq) → TimeDistributed(Dense) → Tanh → Dropout: the output carries the
    # mask; a Softmax (over axis 1 — the time axis) or a merge does not hand it on
    from numcnn.layers import Dropout, Tanh
    x = numcnn.Input((None, 2), dtype="float64")
    h = Masking(0.0)(x)
    h = LSTM(3, return_sequences=True)(h)
    y = Dropout(0.1)(Tanh()(TimeDistributed(Dense(2))(h)))
    model = numcnn.Model(x, [y, LSTM(2)(h)])
    spec = model.graph.output_masks
    assert spec[0] is not None and spec[0][1] == 0.0 and spec[1] is None
    # the recorded source is the Masking layer's input: the masks the trainer computes
    # are the real steps
    rng = np.random.default_rng(11)
    xs = rng.standard_normal((2, 4, 2))
    xs[0, 3:] = 0
    model.compile(optimizer="sgd", loss=["mse", None])
    _, _, masks = model.trainer.run([xs], training=False, record=False)
    np.testing.assert_array_equal(masks[0], [[1, 1, 1, 0], [1, 1, 1, 1]])
    assert masks[1] is None


def test_masked_outputs_do_not_train_data_parallel():
    from numcnn.training.distributed import problem
    model = _tagger(5, 2, 3, 2, masking=True)
    model.compile(optimizer="sgd", loss="softmax_cross_entropy")
    assert "padding mask" in problem(model, model.trainer.losses)
    with pytest.raises(ValueError, match="padding mask"):
        model.fit(np.ones((8, 3)), np.zeros((8, 3), int), batch_size=8,
                  distribute="local:2", verbose=0)


def test_a_saved_tagger_keeps_its_masked_loss(tmp_path):
    V, K, N, T = 6, 3, 3, 5
    rng = np.random.default_rng(12)
    ids = _padded_ids(rng, N, T, V, [5, 2, 3])
    tags = rng.integers(0, K, (N, T))
    model = _tagger(V, 2, 3, K, masking=True)
    model.compile(optimizer="sgd", loss="softmax_cross_entropy")
    numcnn.save_model(model, tmp_path / "tagger.npz")
    again = numcnn.load_model(tmp_path / "tagger.npz")
    assert again.graph.output_masks[0] is not None
    assert again.evaluate(ids, tags)["loss"] == pytest.approx(
        model.evaluate(ids, tags)["loss"], rel=1e-12)
    unmasked = _tagger(V, 2, 3, K, masking=False)
    unmasked.set_weights(model.get_weights())
    unmasked.compile(optimizer="sgd", loss="softmax_cross_entropy")
    assert unmasked.evaluate(ids, tags)["loss"] != pytest.approx(
        model.evaluate(ids, tags)["loss"], rel=1e-6)
