"""The terms the trainer adds to the data loss: activity penalties and weight penalties.

* **Activity penalties** (:class:`numcnn.layers.PenaltyLayer`: ``SparsityPenalty``,
  ``ActivityRegularization``) compute their term in the forward pass; :func:`activity_terms`
  reads every such call of a recorded run (the tape; nested models included). Their
  gradients are added by their own backward pass.
* **Weight penalties** (``layer.regularizers``, :mod:`numcnn.regularizers`) are functions of
  the parameters: :func:`weight_terms` adds ``R(W)`` of every trainable layer and, after
  the backward pass, ``∂R/∂W`` into the layer's gradient.

Both return ``{log name: value}``; the trainer adds the values to the batch's loss and
reports each name in the logs (``sparsity_loss``, ``weight_decay_loss``, …). A model's
names are fixed (:func:`term_names`), so the epoch's running sums have a fixed layout.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _leaves(model: Any) -> list[Any]:
    leaf = getattr(model, "leaf_layers", None)
    return leaf() if leaf is not None else [model]


def term_names(model: Any) -> list[str]:
    """The log names of every penalty the model can add, sorted (empty for most models)."""
    names = set()
    for layer in _leaves(model):
        if hasattr(layer, "penalty_value"):
            names.add(layer.log_name)
        for reg in getattr(layer, "regularizers", {}).values():
            names.add(reg.log_name)
    return sorted(names)


def has_activity(model: Any) -> bool:
    """Whether the model holds an activity-penalty layer (its runs must then be recorded)."""
    return any(hasattr(layer, "penalty_value") for layer in _leaves(model))


def activity_terms(model: Any, tape: list[Any] | None, out: dict[str, float] | None = None
                   ) -> dict[str, float]:
    """``{log name: Σ value}`` of the activity penalties of one recorded run (``tape``, as
    ``model.run`` returns it); nested models are walked through their calls' tapes."""
    out = {} if out is None else out
    if tape is None:
        return out
    for step, call in zip(model.graph.steps, tape):
        layer = step.layer
        if getattr(layer, "graph", None) is not None and step.nested:
            activity_terms(layer, call.cache, out)
        elif hasattr(layer, "penalty_value"):
            out[layer.log_name] = out.get(layer.log_name, 0.0) + layer.penalty_value(call)
    return out


def weight_terms(model: Any, grads: bool, out: dict[str, float] | None = None
                 ) -> dict[str, float]:
    """``{log name: Σ R(W)}`` over the trainable layers' regularizers; with ``grads`` also
    ``grads[key] += ∂R/∂W`` (call it after the backward pass, which overwrites them)."""
    out = {} if out is None else out
    for layer in _leaves(model):
        regs = getattr(layer, "regularizers", None)
        if not regs or not layer.trainable:
            continue
        for key, reg in regs.items():
            w = layer.params.get(key)
            if w is None:
                raise ValueError(f"{layer.display_name}: a regularizer names the parameter "
                                 f"{key!r}, which this layer does not have; its parameters: "
                                 f"{sorted(layer.params)}")
            out[reg.log_name] = out.get(reg.log_name, 0.0) + reg(w)
            if grads:
                g = layer.grads[key]
                g += reg.gradient(w)
    return out


def total(terms: dict[str, float]) -> float:
    """The sum of the terms (0 when there are none)."""
    return float(np.sum(list(terms.values()))) if terms else 0.0
