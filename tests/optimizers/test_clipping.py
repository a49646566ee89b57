"""Gradient clipping (``clipnorm``, ``clipvalue`` on every optimizer): against
``torch.nn.utils.clip_grad_norm_`` / ``clip_grad_value_`` alone and followed by
``torch.optim`` steps, in float32 and float64; argument checks; the config and checkpoint
round trips; data-parallel training clips the summed gradient; the command line."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import numcnn
from numcnn import optimizers
from numcnn.optimizers import OPTIMIZERS
from numcnn.optimizers.base import clip_grad_norm, clip_grad_value

SHAPES = [(3, 4), (5,), (1,)]
# numcnn name, kwargs (PyTorch's names), torch class: one case per optimizer
CASES = [
    ("sgd", {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01}, "SGD"),
    ("adagrad", {"lr": 0.1}, "Adagrad"),
    ("adadelta", {"lr": 1.0}, "Adadelta"),
    ("rmsprop", {"lr": 0.01, "momentum": 0.5, "centered": True}, "RMSprop"),
    ("adam", {"lr": 0.01, "weight_decay": 0.01}, "Adam"),
    ("adamax", {"lr": 0.01}, "Adamax"),
    ("nadam", {"lr": 0.01}, "NAdam"),
]


def _tol(dtype):
    return dict(rtol=1e-12, atol=1e-14) if dtype == np.float64 else dict(rtol=2e-6, atol=1e-7)


def _grads(rng, dtype, scale=1.0):
    gs = [(scale * rng.standard_normal(s)).astype(dtype) for s in SHAPES]
    gs[0][0, 0] = 0.0
    return gs


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("max_norm", [0.05, 1.0, 3.0, 100.0])
def test_clip_grad_norm_matches_torch(max_norm, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    gs = _grads(rng, dtype)
    before = [g.copy() for g in gs]
    ours = clip_grad_norm({str(i): g for i, g in enumerate(gs)}, max_norm)
    ts = [torch.zeros(g.shape, dtype=torch.float32 if dtype == np.float32 else torch.float64,
                      requires_grad=True) for g in gs]
    for t, g in zip(ts, gs):
        t.grad = torch.tensor(g.copy())
    total = torch.nn.utils.clip_grad_norm_(ts, max_norm)
    for i, t in enumerate(ts):
        assert ours[str(i)].dtype == dtype
        np.testing.assert_allclose(ours[str(i)], t.grad.numpy(), **_tol(dtype))
    for g, b in zip(gs, before):
        np.testing.assert_array_equal(g, b)  # the inputs are left alone
    norm = np.sqrt(sum(float((o.astype(np.float64) ** 2).sum()) for o in ours.values()))
    assert norm <= max_norm * (1 + 1e-6)
    if max_norm > float(total):  # under the limit: unchanged (a factor of exactly 1)
        for i, g in enumerate(gs):
            np.testing.assert_array_equal(ours[str(i)], g)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("value", [0.1, 0.7, 5.0])
def test_clip_grad_value_matches_torch(value, dtype):
    torch = pytest.importorskip("torch")
    gs = _grads(np.random.default_rng(1), dtype)
    gs[1][0] = np.nan
    ours = clip_grad_value({str(i): g for i, g in enumerate(gs)}, value)
    ts = [torch.zeros(g.shape, dtype=torch.float32 if dtype == np.float32 else torch.float64,
                      requires_grad=True) for g in gs]
    for t, g in zip(ts, gs):
        t.grad = torch.tensor(g.copy())
    torch.nn.utils.clip_grad_value_(ts, value)
    for i, t in enumerate(ts):
        assert ours[str(i)].dtype == dtype
        np.testing.assert_array_equal(ours[str(i)], t.grad.numpy())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("clip", [{"clipnorm": 0.5}, {"clipvalue": 0.3},
                                  {"clipnorm": 2.0, "clipvalue": 0.4},
                                  {"global_clipnorm": 0.5}], ids=["norm", "value", "both",
                                                                 "global"])
@pytest.mark.parametrize("name,kwargs,tname", CASES, ids=[c[0] for c in CASES])
def test_steps_with_clipping_match_torch(name, kwargs, tname, clip, dtype):
    """``opt(clip…).step`` = ``clip_grad_norm_`` then ``clip_grad_value_`` then
    ``torch.optim`` step, over four steps (some gradients under the limit, some above)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    params = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64 if dtype == np.float64 else torch.float32)
    try:
        tparams = [torch.tensor(p.copy(), requires_grad=True) for p in params]
        topt = getattr(torch.optim, tname)(tparams, **kwargs)
        opt = optimizers.get(name, **kwargs, **clip)
        max_norm = clip.get("clipnorm", clip.get("global_clipnorm"))
        for k, scale in enumerate([0.05, 3.0, 1.0, 10.0]):
            gs = _grads(rng, dtype, scale)
            opt.step(params, gs)
            for tp, g in zip(tparams, gs):
                tp.grad = torch.tensor(g.copy())
            if max_norm is not None:
                torch.nn.utils.clip_grad_norm_(tparams, max_norm)
            if "clipvalue" in clip:
                torch.nn.utils.clip_grad_value_(tparams, clip["clipvalue"])
            topt.step()
            for p, tp in zip(params, tparams):
                assert p.dtype == dtype
                np.testing.assert_allclose(p, tp.detach().numpy(), **_tol(dtype),
                                           err_msg=f"step {k + 1}")
    finally:
        torch.set_default_dtype(old)


