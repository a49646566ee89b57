"""Metrics against hand-counted cases."""

import numpy as np
import pytest

from numcnn import metrics


@pytest.mark.parametrize("name", metrics.METRICS.names())
def test_every_metric_counts_matches_by_hand(name):
    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.2, 0.6], [0.9, 0.05, 0.05]])
    labels = np.array([1, 1, 2, 1])
    fn = metrics.get(name)
    # arg-max picks 1, 0, 2, 0 (2 of 4 right); arg-min picks 0, 2, 0, 1 (1 of 4 right)
    expected = {"accuracy": 0.5, "acc": 0.5, "argmin_accuracy": 0.25, "rbf_accuracy": 0.25}
    assert fn(scores, labels) == expected[name]
    assert fn(scores, np.eye(3)[labels]) == expected[name]  # one-hot targets


@pytest.mark.parametrize("name", metrics.METRICS.names())
@pytest.mark.parametrize("scores, labels, says", [
    (np.zeros((4, 6, 5)), np.zeros(4, int), r"expected scores \(N, K\), or \(N, T, K\).*"
                                            r"received scores \(4, 6, 5\) and labels \(4,\)"),
    (np.zeros((4, 5)), np.zeros(3, int), r"expected labels \(4,\).*received \(3,\)"),
    (np.zeros((4, 5)), np.zeros((4, 1, 5)), r"received \(4, 1, 5\)"),
    (np.zeros((4, 5)), np.zeros((4, 1), int), r"received \(4, 1\)"),
    (np.zeros((4, 5)), np.eye(4), r"one-hot rows \(4, 5\).*received \(4, 4\)"),
])
def test_misshaped_inputs_are_named_not_broadcast(name, scores, labels, says):
    # sequence scores (N, T, K) or labels of another length once ended in NumPy's
    # broadcasting error (or, for (N, 1) against (1, N), in a silent wrong fraction)
    with pytest.raises(ValueError, match=says):
        metrics.get(name)(scores, labels)


@pytest.mark.parametrize("name", ["accuracy", "argmin_accuracy"])
def test_sequence_scores_count_every_step(name):
    # per-step scores (N, T, K) with labels (N, T): the fraction of right steps, counted
    # here by loops over samples and steps
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((5, 7, 4))
    labels = rng.integers(0, 4, (5, 7))
    pick = np.argmax if name == "accuracy" else np.argmin
    right = sum(pick(scores[n, t]) == labels[n, t] for n in range(5) for t in range(7))
    fn = metrics.get(name)
    assert fn(scores, labels) == pytest.approx(right / 35, abs=1e-12)
    assert fn(scores, np.eye(4)[labels]) == pytest.approx(right / 35, abs=1e-12)
