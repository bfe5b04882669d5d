"""Core active-learning heuristics as pure functions over arrays.

Every heuristic takes arrays computed once per round — class probabilities (N×K) and penultimate embeddings
(N×D) — and returns one score per pool row or pool indices. Nothing here reads files, plots, or runs the
model, except :func:`get_feature_extractor` (builds an embedding model) and :func:`modal_query_strategy`
(the modAL adapter, which runs one forward pass per query). Indices are positions in the given pool arrays,
returned as ascending int64 unless a docstring says otherwise. TensorFlow/Keras are imported lazily so that
importing this module stays cheap.

``STRATEGY_TABLE`` names every selection strategy — the design's and the budgeted ones of
:mod:`altoolkit.strategies` — with what each needs; :func:`select` is the one call every entry point selects
through, and :func:`register_strategy` adds a user's own (contract: :mod:`altoolkit.selection`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

from altoolkit.arrays import as_indices, check_embeddings, check_probabilities, check_scores
from altoolkit.coverage import probcover_select
from altoolkit.errors import ToolkitError
from altoolkit.model import INFERENCE_BATCH_SIZE
from altoolkit.sampling import FIT_SAMPLE, seeded_ranking, seeded_subsample
from altoolkit.selection import (DESIGN_PARAMETERS, NEEDS, REPRESENTATIONS, Selection, SelectionInputs,
                                 SelectionRound, Strategy, StrategyFunction, check_representation, run_strategy)
from altoolkit.strategies import (MC_DROPOUT_PASSES, ClassifierHead, badge_select, bald_scores, class_balanced_select,
                                  entropy, k_center_greedy, mc_dropout_probabilities, typicality_select,
                                  weighted_cluster_select)

__all__ = ["DESIGN_PARAMETERS", "NEEDS", "RECOMMENDED", "REPRESENTATIONS", "STRATEGIES", "STRATEGY_TABLE", "Selection",
           "SelectionInputs", "SelectionRound", "Strategy", "StrategyFunction", "analyze_diversity_embeddings",
           "analyze_novelty_embeddings", "check_representation", "combined_scores", "entropy_scores",
           "get_feature_extractor", "intersect_indices", "least_confidence_scores", "margin_scores",
           "modal_query_strategy", "random_indices", "recommended_choice", "register_strategy", "resolve_strategy",
           "select", "select_samples", "select_uncertain", "strategy_entry", "top_n"]

RECOMMENDED = "recommended"
"""A strategy name beside ``STRATEGIES``: resolved by :func:`recommended_choice` from the labeled set's size."""

RECOMMENDED_SCARCE_LABELS_PER_CLASS = 50
"""Below this many labels per class the recommended default picks typical images over pixel features; from it on
it picks uncertain ones (see recommended_choice and the README's benchmark section)."""

RECOMMENDED_SCARCE = ("typicality", "pixels")
RECOMMENDED_LATER = ("margin", "model")

FAST_LEARNER_NAMES = ("linear", "label_spreading")
RECOMMENDED_FAST_SCARCE_LABELS_PER_CLASS = 10
"""With a fast learner on a label-free representation: typical images of that representation for the first labels
(below this many per class on average), then uncertain and diverse ones (see recommended_choice)."""
RECOMMENDED_FAST_SCARCE = ("typicality", "model")
RECOMMENDED_FAST_LATER = ("diverse_margin", "model")

DEFAULT_COMBINED_WEIGHTS = (0.5, 0.3, 0.2)
"""The prototype's weights for (uncertainty, diversity, novelty) in :func:`combined_scores`."""

KMEANS_SEEDING_SAMPLE = 1000
"""k-means++ seeds are drawn from at most this many rows (see _kmeans_plusplus_on_sample)."""

