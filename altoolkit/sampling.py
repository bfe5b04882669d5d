"""Seeded choices shared by every heuristic and strategy, written once.

- :func:`seeded_ranking`: every position, highest score first, ties in a seeded order (the design's ``top_n`` is
  its first ``n``);
- :func:`seeded_subsample`: ``size`` distinct rows in ascending order (all rows when there are fewer), the sample
  that k-means, PCA and the random control draw;
- :data:`FIT_SAMPLE`: how many rows PCA and k-means are fitted on before every row is assigned or projected.
"""

from __future__ import annotations

import numpy as np

from altoolkit.arrays import as_indices, check_scores
from altoolkit.errors import ToolkitError

FIT_SAMPLE = 10_000
"""PCA and k-means are fitted on at most this many seeded rows, then applied to all: full k-means on 50,000 × 576
embeddings took about 17 s here, the sampled fit well under a second."""


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
