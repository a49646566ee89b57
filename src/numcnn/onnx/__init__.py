"""ONNX both ways: ``export(model, path)`` writes a numcnn model as an ONNX graph, ``load(path)``
turns an ONNX graph into a numcnn ``Model``, and ``numcnn.onnx.backend`` lets the official
``onnx.backend.test`` suite drive numcnn.

The ``onnx`` package (the ``onnx`` extra) is imported only when one of these is used.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["export", "load", "backend"]


def export(*args: Any, **kwargs: Any) -> Any:
    """See :func:`numcnn.onnx.exporter.export`."""
    from .exporter import export as _export
    return _export(*args, **kwargs)


def load(*args: Any, **kwargs: Any) -> Any:
    """See :func:`numcnn.onnx.importer.load`."""
    from .importer import load as _load
    return _load(*args, **kwargs)


def __getattr__(name: str) -> Any:
    if name == "backend":
        return importlib.import_module(".backend", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