NEAREST_NEIGHBORS_CHUNK = 2048
"""Pool rows per k-NN query, so memory is bounded by chunk × labeled size, never pool × labeled."""



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
    return entropy(check_probabilities(probabilities), axis=1)


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
    centroid) are typical. Pools above ``FIT_SAMPLE`` rows are clustered on a seeded sample of that
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
    sampled = len(e) > FIT_SAMPLE
    fit_rows = e[seeded_subsample(len(e), FIT_SAMPLE, random_state)] if sampled else e
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

    rows = embeddings[seeded_subsample(len(embeddings), KMEANS_SEEDING_SAMPLE, random_state)]
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
    return seeded_subsample(n_pool, n, seed)


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

    The first ``n`` of :func:`altoolkit.sampling.seeded_ranking`; ``n`` larger than the pool returns every index.
    """
    if n < 0:
        raise ToolkitError(f"n must be non-negative, got {n}")
    return seeded_ranking(scores, seed)[:n]


# ------------------------------------------------------------------------------------------ the strategy table

def _design_analyses(inputs: SelectionInputs, seed: int):
    """The three design analyses of the pool (uncertainty, diversity over features, novelty against labels)."""
    uncertainty = select_uncertain(inputs.probabilities, inputs.param("threshold_percentile"))
    diversity = analyze_diversity_embeddings(inputs.features, inputs.param("n_clusters"),
                                             inputs.param("far_percentile"), random_state=seed)
    novelty = analyze_novelty_embeddings(inputs.features, inputs.labeled_features, inputs.param("k_neighbors"),
                                         inputs.param("novelty_percentile"))
    return uncertainty, diversity, novelty


def _intersection(inputs: SelectionInputs, n: int, seed: int) -> np.ndarray:
    return intersect_indices(*(result.indices for result in _design_analyses(inputs, seed)))


def _combined_ranking(inputs: SelectionInputs, seed: int, intersection_first: bool) -> np.ndarray:
    uncertainty, diversity, novelty = _design_analyses(inputs, seed)
    combined = combined_scores(uncertainty.entropy, diversity.distances, novelty.scores)
    if not intersection_first:
        return seeded_ranking(combined, seed)
    outside = np.ones(inputs.pool_size, dtype=bool)
    outside[intersect_indices(uncertainty.indices, diversity.indices, novelty.indices)] = False
    tie_break = np.random.default_rng(seed).permutation(inputs.pool_size)
    return as_indices(np.lexsort((tie_break, -combined, outside)))


def _class_balanced(inputs: SelectionInputs, ranking: np.ndarray, n: int) -> np.ndarray:
    p = inputs.probabilities
    return class_balanced_select(ranking, p.argmax(axis=1), inputs.labeled_classes, n, p.shape[1])


def _ranked(score: Callable[[SelectionInputs], np.ndarray]) -> StrategyFunction:
    """A strategy taking the ``n`` highest of a per-image score (ties in a seeded order)."""
    return lambda inputs, n, seed: top_n(score(inputs), n, seed)


_BUILT_IN = (
    Strategy("random", lambda i, n, seed: random_indices(i.pool_size, n, seed), summary="uniform, seeded"),
    Strategy("entropy", _ranked(lambda i: entropy_scores(i.probabilities)), summary="highest entropy"),
    Strategy("margin", _ranked(lambda i: margin_scores(i.probabilities)), summary="smallest top-two margin"),
    Strategy("least_confidence", _ranked(lambda i: least_confidence_scores(i.probabilities)),
             summary="lowest top probability"),
    Strategy("uncertainty", _ranked(lambda i: entropy_scores(i.probabilities)), summary="the design's: entropy"),
    Strategy("diversity", lambda i, n, seed: top_n(analyze_diversity_embeddings(
        i.features, i.param("n_clusters"), i.param("far_percentile"), random_state=seed).distances, n, seed),
        uses_features=True, summary="farthest from own k-means centroid"),
    Strategy("novelty", _ranked(lambda i: analyze_novelty_embeddings(
        i.features, i.labeled_features, i.param("k_neighbors"), i.param("novelty_percentile")).scores),
        needs=frozenset({"labeled_features"}), uses_features=True, summary="farthest from the labeled set"),
    Strategy("combined", lambda i, n, seed: _combined_ranking(i, seed, False)[:n],
             needs=frozenset({"labeled_features"}), uses_features=True,
             summary="weighted uncertainty, diversity and novelty"),
    Strategy("intersection", _intersection, needs=frozenset({"labeled_features"}), uses_features=True,
             fills_budget=False, summary="uncertain ∩ far from centroid ∩ novel, any size"),
    Strategy("intersection_filled", lambda i, n, seed: _combined_ranking(i, seed, True)[:n],
             needs=frozenset({"labeled_features"}), uses_features=True,
             summary="the intersection first, then by combined score"),
    Strategy("bald", lambda i, n, seed: top_n(bald_scores(mc_dropout_probabilities(
        i.embeddings, i.head, i.param("mc_passes"), seed)), n, seed), needs=frozenset({"head"}),
        summary="Monte-Carlo dropout mutual information"),
    Strategy("coreset", lambda i, n, seed: k_center_greedy(i.features, i.labeled_features, n, seed),
             uses_features=True, summary="k-center greedy"),
    Strategy("badge", lambda i, n, seed: badge_select(i.probabilities, i.embeddings, n, seed),
             summary="k-means++ on gradient embeddings"),
    Strategy("typicality", lambda i, n, seed: typicality_select(i.features, i.labeled_features, n, seed),
             uses_features=True, summary="TypiClust: most typical point of uncovered clusters"),
    Strategy("class_balanced_margin", lambda i, n, seed: _class_balanced(
        i, seeded_ranking(margin_scores(i.probabilities), seed), n), needs=frozenset({"labeled_classes"}),
        summary="margin, spread over predicted classes"),
    Strategy("class_balanced_random", lambda i, n, seed: _class_balanced(
        i, np.random.default_rng(seed).permutation(i.pool_size), n), needs=frozenset({"labeled_classes"}),
        summary="random, spread over predicted classes"),
    Strategy("diverse_margin", lambda i, n, seed: weighted_cluster_select(margin_scores(i.probabilities),
                                                                           i.features, n, seed),
             uses_features=True, summary="low-margin candidates clustered, one per cluster"),
    Strategy("probcover", lambda i, n, seed: probcover_select(i.features, i.labeled_features, n,
                                                              num_clusters=i.probabilities.shape[1], seed=seed),
             uses_features=True, summary="ProbCover: greedy max coverage of purity-sized balls"),
)

STRATEGY_TABLE: dict[str, Strategy] = {entry.name: entry for entry in _BUILT_IN}
"""Every strategy by name. :func:`register_strategy` adds to it; every entry point selects through it."""

STRATEGIES = tuple(STRATEGY_TABLE)
"""The built-in strategy names (user strategies registered later are in ``STRATEGY_TABLE``)."""


def register_strategy(name: str, select: StrategyFunction, *, needs=(), uses_features: bool = False,
                      fills_budget: bool = True, summary: str = "", replace: bool = False) -> Strategy:
    """Add a strategy to the table, usable by name in ``analyzer.select``, ``label.py select``, ``AL_cycle.py
    --budget`` and the benchmark. ``select(inputs, n, seed)`` returns pool positions (see :class:`SelectionInputs`);
    ``needs`` names what it requires from :data:`NEEDS`. From the command line, name a strategy
    ``package.module:function`` and it is imported and registered under that name.
    """
    if not isinstance(name, str) or not name or any(c.isspace() for c in name) or name == RECOMMENDED:
        raise ToolkitError(f"a strategy name must be a non-empty word other than {RECOMMENDED!r}, got {name!r}")
    if name in STRATEGY_TABLE and not replace:
        raise ToolkitError(f"strategy {name!r} exists already: pick another name or pass replace=True")
    if not callable(select):
        raise ToolkitError(f"strategy {name!r} must be a callable select(inputs, n, seed)")
    unknown = sorted(set(needs) - set(NEEDS))
    if unknown:
        raise ToolkitError(f"strategy {name!r} needs unknown input(s) {', '.join(unknown)}: choose from "
                           f"{', '.join(NEEDS)}")
    entry = Strategy(name, select, frozenset(needs), bool(uses_features), bool(fills_budget), summary)
    STRATEGY_TABLE[name] = entry
    return entry


def strategy_entry(name: str) -> Strategy:
    """The table's entry for ``name``; ``package.module:function`` is imported and registered on first use."""
    if name in STRATEGY_TABLE:
        return STRATEGY_TABLE[name]
    if isinstance(name, str) and name.count(":") == 1:
        module_name, attribute = name.split(":")
        try:
            found = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError, ValueError) as error:
            raise ToolkitError(f"cannot load strategy {name!r} ({type(error).__name__}: {error}): give "
                               "package.module:function of an importable module") from None
        if isinstance(found, Strategy):
            return register_strategy(name, found.select, needs=found.needs, uses_features=found.uses_features,
                                     fills_budget=found.fills_budget, summary=found.summary)
        return register_strategy(name, found, needs=getattr(found, "needs", ()),
                                 uses_features=getattr(found, "uses_features", False))
    raise ToolkitError(f"unknown strategy {str(name)[:60]!r}: choose one of {', '.join(STRATEGY_TABLE)}, or "
                       "package.module:function")


