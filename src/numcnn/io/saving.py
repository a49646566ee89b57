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
* ``arrays/<key>``: arrays the caller stored with the model (``save_model(arrays=...)``, given
  back as ``model.saved_arrays``).

Format 1 files (numcnn before the graph engine: a Sequential config, optimizer state keyed
by position) still load.

Loading treats the file as untrusted input (see :func:`load_model`; :mod:`.npzfile` reads,
:mod:`.config`, :mod:`.plan` and :mod:`.entries` check): every failure is a
:class:`ModelFileError`, a ``ValueError``.

The file is written to a temporary name in the same folder and renamed into place, so an
interrupted save never leaves a half-written model behind.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .config import check_config
from .entries import check_entries, check_values, names_list
from .npzfile import ModelFileError, NpzArchive, clip, max_model_bytes, show
from .paths import atomic_write, missing_file
from .plan import plan_model

__all__ = ["FORMAT_VERSION", "ModelFileError", "atomic_write", "load_model", "save_model"]

FORMAT_VERSION = 2


def _registered_name(registry: Any, obj: Any) -> str | None:
    for name in registry.names():
        if registry.lookup(name) is type(obj):
            return name
    return None


def save_model(model: Any, path: str | os.PathLike, include_optimizer: bool = True,
               extra: dict | None = None,
               arrays: dict[str, np.ndarray] | None = None) -> None:
    """Write ``model`` (any built :class:`numcnn.Model`) to ``path`` atomically.

    Args:
        model: the model.
        path: destination; ``.npz`` is the conventional suffix (not added automatically).
        include_optimizer: also store the compiled losses/optimizer, the optimizer state and
            the trainer's state (epoch, data order).
        extra: JSON-serialisable metadata stored alongside (e.g. the epoch reached).
        arrays: numeric arrays stored alongside by name (``load_model`` gives them back as
            ``model.saved_arrays``).
    """
    from .. import losses, optimizers
    from ..layers.base import serialize

    if not getattr(model, "built", False) or getattr(model, "graph", None) is None:
        raise ValueError("save_model: the model is not built; there are no weights to save")
    config: dict[str, Any] = {"format": FORMAT_VERSION, "model": serialize(model),
                              "extra": extra or {}}
    user = dict(arrays or {})
    arrays = {}
    for key, value in user.items():
        value = np.asarray(value)
        if not isinstance(key, str) or not key or value.dtype.kind not in "biuf":
            raise ValueError(f"save_model: arrays must map names to numeric arrays; received "
                             f"{key!r}: {value.dtype}")
        arrays[f"arrays/{key}"] = value
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
            names = {q for q, _, _ in model.named_params()}
            for k, v in model.optimizer.state_dict().items():
                # state of parameters the model no longer holds (a popped layer) is dropped
                if not k.startswith("state/") or k[len("state/"):].rsplit("/", 1)[0] in names:
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
    atomic_write(path, lambda f: np.savez(f, **arrays), "save_model")


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
    """Rebuild a model saved by :func:`save_model` — treating the file as untrusted input.

    Nothing is unpickled and nothing large is allocated before it is checked: the archive's
    directory and every array's ``.npy`` header are read first (:mod:`.npzfile`), the JSON
    config is validated and walked without building the model (:mod:`.config`,
    :mod:`.plan`), and every entry must be one the config expects (:mod:`.entries`), with
    its shape and a float dtype the model's dtype holds exactly; the model is then built,
    and each array read (inflating no more than its header promised), checked finite and
    copied in, one at a time. The budget is
    :func:`numcnn.io.npzfile.max_model_bytes` (2 GiB, or ``$NUMCNN_MAX_MODEL_BYTES``).

    Args:
        path: the ``.npz`` file.
        compile: restore the losses, optimizer (with its state), metrics and the trainer's
            state when they were saved.

    Returns:
        The model; ``model.saved_extra`` holds the ``extra`` metadata and
        ``model.saved_arrays`` the ``arrays`` given to :func:`save_model`.

    Raises:
        FileNotFoundError: no such file.
        ModelFileError: (a ``ValueError``) the file is damaged, not a numcnn model, does not
            match its own config, holds non-finite weights or exceeds the budget; the message
            names the file, what was expected and what was found.
    """
    from ..layers.base import deserialize

    path = Path(path)
    if not path.is_file():
        raise missing_file(path, "model file")
    budget = max_model_bytes()
    with NpzArchive(path, budget) as npz:
        error = npz.error
        text = npz.read_config()
        try:
            config = json.loads(text)
        except RecursionError:
            raise error("damaged model config (JSON nested too deeply)") from None
        except ValueError as e:  # JSONDecodeError, and integers of too many digits
            raise error(f"damaged model config (not JSON: {clip(str(e), 200)})") from None
        fmt, spec, training, extra = check_config(config, error)
        plan = plan_model(spec, error, budget)
        check_entries(npz, plan, fmt, training, error)
        try:
            with np.errstate(all="ignore"):  # initial values (overwritten below) may overflow
                model = deserialize(spec)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError,
                OverflowError, RecursionError) as e:
            raise error(f"damaged model config ({clip(str(e), 300)})") from None
        _check_built(model, plan, error)
        _read_weights(npz, model, error)
        state = {q: npz.read(f"extra/{q}") for q in plan.extra if f"extra/{q}" in npz.keys}
        try:
            _restore_extra(model, state)
        except (ValueError, TypeError) as e:
            raise error(f"damaged layer state ({e})") from None
        model.saved_extra = extra
        model.saved_arrays = {k[len("arrays/"):]: npz.read(k) for k in npz.keys
                              if k.startswith("arrays/")}
        if compile and training is not None and "loss" in training \
                and "optimizer" in training:
            _restore_training(npz, model, fmt, training, error)
    return model


