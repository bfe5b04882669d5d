"""Intersection: the pool images that are uncertain, far from their cluster centroid AND novel.

Standalone, after the three analyses: ``python Evaluation/Image_selec/image_selection.py`` (or ``python -m
Evaluation.Image_selec.image_selection``) reads ``results/{uncertainty,diversity,novelty}/*_indices.npy`` (and
the run files beside them, which say which model, data and pool they came from) and writes
``results/intersection/intersection_indices.npy``, ``summary.txt``, ``images/`` and
``intersection_visualization.png``. An empty intersection writes valid empty files and says how to widen it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from altoolkit.analyses import ANALYSES, load_analysis, open_analysis_pool, run_intersection
from altoolkit.cli import (DEFAULT_END_IDX, DEFAULT_LABELED_SIZE, DEFAULT_MODEL_PATH, DEFAULT_START_IDX,
                           ToolkitArgumentParser)
from altoolkit.errors import ToolkitError, cli_entry
from altoolkit.limits import check_image_size
from altoolkit.outputs import CACHE_DIRNAME

DEFAULT_RESULTS_DIR = "results"
DEFAULT_OUTPUT_DIR = "results/intersection"
MUST_AGREE = ("start_idx", "end_idx", "labeled_size", "dataset_fingerprint", "model_sha256")


def analyze_intersection(uncertainty_indices, diversity_indices, novelty_indices, start_idx=DEFAULT_START_IDX,
                         end_idx=DEFAULT_END_IDX, output_dir=DEFAULT_OUTPUT_DIR, save_images=True,
                         create_visualization=True, verbose=True, *, model_path=DEFAULT_MODEL_PATH,
                         labeled_size=DEFAULT_LABELED_SIZE, dataset=None, dataset_name="cifar10", classes=None,
                         data_path=None, image_size=32, cache_dir=None, scores=None):
    """Return (intersection indices relative to ``start_idx``, stats with count, percentage, distribution).

    ``scores`` (optional) maps each analysis name to its score arrays, so the summary can list each
    image's entropy, centroid distance and novelty. The model's outputs are cached in ``cache_dir`` (default:
    ``.cache`` beside the output folder).
    """
    context = open_analysis_pool(output_dir, model_path, labeled_size, start_idx, end_idx, cache_dir,
                                 dataset=dataset, dataset_name=dataset_name, classes=classes, data_path=data_path,
                                 image_size=image_size)
    index_sets = {"uncertainty": uncertainty_indices, "diversity": diversity_indices, "novelty": novelty_indices}
    return run_intersection(context, index_sets, output_dir, scores, save_images, create_visualization, verbose)


RUN_FIELDS = {"model_path": str, "model_sha256": str, "dataset_fingerprint": str, "start_idx": int, "end_idx": int,
              "labeled_size": int}
DATA_OPTION_FIELDS = {"dataset_name": (str,), "classes": (list, type(None)), "data_path": (str, type(None)),
                      "image_size": (int,)}


def run_file_problem(run) -> str | None:
    """What a ``*_run.json`` lacks or has of the wrong type for the intersection to use it, or None."""
    if not isinstance(run, dict):
        return "is not a JSON object"
    absent = [key for key in RUN_FIELDS if key not in run]
    if absent:
        return f"lacks {', '.join(absent)}"
    wrong = [key for key, kind in RUN_FIELDS.items() if not isinstance(run[key], kind) or isinstance(run[key], bool)]
    options = run.get("data_options") or {}
    if not isinstance(options, dict):
        wrong.append("data_options")
    else:
        wrong += [f"data_options.{key}" for key, kinds in DATA_OPTION_FIELDS.items()
                  if key in options and (not isinstance(options[key], kinds) or isinstance(options[key], bool))]
    return f"has {', '.join(wrong)} of the wrong type" if wrong else None


def intersection_from_results(results_dir=DEFAULT_RESULTS_DIR, output_dir=DEFAULT_OUTPUT_DIR, save_images=True,
                              create_visualization=True, verbose=True, cache_dir=None):
    """Intersect the three analyses saved under ``results_dir``; they must share model, data and pool.

    The model's outputs are read from (or cached in) ``cache_dir``, by default ``<results_dir>/.cache``, where
    the analyses cached them.
    """
    loaded = {name: load_analysis(Path(results_dir) / name, name) for name in ANALYSES}
    runs = {name: run for name, (_, _, run) in loaded.items()}
    for name, run in runs.items():
        problem = run_file_problem(run)
        if problem:
            raise ToolkitError(f"{Path(results_dir) / name / f'{name}_run.json'} {problem}: re-run the {name} "
                               "analysis")
    for key in MUST_AGREE:
        values = {name: run.get(key) for name, run in runs.items()}
        if len(set(map(str, values.values()))) > 1:
            raise ToolkitError(f"the three analyses in {results_dir} disagree on {key} ({values}): "
                               "re-run them with the same model, data and --start-idx/--end-idx")
    first = runs["uncertainty"]
    for name, (_, scores, _) in loaded.items():
        short = [key for key, values in scores.items()
                 if key != "representatives" and np.shape(values) != (first["end_idx"] - first["start_idx"],)]
        if short:
            raise ToolkitError(f"the {name} scores in {Path(results_dir) / name} ({', '.join(short)}) do not have "
                               "one value per pool image: re-run the analysis")
    options = first.get("data_options") or {}
    check_image_size(options.get("image_size", 32), f"the image size recorded in {Path(results_dir) / 'uncertainty'}")
    classes = options.get("classes")
    # Recorded classes are already resolved: None means every class, not the dataset's default subset.
    cache_dir = cache_dir if cache_dir is not None else Path(results_dir) / CACHE_DIRNAME
    context = open_analysis_pool(output_dir, first["model_path"], first["labeled_size"], first["start_idx"],
                                 first["end_idx"], cache_dir,
                                 dataset_name=options.get("dataset_name", first.get("dataset")),
                                 classes=classes if classes is not None else "all", data_path=options.get("data_path"),
                                 image_size=options.get("image_size", 32))
    if context.dataset.fingerprint != first.get("dataset_fingerprint"):
        raise ToolkitError(f"the data loaded now (fingerprint {context.dataset.fingerprint}) is not the data the "
                           f"analyses in {results_dir} used ({first.get('dataset_fingerprint')}): "
                           "re-run the analyses on the current data")
    if context.cache.model_digest != first.get("model_sha256"):
        raise ToolkitError(f"{first['model_path']} changed since the analyses in {results_dir} ran "
                           "(its SHA-256 differs): re-run them with the current model")
    indices, scores = ({name: loaded[name][0] for name in ANALYSES}, {name: loaded[name][1] for name in ANALYSES})
    return run_intersection(context, indices, output_dir, scores, save_images, create_visualization, verbose)


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = ToolkitArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results-dir", default=DEFAULT_RESULTS_DIR,
                        help="folder holding uncertainty/, diversity/ and novelty/ (default: results)")
    parser.add_argument("--output-dir", default=DEFAULT_OUTPUT_DIR, help=f"default: {DEFAULT_OUTPUT_DIR}")
    parser.add_argument("--cache-dir", default=None,
                        help="model-output cache (default: <results-dir>/.cache, where the analyses cached theirs)")
    parser.add_argument("--no-images", action="store_true", help="do not save the selected images as PNG")
    parser.add_argument("--no-plots", action="store_true", help="skip the figures")
    parser.add_argument("--quiet", action="store_true", help="print nothing but warnings and errors")
    args = parser.parse_args(argv)
    intersection_from_results(args.results_dir, args.output_dir, not args.no_images, not args.no_plots,
                              not args.quiet, args.cache_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
