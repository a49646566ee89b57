"""The documentation of the export stays true: ``docs/onnx.md``'s converter table is the
registry's (generated, so it cannot drift), and the examples of the README and of
``docs/onnx.md`` run as written."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from numcnn.onnx.converters import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET, converter_table

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "onnx.md").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")

pytest.importorskip("onnx")


def _block(text: str, heading: str) -> str:
    section = text[text.index(heading):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_converter_table_is_the_registry():
    table = DOC.split("<!-- converters:begin -->\n")[1].split("<!-- converters:end -->")[0]
    assert table == converter_table(), "regenerate it: numcnn.onnx.converters.converter_table()"
    assert f"**opset**: {MIN_OPSET} to {MAX_OPSET}" in DOC
    assert f"default {DEFAULT_OPSET}" in DOC


def test_readme_example_runs(tmp_path, monkeypatch, capsys):
    pytest.importorskip("onnxruntime")
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(compile(_block(README, "## ONNX"), "README.md", "exec"), ns)
    assert (tmp_path / "lenet5.onnx").is_file()
    err = float(capsys.readouterr().out)
    assert err < 1e-5 and ns["y"].shape == (7, 10)
    np.testing.assert_allclose(ns["y"], ns["model"].predict(ns["x"]), rtol=1e-5, atol=1e-6)


def test_docs_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(compile(_block(DOC, "## Export"), "docs/onnx.md", "exec"), ns)
    assert (tmp_path / "lenet5.onnx").is_file() and (tmp_path / "lenet5_9.onnx").is_file()
    assert ns["proto"].opset_import[0].version == DEFAULT_OPSET
