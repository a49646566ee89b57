"""Save a model to one ``.npz`` file and load it back — arrays plus a JSON config, no pickle.

File layout (all entries plain arrays, readable with ``np.load(path, allow_pickle=False)``):

* ``__config__``: 0-d unicode array holding the JSON ``{"format": 1, "model": <Sequential
  config>, "training": {"loss": ..., "optimizer": ..., "metrics": [...]}, "extra": {...}}``
* ``param/<layer>/<name>`` and ``buffer/<layer>/<name>``: the weights and buffers.
* ``optim/<slot>``: optimizer state, when saved (for resuming training exactly).

The file is written to a temporary name in the same folder and renamed into place, so an
interrupted save never leaves a half-written model behind.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_VERSION = 1


def _registered_name(registry: Any, obj: Any) -> str | None:
    for name in registry.names():
        if registry.lookup(name) is type(obj):
            return name
    return None


def atomic_write(path: str | os.PathLike, write: Any) -> None:
    """Call ``write(fileobj)`` on a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def save_model(model: Any, path: str | os.PathLike, include_optimizer: bool = True,
               extra: dict | None = None) -> None:
    """Write ``model`` (a built :class:`numcnn.Sequential`) to ``path`` atomically.

    Args:
        model: the model.
        path: destination; ``.npz`` is the conventional suffix (not added automatically).
        include_optimizer: also store the compiled loss/optimizer and the optimizer state.
        extra: JSON-serialisable metadata stored alongside (e.g. the epoch reached).
    """
    from .. import losses, optimizers

    if not getattr(model, "built", False):
        raise ValueError("save_model: the model is not built; there are no weights to save")
    config: dict[str, Any] = {"format": FORMAT_VERSION, "model": model.get_config(),
                              "extra": extra or {}}
    arrays: dict[str, np.ndarray] = {}
    for q, layer, key in model.named_params():
        arrays[f"param/{q}"] = layer.params[key]
    for q, layer, key in model.named_buffers():
        arrays[f"buffer/{q}"] = layer.buffers[key]
    if include_optimizer and model.optimizer is not None:
        training: dict[str, Any] = {"metrics": list(model.metrics)}
        opt_name = _registered_name(optimizers.OPTIMIZERS, model.optimizer)
        loss_name = _registered_name(losses.LOSSES, model.loss)
        if opt_name is not None:
            training["optimizer"] = {"name": opt_name, "config": model.optimizer.get_config()}
            for k, v in model.optimizer.state_dict().items():
                arrays[f"optim/{k}"] = v
        if loss_name is not None:
            training["loss"] = {"name": loss_name, "config": model.loss.get_config()}
        config["training"] = training
    arrays["__config__"] = np.array(json.dumps(config))
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load_model(path: str | os.PathLike, compile: bool = True) -> Any:
    """Rebuild a model saved by :func:`save_model` (never unpickles).

    Args:
        path: the ``.npz`` file.
        compile: restore the loss, optimizer (with its state) and metrics when they were saved.

    Raises:
        FileNotFoundError: no such file. ValueError: the file is not a numcnn model or is
        damaged (the message says which).
    """
    from .. import losses, optimizers
    from ..layers.base import deserialize

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}")
    try:
        # open the file ourselves: np.load leaks its handle when the zip directory is damaged
        with open(path, "rb") as fh:
            data = np.load(fh, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise ValueError("a single .npy array, not an .npz archive")
            with data:
                arrays = {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise ValueError(f"{path}: not a readable numcnn model file ({e})") from None
    if "__config__" not in arrays:
        raise ValueError(f"{path}: not a numcnn model file (no __config__ entry)")
    try:
        config = json.loads(str(arrays.pop("__config__")))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: damaged model config ({e})") from None
    if config.get("format") != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported model format {config.get('format')!r}; "
                         f"expected {FORMAT_VERSION}")
    model = deserialize({"class_name": "Sequential", "config": config["model"]})
    weights = {k.split("/", 1)[1]: v for k, v in arrays.items()
               if k.startswith(("param/", "buffer/"))}
    try:
        model.set_weights(weights)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    model.saved_extra = config.get("extra", {})
    training = config.get("training")
    if compile and training and "loss" in training and "optimizer" in training:
        opt = training["optimizer"]
        loss = training["loss"]
        model.compile(optimizer=optimizers.get(opt["name"], **opt["config"]),
                      loss=losses.get(loss["name"], **loss["config"]),
                      metrics=training.get("metrics", []))
        state = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("optim/")}
        if state:
            model.optimizer.load_state_dict(state)
    return model
