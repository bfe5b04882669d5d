"""Core active-learning heuristics as pure functions over arrays.

Every heuristic takes arrays computed once per round — class probabilities (N×K) and penultimate embeddings
(N×D) — and returns one score per pool row or pool indices. Nothing here reads files, plots, or runs the
model, except :func:`get_feature_extractor` (builds an embedding model) and :func:`modal_query_strategy`
(the modAL adapter, which runs one forward pass per query). Indices are positions in the given pool arrays,
returned as ascending int64 unless a docstring says otherwise. TensorFlow/Keras are imported lazily so that
importing this module stays cheap.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

import numpy as np

from altoolkit.arrays import as_indices, check_embeddings, check_probabilities, check_scores
from altoolkit.errors import ToolkitError
from altoolkit.strategies import (MC_DROPOUT_PASSES, ClassifierHead, badge_select, bald_scores, class_balanced_select,
                                  k_center_greedy, mc_dropout_probabilities, ranking_by, typicality_select,
                                  weighted_cluster_select)
from altoolkit.model import INFERENCE_BATCH_SIZE

STRATEGIES = ("random", "entropy", "margin", "least_confidence", "uncertainty", "diversity", "novelty",
              "combined", "intersection", "intersection_filled", "bald", "coreset", "badge", "typicality",
              "class_balanced_margin", "class_balanced_random", "diverse_margin")
"""Strategy names accepted by :func:`select_samples` and :func:`modal_query_strategy`."""

RECOMMENDED = "recommended"
"""A strategy name beside ``STRATEGIES``: resolved by :func:`recommended_choice` from the labeled set's size."""

RECOMMENDED_SCARCE_LABELS_PER_CLASS = 50
"""Below this many labels per class the recommended default picks typical images over pixel features; from it on
it picks uncertain ones (see recommended_choice and the README's benchmark section)."""

RECOMMENDED_SCARCE = ("typicality", "pixels")
RECOMMENDED_LATER = ("margin", "model")

DEFAULT_COMBINED_WEIGHTS = (0.5, 0.3, 0.2)
"""The prototype's weights for (uncertainty, diversity, novelty) in :func:`combined_scores`."""

KMEANS_FIT_SAMPLE = 10_000
"""k-means is fitted on at most this many rows (a seeded sample), then every row goes to its nearest centre:
full KMeans on 50,000×576 took ~17 s here, the sampled fit well under a second."""

KMEANS_SEEDING_SAMPLE = 1000
"""k-means++ seeds are drawn from at most this many rows (see _kmeans_plusplus_on_sample)."""

NEAREST_NEIGHBORS_CHUNK = 2048
"""Pool rows per k-NN query, so memory is bounded by chunk × labeled size, never pool × labeled."""

_NEEDS_LABELED = ("novelty", "combined", "intersection", "intersection_filled")
_NEEDS_LABELED_CLASSES = ("class_balanced_margin", "class_balanced_random")


@dataclass(frozen=True)
class UncertaintyResult:
    """Per-row uncertainty scores and the rows in the top ``threshold_percentile`` % by entropy or margin.

    ``criterion[i]`` says which rule selected row i: "entropy", "margin", "both", or "" (not selected).
    """

    indices: np.ndarray
    entropy: np.ndarray
    margin: np.ndarray
    least_confidence: np.ndarray
    entropy_threshold: float
    margin_threshold: float
    criterion: np.ndarray


@dataclass(frozen=True)
class DiversityResult:
    """K-means view of the pool: far-from-centroid points and the point closest to each centroid.

    ``representatives`` holds one index per non-empty cluster, ordered by cluster label (not by index).
    """

    cluster_labels: np.ndarray
    centroids: np.ndarray
    distances: np.ndarray
    threshold: float
    indices: np.ndarray
    representatives: np.ndarray


@dataclass(frozen=True)
class NoveltyResult:
    """Mean distance of each pool embedding to its k nearest labeled embeddings, and the rows above threshold."""

    scores: np.ndarray
    threshold: float
    indices: np.ndarray


def _check_percentile(value: float, name: str) -> float:
    if not (np.isfinite(value) and 0 < value <= 100):
        raise ToolkitError(f"{name} must be in (0, 100], got {value}")
    return float(value)


