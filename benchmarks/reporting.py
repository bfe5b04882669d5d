"""What the speed and representation scripts share: timing a call, and ending a report (print it, write it)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Callable


def median_seconds(function: Callable[[], object], repeats: int) -> tuple[float, float, float, object]:
    """(median, min, max) wall seconds of ``repeats`` calls after one untimed warm-up call, and its result."""
    result = function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), min(times), max(times), result


def finish_report(lines: list[str], started: float, output: str | Path | None) -> None:
    """Close the report with the run's wall time (counted from ``started``), print it, and write it to ``output``
    when given."""
    report = "\n".join([*lines, "", f"Total wall time: {time.perf_counter() - started:.0f} s.", ""])
    print(report, end="")
    if output is not None:
        from altoolkit.files import write_text

        write_text(output, report)
