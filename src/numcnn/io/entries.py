"""Match the arrays of an untrusted model file against its config, before reading them.

:func:`check_entries` looks at every entry's name and ``.npy`` header (never its data):
``param/`` and ``buffer/`` entries must be exactly those the :class:`~.plan.Plan` predicts,
with its shapes and a float dtype the model's dtype holds exactly; ``extra/`` entries the
layers' random generators; ``optim/`` entries the optimizer's own scalars and per-parameter
state of the model's parameters; ``trainer/`` entries the trainer's (epoch, step, data-order
generator, running sums); ``arrays/`` entries numbers. Anything else is refused, naming it.
:func:`check_values` refuses NaN and infinities once an array is read.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from .config import Error, spec_of
from .npzfile import clip, format_bytes, show
from .plan import Plan

_SLOT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
#: the trainer's entries: ``trainer/<key>`` → (ndim, dtype kinds)
TRAINER_ENTRIES = {"epoch": (0, "iu"), "step": (0, "iu"), "rng": (1, "u"), "sums": (1, "f")}
MAX_SUMS = 4096


def names_list(names: list[str], limit: int = 8) -> str:
    """``['a', 'b', …]`` cut after ``limit`` names, with how many were left out."""
    names = sorted(names)
    text = ", ".join(show(n, 60) for n in names[:limit])
    return f"[{text}{f', … and {len(names) - limit} more' if len(names) > limit else ''}]"


def _expect(entry: Any, shape: tuple, kinds: str, what: str, error: Error) -> None:
    if entry.shape != tuple(shape) or entry.dtype.kind not in kinds:
        kind = {"f": "float", "iu": "integer", "u": "unsigned integer", "biuf": "numeric"}
        raise error(f"entry {show(entry.key)}: expected {what}, {kind.get(kinds, kinds)} "
                    f"values of shape {tuple(shape)}; received {entry.dtype.str} of shape "
                    f"{entry.shape}")


def check_weight_header(entry: Any, shape: tuple, dtype: np.dtype, error: Error) -> None:
    """A ``param/``/``buffer/`` entry: the shape the config gives, a float dtype whose
    values the model's dtype holds exactly (float16/32 into float32; up to float64 into
    float64)."""
    if entry.shape != tuple(shape):
        raise error(f"entry {show(entry.key)}: expected shape {tuple(shape)} (from the model "
                    f"config); received {entry.shape}")
    if entry.dtype.kind != "f" or not np.can_cast(entry.dtype, dtype, "safe"):
        why = "not floats" if entry.dtype.kind != "f" else f"{dtype} would round them"
        raise error(f"entry {show(entry.key)}: expected {dtype} weights (or a float type "
                    f"{dtype} holds exactly); received {entry.dtype.str} ({why})")


def check_entries(archive: Any, plan: Plan, fmt: int, training: dict | None,
                  error: Error) -> None:
    """Match every entry's name and header (not its data) against the plan.

    Raises:
        ModelFileError: an unknown, missing or misshaped entry, or a refused dtype.
    """
    headers = {k: archive.header(k) for k in archive.keys if k != "__config__"}
    for key, entry in headers.items():  # layers that do not declare shapes: the file's
        head, _, rest = key.partition("/")
        owner = rest.rpartition("/")[0]
        if head in ("param", "buffer") and owner in plan.open:
            store = plan.params if head == "param" else plan.buffers
            store[rest] = (entry.shape, plan.open[owner])
            n = math.prod(entry.shape) * plan.open[owner].itemsize * (2 if head == "param" else 1)
            plan.nbytes += n
            if plan.nbytes > archive.budget:
                raise error(f"entry {show(key)}: building the model would allocate at least "
                            f"{format_bytes(plan.nbytes)}, over the budget of "
                            f"{format_bytes(archive.budget)}")
    weights = {**{f"param/{q}": v for q, v in plan.params.items()},
               **{f"buffer/{q}": v for q, v in plan.buffers.items()}}
    missing = sorted(set(weights) - set(headers))
    if missing:
        raise error(f"the model config needs the weights {names_list(missing)}, which the "
                    "file does not hold")
    if fmt == 2:
        absent = sorted(f"extra/{q}" for q in set(plan.extra) - {
            k[len("extra/"):] for k in headers})
        if absent:
            raise error(f"the file lacks the layer state {names_list(absent)} (random "
                        "generators) that its model config needs")
    scalars = None  # the optimizer's own entries besides per-parameter state
    bounds: dict[str, tuple[int, ...]] = {}
    if training is not None and "optimizer" in training:
        from .. import optimizers

        name, config = spec_of(training["optimizer"], "training optimizer", error)
        try:
            opt = optimizers.get(name, **config)
            fresh = opt.state_dict()
        except (ValueError, TypeError, KeyError, OverflowError) as e:
            raise error(f"bad optimizer config ({clip(str(e), 300)})") from None
        scalars = {k: v for k, v in fresh.items() if not k.startswith("state/")}
        # entries whose size depends on the model (L-BFGS's history): bounded shapes
        total = sum(math.prod(shape) for shape, _ in plan.params.values())
        bounds = opt.state_bounds(total)
    unexpected = []
    n_params = len(plan.params)
    for key, entry in headers.items():
        head, _, rest = key.partition("/")
        if key in weights:
            check_weight_header(entry, *weights[key], error)
        elif head == "extra" and rest in plan.extra:
            shape, dtype = plan.extra[rest]
            _expect(entry, shape, "u" if dtype.kind == "u" else dtype.kind,
                    f"the layer state of {show(rest)}", error)
            if entry.dtype.itemsize != dtype.itemsize:
                raise error(f"entry {show(key)}: expected {dtype} values; received "
                            f"{entry.dtype.str}")
        elif head == "optim" and scalars is not None:
            if rest in scalars:
                v = scalars[rest]
                _expect(entry, v.shape, "iu" if v.dtype.kind in "iu" else "f",
                        f"the optimizer's {show(rest)}", error)
            elif rest in bounds:
                most = bounds[rest]
                if entry.dtype.kind != "f" or len(entry.shape) != len(most) or any(
                        d > m for d, m in zip(entry.shape, most)):
                    raise error(f"entry {show(key)}: expected float values of at most shape "
                                f"{most} (the optimizer's {show(rest)}); received "
                                f"{entry.dtype.str} of shape {entry.shape}")
            else:
                _check_optim_header(entry, rest, plan, fmt, n_params, error)
        elif head == "trainer" and training is not None and rest in TRAINER_ENTRIES:
            ndim, kinds = TRAINER_ENTRIES[rest]
            if len(entry.shape) != ndim or entry.dtype.kind not in kinds:
                raise error(f"entry {show(key)}: expected {ndim}-d {kinds!r}-kind values; "
                            f"received {entry.dtype.str} of shape {entry.shape}")
            if rest == "rng":
                _expect(entry, (6,), "u", "a random generator's state: 6 uint64 words", error)
                if entry.dtype.itemsize != 8:
                    raise error(f"entry {show(key)}: expected uint64 words; received "
                                f"{entry.dtype.str}")
            if rest == "sums" and entry.shape[0] > MAX_SUMS:
                raise error(f"entry {show(key)}: expected at most {MAX_SUMS} running sums; "
                            f"received {entry.shape[0]}")
        elif head == "arrays" and fmt == 2 and rest:
            if entry.dtype.kind not in "biuf":
                raise error(f"entry {show(key)}: expected numbers; received {entry.dtype.str}")
        else:
            unexpected.append(key)
    if unexpected:
        raise error(f"unexpected entries {names_list(unexpected)}: the model config has no "
                    "place for them (expected param/, buffer/ and extra/ entries of its "
                    "layers" + (", optim/ and trainer/ entries" if training else "") + ")")


def _check_optim_header(entry: Any, rest: str, plan: Plan, fmt: int, n_params: int,
                        error: Error) -> None:
    key = entry.key
    if fmt == 2:
        name, _, slot = rest.partition("/")
        param, _, slot = slot.rpartition("/") if name == "state" else ("", "", "")
        if name != "state" or param not in plan.params:
            raise error(f"entry {show(key)}: expected optim/state/<parameter>/<slot> for a "
                        "parameter of the model, or one of the optimizer's own entries")
        shape = plan.params[param][0]
    else:
        index, _, slot = rest.partition("/")
        if not index.isdigit() or int(index) >= n_params:
            raise error(f"entry {show(key)}: expected optim/<index>/<slot> with an index "
                        f"below {n_params} (format 1), or one of the optimizer's own entries")
        shape = None  # checked against the model once it is built
    if not _SLOT.fullmatch(slot):
        raise error(f"entry {show(key)}: {show(slot)} is not an optimizer slot name")
    if entry.dtype.kind != "f" or (shape is not None and entry.shape not in (shape, ())):
        want = "a scalar or " + (f"shape {shape}" if shape is not None else "the parameter's")
        raise error(f"entry {show(key)}: expected float values ({want}); received "
                    f"{entry.dtype.str} of shape {entry.shape}")


def check_values(key: str, arr: np.ndarray, error: Error, what: str = "values") -> None:
    """Refuse NaN and infinities in a float array (naming the entry and how many)."""
    if arr.dtype.kind == "f" and arr.size and not np.isfinite(arr).all():
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        raise error(f"entry {show(key)}: expected finite {what}; received {bad} NaN or "
                    f"infinite value(s) among {arr.size}")
