"""Checks of scalar settings (seeds, counts, rates) shared by the library and the command lines.

Each check returns the value as the right Python type or raises :class:`~altoolkit.errors.ToolkitError` with a
message that names the setting and the accepted range, so a bad value is refused where it enters, not deep in
NumPy or TensorFlow.
"""

from __future__ import annotations

import math
import numbers

from altoolkit.errors import ToolkitError

MAX_SEED = 2**32 - 1
"""Largest seed accepted: NumPy's legacy seeding and TensorFlow's op seeds take unsigned 32-bit values."""
MAX_COUNT = 2**63 - 1
"""Largest count or index accepted: NumPy's int64, which every index array and size here is."""


def check_seed(seed, name: str = "seed") -> int:
    """``seed`` as an int in 0..MAX_SEED."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= int(seed) <= MAX_SEED:
        raise ToolkitError(f"{name} must be an integer from 0 to {MAX_SEED}, got {short_repr(seed)}")
    return int(seed)


def check_positive_int(value, name: str) -> int:
    """``value`` as an int of at least 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 1 <= int(value) <= MAX_COUNT:
        raise ToolkitError(f"{name} must be a positive integer (at most 2**63 - 1), got {short_repr(value)}")
    return int(value)


def check_non_negative_int(value, name: str) -> int:
    """``value`` as an int of at least 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= int(value) <= MAX_COUNT:
        raise ToolkitError(f"{name} must be a non-negative integer (at most 2**63 - 1), got {short_repr(value)}")
    return int(value)


def check_positive_float(value, name: str) -> float:
    """``value`` as a finite float above 0 (NaN and infinity are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)) \
            or float(value) <= 0:
        raise ToolkitError(f"{name} must be a finite number above 0, got {short_repr(value)}")
    return float(value)


def check_fraction(value, name: str) -> float:
    """``value`` as a float in [0, 1) (NaN is refused): a share of a set that must leave something over."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= float(value) < 1:
        raise ToolkitError(f"{name} must be a number from 0 up to (not including) 1, got {short_repr(value)}")
    return float(value)


def check_percentile(value, name: str) -> float:
    """``value`` as a float in (0, 100]: a share of the pool in percent (0 would select nothing; NaN is refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)) \
            or not 0 < float(value) <= 100:
        raise ToolkitError(f"{name} must be a percentile above 0 and at most 100, got {short_repr(value)}")
    return float(value)


def short_repr(value, limit: int = 40) -> str:
    """A short repr for an error line (a 60,000-digit integer must not become a 60,000-character message)."""
    try:
        text = repr(value)
    except ValueError:  # int too large to convert to a string
        text = f"<{type(value).__name__} too large to print>"
    return text if len(text) <= limit else text[:limit] + "…"


def display_text(path, limit: int = 240) -> str:
    """A path or name fit for a one-line message: control characters escaped, the middle of a long one elided."""
    text = str(path)
    if not text.isprintable():
        text = repr(text)[1:-1]
    return text if len(text) <= limit else f"{text[:limit // 2]}…{text[-limit // 2:]}"
