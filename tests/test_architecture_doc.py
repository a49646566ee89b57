"""``docs/architecture.md`` stays true: its worked example runs, and its rules hold.

The blocks marked ``<!-- architecture-test: NAME -->`` (the ```python fence right after the
marker) are executed here: the ``Scale`` layer of "How to add a layer" (into a stand-in
module ``numcnn.layers.scale``, registered in a copy of the registries that is thrown away
after each test), its ``LAYER_EXAMPLES`` entry (through the real contract test), its tests,
its usage, and the resume recipe. The layer is then checked inside models against direct
NumPy and float64 central differences, and through the Gauss–Newton walk of SDLM.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import numcnn
from numcnn.layers import (
    LAYERS,
    Add,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    Input,
    MaxPool2D,
    ReLU,
    gauss_newton,
)
from numcnn.threads import num_threads
from references import check_grad

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
TEXT = DOC.read_text(encoding="utf-8")


def block(name: str) -> str:
    """The ```python block right after ``<!-- architecture-test: name -->``."""
    m = re.search(r"<!-- architecture-test: " + re.escape(name) + r" -->\n```python\n(.*?)```",
                  TEXT, re.S)
    assert m, f"docs/architecture.md has no python block marked {name!r}"
    return m.group(1)


def run(name: str, namespace: dict) -> dict:
    exec(compile(block(name), f"{DOC}:{name}", "exec"), namespace)
    return namespace


@pytest.fixture
def scale_module(monkeypatch):
    """The doc's layer block run as the module ``numcnn.layers.scale``, registered in copies
    of ``LAYERS`` and the Gauss–Newton rules (so no other test sees it)."""
    monkeypatch.setattr(LAYERS, "_items", dict(LAYERS._items))
    monkeypatch.setattr(gauss_newton, "_RULES", dict(gauss_newton._RULES))
    mod = types.ModuleType("numcnn.layers.scale")
    mod.__file__ = str(DOC)
    monkeypatch.setitem(sys.modules, mod.__name__, mod)
    run("layer", mod.__dict__)
    assert LAYERS.lookup("Scale") is mod.Scale
    return mod


def test_the_marked_blocks_sit_under_their_headings():
    sections = {"resume": "## 3.", "layer": "## 4.", "layer-examples": "## 4.",
                "tests": "## 4.", "usage": "## 4."}
    for name, heading in sections.items():
        block(name)
        marker = TEXT.index(f"<!-- architecture-test: {name} -->")
        start = TEXT.index(heading)
        end = TEXT.find("\n## ", start + 1)
        assert start < marker < (end if end > 0 else len(TEXT)), (name, heading)


# ------------------------------------------------------------------ the worked layer


def test_scale_docstring_example_runs(scale_module):
    import doctest

    runner = doctest.DocTestRunner()
    for test in doctest.DocTestFinder().find(scale_module.Scale, "Scale",
                                             globs=dict(vars(scale_module))):
        runner.run(test)
    assert runner.summarize(verbose=False) == (0, 1)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_scale_in_a_sequential_matches_numpy(scale_module, dtype):
    Scale = scale_module.Scale
    rng = np.random.default_rng(0)
    model = numcnn.Sequential([Conv2D(3, 3, padding=1), Scale(0.5), ReLU(), MaxPool2D(2),
                               Flatten(), Dense(2)], input_shape=(2, 6, 6), dtype=dtype, seed=0)
    scale = model.get_layer("scale")
    a = rng.standard_normal(3)
    scale.params["a"][...] = a
    x = rng.standard_normal((5, 2, 6, 6)).astype(dtype)
    maps = model.intermediates(x, ["conv2d", "scale"])  # conv output: batch-innermost inside
    expected = maps["conv2d"] * a.astype(dtype)[None, :, None, None]
    np.testing.assert_array_equal(maps["scale"], expected)
    assert maps["scale"].dtype == np.dtype(dtype)
    alone = numcnn.Sequential([Scale()], input_shape=(3, 4), dtype=dtype)
    alone.get_layer("scale").params["a"][...] = a
    x2 = rng.standard_normal((4, 3, 4)).astype(dtype)
    y = alone.predict(x2)
    np.testing.assert_array_equal(y, x2 * a.astype(dtype)[None, :, None])
    assert y.dtype == np.dtype(dtype)


def test_scale_gradients_in_a_graph_match_central_differences(scale_module):
    """float64, with the layer shared by two steps (its gradients add up) and a fan-out."""
    Scale = scale_module.Scale
    rng = np.random.default_rng(1)
    x_in = Input((2, 5, 4), dtype="float64")
    s = Scale(name="s")
    h = s(Conv2D(3, (2, 3), name="conv")(x_in))
    y = Add()([s(h), h])  # s called twice; h read by two steps
    model = numcnn.Model(x_in, Dense(2, name="d")(Flatten()(y)), seed=0)
    s.params["a"][...] = rng.uniform(0.5, 1.5, 3) * np.array([1, -1, 1])
    model.need_input_grad = True
    x = rng.standard_normal((3, 2, 5, 4))
    R = rng.standard_normal((3, 2))
    model.forward(x, training=True)
    dx = model.backward(R)
    analytic = {q: lay.grads[k].copy() for q, lay, k in model.named_params()}

    def loss():
        return float((model.forward(x) * R).sum())

    assert set(analytic) == {"conv/W", "conv/b", "s/a", "d/W", "d/b"}
    check_grad(loss, x, dx, rtol=1e-6, atol=1e-8)
    for q, lay, k in model.named_params():
        check_grad(loss, lay.params[k], analytic[q], rtol=1e-6, atol=1e-8)


def test_scale_passes_the_layer_contract_with_the_docs_examples(scale_module):
    spec = importlib.util.spec_from_file_location(
        "_contract_for_architecture_doc", ROOT / "tests" / "layers" / "test_contract.py")
    contract = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(contract)
    examples = ast.literal_eval("{" + block("layer-examples") + "}")
    assert list(examples) == ["Scale"] and examples["Scale"]
    for example in examples["Scale"]:
        for dtype in ("float32", "float64"):
            contract.test_layer_contract(scale_module.Scale, example, dtype)
        contract.test_layer_builds_lazily_on_first_call(scale_module.Scale, example)
        contract.test_layer_rejects_wrong_input_shape(scale_module.Scale, example)


def test_scale_gauss_newton_rule(scale_module):
    from numcnn.layers.base import Call
    from numcnn.layers.gauss_newton import rule_for
    from numcnn.training.sdlm import gauss_newton_diagonal

    Scale = scale_module.Scale
    rng = np.random.default_rng(2)
    model = numcnn.Sequential([Scale(0.7)], input_shape=(3, 2, 2), dtype="float64")
    x = rng.standard_normal((4, 3, 2, 2))

    class HalfSquares:  # E = Σ y²/4 per element, so ∂²E/∂y² = 1/2 everywhere
        def forward(self, y_pred, y_true):
            self.shape = y_pred.shape
            return float((y_pred ** 2).sum() / 4)

        def backward_gn(self):
            return np.full(self.shape, 0.5)

    h = gauss_newton_diagonal(model, HalfSquares(), x, None)
    np.testing.assert_allclose(h["scale/a"], 0.5 * (x * x).sum(axis=(0, 2, 3)), rtol=1e-12)
    layer = model.get_layer("scale")
    call = Call(need_dx=True)
    layer.fprop(x, call)
    d2y = rng.uniform(0, 1, x.shape)
    d2x, hs = rule_for(layer)(layer, d2y, call)
    np.testing.assert_allclose(d2x, 0.49 * d2y, rtol=1e-12)
    np.testing.assert_allclose(hs["a"], (x * x * d2y).sum(axis=(0, 2, 3)), rtol=1e-12)


def test_the_docs_tests_for_scale_pass(scale_module):
    ns = run("tests", {"__name__": "test_scale_from_doc"})
    ns["test_scale_gradcheck_float64"]()
    for dtype in ("float32", "float64"):
        ns["test_scale_matches_torch"](dtype)


def test_the_docs_usage_example_runs_and_round_trips(scale_module, tmp_path):
    ns = run("usage", dict(vars(scale_module)))
    model, x = ns["model"], ns["x"]
    numcnn.save_model(model, tmp_path / "scale.npz")
    loaded = numcnn.load_model(tmp_path / "scale.npz")  # rebuilt through the registry
    assert type(loaded.get_layer("scale")) is scale_module.Scale
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    np.testing.assert_array_equal(loaded.optimizer.state["scale/a"]["v"],
                                  model.optimizer.state["scale/a"]["v"])


# ------------------------------------------------------------------ state and resuming


def test_the_resume_recipe_is_bit_identical_to_an_uninterrupted_run(tmp_path, monkeypatch):
    from numcnn.training import LearningRateScheduler

    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 3, 200)

    def make():
        m = numcnn.Sequential([Conv2D(4, 3), ReLU(), MaxPool2D(2), Flatten(),
                               Dropout(0.3, seed=1), Dense(3)], input_shape=(1, 8, 8), seed=0)
        m.compile(optimizer=numcnn.optimizers.SGD(lr=0.05, momentum=0.9))
        return m

    whole = make()
    whole.fit(x, y, batch_size=64, epochs=3, seed=7, verbose=0, processes=1,
              callbacks=[LearningRateScheduler("step:step_size=1,gamma=0.5")])
    monkeypatch.chdir(tmp_path)
    with num_threads(1):  # the recipe's fit calls run in one process
        ns = run("resume", {"numcnn": numcnn, "LearningRateScheduler": LearningRateScheduler,
                            "model": make(), "x": x, "y": y})
    resumed = ns["model"]
    assert resumed is not whole and resumed.trainer.epoch == 3
    for q, w in whole.get_weights().items():
        np.testing.assert_array_equal(resumed.get_weights()[q], w, err_msg=q)
