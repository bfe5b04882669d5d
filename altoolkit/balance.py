"""Per-class targets for a selection: normalise them, check them, and say what to do when they are not met.

Pure functions over counts; the analyzer prints and records what they return.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

from altoolkit.errors import ToolkitError
from altoolkit.validation import short_repr


@dataclass(frozen=True)
class ClassBalance:
    """Selected images per class against the per-class targets."""

    actual: dict[str, int]
    targets: dict[str, int]
    source: str

    @property
    def missing(self) -> dict[str, int]:
        """How many more images each class needs (only classes below target)."""
        return {name: target - self.actual.get(name, 0) for name, target in self.targets.items()
                if self.actual.get(name, 0) < target}

    @property
    def all_met(self) -> bool:
        return not self.missing

    def lines(self) -> list[str]:
        """One ✓/✗ line per class with a target, e.g. ``✓ airplane: 52/50``."""
        return [f"{'✓' if self.actual.get(name, 0) >= target else '✗'} {name}: {self.actual.get(name, 0)}/{target}"
                for name, target in self.targets.items()]


def normalise_targets(target_per_class: int | Mapping[str, int] | None,
                      class_names: Sequence[str]) -> dict[str, int] | None:
    """An int applies to every class; a dict names classes (unknown names are an error); None means no targets."""
    if target_per_class is None:
        return None
    if isinstance(target_per_class, Mapping):
        unknown = [name for name in target_per_class if name not in class_names]
        if unknown:
            raise ToolkitError(f"unknown class(es) in the targets: {_listed(unknown)}; "
                               f"the classes are {_listed(class_names)}")
        targets = dict(target_per_class)
    else:
        targets = {name: target_per_class for name in class_names}
    for name, value in targets.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ToolkitError(f"the target for class {short_repr(name)} must be a non-negative integer, got "
                               f"{short_repr(value)}")
    return targets


def parse_targets(text: str | None) -> int | dict[str, int] | None:
    """Command-line targets: ``50`` (every class) or ``airplane=50,ship=30``."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    if "=" not in text:
        return _parse_count(text, "every class")
    targets = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        if not name.strip() or not value.strip():
            raise ToolkitError(f"cannot read the target {short_repr(part)}: write class=count, e.g. airplane=50")
        targets[name.strip()] = _parse_count(value.strip(), name.strip())
    return targets


def _parse_count(text: str, name: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ToolkitError(f"the target for {_listed([name])} must be a non-negative integer, got "
                           f"{short_repr(text)}") from None
    if value < 0:
        raise ToolkitError(f"the target for {_listed([name])} must be a non-negative integer, got {short_repr(value)}")
    return value


def _listed(names: Sequence, shown: int = 10, width: int = 40) -> str:
    """Names for an error line: at most ``shown`` of them, each cut to ``width`` characters."""
    cut = [str(name) if len(str(name)) <= width else f"{str(name)[:width]}…" for name in names[:shown]]
    return ", ".join(cut) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def recommendations(balance: ClassBalance, pool_size: int, start_idx: int, end_idx: int,
                    data_size: int) -> list[str]:
    """What to do when targets are not met: what each class lacks, a larger pool, lower targets or thresholds.

    The suggested ``end_idx`` assumes each class keeps being selected at the rate seen in this pool.
    """
    missing = balance.missing
    if not missing:
        return []
    advice = [f"{name} lacks {count} image{'s' if count != 1 else ''} "
              f"({balance.actual.get(name, 0)}/{balance.targets[name]})" for name, count in missing.items()]
    rates = {name: balance.actual.get(name, 0) / pool_size for name in missing}
    if all(rate > 0 for rate in rates.values()):
        needed_pool = max(math.ceil(balance.targets[name] / rate) for name, rate in rates.items())
        suggested_end = start_idx + needed_pool
        if suggested_end <= data_size:
            advice.append(f"widen the pool: at this selection rate, --end-idx {suggested_end} "
                          f"(now {end_idx}) should meet every target")
        else:
            advice.append(f"even the whole training set (--end-idx {data_size}) is unlikely to meet the targets "
                          "at this selection rate")
    else:
        never = [name for name, rate in rates.items() if rate == 0]
        advice.append(f"no image of {', '.join(never)} was selected: a larger pool alone may not help")
    lowest = min(balance.actual.get(name, 0) for name in missing)
    advice.append(f"or lower the targets (e.g. --target-per-class {lowest}) or loosen the thresholds "
                  "(a larger threshold_percentile, smaller far/novelty percentiles)")
    return advice
