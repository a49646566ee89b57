"""Read an ``.npz`` of named arrays (a PyTorch ``state_dict`` saved with ``np.savez``) as
untrusted input: bounded by :func:`numcnn.io.max_model_bytes`, nothing unpickled — for the
zoo's ``weights=`` (installed into :mod:`numcnn.models.weights` on import)."""

from __future__ import annotations

import os

import numpy as np

from .npzfile import ModelFileError, NpzArchive


def read_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` at ``path``, by name.

    Raises:
        FileNotFoundError: no such file.
        ModelFileError: (a ``ValueError``) a damaged or oversized archive, an array that is
            not plain numbers, or a numcnn model file (load those with ``load_model``).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no weights file at {os.fspath(path)}")
    with NpzArchive(path) as npz:
        if "__config__" in npz.keys:
            raise ModelFileError(f"{os.fspath(path)}: this is a numcnn model file, not a "
                                 "state_dict of arrays; load it with numcnn.load_model")
        return {key: npz.read(key) for key in npz.keys}


__all__ = ["read_arrays"]
