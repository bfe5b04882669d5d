"""Seeded choices shared by every heuristic and strategy, written once.

- :func:`seeded_ranking`: every position, highest score first, ties in a seeded order (the design's ``top_n`` is
  its first ``n``);
- :func:`seeded_subsample`: ``size`` distinct rows in ascending order (all rows when there are fewer), the sample
  that k-means, PCA and the random control draw;
- :data:`FIT_SAMPLE` / :func:`fit_sample_size`: how many rows PCA and k-means are fitted on before every row is
  assigned or projected (fewer for wide rows, so a fit's memory stays bounded);
- :func:`fit_sampled_pca` / :func:`project_rows` / :func:`sampled_pca`: a PCA fitted on that sample, applied to
  any rows in chunks (memory independent of how many rows there are).
"""

from __future__ import annotations

import numpy as np

from altoolkit.arrays import as_indices, check_scores
from altoolkit.errors import ToolkitError

TRANSFORM_CHUNK = 4096
"""Rows projected per step (a pixel PCA of a 50,000-image pool never becomes one pool × pixels float matrix)."""
FIT_SAMPLE = 10_000
"""PCA and k-means are fitted on at most this many seeded rows, then applied to all: full k-means on 50,000 × 576
embeddings took about 17 s here, the sampled fit well under a second."""
FIT_SAMPLE_BYTES = 256 << 20
"""… and on at most this many bytes of float32 rows: 10,000 flattened 128-pixel images would be 2 GB (a sample of
10,000 images of 32 pixels, 120 MB, is within it)."""
TRANSFORM_BYTES = 64 << 20
"""Rows are also projected at most this many float32 bytes at a time."""


def fit_sample_size(values_per_row: int) -> int:
    """How many rows of ``values_per_row`` numbers a fit samples: :data:`FIT_SAMPLE`, fewer for wide rows."""
    return int(max(2, min(FIT_SAMPLE, FIT_SAMPLE_BYTES // max(1, 4 * int(values_per_row)))))


def seeded_ranking(scores, seed: int = 0) -> np.ndarray:
    """Every position, highest score first; equal scores in an order drawn from ``seed``.

    The idea of modAL's ``shuffled_argmax`` (shuffle, then stable sort), written here because it draws from
    numpy's global random state and takes no seed.
    """
    s = check_scores(scores)
    return as_indices(np.lexsort((np.random.default_rng(seed).permutation(len(s)), -s)))


def seeded_subsample(n_rows: int, size: int, seed: int = 0) -> np.ndarray:
    """``size`` distinct positions of ``0..n_rows-1`` drawn with ``seed``, ascending (all when ``size ≥ n_rows``)."""
    if n_rows < 0 or size < 0:
        raise ToolkitError(f"row count and sample size must be non-negative, got {n_rows} and {size}")
    if size >= n_rows:
        return np.arange(n_rows, dtype=np.int64)
    return np.sort(as_indices(np.random.default_rng(seed).choice(n_rows, size=size, replace=False)))


def fit_sampled_pca(rows, n_components: int, seed: int = 0, scale: float = 1.0):
    """A scikit-learn PCA fitted on at most :data:`FIT_SAMPLE` seeded rows of ``rows`` (any N-row array-like, each
    row flattened and multiplied by ``scale``); at most as many components as the sample allows."""
    from sklearn.decomposition import PCA

    sample = _flat_rows(rows[seeded_subsample(len(rows), fit_sample_size(row_values(rows)), seed)], scale)
    components = min(n_components, *sample.shape)
    # copy=False: the sample is this function's own array, so PCA may centre it in place (same numbers, one copy
    # of the sample fewer: 270 MB for 128-pixel images)
    return PCA(n_components=components, svd_solver="randomized", random_state=seed, copy=False).fit(sample)


def project_rows(pca, rows, scale: float = 1.0) -> np.ndarray:
    """``rows`` (flattened, times ``scale``) projected on a fitted PCA, :data:`TRANSFORM_CHUNK` rows at a time."""
    projected = np.empty((len(rows), pca.n_components_), dtype=np.float32)
    step = max(1, min(TRANSFORM_CHUNK, TRANSFORM_BYTES // max(1, 4 * row_values(rows))))
    for start in range(0, len(rows), step):
        projected[start:start + step] = pca.transform(_flat_rows(rows[start:start + step], scale))
    return projected


def row_values(rows) -> int:
    """How many numbers one row holds once flattened."""
    return int(np.prod(np.shape(rows)[1:], dtype=np.int64)) if np.ndim(rows) > 1 else 1


def sampled_pca(rows, n_components: int, seed: int = 0, scale: float = 1.0) -> np.ndarray:
    """:func:`fit_sampled_pca` on ``rows``, then every row projected (float32)."""
    return project_rows(fit_sampled_pca(rows, n_components, seed, scale), rows, scale)


def _flat_rows(block, scale: float) -> np.ndarray:
    block = np.asarray(block)
    return block.reshape(len(block), -1).astype(np.float32) * np.float32(scale)
