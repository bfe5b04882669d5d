"""Uncertainty analysis: which pool images the model is unsure about (entropy or margin in the top X %).

Standalone: ``python Evaluation/Uncertainty/uncertainty.py --dataset digits`` (or ``python -m
Evaluation.Uncertainty.uncertainty``) writes ``results/uncertainty/uncertainty_indices.npy`` (indices relative
to ``--start-idx``), ``uncertainty_scores.npz``, ``uncertainty_run.json``, ``summary.txt`` and two plots.
"""

from __future__ import annotations


from altoolkit.analyses import open_analysis_pool, run_uncertainty
from altoolkit.cli import (DEFAULT_END_IDX, DEFAULT_LABELED_SIZE, DEFAULT_MODEL_PATH, DEFAULT_START_IDX,
                           ToolkitArgumentParser, add_dataset_arguments, add_pool_arguments, percentile_argument)
from altoolkit.errors import cli_entry

DEFAULT_OUTPUT_DIR = "results/uncertainty"


def analyze_uncertainty(model_path=DEFAULT_MODEL_PATH, start_idx=DEFAULT_START_IDX, end_idx=DEFAULT_END_IDX,
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
