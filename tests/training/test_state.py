"""State that resumes exactly: optimizer state keyed by parameter name (freezing a layer
between ``fit`` calls follows ``torch.optim``), and a run resumed from a file in a fresh
process is bit-identical to an uninterrupted one — with shuffling and Dropout."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import numcnn
from numcnn import optimizers
from numcnn.layers import Dense, Dropout, Flatten, Tanh
from numcnn.training import LearningRateScheduler, ReduceLROnPlateau

torch = pytest.importorskip("torch")
torch.set_num_threads(1)


def mlp(dtype="float64"):
    return numcnn.Sequential([Dense(6, name="d0"), Tanh(), Dense(6, name="d1"), Tanh(),
                              Dense(3, name="d2")], input_shape=(4,), seed=0, dtype=dtype)


@pytest.mark.parametrize("name,tname,kwargs", [
    ("adam", "Adam", {"lr": 0.05}),
    ("sgd", "SGD", {"lr": 0.1, "momentum": 0.9}),
    ("rmsprop", "RMSprop", {"lr": 0.01, "momentum": 0.5}),
])
def test_freezing_a_layer_between_fits_follows_torch_optim(name, tname, kwargs):
    """The defect: state kept by position gave d0's moments to d1 once d0 was frozen."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 4)), rng.integers(0, 3, 16)
    model = mlp()
    model.compile(optimizer=optimizers.get(name, **kwargs), loss="softmax_cross_entropy",
                  metrics=[])
    p = {q: torch.tensor(w, requires_grad=True) for q, w in model.get_weights().items()}
    opt = getattr(torch.optim, tname)(list(p.values()), **kwargs)

    def torch_steps():
        for s in range(0, 16, 4):
            opt.zero_grad()
            h = torch.tanh(torch.tensor(x[s:s + 4]) @ p["d0/W"] + p["d0/b"])
            h = torch.tanh(h @ p["d1/W"] + p["d1/b"])
            loss = torch.nn.functional.cross_entropy(h @ p["d2/W"] + p["d2/b"],
                                                     torch.tensor(y[s:s + 4]))
            loss.backward()
            opt.step()

    def compare():
        for q, w in model.get_weights().items():
            np.testing.assert_allclose(w, p[q].detach().numpy(), rtol=1e-10, atol=1e-12,
                                       err_msg=q)

    model.fit(x, y, batch_size=4, shuffle=False, verbose=0)
    torch_steps()
    compare()
    model.get_layer("d0").trainable = False  # freeze the first layer
    for q in ("d0/W", "d0/b"):
        p[q].requires_grad_(False)
        p[q].grad = None
    model.fit(x, y, batch_size=4, shuffle=False, verbose=0)
    torch_steps()
    compare()
    model.get_layer("d0").trainable = True  # and thaw it: its old moments come back
    for q in ("d0/W", "d0/b"):
        p[q].requires_grad_(True)
    model.fit(x, y, batch_size=4, shuffle=False, verbose=0)
    torch_steps()
    compare()
    assert set(model.optimizer.state) == {f"d{k}/{w}" for k in range(3) for w in "Wb"}


def test_optimizer_state_round_trips_by_name():
    opt = optimizers.Adam(lr=0.01)
    w = {"a/W": np.ones(3), "b/W": np.ones(2)}
    opt.step(w, {"a/W": np.ones(3), "b/W": np.ones(2)})
    clone = optimizers.Adam(lr=0.01)
    clone.load_state_dict(opt.state_dict())
    assert set(clone.state) == {"a/W", "b/W"} and clone.iterations == 1
    with pytest.raises(ValueError, match="no gradient"):
        opt.step(w, {"a/W": np.ones(3)})
    with pytest.raises(ValueError, match="unexpected entry"):
        clone.load_state_dict({"0/exp_avg": np.ones(3)})


# ------------------------------------------------------------------ exact resume

SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import numcnn
    from numcnn.layers import Dense, Dropout, Flatten, ReLU

    def data():
        rng = np.random.default_rng(123)
        return rng.random((50, 1, 4, 4), dtype=np.float32), rng.integers(0, 3, 50)

    def model():
        m = numcnn.Sequential([Flatten(), Dense(8), ReLU(), Dropout(0.4), Dense(3)],
                              input_shape=(1, 4, 4), seed=0)
        m.compile(optimizer=numcnn.optimizers.Adam(lr=0.01), loss="softmax_cross_entropy")
        return m

    x, y = data()
    mode, path = sys.argv[1], sys.argv[2]
    if mode == "whole":
        m = model()
        m.fit(x, y, batch_size=8, epochs=2, seed=5, verbose=0)
    elif mode == "first":
        m = model()
        m.fit(x, y, batch_size=8, epochs=1, seed=5, verbose=0)
    else:  # resume in this fresh process from the file the first process wrote
        m = numcnn.load_model(path + ".half.npz")
        m.fit(x, y, batch_size=8, epochs=2, initial_epoch=1, seed=5, verbose=0)
    numcnn.save_model(m, path + (".half.npz" if mode == "first" else f".{mode}.npz"))