def select(strategy: str, round_inputs: SelectionRound, n: int, seed: int = 0,
           representation: str = "model") -> Selection:
    """The one selection call: resolve ``recommended``, fetch the representation and the head the strategy needs,
    validate once, select ``n`` pool positions. Every entry point (analyzer, label.py, benchmark) uses it."""
    check_representation(representation)
    labeled_count = len(round_inputs.labeled_classes)
    num_classes = np.asarray(round_inputs.probabilities).shape[1] if np.ndim(round_inputs.probabilities) == 2 else 0
    name, representation = resolve_strategy(strategy, representation, labeled_count, num_classes,
                                            round_inputs.learner)
    entry = strategy_entry(name)
    if not entry.uses_features:
        representation = "model"
    features, labeled_features = round_inputs.embeddings, round_inputs.labeled_embeddings
    if representation != "model":
        if round_inputs.features_for is None:
            raise ToolkitError(f"representation {representation!r} is not available here: use 'model'")
        features, labeled_features = round_inputs.features_for(representation)
    head = round_inputs.head_for() if "head" in entry.needs and round_inputs.head_for is not None else None
    inputs = SelectionInputs(round_inputs.probabilities, round_inputs.embeddings, features, labeled_features,
                             round_inputs.labeled_classes, head, round_inputs.params)
    return Selection(run_strategy(entry, inputs, n, seed), strategy, name, representation)


