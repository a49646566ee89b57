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
"""

from __future__ import annotations

from typing import Any, Callable

from ..layers.activations import ReLU
from ..layers.pooling import MaxPool2D

Pass = Callable[[Any], "tuple[dict[int, str], list[tuple[Any, Any]]]"]


def fuse_relu_maxpool(graph: Any) -> tuple[dict[int, str], list[tuple[Any, Any]]]:
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


#: the passes a model applies when ``fuse=True``, by name, in order
PASSES: dict[str, Pass] = {"fuse_relu_maxpool": fuse_relu_maxpool}
