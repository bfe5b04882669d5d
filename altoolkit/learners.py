"""Fast learners on a label-free representation: seconds per round instead of minutes of MobileNetV3 training.

Each learner follows scikit-learn's estimator shape: ``fit(features, labels, unlabeled_features=None)`` and
``predict_proba(features)`` returning one column per class of the project (``num_classes``), also for classes
the labeled set does not contain yet (their probability is 0), so strategies always see N × K probabilities.

- :class:`LinearLearner`: multinomial logistic regression on the features.
- :class:`LabelSpreadingLearner`: labels spread over a k-nearest-neighbour graph of labeled ∪ unlabeled points
  (Zhou et al. 2004), so the unlabeled pool shapes the decision; new points take the spread labels of their
  nearest graph points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from altoolkit.arrays import check_embeddings
from altoolkit.errors import ToolkitError
from altoolkit.validation import check_positive_float, check_positive_int

LINEAR_C = 0.1
"""Inverse regularisation of the logistic regression: measured on standardised Coates–Ng features of
Fashion-MNIST, 0.1 beat the default 1.0 at 100–500 labels (README, label-efficiency section)."""
SPREADING_NEIGHBORS = 10
SPREADING_ALPHA = 0.2
"""Share of a node's label taken from its neighbours at each step (scikit-learn's ``LabelSpreading`` default)."""
SPREADING_ITERATIONS = 30


def _labels_and_classes(labels, num_classes: int) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ToolkitError(f"labels must be a 1-D array of integer class ids, got {y.dtype} {y.shape}")
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise ToolkitError(f"labels must lie in 0..{num_classes - 1}, found {int(y.min())}..{int(y.max())}")
    if len(y) == 0:
        raise ToolkitError("a learner needs at least one labeled image")
    return y.astype(np.int64)


def _full_columns(probabilities: np.ndarray, seen: np.ndarray, num_classes: int) -> np.ndarray:
    """Probabilities over the seen classes spread into ``num_classes`` columns (unseen classes get 0)."""
    full = np.zeros((len(probabilities), num_classes), dtype=np.float64)
    full[:, seen] = probabilities
    return full


@dataclass
class LinearLearner:
    """Multinomial logistic regression (L2, ``C``) on the representation; one class seen → it is predicted."""

    num_classes: int
    C: float = LINEAR_C
    max_iter: int = 2000

    name = "linear"

    def fit(self, features, labels, unlabeled_features=None) -> "LinearLearner":
        from sklearn.linear_model import LogisticRegression

        check_positive_int(self.num_classes, "num_classes")
        check_positive_float(self.C, "C")
        x = check_embeddings(features, "labeled features")
        y = _labels_and_classes(labels, self.num_classes)
        if len(x) != len(y):
            raise ToolkitError(f"{len(x)} labeled feature rows but {len(y)} labels")
        self.classes_ = np.unique(y)
        self._model = None
        if len(self.classes_) > 1:
            self._model = LogisticRegression(C=self.C, max_iter=self.max_iter).fit(x, y)
        return self

    def predict_proba(self, features) -> np.ndarray:
        x = check_embeddings(features, "features", allow_empty=True)
        if self._model is None:
            return _full_columns(np.ones((len(x), 1)), self.classes_, self.num_classes)
        return _full_columns(self._model.predict_proba(x), self.classes_, self.num_classes)


@dataclass
class LabelSpreadingLearner:
    """Label spreading on a symmetric k-nearest-neighbour graph of labeled and unlabeled points.

    ``F ← α S F + (1 − α) Y`` with ``S = D^-½ W D^-½`` (W: the k-NN graph made symmetric, unit weights), for
    ``iterations`` steps from ``F = Y``. Points outside the graph (e.g. the test split) get the mean spread
    distribution of their ``n_neighbors`` nearest graph points, so nothing outside the pool is used to fit.
    """

    num_classes: int
    n_neighbors: int = SPREADING_NEIGHBORS
    alpha: float = SPREADING_ALPHA
    iterations: int = SPREADING_ITERATIONS

    name = "label_spreading"

    def fit(self, features, labels, unlabeled_features=None) -> "LabelSpreadingLearner":
        from scipy import sparse
        from sklearn.neighbors import NearestNeighbors

        check_positive_int(self.num_classes, "num_classes")
        k = check_positive_int(self.n_neighbors, "n_neighbors")
        if not 0 < self.alpha < 1:
            raise ToolkitError(f"alpha must lie strictly between 0 and 1, got {self.alpha!r}")
        labeled = check_embeddings(features, "labeled features")
        y = _labels_and_classes(labels, self.num_classes)
        if len(labeled) != len(y):
            raise ToolkitError(f"{len(labeled)} labeled feature rows but {len(y)} labels")
        unlabeled = (np.zeros((0, labeled.shape[1])) if unlabeled_features is None
                     else check_embeddings(unlabeled_features, "unlabeled features", allow_empty=True))
        points = np.concatenate([labeled, unlabeled]).astype(np.float32)
        neighbours = min(k, len(points) - 1)
        self._index = NearestNeighbors(n_neighbors=max(neighbours, 1)).fit(points)
        if neighbours < 1:
            spread = np.zeros((1, self.num_classes))
            spread[0, y[0]] = 1.0
            self._spread = spread
            return self
        columns = self._index.kneighbors(points, n_neighbors=neighbours + 1, return_distance=False)[:, 1:]
        rows = np.repeat(np.arange(len(points)), neighbours)
        graph = sparse.csr_matrix((np.ones(len(rows)), (rows, columns.ravel())), shape=(len(points),) * 2)
        graph = ((graph + graph.T) > 0).astype(np.float64)
        inverse_root = 1.0 / np.sqrt(np.asarray(graph.sum(axis=1)).ravel())
        normalised = sparse.diags(inverse_root) @ graph @ sparse.diags(inverse_root)
        seeds = np.zeros((len(points), self.num_classes))
        seeds[np.arange(len(y)), y] = 1.0
        spread = seeds.copy()
        for _ in range(check_positive_int(self.iterations, "iterations")):
            spread = self.alpha * (normalised @ spread) + (1 - self.alpha) * seeds
        self._spread = _row_normalised(spread)
        return self

    def transduced(self) -> np.ndarray:
        """Class probabilities of the fitted points themselves (labeled rows first, then unlabeled)."""
        return self._spread

    def predict_proba(self, features) -> np.ndarray:
        x = check_embeddings(features, "features", allow_empty=True)
        if len(x) == 0:
            return np.zeros((0, self.num_classes))
        neighbours = min(self.n_neighbors, len(self._spread))
        nearest = self._index.kneighbors(x.astype(np.float32), n_neighbors=neighbours, return_distance=False)
        return _row_normalised(self._spread[nearest].mean(axis=1))


def _row_normalised(values: np.ndarray) -> np.ndarray:
    """Rows scaled to sum to 1; a row of zeros (no label reached it) becomes uniform."""
    totals = values.sum(axis=1, keepdims=True)
    uniform = np.full_like(values, 1.0 / values.shape[1])
    return np.where(totals > 0, values / np.where(totals > 0, totals, 1.0), uniform)


LEARNERS = {"linear": LinearLearner, "label_spreading": LabelSpreadingLearner}
"""Fast learners by name (``mobilenet`` and ``mobilenet_distilled`` train Keras models: see altoolkit.training)."""


def make_learner(name: str, num_classes: int):
    """A fresh, unfitted learner by name (both are deterministic: no seed needed)."""
    if name not in LEARNERS:
        raise ToolkitError(f"unknown learner {name!r}: choose one of {', '.join(LEARNERS)}")
    return LEARNERS[name](num_classes=num_classes)
