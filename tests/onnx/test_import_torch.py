"""PyTorch → ONNX → numcnn (issue 14): stock ``torch.nn`` twins — a LeNet-5, a small
ResNet block, a bidirectional LSTM and a GRU — exported by ``torch.onnx.export`` (the
TorchScript exporter, ``dynamo=False``, opsets 13 and 17, a free batch size), imported by
``numcnn.onnx.load``:

* the outputs equal PyTorch's, batches of 1 and 7: in float64 to 1e-10, in float32 as close
  to PyTorch's float64 result as PyTorch's own float32 result is (4× its error, plus a few
  ulps of the output's magnitude for other summation orders);
* one ``fit`` step (SGD, a batch of 5, in float64) leaves every weight — and BatchNorm's
  running statistics — where the same step leaves PyTorch's.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import numcnn
import numcnn.onnx

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
nn = torch.nn
EPS32 = float(np.finfo(np.float32).eps)


class LeNet5(nn.Module):
    """The modern LeNet-5: tanh, average then max pooling, ``x.view(x.size(0), -1)``."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, 5, padding=2)
        self.s2 = nn.AvgPool2d(2)
        self.c3 = nn.Conv2d(6, 16, 5)
        self.s4 = nn.MaxPool2d(2)
        self.f5 = nn.Linear(400, 120)
        self.f6 = nn.Linear(120, 84)
        self.out = nn.Linear(84, 10)

    def forward(self, x):
        x = self.s4(torch.tanh(self.c3(self.s2(torch.tanh(self.c1(x))))))
        x = x.view(x.size(0), -1)
        return self.out(torch.relu(self.f6(torch.relu(self.f5(x)))))


class ResBlock(nn.Module):
    """A ResNet basic block with a projection shortcut, then global pooling and a head."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.proj = nn.Conv2d(3, 8, 1, stride=2, bias=False)
        self.bnp = nn.BatchNorm2d(8)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(self.bn2(self.conv2(y)) + self.bnp(self.proj(x)))
        return self.fc(torch.flatten(self.pool(y), 1))


class BiLSTM(nn.Module):
    """A bidirectional LSTM over (N, T, F) and a linear read-out at every step."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 5, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(10, 2)

    def forward(self, x):
        y, _ = self.lstm(x)
        return self.fc(y)


class GRUHead(nn.Module):
    """A GRU whose last state feeds a linear layer (time-major with ``batch_first=False``)."""

    def __init__(self, batch_first=True):
        super().__init__()
        self.gru = nn.GRU(3, 4, batch_first=batch_first)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        _, h = self.gru(x)
        return self.fc(h[0])


def _input(name, n, rng):
    shape = {"lenet5": (n, 1, 28, 28), "resblock": (n, 3, 9, 9), "bilstm": (n, 6, 3),
             "gru": (n, 6, 3), "gru_time_major": (6, n, 3)}[name]
    return rng.standard_normal(shape)


def _net(name):
    torch.manual_seed(0)
    net = {"lenet5": LeNet5, "resblock": ResBlock, "bilstm": BiLSTM, "gru": GRUHead,
           "gru_time_major": lambda: GRUHead(batch_first=False)}[name]()
    if name == "resblock":  # running statistics that are not the initial 0 and 1
        with torch.no_grad():
            for bn in (net.bn1, net.bn2, net.bnp):
                bn.running_mean.uniform_(-0.5, 0.5)
                bn.running_var.uniform_(0.5, 2.0)
    return net.eval()


def _export(net, name, path, opset, preserve=True):
    x = torch.tensor(_input(name, 2, np.random.default_rng(0)), dtype=torch.float32)
    batch_axis = 1 if name == "gru_time_major" else 0
    dyn = {"x": {batch_axis: "N"}, "y": {0: "N"}}
    if name in ("bilstm", "gru", "gru_time_major"):
        dyn["x"][1 - batch_axis] = "T"  # a free sequence length too
    if name == "bilstm":
        dyn["y"][1] = "T"
    kwargs = {"training": torch.onnx.TrainingMode.PRESERVE} if preserve else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x,), str(path), dynamo=False, opset_version=opset,
                          input_names=["x"], output_names=["y"], dynamic_axes=dyn, **kwargs)
    return path


NAMES = ["lenet5", "resblock", "bilstm", "gru"]


@pytest.mark.parametrize("opset", [13, 17])
@pytest.mark.parametrize("name", NAMES)
def test_imported_models_compute_pytorchs_outputs(name, opset, tmp_path):
    net = _net(name)
    path = _export(net, name, tmp_path / f"{name}.onnx", opset)
    m32 = numcnn.onnx.load(path)
    m64 = numcnn.onnx.load(path, dtype="float64")
    assert m32.dtype == np.float32 and m64.dtype == np.float64
    rng = np.random.default_rng(1)
    for n in (1, 7):
        x = _input(name, n, rng)
        with torch.no_grad():
            ref64 = net.double()(torch.tensor(x)).numpy()
            ref32 = net.float()(torch.tensor(x, dtype=torch.float32)).numpy()
        got64 = m64.predict(x, batch_size=None)
        got32 = m32.predict(x.astype(np.float32), batch_size=None)
        assert got32.dtype == np.float32 and got32.shape == ref64.shape
        scale = max(float(np.abs(ref64).max()), 1.0)
        np.testing.assert_allclose(got64, ref64, rtol=0, atol=1e-10 * scale)
        allowed = 4 * float(np.abs(ref32 - ref64).max()) + 16 * EPS32 * scale
        assert float(np.abs(got32 - ref64).max()) <= allowed, (name, n)


