"""Learning-rate schedules: callables ``epoch -> lr``, selectable by name or by a compact string.

A schedule is called once per epoch (0-based) by
:class:`numcnn.training.callbacks.LearningRateScheduler`, which writes the result into
``model.optimizer.lr``. Relative schedules (step, multistep, exponential, cosine) scale an
initial rate ``η₀``: their ``initial_lr`` argument, or, when that is left ``None``, the
optimizer's ``lr`` when training starts. ``piecewise`` gives absolute rates.

| name | equation (epoch ``e``) | PyTorch / Keras equivalent |
|---|---|---|
| ``constant`` | ``η₀`` | — |
| ``step`` | ``η₀ · γ^⌊e / step_size⌋`` | ``StepLR`` |
| ``multistep`` | ``η₀ · γ^{#{m ∈ milestones : m ≤ e}}`` | ``MultiStepLR`` |
| ``piecewise`` | ``values[max{k ≤ e}]`` | Keras ``PiecewiseConstantDecay`` (by epoch) |
| ``exponential`` | ``η₀ · γ^e`` | ``ExponentialLR`` |
| ``cosine`` | ``η_min + (η₀ − η_min)(1 + cos(π·min(e, T)/T))/2`` | ``CosineAnnealingLR`` |

The compact string form, used by the command line (``numcnn train --schedule SPEC``)::

    spec  := name [":" arg ("," arg)*]
    arg   := key "=" value
    value := number | true | false | none | list
    list  := number ("/" number)*          (or "[" number ("," number)* "]")

Names are case-insensitive, spaces are ignored. For ``piecewise`` every key is an epoch
(an integer) and every value its learning rate. Examples::

    "cosine"                          cosine over the whole run (T = number of epochs)
    "cosine:t_max=20,eta_min=1e-5"
    "step:step_size=5,gamma=0.5"
    "multistep:milestones=30/80,gamma=0.1"
    "exponential:gamma=0.9"
    "piecewise:0=5e-4,2=2e-4,5=1e-4"  LeNet-5's η by pass: 5e-4 for epochs 0-1, 2e-4 for 2-4, …

>>> s = get("piecewise:0=5e-4,2=2e-4,5=1e-4")
>>> [s(e) for e in range(6)]
[0.0005, 0.0005, 0.0002, 0.0002, 0.0002, 0.0001]
>>> get("step:step_size=2,gamma=0.5")(5, initial_lr=0.1)
0.025
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Callable

import numpy as np

from ._registry import Registry

SCHEDULES = Registry("schedule")


def _positive(name: str, value: Any, integer: bool = False, allow_zero: bool = False) -> Any:
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    ok = isinstance(value, kinds) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value >= 0 if allow_zero else value > 0)
    if not ok:
        what = "a non-negative" if allow_zero else "a positive"
        raise ValueError(f"{name} must be {what} {'int' if integer else 'number'}; "
                         f"received {name}={value!r}")
    return int(value) if integer else float(value)


def _check_epoch(epoch: Any) -> int | float:
    """An epoch index ≥ 0: an int, or a fraction ``e + b/steps`` for per-batch updates."""
    if isinstance(epoch, (int, np.integer)) and not isinstance(epoch, bool) and epoch >= 0:
        return int(epoch)
    if isinstance(epoch, (float, np.floating)) and math.isfinite(epoch) and epoch >= 0:
        return float(epoch)
    raise ValueError(f"epoch must be a non-negative number; received epoch={epoch!r}")


class Schedule:
    """Base class: ``schedule(epoch, initial_lr=None, total_epochs=None) -> lr``.

    Args:
        initial_lr: η₀ for relative schedules; ``None`` means "the optimizer's lr when
            training starts" (passed in by the caller).
    """

    name = ""

    def __init__(self, initial_lr: float | None = None):
        self.initial_lr = None if initial_lr is None else _positive("initial_lr", initial_lr)

    def __call__(self, epoch: int, initial_lr: float | None = None,
                 total_epochs: int | None = None) -> float:
        """The learning rate for ``epoch`` (0-based).

        Args:
            epoch: the epoch index, ≥ 0; a fractional ``e + b/steps`` when the rate is
                updated every batch (``LearningRateScheduler(per_batch=True)``).
            initial_lr: η₀ used when the schedule was built without one.
            total_epochs: the number of epochs of the run (``cosine`` uses it when built
                without ``t_max``).
        """
        return float(self.lr(_check_epoch(epoch), self._eta0(initial_lr), total_epochs))

    def lr(self, epoch: int, eta0: float | None, total_epochs: int | None) -> float:
        raise NotImplementedError  # pragma: no cover

    def _eta0(self, initial_lr: float | None) -> float | None:
        return self.initial_lr if self.initial_lr is not None else initial_lr

    def _need(self, eta0: float | None) -> float:
        if eta0 is None:
            raise ValueError(f"the {self.name!r} schedule needs an initial learning rate: "
                             "pass initial_lr=... or use it through LearningRateScheduler, "
                             "which takes the optimizer's lr")
        return eta0

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments (``None`` ones left out)."""
        return {} if self.initial_lr is None else {"initial_lr": self.initial_lr}

    def spec(self) -> str:
        """The compact string form: ``get(s.spec())`` rebuilds an equal schedule."""
        args = []
        for key, value in self.get_config().items():
            if isinstance(value, Mapping):
                args += [f"{k}={_fmt(v)}" for k, v in value.items()]
            else:
                args.append(f"{key}={_fmt(value)}")
        return self.name + (":" + ",".join(args) if args else "")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def state_dict(self) -> dict[str, Any]:
        """A schedule is a pure function of the epoch: nothing to save (the position is the
        epoch, which the trainer saves)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"a {type(self).__name__} schedule has no state; received "
                             f"{sorted(state)}")

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.get_config() == self.get_config()

    __hash__ = None  # type: ignore[assignment]


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "/".join(_fmt(v) for v in value)
    return repr(value)


@SCHEDULES.register("constant")
class Constant(Schedule):
    """``η(e) = η₀`` (the initial lr, or the optimizer's).

    >>> Constant(0.1)(7)
    0.1
    """

    name = "constant"

    def __init__(self, initial_lr: float | None = None):
        super().__init__(initial_lr)

    def lr(self, epoch, eta0, total_epochs):
        return self._need(eta0)


@SCHEDULES.register("step")
class StepDecay(Schedule):
    """``η(e) = η₀ · γ^⌊e / step_size⌋`` — PyTorch's ``StepLR`` stepped once per epoch.

    Args:
        step_size: epochs between decays (> 0). gamma: factor γ > 0. initial_lr: η₀.

    >>> [StepDecay(2, 0.5, initial_lr=1.0)(e) for e in range(5)]
    [1.0, 1.0, 0.5, 0.5, 0.25]
    """

    name = "step"

    def __init__(self, step_size: int = 10, gamma: float = 0.1,
                 initial_lr: float | None = None):
        super().__init__(initial_lr)
        self.step_size = _positive("step_size", step_size, integer=True)
        self.gamma = _positive("gamma", gamma)

    def lr(self, epoch, eta0, total_epochs):
        return self._need(eta0) * self.gamma ** (epoch // self.step_size)

    def get_config(self):
        return {"step_size": self.step_size, "gamma": self.gamma, **super().get_config()}


@SCHEDULES.register("multistep", "multi_step")
class MultiStep(Schedule):
    """``η(e) = η₀ · γ^{#{m ∈ milestones : m ≤ e}}`` — PyTorch's ``MultiStepLR``.

    Args:
        milestones: strictly increasing epochs (≥ 1) at which η is multiplied by γ.
        gamma: factor γ > 0. initial_lr: η₀.

    >>> [MultiStep([1, 3], 0.1, initial_lr=1.0)(e) for e in range(4)]
    [1.0, 0.1, 0.1, 0.010000000000000002]
    """

    name = "multistep"

    def __init__(self, milestones: Sequence[int] | int = (30, 60, 90), gamma: float = 0.1,
                 initial_lr: float | None = None):
        super().__init__(initial_lr)
        ms = [milestones] if isinstance(milestones, int) else list(milestones)
        for m in ms:
            _positive("each milestone", m, integer=True)
        if not ms or any(b <= a for a, b in zip(ms, ms[1:])):
            raise ValueError("milestones must be a non-empty, strictly increasing list of "
                             f"epochs; received milestones={milestones!r}")
        self.milestones = [int(m) for m in ms]
        self.gamma = _positive("gamma", gamma)

    def lr(self, epoch, eta0, total_epochs):
        return self._need(eta0) * self.gamma ** sum(m <= epoch for m in self.milestones)

    def get_config(self):
        return {"milestones": list(self.milestones), "gamma": self.gamma,
                **super().get_config()}


@SCHEDULES.register("piecewise", "piecewise_constant")
class Piecewise(Schedule):
    """Piecewise constant by epoch: ``η(e) = values[k]`` for the largest key ``k ≤ e``.

    Before the first key (when it is not 0) η₀ is used: ``initial_lr``, or the optimizer's.

    Args:
        values: ``{epoch: lr}``, e.g. ``{0: 5e-4, 2: 2e-4, 5: 1e-4}`` (string keys such as
            JSON's are accepted).
        initial_lr: η₀ for the epochs before the first key.

    >>> s = Piecewise({0: 5e-4, 2: 2e-4, 5: 1e-4, 8: 5e-5, 12: 1e-5})  # LeNet-5, 1998
    >>> [s(e) for e in (0, 1, 2, 4, 5, 8, 11, 12, 19)]
    [0.0005, 0.0005, 0.0002, 0.0002, 0.0001, 5e-05, 5e-05, 1e-05, 1e-05]
    """

    name = "piecewise"

    def __init__(self, values: Mapping[Any, float] | None = None,
                 initial_lr: float | None = None):
        super().__init__(initial_lr)
        if not isinstance(values, Mapping) or not values:
            raise ValueError("values must be a non-empty {epoch: lr} mapping; received "
                             f"values={values!r}")
        table = {}
        for key, value in values.items():
            try:
                epoch = int(key)
                if str(key).strip() != str(epoch) and not isinstance(key, int):
                    raise ValueError
            except (TypeError, ValueError):
                raise ValueError(f"piecewise keys must be epochs (ints); received {key!r}") \
                    from None
            table[_positive("epoch", epoch, integer=True, allow_zero=True)] = \
                _positive(f"the lr of epoch {epoch}", value)
        self.values = dict(sorted(table.items()))

    def lr(self, epoch, eta0, total_epochs):
        current = None
        for start, value in self.values.items():
            if start > epoch:
                break
            current = value
        if current is None:
            return self._need(eta0)
        return current

    def get_config(self):
        return {"values": dict(self.values), **super().get_config()}


@SCHEDULES.register("exponential")
class Exponential(Schedule):
    """``η(e) = η₀ · γ^e`` — PyTorch's ``ExponentialLR``.

    Args:
        gamma: factor γ > 0 per epoch. initial_lr: η₀.

    >>> [Exponential(0.5, initial_lr=1.0)(e) for e in range(3)]
    [1.0, 0.5, 0.25]
    """

    name = "exponential"

    def __init__(self, gamma: float = 0.9, initial_lr: float | None = None):
        super().__init__(initial_lr)
        self.gamma = _positive("gamma", gamma)

    def lr(self, epoch, eta0, total_epochs):
        return self._need(eta0) * self.gamma ** epoch

    def get_config(self):
        return {"gamma": self.gamma, **super().get_config()}


@SCHEDULES.register("cosine")
class Cosine(Schedule):
    """Cosine annealing: ``η(e) = η_min + (η₀ − η_min)·(1 + cos(π·min(e, T)/T)) / 2``.

    PyTorch's ``CosineAnnealingLR`` closed form for ``e ≤ T``; after ``T`` the rate stays
    at ``η_min`` (as Keras's ``CosineDecay``) instead of rising again.

    Args:
        t_max: T, the number of epochs of the half cosine; ``None`` uses the run's number of
            epochs (``total_epochs``, supplied by ``LearningRateScheduler``).
        eta_min: the final rate η_min ≥ 0. initial_lr: η₀.

    >>> [round(Cosine(4, initial_lr=1.0)(e), 4) for e in range(6)]
    [1.0, 0.8536, 0.5, 0.1464, 0.0, 0.0]
    """

    name = "cosine"

    def __init__(self, t_max: int | None = None, eta_min: float = 0.0,
                 initial_lr: float | None = None):
        super().__init__(initial_lr)
        self.t_max = None if t_max is None else _positive("t_max", t_max, integer=True)
        self.eta_min = _positive("eta_min", eta_min, allow_zero=True)

    def lr(self, epoch, eta0, total_epochs):
        eta0 = self._need(eta0)
        t = self.t_max if self.t_max is not None else total_epochs
        if t is None:
            raise ValueError("the 'cosine' schedule needs t_max: pass t_max=... or use it "
                             "through LearningRateScheduler(schedule, epochs=...)")
        t = _positive("total_epochs", t, integer=True)
        cos = math.cos(math.pi * min(epoch, t) / t)
        return self.eta_min + (eta0 - self.eta_min) * (1 + cos) / 2

    def get_config(self):
        cfg: dict[str, Any] = {} if self.t_max is None else {"t_max": self.t_max}
        return {**cfg, "eta_min": self.eta_min, **super().get_config()}


# ---------------------------------------------------------------------------- spec parsing
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_INT = re.compile(r"^[+-]?\d+$")


def _split_args(text: str) -> list[str]:
    """Split on commas outside brackets."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return parts


def _parse_value(text: str, spec: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "none":
        return None
    if text.startswith("[") and text.endswith("]"):
        inner = text[1:-1]
        return [_parse_value(v, spec) for v in inner.split(",")] if inner else []
    if "/" in text:
        return [_parse_value(v, spec) for v in text.split("/")]
    if _INT.match(text):
        return int(text)
    if _NUMBER.match(text):
        return float(text)
    raise ValueError(f"cannot read the value {text!r} in schedule spec {spec!r}; expected a "
                     "number, true/false/none, or a list such as 30/60")


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"step:step_size=5,gamma=0.5"`` → ``("step", {"step_size": 5, "gamma": 0.5})``.

    For ``piecewise`` the integer keys are gathered into ``{"values": {epoch: lr}}``.
    """
    text = "".join(spec.split())
    name, _, rest = text.partition(":")
    if not name:
        raise ValueError(f"schedule spec {spec!r} has no name; expected e.g. 'cosine' or "
                         "'step:step_size=5,gamma=0.5'")
    name = name.lower()
    kwargs: dict[str, Any] = {}
    epochs: dict[int, Any] = {}
    if rest:
        for arg in _split_args(rest):
            key, eq, value = arg.partition("=")
            if not eq or not key or not value:
                raise ValueError(f"schedule spec {spec!r}: expected key=value; received {arg!r}")
            parsed = _parse_value(value, spec)
            if _INT.match(key):
                epochs[int(key)] = parsed
            elif key in kwargs:
                raise ValueError(f"schedule spec {spec!r}: {key!r} given twice")
            else:
                kwargs[key] = parsed
    if epochs:
        if "values" in kwargs:
            raise ValueError(f"schedule spec {spec!r}: give epoch=lr pairs or values, not both")
        kwargs["values"] = epochs
    return name, kwargs


def get(spec: Any, **kwargs: Any) -> Schedule | Callable[..., float]:
    """A schedule from a name, a compact string, a dict, a number, or a callable.

    Args:
        spec: ``"cosine"``, ``"step:step_size=5,gamma=0.5"`` (see the module docstring for
            the grammar); a name with ``kwargs`` (``get("step", step_size=5)``); a dict
            ``{"name": "step", "step_size": 5}`` (what :func:`serialize` returns); an
            ``{epoch: lr}`` dict (piecewise); a number (constant); a :class:`Schedule` or
            any callable ``epoch -> lr`` (returned unchanged).
        kwargs: constructor arguments, merged over those in ``spec``.

    Raises:
        ValueError: unknown name, malformed string, or an argument the schedule does not
            take (the message lists the ones it does).

    >>> get({"name": "exponential", "gamma": 0.5}, initial_lr=2.0)(2)
    0.5
    """
    if isinstance(spec, Schedule) or (callable(spec) and not isinstance(spec, type)):
        if kwargs:
            raise ValueError(f"cannot apply {sorted(kwargs)} to an existing schedule {spec!r}")
        return spec
    if isinstance(spec, type) and issubclass(spec, Schedule):
        return spec(**kwargs)
    if isinstance(spec, bool) or spec is None:
        raise ValueError(f"a schedule is required; received {spec!r}")
    if isinstance(spec, (int, float)):
        return Constant(spec, **kwargs)
    if isinstance(spec, Mapping):
        spec = dict(spec)
        if "name" in spec:
            name = spec.pop("name")
            return _build(name, {**spec, **kwargs}, repr(name))
        return Piecewise(spec, **kwargs)
    if isinstance(spec, str):
        name, parsed = parse_spec(spec)
        return _build(name, {**parsed, **kwargs}, repr(spec))
    raise TypeError(f"cannot make a schedule from {type(spec).__name__} {spec!r}")


def _build(name: str, kwargs: dict[str, Any], shown: str) -> Schedule:
    cls = SCHEDULES.lookup(name)
    try:
        return cls(**kwargs)
    except TypeError as err:
        import inspect

        accepted = [p for p in inspect.signature(cls).parameters]
        raise ValueError(f"schedule {shown}: {err}; {cls.name!r} accepts "
                         f"{', '.join(accepted)}") from None


def serialize(schedule: Schedule) -> dict[str, Any]:
    """``{"name": ..., **config}``; ``get`` of it rebuilds the schedule (JSON-friendly)."""
    return {"name": schedule.name, **schedule.get_config()}


#: LeNet-5's global learning-rate schedule for SDLM (LeCun et al. 1998, section V.A):
#: (η, number of passes), then 1e-5 for every later pass.
LENET5_ETA_SCHEDULE = ((5e-4, 2), (2e-4, 3), (1e-4, 3), (5e-5, 4), (1e-5, None))


def lenet5_eta(pass_index: int) -> float:
    """η for pass ``pass_index`` (0-based) under :data:`LENET5_ETA_SCHEDULE`.

    >>> [lenet5_eta(k) for k in (0, 1, 2, 5, 8, 12, 19)]
    [0.0005, 0.0005, 0.0002, 0.0001, 5e-05, 1e-05, 1e-05]
    """
    if pass_index < 0:
        raise ValueError(f"pass_index must be >= 0; received pass_index={pass_index}")
    start = 0
    for eta, n in LENET5_ETA_SCHEDULE:
        if n is None or pass_index < start + n:
            return eta
        start += n
    raise AssertionError("unreachable")


#: the same schedule as a :class:`Piecewise` schedule by epoch
LENET5_ETA = Piecewise({0: 5e-4, 2: 2e-4, 5: 1e-4, 8: 5e-5, 12: 1e-5})
