"""What a unit responds to, in pixel space: saliency maps and the deconvnet projection.

Both run the model forward once, keeping every call's cache, then send a signal back down
the graph through the layers' own backward passes (``bprop``), with one rule per layer:

* **saliency** (Simonyan, Vedaldi & Zisserman 2014): the gradient of one class score with
  respect to the input, ``∂s_c/∂x`` — the ordinary backward pass started from a one-hot
  ``dy``. The map drawn is ``max_channels |∂s_c/∂x|``. For an RBF output (LeNet-5 1998,
  penalties ``y_i``, smallest wins) the score is ``s_c = −y_c``.
* **deconvnet** (Zeiler & Fergus 2014, §2.1): keep one activation of the chosen feature map
  (its strongest, or the whole map), set every other activation of the layer to zero, and
  project it down: through max pooling by **unpooling with the switches** (the positions
  of the maxima recorded in the forward pass — the pooling's backward routes to them),
  through a ReLU by **rectifying** the signal, ``max(r, 0)`` (whatever the forward input
  was), and through a convolution by the **transposed convolution with the same filters**
  (the convolution's input gradient: the full correlation with the flipped kernels, no
  bias). Other layers (Dense, Flatten, BatchNorm in inference mode, padding, tanh…) pass
  the signal through their own backward pass; the paper's networks have none but linear
  ones and ReLUs, so for a tanh network (LeNet-5 1998) the result mixes the two views.
* ``rule="guided"`` (guided backpropagation, Springenberg et al. 2015): at a ReLU both the
  forward mask and the rectification, ``1[x > 0] · max(r, 0)``; ``rule="gradient"``: the
  plain backward pass (the gradient of the chosen activation, a hidden unit's saliency).

Nothing in the model changes except the ``grads`` the layers' backward passes fill (as any
backward pass does); each call builds its own caches and scratch memory.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..functional import Workspace
from ..layers.activations import ReLU
from ..layers.base import Call
from ..layers.lenet import RBFOutput
from . import _mpl
from ._common import as_image, check_layer_names, single_input, step_of

RULES = ("deconvnet", "guided", "gradient")


class Trace:
    """One forward run of a model's graph in inference mode with every call kept (its own
    caches and workspaces; no fusion marks), and backward runs from any tensor of it.

    Args:
        model: a built model. xs: one array per model input.
        upto: run the steps up to this index only (the rest is not needed).

    Attributes:
        values: the array of every tensor (slot) computed. calls: per step, its ``Call``
            or, for a model nested in the graph, that model's ``Trace``.
    """

    def __init__(self, model: Any, xs: list[np.ndarray], upto: int | None = None):
        g = model.graph
        self.model, self.graph = model, g
        self.values: list[Any] = [None] * g.n_slots
        for s, x in zip(g.input_slots, xs):
            self.values[s] = x
        self.calls: list[Any] = []
        for st in g.steps[: None if upto is None else upto + 1]:
            x = (self.values[st.single_in] if st.single_in is not None
                 else [self.values[s] for s in st.in_slots])
            if st.nested:  # a model inside the graph: trace it step by step as well
                sub = Trace(st.layer, x if isinstance(x, list) else [x])
                outs = sub.outputs
                y = tuple(outs) if st.layer._list_out else outs[0]
                self.calls.append(sub)
            else:
                call = Call(False, [True] * len(st.in_slots) if st.list_input else True,
                            Workspace())
                y = st.layer.fprop(x, call)
                self.calls.append(call)
            if st.single_out is not None:
                self.values[st.single_out] = y
            else:
                for s, v in zip(st.out_slots, y):
                    self.values[s] = v

    @property
    def outputs(self) -> list[np.ndarray]:
        return [self.values[s] for s in self.graph.output_slots]

    def backward(self, seeds: dict[int, np.ndarray], rule: Callable) -> list[Any]:
        """Send ``seeds`` (``{slot: signal}``) down through the traced steps, applying
        ``rule(layer, dy, call) -> dx`` at each; a tensor read by several steps receives the
        sum of their signals. Returns the signal at each model input."""
        g = self.graph
        sig: list[Any] = [None] * g.n_slots
        for s, d in seeds.items():
            _add(sig, s, d)
        for st in reversed(g.steps[: len(self.calls)]):
            if st.multi:
                dy: Any = tuple(sig[s] for s in st.out_slots)
                if all(d is None for d in dy):
                    continue
            else:
                dy = sig[st.out_slots[0]]
                if dy is None:
                    continue
            call = self.calls[st.index]
            if st.nested:
                dys = list(dy) if st.layer._list_out else [dy]
                dxs = call.backward({s: d for s, d in zip(call.graph.output_slots, dys)
                                     if d is not None}, rule)
                dx = dxs if st.list_input else dxs[0]
            else:
                dx = rule(st.layer, dy, call)
            if st.list_input:
                for s, d in zip(st.in_slots, dx):
                    if d is not None:
                        _add(sig, s, d)
            elif dx is not None:
                _add(sig, st.in_slots[0], dx)
        return [sig[s] for s in g.input_slots]


def _add(sig: list[Any], s: int, d: np.ndarray) -> None:
    sig[s] = d if sig[s] is None else sig[s] + d  # a new array: never write into a layer's


def gradient_rule(layer: Any, dy: Any, call: Call) -> Any:
    """The layer's own backward pass."""
    return layer.bprop(dy, call)


