"""``Model.summary()``: a Keras-style table of a model's calls, shapes, parameters and MACs.

One row per call of a layer (a shared layer's later calls say ``shared`` instead of
repeating its parameters). Columns: ``Layer (type)``, ``Output Shape``, ``Param #``, then
``Connections`` when some layer's multiply-accumulate connections differ from its
parameters (weight sharing: LeNet-5's figures), ``MACs`` (multiply-accumulates per sample,
see :mod:`numcnn.models.flops`), and ``Connected to`` when the model is not a simple chain.
The footer gives the totals and the pairs a graph pass fused.

:func:`summary_of` prints the same table for a model that is not built — an unbuilt
``Sequential`` with an input shape, or a config — without allocating its parameters.
"""

from __future__ import annotations

from typing import Any, Callable

from .flops import format_count
from .walk import Walk, walk


def _shape(s: Any) -> str:
    if isinstance(s, list):
        return ", ".join(_shape(t) for t in s)
    return str((None, *s))


def _count(n: int | None) -> str:
    return "?" if n is None else f"{n:,}"


def render(w: Walk) -> str:
    """The summary table of a :class:`~numcnn.models.walk.Walk` as one string."""
    rows: list[tuple[str, ...]] = []
    any_conn = False
    total_conn = 0
    for r in w.rows:
        params = "shared" if r.params is None else f"{r.params:,}"
        if r.connections is not None and r.params is not None and r.connections != r.params:
            any_conn = True
        total_conn += r.connections or 0
        rows.append((f"{r.label} ({r.class_name})", _shape(r.output_shape), params,
                     "" if r.connections is None else f"{r.connections:,}",
                     "" if r.is_input else _count(r.macs), ", ".join(r.sources)))
    cols = [0, 1, 2] + ([3] if any_conn else []) + [4] + ([] if w.chain else [5])
    headers = ("Layer (type)", "Output Shape", "Param #", "Connections", "MACs",
               "Connected to")
    widths = {c: max(len(headers[c]), *(len(r[c]) for r in rows)) + 2 for c in cols}
    width = sum(widths.values())
    line = "".join(f"{headers[c]:<{widths[c]}}" for c in cols).rstrip()
    out = [f'Model: "{w.name}"', "_" * width, line, "=" * width]
    for i, r in enumerate(rows):
        out.append("".join(f"{r[c]:<{widths[c]}}" for c in cols).rstrip())
        out.append("=" * width if i == len(rows) - 1 else "_" * width)
    trainable, frozen = w.trainable, w.non_trainable
    out += [f"Total params: {trainable + frozen:,}", f"Trainable params: {trainable:,}",
            f"Non-trainable params: {frozen:,}"]
    if any_conn:
        out.append(f"Connections: {total_conn:,}")
    if w.unknown:
        known = sum(r.macs or 0 for r in w.rows)
        out.append(f"Total MACs: at least {known:,} per sample; unknown for "
                   + "; ".join(w.unknown))
    else:
        out.append(f"Total MACs: {format_count(w.macs)} per sample")
    if w.fusions:
        pairs = ", ".join(f"{a} → {b}" for a, b in w.fusions)
        out.append(f"Fused (graph passes: the pooling after a ReLU, or the layer before "
                   f"it, applies its derivative): {pairs}")
    out.append("_" * width)
    return "\n".join(out)


def summary_text(model: Any) -> str:
    """The summary table of a built ``model`` as one string."""
    return render(walk(model))


def summary_of(model: Any, input_shape: Any = None,
               print_fn: Callable[[str], Any] | None = None) -> str:
    """Print (and return) the summary table of ``model`` — built or not — without building.

    Args:
        model: a built model, an unbuilt ``Sequential``, or a model config
            (``{"class_name", "config"}``, or a bare ``get_config()``).
        input_shape: per-sample input shape; needed for an unbuilt ``Sequential`` or a
            config without one, optional otherwise (it fixes free sizes).
        print_fn: called with the text instead of ``print``.

    >>> from numcnn import Sequential
    >>> from numcnn.layers import Dense, Flatten
    >>> text = summary_of(Sequential([Flatten(), Dense(10**6)]), (1, 1000, 1000),
    ...                   print_fn=lambda s: None)   # nothing allocated
    >>> text.splitlines()[-2]
    'Total MACs: 1,000,000,000,000 (1.00 T) per sample'
    """
    text = render(walk(model, input_shape))
    (print if print_fn is None else print_fn)(text)
    return text
