"""The confusion matrix and the most confidently wrong images, against loops written here."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from viz_pixels import images_by_label  # noqa: E402

from numcnn.viz import (  # noqa: E402
    class_probabilities,
    confident_errors,
    confusion_matrix,
    plot_confident_errors,
    plot_confusion,
)


def naive_confusion(t, p, k):
    M = np.zeros((k, k), dtype=np.int64)
    for a, b in zip(t, p):
        M[a, b] += 1
    return M


@pytest.fixture
def labels():
    rng = np.random.default_rng(0)
    t = rng.integers(0, 5, 300)
    p = np.where(rng.random(300) < 0.8, t, rng.integers(0, 5, 300))
    return t, p


def test_confusion_matrix_counts_like_a_loop(labels):
    t, p = labels
    np.testing.assert_array_equal(confusion_matrix(t, p), naive_confusion(t, p, 5))
    np.testing.assert_array_equal(confusion_matrix(t, p, n_classes=7),
                                  naive_confusion(t, p, 7))


@pytest.mark.parametrize("log", [True, False])
def test_the_figure_holds_the_counts_and_writes_them(labels, log):
    t, p = labels
    M = naive_confusion(t, p, 5)
    fig = plot_confusion(t, p, class_names=list("abcde"), log=log)
    im = images_by_label(fig)["confusion"]
    np.testing.assert_array_equal(np.ma.filled(im.get_array(), 0), M)
    if log:  # zero cells are masked (drawn as the background), the rest on a log scale
        assert (np.ma.getmaskarray(im.get_array()) == (M == 0)).all()
        assert type(im.norm).__name__ == "LogNorm" and im.norm.vmax == M.max()
    texts = {(round(tx.get_position()[1]), round(tx.get_position()[0])): tx.get_text()
             for tx in im.axes.texts}
    assert texts == {(r, c): str(M[r, c]) for r in range(5) for c in range(5) if M[r, c]}
    assert [lab.get_text() for lab in im.axes.get_xticklabels()] == list("abcde")
    acc = np.trace(M) / M.sum()
    assert f"accuracy {100 * acc:.2f} %" in im.axes.get_title()


def naive_confident_errors(t, P, k):
    wrong = [(P[i].max(), -i, i) for i in range(len(t)) if P[i].argmax() != t[i]]
    wrong.sort(reverse=True)
    return [i for _, _, i in wrong[:k]]


def test_confident_errors_are_the_surest_mistakes(labels):
    t, _ = labels
    rng = np.random.default_rng(1)
    P = rng.dirichlet(np.ones(5), size=300)
    P[7] = P[9]  # a tie: the lower index first
    np.testing.assert_array_equal(confident_errors(t, P, 12), naive_confident_errors(t, P, 12))


def test_the_error_grid_shows_those_images():
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (40, 28, 28)).astype(np.uint8)
    t = rng.integers(0, 10, 40)
    P = rng.dirichlet(np.ones(10), size=40)
    fig = plot_confident_errors(images, t, P, k=6)
    ims = images_by_label(fig)
    want = naive_confident_errors(t, P, 6)
    assert sorted(ims) == sorted(f"error[{i}]" for i in want)
    shown = images[want]
    for i in want:
        im = ims[f"error[{i}]"]
        np.testing.assert_array_equal(im.get_array(), images[i])
        assert im.get_clim() == (shown.min(), shown.max())
        pred = P[i].argmax()
        assert im.axes.get_title().startswith(f"{t[i]} → {pred} ({100 * P[i, pred]:.1f} %)")


def test_probabilities_of_logits_rbf_penalties_and_softmax_outputs():
    z = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    e = np.exp(z)
    np.testing.assert_allclose(class_probabilities(z), e / e.sum(1, keepdims=True))
    e = np.exp(-z)
    np.testing.assert_allclose(class_probabilities(z, rbf=True), e / e.sum(1, keepdims=True))
    p = np.array([[0.2, 0.8], [0.5, 0.5]])
    np.testing.assert_array_equal(class_probabilities(p), p)


@pytest.mark.parametrize("t, p, pattern", [
    ([0, 1], [0], r"differ in length: 2 and 1"),
    ([0.5, 1], [0, 1], r"integer class labels"),
    ([-1, 1], [0, 1], r"negative class label"),
])
def test_bad_labels_are_clear_errors(t, p, pattern):
    with pytest.raises(ValueError, match=pattern):
        confusion_matrix(np.asarray(t), np.asarray(p))
