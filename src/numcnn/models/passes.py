"""Graph passes: rewrites of how a model computes that change speed, never results.

A pass looks at a model's :class:`~numcnn.models.graph.Graph` and returns marks for the
calls of some steps (``{step index: mark}``) and the pairs of layers it fused, which the
model records and ``summary()`` shows. The marks reach the layers through their
:class:`~numcnn.layers.base.Call`; nothing is kept in a module or recognised by identity.

``fuse_relu_maxpool``: when a ReLU's output is read by exactly one step, a ``MaxPool2D``,
and is not a model output, the pooling's backward pass applies ReLU's derivative itself, at
pooled resolution (a quarter of the work for 2×2 windows), and the ReLU hands the gradient
on unchanged. This is exact: a window's winner ``x = y`` has ``1[x > 0] = 1[y > 0]``, and
every other position receives 0 either way. With any other reader of the ReLU output the
pass does not apply, since that reader's gradient would need ReLU's derivative too.

``fuse_relu_into_producer``: when a ReLU reads the output of a ``Conv2D``, a
``BatchNorm1D/2D`` or an ``Add`` and is that output's only reader (and it is not a model
output), the producer
applies ``max(·, 0)`` to its own output as it writes it, and in the backward pass
multiplies the incoming gradient by ``1[y > 0]`` before its own; the ReLU hands its input
and its gradient on unchanged (resnet20's 18 ReLUs and VGG's 8, each a pass over its
activations and one over its gradient, issue 11). Exact: the producer's output is the
ReLU's output, and its gradient is the ReLU's backward pass computed from that output.
This one *does* change a stored value — the producer's output slot holds the rectified
values — so a run that keeps such a slot (:meth:`Model.intermediates`) uses the marks of
the other passes only (:data:`VALUE_PASSES`). Where the ReLU already hands its gradient on
unchanged to a max pooling that applies the derivative (``fuse_relu_maxpool``), the
producer only rectifies.
"""

from __future__ import annotations

from typing import Any, Callable

from ..layers.activations import ReLU
from ..layers.conv import Conv2D
from ..layers.merge import Add
from ..layers.norm import BatchNorm1D, BatchNorm2D
from ..layers.pooling import MaxPool2D

Pass = Callable[[Any, "dict[int, Any]"], "tuple[dict[int, Any], list[tuple[Any, Any]]]"]


def fuse_relu_maxpool(graph: Any, marks: dict[int, str] | None = None
                      ) -> tuple[dict[int, str], list[tuple[Any, Any]]]:
    """Marks ``"relu_out"`` (on the ReLU) and ``"relu_in"`` (on the pooling) where safe."""
    marks: dict[int, str] = {}
    pairs: list[tuple[Any, Any]] = []
    outputs = set(graph.output_slots)
    for st in graph.steps:
        if type(st.layer) is not ReLU or st.multi:
            continue
        slot = st.out_slots[0]
        readers = graph.consumers.get(slot, [])
        if slot in outputs or len(readers) != 1:
            continue
        pool = readers[0]
        if type(pool.layer) is not MaxPool2D or pool.list_input:
            continue
        marks[st.index] = "relu_out"
        marks[pool.index] = "relu_in"
        pairs.append((st.layer, pool.layer))
    return marks, pairs


#: the producers whose output a following ReLU can rectify in place (``relu_after``)
RELU_PRODUCERS = (Conv2D, BatchNorm1D, BatchNorm2D, Add)


def fuse_relu_into_producer(graph: Any, marks: dict[int, str] | None = None
                            ) -> tuple[dict[int, str], list[tuple[Any, Any]]]:
    """Marks ``"relu_after"`` (or ``"relu_fwd"`` when the ReLU is already marked
    ``"relu_out"`` in ``marks``) on a BatchNorm or Add whose output only a ReLU reads, and
    ``"relu_fused"`` on that ReLU."""
    marks = marks or {}
    out: dict[int, str] = {}
    pairs: list[tuple[Any, Any]] = []
    outputs = set(graph.output_slots)
    producer_of = {st.out_slots[0]: st for st in graph.steps if not st.multi}
    for st in graph.steps:
        if type(st.layer) is not ReLU or st.multi or st.list_input:
            continue
        slot = st.in_slots[0]
        prod = producer_of.get(slot)
        if (prod is None or type(prod.layer) not in RELU_PRODUCERS or slot in outputs
                or len(graph.consumers.get(slot, [])) != 1 or prod.index in marks):
            continue
        out[prod.index] = "relu_fwd" if marks.get(st.index) == "relu_out" else "relu_after"
        out[st.index] = "relu_fused"
        pairs.append((prod.layer, st.layer))
    return out, pairs


def fold_bn_into_conv(graph: Any, marks: dict[int, str] | None = None
                      ) -> tuple[dict[int, Any], list[tuple[Any, Any]]]:
    """For inference only: a ``BatchNorm2D`` whose input is a ``Conv2D`` output it alone
    reads (not a model output) is folded into the convolution. With the running statistics
    the normalisation is affine per channel, ``y = s·z + t`` (``s = γ/√(σ² + ε)``,
    ``t = β − μ·s``), so ``y = (s·W) ∗ x + (s·b + t)``: the convolution runs with scaled
    kernels and bias (and the ReLU the BatchNorm rectified for, if any), and the BatchNorm
    hands its input on. Marks ``("bn_fold", batchnorm layer, relu)`` on the convolution and
    ``"bn_folded"`` on the BatchNorm; a model uses them in runs that record no tape for a
    backward pass (``predict``), as the arithmetic then differs from training's only by
    float rounding."""
    marks = marks or {}
    out: dict[int, Any] = {}
    pairs: list[tuple[Any, Any]] = []
    outputs = set(graph.output_slots)
    producer_of = {st.out_slots[0]: st for st in graph.steps if not st.multi}
    for st in graph.steps:
        if type(st.layer) is not BatchNorm2D or st.list_input:
            continue
        slot = st.in_slots[0]
        conv = producer_of.get(slot)
        if (conv is None or type(conv.layer) is not Conv2D or conv.layer.channels_last
                or slot in outputs
                or len(graph.consumers.get(slot, [])) != 1 or conv.index in marks):
            continue
        relu = {"relu_after": "forward", "relu_fwd": "forward"}.get(marks.get(st.index, ""))
        out[conv.index] = ("bn_fold", st.layer, relu)
        out[st.index] = "bn_folded"
        pairs.append((conv.layer, st.layer))
    return out, pairs


#: the passes a model applies when ``fuse=True``, by name, in order; each is given the marks
#: of the passes before it
PASSES: dict[str, Pass] = {"fuse_relu_maxpool": fuse_relu_maxpool,
                           "fuse_relu_into_producer": fuse_relu_into_producer}
#: the passes that change a value a step writes (skipped by runs that keep such values)
VALUE_PASSES = ("fuse_relu_into_producer",)
#: passes whose marks apply to inference runs that record no tape (``predict``) only
INFERENCE_PASSES: dict[str, Pass] = {"fold_bn_into_conv": fold_bn_into_conv}
