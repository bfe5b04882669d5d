"""The benchmark's statistics, from ``results.json`` alone (NumPy and SciPy, no TensorFlow): learning curves, paired
differences with their tests, area under the curve, label efficiency, and the target check."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from AL_functions import RECOMMENDED
from altoolkit.errors import ToolkitError
from Evaluation.Benchmark.config import BASELINE
from Evaluation.Benchmark.records import completed_rounds

def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """(mean, half-width of the t confidence interval); the half-width is 0 for a single value."""
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    if len(x) < 2:
        return float(x.mean()) if len(x) else float("nan"), 0.0
    half = stats.t.ppf(0.5 + confidence / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return float(x.mean()), float(half)


def paired_difference(strategy: Sequence[float], baseline: Sequence[float]) -> tuple[float, float | None]:
    """(mean of strategy − baseline over paired seeds, two-sided paired t-test p-value; None if undefined)."""
    from scipy import stats

    a, b = np.asarray(strategy, np.float64), np.asarray(baseline, np.float64)
    if a.shape != b.shape or a.size == 0:
        raise ToolkitError(f"paired values need equal, non-empty lengths, got {a.size} and {b.size}")
    difference = float((a - b).mean())
    if a.size < 2 or np.allclose(a - b, (a - b)[0]):
        return difference, None
    return difference, float(stats.ttest_rel(a, b).pvalue)


def area_under_curve(labels: Sequence[float], accuracies: Sequence[float]) -> float:
    """Trapezoid area under accuracy-vs-labels divided by the label range (a mean accuracy in [0, 1])."""
    x, y = np.asarray(labels, np.float64), np.asarray(accuracies, np.float64)
    if len(x) == 1 or x[-1] == x[0]:
        return float(y.mean())
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2 / (x[-1] - x[0]))


def labels_to_reach(labels: Sequence[float], accuracies: Sequence[float], target: float) -> float | None:
    """Labels a curve needs to reach ``target`` accuracy (linear interpolation, first crossing); None if never."""
    x, y = np.asarray(labels, np.float64), np.asarray(accuracies, np.float64)
    if len(x) and y[0] >= target:
        return float(x[0]) if y[0] == target else None
    for i in range(len(x) - 1):
        if y[i] < target <= y[i + 1]:
            return float(x[i] + (target - y[i]) * (x[i + 1] - x[i]) / (y[i + 1] - y[i]))
    return None


def label_efficiency(baseline_labels: Sequence[float], baseline_accuracies: Sequence[float], target: float,
                     labels_used: float) -> float | None:
    """Labels the baseline needs for ``target`` accuracy ÷ labels the strategy used; None outside its range."""
    needed = labels_to_reach(baseline_labels, baseline_accuracies, target)
    return None if needed is None or labels_used <= 0 else needed / labels_used


def accuracy_at_labels(labels: Sequence[float], accuracies: Sequence[float], at: Sequence[float]) -> np.ndarray:
    """One curve's accuracy at the label counts ``at``: linear interpolation between its rounds, NaN outside the
    labels it measured (never extrapolated). ``labels`` must increase."""
    x, y = np.asarray(labels, np.float64), np.asarray(accuracies, np.float64)
    wanted = np.asarray(at, np.float64)
    values = np.interp(wanted, x, y)
    values[(wanted < x[0]) | (wanted > x[-1])] = np.nan
    return values


def baseline_at_equal_labels(labels: np.ndarray, baseline_labels: np.ndarray,
                             baseline_accuracies: np.ndarray) -> np.ndarray:
    """Per seed (row) and round: the baseline's accuracy at the strategy's label count of that seed and round,
    interpolated on the baseline's own curve of the same seed; NaN beyond the labels the baseline measured."""
    return np.stack([accuracy_at_labels(base_x, base_y, x)
                     for x, base_x, base_y in zip(labels, baseline_labels, baseline_accuracies)])


def paired_at_equal_labels(labels: np.ndarray, accuracies: np.ndarray, baseline_labels: np.ndarray,
                           baseline_accuracies: np.ndarray) -> tuple[list, list]:
    """Per round: ((mean strategy − baseline at the same labels, paired t-test p), half-width of its 95 % CI),
    over paired seeds (rows of the same seed in both). A round where any seed used more or fewer labels than the
    baseline's curve covers gets ``(None, None)`` and a None CI: it is not compared."""
    reference = baseline_at_equal_labels(labels, baseline_labels, baseline_accuracies)
    paired, spreads = [], []
    for strategy_column, baseline_column in zip(accuracies.T, reference.T):
        if np.isnan(baseline_column).any():
            paired.append((None, None))
            spreads.append(None)
        else:
            paired.append(paired_difference(strategy_column, baseline_column))
            spreads.append(mean_ci(strategy_column - baseline_column)[1])
    return paired, spreads


