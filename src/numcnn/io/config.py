"""Check the JSON config of an untrusted model file: structure, types, metadata.

:func:`check_config` validates what ``__config__`` holds — ``format`` (1 or 2), ``model`` =
``{"class_name", "config"}``, an optional ``training`` part (registered optimizer and
losses, metric names, finite loss weights) and ``extra`` metadata — before anything is
built; :func:`pixel_scale` validates the one piece of metadata numcnn itself uses.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Callable

from .npzfile import ModelFileError, show

TOP_KEYS = ("format", "model", "training", "extra")
TRAINING_KEYS = ("optimizer", "loss", "loss_weights", "metrics")

Error = Callable[[str], ModelFileError]


# ---------------------------------------------------------------------- metadata
def pixel_scale(extra: Mapping[str, Any], default: float, source: str = "model file") -> float:
    """The ``pixel_scale`` a model file's ``extra`` metadata records (the factor numcnn's
    command line applies to 0–255 grey levels before it feeds the model), else ``default``.

    Raises:
        ModelFileError: the value is not a finite positive number.
    """
    if not isinstance(extra, Mapping) or "pixel_scale" not in extra:
        return float(default)
    value = extra["pixel_scale"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value <= 0:
        raise ModelFileError(f"{source}: extra['pixel_scale'] must be a finite positive "
                             f"number; received {show(value)}")
    return float(value)


# ------------------------------------------------------------------------ config
def spec_of(value: Any, what: str, error: Error) -> tuple[str, dict]:
    """``(name, config)`` of a ``{"name": ..., "config": {...}}`` entry."""
    if not isinstance(value, dict) or not isinstance(value.get("name"), str) \
            or not isinstance(value.get("config", {}), dict) \
            or set(value) - {"name", "config"}:
        raise error(f"the model config's {what} must be {{\"name\": str, \"config\": {{...}}}}; "
                    f"received {show(value)}")
    return value["name"], value.get("config", {})


def check_config(config: Any, error: Error) -> tuple[int, dict, dict | None, dict]:
    """Validate the parsed JSON of ``__config__``.

    Returns:
        ``(format, model spec {"class_name", "config"}, training or None, extra)``.
    """
    from .. import losses, optimizers

    if not isinstance(config, dict):
        raise error(f"the model config must be a JSON object; received "
                    f"{type(config).__name__}")
    unknown = sorted(set(config) - set(TOP_KEYS))
    if unknown:
        raise error(f"the model config has unknown keys {show(unknown)}; expected "
                    f"{list(TOP_KEYS)}")
    fmt = config.get("format")
    if type(fmt) is not int or fmt not in (1, 2):
        raise error(f"unsupported model format {show(fmt)}; expected 1 or 2")
    model = config.get("model")
    if fmt == 1:
        if not isinstance(model, dict):
            raise error(f"the model config's 'model' must be a Sequential config (an object); "
                        f"received {show(model)}")
        spec = {"class_name": "Sequential", "config": model}
    else:
        if not isinstance(model, dict) or not isinstance(model.get("class_name"), str) \
                or not isinstance(model.get("config"), dict) \
                or set(model) - {"class_name", "config"}:
            raise error("the model config's 'model' must be {\"class_name\": str, \"config\": "
                        f"{{...}}}}; received {show(model)}")
        spec = model
    extra = config.get("extra", {})
    if not isinstance(extra, dict):
        raise error(f"the model config's 'extra' must be an object; received {show(extra)}")
    try:
        pixel_scale(extra, 1.0, "")
    except ModelFileError as e:
        raise error(str(e).lstrip(": ")) from None
    training = config.get("training")
    if training is None:
        return fmt, spec, None, extra
    if not isinstance(training, dict) or set(training) - set(TRAINING_KEYS):
        raise error(f"the model config's 'training' must be an object with keys among "
                    f"{list(TRAINING_KEYS)}; received {show(training)}")
    if "optimizer" in training:
        name, _ = spec_of(training["optimizer"], "training optimizer", error)
        if name not in optimizers.OPTIMIZERS:
            raise error(f"unknown optimizer {show(name)}; expected one of "
                        f"{optimizers.OPTIMIZERS.names()}")
    if "loss" in training:
        loss = training["loss"]
        items = [loss] if fmt == 1 and isinstance(loss, dict) else loss
        if not isinstance(items, list) or not items:
            raise error(f"the model config's training loss must be a list; received "
                        f"{show(loss)}")
        for item in items:
            if item is not None:
                name, _ = spec_of(item, "training loss", error)
                if name not in losses.LOSSES:
                    raise error(f"unknown loss {show(name)}; expected one of "
                                f"{losses.LOSSES.names()}")
    metrics = training.get("metrics", [])
    if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
        raise error(f"the model config's training metrics must be a list of names; received "
                    f"{show(metrics)}")
    weights = training.get("loss_weights")
    if weights is not None and (not isinstance(weights, list) or not all(
            not isinstance(w, bool) and isinstance(w, (int, float)) and math.isfinite(w)
            for w in weights)):
        raise error(f"the model config's loss_weights must be a list of finite numbers; "
                    f"received {show(weights)}")
    return fmt, spec, training, extra
