"""``Model.summary()``: a Keras-style table of a model's calls, shapes and parameters.

One row per call of a layer (a shared layer's later calls say ``shared`` instead of
repeating its parameters). Columns: ``Layer (type)``, ``Output Shape``, ``Param #``, then
``Connections`` when some layer's multiply-accumulate connections differ from its
parameters (weight sharing: LeNet-5's figures), and ``Connected to`` when the model is not
a simple chain. The footer gives the totals and the pairs a graph pass fused.
"""

from __future__ import annotations

from typing import Any


def _shape(s: Any) -> str:
    if isinstance(s, list):
        return ", ".join(_shape(t) for t in s)
    return str((None, *s))


def _is_chain(model: Any) -> bool:
    graph = model.graph
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        return False
    prev = graph.input_slots[0]
    for st in graph.steps:
        if st.list_input or st.multi or st.in_slots != [prev]:
            return False
        prev = st.out_slots[0]
    return True


def summary_text(model: Any) -> str:
    """The summary table of a built ``model`` as one string."""
    graph = model.graph
    chain = _is_chain(model)
    calls: dict[int, int] = {}
    label: dict[int, str] = {}  # slot -> "name", "name[1]" (2nd call), "name.1" (2nd output)
    rows: list[tuple[str, ...]] = []
    for k, t in enumerate(graph.inputs):
        name = model.input_names[k]
        label[graph.input_slots[k]] = name
        if not chain:
            rows.append((f"{name} (InputLayer)", _shape(t.shape), "0", "", ""))
    any_conn = False
    total_conn = 0
    seen: set[int] = set()
    for st in graph.steps:
        layer = st.layer
        name = model.layer_name(layer)
        k = calls.get(id(layer), 0)
        calls[id(layer)] = k + 1
        base = name if k == 0 else f"{name}[{k}]"
        for i, s in enumerate(st.out_slots):
            label[s] = base if len(st.out_slots) == 1 else f"{base}.{i}"
        in_shape = ([graph_shape(graph, s) for s in st.in_slots] if st.list_input
                    else graph_shape(graph, st.in_slots[0]))
        out_shape = [t.shape for t in st.node.outputs] if st.multi else st.node.outputs[0].shape
        if id(layer) in seen:
            params = "shared"
            pcount = None
        else:
            seen.add(id(layer))
            pcount = layer.count_params() + layer.count_non_trainable()
            params = f"{pcount:,}"
        conn = None
        if not st.list_input and not hasattr(layer, "graph"):
            try:
                conn = layer.count_connections(in_shape)
            except (TypeError, ValueError):
                conn = None
        if conn is not None and pcount is not None and conn != pcount:
            any_conn = True
        total_conn += conn or 0
        sources = ", ".join(label[s] for s in st.in_slots)
        rows.append((f"{base} ({type(layer).__name__})", _shape(out_shape), params,
                     "" if conn is None else f"{conn:,}", sources))
    cols = [0, 1, 2] + ([3] if any_conn else []) + ([] if chain else [4])
    headers = ("Layer (type)", "Output Shape", "Param #", "Connections", "Connected to")
    widths = {c: max(len(headers[c]), *(len(r[c]) for r in rows)) + 2 for c in cols}
    width = sum(widths.values())
    line = "".join(f"{headers[c]:<{widths[c]}}" for c in cols).rstrip()
    out = [f'Model: "{model.display_name}"', "_" * width, line, "=" * width]
    for i, r in enumerate(rows):
        out.append("".join(f"{r[c]:<{widths[c]}}" for c in cols).rstrip())
        out.append("=" * width if i == len(rows) - 1 else "_" * width)
    trainable = model.count_params()
    frozen = model.count_non_trainable()
    out += [f"Total params: {trainable + frozen:,}", f"Trainable params: {trainable:,}",
            f"Non-trainable params: {frozen:,}"]
    if any_conn:
        out.append(f"Connections: {total_conn:,}")
    if model.fusions:
        pairs = ", ".join(f"{a} → {b}" for a, b in model.fusions)
        out.append(f"Fused (fuse_relu_maxpool: the pooling backward applies ReLU's "
                   f"derivative): {pairs}")
    out.append("_" * width)
    return "\n".join(out)


def graph_shape(graph: Any, slot: int) -> Any:
    """The per-sample shape of the tensor in ``slot``."""
    return graph.tensors[slot].shape
