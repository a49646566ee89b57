"""L-BFGS with PyTorch's semantics (``torch.optim.LBFGS``), for full-batch training as UFLDL
trains its sparse autoencoder (minFunc's L-BFGS, which PyTorch's is modelled on).

L-BFGS needs the loss and gradient at points of its choosing, so ``step`` takes a
*closure* that re-evaluates them: ``fit`` passes one when the optimizer says
``needs_closure`` (one ``step`` per batch; ``fit(batch_size=None)`` is full-batch). All
parameters are treated as one flat vector θ (in the order of ``params``).

One ``step(params, grads, closure)`` runs up to ``max_iter`` iterations (the history
persists across steps, as PyTorch's state does)::

    g = ∇f(θ)                                  (the closure; stop if max|g| ≤ tolerance_grad)
    d = −g                                     (first iteration ever)
    d = −H g                                   (later: the two-loop recursion over the last
                                                history_size pairs s = t·d, y = g − g_prev,
                                                kept when yᵀs > 1e-10, H₀ = yᵀs / yᵀy)
    t = lr · min(1, 1/‖g‖₁)  (first iteration ever), else lr
    stop if gᵀd > −tolerance_change
    θ ← θ + t·d                                 (line_search_fn=None: a fixed step)
    or t from a strong-Wolfe line search        (c₁ = 1e-4, c₂ = 0.9, cubic interpolation)
    stop after max_iter iterations or max_eval evaluations, when max|g| ≤ tolerance_grad,
    max|t·d| ≤ tolerance_change or |f − f_prev| < tolerance_change

Without a line search the last iteration of a step is not evaluated (PyTorch's choice); the
next step's first evaluation is at that point. ``step`` returns the loss at the point where
it began (PyTorch's return value), which is what ``fit`` logs for the batch.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from .base import OPTIMIZERS, Optimizer, add_scaled_, named


def cubic_minimum(x1: float, f1: float, g1: float, x2: float, f2: float, g2: float,
                  bounds: tuple[float, float] | None = None) -> float:
    """The minimiser of the cubic through ``(x1, f1, f1' = g1)`` and ``(x2, f2, g2)``,
    clipped to ``bounds`` (default: the interval between the points); their midpoint when
    the cubic has no real minimiser::

        d1 = g1 + g2 − 3 (f1 − f2)/(x1 − x2),   d2 = √(d1² − g1 g2)
        x* = x2 − (x2 − x1) (g2 + d2 − d1) / (g2 − g1 + 2 d2)      (x1 ≤ x2)

    >>> cubic_minimum(0.0, 1.0, -2.0, 2.0, 1.0, 2.0)  # f = (x − 1)² + 0: minimum at 1
    1.0
    """
    lo, hi = bounds if bounds is not None else ((x1, x2) if x1 <= x2 else (x2, x1))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    sq = d1 * d1 - g1 * g2
    if sq < 0:
        return (lo + hi) / 2.0
    d2 = math.sqrt(sq)
    if x1 <= x2:
        x = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    else:
        x = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    return min(max(x, lo), hi)


def strong_wolfe(obj: Callable[[float], tuple[float, np.ndarray]], t: float, d: np.ndarray,
                 f: float, g: np.ndarray, gtd: float, c1: float = 1e-4, c2: float = 0.9,
                 tolerance_change: float = 1e-9, max_ls: int = 25
                 ) -> tuple[float, np.ndarray, float, int]:
    """A step ``t`` along ``d`` satisfying the strong Wolfe conditions
    ``f(t) ≤ f + c₁ t gᵀd`` and ``|g(t)ᵀd| ≤ −c₂ gᵀd`` (Nocedal & Wright, alg. 3.5–3.6):
    bracketing, then zooming by cubic interpolation — PyTorch's ``_strong_wolfe`` (from
    Torch7's ``lswolfe.lua``) step by step. ``obj(t)`` returns the loss and flat gradient
    at ``θ + t·d`` (``θ`` left unchanged). Returns ``(f(t), g(t), t, evaluations)``.
    """
    d_norm = float(np.abs(d).max())
    f_new, g_new = obj(t)
    evals = 1
    gtd_new = float(g_new @ d)
    t_prev, f_prev, g_prev, gtd_prev = 0.0, f, g, gtd
    done = False
    it = 0
    bracket: list[float] = []
    while it < max_ls:  # bracketing phase
        if f_new > f + c1 * t * gtd or (it > 1 and f_new >= f_prev):
            bracket, bf, bg, bgtd = [t_prev, t], [f_prev, f_new], [g_prev, g_new], \
                [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, bf, bg = [t], [f_new], [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket, bf, bg, bgtd = [t_prev, t], [f_prev, f_new], [g_prev, g_new], \
                [gtd_prev, gtd_new]
            break
        lo_step, hi_step = t + 0.01 * (t - t_prev), t * 10
        t_old = t
        t = cubic_minimum(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, (lo_step, hi_step))
        t_prev, f_prev, g_prev, gtd_prev = t_old, f_new, g_new, gtd_new
        f_new, g_new = obj(t)
        evals += 1
        gtd_new = float(g_new @ d)
        it += 1
    if it == max_ls:
        bracket, bf, bg = [0.0, t], [f, f_new], [g, g_new]
        bgtd = [gtd, gtd_new]  # (unused: the zoom below does not run)
    insufficient = False
    low, high = (0, 1) if bf[0] <= bf[-1] else (1, 0)
    while not done and it < max_ls:  # zoom phase
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = cubic_minimum(bracket[0], bf[0], bgtd[0], bracket[1], bf[1], bgtd[1])
        eps = 0.1 * (max(bracket) - min(bracket))
        if min(max(bracket) - t, t - min(bracket)) < eps:  # too close to an end
            if insufficient or t >= max(bracket) or t <= min(bracket):
                t = max(bracket) - eps if abs(t - max(bracket)) < abs(t - min(bracket)) \
                    else min(bracket) + eps
                insufficient = False
            else:
                insufficient = True
        else:
            insufficient = False
        f_new, g_new = obj(t)
        evals += 1
        gtd_new = float(g_new @ d)
        it += 1
        if f_new > f + c1 * t * gtd or f_new >= bf[low]:
            bracket[high], bf[high], bg[high], bgtd[high] = t, f_new, g_new, gtd_new
            low, high = (0, 1) if bf[0] <= bf[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high] - bracket[low]) >= 0:
                bracket[high], bf[high], bg[high], bgtd[high] = \
                    bracket[low], bf[low], bg[low], bgtd[low]
            bracket[low], bf[low], bg[low], bgtd[low] = t, f_new, g_new, gtd_new
    return bf[low], bg[low], bracket[low], evals


@OPTIMIZERS.register("lbfgs")
class LBFGS(Optimizer):
    """Limited-memory BFGS, ``torch.optim.LBFGS`` (see the module docstring for the
    iteration). A closure optimizer: ``needs_closure`` is True, so ``fit`` passes a closure
    that re-evaluates the batch (``fit(batch_size=None)`` for full-batch training).

    Args:
        lr: the step t of every iteration but the very first (default 1).
        max_iter: iterations per ``step`` (default 20).
        max_eval: evaluations per ``step`` (default ``max_iter · 5 // 4``).
        tolerance_grad: stop when ``max|g| ≤`` this (default 1e-7).
        tolerance_change: stop when the step or the loss change is below this (1e-9).
        history_size: pairs (s, y) kept (default 100).
        line_search_fn: None (a fixed step) or ``"strong_wolfe"``.
        **clip: ``clipnorm``, ``clipvalue``, ``global_clipnorm`` (see :class:`.Optimizer`),
            applied to every gradient the closure returns (PyTorch's LBFGS has none; a
            clipped gradient is no longer the objective's, so the line search may fail).

    State (``state_dict``): the flat history and the step count under ``lbfgs/…``; a run
    resumed from it continues exactly.
    """

    needs_closure = True
    _KEYS = ("d", "t", "old_dirs", "old_stps", "ro", "H_diag", "prev_flat_grad", "prev_loss")

    def __init__(self, lr: float = 1.0, max_iter: int = 20, max_eval: int | None = None,
                 tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9,
                 history_size: int = 100, line_search_fn: str | None = None, **clip: Any):
        super().__init__(lr, **clip)
        for name, v in (("max_iter", max_iter), ("history_size", history_size)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive int; received {name}={v!r}")
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        if isinstance(max_eval, bool) or not isinstance(max_eval, (int, np.integer)) \
                or max_eval < 1:
            raise ValueError(f"max_eval must be a positive int or None; received "
                             f"max_eval={max_eval!r}")
        for name, v in (("tolerance_grad", tolerance_grad),
                        ("tolerance_change", tolerance_change)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < np.inf:
                raise ValueError(f"{name} must be a number >= 0; received {name}={v!r}")
        if line_search_fn not in (None, "strong_wolfe"):
            raise ValueError(f"line_search_fn must be None or 'strong_wolfe'; received "
                             f"line_search_fn={line_search_fn!r}")
        self.max_iter, self.max_eval = int(max_iter), int(max_eval)
        self.tolerance_grad, self.tolerance_change = float(tolerance_grad), \
            float(tolerance_change)
        self.history_size = int(history_size)
        self.line_search_fn = line_search_fn
        self.func_evals = 0
        self.n_iter = 0
        self.lstate: dict[str, Any] = {}

    # ---------------------------------------------------------------- flat views
    @staticmethod
    def _flat(arrays: list[np.ndarray]) -> np.ndarray:
        return np.concatenate([a.reshape(-1) for a in arrays])

    @staticmethod
    def _add(ps: list[np.ndarray], t: float, d: np.ndarray) -> None:
        """θ ← θ + t·d, one rounding per value (PyTorch's ``p.add_(d, alpha=t)``)."""
        k = 0
        for p in ps:
            add_scaled_(p, d[k:k + p.size].reshape(p.shape), t)
            k += p.size

    def step(self, params: Any, grads: Any, closure: Callable[[], float] | None = None
             ) -> float:
        """Up to ``max_iter`` L-BFGS iterations; ``closure()`` must re-evaluate the loss
        at the current parameters, fill ``grads`` in place and return the loss. Returns the
        loss where the step began."""
        if closure is None:
            raise ValueError("LBFGS.step needs a closure that re-evaluates the loss and the "
                             "gradients (fit passes one; called directly: step(params, "
                             "grads, closure))")
        params, grads = named(params, grads)
        ps = list(params.values())
        gs = [grads[k] for k in params]
        n = sum(p.size for p in ps)
        st = self.lstate
        if st and st["prev_flat_grad"] is not None and st["prev_flat_grad"].size != n:
            raise ValueError(f"LBFGS: the state holds vectors of {st['prev_flat_grad'].size} "
                             f"values; these parameters have {n}")
        self.iterations += 1
        dt = ps[0].dtype.type if ps else np.float64

        clipping = self.clipnorm is not None or self.clipvalue is not None

        def evaluate() -> tuple[float, np.ndarray]:
            loss = float(closure())
            if clipping:
                return loss, self._flat(list(self.clip(dict(zip(params, gs))).values()))
            return loss, self._flat(gs)

        orig_loss, flat_grad = evaluate()
        loss = orig_loss
        current = 1
        self.func_evals += 1
        opt_cond = float(np.abs(flat_grad).max()) <= self.tolerance_grad
        if opt_cond:
            return orig_loss
        d, t = st.get("d"), st.get("t")
        old_dirs, old_stps, ro = st.get("old_dirs"), st.get("old_stps"), st.get("ro")
        h_diag, prev_grad, prev_loss = st.get("H_diag"), st.get("prev_flat_grad"), \
            st.get("prev_loss")
        it = 0
        while it < self.max_iter:
            it += 1
            self.n_iter += 1
            if self.n_iter == 1:  # the first iteration ever: steepest descent
                d = -flat_grad
                old_dirs, old_stps, ro, h_diag = [], [], [], 1.0
            else:
                y = flat_grad - prev_grad
                s = d * dt(t)
                ys = float(y @ s)
                if ys > 1e-10:  # keep the pair (curvature condition)
                    if len(old_dirs) == self.history_size:
                        old_dirs.pop(0)
                        old_stps.pop(0)
                        ro.pop(0)
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(1.0 / ys)
                    h_diag = ys / float(y @ y)  # H₀ = yᵀs / yᵀy
                # two-loop recursion: d = −H g
                q = -flat_grad
                al = [0.0] * len(old_dirs)
                for i in range(len(old_dirs) - 1, -1, -1):
                    al[i] = float(old_stps[i] @ q) * ro[i]
                    add_scaled_(q, old_dirs[i], -al[i])
                d = q * dt(h_diag)
                for i in range(len(old_dirs)):
                    be_i = float(old_dirs[i] @ d) * ro[i]
                    add_scaled_(d, old_stps[i], al[i] - be_i)
            prev_grad = flat_grad.copy()
            prev_loss = loss
            if self.n_iter == 1:
                t = min(1.0, 1.0 / float(np.abs(flat_grad).sum(dtype=flat_grad.dtype))) \
                    * self.lr
            else:
                t = self.lr
            gtd = float(flat_grad @ d)
            if gtd > -self.tolerance_change:
                break
            evals = 0
            if self.line_search_fn == "strong_wolfe":
                x0 = [p.copy() for p in ps]

                def obj(step: float, d: np.ndarray = d, x0: list = x0
                        ) -> tuple[float, np.ndarray]:
                    self._add(ps, step, d)
                    out = evaluate()
                    for p, x in zip(ps, x0):
                        p[...] = x
                    return out

                loss, flat_grad, t, evals = strong_wolfe(
                    obj, t, d, loss, flat_grad, gtd, max_ls=self.max_eval - current)
                self._add(ps, t, d)
                opt_cond = float(np.abs(flat_grad).max()) <= self.tolerance_grad
            else:
                self._add(ps, t, d)
                if it != self.max_iter:  # the last iteration is not evaluated (PyTorch)
                    loss, flat_grad = evaluate()
                    opt_cond = float(np.abs(flat_grad).max()) <= self.tolerance_grad
                    evals = 1
            current += evals
            self.func_evals += evals
            if it == self.max_iter or current >= self.max_eval or opt_cond:
                break
            if float(np.abs(d * dt(t)).max()) <= self.tolerance_change:
                break
            if abs(loss - prev_loss) < self.tolerance_change:
                break
        self.lstate = {"d": d, "t": t, "old_dirs": old_dirs, "old_stps": old_stps, "ro": ro,
                       "H_diag": h_diag, "prev_flat_grad": prev_grad, "prev_loss": prev_loss}
        return orig_loss

    def update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:
        raise TypeError("LBFGS updates all parameters at once through step(params, grads, "
                        "closure)")

    # -------------------------------------------------------------------- state
    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "max_iter": self.max_iter, "max_eval": self.max_eval,
                "tolerance_grad": self.tolerance_grad,
                "tolerance_change": self.tolerance_change, "history_size": self.history_size,
                "line_search_fn": self.line_search_fn}

    def state_bounds(self, n: int) -> dict[str, tuple[int, ...]]:
        """The history's largest shapes for ``n`` values (see :meth:`state_dict`)."""
        k = self.history_size
        return {"lbfgs/old_dirs": (k, n), "lbfgs/old_stps": (k, n), "lbfgs/ro": (k,),
                "lbfgs/d": (n,), "lbfgs/prev_flat_grad": (n,), "lbfgs/t": (),
                "lbfgs/H_diag": (), "lbfgs/prev_loss": ()}

    def state_dict(self) -> dict[str, np.ndarray]:
        """``iterations``, ``lr``, ``lbfgs/n_iter``, ``lbfgs/func_evals`` and, after a step,
        the history: ``lbfgs/old_dirs`` and ``lbfgs/old_stps`` (k, n), ``lbfgs/ro`` (k,),
        ``lbfgs/d`` and ``lbfgs/prev_flat_grad`` (n,), ``lbfgs/t``, ``lbfgs/H_diag``,
        ``lbfgs/prev_loss``."""
        out = {"iterations": np.asarray(self.iterations), "lr": np.asarray(self.lr),
               "lbfgs/n_iter": np.asarray(self.n_iter),
               "lbfgs/func_evals": np.asarray(self.func_evals)}
        st = self.lstate
        if st:
            n = st["d"].size
            dtype = st["d"].dtype
            for key in ("old_dirs", "old_stps"):
                out[f"lbfgs/{key}"] = (np.stack(st[key]) if st[key]
                                       else np.zeros((0, n), dtype))
            out["lbfgs/ro"] = np.asarray(st["ro"], dtype=np.float64)
            out["lbfgs/d"] = st["d"].copy()
            out["lbfgs/prev_flat_grad"] = st["prev_flat_grad"].copy()
            for key in ("t", "H_diag", "prev_loss"):
                out[f"lbfgs/{key}"] = np.asarray(float(st[key]))
        return out

    def load_state_dict(self, state: Any) -> None:
        """Restore :meth:`state_dict`'s output (shapes checked against each other)."""
        state = dict(state)
        unknown = [k for k in state if k not in ("iterations", "lr") and not (
            k.startswith("lbfgs/") and k[6:] in (*self._KEYS, "n_iter", "func_evals"))]
        if unknown:
            raise ValueError(f"LBFGS state: unexpected entries {sorted(unknown)}")
        self.iterations = int(state.get("iterations", 0))
        if "lr" in state:
            lr = float(state["lr"])
            if not 0 < lr < np.inf:
                raise ValueError(f"optimizer state: lr must be positive; received {lr!r}")
            self.lr = lr
        self.n_iter = int(state.get("lbfgs/n_iter", 0))
        self.func_evals = int(state.get("lbfgs/func_evals", 0))
        keys = [f"lbfgs/{k}" for k in self._KEYS]
        present = [k for k in keys if k in state]
        if not present:
            self.lstate = {}
            return
        if len(present) != len(keys):
            raise ValueError(f"LBFGS state: incomplete history; missing "
                             f"{sorted(set(keys) - set(present))}")
        d = np.array(state["lbfgs/d"])
        n = d.size
        dirs, stps = np.array(state["lbfgs/old_dirs"]), np.array(state["lbfgs/old_stps"])
        ro = np.asarray(state["lbfgs/ro"], dtype=np.float64).reshape(-1)
        k = len(ro)
        if d.ndim != 1 or dirs.shape != (k, n) or stps.shape != (k, n) \
                or np.asarray(state["lbfgs/prev_flat_grad"]).shape != (n,) \
                or k > self.history_size:
            raise ValueError(f"LBFGS state: inconsistent history shapes (d {d.shape}, "
                             f"old_dirs {dirs.shape}, old_stps {stps.shape}, ro ({k},), "
                             f"history_size {self.history_size})")
        self.lstate = {"d": d, "t": float(state["lbfgs/t"]),
                       "old_dirs": [r.copy() for r in dirs],
                       "old_stps": [r.copy() for r in stps], "ro": [float(v) for v in ro],
                       "H_diag": float(state["lbfgs/H_diag"]),
                       "prev_flat_grad": np.array(state["lbfgs/prev_flat_grad"]),
                       "prev_loss": float(state["lbfgs/prev_loss"])}
