"""Learning-rate schedules (sequences vs hand-computed values and torch.optim.lr_scheduler),
the compact spec grammar, and the LearningRateScheduler / ReduceLROnPlateau callbacks."""

from __future__ import annotations

import json
import math
import pathlib

import numpy as np
import pytest

from numcnn import optimizers, schedules
from numcnn.layers import Dense, Tanh
from numcnn.models import Sequential
from numcnn.schedules import SCHEDULES
from numcnn.training.callbacks import Callback, LearningRateScheduler, ReduceLROnPlateau

R2 = math.sqrt(2) / 2

# (spec given to schedules.get, initial lr, lr for epochs 0, 1, 2, ... computed by hand)
CASES = [
    ("constant", 0.1, [0.1, 0.1, 0.1]),
    (0.25, None, [0.25, 0.25]),
    ("step:step_size=2,gamma=0.5", 0.1, [0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.0125]),
    ("step", 1.0, [1.0] * 10 + [0.1] * 10 + [0.01]),  # defaults: step_size 10, γ 0.1
    ("multistep:milestones=2/5,gamma=0.1", 1.0, [1.0, 1.0, 0.1, 0.1, 0.1, 0.01, 0.01]),
    ("multistep:milestones=[1,2,3],gamma=0.5", 8.0, [8.0, 4.0, 2.0, 1.0, 1.0]),
    ("multi_step:milestones=3", 2.0, [2.0, 2.0, 2.0, 0.2, 0.2]),
    ("piecewise:0=5e-4,2=2e-4,5=1e-4", None,
     [5e-4, 5e-4, 2e-4, 2e-4, 2e-4, 1e-4, 1e-4, 1e-4]),
    ({0: 5e-4, 2: 2e-4, 5: 1e-4, 8: 5e-5, 12: 1e-5}, None,  # LeNet-5 (1998) by pass
     [5e-4] * 2 + [2e-4] * 3 + [1e-4] * 3 + [5e-5] * 4 + [1e-5] * 8),
    ("piecewise:3=0.01", 0.1, [0.1, 0.1, 0.1, 0.01, 0.01]),  # before the first key: η₀
    ("piecewise:2=0.01,initial_lr=0.3", None, [0.3, 0.3, 0.01]),
    ("exponential:gamma=0.5", 1.0, [1.0, 0.5, 0.25, 0.125]),
    ("exponential", 1.0, [1.0, 0.9, 0.81, 0.729]),  # default γ = 0.9
    ("cosine:t_max=4", 1.0, [1.0, (1 + R2) / 2, 0.5, (1 - R2) / 2, 0.0, 0.0, 0.0]),
    ("cosine:t_max=2,eta_min=0.1", 1.1, [1.1, 0.6, 0.1, 0.1]),
    ({"name": "cosine", "t_max": 4, "initial_lr": 2.0}, None,
     [2.0, 1 + R2, 1.0, 1 - R2, 0.0]),
]


@pytest.mark.parametrize("spec,eta0,expected", CASES, ids=[str(c[0]) for c in CASES])
def test_sequence_matches_hand_computed(spec, eta0, expected):
    s = schedules.get(spec)
    got = [s(e, initial_lr=eta0) for e in range(len(expected))]
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
    assert all(isinstance(v, float) for v in got)


TORCH = [
    ("step:step_size=3,gamma=0.3", "StepLR", {"step_size": 3, "gamma": 0.3}),
    ("multistep:milestones=2/3/7,gamma=0.5", "MultiStepLR",
     {"milestones": [2, 3, 7], "gamma": 0.5}),
    ("exponential:gamma=0.8", "ExponentialLR", {"gamma": 0.8}),
    ("cosine:t_max=10,eta_min=0.001", "CosineAnnealingLR", {"T_max": 10, "eta_min": 0.001}),
]


@pytest.mark.parametrize("spec,tname,tkwargs", TORCH, ids=[t[1] for t in TORCH])
def test_sequence_matches_torch_scheduler(spec, tname, tkwargs):
    torch = pytest.importorskip("torch")
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    sched = getattr(torch.optim.lr_scheduler, tname)(opt, **tkwargs)
    ref = []
    for _ in range(11):  # epochs 0..10 (cosine: up to and including T)
        ref.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    s = schedules.get(spec)
    np.testing.assert_allclose([s(e, initial_lr=0.1) for e in range(11)], ref, rtol=1e-9)


