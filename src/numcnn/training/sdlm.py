"""LeNet-5's training protocol (LeCun et al. 1998) through the ordinary ``fit``.

* :func:`gauss_newton_diagonal` — one forward pass, then the second backward pass of
  appendix C through the model's graph, each layer's rule registered beside it
  (:mod:`numcnn.layers.gauss_newton`); returns ``h_kk`` for every trainable parameter, by
  name;
* :func:`estimate_curvature` — its average over a sample of patterns (500 in the paper);
* :class:`SDLMCurvature` — the callback that re-estimates ``h`` before every pass and hands
  it to the :class:`numcnn.optimizers.SDLM` optimizer (with the pass's damping μ);
* :class:`AffineDistortions` — the callback that draws fresh random planar affine
  distortions of the training images before every pass (:func:`affine_distort`);
* :func:`train_lenet5_1998` — the paper's protocol as ``compile`` + ``fit`` with those
  callbacks: 20 passes, the η schedule, one pattern per update, test error after each pass.

Both callbacks draw from the trainer's data-order generator in ``on_epoch_begin`` (the
distortions, then the curvature sample), before the pass's permutation, so the random
stream of a run is one sequence that a checkpoint saves whole.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable

import numpy as np

from ..layers.gauss_newton import rule_for
from ..losses import LeNetMAP
from ..models.graph import _add
from ..models.model import Model
from ..optimizers import SDLM
from ..schedules import lenet5_eta
from .callbacks import Callback, LearningRateScheduler


def _gn_backward(model: Model, tape: list[Any], d2ys: list[Any],
                 h: dict[int, dict[str, np.ndarray]]) -> list[Any]:
    """Propagate second derivatives ``d2ys`` (one per output) back through ``model``'s graph
    with each layer's Gauss–Newton rule, adding the curvature into ``h[id(layer)][key]``.
    Where a tensor feeds several steps their second derivatives add (the diagonal
    approximation drops the cross terms)."""
    graph = model.graph
    d2: list[Any] = [None] * graph.n_slots
    owned = [False] * graph.n_slots
    for s, v in zip(graph.output_slots, d2ys):
        if v is not None:
            _add(d2, owned, s, v)
    for st in reversed(graph.steps):
        d2y = tuple(d2[s] for s in st.out_slots) if st.multi else d2[st.out_slots[0]]
        if d2y is None or (st.multi and all(v is None for v in d2y)):
            continue
        call = tape[st.index]
        layer = st.layer
        if isinstance(layer, Model):
            outs = _gn_backward(layer, call.cache, list(d2y) if st.multi else [d2y], h)
            d2x = outs if st.list_input else outs[0]
        else:
            d2x, hs = rule_for(layer)(layer, d2y, call)
            acc = h.setdefault(id(layer), {})
            for k, v in hs.items():
                acc[k] = v if k not in acc else acc[k] + v
        need = call.need_dx
        if st.list_input:
            for s, n, v in zip(st.in_slots, need, d2x):
                if n and v is not None:
                    _add(d2, owned, s, v)
        elif need and d2x is not None:
            _add(d2, owned, st.in_slots[0], d2x)
    return [d2[s] for s in graph.input_slots]


def gauss_newton_diagonal(model: Model, loss: Any, x: Any, y: Any,
                          trainable_only: bool = True) -> dict[str, np.ndarray]:
    """Diagonal Gauss–Newton curvature of the batch-mean loss for every trainable parameter.

    Forward pass, then ``d2 = loss.backward_gn()`` propagated back through every layer's
    Gauss–Newton rule (squared weights, squared activation derivatives, summed over shared
    connections; LeCun et al. 1998, appendix C, eqs. 21–23). Because the loss is a batch
    mean, the result is the mean of the per-pattern diagonals over the batch.

    Args:
        model: a built single-output model whose layers have Gauss–Newton rules.
        loss: a loss with ``backward_gn()`` (e.g. :class:`numcnn.losses.LeNetMAP`).
        x: inputs (N, *input_shape) in the model dtype. y: targets.
        trainable_only: only the trainable parameters (what SDLM needs); False adds the
            frozen ones (e.g. LeNet-5's fixed RBF centres).

    Returns:
        ``{name: h}`` with the names and shapes of ``model.trainable_params()`` (all ≥ 0).
    """
    outs, tape, _ = model.run([x], training=False)
    loss.forward(outs[0], y)
    h: dict[int, dict[str, np.ndarray]] = {}
    _gn_backward(model, tape, [loss.backward_gn()], h)
    out = {}
    for q, layer, key in model.named_params():
        if layer.trainable or not trainable_only:
            v = h.get(id(layer), {}).get(key)
            out[q] = np.zeros_like(layer.params[key]) if v is None else np.array(v)
    return out


def estimate_curvature(model: Model, loss: Any, x: np.ndarray, y: np.ndarray,
                       batch_size: int = 100) -> dict[str, np.ndarray]:
    """Average of :func:`gauss_newton_diagonal` over the patterns ``x`` (e.g. 500), in
    batches of ``batch_size``.

    Returns:
        ``{name: h}`` (float64): the mean over all patterns of the per-pattern diagonal
        Gauss–Newton curvature, by parameter name.
    """
    n = len(x)
    if n == 0:
        raise ValueError("estimate_curvature needs at least one pattern")
    total: dict[str, np.ndarray] | None = None
    for s in range(0, n, batch_size):
        xb, yb = x[s : s + batch_size], y[s : s + batch_size]
        h = gauss_newton_diagonal(model, loss, xb, yb)
        w = len(xb) / n
        if total is None:
            total = {k: v.astype(np.float64) * w for k, v in h.items()}
        else:
            for k, v in h.items():
                total[k] += v * w
    return total  # type: ignore[return-value]


class SDLMCurvature(Callback):
    """Re-estimate the SDLM curvature before every pass (LeCun et al. 1998, appendix C).

    At the start of each epoch: draw ``samples`` distinct training patterns from the
    trainer's data-order generator, average the diagonal Gauss–Newton curvature over them
    (:func:`estimate_curvature`), set the optimizer's damping ``μ`` for the pass and hand it
    the curvature (``optimizer.set_curvature``). Adds ``mu`` and ``h_mean`` (the mean
    curvature) to the epoch's logs.

    Args:
        samples: patterns per estimate (500 in the paper).
        mu: the damping: a number, or a function ``epoch -> μ`` (e.g. :func:`capped_mu`);
            ``None`` keeps the optimizer's.
        batch_size: patterns per forward pass of the estimate.
        loss: the loss whose curvature is estimated (default: the model's compiled loss).
    """

    def __init__(self, samples: int = 500, mu: Any = None, batch_size: int = 100,
                 loss: Any = None):
        if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) \
                or samples <= 0:
            raise ValueError(f"samples must be a positive int; received samples={samples!r}")
        if mu is not None and not callable(mu) and (isinstance(mu, bool) or not isinstance(
                mu, (int, float)) or not mu > 0):
            raise ValueError(f"mu must be a positive number, a function of the epoch, or None; "
                             f"received mu={mu!r}")
        self.samples, self.mu, self.batch_size, self.loss = int(samples), mu, batch_size, loss
        self.h_mean = float("nan")

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        trainer = self.model.trainer
        opt = self.model.optimizer
        if not isinstance(opt, SDLM):
            raise TypeError(f"SDLMCurvature needs the sdlm optimizer; the model uses "
                            f"{type(opt).__name__}")
        x, y = trainer.x[0], trainer.y[0]
        n = len(x)
        sample = trainer.rng.choice(n, size=min(self.samples, n), replace=False)
        if trainer.resuming:
            return  # resumed mid-pass: the optimizer's restored state holds this pass's h
        h = estimate_curvature(self.model, self.loss or self.model.loss, x[sample], y[sample],
                               self.batch_size)
        if self.mu is not None:
            opt.mu = float(self.mu(epoch) if callable(self.mu) else self.mu)
        opt.set_curvature(h)  # also drops the cached step sizes
        self.h_mean = float(np.mean([v.mean() for v in h.values()]))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["mu"] = float(self.model.optimizer.mu)
            logs["h_mean"] = self.h_mean

    def state_dict(self) -> dict[str, Any]:
        return {"h_mean": self.h_mean}  # h itself lives in the optimizer's state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.h_mean = float(state.get("h_mean", float("nan")))


class AffineDistortions(Callback):
    """Fresh random planar affine distortions of the training images before every pass
    (the paper's augmented training set, section III.C; :func:`affine_distort`).

    Args:
        images: the undistorted training images (N, H, W) or (N, 1, H, W), as given to the
            model (e.g. grey levels 0..255 for LeNet-5 (1998), which rescales them itself).
        chunk: images distorted at a time (bounds the memory).
    """

    def __init__(self, images: np.ndarray, chunk: int = 4096):
        self.images = np.asarray(images)
        self.chunk = int(chunk)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        trainer = self.model.trainer
        if len(self.images) != len(trainer.x[0]):
            raise ValueError(f"AffineDistortions holds {len(self.images)} images but fit "
                             f"trains on {len(trainer.x[0])}")
        shape = trainer.x[0].shape
        parts = [affine_distort(self.images[s : s + self.chunk], trainer.rng)
                 for s in range(0, len(self.images), self.chunk)]
        trainer.x = [np.ascontiguousarray(np.concatenate(parts).reshape(shape),
                                          dtype=self.model.dtype)]


# ----------------------------------------------------------------------------- distortions


def affine_distort(x: np.ndarray, rng: np.random.Generator, max_shift: float = 2.0,
                   max_scale: float = 0.1, max_squeeze: float = 0.1, max_shear: float = 0.2,
                   fill: float = 0.0) -> np.ndarray:
    """Random planar affine distortions of a batch of images (bilinear resampling).

    Per image, independently and uniformly: a horizontal and a vertical translation in
    ``±max_shift`` pixels, a scaling ``s ∈ 1 ± max_scale``, a squeeze ``q ∈ 1 ± max_squeeze``
    (horizontal compression with vertical elongation, or the reverse) and a horizontal shear
    ``k ∈ ±max_shear`` — the transformations listed in the paper (section III.C). The map
    from output pixel ``(r, c)`` (relative to the image centre) to source position is the
    inverse of ``A = [[s/q, 0], [0, s·q]] @ [[1, 0], [k, 1]]`` (rows: (row, col)) plus the
    shift; the source is sampled bilinearly, ``fill`` outside the image.

    Args:
        x: images (N, H, W) or (N, 1, H, W), any numeric dtype.
        rng: random generator.

    Returns:
        float32 array of x's shape (float64 if x is float64).

    >>> x = np.zeros((2, 28, 28)); x[:, 10:18, 12:16] = 255
    >>> affine_distort(x, np.random.default_rng(0)).shape
    (2, 28, 28)
    """
    shape = x.shape
    if x.ndim == 4:
        if shape[1] != 1:
            raise ValueError(f"affine_distort: expected one channel; received shape {shape}")
        x = x[:, 0]
    if x.ndim != 3:
        raise ValueError(f"affine_distort: expected (N, H, W) images; received shape {shape}")
    dtype = np.float64 if x.dtype == np.float64 else np.float32
    N, H, W = x.shape
    s = rng.uniform(1 - max_scale, 1 + max_scale, N)
    q = rng.uniform(1 - max_squeeze, 1 + max_squeeze, N)
    k = rng.uniform(-max_shear, max_shear, N)
    t = rng.uniform(-max_shift, max_shift, (N, 2))
    # forward matrix A (acting on (row, col)): rows scaled by s·q, cols by s/q, col += k·row
    a_rr, a_rc = s * q, np.zeros(N)
    a_cr, a_cc = k * s / q, s / q
    det = a_rr * a_cc - a_rc * a_cr
    i_rr, i_rc, i_cr, i_cc = a_cc / det, -a_rc / det, -a_cr / det, a_rr / det  # A⁻¹
    cr, cc = (H - 1) / 2.0, (W - 1) / 2.0
    r = np.arange(H, dtype=np.float64)[None, :, None] - cr - t[:, 0, None, None]
    c = np.arange(W, dtype=np.float64)[None, None, :] - cc - t[:, 1, None, None]
    sr = i_rr[:, None, None] * r + i_rc[:, None, None] * c + cr  # (N, H, W) source rows
    sc = i_cr[:, None, None] * r + i_cc[:, None, None] * c + cc
    # bilinear sampling from a 1-pixel fill border so that every corner index is valid
    xp = np.full((N, H + 2, W + 2), fill, dtype=dtype)
    xp[:, 1:-1, 1:-1] = x
    sr = np.clip(sr + 1, 0, H + 0.999)
    sc = np.clip(sc + 1, 0, W + 0.999)
    r0 = np.floor(sr).astype(np.intp)
    c0 = np.floor(sc).astype(np.intp)
    fr = (sr - r0).astype(dtype)
    fc = (sc - c0).astype(dtype)
    n = np.arange(N)[:, None, None]
    out = (xp[n, r0, c0] * (1 - fr) * (1 - fc) + xp[n, r0 + 1, c0] * fr * (1 - fc)
           + xp[n, r0, c0 + 1] * (1 - fr) * fc + xp[n, r0 + 1, c0 + 1] * fr * fc)
    return out.astype(dtype, copy=False).reshape(shape)



# ---------------------------------------------------------------------------- protocol


def penalty_error(model: Model, x: np.ndarray, y: np.ndarray, batch_size: int = 1000) -> float:
    """Error rate of a penalty-output model (RBF units): prediction ``argmin_i y_i``."""
    out = model.predict(x, batch_size=batch_size)
    return float(np.mean(out.argmin(axis=1) != np.asarray(y)))


def capped_mu(mu0: float = 1.0, mu_min: float = 0.02,
              eta: Callable[[int], float] = lenet5_eta) -> Callable[[int], float]:
    """A damping schedule ``μ_k = max(mu_min, mu0 · η_k / η_0)``.

    It keeps the largest SDLM step ``η_k / μ_k`` (taken by parameters whose curvature
    ``h ≪ μ``) at ``η_0 / mu0`` while η decays, reaching the paper's μ = 0.02 in the last
    passes of the schedule.

    >>> [round(capped_mu()(k), 3) for k in (0, 2, 5, 8, 12)]
    [1.0, 0.4, 0.2, 0.1, 0.02]
    """
    return lambda k: max(mu_min, mu0 * eta(k) / eta(0))


def train_lenet5_1998(
    model: Model,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    passes: int = 20,
    batch_size: int = 1,
    augment: str | None = None,
    seed: int | None = 0,
    j: float = 10.0,
    mu: float | Callable[[int], float] | None = None,
    hessian_samples: int = 500,
    eta: Callable[[int], float] = lenet5_eta,
    callback: Callable[[dict[str, Any]], Any] | None = None,
    verbose: bool = True,
    callbacks: list[Callback] | None = None,
) -> list[dict[str, Any]]:
    """Train a LeNet-5 (1998) model with the paper's protocol and report test error per pass.

    It is ``model.compile(optimizer=SDLM(...), loss=LeNetMAP(j), metrics=["argmin_accuracy"])``
    and ``model.fit(x_train, y_train, batch_size, epochs=passes, validation_data=(x_test,
    y_test), seed=seed)`` with three callbacks, run before every pass in this order:
    :class:`AffineDistortions` (with ``augment="affine"``), :class:`SDLMCurvature` (draw
    ``hessian_samples`` training patterns, estimate ``h_kk``, set μ) and a
    :class:`LearningRateScheduler` setting ``η_pass · batch_size``. Then the pass visits the
    training set in a fresh random order, one update per pattern, and the test error
    (``argmin`` of the RBF penalties) is measured.

    Mini-batch equivalent: with ``batch_size = B > 1`` each update uses the *mean*
    gradient of B patterns and the rate ``B·η`` — the first-order equivalent of B
    consecutive per-pattern updates. ``h`` is per pattern either way.

    Args:
        model: e.g. :func:`numcnn.models.lenet5_1998` (built; layers with Gauss–Newton rules).
        x_train, x_test: images (N, 28, 28) or (N, 1, 28, 28), grey levels 0..255.
        y_train, y_test: integer labels (N,).
        passes: number of passes over the training set (20 in the paper).
        batch_size: patterns per update (1 = the paper's stochastic updates).
        augment: None, or ``"affine"`` for fresh random planar affine distortions of every
            training pattern each pass (:func:`affine_distort`).
        seed: seed of the data-order generator: the pattern order, the curvature samples and
            the distortions.
        j: the MAP loss constant (see :class:`numcnn.losses.LeNetMAP`).
        mu: SDLM damping μ, or ``pass_index -> μ``. The paper uses 0.02 throughout; with
            our curvature estimates that diverges in the first passes (see
            docs/lenet5_1998.md). Default (None): :func:`capped_mu` — μ = 1, 1, 0.4 ×3,
            0.2 ×3, 0.1 ×4, then the paper's 0.02.
        hessian_samples: patterns used to re-estimate ``h`` before each pass.
        eta: ``pass_index -> η`` (default: the paper's schedule).
        callback: called after each pass with that pass's record.
        verbose: print one line per pass.
        callbacks: more callbacks for ``fit`` (checkpoints, logging).

    Returns:
        One record per pass: ``{"pass", "eta", "mu", "train_loss", "test_error", "seconds",
        "h_mean"}`` (``test_error`` as a fraction).
    """
    if isinstance(passes, bool) or not isinstance(passes, (int, np.integer)) or passes <= 0:
        raise ValueError(f"passes must be a positive int; received passes={passes!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int; received batch_size={batch_size!r}")
    if augment not in (None, "affine"):
        raise ValueError(f"augment must be None or 'affine'; received augment={augment!r}")
    if mu is None:
        mu = capped_mu()
    mu_of = mu if callable(mu) else (lambda k: mu)
    model.compile(optimizer=SDLM(lr=eta(0), mu=mu_of(0)), loss=LeNetMAP(j=j),
                  metrics=["argmin_accuracy"])
    history: list[dict[str, Any]] = []
    curvature = SDLMCurvature(hessian_samples, mu=mu_of)
    cbs: list[Callback] = [_Records(history, passes, eta, curvature, callback, verbose)]
    if augment == "affine":
        cbs.append(AffineDistortions(x_train))
    cbs.append(curvature)
    cbs.append(LearningRateScheduler(lambda k: eta(k) * batch_size))
    model.fit(np.asarray(x_train), np.asarray(y_train).astype(np.int64), batch_size=batch_size,
              epochs=passes, validation_data=(np.asarray(x_test),
                                              np.asarray(y_test).astype(np.int64)),
              seed=seed, verbose=0, callbacks=cbs + list(callbacks or []), processes=1)
    return history


class _Records(Callback):
    """One record per pass for :func:`train_lenet5_1998`, printed when ``verbose``."""

    def __init__(self, history: list, passes: int, eta: Callable[[int], float],
                 curvature: SDLMCurvature, callback: Callable | None, verbose: bool):
        self.history, self.passes, self.eta = history, passes, eta
        self.curvature = curvature
        self.callback, self.verbose = callback, verbose
        self.t0 = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.t0 = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        rec = {"pass": epoch + 1, "eta": self.eta(epoch), "mu": self.model.optimizer.mu,
               "train_loss": logs["loss"], "test_error": 1.0 - logs["val_argmin_accuracy"],
               "seconds": time.perf_counter() - self.t0, "h_mean": self.curvature.h_mean}
        self.history.append(rec)
        if self.verbose:
            print(f"pass {epoch + 1:2d}/{self.passes}  eta {rec['eta']:.0e}  train loss "
                  f"{rec['train_loss']:.4f}  test error {100 * rec['test_error']:.2f} %  "
                  f"({rec['seconds']:.0f} s)", file=sys.stdout, flush=True)
        if self.callback is not None:
            self.callback(rec)