def ranking(summary: dict) -> list[str]:
    """Strategy names, best first, by their last equal-label difference from the baseline (the baseline counts
    as 0; a strategy never compared goes last, in table order)."""
    def last_difference(name: str) -> float:
        entry = summary["strategies"][name]
        if name == BASELINE:
            return 0.0
        measured = [difference for difference, _ in entry.get("paired", []) if difference is not None]
        return measured[-1] if measured else -math.inf

    return sorted(summary["strategies"], key=last_difference, reverse=True)


def finished_seed_numbers(results: dict) -> list[str]:
    """The configured seeds whose base and every configured strategy's rounds are all done, in order.

    The statistics use only these, so every strategy is compared over the same paired seeds; a benchmark
    stopped early reports its finished seeds (the report says how many) and resumes the rest later.
    """
    config = results["config"]
    first = config.get("first_seed", 0)
    numbers = []
    for number in map(str, range(first, first + config["seeds"])):
        record = results["seeds"].get(number)
        if record is not None and "base" in record and all(
                completed_rounds(record["strategies"].get(name, [])) >= config["rounds"]
                for name in config["strategies"]):
            numbers.append(number)
    return numbers


def finished_seeds(results: dict) -> list[dict]:
    """The records of :func:`finished_seed_numbers`."""
    return [results["seeds"][number] for number in finished_seed_numbers(results)]