def test_sdlm_clips_too():
    opt = optimizers.SDLM(lr=0.02, mu=1.0, clipvalue=0.5)
    w = np.array([0.0, 0.0])
    opt.step({"w": w}, {"w": np.array([3.0, -0.25])})
    np.testing.assert_allclose(w, [-0.01, 0.005])


@pytest.mark.parametrize("name", sorted(set(OPTIMIZERS.names())))
def test_every_optimizer_takes_and_saves_the_clip_arguments(name):
    opt = optimizers.get(name, clipnorm=1.5, clipvalue=0.25)
    cfg = opt.get_config()
    assert cfg["clipnorm"] == 1.5 and cfg["clipvalue"] == 0.25
    again = optimizers.get(name, **cfg)
    assert again.get_config() == cfg
    assert "clipnorm=1.5" in repr(opt)
    plain = optimizers.get(name)
    assert "clipnorm" not in plain.get_config() and "clipvalue" not in plain.get_config()
    alias = optimizers.get(name, global_clipnorm=2.0)
    assert alias.clipnorm == 2.0 and alias.get_config()["clipnorm"] == 2.0


@pytest.mark.parametrize("kwargs, pattern", [
    ({"clipnorm": -1.0}, r"clipnorm must be a positive number or None; received clipnorm=-1.0"),
    ({"clipnorm": 0}, r"clipnorm=0"),
    ({"clipnorm": float("nan")}, r"clipnorm=nan"),
    ({"clipnorm": float("inf")}, r"clipnorm=inf"),
    ({"clipnorm": "1"}, r"clipnorm='1'"),
    ({"clipnorm": True}, r"clipnorm=True"),
    ({"clipvalue": -0.5}, r"clipvalue must be a positive number or None; received "
                          r"clipvalue=-0.5"),
    ({"clipvalue": float("nan")}, r"clipvalue=nan"),
    ({"global_clipnorm": -2}, r"global_clipnorm=-2"),
    ({"clipnorm": 1.0, "global_clipnorm": 1.0}, r"one setting"),
])
def test_bad_clip_arguments_are_refused(kwargs, pattern):
    for name in ("sgd", "adam"):
        with pytest.raises(ValueError, match=pattern):
            optimizers.get(name, **kwargs)


def test_step_leaves_the_gradients_it_receives_alone():
    opt = optimizers.SGD(lr=0.1, clipnorm=0.1, clipvalue=0.01)
    w, g = np.ones(4), np.array([3.0, -4.0, 0.0, 1e-3])
    keep = g.copy()
    opt.step({"w": w}, {"w": g})
    np.testing.assert_array_equal(g, keep)