def _pairs(name, model):
    """(torch parameter, numcnn array, how torch's layout becomes numcnn's)."""
    T = np.transpose
    L = {"lenet5": [("c1", "Conv", "W", "b", None), ("c3", "Conv", "W", "b", None),
                    ("f5", "Gemm", "W", "b", T), ("f6", "Gemm", "W", "b", T),
                    ("out", "Gemm", "W", "b", T)],
         "resblock": [("conv1", "Conv", "W", None, None), ("conv2", "Conv", "W", None, None),
                      ("proj", "Conv", "W", None, None), ("fc", "Gemm", "W", "b", T)],
         "bilstm": [("fc", "MatMul", "B", None, T)],
         "gru": [("fc", "Gemm", "W", "b", T)]}[name]
    out = []
    for module, op, wkey, bkey, f in L:
        layer = model.get_layer(f"{module}.{op}")
        out.append((f"{module}.weight", layer.params[wkey], f))
        if bkey:
            out.append((f"{module}.bias", layer.params[bkey], None))
    if name == "bilstm":
        out.append(("fc.bias", model.get_layer("fc.Add").params["c"], None))
        rec = model.get_layer("lstm.LSTM")
        for k, t in (("W_ih", "weight_ih_l0"), ("W_hh", "weight_hh_l0"),
                     ("b_ih", "bias_ih_l0"), ("b_hh", "bias_hh_l0")):
            out += [(f"lstm.{t}", rec.params[k], None),
                    (f"lstm.{t}_reverse", rec.params[k + "_reverse"], None)]
    if name == "gru":
        rec = model.get_layer("gru.GRU")
        for k, t in (("W_ih", "weight_ih_l0"), ("W_hh", "weight_hh_l0"),
                     ("b_ih", "bias_ih_l0"), ("b_hh", "bias_hh_l0")):
            out.append((f"gru.{t}", rec.params[k], None))
    if name == "resblock":
        for bn in ("bn1", "bn2", "bnp"):
            layer = model.get_layer(f"{bn}.BatchNormalization")
            out += [(f"{bn}.weight", layer.params["gamma"], None),
                    (f"{bn}.bias", layer.params["beta"], None),
                    (f"{bn}.running_mean", layer.buffers["running_mean"], None),
                    (f"{bn}.running_var", layer.buffers["running_var"], None)]
    return out


@pytest.mark.parametrize("name", NAMES)
def test_one_fit_step_equals_pytorchs(name, tmp_path):
    net = _net(name)
    path = _export(net, name, tmp_path / f"{name}.onnx", 17)
    model = numcnn.onnx.load(path, dtype="float64")
    rng = np.random.default_rng(2)
    x = _input(name, 5, rng)
    classes = {"lenet5": 10, "resblock": 4, "gru": 3}
    net = net.double()
    with torch.no_grad():
        shape = tuple(net(torch.tensor(x)).shape)
    net.train()
    params = dict(net.named_parameters())
    params.update(dict(net.named_buffers()))
    pairs = _pairs(name, model)
    for tname, arr, f in pairs:  # the import carried PyTorch's weights over
        ref = params[tname].detach().numpy()
        np.testing.assert_allclose(arr, f(ref) if f else ref, rtol=1e-7, err_msg=tname)
    if name in classes:
        y = rng.integers(0, classes[name], 5)
        model.compile(numcnn.optimizers.SGD(lr=0.1), "softmax_cross_entropy", metrics=[])
        loss = nn.functional.cross_entropy(net(torch.tensor(x)), torch.tensor(y))
    else:
        y = rng.standard_normal(shape)
        model.compile(numcnn.optimizers.SGD(lr=0.1), "mse", metrics=[])
        loss = nn.functional.mse_loss(net(torch.tensor(x)), torch.tensor(y))
    net.zero_grad()
    loss.backward()
    torch.optim.SGD(net.parameters(), lr=0.1).step()
    model.fit(x, y, batch_size=5, epochs=1, shuffle=False, verbose=0)
    for tname, arr, f in pairs:
        ref = params[tname].detach().numpy()
        np.testing.assert_allclose(arr, f(ref) if f else ref, rtol=1e-9, atol=1e-12,
                                   err_msg=tname)


def test_a_time_major_graph_is_refused_by_default_and_runs_whole(tmp_path):
    """A (T, N, F) input: predict() would split along time, so load() asks first."""
    net = _net("gru_time_major")
    path = _export(net, "gru_time_major", tmp_path / "gru.onnx", 17)
    with pytest.raises(numcnn.onnx.importer.OnnxImportError, match="batch_first=False"):
        numcnn.onnx.load(path)
    model = numcnn.onnx.load(path, dtype="float64", batch_first=False)
    x = _input("gru_time_major", 4, np.random.default_rng(3))
    with torch.no_grad():
        ref = net.double()(torch.tensor(x)).numpy()
    np.testing.assert_allclose(model.forward(x), ref, rtol=0, atol=1e-12)


def test_bn_folded_into_the_convolutions_by_the_exporter(tmp_path):
    """PyTorch's default export folds BatchNorm into the convolutions (float32 weights): the
    float32 import is as close to PyTorch as PyTorch's own float32 result."""
    net = _net("resblock")
    path = _export(net, "resblock", tmp_path / "folded.onnx", 17, preserve=False)
    model = numcnn.onnx.load(path)
    assert not any("BatchNormalization" in lay.name for lay in model.layers)
    x = _input("resblock", 7, np.random.default_rng(4))
    with torch.no_grad():
        ref64 = net.double()(torch.tensor(x)).numpy()
        ref32 = net.float()(torch.tensor(x, dtype=torch.float32)).numpy()
    got = model.predict(x.astype(np.float32))
    allowed = 4 * float(np.abs(ref32 - ref64).max()) + 16 * EPS32 * max(np.abs(ref64).max(), 1)
    assert float(np.abs(got - ref64).max()) <= allowed
