"""Symbolic tensors and nodes: what calling a layer on ``numcnn.Input(...)`` records.

Calling a layer on a :class:`SymbolicTensor` computes nothing. It builds the layer (once),
works out the output shape and records a :class:`Node` — one application of the layer to
particular input tensors — whose outputs are new symbolic tensors. ``numcnn.Model(inputs,
outputs)`` then walks the nodes back from its outputs to find the graph it runs. A layer
called twice has two nodes and one set of weights; each node keeps its own state when the
graph runs, so both calls' gradients add up.

>>> import numcnn
>>> x = numcnn.Input((3, 8, 8))
>>> x.shape, x.dtype.name
((3, 8, 8), 'float32')
"""

from __future__ import annotations

from typing import Any

import numpy as np

Shape = tuple  # per-sample shape: ints, or None for a free dimension


class SymbolicTensor:
    """A placeholder for the arrays a graph will compute: per-sample shape and dtype.

    Attributes:
        shape: the per-sample shape (no batch axis); ``None`` marks a free dimension.
        dtype: a NumPy dtype.
        node: the :class:`Node` that produces it. index: which of the node's outputs it is.
    """

    __slots__ = ("shape", "dtype", "node", "index")

    def __init__(self, shape: Shape, dtype: Any, node: Node | None = None, index: int = 0):
        self.shape = tuple(None if d is None else int(d) for d in shape)
        self.dtype = np.dtype(dtype)
        self.node = node
        self.index = index

    @property
    def layer(self) -> Any:
        """The layer whose call produced this tensor."""
        return self.node.layer

    def __repr__(self) -> str:
        who = self.node.layer.display_name if self.node is not None else "?"
        return f"<SymbolicTensor shape=(None, {', '.join(map(str, self.shape))}) " \
               f"dtype={self.dtype.name} from {who!r}>"

    def __array__(self, *args: Any, **kwargs: Any):
        raise TypeError("a SymbolicTensor holds no data: build a numcnn.Model from it and call "
                        "model.predict(x) on arrays")


class Node:
    """One call of ``layer`` on ``inputs`` (symbolic tensors), producing ``outputs``.

    Attributes:
        layer: the layer called. inputs: its input tensors.
        list_input: the layer was called on a list (merge layers), not on one tensor.
        outputs: the symbolic outputs (one per layer output).
    """

    __slots__ = ("layer", "inputs", "list_input", "outputs", "__weakref__")

    def __init__(self, layer: Any, inputs: list[SymbolicTensor], list_input: bool,
                 output_shapes: list[Shape], dtype: Any):
        self.layer = layer
        self.inputs = list(inputs)
        self.list_input = list_input
        self.outputs = [SymbolicTensor(s, dtype, self, k) for k, s in enumerate(output_shapes)]

    def __repr__(self) -> str:
        return f"<Node {self.layer.display_name} ({len(self.inputs)} in, " \
               f"{len(self.outputs)} out)>"


def mask_source(t: Any) -> tuple[SymbolicTensor, float | None] | None:
    """The padding mask a symbolic tensor carries (see :mod:`.masking`): ``(tensor,
    mask_value)`` — the mask is computed from ``tensor`` with ``mask_value``, or ``tensor`` is
    the 0/1 mask itself when ``mask_value`` is None — or None."""
    if not isinstance(t, SymbolicTensor) or t.node is None:
        return None
    return getattr(t.node.layer, "_mask_of", {}).get(id(t))


def is_symbolic(x: Any) -> bool:
    """True for a SymbolicTensor or a non-empty list/tuple of them."""
    if isinstance(x, SymbolicTensor):
        return True
    if isinstance(x, (list, tuple)) and x and all(isinstance(t, SymbolicTensor) for t in x):
        return True
    return False


def shapes_compatible(actual: Shape, expected: Shape) -> bool:
    """Same rank and equal sizes wherever ``expected`` (or ``actual``) is not ``None``."""
    if len(actual) != len(expected):
        return False
    return all(a is None or e is None or a == e for a, e in zip(actual, expected))


def format_shape(shape: Shape) -> str:
    """``(N, 3, 32, 32)`` for a per-sample ``(3, 32, 32)``."""
    return "(N, " + ", ".join("None" if d is None else str(d) for d in shape) + ")"
