"""Multiply-accumulates (MACs): one formula per layer class, from shapes alone.

A *MAC* is one product of an input value with a weight, added into an output value, in the
forward pass of **one sample** (inference). The count follows the convention of the figures
torchvision publishes for its models (the ``_ops`` field of the weights, shown as "GFLOPS"
in its documentation, e.g. ResNet-50 4.09): torchvision computes them with a counter that
counts only convolutions (``out_elems · C_in/groups · kh · kw``) and matrix products
(``in · out``) — one per multiplication, "computation for addition and bias is ignored"
(``test/common_extended_utils.py`` in pytorch/vision). So here:

* ``Conv2D``: ``F · Ho · Wo · (C/groups) · kh · kw``; with a ``connection_table``, only the
  kernels present: ``Ho · Wo · |table| · kh · kw`` (LeNet-5's C3: 150,000).
* ``Dense``: ``in_features · units``.
* ``TimeDistributed(layer)``: ``T ·`` the wrapped layer's count for one step; unknown
  (None) for a free T. ``Embedding`` (a lookup) and ``Permute`` count zero.
* ``SimpleRNN``, ``LSTM``, ``GRU``: ``T · G·H · (F + H)`` (G = 1, 4, 3 gates), twice that
  for ``Bidirectional``; unknown (None) for a free sequence length.
* ``LocallyConnected2D``: ``F · Ho · Wo · C · kh · kw`` — every weight used once per sample
  (no sharing), so the MACs equal the weights.
* layers equivalent to one of those, counted as that: ``Subsampling2D`` (LeNet's ``coef ·
  Σ window``, a depthwise p×p convolution whose p² weights are tied: ``C·Ho·Wo·p²``),
  ``WeightedPool2D`` (a depthwise convolution with fixed Gaussian weights:
  ``C·Ho·Wo·kh·kw``), ``RBFOutput`` (one ``(x_j − w_ij)²`` per weight: ``units · D``).
* **zero**: biases, element-wise layers (activations, ``BatchNorm``, ``Rescale``,
  ``Dropout``), max/average/L\\ :sub:`p`/global/adaptive pooling (``ceil_mode`` too),
  ``LocalResponseNorm``, merges, reshapes and padding. torchvision's figures exclude them
  too (counting BatchNorm would move ResNet-50 from 4.09 to about 4.10 G).

A floating-point-operation count is about twice this (a multiplication and an addition per
MAC): ``torch.utils.flop_counter.FlopCounterMode`` reports ``2 · MACs`` for the same layers.
The course's own FLOP exercise (001, "计算量FLOPS") counts ``2K − 1`` operations per output
of a convolution (K multiplications, K − 1 additions, no bias): docs/flops.md works it out.

For a layer with weights, MACs + bias terms = LeCun's *connections* (``Layer.count_connections``,
the "Connections" column of LeNet-5's summary): C1 117,600 + 4,704 = 122,304.

The table is keyed by layer class and looked up along the class's MRO, so a subclass
inherits its parent's formula. Register one for a layer of your own::

    @register_macs(MyLayer)
    def _my_layer(layer, input_shape, output_shape):
        return output_shape[0] * input_shape[0]    # per sample; None when a size is free

``register_macs(MyLayer)(no_macs)`` declares an element-wise layer. A layer without a formula
counts as unknown (``?`` in ``summary()``; :func:`numcnn.models.count_macs` raises).

>>> from numcnn.layers import Conv2D, Dense
>>> layer_macs(Conv2D(6, 5, padding=2), (1, 28, 28))   # 6·28·28 · 1·5·5
117600
>>> layer_macs(Dense(10), (84,))
840
"""

from __future__ import annotations

import math
from typing import Any, Callable

from ..layers import (
    ActivityRegularization,
    AdaptiveAvgPool2D,
    AdaptiveMaxPool2D,
    Add,
    Arithmetic,
    Average,
    AvgPool2D,
    AxisSoftmax,
    BatchNorm1D,
    BatchNorm2D,
    Bidirectional,
    Concatenate,
    Constant,
    Conv2D,
    ConvND,
    ConvTranspose,
    Dense,
    Dropout,
    Embedding,
    Fill,
    Flatten,
    FullLike,
    Gather,
    GlobalAvgPool2D,
    GlobalMaxPool2D,
    InputLayer,
    LeakyReLU,
    LocallyConnected2D,
    LocalResponseNorm,
    LogSoftmax,
    LpPool2D,
    Masking,
    MatMul,
    MaxPool2D,
    Moments,
    Multiply,
    Pad2D,
    PadChannels,
    PadND,
    Permute,
    PoolND,
    RBFOutput,
    Recurrent,
    RecurrentOp,
    Reduce,
    ReLU,
    Rescale,
    Reshape,
    ScaledTanh,
    ShapeOf,
    Sigmoid,
    Slice,
    Softmax,
    SparsityPenalty,
    Squeeze,
    Subsampling2D,
    Subtract,
    SyncBatchNorm1D,
    SyncBatchNorm2D,
    Tanh,
    TensorConcat,
    TensorReshape,
    TimeDistributed,
    Transpose,
    Unsqueeze,
    WeightedPool2D,
)
from ..layers.base import Layer
from ..layers.tied import DenseTranspose

