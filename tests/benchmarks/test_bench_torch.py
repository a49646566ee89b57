"""The benchmark's PyTorch twins compute what numcnn computes: same outputs, same gradients.

For the 1998 LeNet-5 this is also a PyTorch parity check of its own layers (rescale, pad,
Table I connections, trainable subsampling, scaled tanh, RBF output) inside a whole net.
The benchmark lives in ``benchmarks/`` (``torch_twins.py``, ``bench.py``), which
``conftest.py`` puts on ``sys.path``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from numcnn import models

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from torch_twins import torch_twin  # noqa: E402


@pytest.mark.parametrize("name", ["lenet5", "lenet5-1998"])
def test_twin_matches_outputs_and_gradients(name):
    net = models.get(name, seed=0, dtype="float64")
    net.compile(optimizer="sgd", loss="softmax_cross_entropy")
    module, opt = torch_twin(net, lr=0.05, momentum=0.9)
    rng = np.random.default_rng(0)
    x = rng.random((6, 1, 28, 28)) * (255 if name == "lenet5-1998" else 1)
    y = rng.integers(0, 10, 6)

    out = net.forward(x, training=True)
    loss = net.loss.forward(out, y)
    net.backward(net.loss.backward())
    tout = module(torch.tensor(x))
    tloss = torch.nn.functional.cross_entropy(tout, torch.tensor(y))
    tloss.backward()

    np.testing.assert_allclose(out, tout.detach().numpy(), rtol=1e-10, atol=1e-10)
    assert loss == pytest.approx(tloss.item(), rel=1e-10)
    theirs = [p.grad.numpy() for p in opt.param_groups[0]["params"]]
    ours = list(net.trainable_grads().values())
    assert len(ours) == len(theirs)
    for g, t in zip(ours, theirs):
        np.testing.assert_allclose(g, t.T if g.ndim == 2 else t, rtol=1e-8, atol=1e-12)


def test_c3_twin_gives_absent_kernels_zero_gradient():
    net = models.get("lenet5-1998", seed=1, dtype="float64")
    module, _ = torch_twin(net, lr=0.05, momentum=0.9)
    c3 = module[6]
    module(torch.rand(2, 1, 28, 28, dtype=torch.float64) * 255).sum().backward()
    absent = ~models.LENET5_C3_TABLE.T  # (16 output maps, 6 input maps)
    assert absent.sum() == 16 * 6 - 60  # Table I: 60 of 96 kernels are present
    assert np.all(c3.weight.grad.numpy()[absent] == 0)
    assert np.all(np.abs(c3.weight.grad.numpy()[~absent]).sum(axis=(1, 2)) > 0)


def test_benchmark_imports_torch_only_when_it_compares():
    # `--no-torch` runs without PyTorch installed: importing the benchmark must not need it
    code = (f"import sys; sys.path.insert(0, {str(BENCHMARKS)!r}); import bench; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_onnx_runtime_session_computes_the_same_network():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from bench import onnx_session

    net = models.get("lenet5", seed=0)
    module, _ = torch_twin(net, lr=0.05, momentum=0.9)
    sess, why = onnx_session(module, threads=1)
    assert sess is not None, why
    x = np.random.default_rng(0).random((5, 1, 28, 28), dtype=np.float32)
    (got,) = sess.run(None, {"x": x})
    np.testing.assert_allclose(got, net.predict(x), rtol=1e-4, atol=1e-5)


def test_summary_line_compares_numcnn_with_onnx_runtime(capsys):
    from bench import _row, print_table

    rows = [_row("infer images/s (batch 1000)", 1, 1000, "img/s", [30000.0], [10000.0],
                 higher_better=True),
            _row("onnxruntime infer images/s", 1, 1000, "img/s", [45000.0], [10000.0],
                 higher_better=True, left="onnxruntime")]
    print_table(rows)
    last = capsys.readouterr().out.strip().splitlines()[-1]
    # numcnn's time over PyTorch's is 10000/30000; over ONNX Runtime's 45000/30000
    assert "infer 1t/b1000 0.333" in last and "numcnn/onnxruntime infer 1t/b1000 1.5" in last
