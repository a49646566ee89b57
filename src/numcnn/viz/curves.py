"""Training curves: loss and metrics per epoch, training against validation, and the
learning rate on a second axis.

The figures read a :class:`numcnn.training.History` (``model.fit``'s return value), a plain
``{name: [values per epoch]}`` dict, or the CSV file a :class:`numcnn.training.CSVLogger`
wrote (``epoch`` then one column per log value, as Keras's). A log file is untrusted input:
at most :data:`MAX_LOG_BYTES` are read, and a field that is not a number is an error naming
its line and column.
"""

from __future__ import annotations

import csv
import io
import math
import os
from typing import Any

import numpy as np

from . import _mpl

#: the largest training log :func:`read_csv_log` reads (a CSV row per epoch is ~100 bytes)
MAX_LOG_BYTES = 16 << 20


def read_csv_log(path: str | os.PathLike, separator: str | None = None) -> dict[str, list[float]]:
    """The columns of a ``CSVLogger`` file as ``{name: [float per row]}``.

    Args:
        path: the CSV file: a header row, then one row per epoch. An empty field is NaN.
        separator: the field separator; None guesses it from the header (``,``, ``;`` or a
            tab).

    Raises:
        FileNotFoundError: no such file. ValueError: too large, empty, a row of the wrong
        length, or a field that is not a number.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        from ..io.paths import missing_file

        raise missing_file(path, "training log")
    size = os.path.getsize(path)
    if size > MAX_LOG_BYTES:
        raise ValueError(f"{path}: {size:,} bytes; a training log of more than "
                         f"{MAX_LOG_BYTES:,} bytes is refused")
    with open(path, "rb") as f:
        raw = f.read(MAX_LOG_BYTES + 1)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text CSV file (it is not UTF-8)") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"{path}: an empty file; expected a CSV header (epoch,loss,...) and "
                         "one row per epoch")
    if separator is None:
        separator = next((s for s in (",", ";", "\t") if s in lines[0]), ",")
    rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=separator))
    header = [h.strip() for h in rows[0]]
    if any(not h for h in header) or len(set(header)) != len(header):
        raise ValueError(f"{path}: line 1: expected a header of distinct column names; "
                         f"received {rows[0]!r}")
    if len(rows) < 2:
        raise ValueError(f"{path}: a header but no rows (no epoch finished?)")
    cols: dict[str, list[float]] = {h: [] for h in header}
    for k, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ValueError(f"{path}: line {k}: {len(row)} fields; the header has "
                             f"{len(header)}")
        for name, field in zip(header, row):
            field = field.strip()
            try:
                value = float(field) if field else math.nan
            except ValueError:
                raise ValueError(f"{path}: line {k}, column {name!r}: not a number: "
                                 f"{field[:40]!r}") from None
            cols[name].append(value)
    return cols


def _series(history: Any) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``(epochs counted from 1, {name: values})`` from a History, a dict or a CSV path."""
    epochs = None
    if isinstance(history, (str, os.PathLike)):
        data: dict[str, list[float]] = read_csv_log(history)
    elif hasattr(history, "history") and isinstance(history.history, dict):
        data = dict(history.history)
        if getattr(history, "epoch", None):
            epochs = np.asarray(history.epoch, dtype=np.float64) + 1
    elif isinstance(history, dict):
        data = dict(history)
    else:
        raise TypeError("expected a History, a {name: values} dict or the path of a CSVLogger "
                        f"file; received {type(history).__name__}")
    if "epoch" in data:
        epochs = np.asarray(data.pop("epoch"), dtype=np.float64) + 1
    if not data:
        raise ValueError("the training log holds no values (expected loss, val_loss, ...)")
    out = {}
    for name, values in data.items():
        try:
            a = np.asarray(values, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise ValueError(f"log column {name!r}: expected numbers") from None
        out[str(name)] = a
    n = max(len(a) for a in out.values())
    if any(len(a) != n for a in out.values()):
        raise ValueError(f"log columns of different lengths: "
                         f"{ {k: len(a) for k, a in out.items()} }")
    if epochs is None or len(epochs) != n:
        epochs = np.arange(1, n + 1, dtype=np.float64)
    return epochs, out


def metric_groups(names: list[str]) -> list[str]:
    """The metrics to draw, one panel each: ``loss`` first, then the others in order; a
    ``val_x`` column joins ``x``'s panel; ``lr`` is not a panel (it rides on the loss's)."""
    bases: list[str] = []
    for name in names:
        if name == "lr":
            continue
        base = name[4:] if name.startswith("val_") else name
        if base not in bases:
            bases.append(base)
    bases.sort(key=lambda b: b != "loss")
    return bases


def plot_history(history: Any, metrics: list[str] | None = None, lr: bool = True,
                 title: str | None = None, panel_width: float = 4.0) -> Any:
    """Training curves, one panel per metric: training values solid, validation dashed,
    against the epoch (counted from 1); the learning rate (``lr`` column, which
    ``LearningRateScheduler`` and ``ReduceLROnPlateau`` log) on a second y axis of the loss
    panel, log-scaled when half its values or more lie a decade below the largest (step
    decays; a cosine that ends at 0 stays linear).

    Args:
        history: a ``History``, a ``{name: values}`` dict, or a ``CSVLogger`` file's path.
        metrics: the panels (base names such as ``"loss"``, ``"accuracy"``); default all.
        lr: draw the learning rate when logged. title: the figure's title.

    Returns:
        a ``Figure``; every curve is a ``Line2D`` labelled with its column name
        (``"loss"``, ``"val_loss"``, ``"lr"``) whose data is (epochs, values).
    """
    epochs, series = _series(history)
    groups = metric_groups(list(series))
    if metrics is not None:
        unknown = [m for m in metrics if m not in groups]
        if unknown:
            raise ValueError(f"no metric {unknown[0]!r} in the log; it has: "
                             f"{', '.join(groups)}")
        groups = list(metrics)
    if not groups:
        raise ValueError("the training log holds no metric to draw (only a learning rate)")
    fig = _mpl.figure(panel_width * len(groups), 3.2)
    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    for ax, base in zip(axes, groups):
        for name, style in ((base, "-"), (f"val_{base}", "--")):
            if name in series:
                ax.plot(epochs, series[name], style, marker="o", markersize=3, label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(base)
        ax.grid(True, alpha=0.3)
        if len(epochs) <= 12:
            ax.set_xticks(epochs)
    if lr and "lr" in series and np.isfinite(series["lr"]).any():
        twin = axes[0].twinx()
        rates = series["lr"]
        twin.plot(epochs, rates, ":", color="0.4", label="lr")
        twin.set_ylabel("learning rate", color="0.4")
        positive = rates[np.isfinite(rates) & (rates > 0)]
        if positive.size and (positive <= positive.max() / 9.99).mean() >= 0.5:
            twin.set_yscale("log")  # step decays: most values a decade or more below the top
        lines = axes[0].get_lines() + twin.get_lines()
        axes[0].legend(lines, [ln.get_label() for ln in lines], fontsize=8)
    else:
        axes[0].legend(fontsize=8)
    for ax in axes[1:]:
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


__all__ = ["MAX_LOG_BYTES", "metric_groups", "plot_history", "read_csv_log"]
