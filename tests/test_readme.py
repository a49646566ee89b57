"""The README's Python example runs as written (on an MNIST slice, to stay fast)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
MNIST_DIR = os.environ.get("NUMCNN_DATA_DIR")


@pytest.mark.mnist
@pytest.mark.skipif(not (MNIST_DIR and os.path.isdir(MNIST_DIR)),
                    reason="MNIST not available: set NUMCNN_DATA_DIR to the IDX files")
def test_python_api_example_runs(tmp_path, monkeypatch, capsys):
    from numcnn.datasets import mnist

    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Python API"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    real = mnist.load_data

    def sliced(*args, **kwargs):
        (xa, ya), (xb, yb) = real(*args, **kwargs)
        return (xa[:6000], ya[:6000]), (xb[:1000], yb[:1000])

    monkeypatch.setattr(mnist, "load_data", sliced)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    assert namespace["history"].history["val_accuracy"][-1] >= 0.9
    assert (tmp_path / "lenet5.npz").is_file()
    same = namespace["same"]
    x = namespace["x_test"][:50]
    assert (same.predict(x) == namespace["model"].predict(x)).all()


def test_functional_api_example_runs(capsys):
    """The residual example of "Graphs: the Functional API" runs as written."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Graphs: the Functional API"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    model, maps = namespace["model"], namespace["maps"]
    assert "Connected to" in capsys.readouterr().out
    assert maps["conv2d"].shape == (4, 8, 28, 28) and maps["conv2d"].flags.c_contiguous
    assert maps["add"].shape == (4, 8, 14, 14)
    feats = namespace["features"].predict(namespace["xs"][:4])
    np.testing.assert_array_equal(feats, maps["add"])  # the sub-model shares the weights
    assert model.count_params() == 8 * 10 + 2 * (8 * 73) + 392 * 10 + 10
