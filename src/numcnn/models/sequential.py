"""``Sequential``: a stack of layers that is itself a layer, with a Keras-like training API."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, Callable

import numpy as np

from .. import losses as losses_mod
from .. import metrics as metrics_mod
from .. import optimizers as optimizers_mod
from ..layers.base import LAYERS, Layer, Shape, deserialize, serialize
from ..threads import blas_threads, get_num_threads
from ..training.callbacks import Callback, History
from ..training.loop import as_inputs, batches, check_batch_size, check_targets, run_fit
from ..training.parallel import MIN_PART, parallel_problem


@LAYERS.register("Sequential")
class Sequential(Layer):
    """A linear stack of layers.

    Args:
        layers: the layers, in order.
        input_shape: per-sample input shape, e.g. ``(1, 28, 28)``; when given, the model is
            built at once (so ``summary()`` works before any data).
        seed: seed for the initial weights (same seed, same weights).
        name, dtype: as for every layer; ``dtype`` is applied to every child layer.

    The first layer is told not to compute the gradient with respect to the input data.

    >>> from numcnn.layers import Dense, Flatten, ReLU
    >>> m = Sequential([Flatten(), Dense(32), ReLU(), Dense(10)], input_shape=(1, 28, 28))
    >>> m.count_params()
    25450
    """

    def __init__(self, layers: Iterable[Layer] = (), input_shape: Shape | None = None,
                 seed: int | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.need_input_grad = False  # a top-level model does not differentiate its data
        self.layers: list[Layer] = []
        for layer in layers:
            self.add(layer)
        self.seed = seed
        self.loss: losses_mod.Loss | None = None
        self.optimizer: optimizers_mod.Optimizer | None = None
        self.metrics: dict[str, Callable] = {}
        self.stop_training = False
        if input_shape is not None:
            self.build(tuple(input_shape))

    # ------------------------------------------------------------ structure
    def add(self, layer: Layer) -> None:
        """Append a layer (before the model is built)."""
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential takes Layer instances; received {type(layer).__name__}")
        if self.built:
            raise RuntimeError("cannot add layers to a built model")
        if layer.dtype != self.dtype:
            layer.dtype = self.dtype
            if isinstance(layer, Sequential):
                for child in layer.layers:
                    child.dtype = self.dtype
        self.layers.append(layer)
        self._assign_names()

    def _assign_names(self) -> None:
        taken: dict[str, int] = {}
        for layer in self.layers:
            base = layer.name or type(layer).__name__.lower()
            count = taken.get(base, 0)
            taken[base] = count + 1
            layer._auto_name = base if count == 0 else f"{base}_{count}"

    def build(self, input_shape: Shape, rng: np.random.Generator | None = None) -> None:
        if not self.layers:
            raise ValueError("a Sequential model needs at least one layer")
        super().build(input_shape)
        rng = rng if rng is not None else np.random.default_rng(self.seed)
        shape = self.input_shape
        for layer in self.layers:
            layer.build(shape, rng)
            shape = layer.output_shape(shape)
        self._set_input_grad(self.need_input_grad)

    def _set_input_grad(self, flag: bool) -> None:
        """dL/dx is needed at a layer's input only if some earlier layer has parameters (or
        the caller wants the model's input gradient): leading parameter-free layers such as
        ``Rescale``/``Pad2D`` and the first parametrised layer all skip it."""
        for layer in self.layers:
            layer.need_input_grad = flag  # a nested Sequential propagates this itself
            has_params = layer.named_params() if isinstance(layer, Sequential) else layer.params
            flag = flag or bool(has_params)

    def output_shape(self, input_shape: Shape) -> Shape:
        shape = tuple(input_shape)
        for layer in self.layers:
            shape = layer.output_shape(shape)
        return shape

    # ---------------------------------------------------------- computation
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x, training=training)
        return x

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
        return dy

    @property
    def need_input_grad(self) -> bool:  # type: ignore[override]
        return getattr(self, "_need_input_grad", False)

    @need_input_grad.setter
    def need_input_grad(self, flag: bool) -> None:
        self._need_input_grad = bool(flag)
        if getattr(self, "built", False):
            self._set_input_grad(self._need_input_grad)

    # ----------------------------------------------------------- parameters
    def _named(self, store: str) -> list[tuple[str, Layer, str]]:
        """``(qualified_name, layer, key)`` for every array in each leaf layer's ``store``
        dict (``"params"`` or ``"buffers"``), nested models included, in a fixed order."""
        out = []
        for layer in self.layers:
            if isinstance(layer, Sequential):
                out += [(f"{layer._auto_name}/{q}", lay, k) for q, lay, k in layer._named(store)]
            else:
                out += [(f"{layer._auto_name}/{k}", layer, k) for k in getattr(layer, store)]
        return out

    def named_params(self) -> list[tuple[str, Layer, str]]:
        """``(qualified_name, layer, key)`` for every parameter, in a fixed order."""
        return self._named("params")

    def named_buffers(self) -> list[tuple[str, Layer, str]]:
        """``(qualified_name, layer, key)`` for every non-trainable buffer."""
        return self._named("buffers")

    def trainable_params(self) -> list[np.ndarray]:
        """The arrays an optimizer updates, in a fixed order."""
        return [lay.params[k] for _, lay, k in self.named_params() if lay.trainable]

    def trainable_grads(self) -> list[np.ndarray]:
        """The gradient arrays parallel to :meth:`trainable_params`."""
        return [lay.grads[k] for _, lay, k in self.named_params() if lay.trainable]

    def get_weights(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and buffer, by qualified name (``"conv2d/W"``)."""
        out = {q: lay.params[k].copy() for q, lay, k in self.named_params()}
        out.update({q: lay.buffers[k].copy() for q, lay, k in self.named_buffers()})
        return out

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Copy arrays into the parameters and buffers, checking names and shapes."""
        slots = {q: (lay.params, k) for q, lay, k in self.named_params()}
        slots.update({q: (lay.buffers, k) for q, lay, k in self.named_buffers()})
        missing = sorted(set(slots) - set(weights))
        extra = sorted(set(weights) - set(slots))
        if missing or extra:
            raise ValueError(f"weights do not match the model: missing {missing}, unexpected "
                             f"{extra}")
        for q, (store, k) in slots.items():
            value = np.asarray(weights[q])
            if value.shape != store[k].shape:
                raise ValueError(f"weight {q!r}: expected shape {store[k].shape}; received "
                                 f"{value.shape}")
            store[k][...] = value

    def count_params(self) -> int:
        return sum(layer.count_params() for layer in self.layers)

    def count_non_trainable(self) -> int:
        return sum(layer.count_non_trainable() for layer in self.layers)

    # ------------------------------------------------------------- training
    def compile(self, optimizer: Any = "sgd", loss: Any = "softmax_cross_entropy",
                metrics: Iterable[Any] | None = ("accuracy",)) -> None:
        """Choose the optimizer, the loss and the metrics (objects or registered names)."""
        self.optimizer = optimizers_mod.get(optimizer)
        self.loss = losses_mod.get(loss)
        self.metrics = {}
        for m in metrics or ():
            fn = metrics_mod.get(m)
            self.metrics[m if isinstance(m, str) else fn.__name__] = fn

    def _require_built(self) -> None:
        if not self.built:
            raise RuntimeError("the model is not built: pass input_shape=... to Sequential")

    def fit(self, x: Any, y: Any, batch_size: int | None = 128, epochs: int = 1,
            validation_data: tuple | None = None, shuffle: bool = True, verbose: Any = "auto",
            seed: int | None = None, callbacks: list[Callback] | None = None,
            initial_epoch: int = 0, optimizer: Any = None, loss: Any = None,
            processes: int | None = None) -> History:
        """Train for ``epochs`` passes over ``(x, y)``.

        Args:
            x: inputs (N, *input_shape) — any numeric dtype, converted once to the model dtype.
            y: targets as the loss expects them (integer labels or one-hot rows).
            batch_size: samples per update; 1 is stochastic gradient descent, ``None`` the
                whole dataset (full-batch gradient descent), anything else mini-batch.
            epochs: index of the last epoch to run (``initial_epoch`` to resume).
            validation_data: ``(x_val, y_val)`` evaluated after each epoch (``val_*`` logs).
            shuffle: reshuffle the training order every epoch.
            verbose: 0 silent, 1 live bar, 2 one line per epoch, ``"auto"``.
            seed: seed for the shuffling order (same seed, same result).
            callbacks: extra :class:`numcnn.training.Callback` objects.
            initial_epoch: epoch to start from when resuming.
            optimizer, loss: shortcuts that (re)compile the model first, keeping its metrics
                (``fit(x, y, optimizer="adam", loss="softmax_cross_entropy")``).
            processes: how many processes share each batch (data-parallel, one BLAS thread
                each; see :mod:`numcnn.training.parallel`). ``None`` (default): the count
                :func:`numcnn.set_num_threads` set when the model and loss allow it (no
                BatchNorm, a mean-over-samples loss, Linux) and each process gets at least
                ``MIN_PART`` samples of a batch, else 1 process whose BLAS uses that many
                threads. ``1`` forces a single process; ``k ≥ 2`` requires
                data-parallel training and raises ``ValueError`` saying why it is impossible.

        Returns:
            A :class:`History` whose ``history`` dict holds ``loss``, each metric and their
            ``val_`` versions, one value per epoch.
        """
        self._require_built()
        if optimizer is not None or loss is not None:
            self.compile(optimizer=optimizer if optimizer is not None else
                         (self.optimizer or "sgd"),
                         loss=loss if loss is not None else
                         (self.loss or "softmax_cross_entropy"),
                         metrics=list(self.metrics) if self.loss is not None else ["accuracy"])
        threads = get_num_threads()
        batch = len(x) if batch_size is None else batch_size
        processes = self._training_processes(processes, threads, batch)
        with blas_threads(1 if processes > 1 else threads):
            return run_fit(self, x, y, batch_size=batch_size, epochs=epochs,
                           validation_data=validation_data, shuffle=shuffle, verbose=verbose,
                           seed=seed, callbacks=callbacks, initial_epoch=initial_epoch,
                           processes=processes)

    def _training_processes(self, processes: int | None, threads: int | None,
                            batch: Any) -> int:
        """The process count ``fit`` uses (see its ``processes`` argument)."""
        if processes is None:
            # automatic: as many processes as threads while each gets MIN_PART samples
            whole = isinstance(batch, (int, np.integer))
            usable = min(threads or 1, int(batch) // MIN_PART if whole else 1)
            if usable < 2 or parallel_problem(self, self.loss) is not None:
                return 1
            return usable
        if isinstance(processes, bool) or not isinstance(processes, (int, np.integer)) \
                or processes < 1:
            raise ValueError(f"processes must be a positive int or None; received "
                             f"processes={processes!r}")
        if processes > 1:
            problem = parallel_problem(self, self.loss)
            if problem is not None:
                raise ValueError(f"fit(processes={processes}): {problem}")
        return int(processes)

    def predict(self, x: Any, batch_size: int | None = 1000) -> np.ndarray:
        """Outputs of the model in inference mode, batch by batch, shape (N, *output_shape)."""
        self._require_built()
        x = as_inputs(self, x, "predict")
        bs = check_batch_size(batch_size, len(x))
        out = np.empty((len(x),) + self.output_shape(self.input_shape), dtype=self.dtype)
        with blas_threads(get_num_threads()):
            for idx in batches(len(x), bs):
                out[idx] = self.forward(x[idx], training=False)
        return out

    def evaluate(self, x: Any, y: Any, batch_size: int | None = 1000) -> dict[str, float]:
        """Mean loss and metrics over ``(x, y)`` in inference mode.

        Returns:
            ``{"loss": ..., "accuracy": ...}`` (one entry per compiled metric).
        """
        if self.loss is None:
            raise RuntimeError("call model.compile(...) before evaluate()")
        x = as_inputs(self, x, "evaluate")
        y = check_targets(x, y, "evaluate")
        bs = check_batch_size(batch_size, len(x))
        sums = dict.fromkeys(["loss", *self.metrics], 0.0)
        with blas_threads(get_num_threads()):
            for idx in batches(len(x), bs):
                out = self.forward(x[idx], training=False)
                m = len(out)
                sums["loss"] += self.loss.forward(out, y[idx]) * m
                for name, fn in self.metrics.items():
                    sums[name] += fn(out, y[idx]) * m
        return {k: v / max(len(x), 1) for k, v in sums.items()}

    # -------------------------------------------------------------- display
    def summary(self, print_fn: Callable[[str], Any] | None = None) -> str:
        """Print (and return) a Keras-style table of layers, output shapes and parameters.

        A ``Connections`` column is added when some layer's connections differ from its
        parameters (shared weights).
        """
        self._require_built()
        rows = []
        shape = self.input_shape
        any_conn = False
        total_conn = 0
        for layer in self.layers:
            out = layer.output_shape(shape)
            params = layer.count_params() + layer.count_non_trainable()
            conn = layer.count_connections(shape)
            if conn is not None and conn != params:
                any_conn = True
            total_conn += conn if conn is not None else 0
            rows.append((f"{layer._auto_name} ({type(layer).__name__})",
                         str((None, *out)), f"{params:,}", "" if conn is None else f"{conn:,}"))
            shape = out
        headers = ("Layer (type)", "Output Shape", "Param #", "Connections")
        ncol = 4 if any_conn else 3
        widths = [max(len(headers[c]), *(len(r[c]) for r in rows)) + 2 for c in range(ncol)]
        line = "".join(f"{headers[c]:<{widths[c]}}" for c in range(ncol)).rstrip()
        rule = "=" * sum(widths)
        out_lines = [f'Model: "{self.display_name}"', rule.replace("=", "_"), line, rule]
        for i, r in enumerate(rows):
            out_lines.append("".join(f"{r[c]:<{widths[c]}}" for c in range(ncol)).rstrip())
            out_lines.append(rule if i == len(rows) - 1 else "_" * sum(widths))
        trainable = self.count_params()
        non_trainable = self.count_non_trainable()
        out_lines += [f"Total params: {trainable + non_trainable:,}",
                      f"Trainable params: {trainable:,}",
                      f"Non-trainable params: {non_trainable:,}"]
        if any_conn:
            out_lines.append(f"Connections: {total_conn:,}")
        out_lines.append("_" * sum(widths))
        text = "\n".join(out_lines)
        (print_fn or (lambda s: print(s, file=sys.stdout)))(text)
        return text

    # --------------------------------------------------------------- config
    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update(layers=[serialize(layer) for layer in self.layers],
                   input_shape=list(self.input_shape) if self.input_shape else None,
                   seed=self.seed)
        return cfg

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Sequential:
        config = dict(config)
        layers = [deserialize(spec) for spec in config.pop("layers")]
        return cls(layers, **config)