def curves(results: dict, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(labels, accuracies), each finished seed × (rounds + 1); round 0 is the strategy's own cold-start pick when it
    made one, else the shared base model."""
    labels, accuracies = [], []
    rounds = results["config"]["rounds"]
    for record in finished_seeds(results):
        cells = record["strategies"][name]
        row = cells[:rounds + 1] if cells and cells[0]["round"] == 0 else [record["base"], *cells[:rounds]]
        labels.append([cell["labels"] for cell in row])
        accuracies.append([cell["accuracy"] for cell in row])
    return np.asarray(labels, np.float64), np.asarray(accuracies, np.float64)


def summarise(results: dict) -> dict:
    """Per strategy: mean ± std and CI per round, AUC, paired difference vs random with p-values, efficiency."""
    config = results["config"]
    summary = {"strategies": {}}
    base = [record["base"]["accuracy"] for record in finished_seeds(results)]
    summary["base_mean"], summary["base_std"] = (float(np.mean(base)) if base else float("nan"),
                                                 float(np.std(base, ddof=1)) if len(base) > 1 else float("nan"))
    baseline_labels, baseline_acc = curves(results, BASELINE)
    for name in config["strategies"]:
        labels, accuracies = curves(results, name)
        if not len(labels):
            continue
        entry = {"seeds": int(len(labels)), "labels_mean": labels.mean(axis=0).tolist(),
                 "accuracy_mean": accuracies.mean(axis=0).tolist(),
                 "accuracy_ci": [mean_ci(column)[1] for column in accuracies.T],
                 "final_mean": float(accuracies[:, -1].mean()),
                 "final_std": float(accuracies[:, -1].std(ddof=1)) if len(labels) > 1 else float("nan"),
                 "auc": float(np.mean([area_under_curve(x, y) for x, y in zip(labels, accuracies)]))}
        if len(baseline_labels) == len(labels) and name != BASELINE:
            entry["paired"], entry["paired_ci"] = paired_at_equal_labels(labels, accuracies, baseline_labels,
                                                                         baseline_acc)
            entry["interpolated"] = not np.array_equal(labels, baseline_labels)
        if len(baseline_labels):
            entry["label_efficiency"] = label_efficiency(baseline_labels.mean(axis=0), baseline_acc.mean(axis=0),
                                                         entry["final_mean"], float(labels[:, -1].mean()))
        entry["per_class_final"] = _mean_per_class(results, name)
        summary["strategies"][name] = entry
    correct_p_values(summary)
    return summary


def correct_p_values(summary: dict) -> None:
    """Add ``paired_corrected``: every paired p-value of the report adjusted together for the number of tests
    (Benjamini–Hochberg, scipy.stats.false_discovery_control), so a few p < 0.05 among many tests mean little."""
    from scipy import stats

    cells = [(name, index) for name, entry in summary["strategies"].items()
             for index, (_, p) in enumerate(entry.get("paired", [])) if p is not None]
    adjusted = (stats.false_discovery_control([summary["strategies"][name]["paired"][index][1]
                                               for name, index in cells]) if cells else [])
    for entry in summary["strategies"].values():
        if "paired" in entry:
            entry["paired_corrected"] = [None] * len(entry["paired"])
    for (name, index), value in zip(cells, adjusted):
        summary["strategies"][name]["paired_corrected"][index] = float(value)


@dataclass(frozen=True)
class Target:
    """What the toolkit aims for with its recommended strategy against random under the same learner, per class:
    the gains where labels are scarcest, never a loss up to 150 labels per class, and significance that survives
    the correction for the number of tests."""

    gain_at_labels_per_class: tuple[int, ...] = (10, 20)
    gain: float = 0.03
    never_below_up_to_labels_per_class: int = 150
    significant_share: float = 0.5
    alpha: float = 0.05
    min_seeds: int = 10


def target_check(summary: dict, num_classes: int, name: str = RECOMMENDED,
                 target: Target = Target()) -> list[tuple[str, str, bool | None]]:
    """(criterion, measured value, met?) of ``name`` against the target; empty if it was not benchmarked. Met is
    None for a criterion this run cannot measure (no round at that label count)."""
    entry = summary["strategies"].get(name)
    if entry is None or "paired" not in entry:
        return []
    labels = [int(round(value)) for value in entry["labels_mean"]]
    differences = [difference for difference, _ in entry["paired"]]
    corrected = entry.get("paired_corrected") or [p for _, p in entry["paired"]]
    checks = []
    for per_class in target.gain_at_labels_per_class:
        count = per_class * num_classes
        gain = differences[labels.index(count)] if count in labels else None
        if gain is not None:
            checks.append((f"gain over random at {per_class} labels per class ({count}) ≥ +{100 * target.gain:.0f} "
                           "points", f"{100 * gain:+.2f}", gain >= target.gain))
        else:
            checks.append((f"gain over random at {per_class} labels per class ({count}) ≥ +{100 * target.gain:.0f} "
                           "points", f"not measured (no round at {count} labels)", None))
    limit = target.never_below_up_to_labels_per_class * num_classes
    within = [r for r, count in enumerate(labels) if count <= limit and differences[r] is not None]
    below = [r for r in within if differences[r] < 0]
    checks.append((f"never below random up to {target.never_below_up_to_labels_per_class} labels per class "
                   "(mean paired difference ≥ 0)",
                   "below at " + ", ".join(f"{labels[r]} labels ({100 * differences[r]:+.2f})" for r in below)
                   if below else f"never below ({len(within)} rounds)", not below))
    significant = [r for r in within if differences[r] > 0 and corrected[r] is not None
                   and corrected[r] < target.alpha]
    needed = math.ceil(target.significant_share * len(within))
    checks.append((f"ahead with Benjamini–Hochberg-corrected p < {target.alpha} in at least half the rounds",
                   f"{len(significant)} of {len(within)}", len(significant) >= needed > 0))
    checks.append((f"at least {target.min_seeds} paired seeds", str(entry["seeds"]),
                   entry["seeds"] >= target.min_seeds))
    return checks


def target_lines(summary: dict, num_classes: int) -> list[str]:
    """The report's section on the recommended strategy's target (empty when it was not benchmarked)."""
    checks = target_check(summary, num_classes)
    if not checks:
        return []
    lines = ["## Target: recommended vs random, same learner", "",
             "The toolkit's aim for its default strategy (met only if every row holds).", "",
             "| criterion | measured | met |", "| --- | --- | --- |"]
    lines += check_rows(checks)
    return [*lines, "", verdict(checks)]


def check_rows(checks: list[tuple[str, str, bool | None]]) -> list[str]:
    """Table rows of (criterion, measured, met?) checks: yes, no, or — when this run cannot measure it."""
    shown = {True: "yes", False: "no", None: "—"}
    return [f"| {criterion} | {measured} | {shown[met]} |" for criterion, measured, met in checks]


def verdict(checks: list[tuple[str, str, bool | None]]) -> str:
    """Met only if every row holds; rows this run cannot measure are named, never counted as met."""
    if any(met is False for _, _, met in checks):
        return "Target not met."
    if any(met is None for _, _, met in checks):
        return ("Target met on the rows this run measures; the rows marked — need a run that reaches those label "
                "counts.")
    return "Target met."


def _mean_per_class(results: dict, name: str) -> dict[str, float | None]:
    rounds = results["config"]["rounds"]
    rows = [record["strategies"][name][rounds - 1]["per_class_accuracy"] for record in finished_seeds(results)]
    return {cls: (float(np.mean([row[cls] for row in rows])) if rows and rows[0][cls] is not None else None)
            for cls in results["dataset"]["class_names"]}


def format_number(value, digits: int = 3, percent: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{100 * value:.1f}" if percent else f"{value:.{digits}f}"


@dataclass(frozen=True)
class PipelineTarget:
    """The label-efficiency aim of the recommended pipeline against the design's baseline (random labels,
    MobileNetV3Small from scratch), per class: the baseline's accuracy at 150 labels reached with 30, and at
    least 75 % with 10."""

    labels_per_class: int = 30
    baseline_labels_per_class: int = 150
    min_accuracy_labels_per_class: int = 10
    min_accuracy: float = 0.75


def baseline_curves(baseline: dict) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], np.ndarray, np.ndarray]:
    """The baseline run's random curve: per seed number (labels, accuracies), and the mean curve over seeds."""
    labels, accuracies = curves(baseline, BASELINE)
    by_seed = {number: (labels[i], accuracies[i]) for i, number in enumerate(finished_seed_numbers(baseline))}
    return by_seed, labels.mean(axis=0), accuracies.mean(axis=0)