def entropy_scores(probabilities) -> np.ndarray:
    """Shannon entropy of each row in nats (0·log 0 = 0): highest when the model spreads its belief evenly."""
    from scipy.special import entr

    return entr(check_probabilities(probabilities)).sum(axis=1)


def margin_scores(probabilities) -> np.ndarray:
    """1 − (top probability − runner-up): 1 when the two best classes tie, 0 for a one-hot prediction."""
    p = check_probabilities(probabilities)
    top_two = np.partition(p, p.shape[1] - 2, axis=1)[:, -2:]
    return 1.0 - (top_two[:, 1] - top_two[:, 0])


def least_confidence_scores(probabilities) -> np.ndarray:
    """1 − max probability: how far the model is from being sure of its prediction."""
    return 1.0 - check_probabilities(probabilities).max(axis=1)


def select_uncertain(probabilities, threshold_percentile: float = 50) -> UncertaintyResult:
    """Rows in the top ``threshold_percentile`` % by entropy OR by margin score.

    A row fires a criterion when its score is ≥ the (100 − threshold_percentile)-th percentile of that score
    over the pool (numpy's linear interpolation), so ties at the threshold are all included; 100 selects all.
    """
    threshold_percentile = _check_percentile(threshold_percentile, "threshold_percentile")
    p = check_probabilities(probabilities)
    entropy = entropy_scores(p)
    margin = margin_scores(p)
    least_confidence = least_confidence_scores(p)
    if len(p) == 0:
        entropy_threshold = margin_threshold = float("nan")
        by_entropy = by_margin = np.zeros(0, dtype=bool)
    else:
        entropy_threshold = float(np.percentile(entropy, 100 - threshold_percentile))
        margin_threshold = float(np.percentile(margin, 100 - threshold_percentile))
        by_entropy = entropy >= entropy_threshold
        by_margin = margin >= margin_threshold
    criterion = np.where(by_entropy & by_margin, "both",
                         np.where(by_entropy, "entropy", np.where(by_margin, "margin", "")))
    return UncertaintyResult(indices=as_indices(np.flatnonzero(by_entropy | by_margin)), entropy=entropy,
                             margin=margin, least_confidence=least_confidence, entropy_threshold=entropy_threshold,
                             margin_threshold=margin_threshold, criterion=criterion.astype("<U7"))


def check_n_clusters(n_clusters, pool_size: int) -> None:
    """k-means needs 1 ≤ n_clusters ≤ pool size (callers may check this before paying for a forward pass)."""
    if not (isinstance(n_clusters, (int, np.integer)) and 1 <= n_clusters <= pool_size):
        raise ToolkitError(f"n_clusters must be between 1 and the pool size ({pool_size}), got {n_clusters}: "
                           "pass a smaller n_clusters or a larger pool")


def check_k_neighbors(k_neighbors, labeled_size: int) -> None:
    """Novelty needs 1 ≤ k_neighbors ≤ labeled size (callers may check this before paying for a forward pass)."""
    if not (isinstance(k_neighbors, (int, np.integer)) and 1 <= k_neighbors <= labeled_size):
        raise ToolkitError(f"k_neighbors must be between 1 and the number of labeled images ({labeled_size}), "
                           f"got {k_neighbors}: pass a smaller k_neighbors")