def deconvnet_rule(layer: Any, dy: Any, call: Call) -> Any:
    """Zeiler & Fergus: at a ReLU rectify the signal, ``max(r, 0)``; elsewhere the backward
    pass (unpooling with the switches, transposed convolution with the same filters)."""
    if isinstance(layer, ReLU):
        return np.maximum(dy, 0)
    return layer.bprop(dy, call)


def guided_rule(layer: Any, dy: Any, call: Call) -> Any:
    """Guided backpropagation: at a ReLU ``1[x > 0] · max(r, 0)``; elsewhere the backward."""
    if isinstance(layer, ReLU):
        return np.maximum(layer.bprop(dy, call), 0)
    return layer.bprop(dy, call)


_RULES = {"deconvnet": deconvnet_rule, "guided": guided_rule, "gradient": gradient_rule}


def is_rbf(model: Any) -> bool:
    """Whether the model's (first) output comes from an ``RBFOutput`` (penalties)."""
    return isinstance(model.graph.outputs[0].layer, RBFOutput)


def _batch(model: Any, x: Any) -> np.ndarray:
    a = np.asarray(x)
    shape = tuple(model.input_shape) if not isinstance(model.input_shape, list) else None
    if shape is None:
        raise ValueError(f"{model.display_name} has several inputs; saliency takes one")
    if a.ndim == len(shape):
        a = a[None]
    if a.ndim != len(shape) + 1 or any(d is not None and d != n
                                       for d, n in zip(shape, a.shape[1:])):
        raise ValueError(f"{model.display_name} takes inputs of shape {shape}; received "
                         f"{a.shape}")
    if a.dtype.kind not in "biuf" or not np.isfinite(a).all():
        raise ValueError("the input must hold finite numbers")
    return np.ascontiguousarray(a, dtype=model.dtype)


