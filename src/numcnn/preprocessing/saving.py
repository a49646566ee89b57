"""Saving and loading fitted steps: an ``.npz`` of JSON state plus arrays, never pickled."""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np

from .base import Preprocessor


def save_preprocessor(step: Preprocessor, path: str | os.PathLike) -> None:
    """Write a (fitted) step to an ``.npz`` file atomically: ``state`` (JSON) + arrays."""
    state = step.get_state()
    meta = {k: v for k, v in state.items() if k != "arrays"}
    arrays = {f"array/{k}": v for k, v in state["arrays"].items()}
    path = os.fspath(path)
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, state=np.array(json.dumps(meta)), **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_preprocessor(path: str | os.PathLike) -> Preprocessor:
    """Read a step written by :func:`save_preprocessor` (never unpickles)."""
    with np.load(path, allow_pickle=False) as f:
        meta = json.loads(str(f["state"]))
        meta["arrays"] = {k[len("array/"):]: f[k] for k in f.files if k.startswith("array/")}
    return Preprocessor.from_state(meta)
