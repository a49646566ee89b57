"""Reading back what a figure drew: the canvas pixels at the centre of every data cell of an
image, and the colour the documented scaling gives a value (for tests/viz)."""

from __future__ import annotations

import numpy as np


def images_by_label(fig) -> dict:
    """``{label: AxesImage}`` over every axes of ``fig`` (subfigures included)."""
    out = {}
    for ax in fig.get_axes():
        for im in ax.get_images():
            out[im.get_label()] = im
    return out


def drawn_rgb(fig, im, pixels: np.ndarray | None = None) -> np.ndarray:
    """The RGB levels (0–255) the rendered canvas holds at the centre of each cell of the
    image ``im`` (rows, cols, 3): found through the axes' data-to-pixel transform, the
    data cell ``(r, c)`` being centred on the data point ``(x=c, y=r)`` (``imshow``'s
    default extent)."""
    if pixels is None:
        fig.canvas.draw()
        pixels = np.asarray(fig.canvas.buffer_rgba())
    rows, cols = im.get_array().shape[:2]
    rr, cc = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    disp = im.axes.transData.transform(np.c_[cc.ravel(), rr.ravel()])
    H = pixels.shape[0]
    px = np.floor(disp[:, 0]).astype(int)
    py = H - 1 - np.floor(disp[:, 1]).astype(int)  # display y grows upwards
    return pixels[py, px, :3].reshape(rows, cols, 3).astype(int)


def expected_rgb(values: np.ndarray, cmap, vmin: float, vmax: float) -> np.ndarray:
    """``cmap((v − vmin) / (vmax − vmin))`` as 0–255 RGB levels (a constant range maps to
    the bottom colour), computed here from the documented rule."""
    span = vmax - vmin
    t = np.zeros_like(values, dtype=np.float64) if span == 0 else \
        np.clip((np.asarray(values, np.float64) - vmin) / span, 0, 1)
    return np.round(np.asarray(cmap(t))[..., :3] * 255).astype(int)
