"""Fast learners: known answers on tiny hand-made data."""

from __future__ import annotations

import numpy as np
import pytest

from altoolkit.errors import ToolkitError
from altoolkit.learners import LabelSpreadingLearner, LinearLearner, make_learner


def two_separated_clusters(points_per_cluster: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two well-separated Gaussian blobs (centres 10 apart, spread 0.5): every point's cluster is unambiguous."""
    rng = np.random.default_rng(seed)
    left = rng.normal(0.0, 0.5, size=(points_per_cluster, 2))
    right = rng.normal(0.0, 0.5, size=(points_per_cluster, 2)) + [10.0, 0.0]
    return np.concatenate([left, right]), np.repeat([0, 1], points_per_cluster)


def test_label_spreading_gives_each_cluster_its_one_labeled_point_s_class():
    points, truth = two_separated_clusters()
    labeled = np.array([0, 30])
    unlabeled = np.setdiff1d(np.arange(60), labeled)
    learner = LabelSpreadingLearner(num_classes=3, n_neighbors=5, alpha=0.2).fit(points[labeled], truth[labeled],
                                                                                 points[unlabeled])
    transduced = learner.transduced()
    assert transduced.shape == (60, 3)
    assert np.array_equal(transduced[2:].argmax(axis=1), truth[unlabeled])
    assert np.allclose(transduced.sum(axis=1), 1.0)
    assert np.all(transduced[:, 2] == 0)
    new_points = np.array([[0.2, -0.1], [9.7, 0.3]])
    assert learner.predict_proba(new_points).argmax(axis=1).tolist() == [0, 1]
    assert len(learner.pseudo_labeled_) == 29
    assert np.array_equal(truth[unlabeled][learner.pseudo_labeled_],
                          transduced[2:][learner.pseudo_labeled_].argmax(axis=1))


def test_linear_learner_separates_the_clusters_and_gives_unseen_classes_zero():
    points, truth = two_separated_clusters()
    learner = LinearLearner(num_classes=4).fit(points[::3], truth[::3])
    probabilities = learner.predict_proba(points)
    assert probabilities.shape == (60, 4)
    assert np.array_equal(probabilities.argmax(axis=1), truth)
    assert np.all(probabilities[:, 2:] == 0)
    assert np.allclose(probabilities.sum(axis=1), 1.0)


def test_a_single_labeled_class_is_predicted_everywhere():
    points, _ = two_separated_clusters()
    probabilities = LinearLearner(num_classes=3).fit(points[:2], np.array([1, 1])).predict_proba(points)
    assert np.array_equal(probabilities, np.tile([0.0, 1.0, 0.0], (60, 1)))


def test_learners_refuse_bad_labels_and_names():
    points, truth = two_separated_clusters()
    with pytest.raises(ToolkitError, match="labels must lie in 0..1"):
        LinearLearner(num_classes=2).fit(points[:3], np.array([0, 1, 5]))
    with pytest.raises(ToolkitError, match="integer class ids"):
        LabelSpreadingLearner(num_classes=2).fit(points[:3], np.array([0.0, 1.0, 1.0]))
    with pytest.raises(ToolkitError, match="3 labeled feature rows but 2 labels"):
        LinearLearner(num_classes=2).fit(points[:3], truth[:2])
    with pytest.raises(ToolkitError, match="unknown learner 'svm'"):
        make_learner("svm", 2)
    assert isinstance(make_learner("label_spreading", 2), LabelSpreadingLearner)


@pytest.mark.parametrize("classes_seen", [[1], [0, 2], [0, 1, 3]])
def test_the_exported_linear_layer_computes_the_learner_s_probabilities(classes_seen):
    rng = np.random.default_rng(len(classes_seen))
    features = rng.normal(size=(40, 5))
    labels = np.array(classes_seen)[np.arange(40) % len(classes_seen)]
    learner = LinearLearner(num_classes=4).fit(features, labels)
    kernel, bias = learner.head_weights(5)
    logits = features @ kernel + bias
    softmax = np.exp(logits - logits.max(axis=1, keepdims=True))
    softmax /= softmax.sum(axis=1, keepdims=True)
    assert np.allclose(softmax, learner.predict_proba(features), atol=1e-5)
