"""Feature maps: what each layer of a model makes of one input, as grids of images.

A layer whose output is ``(C, H, W)`` is drawn as a grid of its ``C`` maps; a layer whose
output is a vector ``(D,)`` (or ``(D, 1, 1)``, LeNet-5's C5) as one strip of ``D`` cells
(numbered when ``D ≤ 20``), or as an image when ``shapes`` gives it one — by default, in a
model whose output is LeNet-5's RBF layer with the digit bitmaps, the 84 units of F6 and its
squashing as the 12 × 7 picture the RBF units compare with their bitmaps.
Each panel is titled by the layer's name and output shape (``C1 — 6@28×28``).

**Scaling.** Every map ``a`` is drawn with the colour map over ``[vmin, vmax]`` — the value
``v`` gets the colour ``cmap((v − vmin) / (vmax − vmin))`` (clipped to [0, 1]; a constant
map, ``vmin = vmax``, gets the bottom colour) — where the limits are

* ``scale="map"``: each map's own minimum and maximum (the most contrast, the default);
* ``scale="layer"``: the layer's minimum and maximum, shared by its maps, with a colour bar
  (maps compare with each other: a dead map is dark);
* ``scale="all"``: one range over every layer shown (the input excepted), with colour bars.

The input is shown first, at its own range (a 3-channel input as an RGB image,
``(x − min) / (max − min)``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _mpl
from ._common import as_image, check_layer_names, describe_shape, names_of, single_input

SCALES = ("map", "layer", "all")


def default_layers(model: Any) -> list[str]:
    """The layers whose output is a stack of images ``(C, H, W)`` with more than one pixel
    (every layer when the model has none)."""
    picked = []
    for layer, name in zip(model.layers, names_of(model)):
        shape = model.graph.tensors[_first_out_slot(model, layer)].shape
        if len(shape) == 3 and (shape[1] or 2) * (shape[2] or 2) > 1:
            picked.append(name)
    return picked or names_of(model)


def _first_out_slot(model: Any, layer: Any) -> int:
    step = next(st for st in model.graph.steps if st.layer is layer)
    return step.out_slots[0]


def feature_maps(model: Any, x: Any, layers: Any = None) -> dict[str, np.ndarray]:
    """The outputs of ``layers`` for one input ``x``, in inference mode.

    Args:
        model: any built model (``Sequential``, a graph model, the zoo).
        x: one sample ``(C, H, W)`` (or ``(1, C, H, W)``), cast to the model's dtype.
        layers: layer names (a list, or one string ``"C1,S2,C3"``); ``"input"`` is the
            input; None picks :func:`default_layers`.

    Returns:
        ``{name: array}`` without the batch axis, in the order asked (a layer with several
        outputs gives ``name[0]``, ``name[1]``, …).

    Raises:
        ValueError: an unknown layer name (the message lists the model's layers), or an
        input of the wrong shape.
    """
    xb = single_input(model, x)
    names = default_layers(model) if layers is None else check_layer_names(model, layers)
    outs = model.intermediates(xb, names)
    result: dict[str, np.ndarray] = {}
    for name in names:
        value = outs[name]
        if isinstance(value, list):
            for k, a in enumerate(value):
                result[f"{name}[{k}]"] = np.asarray(a)[0]
        else:
            result[name] = np.asarray(value)[0]
    return result


def color_limits(arrays: list[np.ndarray]) -> tuple[float, float]:
    """``(min, max)`` over finite values of ``arrays`` (``(0, 1)`` when there are none)."""
    finite = [a[np.isfinite(a)] for a in arrays]
    finite = [a for a in finite if a.size]
    if not finite:
        return 0.0, 1.0
    return (float(min(a.min() for a in finite)), float(max(a.max() for a in finite)))


def _as_panels(a: np.ndarray, shape: Any = None) -> tuple[list[np.ndarray], str]:
    """The panels of one layer's output and how they are drawn: ``"grid"`` of maps, a
    vector ``"strip"``, or one ``"image"`` (a vector reshaped to ``shape``)."""
    if a.ndim == 3 and a.shape[1] * a.shape[2] > 1:
        return [a[c] for c in range(a.shape[0])], "grid"
    if shape is not None:
        if int(np.prod(shape)) != a.size:
            raise ValueError(f"shapes: cannot draw {a.size} values as {tuple(shape)}")
        return [a.reshape(shape)], "image"
    return [a.reshape(1, -1)], "strip"


def rbf_shapes(model: Any) -> dict[str, tuple[int, int]]:
    """``{name: (12, 7)}`` for the 84-unit vector layers of a model whose output layer is
    LeNet-5's RBF with the digit bitmaps (F6 and its squashing), else ``{}``."""
    from ..layers.lenet import RBFOutput

    out = model.graph.outputs[0].layer
    if not (isinstance(out, RBFOutput) and out.centers == "digits"):
        return {}
    return {name: (12, 7) for layer, name in zip(model.layers, names_of(model))
            if model.graph.tensors[_first_out_slot(model, layer)].shape == (84,)}


def plot_feature_maps(model: Any, x: Any, layers: Any = None, scale: str = "map",
                      cmap: Any = "gray", cols: int = 8, max_maps: int = 64,
                      show_input: bool = True, title: str | None = None,
                      panel_size: float = 0.9, shapes: dict | None = None) -> Any:
    """A figure of the feature maps of ``layers`` for one input.

    Args:
        model: any built model. x: one sample ``(C, H, W)``.
        layers: names, as :func:`feature_maps` (None: every image-shaped layer).
        scale: ``"map"``, ``"layer"`` or ``"all"`` (see the module docstring).
        cmap: colour map name (default ``"gray"``: black the smallest, white the largest).
        cols: maps per row. max_maps: maps shown per layer (the first ones; the title says
            how many there are).
        show_input: draw the input first. title: the figure's title.
        panel_size: inches per map.
        shapes: ``{name: (h, w)}`` draws a vector layer as an ``h × w`` image (row-major);
            None: :func:`rbf_shapes`.

    Returns:
        a ``matplotlib.figure.Figure``. Each map is one ``AxesImage`` labelled
        ``"name[c]"`` (``"name"`` for a vector strip or image, ``"input"``/``"input[c]"``
        for the input), whose data is the activation itself (reshaped for ``shapes``) and
        whose colour limits are the scaling above.
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}; received scale={scale!r}")
    for what, v in (("cols", cols), ("max_maps", max_maps)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{what} must be a positive int; received {what}={v!r}")
    maps = feature_maps(model, x, layers)
    shapes = rbf_shapes(model) if shapes is None else dict(shapes)
    cm = _mpl.colormap(cmap)
    rows: list[tuple[str, np.ndarray, list[np.ndarray], str]] = []
    if show_input:
        xin = single_input(model, x)[0]
        if xin.ndim == 3 and xin.shape[0] == 3:
            rows.append(("input", xin, [as_image(xin)[0]], "grid"))
        else:
            panels, kind = _as_panels(xin if xin.ndim == 3 else xin.reshape(-1))
            rows.append(("input", xin, panels, kind))
    for name, a in maps.items():
        panels, kind = _as_panels(a, shapes.get(name))
        rows.append((name, a, panels[:max_maps], kind))
    shared = color_limits([a for n, a, _, _ in rows if n != "input"]) if scale == "all" else None

    ncols = max(1, min(cols, max([len(p) for _, _, p, k in rows if k == "grid"], default=1)))
    heights = [{"strip": 0.45, "image": 1.6}.get(kind) or _mpl.grid_shape(len(panels),
                                                                          ncols)[0]
               for _, _, panels, kind in rows]
    heights = [h + 0.35 for h in heights]
    bar = scale != "map"
    fig = _mpl.figure(ncols * panel_size + (0.8 if bar else 0.2),
                      sum(heights) * panel_size + (0.4 if title else 0.0))
    if title:
        fig.suptitle(title)
    subfigs = fig.subfigures(len(rows), 1, height_ratios=heights, squeeze=False)[:, 0]
    for sub, (name, a, panels, kind) in zip(subfigs, rows):
        total = a.shape[0] if (a.ndim == 3 and kind == "grid") else None
        head = f"{name} — {describe_shape(a.shape)}"
        if kind == "image":
            head += f" as {panels[0].shape[0]}×{panels[0].shape[1]}"
        if total is not None and len(panels) < total:
            head += f" (first {len(panels)} of {total})"
        sub.suptitle(head, fontsize=9)
        if name == "input":
            limits = None if (a.ndim == 3 and a.shape[0] == 3) else "own"
        elif scale == "all":
            limits = shared
        elif scale == "layer":
            limits = color_limits([a])
        else:
            limits = "own"
        _draw_panels(sub, name, panels, kind, ncols, cm, limits,
                     bar=bar and name != "input")
    return fig


def _draw_panels(sub: Any, name: str, panels: list[np.ndarray], kind: str, ncols: int,
                 cm: Any, limits: Any, bar: bool) -> None:
    if kind != "grid":  # one vector: a strip of cells, or reshaped into an image
        ax = sub.subplots(1, 1)
        vmin, vmax = color_limits(panels) if limits in ("own", None) else limits
        im = ax.imshow(panels[0], cmap=cm, vmin=vmin, vmax=vmax, interpolation="nearest",
                       aspect="auto" if kind == "strip" else "equal")
        im.set_label(name)
        _mpl.hide_axis(ax)
        D = panels[0].shape[1]
        if kind == "strip" and D <= 20:  # few units: number them
            ax.set_xticks(range(D), [str(k) for k in range(D)], fontsize=7)
            ax.tick_params(length=0, pad=1)
        if bar:
            sub.colorbar(im, ax=ax, fraction=0.05, pad=0.02)
        return
    nrows, nc = _mpl.grid_shape(len(panels), ncols)
    axes = np.atleast_1d(sub.subplots(nrows, ncols, squeeze=False)).ravel()
    im = None
    for k, ax in enumerate(axes):
        _mpl.hide_axis(ax)
        if k >= len(panels):
            ax.set_visible(False)
            continue
        p = panels[k]
        if p.ndim == 3:  # an RGB input
            im = ax.imshow(p, interpolation="nearest")
            im.set_label(name)
            continue
        vmin, vmax = color_limits([p]) if limits == "own" else limits
        im = ax.imshow(p, cmap=cm, vmin=vmin, vmax=vmax, interpolation="nearest")
        im.set_label(f"{name}[{k}]")
    if bar and im is not None:
        sub.colorbar(im, ax=list(axes[: len(panels)]), fraction=0.05, pad=0.02)


__all__ = ["color_limits", "default_layers", "feature_maps", "plot_feature_maps"]
