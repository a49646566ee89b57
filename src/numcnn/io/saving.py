"""Save a model to one ``.npz`` file and load it back — arrays plus a JSON config, no pickle.

File layout (all entries plain arrays, readable with ``np.load(path, allow_pickle=False)``):

* ``__config__``: 0-d unicode array holding the JSON ``{"format": 2, "model": {"class_name":
  "Sequential" | "Model", "config": ...}, "training": {"loss": [...], "loss_weights": [...],
  "optimizer": ..., "metrics": [...]}, "extra": {...}}``
* ``param/<layer>/<name>`` and ``buffer/<layer>/<name>``: the weights and buffers, by
  qualified name (``block/conv2d/W`` inside a nested model).
* ``extra/<layer>/<name>``: other state that resumes exactly (a Dropout's random generator).
* ``optim/<key>``: the optimizer's state (keyed by parameter name), and ``trainer/<key>``: the
  epochs completed and the data-order generator — saved with the optimizer, so that loading
  and calling ``fit(initial_epoch=...)`` continues a run exactly.

Format 1 files (numcnn before the graph engine: a Sequential config, optimizer state keyed
by position) still load.

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

FORMAT_VERSION = 2


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
    """Write ``model`` (any built :class:`numcnn.Model`) to ``path`` atomically.

    Args:
        model: the model.
        path: destination; ``.npz`` is the conventional suffix (not added automatically).
        include_optimizer: also store the compiled losses/optimizer, the optimizer state and
            the trainer's state (epoch, data order).
        extra: JSON-serialisable metadata stored alongside (e.g. the epoch reached).
    """
    from .. import losses, optimizers
    from ..layers.base import serialize

    if not getattr(model, "built", False) or getattr(model, "graph", None) is None:
        raise ValueError("save_model: the model is not built; there are no weights to save")
    config: dict[str, Any] = {"format": FORMAT_VERSION, "model": serialize(model),
                              "extra": extra or {}}
    arrays: dict[str, np.ndarray] = {}
    for q, layer, key in model.named_params():
        arrays[f"param/{q}"] = layer.params[key]
    for q, layer, key in model.named_buffers():
        arrays[f"buffer/{q}"] = layer.buffers[key]
    for q, value in _extra_state(model).items():
        arrays[f"extra/{q}"] = value
    trainer = getattr(model, "trainer", None)
    if include_optimizer and model.optimizer is not None and trainer is not None:
        training: dict[str, Any] = {"metrics": list(model.metrics),
                                    "loss_weights": list(trainer.loss_weights)}
        opt_name = _registered_name(optimizers.OPTIMIZERS, model.optimizer)
        if opt_name is not None:
            training["optimizer"] = {"name": opt_name, "config": model.optimizer.get_config()}
            for k, v in model.optimizer.state_dict().items():
                arrays[f"optim/{k}"] = v
        loss_specs = []
        for loss in trainer.losses:
            name = None if loss is None else _registered_name(losses.LOSSES, loss)
            loss_specs.append(None if name is None else {"name": name,
                                                         "config": loss.get_config()})
        if all(spec is not None or lo is None for spec, lo in zip(loss_specs, trainer.losses)):
            training["loss"] = loss_specs
        for k, v in trainer.state_dict().items():
            arrays[f"trainer/{k}"] = v
        config["training"] = training
    arrays["__config__"] = np.array(json.dumps(config))
    atomic_write(path, lambda f: np.savez(f, **arrays))


def _extra_state(model: Any, prefix: str = "") -> dict[str, np.ndarray]:
    """The extra state (neither parameter nor buffer) of every layer, by qualified name."""
    out: dict[str, np.ndarray] = {}
    for layer in model.graph.layers:
        name = prefix + model.layer_name(layer)
        if getattr(layer, "graph", None) is not None:
            out.update(_extra_state(layer, name + "/"))
        else:
            out.update({f"{name}/{k}": v for k, v in layer.extra_state().items()})
    return out


def _restore_extra(model: Any, state: dict[str, np.ndarray], prefix: str = "") -> None:
    for layer in model.graph.layers:
        name = prefix + model.layer_name(layer)
        if getattr(layer, "graph", None) is not None:
            _restore_extra(layer, state, name + "/")
            continue
        mine = {k[len(name) + 1:]: v for k, v in state.items() if k.startswith(name + "/")
                and "/" not in k[len(name) + 1:]}
        if mine:
            layer.load_extra_state(mine)


def load_model(path: str | os.PathLike, compile: bool = True) -> Any:
    """Rebuild a model saved by :func:`save_model` (never unpickles).

    Args:
        path: the ``.npz`` file.
        compile: restore the losses, optimizer (with its state), metrics and the trainer's
            state when they were saved.

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
    if not isinstance(config, dict):
        raise ValueError(f"{path}: damaged model config (not a JSON object)")
    fmt = config.get("format")
    if fmt not in (1, FORMAT_VERSION):
        raise ValueError(f"{path}: unsupported model format {fmt!r}; expected 1 or "
                         f"{FORMAT_VERSION}")
    spec = config.get("model")
    if not isinstance(spec, dict):
        raise ValueError(f"{path}: damaged model config (no 'model' object)")
    try:
        if fmt == 1:
            model = deserialize({"class_name": "Sequential", "config": spec})
        else:
            model = deserialize(spec)
    except (ValueError, TypeError, KeyError) as e:
        raise ValueError(f"{path}: damaged model config ({e})") from None
    weights = {k.split("/", 1)[1]: v for k, v in arrays.items()
               if k.startswith(("param/", "buffer/"))}
    try:
        model.set_weights(weights)
        _restore_extra(model, {k.split("/", 1)[1]: v for k, v in arrays.items()
                               if k.startswith("extra/")})
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: {e}") from None
    model.saved_extra = config.get("extra", {})
    training = config.get("training")
    if compile and isinstance(training, dict) and "loss" in training \
            and "optimizer" in training:
        try:
            opt = training["optimizer"]
            loss = training["loss"]
            if fmt == 1 or isinstance(loss, dict):
                loss = [loss]
            loss = [None if lo is None else losses.get(lo["name"], **lo["config"])
                    for lo in loss]
            model.compile(optimizer=optimizers.get(opt["name"], **opt["config"]),
                          loss=loss if len(loss) > 1 else loss[0],
                          metrics=training.get("metrics", []),
                          loss_weights=training.get("loss_weights"))
            state = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("optim/")}
            if fmt == 1 and state:
                state = _positional_to_named(model, state)
            if state:
                model.optimizer.load_state_dict(state)
            tstate = {k.split("/", 1)[1]: v for k, v in arrays.items()
                      if k.startswith("trainer/")}
            if tstate:
                model.trainer.load_state_dict(tstate)
        except (ValueError, TypeError, KeyError) as e:
            raise ValueError(f"{path}: damaged training state ({e})") from None
    return model


def _positional_to_named(model: Any, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Format 1 kept optimizer state by parameter position: ``"<i>/<slot>"``."""
    names = list(model.trainable_params())
    out = {}
    for key, value in state.items():
        if key in ("iterations", "lr"):
            out[key] = value
            continue
        i, slot = key.split("/", 1)
        out[f"state/{names[int(i)]}/{slot}"] = value
    return out
