"""Diversity analysis: k-means on the model's embeddings; images far from their centroid, one representative per cluster.

Standalone: ``python Evaluation/Diversity/diversity.py --dataset digits`` (or ``python -m
Evaluation.Diversity.diversity``) writes ``results/diversity/diversity_indices.npy`` (far images, indices relative
to ``--start-idx``), ``diversity_scores.npz``, ``diversity_run.json``, ``summary.txt`` and three plots.
"""

from __future__ import annotations


from altoolkit.analyses import open_analysis_pool, run_diversity
from altoolkit.cli import (DEFAULT_END_IDX, DEFAULT_LABELED_SIZE, DEFAULT_MODEL_PATH, DEFAULT_START_IDX,
                           ToolkitArgumentParser, add_dataset_arguments, add_pool_arguments, percentile_argument,
                           positive_int, seed_argument)
from altoolkit.errors import cli_entry

DEFAULT_OUTPUT_DIR = "results/diversity"


def analyze_diversity(model_path=DEFAULT_MODEL_PATH, start_idx=DEFAULT_START_IDX, end_idx=DEFAULT_END_IDX,
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