def test_cosine_uses_total_epochs_when_t_max_is_none():
    s = schedules.get("cosine")
    assert s(2, initial_lr=1.0, total_epochs=4) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="t_max"):
        s(0, initial_lr=1.0)


def test_relative_schedule_without_initial_lr_raises():
    with pytest.raises(ValueError, match="initial learning rate"):
        schedules.get("step")(0)


# ----------------------------------------------------------------------------- spec grammar
@pytest.mark.parametrize("spec,name,kwargs", [
    ("cosine", "cosine", {}),
    ("COSINE : t_max = 20 , eta_min = 1e-5", "cosine", {"t_max": 20, "eta_min": 1e-5}),
    ("step:step_size=5,gamma=0.5", "step", {"step_size": 5, "gamma": 0.5}),
    ("multistep:milestones=30/80,gamma=.1", "multistep", {"milestones": [30, 80],
                                                          "gamma": 0.1}),
    ("multistep:milestones=[30,80]", "multistep", {"milestones": [30, 80]}),
    ("piecewise:0=5e-4,2=2e-4", "piecewise", {"values": {0: 5e-4, 2: 2e-4}}),
    ("cosine:t_max=none,initial_lr=1", "cosine", {"t_max": None, "initial_lr": 1}),
])
def test_parse_spec(spec, name, kwargs):
    assert schedules.parse_spec(spec) == (name, kwargs)


@pytest.mark.parametrize("spec,match", [
    ("nosuch", "unknown schedule"),
    ("step:5", "expected key=value"),
    ("step:step_size=", "expected key=value"),
    ("step:step_size=five", "cannot read the value"),
    ("step:gamma=0.5,gamma=0.2", "given twice"),
    ("step:stepsize=5", "accepts step_size, gamma, initial_lr"),
    ("step:step_size=0", "step_size must be a positive int; received step_size=0"),
    ("step:step_size=2.5", "received step_size=2.5"),
    ("multistep:milestones=5/3", "strictly increasing"),
    ("exponential:gamma=-1", "received gamma=-1"),
    ("cosine:eta_min=-1", "received eta_min=-1"),
    ("piecewise:0=-1e-3", "positive"),
    (":gamma=1", "no name"),
])
def test_bad_specs_raise_clear_errors(spec, match):
    with pytest.raises(ValueError, match=match):
        schedules.get(spec)


def test_get_forms():
    assert schedules.get("step", step_size=3) == schedules.get("step:step_size=3")
    assert schedules.get({"name": "step", "step_size": 3}) == schedules.StepDecay(3)
    assert schedules.get("step:step_size=3", gamma=0.5) == schedules.StepDecay(3, 0.5)
    assert schedules.get(schedules.Exponential) == schedules.Exponential()
    s = schedules.Cosine(5)
    assert schedules.get(s) is s

    def fn(epoch):
        return 0.1

    assert schedules.get(fn) is fn
    with pytest.raises(ValueError, match="required"):
        schedules.get(None)
    with pytest.raises(ValueError, match="received epoch=-1"):
        schedules.get("constant")(-1, initial_lr=0.1)


@pytest.mark.parametrize("schedule", [
    schedules.Constant(), schedules.Constant(0.3), schedules.StepDecay(4, 0.25),
    schedules.MultiStep([3, 9], 0.2, initial_lr=0.5), schedules.Piecewise({0: 1e-3, 4: 1e-4}),
    schedules.Piecewise({2: 1e-3}, initial_lr=0.1),
    schedules.Exponential(0.95), schedules.Cosine(), schedules.Cosine(12, 1e-5),
], ids=repr)
def test_spec_and_serialize_round_trip(schedule):
    assert schedules.get(schedule.spec()) == schedule
    assert schedules.get(json.loads(json.dumps(schedules.serialize(schedule)))) == schedule


def _covered_elsewhere(name: str) -> bool:
    here = pathlib.Path(__file__)
    return any(f'"{name}' in p.read_text(encoding="utf-8")
               for p in here.parent.rglob("test_*.py") if p != here)


