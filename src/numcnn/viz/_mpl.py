"""Matplotlib, imported only when a picture is drawn, and used without its global state.

Every figure is a :class:`matplotlib.figure.Figure` with its own Agg canvas: no
``pyplot``, no current figure, no interactive backend, so the functions run headless (a
server, CI) and from several threads at once. Figures are written with :func:`save`,
atomically (a temporary file renamed into place, :func:`numcnn.io.paths.atomic_write`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

#: what :func:`save` writes, by file suffix
FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}

INSTALL = ("pictures need matplotlib, which is not installed: pip install 'numcnn[plot]' "
           "(or pip install matplotlib)")


def require() -> Any:
    """The ``matplotlib`` module, or an ``ImportError`` that says how to install it."""
    try:
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
        from matplotlib.figure import Figure  # noqa: F401
    except ImportError:
        raise ImportError(INSTALL) from None
    return matplotlib


def figure(width: float, height: float, dpi: float = 100) -> Any:
    """A new ``Figure`` of ``width`` × ``height`` inches with an Agg canvas attached and
    constrained layout (titles and colour bars never overlap)."""
    require()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(width, 1.0), max(height, 1.0)), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def colormap(name: Any) -> Any:
    """A colour map by name (or a ``Colormap`` as it is), with a clear error."""
    require()
    import matplotlib

    if not isinstance(name, str):
        return name
    try:
        return matplotlib.colormaps[name]
    except KeyError:
        raise ValueError(f"unknown colour map {name!r}; e.g. 'gray', 'viridis', 'RdBu_r' "
                         "(see matplotlib.colormaps)") from None


def hide_axis(ax: Any) -> None:
    """No ticks, labels or frame: the axes shows an image only."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def output_format(path: str | os.PathLike) -> str:
    """The format for ``path`` from its suffix (``.png``, ``.svg`` or ``.pdf``)."""
    suffix = Path(os.fspath(path)).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{os.fspath(path)}: expected a file name ending in "
                         f"{', '.join(FORMATS)}; received suffix {suffix or '(none)'!r}")
    return FORMATS[suffix]


def save(fig: Any, path: str | os.PathLike, dpi: float | None = None) -> Path:
    """Write ``fig`` to ``path`` (PNG, SVG or PDF by suffix), atomically; returns the path.

    The file is written to a temporary name beside ``path`` and renamed into place, so a
    reader never sees half a picture; a folder, device or FIFO at ``path`` is refused
    (:func:`numcnn.io.paths.atomic_write`).
    """
    from ..io.paths import atomic_write

    fmt = output_format(path)
    kwargs = {"format": fmt}
    if dpi is not None:
        kwargs["dpi"] = dpi
    if fmt == "png":  # no timestamps or software tags: the same figure gives the same bytes
        kwargs["metadata"] = {"Software": None}
    elif fmt == "svg":
        kwargs["metadata"] = {"Date": None}
    else:
        kwargs["metadata"] = {"CreationDate": None}
    return atomic_write(path, lambda f: fig.savefig(f, **kwargs), "the picture")


def render(fig: Any) -> np.ndarray:
    """Draw ``fig`` on its Agg canvas and return the pixels, ``(H, W, 4)`` uint8 RGBA, top
    row first (what the PNG file holds)."""
    canvas = fig.canvas
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()


def grid_shape(n: int, cols: int) -> tuple[int, int]:
    """``(rows, columns)`` of a grid of ``n`` panels at most ``cols`` wide."""
    c = max(1, min(n, cols))
    return -(-n // c), c