COLD_START_STRATEGIES = ("typicality", "probcover", "coreset", "diversity", "random")
"""Strategies that can pick images with no model and no label: they need only a label-free representation."""


def cold_start(strategy: str, features, n: int, seed: int = 0, representation: str = "patches") -> Selection:
    """The first ``n`` images to label when nothing is labeled and no model exists, over label-free ``features``
    (one row per candidate image). ``recommended`` is typicality (TypiClust's cold start: the most typical image
    of each of ``n`` clusters); the other choices are :data:`COLD_START_STRATEGIES`."""
    name = RECOMMENDED_FAST_SCARCE[0] if strategy == RECOMMENDED else strategy
    if name not in COLD_START_STRATEGIES:
        raise ToolkitError(f"strategy {str(strategy)[:60]!r} needs a model or labels to choose the first images: "
                           f"choose one of {', '.join((RECOMMENDED, *COLD_START_STRATEGIES))}")
    rows = check_embeddings(features, "features")
    no_prediction = np.full((len(rows), 2), 0.5)
    inputs = SelectionInputs(no_prediction, rows, rows, rows[:0], np.zeros(0, dtype=np.int64))
    return Selection(run_strategy(strategy_entry(name), inputs, n, seed), strategy, name, representation)


def select_samples(probabilities, embeddings, labeled_embeddings, n: int, strategy: str = "combined", seed: int = 0,
                   threshold_percentile: float = 50, n_clusters: int = 20, k_neighbors: int = 5,
                   far_percentile: float = 75, novelty_percentile: float = 75, labeled_classes=None,
                   head: ClassifierHead | None = None, mc_passes: int = MC_DROPOUT_PASSES) -> np.ndarray:
    """Pick pool images to label with the named strategy (any name of ``STRATEGY_TABLE``), over ``embeddings``.

    Order of the result: "random" and "intersection" return ascending indices; every ranked strategy returns
    min(n, pool) indices, best first. Scores: "entropy"/"uncertainty", "margin", "least_confidence" use the
    uncertainty score of that name; "diversity" the distance to the own k-means centroid; "novelty" the mean
    distance to the k nearest labeled embeddings; "combined" :func:`combined_scores` of entropy, centroid
    distance and novelty. "intersection" returns the whole uncertain ∩ far ∩ novel set, whatever its size,
    ignoring ``n`` (possibly empty). "intersection_filled" ranks that set first and then the rest of the pool,
    both by combined score. ``labeled_embeddings`` may be None for strategies that do not use them.

    Budgeted strategies from :mod:`altoolkit.strategies` return min(n, pool) indices in the order chosen:
    "bald" (Monte-Carlo dropout in the classifier ``head``, ``mc_passes`` passes), "coreset" (k-center greedy
    from the labeled embeddings), "badge", "typicality" (TypiClust over pool ∪ labeled embeddings), and
    "class_balanced_margin" / "class_balanced_random" (margin ranking or a seeded shuffle spread over predicted
    classes, fewest-labeled classes first; need ``labeled_classes``, the labeled set's class ids), and
    "diverse_margin" (the 10 × n lowest-margin images clustered into n groups, the one nearest each centre).
    """
    if n < 0:
        raise ToolkitError(f"n must be non-negative, got {n}")
    e = check_embeddings(embeddings, allow_empty=True)
    labeled = (np.zeros((0, e.shape[1] if e.ndim == 2 else 0)) if labeled_embeddings is None
               else labeled_embeddings)
    params = {"threshold_percentile": threshold_percentile, "n_clusters": n_clusters, "k_neighbors": k_neighbors,
              "far_percentile": far_percentile, "novelty_percentile": novelty_percentile, "mc_passes": mc_passes}
    inputs = SelectionInputs(probabilities, e, e, labeled, labeled_classes, head, params)
    return run_strategy(strategy_entry(strategy), inputs, n, seed)


