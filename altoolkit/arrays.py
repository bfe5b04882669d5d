"""Validation of the arrays every selection function takes: one clear ToolkitError instead of a numpy traceback."""

from __future__ import annotations

import numpy as np

from altoolkit.errors import ToolkitError

PROBABILITY_SUM_TOLERANCE = 1e-3


def as_indices(values) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


def check_probabilities(probabilities) -> np.ndarray:
    """Return ``probabilities`` as a float64 N×K array, or raise ToolkitError saying what is wrong."""
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2:
        raise ToolkitError(f"probabilities must be a 2-D array (images × classes), got shape {p.shape}")
    if p.shape[1] < 2:
        raise ToolkitError(f"probabilities need at least 2 class columns, got {p.shape[1]}")
    if not np.all(np.isfinite(p)):
        raise ToolkitError("probabilities contain NaN or infinity: check the model's output")
    if np.any(p < 0):
        raise ToolkitError("probabilities contain negative values: pass softmax outputs, not logits")
    row_sums = p.sum(axis=1)
    bad = np.flatnonzero(np.abs(row_sums - 1.0) > PROBABILITY_SUM_TOLERANCE)
    if bad.size:
        raise ToolkitError(f"probability rows must sum to 1 (row {bad[0]} sums to {row_sums[bad[0]]:.4f}): "
                           "pass softmax outputs, not logits")
    return p


def check_embeddings(embeddings, name: str = "embeddings", allow_empty: bool = False) -> np.ndarray:
    """Return ``embeddings`` as a 2-D float array, or raise ToolkitError saying what is wrong."""
    e = np.asarray(embeddings)
    if e.ndim != 2:
        raise ToolkitError(f"{name} must be a 2-D array (images × features), got shape {e.shape}")
    if not np.issubdtype(e.dtype, np.floating):
        e = e.astype(np.float64)
    if len(e) == 0 and not allow_empty:
        raise ToolkitError(f"{name} is empty: there is nothing to analyse")
    if not np.all(np.isfinite(e)):
        raise ToolkitError(f"{name} contain NaN or infinity: check the model's output")
    return e


def check_scores(scores, name: str = "scores") -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1:
        raise ToolkitError(f"{name} must be a 1-D array (one score per image), got shape {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ToolkitError(f"{name} contain NaN or infinity")
    return s
