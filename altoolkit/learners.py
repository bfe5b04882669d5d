"""Fast learners on a label-free representation: seconds per round instead of minutes of MobileNetV3 training.

Each learner follows scikit-learn's estimator shape: ``fit(features, labels, unlabeled_features=None)`` and
``predict_proba(features)`` returning one column per class of the project (``num_classes``), also for classes
the labeled set does not contain yet (their probability is 0), so strategies always see N × K probabilities.

- :class:`LinearLearner`: multinomial logistic regression on the features.
- :class:`LabelSpreadingLearner`: labels spread over a k-nearest-neighbour graph of labeled ∪ unlabeled points
  (Zhou et al. 2004), so the unlabeled pool shapes the decision; the pool images the spreading labels most
  confidently then train the same linear model beside the labeled ones (pseudo-labels, never stored as labels).

Both end in a linear layer on the representation (:meth:`LinearLearner.head_weights`), which is what a saved
Keras model of the pipeline holds.
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
SPREADING_ALPHA = 0.9
"""Share of a node's label taken from its neighbours at each step: measured on patch features of Fashion-MNIST,
0.9 beat scikit-learn's default 0.2 by a point at 100 labels (README, label-efficiency section)."""
SPREADING_ITERATIONS = 30
SPREADING_DIMENSIONS = 64
"""The graph joins nearest neighbours in a PCA of the features to this many dimensions (fitted on the points)."""
PSEUDO_LABEL_SHARE = 0.5
"""Share of the unlabeled points, most confident first, whose spread label trains the linear model."""
UNSEEN_CLASS_BIAS = -30.0
"""Bias of a class no labeled image has yet in an exported linear layer: its probability stays near 0."""


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
    """Multinomial logistic regression (L2, ``C``) on the representation; one class seen → it is predicted.

    Fitted with one BLAS thread: measured on two busy cores, a fit on 100 × 1,600 features took 0.5 s, and 14 s
    with BLAS's default threads fighting over the cores."""

    num_classes: int
    C: float = LINEAR_C
    max_iter: int = 2000

    name = "linear"

    def fit(self, features, labels, unlabeled_features=None) -> "LinearLearner":
        from sklearn.linear_model import LogisticRegression
        from threadpoolctl import threadpool_limits

        check_positive_int(self.num_classes, "num_classes")
        check_positive_float(self.C, "C")
        x = check_embeddings(features, "labeled features")
        y = _labels_and_classes(labels, self.num_classes)
        if len(x) != len(y):
            raise ToolkitError(f"{len(x)} labeled feature rows but {len(y)} labels")
        self.classes_ = np.unique(y)
        self._model = None
        if len(self.classes_) > 1:
            with threadpool_limits(limits=1, user_api="blas"):
                self._model = LogisticRegression(C=self.C, max_iter=self.max_iter).fit(x, y)
        return self

    def predict_proba(self, features) -> np.ndarray:
        x = check_embeddings(features, "features", allow_empty=True)
        if self._model is None:
            return _full_columns(np.ones((len(x), 1)), self.classes_, self.num_classes)
        return _full_columns(self._model.predict_proba(x), self.classes_, self.num_classes)

    def head_weights(self, width: int) -> tuple[np.ndarray, np.ndarray]:
        """(kernel width × K, bias K) of a softmax layer that computes :meth:`predict_proba` from the features."""
        kernel = np.zeros((width, self.num_classes), dtype=np.float32)
        bias = np.full(self.num_classes, UNSEEN_CLASS_BIAS, dtype=np.float32)
        if self._model is None:
            bias[self.classes_] = 0.0
        elif len(self.classes_) == 2:
            kernel[:, self.classes_[1]] = self._model.coef_[0]
            bias[self.classes_] = (0.0, self._model.intercept_[0])
        else:
            kernel[:, self.classes_] = self._model.coef_.T
            bias[self.classes_] = self._model.intercept_
        return kernel, bias