def recommended_choice(labeled_count: int, num_classes: int, learner: str = "mobilenet") -> tuple[str, str]:
    """(strategy, representation) the recommended default runs for a labeled set of ``labeled_count`` images.

    With MobileNetV3 from scratch (``learner="mobilenet"``): while labels are scarce the model is weak, so its
    uncertainty and embeddings say little: the most typical images of the clusters the labeled set covers least,
    over PCA of the pixels (TypiClust's cold-start regime); from ``RECOMMENDED_SCARCE_LABELS_PER_CLASS`` labels
    per class on, the model's margin. With a fast learner on a label-free representation (``linear``,
    ``label_spreading``): typical images of that representation while classes have fewer than
    ``RECOMMENDED_FAST_SCARCE_LABELS_PER_CLASS`` labels (the cold start), then ``diverse_margin`` — the learner's
    least certain images, clustered so near-duplicates cost one label. Both rules were chosen on Fashion-MNIST
    seeds the README's reports do not use (seeds 100–102 for the fast learner): as the first 10 labels per class,
    typicality's led random's by +4.2 points; from 40 labels per class on it fell behind the uncertainty
    strategies, where diverse_margin led random by +2.3 to +2.9 points.
    """
    if labeled_count < 0 or num_classes < 1:
        raise ToolkitError(f"need a labeled count ≥ 0 and at least one class, got {labeled_count} and {num_classes}")
    if learner in FAST_LEARNER_NAMES:
        return RECOMMENDED_FAST_SCARCE if labeled_count < RECOMMENDED_FAST_SCARCE_LABELS_PER_CLASS * num_classes \
            else RECOMMENDED_FAST_LATER
    return RECOMMENDED_SCARCE if labeled_count < RECOMMENDED_SCARCE_LABELS_PER_CLASS * num_classes \
        else RECOMMENDED_LATER


def resolve_strategy(strategy: str, representation: str, labeled_count: int, num_classes: int,
                     learner: str = "mobilenet") -> tuple[str, str]:
    """The (strategy, representation) to run: "recommended" becomes its regime's choice, any other name stays."""
    if strategy == RECOMMENDED:
        return recommended_choice(labeled_count, num_classes, learner)
    if strategy not in STRATEGY_TABLE and str(strategy).count(":") != 1:
        raise ToolkitError(f"unknown strategy {str(strategy)[:60]!r}: choose one of "
                           f"{', '.join((RECOMMENDED, *STRATEGY_TABLE))}, or package.module:function")
    return strategy_entry(strategy).name, representation


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
    allowed = {*DESIGN_PARAMETERS, "labeled_classes", "head"}
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ToolkitError(f"unknown parameter(s) {', '.join(unknown)}: choose from {', '.join(sorted(allowed))}")
    entry = strategy_entry(strategy)
    if "labeled_features" in entry.needs and (labeled_images is None or len(labeled_images) == 0):
        raise ToolkitError(f"strategy {strategy!r} needs labeled_images to measure novelty: pass them, "
                           "or use 'entropy', 'diversity' or 'random'")
    if "labeled_classes" in entry.needs and params.get("labeled_classes") is None:
        raise ToolkitError(f"strategy {strategy!r} needs labeled_classes (the labeled images' class ids)")

    def query(classifier, X_pool, n_instances: int = 1, **kwargs):
        """Select ``n_instances`` pool rows with the configured strategy; return (indices, X_pool[indices])."""
        from altoolkit.model import classifier_head, probabilities_and_embeddings

        model = getattr(classifier, "estimator", classifier)
        probabilities, embeddings = probabilities_and_embeddings(model, X_pool, batch_size)
        labeled_embeddings = None
        if entry.uses_features and labeled_images is not None and len(labeled_images):
            _, labeled_embeddings = probabilities_and_embeddings(model, labeled_images, batch_size)
        settings = {**params, **kwargs}
        if "head" in entry.needs and settings.get("head") is None:
            settings["head"] = classifier_head(model)
        indices = select_samples(probabilities, embeddings, labeled_embeddings, n_instances, strategy=strategy,
                                 seed=seed, **settings)
        return indices, X_pool[indices]

    return query