def test_a_non_finite_norm_makes_non_finite_gradients_as_torch():
    torch = pytest.importorskip("torch")
    g = np.array([np.inf, 1.0])
    ours = clip_grad_norm({"g": g}, 1.0)["g"]
    t = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    t.grad = torch.tensor(g)
    torch.nn.utils.clip_grad_norm_(t, 1.0)
    np.testing.assert_array_equal(ours, t.grad.numpy())


def _mlp(seed=0):
    from numcnn.layers import Dense, Tanh
    model = numcnn.Sequential([Dense(16), Tanh(), Dense(3)], input_shape=(6,), seed=seed,
                              dtype="float64")
    return model


def test_the_clip_settings_survive_save_and_load(tmp_path):
    model = _mlp()
    model.compile(optimizer=optimizers.Adam(lr=0.01, clipnorm=0.5, clipvalue=0.1),
                  loss="softmax_cross_entropy")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((32, 6)), rng.integers(0, 3, 32)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, seed=0)
    numcnn.save_model(model, tmp_path / "m.npz")
    back = numcnn.load_model(tmp_path / "m.npz")
    assert back.optimizer.clipnorm == 0.5 and back.optimizer.clipvalue == 0.1
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, seed=1)
    back.fit(x, y, batch_size=8, epochs=1, verbose=0, seed=1)
    for k, v in model.get_weights().items():
        np.testing.assert_array_equal(back.get_weights()[k], v, err_msg=k)


def test_fit_clips_the_whole_gradient_of_each_batch():
    """fit with clipnorm equals a hand-written loop that clips the batch gradient."""
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((24, 6)) * 4, rng.integers(0, 3, 24)
    a, b = _mlp(), _mlp()
    a.compile(optimizer=optimizers.SGD(lr=0.5, clipnorm=0.2), loss="softmax_cross_entropy")
    b.compile(optimizer=optimizers.SGD(lr=0.5), loss="softmax_cross_entropy")
    a.fit(x, y, batch_size=24, epochs=3, shuffle=False, verbose=0)
    for _ in range(3):
        b.trainer.train_step([x], [y])
        grads = clip_grad_norm(b.trainable_grads(), 0.2)
        b.optimizer.step(b.trainable_params(), grads)
    for k, v in a.get_weights().items():
        np.testing.assert_allclose(b.get_weights()[k], v, rtol=1e-12, atol=1e-14, err_msg=k)


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="data-parallel training forks worker processes (Linux)")
def test_data_parallel_training_clips_the_summed_gradient():
    """Two processes clip the combined gradient: the weights equal a one-process run (up to
    the rounding of the split sums), and differ from a run without clipping."""
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((64, 6)) * 4, rng.integers(0, 3, 64)
    runs = {}
    for key, processes, clip in (("one", 1, 0.1), ("two", 2, 0.1), ("none", 2, None)):
        model = _mlp()
        model.compile(optimizer=optimizers.SGD(lr=0.5, momentum=0.9, clipnorm=clip),
                      loss="softmax_cross_entropy")
        model.fit(x, y, batch_size=32, epochs=2, verbose=0, seed=0,
                  distribute=f"local:{processes}")
        runs[key] = model.get_weights()
    for k, v in runs["one"].items():
        np.testing.assert_allclose(runs["two"][k], v, rtol=1e-9, atol=1e-12, err_msg=k)
    assert any(not np.allclose(runs["none"][k], v) for k, v in runs["one"].items())


def test_a_large_float32_gradient_is_summed_in_float64_slices():
    from numcnn.optimizers.base import _CHUNK

    g = np.random.default_rng(5).standard_normal(3 * _CHUNK + 5).astype(np.float32)
    out = clip_grad_norm({"g": g}, 1.0)["g"]
    n = np.sqrt(np.sum(g.astype(np.float64) ** 2))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, g.astype(np.float64) / (n + 1e-6), rtol=2e-6)
