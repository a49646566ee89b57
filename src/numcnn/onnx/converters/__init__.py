"""The layer → ONNX converters: one per layer class, in a registry, each declaring its opsets.

A converter is a function ``convert(ctx)`` that writes the ONNX nodes computing one call of
one layer in inference mode, through the :class:`~.graph.LayerContext` it receives: the
layer, the names of the input values, the per-sample shapes, the opset being written and the
names the outputs must get. It emits only standard operators of the default ``ai.onnx``
domain, so any runtime can run the graph. It is registered for one layer class with the
range of opsets it can write (``min_opset`` … ``max_opset``), the ONNX operators it may emit,
and notes on what needs a later opset or cannot be exported — :func:`converter_table`
renders the registry as the table of ``docs/onnx.md`` (a test keeps the two identical).

The registry maps exact classes: a subclass of ``Conv2D`` may compute something else, so it
is refused rather than exported as a ``Conv``. Anything a converter cannot express raises
:class:`ExportError` naming the layer and the reason — never a silently different graph.

Nothing here imports the ``onnx`` package: converters produce plain Python records, which
:mod:`numcnn.onnx.exporter` turns into protobuf at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

#: the oldest opset any converter writes
MIN_OPSET = 9
#: the newest opset every converter is tested at (capped by the installed onnx package)
MAX_OPSET = 28
#: what ``export`` writes when no opset is given: old enough for every runtime of the last
#: years (ONNX Runtime ≥ 1.12, onnxruntime-web), new enough for every converter
DEFAULT_OPSET = 17


class ExportError(ValueError):
    """A model (or one of its layers) that cannot be written as an ONNX graph that computes
    exactly what numcnn computes; the message names the layer and the reason."""


@dataclass(frozen=True)
class Converter:
    """One registry entry.

    Attributes:
        layer: the layer class converted (exactly this class, not its subclasses).
        convert: ``convert(ctx)`` writes the nodes (see :mod:`.graph`).
        min_opset, max_opset: the opsets it writes.
        ops: the ONNX operators it may emit (for the documentation).
        notes: conditions: what needs a later opset, what is refused and why.
    """

    layer: type
    convert: Callable[[Any], None]
    min_opset: int
    max_opset: int
    ops: tuple[str, ...]
    notes: str = ""

    @property
    def name(self) -> str:
        return self.layer.__name__


#: layer class -> its converter
CONVERTERS: dict[type, Converter] = {}


def register(layer: type, ops: tuple[str, ...], min_opset: int = MIN_OPSET,
             max_opset: int = MAX_OPSET, notes: str = "") -> Callable:
    """Decorator: register ``convert`` as the converter of ``layer``."""
    if not MIN_OPSET <= min_opset <= max_opset <= MAX_OPSET:
        raise ValueError(f"{layer.__name__}: bad opset range {min_opset}..{max_opset}")

    def deco(fn: Callable[[Any], None]) -> Callable[[Any], None]:
        if layer in CONVERTERS:
            raise ValueError(f"a converter for {layer.__name__} is already registered")
        CONVERTERS[layer] = Converter(layer, fn, min_opset, max_opset, tuple(ops), notes)
        return fn

    return deco


def converter_for(layer: Any, opset: int, label: str) -> Converter:
    """The converter of ``layer`` for ``opset``, or an :class:`ExportError` saying why there
    is none (``label`` names the layer in the model)."""
    _load()
    cls = type(layer)
    conv = CONVERTERS.get(cls)
    if conv is None:
        base = next((c for c in CONVERTERS if isinstance(layer, c)), None)
        why = (f"it is a subclass of {base.__name__}, and its forward pass may differ from "
               f"{base.__name__}'s, which the converter writes" if base is not None else
               "numcnn has no ONNX converter for this class")
        raise ExportError(f"cannot export layer {label!r} ({cls.__name__}): {why}")
    if not conv.min_opset <= opset <= conv.max_opset:
        raise ExportError(f"cannot export layer {label!r} ({cls.__name__}) at opset {opset}: "
                          f"its converter writes opsets {conv.min_opset} to {conv.max_opset}")
    return conv


def _load() -> None:
    """Import the converter modules (they register themselves)."""
    from . import (  # noqa: F401
        conv,
        core,
        lenet,
        norm,
        pooling,
        recurrent,
        recurrent_op,
        tensor,
        window_nd,
        wrappers,
    )


def converters() -> list[Converter]:
    """Every registered converter, by layer class name."""
    _load()
    return sorted(CONVERTERS.values(), key=lambda c: c.name)


def converter_table() -> str:
    """The registry as a Markdown table (the one in ``docs/onnx.md``)."""
    rows = ["| numcnn layer | ONNX operators | opsets | notes |", "|---|---|---|---|"]
    for c in converters():
        ops = ", ".join(f"`{op}`" for op in c.ops)
        rows.append(f"| `{c.name}` | {ops} | {c.min_opset}–{c.max_opset} | {c.notes} |")
    return "\n".join(rows) + "\n"


__all__ = ["CONVERTERS", "DEFAULT_OPSET", "MAX_OPSET", "MIN_OPSET", "Converter", "ExportError",
           "converter_for", "converter_table", "converters", "register"]
