"""The floor script's FLOP count (``benchmarks/floor.py``) against independent counts.

``floor.model_gemms`` lists a step's matrix products from layer shapes (im2col GEMMs); the
references are PyTorch's ``FlopCounterMode`` on the benchmark's PyTorch twin (its own
forward and autograd backward, which skips the input gradient of the first convolution as
numcnn does) and the per-layer MAC formulas of ``numcnn.models.flops`` (``summary()``'s
column). Timings are never asserted: only the counts.
"""

from __future__ import annotations

import numpy as np
import pytest

from numcnn import layers, models

floor = pytest.importorskip("floor")


def test_lenet5_training_step_flops_match_torch_flop_counter():
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    from torch_twins import torch_twin

    net = models.lenet5(seed=0)
    module, _ = torch_twin(net, lr=0.05, momentum=0.9)
    x = torch.tensor(np.random.default_rng(0).random((128, 1, 28, 28), dtype=np.float32))
    y = torch.tensor(np.random.default_rng(1).integers(0, 10, 128))
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(module(x), y).backward()
    gemms, unmodelled = floor.model_gemms(net, 128, training=True)
    assert unmodelled == {}
    assert sum(g.flops for g in gemms) == counter.get_total_flops()
    # the figure: one step of LeNet-5 at batch 128 is about 290 MFLOP
    assert round(sum(g.flops for g in gemms) / 1e6) == 290


def test_lenet5_phases_follow_the_graph_engine():
    gemms, _ = floor.model_gemms(models.lenet5(seed=0), 32, training=True)
    phases = [(g.layer, g.phase) for g in gemms]
    assert ("conv2d", "input gradient") not in phases  # nothing trainable upstream
    assert ("conv2d_1", "input gradient") in phases
    assert len(gemms) == 2 + 3 * 4  # C1: forward + dW; C3 and three Dense: all three


@pytest.mark.parametrize("name", ["lenet5", "resnet20"])
def test_inference_flops_equal_twice_the_mac_formulas(name):
    net = models.get(name, seed=0)
    gemms, unmodelled = floor.model_gemms(net, 7, training=False)
    fwd = sum(g.flops for g in gemms) + 2 * sum(unmodelled.values())
    assert fwd == 2 * 7 * net.count_macs()


def test_grouped_convolution_and_frozen_layer():
    net = models.Sequential([layers.Conv2D(8, 3, groups=2), layers.ReLU(),
                             layers.Conv2D(6, 3, groups=2), layers.Flatten(),
                             layers.Dense(5)], input_shape=(4, 9, 9), seed=0)
    net.layers[0].trainable = False
    gemms, _ = floor.model_gemms(net, 3, training=True)
    # counted by hand: conv 1 forward only (frozen, nothing upstream), 2 groups of
    # (4 × 2·3·3) · (2·3·3 × 3·7·7); conv 2 forward and weight gradient (nothing trainable
    # upstream: no input gradient), 2 groups of 3 × 4·3·3 × 3·5·5; Dense 150 → 5 on 3 rows,
    # three products
    conv1 = 2 * (2 * 4 * 18 * 3 * 49)
    conv2 = 2 * 2 * (2 * 3 * 36 * 3 * 25)
    dense = 3 * (2 * 3 * 150 * 5)
    assert sum(g.flops for g in gemms) == conv1 + conv2 + dense


def test_connection_table_counts_the_dense_product():
    """The 1998 LeNet-5's C3 is computed as a dense 6 → 16 convolution (absent kernels are
    zeros): 100 positions × 16 × 6·25 MACs, where the table's formula counts 60 of the 96
    kernels; its subsampling layers (6·14·14·4 and 16·5·5·4 MACs) and RBF output (84·10)
    are not GEMMs and are reported apart."""
    net = models.get("lenet5-1998", seed=0)
    gemms, unmodelled = floor.model_gemms(net, 1, training=False)
    table_macs = 100 * 60 * 25
    dense_macs = 100 * 16 * 6 * 25
    assert list(unmodelled.values()) == [6 * 14 * 14 * 4, 16 * 5 * 5 * 4, 84 * 10]
    assert sum(g.flops for g in gemms) == 2 * (net.count_macs() - sum(unmodelled.values())
                                               - table_macs + dense_macs)
