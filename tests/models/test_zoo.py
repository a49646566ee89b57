"""The classic networks against PyTorch twins written here from stock ``torch.nn`` modules,
structured as torchvision's code (same module names), float64: the forward pass in
inference mode and every gradient in training mode (BatchNorm's batch statistics and
running averages included), with the weights moved by ``torchvision_state_dict`` and
``load_state_dict(strict=True)`` — which also proves the names are torchvision's.

Parameter counts against torchvision's published figures and the papers'."""

from __future__ import annotations

import gc

import numpy as np
import pytest

import numcnn
from numcnn import models
from numcnn.models import torchvision_state_dict
from numcnn.models.vgg import CONFIGS

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from zoo_twins import (  # noqa: E402  (benchmarks/, on the path from conftest.py)
    AlexNet,
    BasicBlock,
    Bottleneck,
    Caffe,
    GoogLeNet,
    ResNet,
    vgg_twin,
)


# ------------------------------------------------------------------------ harness
def close(a, b, tol, what=""):
    """|a − b| ≤ tol·(1 + |b|) elementwise (``assert_allclose``'s test, with fewer
    temporaries: the VGG and AlexNet classifiers hold 10⁸ values)."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (what, a.shape, b.shape)
    err = np.abs(a - b)
    err -= tol * np.abs(b)
    worst = float(err.max()) if err.size else 0.0
    assert worst <= tol, f"{what}: off by up to {worst + tol:.3g} beyond the tolerance"


def compare(model, twin, x, tol=1e-9):
    """Weights numcnn → torch by name; forward in inference mode, then every gradient and
    the running statistics after one training-mode forward/backward."""
    sd = torchvision_state_dict(model)
    twin.double().eval()
    with torch.no_grad():
        twin(torch.zeros((1,) + x.shape[1:], dtype=torch.float64))  # LazyLinear sizes
    twin.load_state_dict({k: torch.tensor(v) for k, v in sd.items()}, strict=True)
    outs = model.predict(x)
    twin.eval()
    with torch.no_grad():
        ref = twin(torch.tensor(x))
    outs, ref = (outs, ref) if isinstance(ref, list) else ([outs], [ref])
    for a, b in zip(outs, ref):
        close(a, b.numpy(), tol, "inference output")
    # training mode: batch statistics, gradients of every parameter and of the input
    twin.train()
    xt = torch.tensor(x, requires_grad=True)
    ys = twin(xt)
    ys = ys if isinstance(ys, list) else [ys]
    rng = np.random.default_rng(1)
    dys = [rng.standard_normal(tuple(y.shape)) for y in ys]
    sum((y * torch.tensor(d)).sum() for y, d in zip(ys, dys)).backward()
    model.need_input_grad = True
    got = model.forward(x, training=True)
    got = got if isinstance(got, list) else [got]
    for a, b in zip(got, ys):
        close(a, b.detach().numpy(), tol, "training output")
    dx = model.backward(dys if len(dys) > 1 else dys[0])
    close(dx, xt.grad.numpy(), tol, "input gradient")
    grads = torchvision_state_dict(model, grads=True)
    named = dict(twin.named_parameters())
    assert set(grads) == set(named)
    for k, p in named.items():
        close(grads[k], p.grad.numpy(), tol, k)
    after = {q.replace("/", "."): lay.buffers[key] for q, lay, key in model.named_buffers()}
    for k, v in twin.state_dict().items():
        if "running" in k:
            close(after[k], v.numpy(), tol, k)


CASES = {
    "resnet18": (lambda: models.resnet18(num_classes=7, input_shape=(3, 33, 29),
                                         dtype="float64", seed=0),
                 lambda: ResNet(BasicBlock, (2, 2, 2, 2), 3, 7), (2, 3, 33, 29)),
    # 64×64: the last stage's BatchNorm sees 2·2·2 values per channel (with 2·1·1 the
    # normalised values are ±1 and their rounding is amplified without bound)
    "resnet50": (lambda: models.resnet50(num_classes=5, input_shape=(2, 64, 64),
                                         dtype="float64", seed=0),
                 lambda: ResNet(Bottleneck, (3, 4, 6, 3), 2, 5), (2, 2, 64, 64)),
    "resnet20": (lambda: models.resnet20(input_shape=(1, 28, 28), dtype="float64", seed=0),
                 lambda: ResNet(BasicBlock, (3, 3, 3), 1, 10, cifar=True), (3, 1, 28, 28)),
    "vgg11_bn": (lambda: models.vgg11(batch_norm=True, num_classes=4, input_shape=(3, 35, 32),
                                      dtype="float64", seed=0, dropout=0.0),
                 lambda: vgg_twin(CONFIGS["A"], True, 3, 4),
                 (2, 3, 35, 32)),
    "small_vgg": (lambda: models.vgg([8, 8, "M", 16, "M"], batch_norm=True, num_classes=10,
                                     input_shape=(1, 28, 28), classifier=(32,),
                                     pool_output=None, dtype="float64", seed=0, dropout=0.0),
                  lambda: vgg_twin([8, 8, "M", 16, "M"], True, 1, 10, (32,), None),
                  (3, 1, 28, 28)),
    "alexnet": (lambda: models.alexnet(num_classes=6, input_shape=(3, 67, 70),
                                       dtype="float64", seed=0, dropout=0.0),
                lambda: AlexNet(3, 6), (2, 3, 67, 70)),
    "alexnet_paper": (lambda: models.alexnet("paper", num_classes=6, dtype="float64", seed=0,
                                             dropout=0.0),
                      lambda: Caffe(False, 3, 6), (2, 3, 227, 227)),
    "zfnet": (lambda: models.zfnet(num_classes=6, dtype="float64", seed=0, dropout=0.0),
              lambda: Caffe(True, 3, 6), (2, 3, 224, 224)),
    "googlenet_aux": (lambda: models.googlenet(num_classes=6, input_shape=(3, 40, 36),
                                               aux_logits=True, dropout=0.0, dropout_aux=0.0,
                                               dtype="float64", seed=0),
                      lambda: GoogLeNet(3, 6, True), (2, 3, 40, 36)),
    "googlenet_mnist": (lambda: models.googlenet(num_classes=10, input_shape=(1, 28, 28),
                                                 dropout=0.0, dtype="float64", seed=0),
                        lambda: GoogLeNet(1, 10, False), (2, 1, 28, 28)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_zoo_model_matches_its_pytorch_twin(name):
    make, twin, shape = CASES[name]
    model = make()
    x = np.random.default_rng(0).standard_normal(shape)
    compare(model, twin(), x)
    del model
    gc.collect()


# --------------------------------------------------------------------------- counts
@pytest.mark.parametrize("factory, kwargs, expected", [
    ("alexnet", {}, 61_100_840),  # torchvision
    ("alexnet", {"variant": "paper"}, 60_965_224),  # Krizhevsky et al.'s two columns
    ("vgg11", {}, 132_863_336), ("vgg11", {"batch_norm": True}, 132_868_840),
    ("vgg13", {}, 133_047_848), ("vgg13", {"batch_norm": True}, 133_053_736),
    ("vgg16", {}, 138_357_544), ("vgg16", {"batch_norm": True}, 138_365_992),
    ("vgg19", {}, 143_667_240), ("vgg19", {"batch_norm": True}, 143_678_248),
    ("googlenet", {}, 6_624_904), ("googlenet", {"aux_logits": True}, 13_004_888),
    ("resnet18", {}, 11_689_512), ("resnet34", {}, 21_797_672),
    ("resnet50", {}, 25_557_032), ("resnet101", {}, 44_549_160),
    ("resnet152", {}, 60_192_808),
])
def test_parameter_counts_are_torchvisions_and_the_papers(factory, kwargs, expected):
    model = getattr(models, factory)(**kwargs)
    assert model.count_params() == expected
    del model
    gc.collect()


@pytest.mark.parametrize("factory, millions", [("resnet20", 0.27), ("resnet32", 0.46),
                                               ("resnet56", 0.85)])
def test_cifar_resnets_have_the_papers_sizes(factory, millions):
    """He et al. (2016), Table 6: 0.27 M, 0.46 M, 0.85 M parameters (option A shortcuts)."""
    assert round(getattr(models, factory)().count_params() / 1e6, 2) == millions


# ------------------------------------------------------------------ shapes and weights
@pytest.mark.parametrize("factory, kwargs, shape, message", [
    ("alexnet", {}, (1, 28, 28), "alexnet accepts images of at least 63×63"),
    ("alexnet", {"variant": "paper"}, (3, 224, 224), "alexnet accepts images of at least "
                                                     "227×227"),
    ("alexnet", {"variant": "paper"}, (3, 260, 260), "227 to 258 pixels a side"),
    ("zfnet", {}, (3, 250, 250), "207 to 238 pixels a side"),
    ("vgg16", {}, (1, 28, 28), "vgg16 accepts images of at least 32×32"),
    ("googlenet", {}, (3, 14, 14), "googlenet accepts images of at least 15×15"),
    ("resnet18", {}, (3, 0, 5), r"input_shape must be \(channels, height, width\)"),
])
def test_input_sizes_an_architecture_cannot_take_are_named(factory, kwargs, shape, message):
    with pytest.raises(ValueError, match=message):
        getattr(models, factory)(input_shape=shape, **kwargs)


def test_mnist_sized_inputs_work_where_the_architecture_allows():
    for factory in ("resnet18", "resnet20", "googlenet"):
        model = getattr(models, factory)(input_shape=(1, 28, 28), num_classes=10)
        assert model.predict(np.zeros((2, 1, 28, 28), np.float32)).shape == (2, 10)


def test_weights_load_from_a_dict_and_an_npz_with_strict_checks(tmp_path):
    source = models.resnet20(seed=1)
    sd = torchvision_state_dict(source)
    x = np.random.default_rng(2).standard_normal((2, 3, 32, 32)).astype(np.float32)
    np.savez(tmp_path / "w.npz", **sd)
    for weights in (sd, tmp_path / "w.npz", str(tmp_path / "w.npz")):
        loaded = models.resnet20(seed=2, weights=weights)
        np.testing.assert_array_equal(loaded.predict(x), source.predict(x))
    missing = dict(sd)
    del missing["fc.bias"]
    with pytest.raises(ValueError, match=r"missing 1: fc.bias"):
        models.resnet20(weights=missing)
    with pytest.raises(ValueError, match=r"unexpected 1: extra.weight"):
        models.resnet20(weights={**sd, "extra.weight": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match=r"'fc.weight' has shape \(10, 3\); the model "
                                         r"expects \(10, 64\)"):
        models.resnet20(weights={**sd, "fc.weight": np.zeros((10, 3), np.float32)})
    with pytest.raises(ValueError, match="non-finite"):
        models.resnet20(weights={**sd, "fc.bias": np.full(10, np.nan, np.float32)})
    with pytest.raises(ValueError, match="must be a floating-point array"):
        models.resnet20(weights={**sd, "fc.bias": np.array(["a"] * 10)})
    with pytest.raises(ValueError, match="numcnn model file"):
        numcnn.save_model(source, tmp_path / "model.npz")
        models.resnet20(weights=tmp_path / "model.npz")
    with pytest.raises(FileNotFoundError, match="no weights file"):
        models.resnet20(weights=tmp_path / "nope.npz")


@pytest.mark.parametrize("factory, gmacs", [("alexnet", 0.71), ("vgg16", 15.47),
                                            ("googlenet", 1.50), ("resnet18", 1.81),
                                            ("resnet50", 4.09)])
def test_macs_are_torchvisions_published_figures(factory, gmacs):
    """torchvision's model tables (GFLOPS, counted as multiply-accumulates of convolutions
    and matrix products) at 3×224×224."""
    model = getattr(models, factory)()
    assert round(models.count_macs(model) / 1e9, 2) == gmacs
    del model
    gc.collect()