def analyze_diversity_embeddings(embeddings, n_clusters: int = 20, far_percentile: float = 75,
                                 random_state: int = 0) -> DiversityResult:
    """Cluster the pool with k-means; flag points far from their centroid and pick each cluster's most typical point.

    Far points (distance > the ``far_percentile``-th percentile) are atypical; representatives (closest to a
    centroid) are typical. Pools above ``KMEANS_FIT_SAMPLE`` rows are clustered on a seeded sample of that
    many rows and every row is then assigned to its nearest centre; ``centroids`` are the exact means of each
    cluster's members. Clustering runs with one BLAS thread (OpenMP keeps its threads): measured on two cores,
    k-means++ seeding with the default BLAS threads (its small matrix products fight OpenMP for the cores)
    took 1.7–2.7 s on 3,500 rows, 0.1 s with one.
    """
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    e = check_embeddings(embeddings)
    far_percentile = _check_percentile(far_percentile, "far_percentile")
    check_n_clusters(n_clusters, len(e))
    sampled = len(e) > KMEANS_FIT_SAMPLE
    fit_rows = e
    if sampled:
        fit_rows = e[np.sort(np.random.default_rng(random_state).choice(len(e), KMEANS_FIT_SAMPLE, replace=False))]
    with threadpool_limits(limits=1, user_api="blas"):
        clustering = KMeans(n_clusters=int(n_clusters), random_state=random_state, n_init=1,
                            init=_kmeans_plusplus_on_sample(fit_rows, int(n_clusters), random_state)).fit(fit_rows)
        labels = (clustering.predict(e) if sampled else clustering.labels_).astype(np.int64)
    centroids = _cluster_means(e, labels, clustering.cluster_centers_)
    offsets = e - centroids.astype(e.dtype)[labels]
    distances = np.sqrt(np.einsum("ij,ij->i", offsets, offsets, dtype=np.float64))
    threshold = float(np.percentile(distances, far_percentile))
    by_cluster_then_distance = np.lexsort((distances, labels))
    _, first_of_each_cluster = np.unique(labels[by_cluster_then_distance], return_index=True)
    representatives = by_cluster_then_distance[first_of_each_cluster]
    return DiversityResult(cluster_labels=labels, centroids=centroids, distances=distances, threshold=threshold,
                           indices=as_indices(np.flatnonzero(distances > threshold)),
                           representatives=as_indices(representatives))


def _kmeans_plusplus_on_sample(embeddings: np.ndarray, n_clusters: int, random_state: int) -> np.ndarray:
    """k-means++ seeds drawn from a seeded sample of at most ``KMEANS_SEEDING_SAMPLE`` rows.

    Seeding dominates k-means on a few thousand rows (measured: 0.065 of 0.10 s on 3,500 × 576); seeding on
    1,000 rows halves the total, and the final inertia stayed within about 1 % of seeding on all rows.
    """
    from sklearn.cluster import kmeans_plusplus

    rows = embeddings
    if len(embeddings) > KMEANS_SEEDING_SAMPLE:
        sample = np.random.default_rng(random_state).choice(len(embeddings), KMEANS_SEEDING_SAMPLE, replace=False)
        rows = embeddings[np.sort(sample)]
    centres, _ = kmeans_plusplus(rows, n_clusters, random_state=random_state)
    return centres


