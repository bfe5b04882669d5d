"""Novelty analysis: pool images far from the labeled set (mean distance to the k nearest labeled embeddings).

Standalone: ``python Evaluation/Novelty/novelty.py --dataset digits`` (or ``python -m Evaluation.Novelty.novelty``)
writes ``results/novelty/novelty_indices.npy`` (indices relative to ``--start-idx``), ``novelty_scores.npz``,
``novelty_run.json``, ``summary.txt`` and two plots.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import AL_functions as alf
from altoolkit.cli import (ANALYSIS_END_IDX, DEFAULT_LABELED_SIZE, DEFAULT_MODEL_PATH, DEFAULT_START_IDX,
                           ToolkitArgumentParser, add_dataset_arguments, add_pool_arguments, percentile_argument,
                           positive_int)
from altoolkit.errors import cli_entry
from Evaluation.pool_context import (PoolContext, open_analysis_pool, plot_grid_and_histograms, score_summary,
                                     selection_stats, write_analysis)

DEFAULT_OUTPUT_DIR = "results/novelty"


def analyze_novelty(model_path=DEFAULT_MODEL_PATH, labeled_size=DEFAULT_LABELED_SIZE, start_idx=DEFAULT_START_IDX,
                    end_idx=ANALYSIS_END_IDX, k_neighbors=5, output_dir=DEFAULT_OUTPUT_DIR, verbose=True, *,
                    novelty_percentile=75, dataset=None, dataset_name="cifar10", classes=None, data_path=None,
                    image_size=32, cache_dir=None, plots=True):
    """Return (novel-image indices relative to ``start_idx``, scores {novelty}, stats).

    The model's outputs are cached in ``cache_dir`` (default: ``.cache`` beside the output folder).
    """
    context = open_analysis_pool(output_dir, model_path, labeled_size, start_idx, end_idx, cache_dir,
                                 dataset=dataset, dataset_name=dataset_name, classes=classes, data_path=data_path,
                                 image_size=image_size)
    return run_novelty(context, output_dir, k_neighbors, novelty_percentile, plots=plots, verbose=verbose)



def run_novelty(context: PoolContext, output_dir: str | os.PathLike, k_neighbors: int = 5,
                novelty_percentile: float = 75, plots: bool = True, verbose: bool = True):
    """Images whose mean distance to the k nearest labeled embeddings is above the percentile threshold."""
    alf.check_k_neighbors(k_neighbors, context.labeled_size)
    started = time.perf_counter()
    result = alf.analyze_novelty_embeddings(context.pool.embeddings, context.labeled.embeddings, k_neighbors,
                                            novelty_percentile)
    scores = {"novelty": result.scores}
    stats = selection_stats(context, result.indices)
    stats.update(parameters={"k_neighbors": k_neighbors, "novelty_percentile": novelty_percentile},
                 thresholds={"novelty": result.threshold}, scores={"novelty": score_summary(result.scores)},
                 seconds=round(time.perf_counter() - started, 4))
    lines = [f"novelty = mean distance to the {k_neighbors} nearest of the {context.labeled_size} labeled "
             f"embeddings; novel above the {novelty_percentile}th percentile ({result.threshold:.4f})"]
    write_analysis("novelty", context, Path(output_dir), result.indices, scores, stats, lines, verbose)
    if plots:
        plot_grid_and_histograms("novelty", context, Path(output_dir), result.indices, result.scores,
                                  {"nov": result.scores}, {"novelty": result.scores},
                                  {"novelty": result.threshold})
    return result.indices, scores, stats


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = ToolkitArgumentParser(description=__doc__.splitlines()[0])
    add_dataset_arguments(parser)
    add_pool_arguments(parser, DEFAULT_OUTPUT_DIR)
    parser.add_argument("--k-neighbors", type=positive_int, default=5,
                        help="labeled neighbours averaged (default: 5)")
    parser.add_argument("--novelty-percentile", type=percentile_argument, default=75,
                        help="novel = score above this percentile (default: 75)")
    args = parser.parse_args(argv)
    analyze_novelty(args.model, args.labeled_size, args.start_idx, args.end_idx, args.k_neighbors, args.output_dir,
                    not args.quiet, novelty_percentile=args.novelty_percentile, dataset_name=args.dataset,
                    classes=args.classes, data_path=args.data_path,
                    image_size=args.image_size, cache_dir=args.cache_dir, plots=not args.no_plots)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
