"""Budgeted selection strategies from the low-budget active-learning literature, as pure functions over arrays.

Each ``*_select`` function returns exactly ``min(budget, pool size)`` distinct pool positions (int64, in the
order they were chosen). Inputs are what one forward pass gives — class probabilities (N×K) and penultimate
embeddings (N×D) — plus, where a method needs it, the labeled set's embeddings or classes, or the classifier's
last layer. Every random choice takes ``seed``.

- :func:`k_center_greedy` — core-set (Sener & Savarese 2018): repeatedly the pool point farthest from
  everything labeled or chosen; keeps one minimum distance per pool point (memory O(pool)).
- :func:`badge_select` — BADGE (Ash et al. 2020): k-means++ seeding on the last layer's gradient embeddings,
  whose distances are computed from (probabilities, embeddings) without building the N×(K·D) matrix.
- :func:`bald_scores` over :func:`mc_dropout_probabilities` — BALD (Houlsby et al. 2011; Gal et al. 2017)
  with Monte-Carlo dropout. The classifier's only dropout layer sits right before its last Dense layer, so the
  T stochastic passes only need to rerun that layer on the embeddings: T × N × D × K multiply-adds, far less
  than one pass through the backbone.
- :func:`typicality_select` — TypiClust (Hacohen et al. 2022): cluster pool ∪ labeled into |labeled| + budget
  clusters, take the most typical point (highest inverse mean distance to its k nearest neighbours in its
  cluster) of the largest clusters holding the fewest labels.
- :func:`weighted_cluster_select` — diverse mini-batch selection (Zhdanov 2019): the most uncertain
  candidates, clustered by k-means weighted by their uncertainty; the candidate nearest each centre.
- :func:`class_balanced_select` — any ranking, spread over predicted classes so the classes the labeled set
  has least of get picks first.
- :func:`pixel_pca_features` — a representation that needs no trained model: PCA of the raw pixels of the
  whole pool, for typicality or core-set while the model's own embeddings are still weak.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from altoolkit.arrays import (as_indices, check_embeddings, check_probabilities, check_scores,
                              release_mapped_pages)
from altoolkit.errors import ToolkitError
from altoolkit.sampling import FIT_SAMPLE, sampled_pca, seeded_ranking, seeded_subsample

DISTANCE_CHUNK = 512
"""Labeled rows per block when computing pool-to-labeled distances (memory: pool × chunk floats)."""

TYPICALITY_NEIGHBORS = 20
"""k of TypiClust's typicality (inverse mean distance to the k nearest neighbours in the cluster)."""

CLUSTERING_DIMENSIONS = 50
"""Typicality clusters features projected on this many principal components (see reduced_features)."""

MC_DROPOUT_PASSES = 20
"""Default T for BALD's Monte-Carlo dropout."""

PREFILTER_FACTOR = 10
"""weighted_cluster_select clusters the ``PREFILTER_FACTOR × budget`` most uncertain candidates (Zhdanov's β)."""


@dataclass(frozen=True)
class ClassifierHead:
    """The classifier's last layer as arrays: ``softmax(dropout(embedding) @ kernel + bias)``."""

    kernel: np.ndarray
    bias: np.ndarray
    dropout_rate: float


def check_budget(budget) -> int:
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 0:
        raise ToolkitError(f"budget must be a non-negative integer, got {budget!r}")
    return int(budget)