""")


def _run(tmp_path, mode):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    subprocess.run([sys.executable, str(script), mode, str(tmp_path / "m")], check=True,
                   env={"OPENBLAS_NUM_THREADS": "1", "PATH": "", **_pythonpath()})


def _pythonpath():
    import os

    return {k: v for k, v in os.environ.items() if k in ("PYTHONPATH", "HOME")}


def test_resume_in_a_fresh_process_is_bit_identical(tmp_path):
    _run(tmp_path, "whole")
    _run(tmp_path, "first")
    _run(tmp_path, "resume")
    whole = numcnn.load_model(tmp_path / "m.whole.npz")
    resumed = numcnn.load_model(tmp_path / "m.resume.npz")
    ws, wr = whole.get_weights(), resumed.get_weights()
    assert set(ws) == set(wr)
    for q in ws:
        assert np.array_equal(ws[q], wr[q]), q
    so, ro = whole.optimizer.state_dict(), resumed.optimizer.state_dict()
    for k in so:
        assert np.array_equal(so[k], ro[k]), k
    # the Dropout generator went on from the same state: the next masks agree too
    a = whole.get_layer("dropout").rng.random(5)
    b = resumed.get_layer("dropout").rng.random(5)
    assert np.array_equal(a, b)


def test_fit_from_initial_epoch_without_a_checkpoint_replays_the_data_order():
    """``fit(initial_epoch=1, seed=s)`` on a model restored in memory draws the same
    permutation for epoch 1 as an uninterrupted run (the old loop restarted the order)."""
    rng = np.random.default_rng(1)
    x, y = rng.random((30, 4)), rng.integers(0, 3, 30)
    a, b = mlp(), mlp()
    for m in (a, b):
        m.compile(optimizer=optimizers.SGD(lr=0.1, momentum=0.9), loss="softmax_cross_entropy")
    a.fit(x, y, batch_size=7, epochs=2, seed=3, verbose=0)
    b.fit(x, y, batch_size=7, epochs=1, seed=3, verbose=0)
    b.fit(x, y, batch_size=7, epochs=2, initial_epoch=1, seed=3, verbose=0)
    for q, w in a.get_weights().items():
        assert np.array_equal(w, b.get_weights()[q]), q


def test_every_stateful_piece_has_a_state_dict():
    model = numcnn.Sequential([Flatten(), Dropout(0.5, seed=1), Dense(2)], input_shape=(1, 2, 2))
    state = model.state_dict()
    assert set(state) == {"dropout/rng", "dense/W", "dense/b"}
    model.get_layer("dropout").rng.random(3)
    model.load_state_dict(state)
    fresh = numcnn.Sequential([Flatten(), Dropout(0.5, seed=1), Dense(2)],
                              input_shape=(1, 2, 2))
    assert np.array_equal(model.get_layer("dropout").rng.random(4),
                          fresh.get_layer("dropout").rng.random(4))
    sched = LearningRateScheduler("step:step_size=1,gamma=0.5")
    sched.initial_lr, sched._epoch = 0.2, 3
    clone = LearningRateScheduler("step:step_size=1,gamma=0.5")
    clone.load_state_dict(json.loads(json.dumps(sched.state_dict())))
    assert clone.state_dict() == sched.state_dict()
    plateau = ReduceLROnPlateau(patience=2)
    plateau.best, plateau.wait = 0.5, 1
    other = ReduceLROnPlateau(patience=2)
    other.load_state_dict(json.loads(json.dumps(plateau.state_dict())))
    assert other.state_dict() == plateau.state_dict()
    assert numcnn.schedules.get("cosine").state_dict() == {}
    m = mlp()
    m.compile(optimizer="sgd", loss="softmax_cross_entropy")
    m.fit(np.ones((4, 4)), np.zeros(4, int), verbose=0, seed=0)
    assert set(m.trainer.state_dict()) == {"epoch", "step", "rng"}
    with pytest.raises(ValueError, match="unexpected state"):
        Dense(2).load_extra_state({"rng": np.zeros(6, np.uint64)})
