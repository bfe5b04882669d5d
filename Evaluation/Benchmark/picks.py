"""What the images a strategy picked look like, measured the same way for every strategy: how typical each is of
the seed's images (dense neighbourhood or outlier) and how close it is to another pick (a near-duplicate). Pure
NumPy and scikit-learn on given features; no model, no files."""

from __future__ import annotations

import numpy as np

NEIGHBOURS = 20
"""Neighbours whose mean distance measures how typical an image is."""
DUPLICATE_RATIO = 0.5
"""A pick closer to another pick than this share of the seed's median nearest-neighbour distance is a
near-duplicate of it."""


def neighbour_distances(features: np.ndarray, neighbours: int) -> np.ndarray:
    """Per row, its distances to its ``neighbours`` nearest other rows (Euclidean, nearest first)."""
    from sklearn.neighbors import NearestNeighbors

    count = min(neighbours + 1, len(features))
    distances, _ = NearestNeighbors(n_neighbors=count).fit(features).kneighbors(features)
    return distances[:, 1:]


def typicality_percentiles(features: np.ndarray, neighbours: int = NEIGHBOURS) -> np.ndarray:
    """Per row, the share of rows (in %) at least as isolated as it: the mean distance to its nearest neighbours,
    ranked. 100 is the densest spot of the data, near 0 an outlier."""
    spread = neighbour_distances(features, neighbours).mean(axis=1)
    at_least_as_isolated = len(spread) - np.searchsorted(np.sort(spread), spread, side="left")
    return 100.0 * at_least_as_isolated / len(spread)


def nearest_pick_ratios(features: np.ndarray, picked_rows: np.ndarray) -> np.ndarray:
    """Per pick, its distance to the nearest other pick ÷ the median distance of a row to its nearest neighbour
    (1 = as far as two typical neighbours; near 0 = a near-duplicate of another pick)."""
    spacing = float(np.median(neighbour_distances(features, 1)[:, 0]))
    picked = features[np.asarray(picked_rows, np.int64)]
    if len(picked) < 2:
        return np.full(len(picked), np.nan)
    return neighbour_distances(picked, 1)[:, 0] / spacing if spacing > 0 else np.full(len(picked), np.inf)


def describe_picks(features: np.ndarray, picked_rows: np.ndarray, classes: np.ndarray,
                   typicality: np.ndarray | None = None) -> dict:
    """The picks' typicality percentiles, nearest-pick ratios and classes, and their summary: the median
    typicality, how many are near-duplicates of another pick, and how many classes they cover. ``typicality``
    may pass :func:`typicality_percentiles` of ``features`` when several strategies share them."""
    rows = np.asarray(picked_rows, np.int64)
    percentiles = (typicality_percentiles(features) if typicality is None else typicality)[rows]
    ratios = nearest_pick_ratios(features, rows)
    return {"typicality": percentiles.tolist(), "nearest_pick": ratios.tolist(),
            "classes": np.asarray(classes)[rows].tolist(),
            "median_typicality": float(np.median(percentiles)) if len(rows) else float("nan"),
            "near_duplicates": int(np.sum(ratios < DUPLICATE_RATIO)),
            "classes_covered": int(len(np.unique(np.asarray(classes)[rows])))}
