"""ProbCover (Yehuda et al., NeurIPS 2022): label the points whose δ-balls cover the most of the pool.

With few labels, a learner generalises from each labeled point to its neighbourhood in a good representation, so
the first labels should cover as much of the pool as possible. ProbCover picks δ as the largest radius at which
balls stay "pure" (at least ``purity`` of the points' balls hold only points of their own k-means cluster, a
label-free stand-in for classes), builds the δ-ball graph, and greedily labels the point whose ball holds the
most points not yet covered (labeled points' balls count as covered). Once everything is covered, the rest of
the budget is drawn at random, as in the paper.
"""

from __future__ import annotations

import numpy as np

from altoolkit.arrays import check_embeddings
from altoolkit.errors import ToolkitError
from altoolkit.strategies import reduced_features
from altoolkit.validation import check_non_negative_int, check_positive_int, check_seed

DEFAULT_PURITY = 0.95
MAX_GRAPH_EDGES = 50_000_000
"""Largest δ-ball graph built (about 600 MB of indices): a radius that joins more points says the representation
does not separate the pool, and a lower ``purity`` or another representation is the fix."""
NEIGHBOR_CHUNK = 2048


def purity_radius(features, num_clusters: int, purity: float = DEFAULT_PURITY, seed: int = 0) -> float:
    """The largest δ at which at least ``purity`` of the points' δ-balls (open) hold only their own cluster.

    A point's ball is pure exactly while δ is at most its distance to the nearest point of another k-means
    cluster, so δ is that distance's ``1 − purity`` quantile.
    """
    from sklearn.cluster import KMeans
    from sklearn.neighbors import NearestNeighbors
    from threadpoolctl import threadpool_limits

    points = check_embeddings(features, "features").astype(np.float32)
    clusters = check_positive_int(num_clusters, "num_clusters")
    if not 0 < purity <= 1:
        raise ToolkitError(f"purity must lie in (0, 1], got {purity!r}")
    if len(points) <= clusters:
        raise ToolkitError(f"{len(points)} points cannot be split into {clusters} clusters to estimate δ")
    with threadpool_limits(limits=1, user_api="blas"):
        labels = KMeans(n_clusters=clusters, n_init=1, random_state=check_seed(seed)).fit_predict(points)
    nearest_other = np.empty(len(points))
    for cluster in np.unique(labels):
        inside = labels == cluster
        if inside.all():
            nearest_other[inside] = np.inf
            continue
        index = NearestNeighbors(n_neighbors=1).fit(points[~inside])
        nearest_other[inside] = index.kneighbors(points[inside], return_distance=True)[0][:, 0]
    return float(np.quantile(nearest_other, 1 - purity, method="lower"))


def ball_graph(points: np.ndarray, radius: float):
    """Sparse symmetric adjacency (CSR, self-loops included) of points closer than ``radius``."""
    from scipy import sparse
    from sklearn.neighbors import NearestNeighbors

    index = NearestNeighbors(radius=radius).fit(points)
    rows, columns, edges = [], [], 0
    for start in range(0, len(points), NEIGHBOR_CHUNK):
        block = index.radius_neighbors(points[start:start + NEIGHBOR_CHUNK], return_distance=False)
        for offset, neighbours in enumerate(block):
            rows.append(np.full(len(neighbours), start + offset, dtype=np.int64))
            columns.append(neighbours.astype(np.int64))
            edges += len(neighbours)
        if edges > MAX_GRAPH_EDGES:
            raise ToolkitError(f"the δ-ball graph at δ={radius:.4g} joins more than {MAX_GRAPH_EDGES:,} pairs: "
                               "the representation does not separate the pool; lower the purity or use another "
                               "representation")
    rows, columns = np.concatenate(rows), np.concatenate(columns)
    graph = sparse.csr_matrix((np.ones(len(rows), dtype=np.int32), (rows, columns)), shape=(len(points),) * 2)
    graph.setdiag(1)
    return graph


def probcover_select(pool_features, labeled_features, budget: int, *, radius: float | None = None,
                     num_clusters: int = 10, purity: float = DEFAULT_PURITY, seed: int = 0) -> np.ndarray:
    """``budget`` pool positions by greedy max coverage of δ-balls (δ from :func:`purity_radius` unless given).

    ``labeled_features`` may be empty (a cold start). Features wider than 50 are first projected on their
    principal components (as typicality does): the ball graph of 10,000 points in 1,600 dimensions took about a
    minute a round. Returned in the order picked; positions past full coverage are a seeded random draw of the
    remaining pool.
    """
    pool = check_embeddings(pool_features, "pool features").astype(np.float32)
    labeled = check_embeddings(labeled_features, "labeled features", allow_empty=True).astype(np.float32)
    if labeled.size and labeled.shape[1] != pool.shape[1]:
        raise ToolkitError(f"pool features have {pool.shape[1]} columns but labeled ones {labeled.shape[1]}")
    n = min(check_non_negative_int(budget, "budget"), len(pool))
    rng = np.random.default_rng(check_seed(seed))
    points = reduced_features(np.concatenate([pool, labeled.reshape(-1, pool.shape[1])]), seed)
    if radius is None:
        radius = purity_radius(points, min(num_clusters, len(points) - 1), purity, seed)
    if not radius > 0:
        return rng.permutation(len(pool))[:n]
    graph = ball_graph(points, radius)
    covered = np.zeros(len(points), dtype=bool)
    for labeled_row in range(len(pool), len(points)):
        covered[graph.indices[graph.indptr[labeled_row]:graph.indptr[labeled_row + 1]]] = True
    degree = np.asarray(graph[:len(pool)] @ (~covered).astype(np.int64)).ravel()
    tie_break = rng.permutation(len(pool))
    chosen = np.empty(n, dtype=np.int64)
    available = np.ones(len(pool), dtype=bool)
    for step in range(n):
        if degree[available].max() == 0:
            rest = np.flatnonzero(available)
            chosen[step:] = rest[rng.permutation(len(rest))[:n - step]]
            break
        candidates = np.flatnonzero(available & (degree == degree[available].max()))
        pick = int(candidates[np.argmin(tie_break[candidates])])
        chosen[step] = pick
        available[pick] = False
        ball = graph.indices[graph.indptr[pick]:graph.indptr[pick + 1]]
        newly = ball[~covered[ball]]
        covered[newly] = True
        if len(newly):
            lost = np.asarray(graph[newly][:, :len(pool)].sum(axis=0)).ravel()
            degree -= lost.astype(np.int64)
    return chosen
