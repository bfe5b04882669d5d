"""What choosing among a sample of the pool costs: a benchmark run with ``--max-candidates`` against the same
benchmark over the whole pool, strategy by strategy, paired by seed at equal labels.

``label.py select --max-candidates N`` scores the whole pool but lets the strategy choose among a seeded random
sample of N unlabeled images, which bounds the memory and time of the strategies that compare images with each
other. This script reads two finished benchmark runs (``results.json``) that differ only in that setting and
reports, for each strategy, the accuracy difference (sampled − whole pool) with its 95 % CI over the seeds both
runs finished. (Selection time is not compared here: the two runs need not have run under the same load;
``benchmarks/strategy_speed.py`` measures it.)
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

import numpy as np

from altoolkit.cli import ToolkitArgumentParser
from altoolkit.errors import ToolkitError, cli_entry
from benchmarks.reporting import finish_report
from Evaluation.Benchmark.records import read_results_folder
from Evaluation.Benchmark.stats import curves, finished_seed_numbers, mean_ci, paired_difference

SCRIPT = "benchmarks/candidates.py"
REPORT_LABELS = (200, 500, 1000, 1500)
"""Label counts the table reports (those the runs reached)."""


def on_seeds(results: dict, seeds: list[str]) -> dict:
    """``results`` with only the records of ``seeds``."""
    return {**results, "seeds": {seed: results["seeds"][seed] for seed in seeds}}


def candidate_costs(sampled: dict, whole: dict) -> tuple[list[str], list[dict]]:
    """(paired seeds, one row per strategy both runs hold): the accuracy difference sampled − whole pool at each
    label count of :data:`REPORT_LABELS` both reached (mean, CI half-width, p-value)."""
    absent = object()  # a setting only one run records differs, whatever its value
    difference = sorted(key for key in set(sampled["config"]) | set(whole["config"])
                        if sampled["config"].get(key, absent) != whole["config"].get(key, absent))
    if set(difference) - {"max_candidates", "seeds", "strategies", "first_seed"}:
        raise ToolkitError(f"the two runs differ in {', '.join(difference)}: compare runs that differ only in "
                           "--max-candidates")
    seeds = sorted(set(finished_seed_numbers(sampled)) & set(finished_seed_numbers(whole)), key=int)
    if len(seeds) < 2:
        raise ToolkitError(f"the runs share {len(seeds)} finished seed(s): a paired comparison needs at least 2")
    sampled, whole = on_seeds(sampled, seeds), on_seeds(whole, seeds)
    rows = []
    for name in [name for name in sampled["config"]["strategies"] if name in whole["config"]["strategies"]]:
        (labels, accuracies), (whole_labels, whole_accuracies) = curves(sampled, name), curves(whole, name)
        if not np.array_equal(labels, whole_labels):
            raise ToolkitError(f"{name}'s label counts differ between the runs: they are not paired")
        at = {}
        for count in REPORT_LABELS:
            column = np.flatnonzero(labels[0] == count)
            if len(column):
                gap = 100 * (accuracies[:, column[0]] - whole_accuracies[:, column[0]])
                mean, half = mean_ci(gap)
                at[count] = (mean, half, paired_difference(accuracies[:, column[0]], whole_accuracies[:, column[0]])[1])
        rows.append({"strategy": name, "at": at})
    return seeds, rows


def report_lines(command: str, sampled_dir: Path, whole_dir: Path, sampled: dict, seeds: list[str],
                 rows: list[dict]) -> list[str]:
    config = sampled["config"]
    shown = [count for count in REPORT_LABELS if any(count in row["at"] for row in rows)]
    lines = ["# What choosing among a sample of the pool costs", "", "## Command", "", "```", command, "```", "",
             "## Setting", "",
             f"- runs: `{sampled_dir}` (every selection among a seeded sample of {config['max_candidates']:,} "
             f"unlabeled images) against `{whole_dir}` (the whole pool); otherwise the same settings",
             f"- {config['dataset']}, a {config['pool_size']:,}-image pool per seed, {config['n0']} initial labels, "
             f"{config['rounds']} rounds × {config['budget']}, learner {config['learner']} on "
             f"{config['representation']}",
             f"- paired seeds: {len(seeds)} ({', '.join(seeds)})", "",
             "## Accuracy difference, sampled − whole pool (points, mean ± 95 % CI, p)", "",
             "| strategy | " + " | ".join(f"{count:,} labels" for count in shown) + " |",
             "| --- | " + " | ".join("---" for _ in shown) + " |"]
    for row in rows:
        cells = []
        for count in shown:
            mean, half, p = row["at"].get(count, (None, None, None))
            cells.append("n/a" if mean is None else
                         f"{mean:+.1f} ± {half:.1f} (p {'n/a' if p is None else f'{p:.2f}'})")
        lines.append(f"| {row['strategy']} | " + " | ".join(cells) + " |")
    lines += ["", "A negative difference is what the sample costs, a positive one what it gains; a CI that spans 0 "
              "is a difference this benchmark cannot detect. p: paired t-test over the seeds, uncorrected for the "
              "number of cells."]
    return lines


@cli_entry
def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    parser = ToolkitArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sampled", required=True, type=Path, help="benchmark run made with --max-candidates")
    parser.add_argument("--whole", required=True, type=Path, help="the same benchmark over the whole pool")
    parser.add_argument("--output", default=None, help="write the report here (markdown)")
    args = parser.parse_args(argv)
    sampled = read_results_folder(args.sampled)
    if sampled["config"].get("max_candidates") is None:
        raise ToolkitError(f"{args.sampled} was not run with --max-candidates: pass it as --whole, or another run")
    seeds, rows = candidate_costs(sampled, read_results_folder(args.whole))
    command = shlex.join(["python", SCRIPT, *(argv if argv is not None else sys.argv[1:])])
    finish_report(report_lines(command, args.sampled, args.whole, sampled, seeds, rows), started, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