def test_every_registered_schedule_has_a_case():
    covered = set()
    for spec, _, _ in CASES + [(t[0], None, None) for t in TORCH]:
        s = schedules.get(spec)
        covered.add(type(s))
    missing = [n for n in SCHEDULES.names()
               if SCHEDULES.lookup(n) not in covered and not _covered_elsewhere(n)]
    assert not missing, f"schedules without a test case: {missing}"
    assert {"constant", "step", "multistep", "piecewise", "exponential", "cosine"} <= set(
        SCHEDULES.names())


# ------------------------------------------------------------------------------- callbacks
class Recorder(Callback):
    """Records the optimizer's lr at each epoch end and the logs' lr."""

    def __init__(self):
        self.lrs, self.logged = [], []

    def on_epoch_end(self, epoch, logs=None):
        self.lrs.append(self.model.optimizer.lr)
        self.logged.append((logs or {}).get("lr"))


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (24, 4)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    return x, y


def _model(lr=0.1):
    m = Sequential([Dense(6), Tanh(), Dense(2)], input_shape=(4,), seed=3)
    m.compile(optimizer=optimizers.get("sgd", lr=lr), loss="softmax_cross_entropy")
    return m


def test_scheduler_sets_lr_each_epoch_and_logs_it():
    x, y = _problem()
    m = _model(0.1)
    rec = Recorder()
    m.fit(x, y, batch_size=8, epochs=4, verbose=0, seed=0,
          callbacks=[LearningRateScheduler("step:step_size=1,gamma=0.5"), rec])
    np.testing.assert_allclose(rec.lrs, [0.1, 0.05, 0.025, 0.0125], rtol=1e-15)
    np.testing.assert_allclose(rec.logged, [0.1, 0.05, 0.025, 0.0125], rtol=1e-15)


def test_scheduled_training_equals_manual_lr_changes():
    """The rate the scheduler sets is the one the updates use: same weights as setting lr by
    hand before each one-epoch fit."""
    x, y = _problem()
    lrs = [0.5, 0.2, 0.2, 0.05]
    a = _model(1.0)
    a.fit(x, y, batch_size=None, epochs=4, verbose=0, shuffle=False,
          callbacks=[LearningRateScheduler({0: 0.5, 1: 0.2, 3: 0.05})])
    b = _model(1.0)
    for epoch, lr in enumerate(lrs):
        b.optimizer.lr = lr
        b.fit(x, y, batch_size=None, epochs=epoch + 1, initial_epoch=epoch, verbose=0,
              shuffle=False)
    for k, w in a.get_weights().items():
        np.testing.assert_array_equal(w, b.get_weights()[k])


def test_scheduler_accepts_keras_style_functions_and_cosine_epochs():
    x, y = _problem()
    m, rec = _model(0.8), Recorder()
    m.fit(x, y, epochs=3, verbose=0, callbacks=[
        LearningRateScheduler(lambda epoch, lr: lr if epoch == 0 else lr / 2), rec])
    np.testing.assert_allclose(rec.lrs, [0.8, 0.4, 0.2])

    m, rec = _model(1.0), Recorder()
    m.fit(x, y, epochs=4, verbose=0, callbacks=[LearningRateScheduler("cosine", epochs=4), rec])
    np.testing.assert_allclose(rec.lrs, [1.0, (1 + R2) / 2, 0.5, (1 - R2) / 2], rtol=1e-12)


def test_scheduler_keeps_initial_lr_across_fit_calls():
    x, y = _problem()
    m, rec = _model(1.0), Recorder()
    cb = LearningRateScheduler("exponential:gamma=0.5")
    m.fit(x, y, epochs=2, verbose=0, callbacks=[cb, rec])
    m.fit(x, y, epochs=4, initial_epoch=2, verbose=0, callbacks=[cb, rec])
    np.testing.assert_allclose(rec.lrs, [1.0, 0.5, 0.25, 0.125])


def test_scheduler_initial_lr_resumes_from_a_checkpoint():
    """A restored optimizer carries the last scheduled lr; initial_lr keeps η₀ right."""
    x, y = _problem()
    m, rec = _model(0.25), Recorder()  # as restored after epochs 0, 1 of a run from lr 1.0
    m.fit(x, y, epochs=4, initial_epoch=2, verbose=0,
          callbacks=[LearningRateScheduler("exponential:gamma=0.5", initial_lr=1.0), rec])
    np.testing.assert_allclose(rec.lrs, [0.25, 0.125])
    with pytest.raises(ValueError, match="received initial_lr=0"):
        LearningRateScheduler("cosine", initial_lr=0)