def pipeline_efficiency(results: dict, baseline: dict, name: str) -> list[dict]:
    """Per round of ``name``: labels used, mean accuracy, the labels the baseline's mean curve needs for that
    accuracy, their ratio (the label efficiency), and a 95 % CI of the per-seed ratios (seeds of the same number in
    both runs; a seed beyond the baseline seed's best accuracy is left out of the CI and counted)."""
    by_seed, base_labels, base_accuracy = baseline_curves(baseline)
    labels, accuracies = curves(results, name)
    numbers = finished_seed_numbers(results)
    rows = []
    for r in range(labels.shape[1]):
        used, accuracy = float(labels[:, r].mean()), float(accuracies[:, r].mean())
        needed = labels_to_reach(base_labels, base_accuracy, accuracy)
        per_seed, beyond = [], 0
        for i, number in enumerate(numbers):
            if number in by_seed:
                reached = labels_to_reach(*by_seed[number], accuracies[i, r])
                if reached is not None:
                    per_seed.append(reached / labels[i, r])
                elif accuracies[i, r] > by_seed[number][1].max():
                    beyond += 1
        rows.append({"labels": used, "accuracy": accuracy, "baseline_labels": needed,
                     "efficiency": None if needed is None else needed / used,
                     "above_baseline": accuracy > float(base_accuracy.max()),
                     "ci": mean_ci(per_seed)[1] if len(per_seed) > 1 else None, "seeds_beyond": beyond})
    return rows


def pipeline_check(results: dict, baseline: dict, name: str = RECOMMENDED,
                   target: PipelineTarget = PipelineTarget()) -> list[tuple[str, str, bool | None]]:
    """(criterion, measured, met?) of the pipeline ``name`` against the design's baseline run."""
    if name not in results["config"]["strategies"] or not finished_seeds(results):
        return []
    classes = len(results["dataset"]["class_names"])
    labels, accuracies = curves(results, name)
    _, base_labels, base_accuracy = baseline_curves(baseline)

    def mean_at(curve_labels: np.ndarray, curve_accuracy: np.ndarray, count: int) -> float | None:
        matches = np.flatnonzero(np.isclose(curve_labels, count))
        return float(curve_accuracy[matches[0]]) if len(matches) else None

    at = target.labels_per_class * classes
    reference = target.baseline_labels_per_class * classes
    mine = mean_at(labels.mean(axis=0), accuracies.mean(axis=0), at)
    theirs = mean_at(base_labels, base_accuracy, reference)
    low = target.min_accuracy_labels_per_class * classes
    first = mean_at(labels.mean(axis=0), accuracies.mean(axis=0), low)
    compared = (f"{format_number(mine, percent=True)} % vs {format_number(theirs, percent=True)} %"
                if mine is not None and theirs is not None else
                f"not measured (no round at {at if mine is None else reference} labels)")
    return [
        (f"accuracy with {at} labels ≥ the baseline's with {reference} (label efficiency ≥ "
         f"{reference / at:.0f})", compared, None if mine is None or theirs is None else mine >= theirs),
        (f"accuracy with {low} labels ≥ {100 * target.min_accuracy:.0f} %",
         f"{format_number(first, percent=True)} %" if first is not None else f"not measured (no round at {low} labels)",
         None if first is None else first >= target.min_accuracy),
    ]