#: MACs of one sample: ``formula(layer, input_shape, output_shape) -> int | None``
MacFormula = Callable[[Any, Any, Any], "int | None"]

#: the table: layer class -> formula (see :func:`register_macs`)
MACS: dict[type, MacFormula] = {}


def register_macs(*classes: type) -> Callable[[MacFormula], MacFormula]:
    """Decorator: use ``formula(layer, input_shape, output_shape)`` for the layers of
    ``classes`` (and their subclasses without a formula of their own).

    The shapes are per sample (no batch axis), lists of shapes for layers called on lists
    or with several outputs; a size may be ``None`` (free): return ``None`` when the count
    depends on it (:func:`prod` does).
    """
    if not classes or not all(isinstance(c, type) for c in classes):
        raise TypeError(f"register_macs takes layer classes; received {classes!r}")

    def deco(formula: MacFormula) -> MacFormula:
        for cls in classes:
            MACS[cls] = formula
        return formula

    return deco


def no_macs(layer: Any, input_shape: Any, output_shape: Any) -> int:
    """The formula of layers without multiply-accumulates (element-wise, pooling, merges)."""
    return 0


def prod(*sizes: Any) -> int | None:
    """The product of ``sizes`` as a Python int (no overflow), or None if one is free."""
    if any(s is None for s in sizes):
        return None
    return math.prod(int(s) for s in sizes)


def formula_for(layer: Any) -> MacFormula | None:
    """The formula of a layer or layer class (the nearest one along its MRO), or None."""
    for cls in (layer if isinstance(layer, type) else type(layer)).__mro__:
        if cls in MACS:
            return MACS[cls]
    return None


def layer_macs(layer: Layer, input_shape: Any, output_shape: Any = None) -> int | None:
    """MACs of one call of ``layer`` on one sample of ``input_shape``.

    Returns None when the layer has no formula or the count depends on a free size. A
    model (a layer made of layers) counts the MACs of its graph.
    """
    if output_shape is None:
        output_shape = layer.output_shape(input_shape)
    if getattr(layer, "graph", None) is not None:  # a built model inside a model
        return graph_macs(layer.graph)
    formula = formula_for(layer)
    if formula is None:
        return None
    n = formula(layer, input_shape, output_shape)
    return None if n is None else int(n)


def graph_macs(graph: Any) -> int | None:
    """MACs of one sample through a built graph: the sum over its steps (None if one is
    unknown)."""
    total = 0
    for st in graph.steps:
        shapes = [graph.tensors[s].shape for s in st.in_slots]
        outs = [t.shape for t in st.node.outputs]
        n = layer_macs(st.layer, shapes if st.list_input else shapes[0],
                       outs if st.multi else outs[0])
        if n is None:
            return None
        total += n
    return total


