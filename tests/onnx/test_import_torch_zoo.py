"""PyTorch → ONNX → numcnn for the classic networks (issue 14): the stock ``torch.nn`` twins of
the zoo (``benchmarks/zoo_twins.py``, the ones ``tests/models/test_zoo.py`` checks numcnn's
zoo against), with random weights and running statistics, exported by ``torch.onnx.export``
(``dynamo=False``, opset 17, a free batch size) and imported by ``numcnn.onnx.load``: the
imported model's float64 outputs equal PyTorch's to 1e-9 of their scale, batches of 1 and 3.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import numcnn.onnx

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from zoo_twins import BasicBlock, GoogLeNet, ResNet, vgg_twin  # noqa: E402

CASES = {  # name: (the twin, one input's shape)
    "resnet20": (lambda: ResNet(BasicBlock, (3, 3, 3), 1, 10, cifar=True), (1, 28, 28)),
    "resnet18": (lambda: ResNet(BasicBlock, (2, 2, 2, 2), 3, 7), (3, 32, 32)),
    "small_vgg_bn": (lambda: vgg_twin([8, 8, "M", 16, "M"], True, 1, 10, (32,), None),
                     (1, 28, 28)),
    "googlenet": (lambda: GoogLeNet(1, 10, False), (1, 28, 28)),
}


def _twin(name):
    torch.manual_seed(0)
    net = CASES[name][0]().eval()
    with torch.no_grad():
        net(torch.zeros((1,) + CASES[name][1]))  # sizes any lazy layer
        for m in net.modules():  # running statistics that are not the initial 0 and 1
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return net


@pytest.mark.parametrize("name", list(CASES))
def test_imported_classic_networks_compute_pytorchs_outputs(name, tmp_path):
    net = _twin(name)
    path = tmp_path / f"{name}.onnx"
    x0 = torch.zeros((2,) + CASES[name][1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x0,), str(path), dynamo=False, opset_version=17,
                          input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "N"}, "y": {0: "N"}},
                          training=torch.onnx.TrainingMode.PRESERVE)  # BN kept, not folded
    model = numcnn.onnx.load(path, dtype="float64")
    rng = np.random.default_rng(1)
    net = net.double()
    for n in (1, 3):
        x = rng.standard_normal((n,) + CASES[name][1])
        with torch.no_grad():
            ref = net(torch.tensor(x)).numpy()
        got = model.predict(x, batch_size=None)
        assert got.shape == ref.shape
        scale = max(float(np.abs(ref).max()), 1.0)
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-9 * scale)
