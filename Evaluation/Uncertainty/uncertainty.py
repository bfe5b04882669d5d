"""Uncertainty analysis: which pool images the model is unsure about (entropy or margin in the top X %).

Standalone: ``python Evaluation/Uncertainty/uncertainty.py --dataset digits`` (or ``python -m
Evaluation.Uncertainty.uncertainty``) writes ``results/uncertainty/uncertainty_indices.npy`` (indices relative
to ``--start-idx``), ``uncertainty_scores.npz``, ``uncertainty_run.json``, ``summary.txt`` and two plots.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import AL_functions as alf
from altoolkit.cli import (ANALYSIS_END_IDX, DEFAULT_LABELED_SIZE, DEFAULT_MODEL_PATH, DEFAULT_START_IDX,
                           ToolkitArgumentParser, add_dataset_arguments, add_pool_arguments, percentile_argument)
from altoolkit.errors import cli_entry
from Evaluation.pool_context import (PoolContext, open_analysis_pool, plot_grid_and_histograms, score_summary,
                                     selection_stats, write_analysis)

DEFAULT_OUTPUT_DIR = "results/uncertainty"


def analyze_uncertainty(model_path=DEFAULT_MODEL_PATH, start_idx=DEFAULT_START_IDX, end_idx=ANALYSIS_END_IDX,
                        output_dir=DEFAULT_OUTPUT_DIR, threshold_percentile=50, verbose=True, *,
                        labeled_size=DEFAULT_LABELED_SIZE, dataset=None, dataset_name="cifar10", classes=None,
                        data_path=None, image_size=32, cache_dir=None, plots=True):
    """Return (indices relative to ``start_idx``, scores {entropy, margin, least_confidence}, stats).

    The model's outputs are cached in ``cache_dir`` (default: ``.cache`` beside the output folder).
    """
    context = open_analysis_pool(output_dir, model_path, labeled_size, start_idx, end_idx, cache_dir,
                                 dataset=dataset, dataset_name=dataset_name, classes=classes, data_path=data_path,
                                 image_size=image_size)
    return run_uncertainty(context, output_dir, threshold_percentile, plots=plots, verbose=verbose)



def run_uncertainty(context: PoolContext, output_dir: str | os.PathLike, threshold_percentile: float = 50,
                    plots: bool = True, verbose: bool = True):
    """Uncertain images (top ``threshold_percentile`` % by entropy or margin); returns (indices, scores, stats)."""
    started = time.perf_counter()
    result = alf.select_uncertain(context.pool.probabilities, threshold_percentile)
    scores = {"entropy": result.entropy, "margin": result.margin, "least_confidence": result.least_confidence}
    stats = selection_stats(context, result.indices)
    stats.update(parameters={"threshold_percentile": threshold_percentile},
                 thresholds={"entropy": result.entropy_threshold, "margin": result.margin_threshold},
                 criterion_counts={name: int((result.criterion == name).sum()) for name in ("entropy", "margin", "both")},
                 scores={name: score_summary(values) for name, values in scores.items()},
                 seconds=round(time.perf_counter() - started, 4))
    lines = [f"threshold percentile: {threshold_percentile} (top {threshold_percentile}% by entropy OR margin)",
             f"entropy threshold: {result.entropy_threshold:.4f}   margin threshold: {result.margin_threshold:.4f}",
             "fired by: " + ", ".join(f"{name} only {n}" if name != "both" else f"both {n}"
                                      for name, n in stats["criterion_counts"].items())]
    write_analysis("uncertainty", context, Path(output_dir), result.indices, scores, stats, lines, verbose)
    if plots:
        details = {"H": result.entropy, "M": result.margin}
        plot_grid_and_histograms("uncertainty", context, Path(output_dir), result.indices, result.entropy,
                                  details, {"entropy": result.entropy, "margin": result.margin},
                                  {"entropy": result.entropy_threshold, "margin": result.margin_threshold})
    return result.indices, scores, stats


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = ToolkitArgumentParser(description=__doc__.splitlines()[0])
    add_dataset_arguments(parser)
    add_pool_arguments(parser, DEFAULT_OUTPUT_DIR)
    parser.add_argument("--threshold-percentile", type=percentile_argument, default=50,
                        help="uncertain = top X %% by entropy or by margin (default: 50)")
    args = parser.parse_args(argv)
    analyze_uncertainty(args.model, args.start_idx, args.end_idx, args.output_dir, args.threshold_percentile,
                        not args.quiet, labeled_size=args.labeled_size, dataset_name=args.dataset,
                        classes=args.classes, data_path=args.data_path,
                        image_size=args.image_size, cache_dir=args.cache_dir, plots=not args.no_plots)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