def test_scheduler_rejects_bad_rates():
    x, y = _problem()
    with pytest.raises(ValueError, match="finite number"):
        _model().fit(x, y, epochs=1, verbose=0,
                     callbacks=[LearningRateScheduler(lambda e: float("nan"))])


class FeedLogs(Callback):
    """Writes a prescribed value of ``val_loss`` into the epoch logs."""

    def __init__(self, values):
        self.values = values

    def on_epoch_end(self, epoch, logs=None):
        logs["val_loss"] = self.values[epoch]


class _Opt:
    def __init__(self, lr):
        self.lr = lr


class _Model:
    def __init__(self, lr):
        self.optimizer = _Opt(lr)


@pytest.mark.parametrize("kwargs,values,expected", [
    # patience 2: two epochs without improvement, then ×0.5
    ({"patience": 2, "factor": 0.5}, [1.0, 0.9, 0.9, 0.95, 0.89995, 0.5, 0.6],
     [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5]),
    # min_delta: 0.89995 is not 1e-4 below 0.9, so it does not count as an improvement
    ({"patience": 1, "factor": 0.5}, [0.9, 0.89995, 0.8, 0.8], [1.0, 0.5, 0.5, 0.25]),
    # cooldown 2 (Keras: the counter is decremented at the start of each epoch end, so
    # the epoch after a reduction and the next are cooldown; with patience 1 the next
    # reduction comes two epochs later)
    ({"patience": 1, "factor": 0.1, "cooldown": 2}, [1, 1, 1, 1, 1, 1],
     [1.0, 0.1, 0.1, 0.01, 0.01, 0.001]),
    ({"patience": 1, "factor": 0.1, "cooldown": 0}, [1, 1, 1, 1], [1.0, 0.1, 0.01, 0.001]),
    # min_lr bounds the rate
    ({"patience": 1, "factor": 0.1, "min_lr": 0.05}, [1, 1, 1, 1], [1.0, 0.1, 0.05, 0.05]),
    # mode max (auto for accuracy): rising is improvement
    ({"monitor": "val_accuracy", "patience": 1, "factor": 0.5}, [0.5, 0.6, 0.6, 0.7],
     [1.0, 1.0, 0.5, 0.5]),
])
def test_reduce_on_plateau_sequence(kwargs, values, expected):
    cb = ReduceLROnPlateau(**kwargs)
    cb.set_model(_Model(1.0))
    cb.on_train_begin()
    key = kwargs.get("monitor", "val_loss")
    got = []
    for epoch, v in enumerate(values):
        logs = {key: v}
        cb.on_epoch_end(epoch, logs)
        assert logs["lr"] == (got[-1] if got else 1.0)  # the rate used during this epoch
        got.append(cb.model.optimizer.lr)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_reduce_on_plateau_in_fit():
    x, y = _problem()
    m, rec = _model(0.2), Recorder()
    stuck = [1.0, 0.5, 0.5, 0.5, 0.5, 0.5]
    m.fit(x, y, epochs=6, verbose=0, validation_data=(x, y),
          callbacks=[FeedLogs(stuck), ReduceLROnPlateau(factor=0.5, patience=2), rec])
    np.testing.assert_allclose(rec.lrs, [0.2, 0.2, 0.2, 0.1, 0.1, 0.05])

    # with real validation loss and a min_delta nothing can beat, it reduces every epoch
    m, rec = _model(0.2), Recorder()
    m.fit(x, y, epochs=3, verbose=0, validation_data=(x, y),
          callbacks=[ReduceLROnPlateau(factor=0.5, patience=1, min_delta=1e9), rec])
    np.testing.assert_allclose(rec.lrs, [0.2, 0.1, 0.05])


def test_reduce_on_plateau_warns_on_missing_metric_and_validates():
    cb = ReduceLROnPlateau()
    cb.set_model(_Model(1.0))
    cb.on_train_begin()
    with pytest.warns(RuntimeWarning, match="val_loss"):
        cb.on_epoch_end(0, {"loss": 1.0})
    for kwargs in ({"factor": 1.0}, {"patience": -1}, {"mode": "up"}, {"min_lr": -1.0}):
        with pytest.raises(ValueError, match="received"):
            ReduceLROnPlateau(**kwargs)
