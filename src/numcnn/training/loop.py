"""The training loop behind ``Sequential.fit``, ``evaluate`` and ``predict``.

One step: forward the batch with ``training=True``, the loss's ``forward`` and ``backward``,
the model's ``backward`` (which fills every layer's ``grads``), then one optimizer ``step``
over the trainable parameters. The dataset stays resident as one array; batches are gathered
through a permutation into a re-used buffer.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from .callbacks import Callback, CallbackList, History
from .parallel import DataParallel
from .progress import Progress, resolve_verbose


def as_inputs(model: Any, x: Any, who: str) -> np.ndarray:
    """Check ``x`` against the model's input shape and convert it once to the model dtype.

    Integer images (e.g. MNIST uint8) are converted as they are: scale them yourself first
    (``x / 255``) — nothing is rescaled behind your back.
    """
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise TypeError(f"{who}: expected a numeric array; received dtype {x.dtype}")
    expected = tuple(model.input_shape)
    if x.shape[1:] != expected:
        # Accept (N, H, W) for single-channel models, as Keras users pass MNIST.
        if len(expected) == 3 and expected[0] == 1 and x.shape[1:] == expected[1:]:
            x = x[:, None]
        else:
            raise ValueError(
                f"{who}: expected input of shape (N, {', '.join(map(str, expected))}); "
                f"received {x.shape}"
            )
    x = np.ascontiguousarray(x, dtype=model.dtype)
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise ValueError(f"{who}: input contains NaN or infinity")
    return x


def check_targets(x: np.ndarray, y: Any, who: str) -> np.ndarray:
    y = np.asarray(y)
    if len(y) != len(x):
        raise ValueError(f"{who}: x has {len(x)} samples but y has {len(y)}")
    return y


def batches(n: int, batch_size: int, order: np.ndarray | None = None):
    """Yield index arrays (or slices when ``order`` is None) of at most ``batch_size``."""
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        yield slice(start, stop) if order is None else order[start:stop]


def check_batch_size(batch_size: Any, n: int) -> int:
    """``None`` means the whole dataset (full-batch gradient descent)."""
    if batch_size is None:
        return max(n, 1)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int or None; received {batch_size!r}")
    return int(batch_size)


def run_fit(model: Any, x: Any, y: Any, batch_size: int | None = 128, epochs: int = 1,
            validation_data: tuple | None = None, shuffle: bool = True, verbose: Any = "auto",
            seed: int | None = None, callbacks: list[Callback] | None = None,
            initial_epoch: int = 0, processes: int = 1) -> History:
    """See :meth:`numcnn.Sequential.fit`; ``processes > 1`` trains data-parallel
    (:class:`numcnn.training.parallel.DataParallel`)."""
    if model.loss is None or model.optimizer is None:
        raise RuntimeError("call model.compile(optimizer=..., loss=...) before fit()")
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
        raise ValueError(f"epochs must be a non-negative int; received epochs={epochs!r}")
    x = as_inputs(model, x, "fit")
    y = check_targets(x, y, "fit")
    n = len(x)
    if n == 0:
        raise ValueError("fit: received an empty dataset")
    bs = check_batch_size(batch_size, n)
    val = None
    if validation_data is not None:
        if not (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
            raise ValueError("validation_data must be a tuple (x_val, y_val)")
        xv = as_inputs(model, validation_data[0], "fit(validation_data)")
        val = (xv, check_targets(xv, validation_data[1], "fit(validation_data)"))

    rng = np.random.default_rng(seed)
    verbose = resolve_verbose(verbose)
    steps = -(-n // bs)
    history = History()
    # History last (as Keras), so it records what other callbacks add to the logs ("lr")
    cbs = CallbackList([*(callbacks or []), history], model,
                       params={"epochs": epochs, "steps": steps, "samples": n,
                               "batch_size": bs, "verbose": verbose})
    progress = Progress(epochs, steps, n, verbose)
    model.stop_training = False
    params, grads = model.trainable_params(), model.trainable_grads()
    xbuf = np.empty((bs,) + x.shape[1:], dtype=x.dtype)

    # processes > 1: forked workers share every batch; stopped on exit, errors included
    with (DataParallel(model, x, y, processes) if processes > 1
          else contextlib.nullcontext()) as parallel:
        cbs.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            cbs.on_epoch_begin(epoch)
            progress.epoch_begin(epoch)
            order = rng.permutation(n) if shuffle else None
            loss_sum, seen = 0.0, 0
            metric_sums = dict.fromkeys(model.metrics, 0.0)
            for step, idx in enumerate(batches(n, bs, order)):
                cbs.on_batch_begin(step)
                if order is None:
                    xb = x[idx]
                else:
                    xb = xbuf[: len(idx)]
                    np.take(x, idx, axis=0, out=xb)
                yb = y[idx]
                if parallel is None:
                    out = model.forward(xb, training=True)
                    loss = model.loss.forward(out, yb)
                    model.backward(model.loss.backward())
                else:
                    loss, out = parallel.forward_backward(idx, xb, yb)
                model.optimizer.step(params, grads)
                m = len(xb)
                seen += m
                loss_sum += loss * m
                logs = {"loss": loss_sum / seen}
                for name, fn in model.metrics.items():
                    metric_sums[name] += fn(out, yb) * m
                    logs[name] = metric_sums[name] / seen
                progress.batch_end(step, seen, logs)
                cbs.on_batch_end(step, logs)
                if not np.isfinite(loss):
                    raise FloatingPointError(
                        f"loss became {loss} at epoch {epoch + 1}, batch {step + 1}; "
                        "lower the learning rate"
                    )
            logs = {"loss": loss_sum / seen}
            logs.update({name: total / seen for name, total in metric_sums.items()})
            if val is not None:
                scores = model.evaluate(val[0], val[1], batch_size=max(bs, 1000))
                logs.update({f"val_{key}": value for key, value in scores.items()})
            cbs.on_epoch_end(epoch, logs)
            progress.epoch_end(epoch, logs)
            if model.stop_training:
                break
        cbs.on_train_end()
    return history
