"""How a classifier errs: the confusion matrix and the test images it got most confidently
wrong.

``M[t, p]`` counts the samples of true class ``t`` predicted as ``p`` (rows: truth,
columns: prediction; the diagonal holds the correct ones). The *most confidently wrong*
images are the misclassified samples sorted by the probability the model gave its wrong
answer, highest first.

Class probabilities come from the model's outputs (:func:`class_probabilities`): the
softmax of logits; for an RBF output (LeNet-5 1998, whose outputs are penalties ``y_i``,
smallest wins) the softmax of ``−y``, the posterior ``e^{−y_i} / Σ_j e^{−y_j}`` that its
MAP loss treats them as.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _mpl
from ._common import as_image


def _labels(y: Any, name: str) -> np.ndarray:
    a = np.asarray(y)
    if a.ndim != 1 or a.dtype.kind not in "iu" or a.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of integer class labels; "
                         f"received shape {a.shape}, dtype {a.dtype}")
    if a.min() < 0:
        raise ValueError(f"{name} holds a negative class label ({int(a.min())})")
    return a.astype(np.int64)


def confusion_matrix(y_true: Any, y_pred: Any, n_classes: int | None = None) -> np.ndarray:
    """``M[t, p]`` = the number of samples of class ``t`` predicted as ``p``, ``(K, K)``.

    >>> confusion_matrix([0, 1, 1, 2], [0, 2, 1, 2])
    array([[1, 0, 0],
           [0, 1, 1],
           [0, 0, 1]])
    """
    t, p = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {t.shape[0]} and {p.shape[0]}")
    k = int(max(t.max(), p.max())) + 1 if n_classes is None else int(n_classes)
    if k <= max(t.max(), p.max()):
        raise ValueError(f"n_classes={n_classes} but a label is {int(max(t.max(), p.max()))}")
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k)


def class_probabilities(outputs: Any, rbf: bool = False) -> np.ndarray:
    """Probabilities ``(N, K)`` from a classifier's outputs: ``softmax(outputs)`` (logits),
    or ``softmax(−outputs)`` when ``rbf`` (penalties, smallest wins). Rows that already
    are probabilities (a ``Softmax`` layer: within [0, 1], summing to 1) are kept."""
    z = np.asarray(outputs, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] < 2:
        raise ValueError(f"expected class scores (N, K) with K ≥ 2; received {z.shape}")
    if rbf:
        z = -z
    elif z.min() >= 0 and z.max() <= 1 and np.allclose(z.sum(axis=1), 1, atol=1e-4):
        return z
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def confident_errors(y_true: Any, probs: Any, k: int = 16) -> np.ndarray:
    """Indices of the (at most) ``k`` misclassified samples with the highest probability
    on their predicted class, highest first (ties: the lower index first)."""
    t = _labels(y_true, "y_true")
    P = np.asarray(probs, dtype=np.float64)
    if P.ndim != 2 or P.shape[0] != t.shape[0]:
        raise ValueError(f"probs must be (N, K) with N = {t.shape[0]}; received {P.shape}")
    pred = P.argmax(axis=1)
    wrong = np.flatnonzero(pred != t)
    conf = P[wrong, pred[wrong]]
    order = np.lexsort((wrong, -conf))  # by confidence descending, then index
    return wrong[order[: max(int(k), 0)]]


def plot_confusion(y_true: Any, y_pred: Any, class_names: list[str] | None = None,
                   n_classes: int | None = None, log: bool = True, cmap: Any = "Blues",
                   annotate: bool | None = None, title: str | None = None) -> Any:
    """The confusion matrix as an image with the counts written in the cells.

    Args:
        y_true, y_pred: integer labels (N,).
        class_names: tick labels (default 0 … K−1).
        log: colour by ``log(count)`` (``LogNorm`` from 1 to the largest count; zero cells
            are left white), so the few errors show beside a diagonal of thousands;
            False colours counts linearly.
        annotate: write the counts (default when K ≤ 20).

    Returns:
        a ``Figure`` whose ``AxesImage`` (labelled ``"confusion"``) holds ``M`` itself.
    """
    M = confusion_matrix(y_true, y_pred, n_classes)
    K = M.shape[0]
    names = [str(c) for c in (class_names if class_names is not None else range(K))]
    if len(names) != K:
        raise ValueError(f"{len(names)} class names for {K} classes")
    from matplotlib.colors import LogNorm, Normalize

    norm = LogNorm(vmin=1, vmax=max(int(M.max()), 2)) if log else Normalize(0, max(M.max(), 1))
    size = min(max(3.5, 0.42 * K + 1.5), 12)
    fig = _mpl.figure(size + 0.8, size)
    ax = fig.subplots()
    shown = np.ma.masked_less_equal(M, 0) if log else M
    im = ax.imshow(shown, cmap=_mpl.colormap(cmap), norm=norm, interpolation="nearest")
    im.set_label("confusion")
    ax.set_xticks(range(K), names, fontsize=8, rotation=90 if max(map(len, names)) > 2 else 0)
    ax.set_yticks(range(K), names, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if annotate is None:
        annotate = K <= 20
    if annotate:
        cut = norm(M.max()) * 0.6 if M.max() > 0 else 1
        for t in range(K):
            for p in range(K):
                if M[t, p]:
                    dark = norm(M[t, p]) > cut
                    ax.text(p, t, str(M[t, p]), ha="center", va="center", fontsize=7,
                            color="white" if dark else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    n = int(M.sum())
    acc = np.trace(M) / n
    ax.set_title(title or f"{n:,} samples: accuracy {100 * acc:.2f} %, {n - np.trace(M):,} "
                          "errors", fontsize=9)
    return fig


def plot_confident_errors(images: Any, y_true: Any, probs: Any, k: int = 16, cols: int = 8,
                          class_names: list[str] | None = None, cmap: Any = "gray_r",
                          title: str | None = None) -> Any:
    """The ``k`` most confidently wrong images (:func:`confident_errors`), each titled
    ``true → predicted (probability)``.

    Args:
        images: (N, H, W), (N, 1, H, W) or (N, 3, H, W), as stored (uint8 or float).
        y_true: labels (N,). probs: class probabilities (N, K)
            (:func:`class_probabilities`).
        cmap: colour map of grey images (default ``gray_r``: ink dark on white), drawn over
            the range of all the images shown.

    Returns:
        a ``Figure``; image ``i`` of the data is an ``AxesImage`` labelled ``"error[i]"``
        whose data is ``images[i]``.
    """
    X = np.asarray(images)
    P = np.asarray(probs, dtype=np.float64)
    if X.shape[0] != P.shape[0]:
        raise ValueError(f"{X.shape[0]} images but {P.shape[0]} rows of probabilities")
    idx = confident_errors(y_true, P, k)
    names = class_names
    pred = P.argmax(axis=1)
    t = np.asarray(y_true)
    n = max(len(idx), 1)
    nrows, ncols = _mpl.grid_shape(n, cols)
    fig = _mpl.figure(ncols * 1.1 + 0.2, nrows * 1.35 + 0.5)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    shown = X[idx] if len(idx) else X[:0]
    vmin, vmax = (float(shown.min()), float(shown.max())) if len(idx) else (0.0, 1.0)
    for j, ax in enumerate(axes):
        _mpl.hide_axis(ax)
        if j >= len(idx):
            ax.set_visible(j == 0)
            if j == 0:
                ax.text(0.5, 0.5, "no errors", ha="center", va="center")
            continue
        i = int(idx[j])
        img, rgb = as_image(X[i])
        im = (ax.imshow(img, interpolation="nearest") if rgb else
              ax.imshow(img, cmap=_mpl.colormap(cmap), vmin=vmin, vmax=vmax,
                        interpolation="nearest"))
        im.set_label(f"error[{i}]")

        def name(c: int) -> str:
            return names[c] if names is not None else str(c)

        ax.set_title(f"{name(int(t[i]))} → {name(int(pred[i]))} "
                     f"({100 * P[i, pred[i]]:.1f} %)\n#{i}", fontsize=7)
    wrong = int((pred != t).sum())
    fig.suptitle(title or f"most confidently wrong: {len(idx)} of {wrong} errors "
                          "(true → predicted)", fontsize=9)
    return fig


__all__ = ["class_probabilities", "confident_errors", "confusion_matrix",
           "plot_confident_errors", "plot_confusion"]
