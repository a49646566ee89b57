"""Multiply-accumulates (``numcnn.models.flops``) and the shape-only walk (``models.walk``).

References, never the code compared with itself: PyTorch's own counter
(``torch.utils.flop_counter.FlopCounterMode`` reports 2 FLOPs per MAC of a convolution or a
matrix product, nothing for element-wise ops, pooling or normalisation) run on the same
operation, counts worked out by hand, the course's figures and LeNet-5's connections
(LeCun et al. 1998: connections = MACs + bias terms).
"""

from __future__ import annotations

import inspect
import json
import re
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import numcnn
from layer_examples import LAYER_EXAMPLES
from numcnn import cli
from numcnn.layers import (
    LAYERS,
    Add,
    AvgPool2D,
    BatchNorm2D,
    Concatenate,
    Conv2D,
    Dense,
    Flatten,
    Input,
    Layer,
    MaxPool2D,
    RBFOutput,
    ReLU,
    Subsampling2D,
    Tanh,
    WeightedPool2D,
    serialize,
)
from numcnn.models import (
    LENET5_C3_TABLE,
    MACS,
    count_macs,
    count_params,
    flops,
    layer_macs,
    register_macs,
    summary_of,
    walk,
)
from numcnn.models.flops import formula_for, prod


def torch_macs(fn, *args, batch=1):
    """MACs per sample of ``fn(*args)`` by PyTorch's counter (FLOPs / 2 / batch)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        out = fn(*args)
    flops = fc.get_total_flops()
    assert flops % (2 * batch) == 0
    return flops // (2 * batch), out


def built(layer, shape, seed=0):
    layer.set_dtype("float64")
    layer.build(shape, np.random.default_rng(seed))
    return layer


# ------------------------------------------------------------------ layer by layer
CONV_CASES = [
    ({"out_channels": 6, "kernel_size": 5, "padding": 2}, (1, 28, 28)),
    ({"out_channels": 3, "kernel_size": (3, 2), "stride": (2, 1), "padding": (1, 0, 0, 1)},
     (2, 7, 6)),
    ({"out_channels": 4, "kernel_size": 3, "padding": "same", "use_bias": False}, (3, 9, 8)),
    ({"out_channels": 2, "kernel_size": (2, 3), "stride": 2, "padding": (1, 2)}, (3, 6, 5)),
    ({"out_channels": 5, "kernel_size": 1}, (7, 4, 4)),
]


@pytest.mark.parametrize("kwargs, shape", CONV_CASES)
def test_conv2d_macs_match_torch(kwargs, shape):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    expected_hand = None
    layer = Conv2D(**kwargs)
    macs = layer_macs(layer, shape)  # unbuilt: shapes only
    assert not layer.built
    built(layer, shape)
    t, b, le, r = layer.pads
    x = np.random.default_rng(1).standard_normal((2, *shape))
    W = torch.tensor(layer.params["W"])
    bias = torch.tensor(layer.params["b"]) if layer.use_bias else None
    ref, y = torch_macs(lambda: F.conv2d(F.pad(torch.tensor(x), (le, r, t, b)), W, bias,
                                         stride=layer.stride), batch=2)
    np.testing.assert_allclose(layer.forward(x), y.numpy(), rtol=1e-10, atol=1e-12)
    F_, Ho, Wo = layer.output_shape(shape)
    expected_hand = F_ * Ho * Wo * shape[0] * layer.kernel_size[0] * layer.kernel_size[1]
    assert macs == ref == expected_hand


@pytest.mark.parametrize("groups, cin, cout", [(2, 4, 6), (3, 3, 3), (4, 8, 4)])
def test_conv2d_groups_match_torch(groups, cin, cout):
    """Grouped convolution (AlexNet's two columns, depthwise): runs once Conv2D has it."""
    torch = pytest.importorskip("torch")
    if "groups" not in inspect.signature(Conv2D).parameters:
        pytest.skip("Conv2D(groups=...) is not implemented yet")
    F = torch.nn.functional
    layer = Conv2D(cout, (3, 2), stride=(1, 2), padding=1, groups=groups)
    shape = (cin, 7, 6)
    macs = layer_macs(layer, shape)
    built(layer, shape)
    x = torch.randn(1, cin, 7, 6, dtype=torch.float64)
    W, b = torch.tensor(layer.params["W"]), torch.tensor(layer.params["b"])
    ref, y = torch_macs(lambda: F.conv2d(x, W, b, stride=(1, 2), padding=1, groups=groups))
    np.testing.assert_allclose(layer.forward(x.numpy()), y.numpy(), rtol=1e-10, atol=1e-12)
    _, Ho, Wo = layer.output_shape(shape)
    assert macs == ref == cout * Ho * Wo * (cin // groups) * 3 * 2


def test_conv2d_connection_table_counts_present_kernels_only():
    """LeNet-5's C3: 60 of 96 kernels; torch runs one convolution per output map on the
    maps it reads, so it counts exactly the present kernels."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    layer = Conv2D(16, 5, connection_table=LENET5_C3_TABLE)
    shape = (6, 14, 14)
    macs = layer_macs(layer, shape)
    assert macs == 10 * 10 * 60 * 25 == 150_000
    built(layer, shape)
    x = torch.tensor(np.random.default_rng(2).standard_normal((1, *shape)))
    W, b = torch.tensor(layer.params["W"]), torch.tensor(layer.params["b"])
    reads = [np.flatnonzero(np.asarray(LENET5_C3_TABLE)[:, o]).tolist() for o in range(16)]

    def per_map():
        return torch.cat([F.conv2d(x[:, reads[o]], W[o:o + 1, reads[o]], b[o:o + 1])
                          for o in range(16)], 1)

    ref, y = torch_macs(per_map)
    np.testing.assert_allclose(layer.forward(x.numpy()), y.numpy(), rtol=1e-10, atol=1e-12)
    assert macs == ref
    # a dense convolution over the zeroed kernels would count 16·6 kernels: 240,000
    assert layer_macs(Conv2D(16, 5), shape) == 240_000


@pytest.mark.parametrize("use_bias", [True, False])
def test_dense_macs_match_torch(use_bias):
    torch = pytest.importorskip("torch")
    layer = Dense(7, use_bias=use_bias)
    macs = layer_macs(layer, (11,))
    built(layer, (11,))
    x = torch.randn(3, 11, dtype=torch.float64)
    W = torch.tensor(layer.params["W"]).T
    b = torch.tensor(layer.params["b"]) if use_bias else None
    ref, _ = torch_macs(lambda: torch.nn.functional.linear(x, W, b), batch=3)
    assert macs == ref == 11 * 7


@pytest.mark.parametrize("p, shape", [(2, (6, 28, 28)), (3, (2, 7, 8))])
def test_subsampling_counts_as_the_depthwise_convolution_it_equals(p, shape):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    layer = Subsampling2D(p)
    macs = layer_macs(layer, shape)
    built(layer, shape)
    C = shape[0]
    coef, b = torch.tensor(layer.params["coef"]), torch.tensor(layer.params["b"])
    x = torch.tensor(np.random.default_rng(3).standard_normal((1, *shape)))
    W = coef.view(C, 1, 1, 1).expand(C, 1, p, p).contiguous()
    ref, y = torch_macs(lambda: F.conv2d(x, W, b, stride=p, groups=C))
    np.testing.assert_allclose(layer.forward(x.numpy()), y.numpy(), rtol=1e-10, atol=1e-12)
    assert macs == ref == C * (shape[1] // p) * (shape[2] // p) * p * p


def test_weighted_pool_counts_as_a_fixed_depthwise_convolution():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    layer = WeightedPool2D(3, stride=2, padding=1, sigma=0.8)
    shape = (2, 7, 7)
    macs = layer_macs(layer, shape)
    built(layer, shape)
    t, b, le, r = layer.pads
    x = torch.tensor(np.random.default_rng(4).standard_normal((1, *shape)))
    W = torch.tensor(layer.weights).expand(2, 1, 3, 3).contiguous()
    ref, y = torch_macs(lambda: F.conv2d(F.pad(x, (le, r, t, b)), W, stride=2, groups=2))
    np.testing.assert_allclose(layer.forward(x.numpy()), y.numpy(), rtol=1e-10, atol=1e-12)
    assert macs == ref == 2 * 4 * 4 * 9


def test_rbf_output_counts_one_mac_per_centre_weight():
    """‖x − w_i‖² = ‖x‖² − 2 x·w_i + ‖w_i‖²: the cross term is the matrix product."""
    torch = pytest.importorskip("torch")
    layer = RBFOutput(10)
    macs = layer_macs(layer, (84,))
    built(layer, (84,))
    x = torch.randn(1, 84, dtype=torch.float64)
    W = torch.tensor(layer.params["W"])
    ref, y = torch_macs(lambda: (x * x).sum(1, keepdim=True) - 2 * x @ W.T + (W * W).sum(1))
    np.testing.assert_allclose(layer.forward(x.numpy()), y.numpy(), rtol=1e-10, atol=1e-10)
    assert macs == ref == 840


def _zero_cases():
    """(numcnn layer name, kwargs, per-sample shape, torch op on x) for the layers that count
    no MACs — PyTorch's counter counts none for the same ops."""
    import torch
    F = torch.nn.functional
    return [
        ("ReLU", {}, (3, 5, 5), F.relu),
        ("LeakyReLU", {"alpha": 0.1}, (3, 5, 5), lambda x: F.leaky_relu(x, 0.1)),
        ("Sigmoid", {}, (7,), torch.sigmoid),
        ("Tanh", {}, (7,), torch.tanh),
        ("ScaledTanh", {}, (7,), lambda x: 1.7159 * torch.tanh(2 / 3 * x)),
        ("Softmax", {}, (7,), lambda x: F.softmax(x, 1)),
        ("MaxPool2D", {"pool_size": 3, "stride": 2, "padding": 1}, (2, 7, 7),
         lambda x: F.max_pool2d(x, 3, 2, 1)),
        ("AvgPool2D", {"pool_size": 2}, (2, 6, 6), lambda x: F.avg_pool2d(x, 2)),
        ("LpPool2D", {"p": 2, "pool_size": 2}, (2, 6, 6), lambda x: F.lp_pool2d(x, 2, 2)),
        ("GlobalAvgPool2D", {}, (3, 4, 5), lambda x: F.adaptive_avg_pool2d(x, 1).flatten(1)),
        ("GlobalMaxPool2D", {}, (3, 4, 5), lambda x: F.adaptive_max_pool2d(x, 1).flatten(1)),
        ("AdaptiveAvgPool2D", {"output_size": (2, 3)}, (3, 5, 7),
         lambda x: F.adaptive_avg_pool2d(x, (2, 3))),
        ("AdaptiveMaxPool2D", {"output_size": 2}, (3, 5, 7),
         lambda x: F.adaptive_max_pool2d(x, 2)),
        ("BatchNorm2D", {}, (3, 4, 5),
         lambda x: F.batch_norm(x, torch.zeros(3, dtype=x.dtype), torch.ones(3, dtype=x.dtype),
                                torch.ones(3, dtype=x.dtype), torch.zeros(3, dtype=x.dtype))),
        ("BatchNorm1D", {}, (6,),
         lambda x: F.batch_norm(x, torch.zeros(6, dtype=x.dtype), torch.ones(6, dtype=x.dtype))),
        ("LocalResponseNorm", {"size": 3}, (5, 3, 3), lambda x: F.local_response_norm(x, 3)),
        ("Dropout", {"rate": 0.3}, (4, 5), lambda x: F.dropout(x, 0.3, training=False)),
        ("Rescale", {"scale": 0.5, "offset": -0.1}, (2, 3, 3), lambda x: 0.5 * x - 0.1),
        ("Flatten", {}, (2, 3, 4), lambda x: x.flatten(1)),
        ("Reshape", {"target_shape": (3, -1)}, (2, 3, 2), lambda x: x.reshape(1, 3, -1)),
        ("Pad2D", {"padding": 2}, (1, 2, 2), lambda x: F.pad(x, (2, 2, 2, 2))),
        ("PadChannels", {"before": 2, "after": 1}, (3, 2, 3),
         lambda x: F.pad(x, (0, 0, 0, 0, 2, 1))),
        ("Add", {}, [(2, 3, 3)] * 2, lambda x: x + x),
        ("Subtract", {}, [(4,)] * 2, lambda x: x - x),
        ("Multiply", {}, [(4,)] * 2, lambda x: x * x),
        ("Average", {}, [(4,)] * 3, lambda x: (x + x + x) / 3),
        ("Concatenate", {}, [(2, 3, 3), (2, 3, 3)], lambda x: torch.cat([x, x], 1)),
    ]


ZERO_NAMES = ["ReLU", "LeakyReLU", "Sigmoid", "Tanh", "ScaledTanh", "Softmax", "MaxPool2D",
              "AvgPool2D", "LpPool2D", "GlobalAvgPool2D", "GlobalMaxPool2D", "AdaptiveAvgPool2D",
              "AdaptiveMaxPool2D", "BatchNorm2D",
              "BatchNorm1D", "LocalResponseNorm", "Dropout", "Rescale", "Flatten", "Reshape",
              "Pad2D", "PadChannels", "Add", "Subtract", "Multiply", "Average", "Concatenate"]


@pytest.mark.parametrize("name", ZERO_NAMES)
def test_elementwise_pooling_and_merge_layers_count_no_macs_like_torch(name):
    torch = pytest.importorskip("torch")
    case = next(c for c in _zero_cases() if c[0] == name)
    _, kwargs, shape, op = case
    layer = LAYERS.lookup(name)(**kwargs)
    one = shape[0] if isinstance(shape, list) else shape
    x = torch.randn(1, *one, dtype=torch.float64)
    ref, _ = torch_macs(op, x)
    assert layer_macs(layer, shape) == ref == 0


def test_every_registered_layer_has_a_mac_formula():
    missing = sorted({LAYERS.lookup(n).__name__ for n in LAYERS.names()
                      if not issubclass(LAYERS.lookup(n), numcnn.Model)
                      and formula_for(LAYERS.lookup(n)) is None})
    assert not missing, (
        f"layers without a MAC formula: {missing}; add one to src/numcnn/models/flops.py, "
        "e.g. register_macs(MyLayer)(no_macs) for an element-wise layer (docs/flops.md)")


def _example_cases():
    out = []
    for key, items in LAYER_EXAMPLES.items():
        if key in LAYERS:
            out += [pytest.param(key, item[0], item[1], id=f"{key}-{i}")
                    for i, item in enumerate(items)]
    return out


@pytest.mark.parametrize("name, kwargs, shape", _example_cases())
def test_shapes_alone_give_the_counts_of_the_built_layer(name, kwargs, shape):
    """Every contract example: the walk of an unbuilt one-layer model (param_shapes, no
    weights) gives the parameters and MACs of the built one."""
    cls = LAYERS.lookup(name)
    if name == "InputLayer":
        return
    config = serialize(cls(**kwargs))["config"]  # the JSON a saved model holds
    spec = {"class_name": "Sequential", "config": {"input_shape": list(shape), "layers": [
        {"class_name": cls.__name__, "config": config}]}}
    if isinstance(shape, list):  # merge layers: a graph on several inputs
        spec = {"class_name": "Model", "config": {
            "layers": [{"class_name": "InputLayer", "config": {"shape": list(s)},
                        "name": f"in{i}", "inbound": []} for i, s in enumerate(shape)]
            + [{"class_name": cls.__name__, "config": config, "name": "m",
                "inbound": [[[f"in{i}", 0, 0] for i in range(len(shape))]],
                "list_input": True}],
            "inputs": [[f"in{i}", 0, 0] for i in range(len(shape))],
            "outputs": [["m", 0, 0]]}}
    unbuilt = walk(json.loads(json.dumps(spec)))
    layer = cls(**kwargs)
    layer.build(shape, np.random.default_rng(0))
    row = unbuilt.rows[-1]
    assert (row.trainable, row.non_trainable) == (layer.count_params(),
                                                  layer.count_non_trainable())
    assert row.macs == layer_macs(layer, shape)


# ----------------------------------------------------------------- whole networks
def test_small_conv_net_against_its_torch_twin_layer_by_layer():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    from torch.utils.flop_counter import FlopCounterMode

    model = numcnn.Sequential([
        Conv2D(4, (3, 2), stride=(2, 1), padding=1), BatchNorm2D(), ReLU(), MaxPool2D(2),
        Conv2D(6, 3, padding="same", use_bias=False), AvgPool2D(2), Flatten(), Dense(12),
        Tanh(), Dense(3)], input_shape=(3, 17, 15), seed=0)
    twin = nn.Sequential(
        nn.Conv2d(3, 4, (3, 2), stride=(2, 1), padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.MaxPool2d(2), nn.Conv2d(4, 6, 3, padding=1, bias=False), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(48, 12), nn.Tanh(), nn.Linear(12, 3)).eval()
    with FlopCounterMode(display=False, depth=None) as fc, torch.no_grad():
        twin(torch.randn(2, 3, 17, 15))
    per_module = fc.get_flop_counts()
    rows = walk(model).rows
    assert len(rows) == len(twin)
    for i, row in enumerate(rows):
        flops = sum(per_module.get(f"Sequential.{i}", {}).values())
        assert row.macs == flops // 4, (row.label, row.macs, flops)  # batch 2, 2 FLOPs/MAC
    assert count_macs(model) == fc.get_total_flops() // 4
    # by hand: conv 4·9·16·(3·3·2), conv 6·4·8·(4·3·3), dense 48·12, dense 12·3
    assert count_macs(model) == 4 * 9 * 16 * 18 + 6 * 4 * 8 * 36 + 48 * 12 + 12 * 3


def residual_block():
    x = Input((1, 28, 28))
    h = MaxPool2D(2)(ReLU()(Conv2D(8, 3, padding="same")(x)))
    r = Conv2D(8, 3, padding="same")(ReLU()(Conv2D(8, 3, padding="same")(h)))
    h = ReLU()(Add()([h, r]))
    return numcnn.Model(x, Dense(10)(Flatten()(MaxPool2D(2)(h))), name="res", seed=0)


def test_residual_graph_total_against_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    model = residual_block()
    p = {k: torch.tensor(v) for k, v in model.trainable_params().items()}

    def fwd(x):
        h = F.max_pool2d(F.relu(F.conv2d(x, p["conv2d/W"], p["conv2d/b"], padding=1)), 2)
        r = F.conv2d(F.relu(F.conv2d(h, p["conv2d_1/W"], p["conv2d_1/b"], padding=1)),
                     p["conv2d_2/W"], p["conv2d_2/b"], padding=1)
        h = F.max_pool2d(F.relu(h + r), 2)
        return h.flatten(1) @ p["dense/W"] + p["dense/b"]

    ref, _ = torch_macs(fwd, torch.randn(1, 1, 28, 28))
    assert count_macs(model) == ref == 8 * 784 * 9 + 2 * 8 * 196 * 72 + 392 * 10


def shared_and_nested():
    """A shared layer called twice, a nested Sequential, a concatenation, two outputs."""
    x = Input((2, 9, 9), name="image")
    conv = Conv2D(2, 3, padding=1, name="shared")
    a = conv(x)
    b = conv(ReLU()(a))
    inner = numcnn.Sequential([Conv2D(4, 2), ReLU()], name="inner")
    c = inner(Concatenate()([a, b]))
    return numcnn.Model(x, [Dense(5)(Flatten()(c)), Flatten()(b)], name="g", seed=0)


@pytest.mark.parametrize("make", [residual_block, shared_and_nested,
                                  lambda: numcnn.models.lenet5(seed=0),
                                  lambda: numcnn.models.lenet5_1998(seed=0)])
def test_config_walk_equals_the_built_model(make):
    model = make()
    spec = json.loads(json.dumps(serialize(model)))
    a, b = walk(model), walk(spec)
    key = [(r.label, r.class_name, r.output_shape, r.params, r.connections, r.macs, r.sources)
           for r in a.rows]
    assert key == [(r.label, r.class_name, r.output_shape, r.params, r.connections, r.macs,
                    r.sources) for r in b.rows]
    assert count_macs(spec) == count_macs(model) == model.count_macs()
    assert count_params(spec) == model.count_params() + model.count_non_trainable()
    assert count_params(spec, trainable=True) == model.count_params()
    text = model.summary(print_fn=lambda s: None)
    assert summary_of(spec, print_fn=lambda s: None).splitlines()[3:-2] == \
        text.splitlines()[3:len(text.splitlines()) - 2 - bool(model.fusions)]


def test_shared_layer_counts_each_call_and_its_weights_once():
    model = shared_and_nested()
    rows = {r.label: r for r in walk(model).rows}
    assert rows["shared"].params == 2 * 2 * 9 + 2 and rows["shared[1]"].params is None
    assert rows["shared"].macs == rows["shared[1]"].macs == 2 * 81 * 18
    assert rows["inner"].macs == 4 * 64 * 4 * 4  # its Conv2D on the 4 concatenated maps
    assert rows["inner"].params == 4 * 4 * 4 + 4 and rows["inner"].sources == ["concatenate"]
    assert count_macs(model) == 2 * 2 * 81 * 18 + 4 * 64 * 16 + 256 * 5


# --------------------------------------------------------------- LeNet-5 and the course
def test_lenet5_by_hand():
    # C1 6·28·28·25, C3 16·10·10·150, F5 400·120, F6 120·84, output 84·10
    assert count_macs(numcnn.models.lenet5()) == 117_600 + 240_000 + 48_000 + 10_080 + 840
    assert count_macs(numcnn.models.lenet5()) == 416_520


#: LeNet-5 (1998) per layer: (paper's connections, bias terms, MACs by hand)
LENET1998 = {
    "C1": (122_304, 6 * 28 * 28, 6 * 28 * 28 * 25),
    "S2": (5_880, 6 * 14 * 14, 6 * 14 * 14 * 4),
    "C3": (151_600, 16 * 10 * 10, 10 * 10 * 60 * 25),
    "S4": (2_000, 16 * 5 * 5, 16 * 5 * 5 * 4),
    "C5": (48_120, 120, 120 * 400),
    "F6": (10_164, 84, 84 * 120),
    "output": (840, 0, 10 * 84),
}


def test_lenet5_1998_macs_are_the_paper_connections_without_bias_terms():
    model = numcnn.models.lenet5_1998(seed=0)
    rows = {r.label: r for r in walk(model).rows}
    for name, (conns, biases, macs) in LENET1998.items():
        assert rows[name].macs == macs and rows[name].connections == conns == macs + biases
    assert count_macs(model) == 332_824 == 340_908 - sum(b for _, b, _ in LENET1998.values())
    text = model.summary(print_fn=lambda s: None)
    assert "Connections: 340,908" in text and "Total MACs: 332,824" in text


def test_course_flops_exercise():
    """Course 001 "计算量FLOPS": a 3×3 same convolution, 3 → 100 channels, on 32×32:
    {32·32·[3·3 + (3·3 − 1)]·3 + 32·32·(3 − 1)}·100 = 5,427,200: per output, K = 27
    multiplications and K − 1 = 26 additions, no bias: 2·MACs − outputs."""
    model = numcnn.Sequential([Conv2D(100, 3, padding="same")], input_shape=(3, 32, 32))
    macs, outputs = count_macs(model), 100 * 32 * 32
    assert (32 * 32 * (3 * 3 + (3 * 3 - 1)) * 3 + 32 * 32 * (3 - 1)) * 100 == 5_427_200
    assert macs == 2_764_800 and 2 * macs - outputs == 5_427_200
    assert count_params(model) == 3 * 3 * 3 * 100 + 100 == 2_800
    # its fully connected example: 5 → 10, "FLOPS" 5·10 + 10 = 60 = MACs + bias additions
    fc = numcnn.Sequential([Dense(10)], input_shape=(5,))
    assert count_macs(fc) == 50 and count_params(fc) == 60
    # "卷积计算量 = 输出数据大小 × 卷积核的尺度 × 输入通道数": 224·224·64·3·3·3 MACs
    big = numcnn.Sequential([Conv2D(64, 3, padding="same")], input_shape=(3, 224, 224))
    assert count_macs(big) == 224 * 224 * 64 * 3 * 3 * 3 and count_params(big) == 1_792


def test_course_fully_connected_example_counts_without_allocating():
    """Course 002: a 1000×1000 image fully connected to 10⁶ hidden units holds 10¹²
    weights (4 TB in float32); counting it allocates nothing of that size."""
    spec = {"class_name": "Sequential", "config": {"input_shape": [1, 1000, 1000], "layers": [
        {"class_name": "Flatten", "config": {}},
        {"class_name": "Dense", "config": {"units": 10**6}}]}}
    tracemalloc.start()
    try:
        macs, params = count_macs(spec), count_params(spec)
        seq = numcnn.Sequential([Flatten(), Dense(10**6)])
        text = seq.summary(input_shape=(1, 1000, 1000), print_fn=lambda s: None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert macs == 10**12 and params == 10**12 + 10**6
    assert peak < 2 << 20, peak  # under 2 MB
    assert not seq.layers[1].built and seq.graph is None
    assert "1,000,000,000,000" in text and "Total params: 1,000,001,000,000" in text


class LocallyConnected(Layer):
    """A stand-in for a locally connected layer (weights not shared), shapes only: the
    table is extensible by users for their own layers."""

    def __init__(self, kernel_size, **kwargs):
        super().__init__(**kwargs)
        self.kernel_size = kernel_size

    def output_shape(self, input_shape):
        C, H, W = input_shape
        return (1, H - self.kernel_size + 1, W - self.kernel_size + 1)

    def param_shapes(self, input_shape):
        _, Ho, Wo = self.output_shape(input_shape)
        k = self.kernel_size
        return {"W": (Ho, Wo, input_shape[0] * k * k), "b": (Ho, Wo)}

    def build(self, input_shape, rng=None):
        raise AssertionError("the count must not build the layer")


def test_course_locally_connected_example_with_a_formula_of_ones_own(monkeypatch):
    """Course 002: each of the 10⁶ hidden units sees its own 10×10 patch: 10⁸ weights."""
    layer = LocallyConnected(10)
    model = numcnn.Sequential([layer])
    with pytest.raises(ValueError, match="register_macs"):
        count_macs(model, (1, 1009, 1009))
    assert "?" in summary_of(model, (1, 1009, 1009), print_fn=lambda s: None)
    monkeypatch.setitem(MACS, LocallyConnected, lambda lay, i, o: prod(
        *o, i[0], lay.kernel_size, lay.kernel_size))
    assert count_macs(model, (1, 1009, 1009)) == 10**8
    assert count_params(model, (1, 1009, 1009)) == 10**8 + 10**6
    # weight sharing (one 10×10 kernel) cuts the weights to 100, not the MACs
    assert count_macs(numcnn.Sequential([Conv2D(1, 10)]), (1, 1009, 1009)) == 10**8


def test_course_locally_connected_example_with_locally_connected2d():
    LC = getattr(numcnn.layers, "LocallyConnected2D", None)
    if LC is None:
        pytest.skip("LocallyConnected2D is not implemented yet")
    model = numcnn.Sequential([LC(1, 10, padding="same")])
    tracemalloc.start()
    try:
        macs, params = count_macs(model, (1, 1000, 1000)), count_params(model, (1, 1000, 1000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert macs == 10**8 and params == 10**8 + 10**6 and peak < 2 << 20


def test_register_macs_rejects_non_classes_and_subclasses_inherit():
    with pytest.raises(TypeError, match="layer classes"):
        register_macs("Dense")

    class MyDense(Dense):
        pass

    assert layer_macs(MyDense(3), (4,)) == 12


# ----------------------------------------------------------------- free sizes, errors
def test_free_sizes_are_unknown_until_given():
    x = Input((1, None, None))
    model = numcnn.Model(x, Conv2D(4, 3, padding="same")(x), seed=0)
    text = model.summary(print_fn=lambda s: None)
    assert "Total MACs: at least 0 per sample; unknown for conv2d (Conv2D)" in text
    with pytest.raises(ValueError, match="free size"):
        count_macs(model)
    assert count_macs(model, (1, 8, 6)) == 4 * 8 * 6 * 9
    assert "(None, 4, 8, 6)" in model.summary(print_fn=lambda s: None, input_shape=(1, 8, 6))
    with pytest.raises(ValueError, match="built for inputs"):
        count_macs(model, (2, 8, 8))


def test_bad_arguments():
    with pytest.raises(TypeError, match="model config"):
        walk([1, 2])
    with pytest.raises(ValueError, match="input_shape"):
        count_macs(numcnn.Sequential([Dense(2)]))
    with pytest.raises(ValueError, match="expected a model config"):
        walk({"class_name": "Dense", "config": {"units": 2}})
    with pytest.raises(ValueError, match="no input_shape"):
        walk({"class_name": "Sequential", "config": {"layers": [
            {"class_name": "Dense", "config": {"units": 2}}]}})


# ------------------------------------------------------------------------------ CLI
def run_cli(capsys, *argv):
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_summary_prints_macs_for_zoo_saved_and_config_models(capsys, tmp_path):
    code, out, err = run_cli(capsys, "summary", "lenet5")
    assert code == 0, err
    assert "MACs" in out.splitlines()[2] and "Total MACs: 416,520 (416.52 K) per sample" in out
    path = tmp_path / "m.npz"
    numcnn.save_model(numcnn.models.lenet5_1998(seed=0), path)
    code, out, err = run_cli(capsys, "summary", str(path))
    assert code == 0, err
    assert "Total MACs: 332,824" in out
    spec = {"class_name": "Sequential", "config": {"name": "course", "input_shape": [1, 1000,
            1000], "layers": [{"class_name": "Flatten", "config": {}},
                              {"class_name": "Dense", "config": {"units": 10**6}}]}}
    (tmp_path / "fc.json").write_text(json.dumps(spec))
    code, out, err = run_cli(capsys, "summary", str(tmp_path / "fc.json"))
    assert code == 0, err
    assert "Total MACs: 1,000,000,000,000 (1.00 T) per sample" in out
    (tmp_path / "bad.json").write_text('{"class_name": "Sequential", "config": {"layers": []}}')
    code, out, err = run_cli(capsys, "summary", str(tmp_path / "bad.json"))
    assert code == 1 and len(err.strip().splitlines()) == 1 and "bad.json" in err


# ------------------------------------------------------------------------------ docs
def test_docs_flops_examples_run(capsys, monkeypatch):
    text = (Path(__file__).resolve().parents[2] / "docs" / "flops.md").read_text("utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) == 3
    for code in blocks[:2]:
        exec(compile(code, "docs/flops.md", "exec"), {})
    out = capsys.readouterr().out
    assert "Total MACs: 1,000,000,000,000 (1.00 T) per sample" in out
    assert "Total MACs: 416,520 (416.52 K) per sample" in out
    # the formula example, on stand-in classes and a copy of the table
    monkeypatch.setattr(flops, "MACS", dict(flops.MACS))

    class MyLayer(Conv2D):
        pass

    class MyActivation(ReLU):
        pass

    exec(compile(blocks[2], "docs/flops.md", "exec"),
         {"MyLayer": MyLayer, "MyActivation": MyActivation})
    assert layer_macs(MyLayer(4, (3, 2)), (2, 5, 5)) == 4 * 3 * 4 * 2 * 3 * 2
    assert layer_macs(MyActivation(), (3,)) == 0