def _squared_norms(x: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", x, x, dtype=np.float64)


def pool_and_labeled(pool_rows, labeled_rows, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Checked pool and labeled ``kind`` (embeddings or features) of equal width; no labeled rows → an empty array."""
    pool = check_embeddings(pool_rows, f"pool {kind}", allow_empty=True)
    labeled = (np.zeros((0, pool.shape[1])) if labeled_rows is None
               else check_embeddings(labeled_rows, f"labeled {kind}", allow_empty=True))
    if labeled.shape[1] != pool.shape[1]:
        raise ToolkitError(f"pool {kind} have {pool.shape[1]} columns but labeled {kind} have "
                           f"{labeled.shape[1]}: compute both the same way")
    return pool, labeled


def min_squared_distances(pool: np.ndarray, others: np.ndarray) -> np.ndarray:
    """For each pool row, the squared Euclidean distance to its nearest row of ``others`` (inf if none)."""
    nearest = np.full(len(pool), np.inf)
    pool_norms = _squared_norms(pool)
    for start in range(0, len(others), DISTANCE_CHUNK):
        block = others[start:start + DISTANCE_CHUNK]
        squared = pool_norms[:, None] + _squared_norms(block)[None, :] - 2.0 * (pool @ block.T)
        nearest = np.minimum(nearest, np.maximum(squared.min(axis=1), 0.0))
    return nearest


def k_center_greedy(pool_embeddings, labeled_embeddings, budget: int, seed: int = 0) -> np.ndarray:
    """Core-set selection: each pick is the pool point farthest from every labeled or already-picked point.

    With no labeled points the first pick is a seeded random one. Memory is one distance per pool point.
    """
    pool, labeled = pool_and_labeled(pool_embeddings, labeled_embeddings, "embeddings")
    n = min(check_budget(budget), len(pool))
    nearest = min_squared_distances(pool, labeled)
    pool_norms = _squared_norms(pool)
    chosen = np.empty(n, dtype=np.int64)
    for step in range(n):
        pick = int(np.random.default_rng(seed).integers(len(pool))) if step == 0 and not len(labeled) \
            else int(np.argmax(nearest))
        chosen[step] = pick
        to_pick = np.maximum(pool_norms + pool_norms[pick] - 2.0 * (pool @ pool[pick]), 0.0)
        nearest = np.minimum(nearest, to_pick)
        nearest[chosen[:step + 1]] = -np.inf
    return chosen


def gradient_embedding_factors(probabilities, embeddings) -> tuple[np.ndarray, np.ndarray]:
    """BADGE's gradient embedding of each row as the pair (a, h): the gradient of the cross-entropy at the
    predicted label w.r.t. the last layer's kernel is the outer product a ⊗ h, a = p − onehot(argmax p)."""
    p = check_probabilities(probabilities)
    h = check_embeddings(embeddings, allow_empty=True).astype(np.float64)
    if len(p) != len(h):
        raise ToolkitError(f"probabilities have {len(p)} rows but embeddings have {len(h)}: compute both in the "
                           "same pass over the pool")
    a = p.copy()
    a[np.arange(len(a)), a.argmax(axis=1)] -= 1.0
    return a, h


def badge_select(probabilities, embeddings, budget: int, seed: int = 0) -> np.ndarray:
    """BADGE: k-means++ seeding over gradient embeddings (uncertain and diverse at once).

    Starts from the largest gradient norm, then draws each next point with probability ∝ its squared
    distance to the nearest chosen one. ``‖a_i⊗h_i − a_j⊗h_j‖² = ‖a_i‖²‖h_i‖² + ‖a_j‖²‖h_j‖² − 2(a_i·a_j)(h_i·h_j)``,
    so each step costs O(N·(K + D)) and the N×(K·D) matrix is never built.
    """
    a, h = gradient_embedding_factors(probabilities, embeddings)
    n = min(check_budget(budget), len(a))
    norms = _squared_norms(a) * _squared_norms(h)
    rng = np.random.default_rng(seed)
    chosen = np.empty(n, dtype=np.int64)
    nearest = np.full(len(a), np.inf)
    for step in range(n):
        if step == 0:
            pick = int(np.argmax(norms))
        else:
            weights = np.where(np.isfinite(nearest), nearest, 0.0)
            weights[chosen[:step]] = 0.0
            total = weights.sum()
            if total > 0:
                pick = int(rng.choice(len(a), p=weights / total))
            else:
                remaining = np.setdiff1d(np.arange(len(a)), chosen[:step])
                pick = int(rng.choice(remaining))
        chosen[step] = pick
        squared = norms + norms[pick] - 2.0 * (a @ a[pick]) * (h @ h[pick])
        nearest = np.minimum(nearest, np.maximum(squared, 0.0))
    return chosen


def mc_dropout_probabilities(embeddings, head: ClassifierHead, passes: int = MC_DROPOUT_PASSES,
                             seed: int = 0) -> np.ndarray:
    """``passes`` × N × K class probabilities with dropout active in the classifier's last layer (seeded masks)."""
    e = check_embeddings(embeddings, allow_empty=True).astype(np.float32)
    if isinstance(passes, bool) or not isinstance(passes, (int, np.integer)) or passes < 1:
        raise ToolkitError(f"Monte-Carlo dropout passes must be a positive integer, got {passes!r}")
    kernel = np.asarray(head.kernel, dtype=np.float32)
    if kernel.shape[0] != e.shape[1]:
        raise ToolkitError(f"the classifier head expects {kernel.shape[0]} features, the embeddings have "
                           f"{e.shape[1]}: use the head of the model that computed them")
    if not 0 <= head.dropout_rate < 1:
        raise ToolkitError(f"dropout rate must be in [0, 1), got {head.dropout_rate!r}")
    rng = np.random.default_rng(seed)
    keep = 1.0 - head.dropout_rate
    out = np.empty((passes, len(e), kernel.shape[1]), dtype=np.float32)
    for t in range(passes):
        mask = rng.random(e.shape, dtype=np.float32) < keep
        logits = (e * mask) @ kernel / keep + np.asarray(head.bias, dtype=np.float32)
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        out[t] = exp / exp.sum(axis=1, keepdims=True)
    return out


def entropy(p: np.ndarray, axis: int = -1) -> np.ndarray:
    """Shannon entropy in nats along ``axis`` (0·log 0 = 0), for any array of probability vectors."""
    from scipy.special import entr

    return entr(np.asarray(p, dtype=np.float64)).sum(axis=axis)


def bald_scores(mc_probabilities) -> np.ndarray:
    """Mutual information between the prediction and the weights: H(mean_t p_t) − mean_t H(p_t), per row."""
    p = np.asarray(mc_probabilities, dtype=np.float64)
    if p.ndim != 3 or p.shape[0] < 1:
        raise ToolkitError(f"Monte-Carlo probabilities must be passes × images × classes, got shape {p.shape}")
    return np.maximum(entropy(p.mean(axis=0)) - entropy(p).mean(axis=0), 0.0)


def _typicality(points: np.ndarray, k_neighbors: int) -> np.ndarray:
    """Inverse mean distance of each point to its ``k_neighbors`` nearest others (all others if fewer)."""
    if len(points) == 1:
        return np.ones(1)
    from sklearn.neighbors import NearestNeighbors

    k = min(k_neighbors, len(points) - 1)
    distances, _ = NearestNeighbors(n_neighbors=k + 1).fit(points).kneighbors(points)
    return 1.0 / (distances[:, 1:].mean(axis=1) + 1e-12)


def typicality_select(pool_features, labeled_features, budget: int, seed: int = 0,
                      k_neighbors: int = TYPICALITY_NEIGHBORS) -> np.ndarray:
    """TypiClust: the most typical pool point of each of the largest clusters the labeled set covers least.

    Pool ∪ labeled are clustered into |labeled| + budget clusters (MiniBatchKMeans, seeded); clusters are
    visited by fewest labeled-or-picked members, then most pool members; typicality is computed within the
    cluster's remaining pool points.
    """
    from sklearn.cluster import MiniBatchKMeans
    from threadpoolctl import threadpool_limits

    pool, labeled = pool_and_labeled(pool_features, labeled_features, "features")
    n = min(check_budget(budget), len(pool))
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    stacked = np.concatenate([np.asarray(pool, np.float32), np.asarray(labeled, np.float32)])  # one float32 copy
    release_mapped_pages(pool)  # a pool read from disk need not stay resident beside its copy
    features = reduced_features(stacked, seed)
    pool = features[:len(pool)]
    n_clusters = min(len(labeled) + n, len(features))
    fit_rows = seeded_subsample(len(features), max(FIT_SAMPLE, 20 * n_clusters), seed)
    with threadpool_limits(limits=1, user_api="blas"):
        kmeans = MiniBatchKMeans(n_clusters=n_clusters, random_state=seed, n_init=1,
                                 batch_size=max(1024, 3 * n_clusters)).fit(features[fit_rows])
        clusters = kmeans.predict(features)
    pool_clusters = clusters[:len(pool)]
    covered = np.bincount(clusters[len(pool):], minlength=n_clusters)
    by_cluster = np.argsort(pool_clusters, kind="stable")
    starts = np.searchsorted(pool_clusters[by_cluster], np.arange(n_clusters + 1))
    remaining = {c: list(by_cluster[starts[c]:starts[c + 1]]) for c in range(n_clusters) if starts[c + 1] > starts[c]}
    tie_break = np.random.default_rng(seed).permutation(n_clusters)
    chosen = np.empty(n, dtype=np.int64)
    for step in range(n):
        cluster = min(remaining, key=lambda c: (covered[c], -len(remaining[c]), tie_break[c]))
        members = np.asarray(remaining[cluster], dtype=np.int64)
        pick = int(members[np.argmax(_typicality(pool[members], k_neighbors))])
        chosen[step] = pick
        covered[cluster] += 1
        remaining[cluster].remove(pick)
        if not remaining[cluster]:
            del remaining[cluster]
    return chosen


def reduced_features(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """``features`` projected on their first ``CLUSTERING_DIMENSIONS`` principal components when wider.

    Clustering 50,000 × 576 embeddings into 700 clusters took 40 s here, 8 s after this projection (and k-means
    is now fitted on a sample too, see :func:`typicality_select`).
    """
    if features.shape[1] <= CLUSTERING_DIMENSIONS or len(features) <= CLUSTERING_DIMENSIONS:
        return features
    return sampled_pca(features, CLUSTERING_DIMENSIONS, seed)


def weighted_cluster_select(uncertainty, embeddings, budget: int, seed: int = 0,
                            prefilter_factor: int = PREFILTER_FACTOR) -> np.ndarray:
    """Uncertain and diverse at once: the ``prefilter_factor × budget`` highest-``uncertainty`` pool points are
    clustered into ``budget`` groups by k-means weighted by their uncertainty, and the point nearest each
    centre is picked, so two near-duplicates of one confusing image cost one label, not two.

    Returned in descending uncertainty; when k-means leaves a cluster empty the most uncertain unpicked
    candidates fill the budget.
    """
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    scores = check_scores(uncertainty)
    points = check_embeddings(embeddings, allow_empty=True)
    if len(scores) != len(points):
        raise ToolkitError(f"{len(scores)} uncertainty scores but {len(points)} embeddings: give one per pool row")
    n = min(check_budget(budget), len(points))
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    candidates = seeded_ranking(scores, seed)[:max(n, prefilter_factor * n)]
    if len(candidates) == n:
        return candidates
    features = reduced_features(points[candidates].astype(np.float32), seed)
    weights = scores[candidates] - scores[candidates].min() + 1e-6
    with threadpool_limits(limits=1, user_api="blas"):
        kmeans = KMeans(n_clusters=n, n_init=1, random_state=seed).fit(features, sample_weight=weights)
    squared = np.sum((features - kmeans.cluster_centers_[kmeans.labels_]) ** 2, axis=1)
    nearest_first = np.lexsort((squared, kmeans.labels_))
    first_of_cluster = np.r_[True, kmeans.labels_[nearest_first][1:] != kmeans.labels_[nearest_first][:-1]]
    picked = np.sort(nearest_first[first_of_cluster])
    if len(picked) < n:
        unpicked = np.setdiff1d(np.arange(len(candidates)), picked)
        picked = np.sort(np.concatenate([picked, unpicked[:n - len(picked)]]))
    return candidates[picked]


def class_balanced_select(ranking, predicted_classes, labeled_classes, budget: int, num_classes: int) -> np.ndarray:
    """Spread a budget over predicted classes: each pick goes to the class with the fewest labels so far
    (labeled + picked), taking that class's best-ranked remaining candidate.

    ``ranking`` orders pool positions best first (e.g. by margin); classes with no candidates left are skipped,
    so the result still has ``min(budget, len(ranking))`` positions. Equal counts go to the class whose next
    candidate ranks higher.
    """
    order = as_indices(ranking)
    predicted = as_indices(predicted_classes)
    n = min(check_budget(budget), len(order))
    if len(np.unique(order)) != len(order):
        raise ToolkitError("the ranking names a pool position twice: pass each candidate once")
    if len(order) and (order.min() < 0 or order.max() >= len(predicted)):
        raise ToolkitError(f"ranking positions must be in 0..{len(predicted) - 1}")
    labeled = as_indices(labeled_classes)
    labeled = labeled[labeled >= 0]
    if len(labeled) and labeled.max() >= num_classes or len(predicted) and predicted.max() >= num_classes:
        raise ToolkitError(f"class ids must be below num_classes={num_classes}")
    counts = np.bincount(labeled, minlength=num_classes).astype(np.int64)
    queues = [order[predicted[order] == c] for c in range(num_classes)]
    rank = np.empty(len(predicted), dtype=np.int64)
    rank[order] = np.arange(len(order))
    heads = np.zeros(num_classes, dtype=np.int64)
    chosen = np.empty(n, dtype=np.int64)
    for step in range(n):
        open_classes = [c for c in range(num_classes) if heads[c] < len(queues[c])]
        c = min(open_classes, key=lambda k: (counts[k], rank[queues[k][heads[k]]]))
        chosen[step] = queues[c][heads[c]]
        heads[c] += 1
        counts[c] += 1
    return chosen


def pixel_pca_features(images, n_components: int = 50, seed: int = 0) -> np.ndarray:
    """PCA of raw pixels (scaled to [0, 1]) of all given images: a representation that needs no trained model.

    Fitted on at most :data:`FIT_SAMPLE` seeded images and applied to every image in chunks, so a 50,000-image
    pool never becomes one 50,000 × pixels float matrix.
    """
    x = np.asarray(images)
    if x.ndim < 2 or len(x) < 2:
        raise ToolkitError(f"pixel PCA needs at least 2 images, got an array of shape {x.shape}")
    return sampled_pca(x, n_components, seed, scale=1 / 255 if np.issubdtype(x.dtype, np.integer) else 1.0)
