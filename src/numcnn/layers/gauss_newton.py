"""Per-layer rules for the diagonal Gauss–Newton pass of SDLM (LeCun et al. 1998, app. C).

Stochastic diagonal Levenberg–Marquardt needs, for every weight ``w_k``, an estimate
``h_kk`` of the curvature ``∂²E/∂w_k²``. It is obtained by a second backward pass that
propagates *second* derivatives ``d2y = ∂²E/∂y²`` instead of first ones, dropping the
off-diagonal terms and the terms in ``f″`` (the Gauss–Newton approximation):

* a weighted sum ``y = Σ w x``: ``h_w = Σ_{connections sharing w} x² · d2y`` and
  ``d2x = Σ w² · d2y`` — the layer's usual backward with squared inputs and weights;
* an element-wise ``y = f(a)``: ``d2a = f′(a)² · d2y``;
* a reshape, crop or padding moves ``d2y`` as it moves ``dy``.

Each supporting layer registers its rule here, next to its own definition::

    @gauss_newton_rule(Dense)
    def _dense_gn(layer, d2y, call):
        ...
        return d2x, {"W": h_W, "b": h_b}

A rule receives the forward :class:`Call` of that layer (its cache) and returns ``d2x``
(``None`` when ``call.need_dx`` is False) and a dict of curvature arrays keyed like the
layer's ``params``. The graph walk that runs the rules over a model, and the SDLM
callback, live in :mod:`numcnn.training.sdlm`; nothing here is a method of ``Layer``.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

GaussNewtonRule = Callable[[Any, np.ndarray, Any], "tuple[np.ndarray | None, dict]"]

_RULES: dict[type, GaussNewtonRule] = {}


def gauss_newton_rule(layer_class: type) -> Callable[[GaussNewtonRule], GaussNewtonRule]:
    """Register the Gauss–Newton rule of ``layer_class`` (and its subclasses)."""

    def deco(fn: GaussNewtonRule) -> GaussNewtonRule:
        _RULES[layer_class] = fn
        return fn

    return deco


def rule_for(layer: Any) -> GaussNewtonRule:
    """The rule registered for ``layer``'s class (or the nearest base class)."""
    for cls in type(layer).__mro__:
        rule = _RULES.get(cls)
        if rule is not None:
            return rule
    raise NotImplementedError(
        f"{layer.display_name} ({type(layer).__name__}) has no Gauss–Newton rule, which SDLM "
        f"needs; layers with one: {', '.join(sorted(c.__name__ for c in _RULES))}")


def supported(layer_class: type) -> bool:
    """Whether a rule is registered for ``layer_class`` or one of its bases."""
    return any(c in _RULES for c in layer_class.__mro__)
