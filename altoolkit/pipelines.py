"""Pipelines of a label-free representation and a fast learner, and pseudo-labels for the distilled MobileNet.

A pipeline is fitted in seconds: the representation is fitted on every training image without their labels,
the learner on the labeled rows' features (label spreading also on the unlabeled rows'). It is saved as an
ordinary Keras classifier — the representation's frozen layers, then one softmax layer holding the learner's
weights — so everything that reads a ``.keras`` model (the analyses, ``label.py select``, the labeling page)
works with it unchanged.
"""

from __future__ import annotations

import numpy as np

from altoolkit.errors import ToolkitError
from altoolkit.label_free import LabelFreeRepresentation, RepresentationSettings
from altoolkit.learners import LEARNERS, PSEUDO_LABEL_SHARE, LabelSpreadingLearner, make_learner

LEARNER_NAMES = ("mobilenet", "linear", "label_spreading", "mobilenet_distilled")
"""Every learner training can use: MobileNetV3Small from scratch, the two fast learners on a representation, and
MobileNetV3Small trained on the labels plus pseudo-labels from label spreading."""
FAST_LEARNERS = tuple(LEARNERS)
PSEUDO_LABELS_PER_LABEL = 4
"""The distilled MobileNet takes at most this many pseudo-labeled pool images per labeled image (and at most the
most confident :data:`altoolkit.learners.PSEUDO_LABEL_SHARE` of the pool), so training stays a few times the
plain run's length."""


def check_learner(name: str) -> str:
    if name not in LEARNER_NAMES:
        raise ToolkitError(f"unknown learner {str(name)[:40]!r}: choose one of {', '.join(LEARNER_NAMES)}")
    return name


def representation_features(images, name: str, settings: RepresentationSettings,
                            seed: int) -> tuple[LabelFreeRepresentation, np.ndarray]:
    """A representation fitted on ``images`` without labels, and their features from that same fitted object (the
    classifier saved with it computes exactly these)."""
    representation = LabelFreeRepresentation(name, settings, seed).fit(images)
    return representation, representation.transform(images)


def fit_fast_learner(name: str, features: np.ndarray, labels: np.ndarray, labeled_rows: np.ndarray,
                     unlabeled_rows: np.ndarray, num_classes: int, seed: int = 0):
    """The learner ``name`` fitted on the labeled rows (label spreading also sees the unlabeled rows)."""
    learner = make_learner(name, num_classes)
    if isinstance(learner, LabelSpreadingLearner):
        learner.seed = seed
    return learner.fit(features[labeled_rows], labels[labeled_rows], features[unlabeled_rows])


def pipeline_classifier(representation: LabelFreeRepresentation, learner, input_shape: tuple[int, int, int],
                        num_classes: int):
    """A Keras classifier: the representation's frozen layers, then a softmax layer with the learner's weights."""
    import keras

    feature_model = representation.feature_model(input_shape)
    width = int(feature_model.outputs[0].shape[-1])
    kernel, bias = learner.head_weights(width)
    head = keras.layers.Dense(num_classes, activation="softmax", name="predictions")
    outputs = head(feature_model.outputs[0])
    head.set_weights([kernel, bias])
    return keras.Model(feature_model.inputs, outputs, name=f"{representation.name}_{learner.name}_classifier")


def pseudo_labels(features: np.ndarray, labels: np.ndarray, labeled_rows: np.ndarray, unlabeled_rows: np.ndarray,
                  num_classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(rows, classes) of the unlabeled rows label spreading labels most confidently: at most
    :data:`PSEUDO_LABELS_PER_LABEL` per labeled row. Never stored as labels: they only extend one training run."""
    if len(unlabeled_rows) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    learner = LabelSpreadingLearner(num_classes, seed=seed).fit(features[labeled_rows], labels[labeled_rows],
                                                                features[unlabeled_rows])
    spread = learner.transduced()[len(labeled_rows):]
    count = min(int(round(PSEUDO_LABEL_SHARE * len(unlabeled_rows))), PSEUDO_LABELS_PER_LABEL * len(labeled_rows))
    confident = np.sort(np.argsort(-spread.max(axis=1), kind="stable")[:count])
    return unlabeled_rows[confident].astype(np.int64), spread[confident].argmax(axis=1).astype(np.int64)


def with_pseudo_labels_on(features: np.ndarray, labels: np.ndarray, train_rows: np.ndarray,
                          validation_rows: np.ndarray, num_classes: int,
                          seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict]:
    """(labels with :func:`pseudo_labels` on the rows outside training and validation, the training rows with
    those rows added, a record: their count and the share that agrees with a known label, in simulation).
    The validation rows are never pseudo-labeled and never shape the spreading."""
    unlabeled = np.setdiff1d(np.arange(len(labels)), np.concatenate([train_rows, validation_rows]))
    rows, classes = pseudo_labels(features, labels, train_rows, unlabeled, num_classes, seed)
    known = labels[rows] >= 0
    extended = labels.copy()
    extended[rows] = classes
    record = {"count": int(len(rows)),
              "agree_with_known_labels": float((labels[rows][known] == classes[known]).mean()) if known.any() else None}
    return extended, np.concatenate([train_rows, rows]), record
