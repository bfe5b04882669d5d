"""Benchmark: one labeling round of a fast pipeline on a large pool, against one MobileNetV3 forward pass over it.

Run ``python benchmarks/pipeline_speed.py --help``. On a pool of Fashion-MNIST training images (32×32 RGB) with a
cached label-free representation, one round is: fit the fast learner on the labels so far, score the whole pool,
select ``--budget`` images with each strategy named. The reference is one forward pass of MobileNetV3Small
(probabilities and embeddings, as the design's analyses need) over the same pool; its weights do not change its
cost, so a freshly built model is used. Every time is the median of ``--repeats`` runs after a warm-up. The
target (issue 15): a round at most half the forward pass. A benchmark to read, not a timed test.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time

import numpy as np

from altoolkit.cli import ToolkitArgumentParser, positive_int
from altoolkit.errors import ToolkitError, cli_entry
from benchmarks.reporting import finish_report, median_seconds

SCRIPT = "benchmarks/pipeline_speed.py"
TARGET_RATIO = 0.5


def build_parser() -> argparse.ArgumentParser:
    parser = ToolkitArgumentParser(prog=SCRIPT, description=__doc__.splitlines()[0])
    parser.add_argument("--pool-size", type=positive_int, default=50_000, help="default: 50000")
    parser.add_argument("--labeled-size", type=positive_int, default=500, help="labels so far (default: 500)")
    parser.add_argument("--budget", type=positive_int, default=100, help="default: 100")
    parser.add_argument("--learner", default="linear", choices=("linear", "label_spreading"))
    parser.add_argument("--representation", default="patches", choices=("patches", "pixels"))
    parser.add_argument("--strategies", default="margin,typicality,recommended",
                        help="comma-separated (default: margin,typicality,recommended)")
    parser.add_argument("--repeats", type=positive_int, default=3, help="default: 3")
    parser.add_argument("--cache-dir", default="results/.cache", help="representation cache (default: results/.cache)")
    parser.add_argument("--output", default=None, metavar="FILE.md", help="also write the report here")
    return parser


@cli_entry
def main(argv: list[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(arguments)
    import AL_functions as alf
    from altoolkit.data import load_dataset
    from altoolkit.label_free import label_free_features
    from altoolkit.model import build_model, probabilities_and_embeddings
    from altoolkit.pipelines import fit_fast_learner

    started = time.perf_counter()
    data = load_dataset("fashion_mnist", classes=None)
    needed = args.pool_size + args.labeled_size
    if needed > len(data.x_train):
        raise ToolkitError(f"--pool-size + --labeled-size = {needed} exceeds Fashion-MNIST's {len(data.x_train)} "
                           "training images")
    images, labels = data.x_train[:needed], data.y_train[:needed]
    began = time.perf_counter()
    features = np.asarray(label_free_features(args.representation, images, cache_dir=args.cache_dir))
    representation_seconds = time.perf_counter() - began
    model = build_model(data.num_classes, input_shape=data.image_shape, seed=0)
    forward, _, _, _ = median_seconds(lambda: probabilities_and_embeddings(model, images[args.labeled_size:]),
                                args.repeats)
    labeled, pool = np.arange(args.labeled_size), np.arange(args.labeled_size, needed)
    rows = []
    for name in [name.strip() for name in args.strategies.split(",") if name.strip()]:
        def one_round(name=name):
            learner = fit_fast_learner(args.learner, features, labels, labeled, pool, data.num_classes)
            probabilities = learner.predict_proba(features[pool])
            round_inputs = alf.SelectionRound(probabilities, features[pool], features[labeled], labels[labeled],
                                              learner=args.learner)
            return alf.select(name, round_inputs, args.budget).indices

        seconds, _, _, chosen = median_seconds(one_round, args.repeats)
        if len(chosen) != args.budget:
            raise ToolkitError(f"{name} returned {len(chosen)} images, not {args.budget}")
        rows.append((name, seconds, seconds / forward))
    lines = ["# One labeling round of a fast pipeline vs one MobileNetV3 forward pass", "", "```",
             shlex.join(["python", SCRIPT, *arguments]), "```", "",
             f"- Pool: {args.pool_size:,} Fashion-MNIST training images (32×32 RGB), {args.labeled_size} labeled; "
             f"learner `{args.learner}` on the cached `{args.representation}` representation "
             f"({features.shape[1]:,} features; computing it took {representation_seconds:.0f} s, once per pool, "
             "or less when read back from the cache).",
             f"- Machine: {os.cpu_count()} CPUs; 1-minute load average at the end {os.getloadavg()[0]:.2f}.",
             f"- MobileNetV3Small forward pass over the pool (probabilities + embeddings): **{forward:.2f} s** "
             f"(median of {args.repeats}).", "",
             "| strategy | round: fit, score the pool, select | ÷ forward pass | target | verdict |",
             "| --- | --- | --- | --- | --- |"]
    for name, seconds, ratio in rows:
        verdict = "✅ holds" if ratio <= TARGET_RATIO else "❌ misses"
        lines.append(f"| `{name}` | {seconds:.2f} s | {ratio:.2f}× | ≤ {TARGET_RATIO}× | {verdict} |")
    finish_report(lines, started, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