@dataclass
class LabelSpreadingLearner:
    """Label spreading on a k-nearest-neighbour graph of labeled and unlabeled points, distilled into a linear model.

    ``F ← α S F + (1 − α) Y`` with ``S = D^-½ W D^-½`` (W: the k-NN graph over a PCA of the points, made symmetric,
    unit weights), for ``iterations`` steps from ``F = Y``. Then the ``pseudo_label_share`` most confident
    unlabeled points take their spread class and, with the labeled points, fit :class:`LinearLearner`, which
    predicts any image (the test split is never part of the graph).
    """

    num_classes: int
    n_neighbors: int = SPREADING_NEIGHBORS
    alpha: float = SPREADING_ALPHA
    iterations: int = SPREADING_ITERATIONS
    pseudo_label_share: float = PSEUDO_LABEL_SHARE
    seed: int = 0

    name = "label_spreading"

    def fit(self, features, labels, unlabeled_features=None) -> "LabelSpreadingLearner":
        check_positive_int(self.num_classes, "num_classes")
        if not 0 < self.alpha < 1:
            raise ToolkitError(f"alpha must lie strictly between 0 and 1, got {self.alpha!r}")
        if not 0 <= self.pseudo_label_share <= 1:
            raise ToolkitError(f"pseudo_label_share must lie in [0, 1], got {self.pseudo_label_share!r}")
        labeled = check_embeddings(features, "labeled features")
        y = _labels_and_classes(labels, self.num_classes)
        if len(labeled) != len(y):
            raise ToolkitError(f"{len(labeled)} labeled feature rows but {len(y)} labels")
        unlabeled = (np.zeros((0, labeled.shape[1])) if unlabeled_features is None
                     else check_embeddings(unlabeled_features, "unlabeled features", allow_empty=True))
        points = np.concatenate([labeled, unlabeled])
        self._spread = spread_labels(_graph_coordinates(points, self.seed), y, self.num_classes,
                                     check_positive_int(self.n_neighbors, "n_neighbors"), self.alpha,
                                     check_positive_int(self.iterations, "iterations"))
        pool_spread = self._spread[len(y):]
        count = int(round(self.pseudo_label_share * len(pool_spread)))
        confident = np.argsort(-pool_spread.max(axis=1), kind="stable")[:count]
        self.pseudo_labeled_ = confident
        self.linear_ = LinearLearner(self.num_classes).fit(
            np.concatenate([labeled, unlabeled[confident]]), np.concatenate([y, pool_spread[confident].argmax(1)]))
        return self

    def transduced(self) -> np.ndarray:
        """Spread class probabilities of the fitted points themselves (labeled rows first, then unlabeled)."""
        return self._spread

    def predict_proba(self, features) -> np.ndarray:
        return self.linear_.predict_proba(features)

    def head_weights(self, width: int) -> tuple[np.ndarray, np.ndarray]:
        return self.linear_.head_weights(width)


def _graph_coordinates(points: np.ndarray, seed: int) -> np.ndarray:
    """The points in at most :data:`SPREADING_DIMENSIONS` principal components (seeded), float32."""
    from altoolkit.strategies import sampled_pca

    if points.shape[1] <= SPREADING_DIMENSIONS or len(points) <= SPREADING_DIMENSIONS:
        return points.astype(np.float32)
    return sampled_pca(points, SPREADING_DIMENSIONS, seed)


def spread_labels(points: np.ndarray, labels: np.ndarray, num_classes: int, n_neighbors: int = SPREADING_NEIGHBORS,
                  alpha: float = SPREADING_ALPHA, iterations: int = SPREADING_ITERATIONS) -> np.ndarray:
    """Class probabilities of every point after spreading the first ``len(labels)`` points' classes over the
    symmetric ``n_neighbors``-nearest-neighbour graph (rows: the points in order; unreached rows uniform)."""
    from scipy import sparse
    from sklearn.neighbors import NearestNeighbors

    seeds = np.zeros((len(points), num_classes))
    seeds[np.arange(len(labels)), labels] = 1.0
    neighbours = min(n_neighbors, len(points) - 1)
    if neighbours < 1:
        return _row_normalised(seeds)
    columns = NearestNeighbors(n_neighbors=neighbours + 1).fit(points).kneighbors(
        points, return_distance=False)[:, 1:]
    rows = np.repeat(np.arange(len(points)), neighbours)
    graph = sparse.csr_matrix((np.ones(len(rows)), (rows, columns.ravel())), shape=(len(points),) * 2)
    graph = ((graph + graph.T) > 0).astype(np.float64)
    inverse_root = 1.0 / np.sqrt(np.asarray(graph.sum(axis=1)).ravel())
    normalised = sparse.diags(inverse_root) @ graph @ sparse.diags(inverse_root)
    spread = seeds.copy()
    for _ in range(iterations):
        spread = alpha * (normalised @ spread) + (1 - alpha) * seeds
    return _row_normalised(spread)


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
