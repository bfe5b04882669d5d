"""When to stop labeling: the learner's cross-validated accuracy on the labels so far, and stabilising predictions.

Stabilising predictions (Bloodgood & Vijay-Shanker, 2009, "A method for stopping active learning based on
stabilizing predictions and the need for user-adjustable stopping"): keep a fixed *stop set* of unlabeled
images, predict it with every refitted model, and measure the agreement of consecutive models' predictions with
Cohen's kappa. Once the mean kappa of the last ``window`` refits (3) reaches ``threshold`` (0.99) the model's
decisions have stopped changing, and more labels of this kind would change little: a signal to stop.

Everything here is a function of arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from altoolkit.errors import ToolkitError

STOP_WINDOW = 3
"""Consecutive agreements averaged (Bloodgood & Vijay-Shanker's window)."""
STOP_THRESHOLD = 0.99
"""Mean kappa at or above which predictions count as stable (their default)."""
STOP_SET_SIZE = 2000
"""Images in the stop set (their size: a seeded sample of the pool)."""
CV_FOLDS = 5
"""Folds of the accuracy estimate, fewer when the smallest labeled class has fewer labels."""


@dataclass(frozen=True)
class AccuracyEstimate:
    """Out-of-fold accuracy on ``labels`` labels with its standard error, from ``folds``-fold cross-validation."""

    accuracy: float
    standard_error: float
    folds: int
    labels: int

    def as_dict(self) -> dict:
        return {"accuracy": self.accuracy, "standard_error": self.standard_error, "folds": self.folds,
                "labels": self.labels}


@dataclass(frozen=True)
class StopSignal:
    """Whether predictions are stable: the mean of the last ``window`` kappas (None until there are that many)."""

    stop: bool
    mean_kappa: float | None
    refits_needed: int

    def as_dict(self) -> dict:
        return {"stop": self.stop, "mean_kappa": self.mean_kappa, "refits_needed": self.refits_needed,
                "window": STOP_WINDOW, "threshold": STOP_THRESHOLD}


def cohens_kappa(first, second) -> float:
    """Cohen's kappa of two label vectors: 1 for identical predictions, 0 for agreement by chance alone.

    When both vectors hold one and the same class throughout, agreement is perfect and kappa is 1.
    """
    a, b = np.asarray(first), np.asarray(second)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ToolkitError(f"kappa compares two non-empty 1-D label vectors of one length, got {a.shape} and {b.shape}")
    observed = float(np.mean(a == b))
    classes = np.union1d(a, b)
    chance = float(sum(np.mean(a == label) * np.mean(b == label) for label in classes))
    if chance >= 1.0:
        return 1.0
    return (observed - chance) / (1.0 - chance)


def stabilizing_predictions(kappas, window: int = STOP_WINDOW, threshold: float = STOP_THRESHOLD) -> StopSignal:
    """The stop signal from the kappas of consecutive refits (oldest first): stop once the mean of the last
    ``window`` reaches ``threshold``."""
    values = [float(kappa) for kappa in kappas]
    if window < 1 or not all(math.isfinite(value) for value in values):
        raise ToolkitError(f"the stop signal needs a window of at least 1 and finite kappas, got {window}, {values}")
    if len(values) < window:
        return StopSignal(False, None, window - len(values))
    mean = float(np.mean(values[-window:]))
    return StopSignal(mean >= threshold, mean, 0)


def fold_count(classes, folds: int = CV_FOLDS) -> int:
    """Folds a stratified cross-validation of ``classes`` can use: at most ``folds``, at most the smallest class's
    count; 0 when some labeled class has a single label (nothing to hold out for it)."""
    counts = np.unique(np.asarray(classes), return_counts=True)[1]
    if len(counts) < 2:
        return 0
    smallest = int(counts.min())
    return min(folds, smallest) if smallest >= 2 else 0


def accuracy_with_error(correct: int, total: int) -> tuple[float, float]:
    """Accuracy and its binomial standard error, sqrt(p (1 - p) / n)."""
    if total < 1 or not 0 <= correct <= total:
        raise ToolkitError(f"need 0 <= correct <= total and total >= 1, got {correct} of {total}")
    accuracy = correct / total
    return accuracy, math.sqrt(accuracy * (1 - accuracy) / total)


def cross_validated_accuracy(features, classes, make_learner, folds: int = CV_FOLDS,
                             seed: int = 0) -> AccuracyEstimate | None:
    """Stratified ``folds``-fold out-of-fold accuracy of ``make_learner()`` on the labeled ``features``; None when
    a class has a single label or only one class is labeled (see :func:`fold_count`).

    The standard error treats the out-of-fold predictions as independent (they are not quite: the folds share
    training images), which is the usual approximation.
    """
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(classes)
    count = fold_count(y, folds)
    if count == 0:
        return None
    x = np.asarray(features)
    predicted = np.empty_like(y)
    for train, held_out in StratifiedKFold(count, shuffle=True, random_state=seed).split(x, y):
        learner = make_learner().fit(x[train], y[train])
        predicted[held_out] = np.argmax(learner.predict_proba(x[held_out]), axis=1)
    accuracy, error = accuracy_with_error(int(np.sum(predicted == y)), len(y))
    return AccuracyEstimate(accuracy, error, count, len(y))
