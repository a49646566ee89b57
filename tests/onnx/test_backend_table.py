"""The conformance lists and their documentation stay true (issue 14): the patterns of
``conformance_lists.py`` name exactly the one-node tests of each operator numcnn imports,
the tables in ``docs/onnx.md`` and the README are the ones those lists give, every test
left out is documented with its reason, and the Import examples run as written."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")

from conformance_lists import (  # noqa: E402
    EXCLUDED,
    OPERATORS,
    model_table,
    node_cases,
    operator_of,
    table,
)

from numcnn.onnx.import_ops import SUPPORTED  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "onnx.md").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _between(text: str, tag: str) -> str:
    return text.split(f"<!-- {tag}:begin -->\n")[1].split(f"<!-- {tag}:end -->")[0]


def test_every_supported_operator_has_its_node_tests():
    assert set(OPERATORS) == set(SUPPORTED)
    cases = node_cases()
    assert all(cases[op] for op in OPERATORS), [op for op in OPERATORS if not cases[op]]
    assert set(EXCLUDED) <= {n for names in cases.values() for n in names}


def test_the_patterns_name_exactly_the_one_node_tests_of_each_operator():
    """Every generated node test whose graph is one node of a supported operator belongs to
    that operator (tests named ``_expanded`` are another operator's function body), and
    every test the patterns name is a one-node graph of its operator."""
    from onnx.backend.test.loader import load_node_model_tests

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = load_node_model_tests()
    for c in cases:
        nodes = c.model.graph.node
        op = operator_of(c.name)
        single = nodes[0].op_type if len(nodes) == 1 else None
        if single in SUPPORTED and "_expanded" not in c.name:
            assert op == single, (c.name, single, op)
        if op is not None:
            assert single == op, (c.name, [n.op_type for n in nodes], op)


def test_the_documented_tables_are_the_lists():
    expected = table() + "\n\n" + model_table() + "\n"
    assert _between(DOC, "conformance") == expected, \
        "regenerate: python tests/onnx/conformance_lists.py"
    assert _between(README, "conformance") == expected
    excluded = _between(DOC, "excluded")
    for name, reason in EXCLUDED.items():
        assert f"- `{name}`: {reason}." in excluded


def _block(text: str, heading: str) -> str:
    section = text[text.index(heading):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_docs_import_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(compile(_block(DOC, "## Import"), "docs/onnx.md", "exec"), ns)
    assert ns["y"].shape == (7, 10)
    assert type(ns["model"].get_layer("conv2d")).__name__ == "Conv2D"


def test_the_readme_import_example_runs(tmp_path, monkeypatch, capsys):
    pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter's
        exec(compile(_block(README, "### Import"), "README.md", "exec"), ns)
    err = float(capsys.readouterr().out)
    assert err < 1e-5
    kinds = [type(lay).__name__ for lay in ns["model"].layers]
    assert kinds == ["Conv2D", "ReLU", "Flatten", "Dense"]
    np.testing.assert_allclose(ns["model"].predict(ns["x"].numpy()),
                               ns["net"](ns["x"]).detach().numpy(), rtol=1e-4, atol=1e-5)
