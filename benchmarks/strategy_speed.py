"""Benchmark: what does each budgeted strategy cost, compared with one forward pass over the pool?

Run ``python benchmarks/strategy_speed.py --help``. With a trained 32×32 classifier (``--model``), it makes one
two-output pass (probabilities + embeddings) over a labeled set and a pool of Fashion-MNIST training images
(all ten classes, 28×28 resized to 32×32 RGB; Debian's ``dataset-fashion-mnist``), then times each strategy's
selection of ``--budget`` images on those arrays. Targets (issue 6): every strategy at most 1× the forward
pass, BALD at most (T + 1)× with T Monte-Carlo passes. The ``*_pixels`` variants include computing the
50-component PCA of the pixels of pool ∪ labeled, which they need and the forward pass does not give.

Every time is the median over ``--repeats`` runs after one untimed warm-up run of each step. A benchmark to
read, not a timed test: it exits 0 whatever the verdicts.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from altoolkit.cli import ToolkitArgumentParser, positive_int
from altoolkit.errors import ToolkitError, cli_entry
from benchmarks.reporting import finish_report, median_seconds

SCRIPT = "benchmarks/strategy_speed.py"
STRATEGIES = ("random", "margin", "entropy", "least_confidence", "class_balanced_margin", "class_balanced_random",
              "diverse_margin", "coreset", "badge", "typicality", "bald", "coreset_pixels", "typicality_pixels")
MC_PASSES = 20


def build_parser() -> argparse.ArgumentParser:
    parser = ToolkitArgumentParser(prog=SCRIPT, description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, metavar="FILE.keras",
                        help="trained classifier with 32×32×3 input (make bench-strategies trains one)")
    parser.add_argument("--pool-size", type=positive_int, default=50_000, help="default: 50000")
    parser.add_argument("--labeled-size", type=positive_int, default=500, help="default: 500")
    parser.add_argument("--budget", type=positive_int, default=200, help="default: 200")
    parser.add_argument("--repeats", type=positive_int, default=3, help="timed runs per step, median reported (default: 3)")
    parser.add_argument("--strategies", default=",".join(STRATEGIES),
                        help="comma-separated benchmark strategy names (default: every budgeted strategy)")
    parser.add_argument("--output", type=Path, default=None, metavar="FILE.md", help="also write the report here")
    return parser


def strategy_call(name: str, probabilities, embeddings, labeled_embeddings, labeled_classes, images, head,
                  budget: int):
    """A no-argument function selecting with ``name`` through AL_functions.select, as every entry point does
    (the ``*_pixels`` variants include computing the pixel PCA of labeled ∪ pool, which they need)."""
    import AL_functions as alf
    from altoolkit.strategies import pixel_pca_features
    from Evaluation.Benchmark.config import benchmark_strategy

    strategy, representation = benchmark_strategy(name)

    def features_for(_: str):
        features = pixel_pca_features(images)
        return features[len(labeled_embeddings):], features[:len(labeled_embeddings)]

    round_inputs = alf.SelectionRound(probabilities, embeddings, labeled_embeddings, labeled_classes,
                                      features_for=features_for, head_for=lambda: head,
                                      params={"mc_passes": MC_PASSES})
    return lambda: alf.select(strategy, round_inputs, budget, seed=0, representation=representation).indices


@cli_entry
def main(argv: list[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(arguments)
    strategies = [name.strip() for name in args.strategies.split(",") if name.strip()]
    from Evaluation.Benchmark.config import benchmark_strategy

    for name in strategies:
        benchmark_strategy(name)
    started = time.perf_counter()

    from altoolkit.data import load_dataset
    from altoolkit.model import classifier_head, load_classifier, probabilities_and_embeddings

    model = load_classifier(args.model)
    data = load_dataset("fashion_mnist", image_size=int(model.inputs[0].shape[1]))
    needed = args.labeled_size + args.pool_size
    if needed > len(data.x_train):
        raise ToolkitError(f"--labeled-size + --pool-size = {needed} exceeds Fashion-MNIST's "
                           f"{len(data.x_train)} training images")
    images = data.x_train[:needed]
    forward_median, forward_min, forward_max, outputs = median_seconds(
        lambda: probabilities_and_embeddings(model, images), args.repeats)
    probabilities, embeddings = outputs
    labeled = slice(0, args.labeled_size)
    pool = slice(args.labeled_size, needed)
    labeled_classes = probabilities[labeled].argmax(axis=1)
    head = classifier_head(model)
    rows = []
    for name in strategies:
        call = strategy_call(name, probabilities[pool], embeddings[pool], embeddings[labeled], labeled_classes,
                             images, head, args.budget)
        median, fastest, slowest, chosen = median_seconds(call, args.repeats)
        if len(chosen) != args.budget or len(np.unique(chosen)) != args.budget:
            raise ToolkitError(f"{name} returned {len(chosen)} indices ({len(np.unique(chosen))} distinct), "
                               f"not {args.budget}")
        limit = MC_PASSES + 1 if name == "bald" else 1
        rows.append((name, median, fastest, slowest, median / forward_median, limit))

    lines = ["# Selection time of each strategy vs one forward pass", "", "```",
             shlex.join(["python", SCRIPT, *arguments]), "```", "",
             f"- Model: `{args.model}`; pool {args.pool_size:,} + labeled {args.labeled_size:,} Fashion-MNIST "
             f"training images (32×32 RGB), budget {args.budget}; BALD with T = {MC_PASSES} passes.",
             f"- Machine: {os.cpu_count()} CPUs; 1-minute load average at the end {os.getloadavg()[0]:.2f} "
             "(above ~2 other processes competed for the cores).",
             f"- Forward pass (probabilities + embeddings, labeled + pool): **{forward_median:.2f} s** "
             f"(median of {args.repeats}; {forward_min:.2f}–{forward_max:.2f}).", "",
             "| strategy | selection, median s (min–max) | ÷ forward pass | target | verdict |",
             "| --- | --- | --- | --- | --- |"]
    for name, median, fastest, slowest, ratio, limit in rows:
        verdict = "✅ holds" if ratio <= limit else "❌ misses"
        lines.append(f"| `{name}` | {median:.2f} ({fastest:.2f}–{slowest:.2f}) | {ratio:.2f}× | ≤ {limit}× | "
                     f"{verdict} |")
    finish_report(lines, started, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
