"""``examples/self_taught_learning.py --quick``: the small version of UFLDL's two exercises
on an MNIST slice, run end to end (the full run is recorded in the README and
docs/self_taught.md): its last two lines, accuracies well above chance with features learned
without labels, and the two bases pictures."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "self_taught_learning.py"


def _load():
    spec = importlib.util.spec_from_file_location("example_self_taught", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.mnist
def test_quick_run_prints_both_accuracies_last(tmp_path, capsys):
    data = os.environ.get("NUMCNN_DATA_DIR")
    if not data or not Path(data).is_dir():
        pytest.skip("MNIST not available: set NUMCNN_DATA_DIR to the directory of the IDX files")
    figure = tmp_path / "bases.png"
    _load().main(["--quick", "--data-dir", data, "--figure", str(figure)])
    lines = capsys.readouterr().out.strip().splitlines()
    m1 = re.fullmatch(r"self-taught test accuracy: (\d+\.\d\d) %", lines[-2])
    m2 = re.fullmatch(r"convolution\+pooling test accuracy: (\d+\.\d\d) %", lines[-1])
    assert m1 and m2, lines[-2:]
    # measured (seed 0): 89.85 % (5 classes) and 91.67 % (10 classes) from 40 L-BFGS
    # iterations on 2,000 images; chance is 20 % and 10 %
    assert float(m1.group(1)) > 80 and float(m2.group(1)) > 80
    assert any("J = " in line and "sparsity_loss" in line for line in lines)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert figure.stat().st_size > 1000
    assert (tmp_path / "bases_patches.png").stat().st_size > 1000
