"""The README's Python example runs as written (on an MNIST slice, to stay fast)."""

from __future__ import annotations

import os
import re
from pathlib import Path

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