def _cluster_means(embeddings: np.ndarray, labels: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Exact mean of each cluster's members (a sampled fit's centres are approximate); empty ones keep ``fallback``."""
    from scipy.sparse import csr_matrix

    n_clusters = len(fallback)
    membership = csr_matrix((np.ones(len(labels)), (labels, np.arange(len(labels)))),
                            shape=(n_clusters, len(labels)))
    counts = np.bincount(labels, minlength=n_clusters)
    sums = np.asarray(membership @ embeddings, dtype=np.float64)
    means = np.array(fallback, dtype=np.float64)
    filled = counts > 0
    means[filled] = sums[filled] / counts[filled, None]
    return means


def analyze_novelty_embeddings(pool_embeddings, labeled_embeddings, k_neighbors: int = 5,
                               novelty_percentile: float = 75) -> NoveltyResult:
    """Score each pool point by its mean Euclidean distance to its k nearest labeled points: high = unlike the labels.

    The pool is queried in chunks of ``NEAREST_NEIGHBORS_CHUNK`` rows, so no pool × labeled matrix is built.
    """
    from sklearn.neighbors import NearestNeighbors

    pool = check_embeddings(pool_embeddings, "pool embeddings", allow_empty=True)
    labeled = check_embeddings(labeled_embeddings, "labeled embeddings")
    novelty_percentile = _check_percentile(novelty_percentile, "novelty_percentile")
    if pool.shape[1] != labeled.shape[1]:
        raise ToolkitError(f"pool embeddings have {pool.shape[1]} features but labeled embeddings have "
                           f"{labeled.shape[1]}: compute both with the same model")
    check_k_neighbors(k_neighbors, len(labeled))
    neighbours = NearestNeighbors(n_neighbors=int(k_neighbors)).fit(labeled)
    scores = np.empty(len(pool), dtype=np.float64)
    for start in range(0, len(pool), NEAREST_NEIGHBORS_CHUNK):
        chunk = pool[start:start + NEAREST_NEIGHBORS_CHUNK]
        distances, _ = neighbours.kneighbors(chunk, return_distance=True)
        scores[start:start + len(chunk)] = distances.mean(axis=1)
    threshold = float(np.percentile(scores, novelty_percentile)) if len(scores) else float("nan")
    return NoveltyResult(scores=scores, threshold=threshold, indices=as_indices(np.flatnonzero(scores > threshold)))


def intersect_indices(*index_arrays) -> np.ndarray:
    """Indices present in every given array, sorted ascending int64; empty input or no overlap gives an empty array."""
    if not index_arrays:
        return np.zeros(0, dtype=np.int64)
    common = np.unique(as_indices(index_arrays[0]))
    for indices in index_arrays[1:]:
        common = np.intersect1d(common, as_indices(indices), assume_unique=False)
    return as_indices(common)


def random_indices(n_pool: int, n: int, seed: int = 0) -> np.ndarray:
    """``n`` distinct pool positions drawn uniformly with ``seed``, sorted ascending; all positions if n ≥ n_pool."""
    if n_pool < 0 or n < 0:
        raise ToolkitError(f"pool size and sample size must be non-negative, got n_pool={n_pool}, n={n}")
    if n >= n_pool:
        return np.arange(n_pool, dtype=np.int64)
    chosen = np.random.default_rng(seed).choice(n_pool, size=n, replace=False)
    return np.sort(as_indices(chosen))


def min_max_normalise(values) -> np.ndarray:
    """Rescale to [0, 1] so scores with different units can be added; a constant (or empty) vector becomes zeros."""
    x = check_scores(values, "values")
    if x.size == 0:
        return x
    low, high = x.min(), x.max()
    if high == low:
        return np.zeros_like(x)
    return (x - low) / (high - low)


def combined_scores(uncertainty, diversity, novelty, weights=DEFAULT_COMBINED_WEIGHTS) -> np.ndarray:
    """Weighted sum of the min–max normalised uncertainty, diversity and novelty scores (prototype: 0.5, 0.3, 0.2)."""
    parts = [check_scores(uncertainty, "uncertainty scores"), check_scores(diversity, "diversity scores"),
             check_scores(novelty, "novelty scores")]
    if len({len(part) for part in parts}) != 1:
        raise ToolkitError("uncertainty, diversity and novelty scores must have one value per pool image, "
                           f"got lengths {[len(part) for part in parts]}")
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (3,) or not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ToolkitError(f"weights must be three non-negative numbers (uncertainty, diversity, novelty), "
                           f"got {weights!r}")
    return sum(weight * min_max_normalise(part) for weight, part in zip(w, parts))


def top_n(scores, n: int, seed: int = 0) -> np.ndarray:
    """Indices of the ``n`` highest scores, highest first; equal scores are ordered by a permutation seeded by ``seed``.

    Same idea as modAL.utils.selection.shuffled_argmax (shuffle, then stable sort), written here because
    shuffled_argmax draws from numpy's global random state and takes no seed; multi_argmax has no tie-break
    at all. ``n`` larger than the pool returns every index.
    """
    s = check_scores(scores)
    if n < 0:
        raise ToolkitError(f"n must be non-negative, got {n}")
    tie_break = np.random.default_rng(seed).permutation(len(s))
    return as_indices(np.lexsort((tie_break, -s))[:n])


def select_samples(probabilities, embeddings, labeled_embeddings, n: int, strategy: str = "combined", seed: int = 0,
                   threshold_percentile: float = 50, n_clusters: int = 20, k_neighbors: int = 5,
                   far_percentile: float = 75, novelty_percentile: float = 75, labeled_classes=None,
                   head: ClassifierHead | None = None, mc_passes: int = MC_DROPOUT_PASSES) -> np.ndarray:
    """Pick pool images to label with the named strategy (one of ``STRATEGIES``).

    Order of the result: "random" and "intersection" return ascending indices; every ranked strategy returns
    min(n, pool) indices, best first. Scores: "entropy"/"uncertainty", "margin", "least_confidence" use the
    uncertainty score of that name; "diversity" the distance to the own k-means centroid; "novelty" the mean
    distance to the k nearest labeled embeddings; "combined" :func:`combined_scores` of entropy, centroid
    distance and novelty. "intersection" returns the whole uncertain ∩ far ∩ novel set, whatever its size,
    ignoring ``n`` (possibly empty). "intersection_filled" ranks that set first and then the rest of the pool,
    both by combined score. ``labeled_embeddings`` may be None for strategies that do not use novelty.

    Budgeted strategies from :mod:`altoolkit.strategies` return min(n, pool) indices in the order chosen:
    "bald" (Monte-Carlo dropout in the classifier ``head``, ``mc_passes`` passes), "coreset" (k-center greedy
    from the labeled embeddings), "badge", "typicality" (TypiClust over pool ∪ labeled embeddings), and
    "class_balanced_margin" / "class_balanced_random" (margin ranking or a seeded shuffle spread over predicted
    classes, fewest-labeled classes first; need ``labeled_classes``, the labeled set's class ids), and
    "diverse_margin" (the 10 × n lowest-margin images clustered into n groups, the one nearest each centre).
    """
    if strategy not in STRATEGIES:
        raise ToolkitError(f"unknown strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}")
    if n < 0:
        raise ToolkitError(f"n must be non-negative, got {n}")
    p = check_probabilities(probabilities)
    e = check_embeddings(embeddings, allow_empty=True)
    if len(p) != len(e):
        raise ToolkitError(f"probabilities have {len(p)} rows but embeddings have {len(e)}: "
                           "compute both in the same pass over the pool")
    if strategy in _NEEDS_LABELED_CLASSES and labeled_classes is None:
        raise ToolkitError(f"strategy {strategy!r} balances classes against the labeled set: pass "
                           "labeled_classes (the labeled images' class ids)")
    if strategy == "bald" and head is None:
        raise ToolkitError("strategy 'bald' reruns the classifier's last layer with dropout: pass its head "
                           "(altoolkit.model.classifier_head(model))")
    if strategy in _NEEDS_LABELED and (labeled_embeddings is None or len(labeled_embeddings) == 0):
        raise ToolkitError(f"strategy {strategy!r} compares the pool with labeled images but none were given: "
                           "pass labeled embeddings or use 'entropy', 'diversity' or 'random'")
    if len(p) == 0:
        return np.zeros(0, dtype=np.int64)

    if strategy == "random":
        return random_indices(len(p), n, seed)
    if strategy in ("entropy", "uncertainty"):
        return top_n(entropy_scores(p), n, seed)
    if strategy == "margin":
        return top_n(margin_scores(p), n, seed)
    if strategy == "least_confidence":
        return top_n(least_confidence_scores(p), n, seed)
    if strategy == "bald":
        return top_n(bald_scores(mc_dropout_probabilities(e, head, mc_passes, seed)), n, seed)
    if strategy == "coreset":
        return k_center_greedy(e, labeled_embeddings, n, seed)
    if strategy == "badge":
        return badge_select(p, e, n, seed)
    if strategy == "typicality":
        return typicality_select(e, labeled_embeddings, n, seed)
    if strategy == "diverse_margin":
        return weighted_cluster_select(margin_scores(p), e, n, seed)
    if strategy in _NEEDS_LABELED_CLASSES:
        ranking = (ranking_by(margin_scores(p), seed) if strategy == "class_balanced_margin"
                   else np.random.default_rng(seed).permutation(len(p)))
        return class_balanced_select(ranking, p.argmax(axis=1), labeled_classes, n, p.shape[1])
    if strategy == "diversity":
        diversity = analyze_diversity_embeddings(e, n_clusters, far_percentile, random_state=seed)
        return top_n(diversity.distances, n, seed)
    novelty = analyze_novelty_embeddings(e, labeled_embeddings, k_neighbors, novelty_percentile)
    if strategy == "novelty":
        return top_n(novelty.scores, n, seed)

    uncertainty = select_uncertain(p, threshold_percentile)
    diversity = analyze_diversity_embeddings(e, n_clusters, far_percentile, random_state=seed)
    if strategy == "intersection":
        return intersect_indices(uncertainty.indices, diversity.indices, novelty.indices)
    combined = combined_scores(uncertainty.entropy, diversity.distances, novelty.scores)
    if strategy == "combined":
        return top_n(combined, n, seed)
    in_intersection = np.zeros(len(p), dtype=bool)
    in_intersection[intersect_indices(uncertainty.indices, diversity.indices, novelty.indices)] = True
    tie_break = np.random.default_rng(seed).permutation(len(p))
    return as_indices(np.lexsort((tie_break, -combined, ~in_intersection))[:n])


def recommended_choice(labeled_count: int, num_classes: int) -> tuple[str, str]:
    """(strategy, representation) the recommended default runs for a labeled set of ``labeled_count`` images.

    While labels are scarce the model is weak, so its uncertainty and embeddings say little: pick the most
    typical images of the clusters the labeled set covers least, over PCA of the pixels (TypiClust's cold-start
    regime). Once each class has ``RECOMMENDED_SCARCE_LABELS_PER_CLASS`` labels on average, the model's own
    uncertainty is worth following.
    """
    if labeled_count < 0 or num_classes < 1:
        raise ToolkitError(f"need a labeled count ≥ 0 and at least one class, got {labeled_count} and {num_classes}")
    return RECOMMENDED_SCARCE if labeled_count < RECOMMENDED_SCARCE_LABELS_PER_CLASS * num_classes \
        else RECOMMENDED_LATER


def resolve_strategy(strategy: str, representation: str, labeled_count: int, num_classes: int) -> tuple[str, str]:
    """The (strategy, representation) to run: "recommended" becomes its regime's choice, any other name stays."""
    if strategy == RECOMMENDED:
        return recommended_choice(labeled_count, num_classes)
    if strategy not in STRATEGIES:
        raise ToolkitError(f"unknown strategy {strategy!r}: choose one of {', '.join((RECOMMENDED, *STRATEGIES))}")
    return strategy, representation


def get_feature_extractor(model):
    """A Keras model mapping images to the classifier's penultimate embeddings (the input of its last Dense layer)."""
    import keras

    from altoolkit.model import probabilities_and_embeddings_model

    two_outputs = probabilities_and_embeddings_model(model)
    return keras.Model(two_outputs.inputs, two_outputs.outputs[1], name="feature_extractor")


def modal_query_strategy(strategy: str, labeled_images=None, seed: int = 0, batch_size: int = INFERENCE_BATCH_SIZE,
                         **params) -> Callable:
    """A modAL ``query_strategy`` running :func:`select_samples` on a Keras classifier.

    Use as ``ActiveLearner(estimator=keras_model, query_strategy=modal_query_strategy("entropy"))``. Each query
    runs one forward pass over the pool (and one over ``labeled_images`` when the strategy needs them) and
    returns ``(indices, X_pool[indices])``: modAL calls a strategy a second time (a second pass) when it
    returns indices only. ``params`` are select_samples' keyword arguments (n_clusters, k_neighbors, ...);
    they and the strategy name are checked here, because modAL's bare ``except`` re-runs a failing strategy.
    """
    allowed = set(inspect.signature(select_samples).parameters) - {
        "probabilities", "embeddings", "labeled_embeddings", "n", "strategy", "seed"}
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ToolkitError(f"unknown parameter(s) {', '.join(unknown)}: choose from {', '.join(sorted(allowed))}")
    if strategy not in STRATEGIES:
        raise ToolkitError(f"unknown strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}")
    if strategy in _NEEDS_LABELED and (labeled_images is None or len(labeled_images) == 0):
        raise ToolkitError(f"strategy {strategy!r} needs labeled_images to measure novelty: pass them, "
                           "or use 'entropy', 'diversity' or 'random'")
    if strategy in _NEEDS_LABELED_CLASSES and params.get("labeled_classes") is None:
        raise ToolkitError(f"strategy {strategy!r} needs labeled_classes (the labeled images' class ids)")

    def query(classifier, X_pool, n_instances: int = 1, **kwargs):
        """Select ``n_instances`` pool rows with the configured strategy; return (indices, X_pool[indices])."""
        from altoolkit.model import classifier_head, probabilities_and_embeddings

        model = getattr(classifier, "estimator", classifier)
        probabilities, embeddings = probabilities_and_embeddings(model, X_pool, batch_size)
        labeled_embeddings = None
        if strategy in _NEEDS_LABELED or strategy in ("coreset", "typicality"):
            if labeled_images is not None and len(labeled_images):
                _, labeled_embeddings = probabilities_and_embeddings(model, labeled_images, batch_size)
        settings = {**params, **kwargs}
        if strategy == "bald" and settings.get("head") is None:
            settings["head"] = classifier_head(model)
        indices = select_samples(probabilities, embeddings, labeled_embeddings, n_instances, strategy=strategy,
                                 seed=seed, **settings)
        return indices, X_pool[indices]

    return query