# ----------------------------------------------------------------------- the formulas
@register_macs(Conv2D)
def _conv2d(layer: Conv2D, input_shape: Any, output_shape: Any) -> int | None:
    """``F·Ho·Wo·(C/groups)·kh·kw``; with a connection table ``Ho·Wo·|table|·kh·kw``."""
    input_shape, output_shape = layer._chw(input_shape), layer._chw(output_shape)
    F, Ho, Wo = output_shape
    kh, kw = layer.kernel_size
    table = getattr(layer, "connection_table", None)
    if table is not None:
        return prod(Ho, Wo, int(table.sum()), kh, kw)
    C = input_shape[0]
    groups = int(getattr(layer, "groups", 1))
    return prod(F, Ho, Wo, None if C is None else C // groups, kh, kw)


@register_macs(Dense)
def _dense(layer: Dense, input_shape: Any, output_shape: Any) -> int | None:
    """``in_features · units``."""
    return prod(input_shape[0], layer.units)


@register_macs(LocallyConnected2D)
def _locally_connected(layer: LocallyConnected2D, input_shape: Any,
                       output_shape: Any) -> int | None:
    """``F·Ho·Wo·C·kh·kw``: one product per weight (a kernel per output position)."""
    F, Ho, Wo = output_shape
    kh, kw = layer.kernel_size
    return prod(F, Ho, Wo, input_shape[0], kh, kw)


@register_macs(Subsampling2D)
def _subsampling(layer: Subsampling2D, input_shape: Any, output_shape: Any) -> int | None:
    """``C·Ho·Wo·p²``: the depthwise p×p convolution with tied weights it equals."""
    C, Ho, Wo = output_shape
    return prod(C, Ho, Wo, layer.pool_size, layer.pool_size)


@register_macs(WeightedPool2D)
def _weighted_pool(layer: WeightedPool2D, input_shape: Any, output_shape: Any) -> int | None:
    """``C·Ho·Wo·kh·kw``: a depthwise convolution with fixed weights."""
    C, Ho, Wo = output_shape
    kh, kw = layer.pool_size
    return prod(C, Ho, Wo, kh, kw)


@register_macs(RBFOutput)
def _rbf(layer: RBFOutput, input_shape: Any, output_shape: Any) -> int | None:
    """``units · D``: one ``(x_j − w_ij)²`` accumulated per centre weight."""
    return prod(layer.units, input_shape[0])


@register_macs(Recurrent)
def _recurrent(layer: Any, input_shape: Any, output_shape: Any) -> int | None:
    """``T · G·H · (F + H)``: per step, the G gates' products with ``x_t`` and ``h_{t−1}``
    (G = 1, 4, 3 for SimpleRNN, LSTM, GRU); twice that for ``Bidirectional``."""
    T, F = input_shape[0] if isinstance(input_shape, list) else input_shape
    G = {"rnn": 1, "lstm": 4, "gru": 3}[layer.cell]
    return prod(T, G * layer.units, None if F is None else F + layer.units)


@register_macs(Bidirectional)
def _bidirectional(layer: Any, input_shape: Any, output_shape: Any) -> int | None:
    """Both directions: twice the wrapped layer's."""
    n = _recurrent(layer.forward_layer, input_shape, None)
    return None if n is None else 2 * n


register_macs(
    InputLayer, ReLU, LeakyReLU, Sigmoid, Tanh, Softmax, ScaledTanh,  # element-wise
    BatchNorm1D, BatchNorm2D, SyncBatchNorm1D, SyncBatchNorm2D, Rescale, Dropout,
    LocalResponseNorm,
    MaxPool2D, AvgPool2D, LpPool2D, GlobalAvgPool2D, GlobalMaxPool2D,  # pooling (any
    AdaptiveAvgPool2D, AdaptiveMaxPool2D,  # ceil_mode, adaptive windows: still no MACs)
    Add, Subtract, Multiply, Average, Concatenate,  # merges
    Flatten, Reshape, Pad2D, PadChannels,  # data movement
    Masking,  # zeroes the padding steps
)(no_macs)

register_macs(Embedding, Permute)(no_macs)  # a table lookup; data movement
register_macs(SparsityPenalty, ActivityRegularization)(no_macs)  # identity; a loss term


@register_macs(DenseTranspose)
def _dense_transpose(layer: Any, input_shape: Any, output_shape: Any) -> int:
    """x Wᵀ: one MAC per weight, as Dense."""
    return int(input_shape[-1]) * layer.units


@register_macs(TimeDistributed)
def _time_distributed(layer: TimeDistributed, input_shape: Any,
                      output_shape: Any) -> int | None:
    """``T ·`` the wrapped layer's MACs on one step (None for a free T)."""
    n = layer_macs(layer.layer, tuple(input_shape[1:]), tuple(output_shape[1:]))
    return prod(input_shape[0], n)


def format_count(n: int | None) -> str:
    """``4,089,184,256 (4.09 G)`` — the exact count and a short one."""
    if n is None:
        return "?"
    for unit, size in (("T", 10**12), ("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= size:
            return f"{n:,} ({n / size:.2f} {unit})"
    return f"{n:,}"


# ------------------------------------------------ the whole-array layers (ONNX import)
register_macs(
    Arithmetic, AxisSoftmax, LogSoftmax, Moments, PoolND, Reduce,  # element-wise, reductions
    Transpose, Squeeze, Unsqueeze, TensorReshape, TensorConcat, Gather, Slice, PadND,  # movement
    ShapeOf, Constant, FullLike, Fill,  # no arithmetic at all
)(no_macs)


@register_macs(ConvND)
def _conv_nd(layer: ConvND, input_shape: Any, output_shape: Any) -> int | None:
    """``F·Πm·(C/groups)·Πk``, as ``Conv2D``."""
    F, *out = output_shape
    C = input_shape[0]
    return prod(F, *out, None if C is None else C // layer.groups, *layer.kernel_size)


@register_macs(ConvTranspose)
def _conv_transpose(layer: ConvTranspose, input_shape: Any, output_shape: Any) -> int | None:
    """``C·Πn·(F/groups)·Πk``: every input value times every tap of its group's kernels."""
    C, *spatial = input_shape
    return prod(C, *spatial, layer.out_channels // layer.groups, *layer.kernel_size)


@register_macs(MatMul)
def _matmul(layer: MatMul, input_shape: Any, output_shape: Any) -> int | None:
    """With a stored (K, M) operand over an (N, …, K) input: ``Π… · K · M`` per sample;
    unknown for two computed operands (their shapes need not follow the batch)."""
    if layer.b_shape is None or len(layer.b_shape) != 2 or not input_shape:
        return None
    return prod(*input_shape[:-1], *layer.b_shape)


@register_macs(RecurrentOp)
def _recurrent_op(layer: RecurrentOp, input_shape: Any, output_shape: Any) -> int | None:
    """``D · L · G·H · (F + H)`` per item of axis 0, ``L`` the steps (``layout=1``) or the
    batch (``layout=0``: axis 0 is then time)."""
    L, F = input_shape[0] if isinstance(input_shape, list) else input_shape
    G = {"rnn": 1, "lstm": 4, "gru": 3}[layer.cell]
    n = prod(L, G * layer.units, None if F is None else F + layer.units)
    return None if n is None else layer.n_dirs * n
