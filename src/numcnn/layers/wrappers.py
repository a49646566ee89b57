"""``TimeDistributed``: one layer applied to every time step of a sequence."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import LAYERS, Call, Layer, RandomLayer, deserialize, serialize
from .gauss_newton import gauss_newton_rule, rule_for
from .node import Shape, format_shape, shapes_compatible


@LAYERS.register("TimeDistributed")
class TimeDistributed(Layer):
    """Apply ``layer`` to each of the T steps of an (N, T, ...) input, with one set of weights.

    The time axis is folded into the batch: ``x`` (N, T, *S) is read as N·T samples of shape
    S, ``layer`` runs once on them, and its output (N·T, *S') is read back as (N, T, *S') —
    ``y[n, t] = layer(x[n, t])``, the reshape-based twin one writes in PyTorch
    (``m(x.flatten(0, 1)).unflatten(0, (N, T))``). Backward does the same to ``dy``; the
    wrapped layer's gradients sum over all N·T steps, since its weights are shared by them.
    T may be free (``Input((None, 1, 28, 28))``). A CNN → LSTM model reads a sequence of
    images through ``TimeDistributed(Conv2D(...))``, ``TimeDistributed(MaxPool2D(...))`` and
    ``TimeDistributed(Flatten())`` before the recurrent layer.

    The wrapper holds the layer's ``params``, ``grads`` and ``buffers`` (the same dicts), so
    they are saved, loaded and trained under the wrapper's name (``timedistributed/W``).
    Statistics layers see N·T samples: ``BatchNorm2D`` in training normalises over all steps
    (as Keras), in inference it applies its running statistics to each step. ``Dense`` and
    the element-wise layers need no wrapper for a feature axis they already handle, and
    ``Dropout`` is refused (it applies to (N, T, ...) as it is, with its generator where
    checkpoints and data-parallel workers find it).

    Args:
        layer: the layer to apply (one input, one output; not a model), or its serialized
            form ``{"class_name": ..., "config": ...}``. Its dtype follows the wrapper's.

    Shape:
        (N, T, *S) → (N, T, *S') where ``layer`` maps (M, *S) → (M, *S').

    >>> from numcnn.layers import Conv2D
    >>> TimeDistributed(Conv2D(8, 3)).output_shape((None, 1, 28, 28))
    (None, 8, 26, 26)
    """

    keeps_mask = True  # step t's output depends on step t alone

    def __init__(self, layer: Any, trainable: bool | None = None, **kwargs: Any):
        if isinstance(layer, dict):
            layer = deserialize(layer)
        if not isinstance(layer, Layer):
            raise TypeError(f"TimeDistributed wraps a layer; received {type(layer).__name__}")
        if hasattr(layer, "graph") or hasattr(layer, "leaf_layers"):
            raise TypeError(f"TimeDistributed wraps one layer, not a model "
                            f"({type(layer).__name__}); wrap each of its layers")
        if isinstance(layer, RandomLayer):
            raise TypeError(f"TimeDistributed({type(layer).__name__}): apply it to the "
                            "(N, T, ...) sequence directly; it needs no wrapper")
        if type(layer).__name__ == "InputLayer":
            raise TypeError("TimeDistributed cannot wrap an InputLayer")
        self.layer = layer
        super().__init__(trainable=layer.trainable if trainable is None else trainable,
                         **kwargs)
        if self._dtype_given:
            self._sync_dtype()
        elif layer._dtype_given or layer.built:
            self.dtype, self._dtype_given = layer.dtype, True
        self._owns_build = not layer.built
        self.params, self.grads, self.buffers = layer.params, layer.grads, layer.buffers

    # ------------------------------------------------------------- delegation
    @property
    def trainable(self) -> bool:  # type: ignore[override]
        return self.layer.trainable

    @trainable.setter
    def trainable(self, flag: bool) -> None:
        self.layer.trainable = bool(flag)

    @property
    def per_sample(self) -> bool:  # type: ignore[override]
        return self.layer.per_sample

    def _sync_dtype(self) -> None:
        if self.layer.built and self.layer.dtype != self.dtype:
            raise ValueError(f"{self.display_name}: the wrapped layer is built as "
                             f"{self.layer.dtype}; the wrapper is {self.dtype}")
        if not self.layer.built:
            self.layer.set_dtype(self.dtype)

    def set_dtype(self, dtype: Any) -> None:
        super().set_dtype(dtype)
        self._sync_dtype()

    def _step_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) < 2:
            raise ValueError(f"{self.display_name}: expected a (T, ...) input shape with at "
                             f"least one axis after time; received {tuple(input_shape)}")
        return tuple(input_shape[1:])

    def output_shape(self, input_shape: Shape) -> Shape:
        out = self.layer.output_shape(self._step_shape(input_shape))
        if isinstance(out, list):
            raise ValueError(f"{self.display_name}: the wrapped layer "
                             f"{type(self.layer).__name__} has several outputs")
        return (input_shape[0],) + tuple(out)

    def param_shapes(self, input_shape: Shape) -> dict[str, tuple[int, ...]]:
        self.output_shape(input_shape)
        return self.layer.param_shapes(self._step_shape(input_shape))

    def buffer_shapes(self, input_shape: Shape) -> dict[str, tuple[int, ...]]:
        self.output_shape(input_shape)
        return self.layer.buffer_shapes(self._step_shape(input_shape))

    def build(self, input_shape: Shape, rng: np.random.Generator | None = None) -> None:
        self._sync_dtype()
        super().build(input_shape, rng)
        step = self._step_shape(self.input_shape)
        if self._owns_build:  # also when a model re-draws the weights from its seed
            self.layer.build(step, rng)
        elif not shapes_compatible(step, self.layer.input_shape):
            raise ValueError(f"{self.display_name}: the wrapped layer is built for steps of "
                             f"shape {format_shape(self.layer.input_shape)}; received "
                             f"{format_shape(step)}")

    def count_connections(self, input_shape: Shape) -> int | None:
        n = self.layer.count_connections(self._step_shape(input_shape))
        return None if n is None or input_shape[0] is None else n * int(input_shape[0])

    # ------------------------------------------------------------ computation
    def fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        self.check_input(x)
        N, T = x.shape[:2]
        inner = Call(call.training, call.need_dx, call.ws)
        y = self.layer.fprop(x.reshape((N * T,) + x.shape[2:]), inner)  # (N·T, *S) → (N·T, *S')
        call.cache = (inner, N, T, x.shape[2:])
        return y.reshape((N, T) + y.shape[1:])

    def bprop(self, dy: np.ndarray, call: Call, accumulate: bool = False) -> np.ndarray | None:
        inner, N, T, step = call.cache
        dx = self.layer.bprop(dy.reshape((N * T,) + dy.shape[2:]), inner, accumulate)
        return None if dx is None else dx.reshape((N, T) + tuple(step))

    # ------------------------------------------------------------------ state
    def extra_state(self) -> dict[str, np.ndarray]:
        return self.layer.extra_state()

    def load_extra_state(self, state: dict[str, np.ndarray]) -> None:
        self.layer.load_extra_state(state)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "layer": serialize(self.layer)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TimeDistributed:
        config = dict(config)
        if not isinstance(config.get("layer"), dict):
            raise ValueError(f"TimeDistributed config: 'layer' must be a layer spec; received "
                             f"{config.get('layer')!r}")
        return cls(**config)

    def __repr__(self) -> str:
        return f"TimeDistributed({self.layer!r})"


@gauss_newton_rule(TimeDistributed)
def _time_distributed_gn(layer: TimeDistributed, d2y: np.ndarray, call: Call):
    """The wrapped layer's rule on the N·T folded steps."""
    inner, N, T, step = call.cache
    d2x, h = rule_for(layer.layer)(layer.layer, d2y.reshape((N * T,) + d2y.shape[2:]), inner)
    return (None if d2x is None else d2x.reshape((N, T) + tuple(step))), h