def saliency(model: Any, x: Any, target: Any = None, output: int = 0) -> np.ndarray:
    """The gradient of a class score with respect to the input, ``∂s_c/∂x``.

    Args:
        model: a built model of one input whose output ``output`` is class scores (N, K):
            logits (or a ``Softmax`` layer's probabilities), or RBF penalties (then
            ``s_c = −y_c``).
        x: one sample ``(C, H, W)`` or a batch ``(N, C, H, W)``.
        target: the class ``c`` (an int, or one per sample); None takes the predicted one.

    Returns:
        ``∂s_c/∂x`` with the shape of ``x``, in the model's dtype.
    """
    single = np.ndim(x) == len(model.input_shape)
    xb = _batch(model, x)
    trace = Trace(model, [xb])
    out = trace.outputs[output]
    if np.ndim(out) != 2:
        raise ValueError(f"saliency needs class scores (N, K) from output {output}; it has "
                         f"shape {np.shape(out)}")
    sign = -1.0 if is_rbf(model) else 1.0
    N, K = out.shape
    c = np.argmax(sign * out, axis=1) if target is None else np.broadcast_to(
        np.asarray(target), (N,))
    if c.dtype.kind not in "iu" or c.min() < 0 or c.max() >= K:
        raise ValueError(f"target must be class numbers in [0, {K}); received {target!r}")
    dy = np.zeros_like(out)
    dy[np.arange(N), c] = sign
    dx = trace.backward({model.graph.output_slots[output]: dy}, gradient_rule)[0]
    return dx[0] if single else dx


def deconv_projection(model: Any, x: Any, layer: str, channel: int | None = None,
                      keep: str = "max", rule: str = "deconvnet") -> np.ndarray:
    """Project one feature map's activity of ``layer`` back to pixel space.

    Args:
        model: a built model of one input. x: one sample ``(C, H, W)``.
        layer: the layer whose output is projected (a top-level name).
        channel: the feature map (or, for a vector output, the unit); None takes the map
            with the strongest activation.
        keep: ``"max"`` keeps the map's strongest activation only (Zeiler & Fergus's
            projections of single activations), ``"map"`` the whole map; every other
            activation of the layer is set to zero.
        rule: ``"deconvnet"``, ``"guided"`` or ``"gradient"`` (module docstring).

    Returns:
        the projection, shaped like one input ``(C, H, W)``.
    """
    if rule not in _RULES:
        raise ValueError(f"rule must be one of {RULES}; received rule={rule!r}")
    if keep not in ("max", "map"):
        raise ValueError(f"keep must be 'max' or 'map'; received keep={keep!r}")
    xb = single_input(model, x)
    check_layer_names(model, [layer], allow_input=False)
    step = step_of(model, layer)
    trace = Trace(model, [xb], upto=step.index)
    a = trace.values[step.out_slots[0]]
    seed = np.zeros_like(a)
    flat = a.reshape(1, a.shape[1], -1)  # (1, maps or units, positions)
    if channel is None:
        channel = int(np.argmax(flat[0].max(axis=1)))
    if isinstance(channel, bool) or not isinstance(channel, (int, np.integer)) \
            or not 0 <= channel < a.shape[1]:
        raise ValueError(f"channel must be in [0, {a.shape[1]}) for {layer!r} of output shape "
                         f"{a.shape[1:]}; received channel={channel!r}")
    s = seed.reshape(flat.shape)
    if keep == "max":
        k = int(np.argmax(flat[0, channel]))
        s[0, channel, k] = flat[0, channel, k]
    else:
        s[0, channel] = flat[0, channel]
    return trace.backward({step.out_slots[0]: seed}, _RULES[rule])[0][0]


def _signed(ax: Any, img: np.ndarray, label: str) -> Any:
    m = float(np.abs(img).max()) or 1.0
    im = ax.imshow(img, cmap="RdBu_r", vmin=-m, vmax=m, interpolation="nearest")
    im.set_label(label)
    return im


def _show_input(ax: Any, x: np.ndarray) -> None:
    img, rgb = as_image(x)
    im = ax.imshow(img, interpolation="nearest") if rgb else ax.imshow(
        img, cmap="gray", interpolation="nearest")
    im.set_label("input")
    ax.set_title(f"input {'×'.join(map(str, x.shape))}", fontsize=8)
    _mpl.hide_axis(ax)


