"""Diversity analysis: k-means on the model's embeddings; images far from their centroid, one representative per cluster.

Standalone: ``python Evaluation/Diversity/diversity.py --dataset digits`` (or ``python -m
Evaluation.Diversity.diversity``) writes ``results/diversity/diversity_indices.npy`` (far images, indices relative
to ``--start-idx``), ``diversity_scores.npz``, ``diversity_run.json``, ``summary.txt`` and three plots.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

import AL_functions as alf
from altoolkit.cli import (ANALYSIS_END_IDX, DEFAULT_LABELED_SIZE, DEFAULT_MODEL_PATH, DEFAULT_START_IDX,
                           ToolkitArgumentParser, add_dataset_arguments, add_pool_arguments, percentile_argument,
                           positive_int, seed_argument)
from altoolkit.errors import cli_entry
from altoolkit.plots import plot_cluster_projection
from Evaluation.pool_context import (PoolContext, open_analysis_pool, plot_grid_and_histograms, projection,
                                     score_summary, selection_stats, write_analysis)

DEFAULT_OUTPUT_DIR = "results/diversity"


def analyze_diversity(model_path=DEFAULT_MODEL_PATH, start_idx=DEFAULT_START_IDX, end_idx=ANALYSIS_END_IDX,
                      output_dir=DEFAULT_OUTPUT_DIR, n_clusters=20, verbose=True, *, far_percentile=75,
                      random_state=0, labeled_size=DEFAULT_LABELED_SIZE, dataset=None, dataset_name="cifar10",
                      classes=None, data_path=None, image_size=32, cache_dir=None, plots=True):
    """Return (far-image indices relative to ``start_idx``, scores {distance, cluster, representatives}, stats).

    The model's outputs are cached in ``cache_dir`` (default: ``.cache`` beside the output folder).
    """
    context = open_analysis_pool(output_dir, model_path, labeled_size, start_idx, end_idx, cache_dir,
                                 dataset=dataset, dataset_name=dataset_name, classes=classes, data_path=data_path,
                                 image_size=image_size)
    return run_diversity(context, output_dir, n_clusters, far_percentile, random_state, plots=plots, verbose=verbose)



def run_diversity(context: PoolContext, output_dir: str | os.PathLike, n_clusters: int = 20,
                  far_percentile: float = 75, random_state: int = 0, plots: bool = True, verbose: bool = True):
    """K-means on pool embeddings: far-from-centroid images and one representative per cluster."""
    alf.check_n_clusters(n_clusters, context.pool_size)
    started = time.perf_counter()
    result = alf.analyze_diversity_embeddings(context.pool.embeddings, n_clusters, far_percentile, random_state)
    scores = {"distance": result.distances, "cluster": result.cluster_labels,
              "representatives": result.representatives}
    stats = selection_stats(context, result.indices)
    cluster_sizes = np.bincount(result.cluster_labels, minlength=n_clusters)
    stats.update(parameters={"n_clusters": n_clusters, "far_percentile": far_percentile,
                             "random_state": random_state},
                 thresholds={"distance": result.threshold}, scores={"distance": score_summary(result.distances)},
                 cluster_sizes=[int(size) for size in cluster_sizes],
                 representatives=[int(i) + context.start_idx for i in result.representatives],
                 seconds=round(time.perf_counter() - started, 4))
    lines = [f"k-means: {n_clusters} clusters (random_state {random_state}); sizes {stats['cluster_sizes']}",
             f"far = distance to own centroid above the {far_percentile}th percentile ({result.threshold:.4f})",
             f"cluster representatives (absolute indices): {stats['representatives']}"]
    output_dir = Path(output_dir)
    write_analysis("diversity", context, output_dir, result.indices, scores, stats, lines, verbose)
    if plots:
        plot_grid_and_histograms("diversity", context, output_dir, result.indices, result.distances,
                                  {"d": result.distances, "c": result.cluster_labels},
                                  {"distance to centroid": result.distances},
                                  {"distance to centroid": result.threshold})
        points, explained, shown = projection(context.pool.embeddings, random_state)
        keep = np.zeros(context.pool_size, dtype=bool)
        keep[shown] = True
        keep[result.representatives] = True
        position = np.cumsum(keep) - 1
        far_shown = result.indices[keep[result.indices]]
        plot_cluster_projection(points[keep], result.cluster_labels[keep], position[result.representatives],
                                position[far_shown], output_dir / "diversity_clusters.png",
                                f"Diversity: pool embeddings (PCA), {n_clusters} k-means clusters"
                                + (f" ({keep.sum()} of {context.pool_size} points shown)"
                                   if keep.sum() < context.pool_size else ""), explained)
    return result.indices, scores, stats


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = ToolkitArgumentParser(description=__doc__.splitlines()[0])
    add_dataset_arguments(parser)
    add_pool_arguments(parser, DEFAULT_OUTPUT_DIR)
    parser.add_argument("--n-clusters", type=positive_int, default=20, help="k-means clusters (default: 20)")
    parser.add_argument("--far-percentile", type=percentile_argument, default=75,
                        help="far = distance to own centroid above this percentile (default: 75)")
    parser.add_argument("--random-state", type=seed_argument, default=0, help="k-means seed (default: 0)")
    args = parser.parse_args(argv)
    analyze_diversity(args.model, args.start_idx, args.end_idx, args.output_dir, args.n_clusters, not args.quiet,
                      far_percentile=args.far_percentile, random_state=args.random_state,
                      labeled_size=args.labeled_size, dataset_name=args.dataset,
                      classes=args.classes, data_path=args.data_path,
                      image_size=args.image_size, cache_dir=args.cache_dir, plots=not args.no_plots)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
