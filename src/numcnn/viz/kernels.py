"""Filters as pictures: convolution kernels, LeNet-5's RBF bitmaps, the Gabor bank.

**Kernels** ``W`` of shape ``(F, C, kh, kw)`` are drawn three ways:

* ``C = 3`` (a first layer on colour images): one RGB image per filter, each filter scaled
  to [0, 1] by its own extremes, ``(W[f] − min W[f]) / (max W[f] − min W[f])`` (the
  convention of AlexNet's and ZFNet's filter figures);
* ``C = 1``: one grey image per filter, all on one symmetric scale ``[−m, m]`` with
  ``m = max |W|`` over the layer, so 0 is mid-grey and filters compare (colour bar shown);
* ``C > 3`` (a deeper layer): a grid of ``W[f, c]``, one row per output filter and one
  column per input map, on the same symmetric scale; kernels a connection table leaves out
  (LeNet-5's C3) are left blank.

**RBF bitmaps**: the centres ``W`` (10, 84) of LeNet-5's output units, each drawn as the
12 × 7 bitmap it is (LeCun et al. 1998, Fig. 3), +1 black and −1 white (``gray_r`` over
``[−m, m]``, ``m = max |W|``; m = 1 for the fixed centres).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _mpl


def _positive(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name} must be a positive int; received {name}={v!r}")
    return int(v)


def _symmetric(W: np.ndarray) -> float:
    m = float(np.max(np.abs(W))) if W.size else 0.0
    return m if m > 0 and np.isfinite(m) else 1.0


def kernel_rgb(w: np.ndarray) -> np.ndarray:
    """One filter ``(3, kh, kw)`` as an ``(kh, kw, 3)`` image in [0, 1]:
    ``(w − min w) / (max w − min w)`` (all 0.5 for a constant filter)."""
    w = np.asarray(w, dtype=np.float64)
    lo, hi = float(w.min()), float(w.max())
    if hi <= lo:
        return np.full(w.shape[1:] + (3,), 0.5)
    return ((w - lo) / (hi - lo)).transpose(1, 2, 0)


def plot_kernels(W: Any, mask: Any = None, rgb: bool | None = None, cols: int = 8,
                 max_filters: int = 64, max_channels: int = 16, cmap: Any = "gray",
                 titles: list[str] | None = None, title: str | None = None,
                 panel_size: float = 0.8) -> Any:
    """A figure of convolution kernels ``W`` (F, C, kh, kw) (see the module docstring).

    Args:
        W: the kernels. mask: optional ``(F, C)`` booleans, False for an absent kernel.
        rgb: draw each filter as an RGB image (default: when ``C == 3``).
        cols: filters per row (one panel per filter). max_filters, max_channels: how many
            filters and input maps a grid shows (the first ones; the title says so).
        cmap: colour map of the grey panels. titles: one title per filter.
        title: the figure's title.

    Returns:
        a ``Figure``; each kernel is an ``AxesImage`` labelled ``"W[f]"`` (one panel per
        filter) or ``"W[f,c]"`` (the grid), whose data is the kernel after the scaling
        above.
    """
    W = np.asarray(W)
    if W.ndim != 4 or W.dtype.kind not in "iuf" or 0 in W.shape:
        raise ValueError(f"expected kernels of shape (F, C, kh, kw); received {W.shape} "
                         f"{W.dtype}")
    W = W.astype(np.float64)
    F, C = W.shape[:2]
    cols, max_filters, max_channels = (_positive("cols", cols),
                                       _positive("max_filters", max_filters),
                                       _positive("max_channels", max_channels))
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (F, C):
            raise ValueError(f"mask must have shape (F, C) = {(F, C)}; received {mask.shape}")
    if rgb is None:
        rgb = C == 3
    if rgb and C != 3:
        raise ValueError(f"rgb=True needs 3 input channels; the kernels have {C}")
    nf = min(F, max_filters)
    note = f" (first {nf} of {F} filters)" if nf < F else ""
    cm = _mpl.colormap(cmap)
    if rgb or C == 1:
        nrows, ncols = _mpl.grid_shape(nf, cols)
        fig = _mpl.figure(ncols * panel_size + (0.2 if rgb else 0.8),
                          nrows * (panel_size + (0.25 if titles else 0)) + 0.5)
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        m = _symmetric(W[:nf])
        im = None
        for k, ax in enumerate(axes):
            _mpl.hide_axis(ax)
            if k >= nf:
                ax.set_visible(False)
                continue
            if rgb:
                img = ax.imshow(kernel_rgb(W[k]), interpolation="nearest")
            else:
                img = im = ax.imshow(W[k, 0], cmap=cm, vmin=-m, vmax=m, interpolation="nearest")
            img.set_label(f"W[{k}]")
            if titles:
                ax.set_title(titles[k], fontsize=7)
        if im is not None:
            fig.colorbar(im, ax=list(axes[:nf]), fraction=0.05, pad=0.02)
        fig.suptitle((title or f"{F} filters {C}×{W.shape[2]}×{W.shape[3]}") + note,
                     fontsize=10)
        return fig
    nc = min(C, max_channels)
    if nc < C:
        note += f" (first {nc} of {C} input maps)"
    fig = _mpl.figure(nc * panel_size * 0.7 + 1.0, nf * panel_size * 0.7 + 0.6)
    axes = fig.subplots(nf, nc, squeeze=False)
    m = _symmetric(W[:nf, :nc])
    im = None
    for f in range(nf):
        for c in range(nc):
            ax = axes[f, c]
            _mpl.hide_axis(ax)
            if f == 0:
                ax.set_title(str(c), fontsize=6)
            if c == 0:
                ax.set_ylabel(str(f), fontsize=6, rotation=0, labelpad=6, va="center")
            if mask is not None and not mask[f, c]:
                continue  # an absent connection: a blank panel
            im = ax.imshow(W[f, c], cmap=cm, vmin=-m, vmax=m, interpolation="nearest")
            im.set_label(f"W[{f},{c}]")
    if im is not None:
        fig.colorbar(im, ax=list(axes.ravel()), fraction=0.04, pad=0.02)
    fig.suptitle((title or f"{F} filters over {C} input maps (rows: filters, columns: input "
                  "maps)") + note, fontsize=9)
    return fig


def plot_rbf_bitmaps(W: Any = None, shape: tuple[int, int] = (12, 7), cols: int = 10,
                     title: str | None = None) -> Any:
    """LeNet-5's RBF centres as bitmaps: unit ``i``'s weights ``W[i]`` as a ``shape`` image.

    Args:
        W: the centres (units, 84) — an ``RBFOutput``'s ``params["W"]``; None draws the
            paper's bitmaps (:func:`numcnn.layers.lenet5_digit_bitmaps`).
        shape: (rows, columns) of one bitmap (12 × 7 in the paper).

    Returns:
        a ``Figure``; bitmap ``i`` is an ``AxesImage`` labelled ``"rbf[i]"`` with data
        ``W[i].reshape(shape)`` on ``gray_r`` over ``[−m, m]`` (+1 black).
    """
    if W is None:
        from ..layers.lenet import lenet5_digit_bitmaps

        W = lenet5_digit_bitmaps().reshape(10, -1)
    W = np.asarray(W, dtype=np.float64)
    if W.ndim != 2 or W.shape[1] != shape[0] * shape[1]:
        raise ValueError(f"expected RBF centres (units, {shape[0] * shape[1]}) for "
                         f"{shape[0]}×{shape[1]} bitmaps; received {W.shape}")
    n = W.shape[0]
    nrows, ncols = _mpl.grid_shape(n, _positive("cols", cols))
    fig = _mpl.figure(ncols * 0.7 + 0.2, nrows * 1.15 + 0.4)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    m = _symmetric(W)
    for k, ax in enumerate(axes):
        _mpl.hide_axis(ax)
        if k >= n:
            ax.set_visible(False)
            continue
        im = ax.imshow(W[k].reshape(shape), cmap="gray_r", vmin=-m, vmax=m,
                       interpolation="nearest")
        im.set_label(f"rbf[{k}]")
        ax.set_title(str(k), fontsize=8)
    fig.suptitle(title or "RBF output centres (LeCun et al. 1998, Fig. 3)", fontsize=9)
    return fig


def gabor_bank(filters: int = 16, kernel_size: int = 7, in_channels: int = 1, seed: int = 0,
               **gabor: Any) -> tuple[np.ndarray, list[str]]:
    """The kernels ``Conv2D(filters, kernel_size, kernel_initializer="gabor")`` starts from,
    ``(filters, in_channels, k, k)``, and one label per filter (θ, λ, ψ).

    ``gabor`` holds :class:`numcnn.initializers.Gabor`'s arguments (``n_orientations``,
    ``n_scales``, ``wavelengths``, ``sigma_ratio``, ``gamma``, ``phases``, …); ``seed``
    draws the phases of filters beyond the full bank.
    """
    from ..initializers import Gabor

    filters, kernel_size = _positive("filters", filters), _positive("kernel_size", kernel_size)
    init = Gabor(**gabor)
    k = kernel_size
    W = init((filters, _positive("in_channels", in_channels), k, k), in_channels * k * k,
             filters * k * k, np.random.default_rng(seed), dtype=np.float64)
    bank = init.n_orientations * init.n_scales
    labels = []
    for f in range(filters):
        theta, lam, _ = init.filter_params(f, (k, k))
        r = f // bank
        psi = f"ψ={np.degrees(init.phases[r]):.0f}°" if r < len(init.phases) else "ψ random"
        labels.append(f"θ={np.degrees(theta):.0f}° λ={lam:g}\n{psi}")
    return W, labels


def plot_gabor_bank(filters: int = 16, kernel_size: int = 7, cols: int | None = None,
                    seed: int = 0, **gabor: Any) -> Any:
    """The Gabor initial bank (:func:`gabor_bank`) drawn as kernels, each titled with its
    orientation θ, wavelength λ and phase ψ; one row per phase by default."""
    W, labels = gabor_bank(filters, kernel_size, 1, seed, **gabor)
    from ..initializers import Gabor

    init = Gabor(**gabor)
    cols = cols or min(filters, init.n_orientations * init.n_scales)
    return plot_kernels(W, cols=cols, titles=labels,
                        title=f"Gabor initial bank: {filters} kernels {kernel_size}×"
                              f"{kernel_size}", panel_size=1.0)


def plot_filters(model: Any, layer: str | None = None, **kwargs: Any) -> Any:
    """The filters of one layer of ``model``: a ``Conv2D``'s kernels (:func:`plot_kernels`,
    absent connections of a connection table left blank) or an ``RBFOutput``'s bitmaps
    (:func:`plot_rbf_bitmaps`).

    Args:
        model: a built model. layer: the layer's name (``"block/conv"`` reaches into a
            nested model); None takes the first ``Conv2D``.
        kwargs: passed to :func:`plot_kernels`.

    Raises:
        ValueError: no such layer (the message lists the model's layers), or a layer with
        neither kernels nor RBF centres.
    """
    from ..layers.conv import Conv2D
    from ..layers.lenet import RBFOutput

    if layer is None:
        found = next((lay for lay in model.leaf_layers() if isinstance(lay, Conv2D)), None)
        if found is None:
            raise ValueError(f"{model.display_name} has no Conv2D layer; name one with "
                             f"layer=... (its layers: {', '.join(_names(model))})")
        lay, name = found, _leaf_name(model, found)
    else:
        try:
            lay = model.get_layer(layer)
        except ValueError:
            raise ValueError(f"no layer named {layer!r} in {model.display_name}; its layers: "
                             f"{', '.join(_names(model))}") from None
        name = layer
    if isinstance(lay, RBFOutput):
        return plot_rbf_bitmaps(lay.params["W"], title=f"{name}: RBF centres as 12×7 bitmaps")
    if not isinstance(lay, Conv2D):
        raise ValueError(f"layer {name!r} is a {type(lay).__name__}; filters are drawn for "
                         "Conv2D layers (kernels) and RBFOutput layers (bitmaps)")
    W = lay.params["W"]
    mask = None
    if lay.mask is not None:
        mask = lay.mask.reshape(W.shape[0], W.shape[1], -1).any(axis=2)
    kwargs.setdefault("title", f"{name}: {W.shape[0]} kernels {W.shape[1]}×{W.shape[2]}×"
                               f"{W.shape[3]}")
    return plot_kernels(W, mask=mask, **kwargs)


def _names(model: Any) -> list[str]:
    return [model.layer_name(lay) for lay in model.layers]


def _leaf_name(model: Any, leaf: Any) -> str:
    for lay in model.layers:
        if lay is leaf:
            return model.layer_name(lay)
        if hasattr(lay, "leaf_layers") and leaf in lay.leaf_layers():
            return f"{model.layer_name(lay)}/{_leaf_name(lay, leaf)}"
    return leaf.display_name  # pragma: no cover


__all__ = ["gabor_bank", "kernel_rgb", "plot_filters", "plot_gabor_bank", "plot_kernels",
           "plot_rbf_bitmaps"]
