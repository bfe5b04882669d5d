"""Validation of the arrays every selection function takes: one clear ToolkitError instead of a numpy traceback."""

from __future__ import annotations

import mmap

import numpy as np

from altoolkit.errors import ToolkitError

PROBABILITY_SUM_TOLERANCE = 1e-3
CHECK_CHUNK_BYTES = 64 << 20
"""Rows are checked this many bytes at a time, so checking a pool's arrays needs no full-size temporary."""


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
    if not all_finite(e):
        raise ToolkitError(f"{name} contain NaN or infinity: check the model's output")
    return e


def all_finite(values: np.ndarray) -> bool:
    """True when every entry of ``values`` is finite, checked in chunks of rows; the pages of a memory-mapped
    array are released after each chunk, so an array on disk larger than memory is checked without being held."""
    if values.ndim == 0 or values.size == 0:
        return bool(np.isfinite(values).all())
    step = max(1, CHECK_CHUNK_BYTES // max(1, values[0].nbytes))
    for start in range(0, len(values), step):
        if not np.isfinite(values[start:start + step]).all():
            return False
        release_mapped_pages(values)
    return True


def release_mapped_pages(values: np.ndarray) -> None:
    """Drop this process's resident pages of a memory-mapped array (read-only data stays in the page cache and is
    read back on the next access); a no-op for arrays in memory."""
    base = values
    while base is not None and not isinstance(base, mmap.mmap):
        base = getattr(base, "base", None)
    if base is not None and hasattr(mmap, "MADV_DONTNEED") and not base.closed:
        base.madvise(mmap.MADV_DONTNEED)


def check_scores(scores, name: str = "scores") -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1:
        raise ToolkitError(f"{name} must be a 1-D array (one score per image), got shape {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ToolkitError(f"{name} contain NaN or infinity")
    return s
