"""The graph engine: the nodes between a model's inputs and outputs, run forward and back.

A model's graph is found by walking back from its output tensors through the nodes that
produced them (:mod:`numcnn.layers.node`) down to its ``Input`` tensors. The nodes are put
in a topological order (every node after the nodes it reads from) and every tensor gets a
*slot*, an index into the list of arrays of one run:

* **forward**: each step reads its input slots, calls ``layer.fprop(x, call)`` with a fresh
  :class:`~numcnn.layers.base.Call` (the step's own workspace, whether it must compute an
  input gradient, and any fusion mark) and writes its output slots; a slot is released after
  its last reader. The calls, in order, are the *tape* of the run.
* **backward**: the steps run in reverse; each reads the gradient of its output slots and
  calls ``layer.bprop(dy, call, accumulate)``. A tensor read by several steps receives the
  *sum* of their gradients, in a new array (an array another layer returned is never
  written). A layer called by several steps (shared weights) overwrites its ``grads`` at its
  first call in the pass and adds the others into them; layers whose outputs got no gradient
  have their ``grads`` zeroed, so an optimizer never sees stale values.

Which tensors need a gradient is decided before the backward pass: a tensor needs one when
a trainable parameter lies upstream of it (or it is an input whose gradient was asked for);
steps whose inputs need none skip computing dx entirely (the first convolution of a network
never computes the gradient of the images).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..functional import Workspace
from ..layers.base import Call, Layer
from ..layers.input import InputLayer
from ..layers.node import Node, SymbolicTensor, mask_source


class Step:
    """One node of the graph in execution order, with the slots of its tensors."""

    __slots__ = ("index", "node", "layer", "in_slots", "out_slots", "list_input", "multi",
                 "free", "nested", "single_in", "single_out")

    def __init__(self, index: int, node: Node, in_slots: list[int], out_slots: list[int]):
        self.index = index
        self.node = node
        self.layer = node.layer
        self.in_slots = in_slots
        self.out_slots = out_slots
        self.list_input = node.list_input
        self.multi = isinstance(node.layer.output_shape(node.layer.input_shape), list)
        self.free: list[int] = []  # slots whose last reader this step is
        self.nested = getattr(node.layer, "backprop_call", None) is not None  # a model
        self.single_in = None if self.list_input else in_slots[0]
        self.single_out = None if self.multi else out_slots[0]


def _toposort(outputs: list[SymbolicTensor]) -> list[Node]:
    """Nodes reachable from ``outputs``, every node after the nodes it reads from (an
    iterative depth-first post-order, so deep networks need no deep recursion)."""
    order: list[Node] = []
    done: set[int] = set()
    active: set[int] = set()
    for t in outputs:
        stack: list[tuple[Node, int]] = [(t.node, 0)]
        while stack:
            node, k = stack.pop()
            if id(node) in done:
                continue
            if k == 0:
                if id(node) in active:
                    raise ValueError(f"the graph has a cycle through {node.layer.display_name}")
                active.add(id(node))
            if k < len(node.inputs):
                stack.append((node, k + 1))
                parent = node.inputs[k].node
                if id(parent) not in done:
                    stack.append((parent, 0))
            else:
                active.discard(id(node))
                done.add(id(node))
                order.append(node)
    return order


class Graph:
    """The executable form of the graph between ``inputs`` and ``outputs``.

    Args:
        inputs: the model's ``Input`` tensors. outputs: its output tensors.

    Attributes:
        steps: the non-input nodes in execution order. layers: the distinct layers called,
        in order of first call. n_slots: tensors in one run.
    """

    def __init__(self, inputs: list[SymbolicTensor], outputs: list[SymbolicTensor]):
        for t in inputs:
            if not isinstance(t, SymbolicTensor) or not isinstance(t.node.layer, InputLayer):
                raise TypeError(f"model inputs must be numcnn.Input(...) tensors; received {t!r}")
        for t in outputs:
            if not isinstance(t, SymbolicTensor):
                raise TypeError(f"model outputs must be symbolic tensors (the result of calling "
                                f"layers on numcnn.Input); received {type(t).__name__}")
        if len({id(t) for t in inputs}) != len(inputs):
            raise ValueError("the same Input tensor is listed twice among the model inputs")
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        slot: dict[int, int] = {id(t): k for k, t in enumerate(inputs)}
        self.tensors: list[SymbolicTensor] = list(inputs)
        self.steps: list[Step] = []
        for node in _toposort(outputs):
            if isinstance(node.layer, InputLayer):
                if id(node.outputs[0]) not in slot:
                    raise ValueError(
                        f"graph disconnected: the outputs depend on the input "
                        f"{node.layer.display_name!r} {node.outputs[0].shape}, which is not "
                        "among the model's inputs")
                continue
            ins = [slot[id(t)] for t in node.inputs]
            outs = []
            for t in node.outputs:
                slot[id(t)] = len(slot)
                self.tensors.append(t)
                outs.append(slot[id(t)])
            self.steps.append(Step(len(self.steps), node, ins, outs))
        self.n_slots = len(slot)
        self.slot_of = slot
        self.input_slots = list(range(len(inputs)))
        self.output_slots = [slot[id(t)] for t in outputs]
        # per output: (slot of its padding mask's source, mask_value) or None; the trainer
        # keeps those slots of a run and hands each output's mask to its loss
        self.output_masks: list[tuple[int, float | None] | None] = []
        for t in outputs:
            src = mask_source(t)
            ok = src is not None and id(src[0]) in slot
            self.output_masks.append((slot[id(src[0])], src[1]) if ok else None)
        last: dict[int, int] = {}
        for st in self.steps:
            for s in st.in_slots:
                last[s] = st.index
        keep = set(self.output_slots)
        for s, k in last.items():
            if s not in keep:
                self.steps[k].free.append(s)
        seen: dict[int, Layer] = {}
        for st in self.steps:
            seen.setdefault(id(st.layer), st.layer)
        self.layers: list[Layer] = list(seen.values())
        self.consumers: dict[int, list[Step]] = {}
        for st in self.steps:
            for s in st.in_slots:
                self.consumers.setdefault(s, []).append(st)
        # a chain (each step reads the previous step's only output): the runs below then
        # hand one array from step to step, with no slot bookkeeping
        prev = self.input_slots[0] if len(inputs) == 1 else None
        self.chain = len(inputs) == 1 and len(outputs) == 1 and bool(self.steps)
        for st in self.steps:
            if st.list_input or st.multi or st.in_slots != [prev]:
                self.chain = False
                break
            prev = st.out_slots[0]
        self.chain = self.chain and self.output_slots == [prev]

    # ---------------------------------------------------------------- gradients
    def grad_plan(self, input_grads: bool) -> list[Any]:
        """``need_dx`` per step: a bool, or a list of bools for list-input steps."""
        needs = [input_grads] * len(self.inputs) + [False] * (self.n_slots - len(self.inputs))
        plan: list[Any] = []
        for st in self.steps:
            flags = [needs[s] for s in st.in_slots]
            plan.append(flags if st.list_input else flags[0])
            out_needs = any(flags) or has_trainable(st.layer)
            for s in st.out_slots:
                needs[s] = out_needs
        return plan

    # ------------------------------------------------------------------- runs
    def workspaces(self, ws: Workspace) -> list[Workspace]:
        """One workspace per step, children of ``ws`` (made once, then looked up)."""
        per = ws._children.get(self)
        if per is None:
            per = ws._children[self] = [ws.child(st.index) for st in self.steps]
        return per

    def forward(self, xs: list[np.ndarray], training: bool, ws: Workspace, plan: list[Any],
                fused: list[str | None], keep: set[int] | None = None,
                record: bool = True) -> tuple[list[np.ndarray], list[Call] | None,
                                              dict[int, Any]]:
        """Run the graph on the arrays ``xs`` (one per input).

        Returns:
            ``(outputs, tape, kept)``: the output arrays, the calls in step order (None unless
            ``record``) and ``{slot: array}`` for the slots in ``keep``.
        """
        tape: list[Call] | None = [] if record else None
        kept: dict[int, Any] = {}
        if self.chain:
            x = xs[0]
            if keep and self.input_slots[0] in keep:
                kept[self.input_slots[0]] = x
            for st, sws, need, mark in zip(self.steps, self.workspaces(ws), plan, fused):
                call = Call(training, need, sws, mark)
                x = st.layer.fprop(x, call)
                if tape is not None:
                    tape.append(call)
                if keep and st.single_out in keep:
                    kept[st.single_out] = x
            return [x], tape, kept
        vals: list[Any] = [None] * self.n_slots
        for s, x in zip(self.input_slots, xs):
            vals[s] = x
            if keep and s in keep:
                kept[s] = x
        for st, sws, need, mark in zip(self.steps, self.workspaces(ws), plan, fused):
            k = st.single_in
            x = vals[k] if k is not None else [vals[s] for s in st.in_slots]
            call = Call(training, need, sws, mark)
            y = st.layer.fprop(x, call)
            k = st.single_out
            if k is not None:
                vals[k] = y
            else:
                for s, v in zip(st.out_slots, y):
                    vals[s] = v
            if keep:
                for s in st.out_slots:
                    if s in keep:
                        kept[s] = vals[s]
            for s in st.free:
                vals[s] = None
            if tape is not None:
                tape.append(call)
        return [vals[s] for s in self.output_slots], tape, kept

    def backward(self, tape: list[Call], dys: list[np.ndarray | None], grad_pass: GradPass,
                 input_grads: bool) -> list[np.ndarray | None]:
        """Back-propagate ``dys`` (one per output; None for an output without a gradient)
        through the recorded ``tape``. Returns the gradients of the inputs (``None`` each
        unless ``input_grads``)."""
        if self.chain:
            seen = grad_pass.seen
            dy = dys[0]
            for st in reversed(self.steps):
                if dy is None:
                    break
                call = tape[st.index]
                if st.nested:
                    dy = st.layer.backprop_call(dy, call, grad_pass)
                else:
                    layer = st.layer
                    first = layer not in seen
                    if first:
                        seen.add(layer)
                    dy = layer.bprop(dy, call, not first)
                if not call.need_dx:
                    dy = None
            return [dy if input_grads else None]
        grads: list[Any] = [None] * self.n_slots
        owned = [False] * self.n_slots
        for s, dy in zip(self.output_slots, dys):
            if dy is not None:
                _add(grads, owned, s, dy)
        for st in reversed(self.steps):
            if st.multi:
                dy = tuple(grads[s] for s in st.out_slots)
                if all(d is None for d in dy):
                    continue
            else:
                dy = grads[st.out_slots[0]]
                if dy is None:
                    continue
            for s in st.out_slots:
                grads[s] = None
            call = tape[st.index]
            if st.nested:
                dx = st.layer.backprop_call(dy, call, grad_pass)
            else:
                layer = st.layer
                seen = grad_pass.seen
                first = layer not in seen
                if first:
                    seen.add(layer)
                dx = layer.bprop(dy, call, not first)
            need = call.need_dx
            if st.list_input:
                for s, n, d in zip(st.in_slots, need, dx):
                    if n and d is not None:
                        _add(grads, owned, s, d)
            elif need and dx is not None:
                _add(grads, owned, st.in_slots[0], dx)
        return [grads[s] if input_grads else None for s in self.input_slots]


def _add(grads: list[Any], owned: list[bool], s: int, g: np.ndarray) -> None:
    """Add ``g`` into the gradient of slot ``s``: kept as it is when first, summed into a new
    array when second, added in place from the third on (the array is then ours)."""
    cur = grads[s]
    if cur is None:
        grads[s] = g
    elif owned[s]:
        cur += g
    else:
        grads[s] = cur + g
        owned[s] = True


class GradPass:
    """The layers that already received a gradient in one backward pass (so a shared layer
    accumulates its later calls) — shared by nested models. Layers hash by identity."""

    __slots__ = ("seen",)

    def __init__(self) -> None:
        self.seen: set[Layer] = set()


def has_trainable(layer: Layer) -> bool:
    """Whether ``layer`` (or a layer inside it) has parameters an optimizer updates."""
    inner = getattr(layer, "leaf_layers", None)
    if inner is not None:
        return any(lay.trainable and lay.params for lay in inner())
    return bool(layer.trainable and layer.params)