def plot_saliency(model: Any, x: Any, target: int | None = None, title: str | None = None
                  ) -> Any:
    """Three panels: the input, the saliency map ``max_channels |∂s_c/∂x|`` (``hot``, from 0
    to its maximum; labelled ``"saliency"``) and the signed gradient (one channel, or the
    channel sum for colour inputs; ``RdBu_r`` symmetric about 0; labelled ``"gradient"``)."""
    xb = single_input(model, x)
    g = saliency(model, xb[0], target)
    out = Trace(model, [xb]).outputs[0][0]
    scores = -out if is_rbf(model) else out
    c = int(np.argmax(scores)) if target is None else int(target)
    sal = np.abs(g).max(axis=0)
    fig = _mpl.figure(7.5, 2.9)
    axes = fig.subplots(1, 3)
    _show_input(axes[0], xb[0])
    im = axes[1].imshow(sal, cmap="hot", vmin=0, vmax=float(sal.max()) or 1.0,
                        interpolation="nearest")
    im.set_label("saliency")
    axes[1].set_title(f"saliency of class {c}", fontsize=8)
    fig.colorbar(im, ax=axes[1], fraction=0.046, pad=0.04)
    im = _signed(axes[2], g.sum(axis=0), "gradient")
    axes[2].set_title("∂s/∂x (red +, blue −)", fontsize=8)
    fig.colorbar(im, ax=axes[2], fraction=0.046, pad=0.04)
    for ax in axes[1:]:
        _mpl.hide_axis(ax)
    pred = int(np.argmax(scores))
    fig.suptitle(title or f"predicted {pred}; gradient of the score of class {c}", fontsize=9)
    return fig


def plot_deconv(model: Any, x: Any, layer: str, channels: Any = None, top: int = 8,
                keep: str = "max", rule: str = "deconvnet", cols: int = 5,
                title: str | None = None) -> Any:
    """The input, then the projection (:func:`deconv_projection`) of each of ``channels``
    of ``layer`` (default: the ``top`` maps with the strongest activation), each on
    ``RdBu_r`` symmetric about 0 (labelled ``"deconv[c]"``; for a colour input the RGB
    image ``(p − min)/(max − min)``), with a box around where the projection is non-zero
    (the part of the input that unit sees)."""
    xb = single_input(model, x)
    check_layer_names(model, [layer], allow_input=False)
    step = step_of(model, layer)
    a = Trace(model, [xb], upto=step.index).values[step.out_slots[0]]
    strength = a.reshape(a.shape[1], -1).max(axis=1)
    if channels is None:
        channels = [int(c) for c in np.argsort(-strength, kind="stable")[:max(1, int(top))]]
    channels = [int(c) for c in channels]
    n = len(channels) + 1
    nrows, ncols = _mpl.grid_shape(n, cols)
    fig = _mpl.figure(ncols * 1.6 + 0.3, nrows * 1.8 + 0.5)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    _show_input(axes[0], xb[0])
    for ax, c in zip(axes[1:], channels):
        p = deconv_projection(model, xb[0], layer, c, keep, rule)
        if p.shape[0] == 3:
            im = ax.imshow(as_image(p)[0], interpolation="nearest")
            im.set_label(f"deconv[{c}]")
        else:
            _signed(ax, p.sum(axis=0), f"deconv[{c}]")
        nz = np.argwhere(np.abs(p).sum(axis=0) > 0)
        if nz.size:
            (r0, c0), (r1, c1) = nz.min(axis=0), nz.max(axis=0)
            from matplotlib.patches import Rectangle

            ax.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0 + 1, r1 - r0 + 1, fill=False,
                                   edgecolor="0.3", linewidth=0.8, linestyle="--"))
        ax.set_title(f"map {c} (max {strength[c]:.2g})", fontsize=8)
        _mpl.hide_axis(ax)
    for ax in axes[n:]:
        ax.set_visible(False)
    what = "strongest activation" if keep == "max" else "whole map"
    fig.suptitle(title or f"{layer}: {rule} projections ({what} of each map)", fontsize=9)
    return fig


__all__ = ["RULES", "Trace", "deconv_projection", "deconvnet_rule", "gradient_rule",
           "guided_rule", "plot_deconv", "plot_saliency", "saliency"]