def _check_built(model: Any, plan: Any, error: Any) -> None:
    """The built model holds exactly the parameters and buffers the plan predicted."""
    for what, named, expected in (("parameters", model.named_params(), plan.params),
                                  ("buffers", model.named_buffers(), plan.buffers)):
        store = "params" if what == "parameters" else "buffers"
        got = {q: getattr(lay, store)[k].shape for q, lay, k in named}
        want = {q: s for q, (s, _) in expected.items()}
        if got != want:
            diff = sorted(set(got.items()) ^ set(want.items()))
            raise error(f"the model config builds {what} that differ from what it declares: "
                        f"{names_list([f'{q} {s}' for q, s in diff])}")
    if set(_extra_state(model)) != set(plan.extra):
        raise error("the model config builds layer state that differs from what it declares")


def _read_weights(npz: NpzArchive, model: Any, error: Any) -> None:
    """Read, check and copy every parameter and buffer, one array at a time."""
    for prefix, named, store in (("param", model.named_params(), "params"),
                                 ("buffer", model.named_buffers(), "buffers")):
        for q, layer, k in named:
            key = f"{prefix}/{q}"
            target = getattr(layer, store)[k]
            arr = npz.read(key)
            if arr.shape != target.shape or not np.can_cast(arr.dtype, target.dtype, "safe"):
                raise error(f"entry {show(key)}: expected {target.dtype} of shape "
                            f"{target.shape}; received {arr.dtype} of shape {arr.shape}")
            check_values(key, arr, error, "weights")
            target[...] = arr
            del arr
    for q, layer, k in model.named_params():
        mask = getattr(layer, "mask", None)
        if k == "W" and mask is not None and np.any((layer.params["W"] != 0) & (mask == 0)):
            raise error(f"entry {show('param/' + q)}: expected zeros outside the layer's "
                        "connection table; received non-zero weights there")


def _restore_training(npz: NpzArchive, model: Any, fmt: int, training: dict,
                      error: Any) -> None:
    """Compile as saved, then restore the optimizer's and the trainer's state."""
    from .. import losses, optimizers

    try:
        opt = training["optimizer"]
        loss = training["loss"]
        if fmt == 1 or isinstance(loss, dict):
            loss = [loss]
        loss = [None if lo is None else losses.get(lo["name"], **lo.get("config", {}))
                for lo in loss]
        model.compile(optimizer=optimizers.get(opt["name"], **opt.get("config", {})),
                      loss=loss if len(loss) > 1 else loss[0],
                      metrics=training.get("metrics", []),
                      loss_weights=training.get("loss_weights"))
    except (ValueError, TypeError, KeyError, IndexError) as e:
        raise error(f"damaged training config ({clip(str(e), 300)})") from None
    names = list(model.trainable_params())
    shapes = {q: lay.params[k].shape for q, lay, k in model.named_params()}
    state: dict[str, np.ndarray] = {}
    for key in npz.keys:
        if not key.startswith("optim/"):
            continue
        rest = key[len("optim/"):]
        if fmt == 1 and "/" in rest:  # by position: "<i>/<slot>"
            index, slot = rest.split("/", 1)
            if int(index) >= len(names):
                raise error(f"entry {show(key)}: expected an index below {len(names)}, the "
                            "number of trainable parameters")
            rest = f"state/{names[int(index)]}/{slot}"
        if rest.startswith("state/"):
            param = rest[len("state/"):].rsplit("/", 1)[0]
            entry = npz.header(key)
            if entry.shape not in ((), shapes[param]):
                raise error(f"entry {show(key)}: expected a scalar or the shape of "
                            f"{show(param)}, {shapes[param]}; received {entry.shape}")
        arr = npz.read(key)
        check_values(key, arr, error, "optimizer state")
        if rest == "iterations" and int(arr) < 0:
            raise error(f"entry {show(key)}: expected a step count >= 0; received {int(arr)}")
        state[rest] = arr
    tstate: dict[str, np.ndarray] = {}
    for key in npz.keys:
        if key.startswith("trainer/"):
            arr = npz.read(key)
            check_values(key, arr, error, "trainer state")
            if arr.dtype.kind in "iu" and arr.ndim == 0 and int(arr) < 0:
                raise error(f"entry {show(key)}: expected a count >= 0; received {int(arr)}")
            tstate[key[len("trainer/"):]] = arr
    try:
        if state:
            model.optimizer.load_state_dict(state)
        if tstate:
            model.trainer.load_state_dict(tstate)
    except (ValueError, TypeError, KeyError, OverflowError) as e:
        raise error(f"damaged training state ({e})") from None
