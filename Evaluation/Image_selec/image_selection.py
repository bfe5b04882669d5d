"""Intersection: the pool images that are uncertain, far from their cluster centroid AND novel.

Standalone, after the three analyses: ``python Evaluation/Image_selec/image_selection.py`` (or ``python -m
Evaluation.Image_selec.image_selection``) reads ``results/{uncertainty,diversity,novelty}/*_indices.npy`` (and
the run files beside them, which say which model, data and pool they came from) and writes
``results/intersection/intersection_indices.npy``, ``summary.txt``, ``images/`` and
``intersection_visualization.png``. An empty intersection writes valid empty files and says how to widen it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

import AL_functions as alf
from altoolkit.cli import (ANALYSIS_END_IDX, DEFAULT_LABELED_SIZE, DEFAULT_MODEL_PATH, DEFAULT_START_IDX,
                           ToolkitArgumentParser)
from altoolkit.errors import ToolkitError, cli_entry
from altoolkit.files import save_npy, write_json, write_text
from altoolkit.limits import check_image_size
from altoolkit.outputs import CACHE_DIRNAME
from altoolkit.plots import plot_image_grid, plot_intersection_overview
from Evaluation.pool_context import (ANALYSES, SET_LABELS, PoolContext, image_titles, load_analysis, open_analysis_pool,
                                     plot_selected_grid, save_selected_images, selection_stats)

DEFAULT_RESULTS_DIR = "results"
DEFAULT_OUTPUT_DIR = "results/intersection"
MUST_AGREE = ("start_idx", "end_idx", "labeled_size", "dataset_fingerprint", "model_sha256")


def analyze_intersection(uncertainty_indices, diversity_indices, novelty_indices, start_idx=DEFAULT_START_IDX,
                         end_idx=ANALYSIS_END_IDX, output_dir=DEFAULT_OUTPUT_DIR, save_images=True,
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



def run_intersection(context: PoolContext, index_sets: dict[str, np.ndarray], output_dir: str | os.PathLike,
                     scores: dict[str, dict[str, np.ndarray]] | None = None, save_images: bool = True,
                     create_visualization: bool = True, verbose: bool = True):
    """Images in all three sets; writes indices, a per-image summary, the images and a Venn-style figure."""
    output_dir = Path(output_dir)
    missing = [name for name in ANALYSES if name not in index_sets]
    if missing:
        raise ToolkitError(f"the intersection needs all three analyses; missing: {', '.join(missing)}")
    for name, indices in index_sets.items():
        indices = np.asarray(indices)
        if indices.size and (indices.min() < 0 or indices.max() >= context.pool_size):
            raise ToolkitError(f"{name} indices fall outside the pool of {context.pool_size} images: "
                               "re-run the analyses with the same --start-idx/--end-idx")
    intersection = alf.intersect_indices(*(index_sets[name] for name in ANALYSES))
    stats = selection_stats(context, intersection)
    stats["sets"] = {name: int(len(np.unique(index_sets[name]))) for name in ANALYSES}
    stats["regions"] = venn_regions(context.pool_size, [index_sets[name] for name in ANALYSES])
    save_npy(output_dir / "intersection_indices.npy", intersection)
    write_json(output_dir / "intersection_run.json", {**context.describe(), "stats": stats,
                                                     "absolute_indices": intersection + context.start_idx})
    write_text(output_dir / "summary.txt", _intersection_summary(context, intersection, stats, scores or {}))
    if save_images:
        save_selected_images(context, intersection, output_dir / "images")
    if create_visualization:
        plot_intersection_overview(
            stats["regions"], tuple(SET_LABELS[name] for name in ANALYSES), stats["distribution"],
            output_dir / "intersection_visualization.png",
            f"{context.dataset.name}: pool {context.start_idx}..{context.end_idx - 1} "
            f"({context.pool_size} images), {stats['count']} meet all three criteria")
        if len(intersection):
            plot_selected_grid(context, intersection, scores or {}, output_dir / "intersection_samples.png")
    if verbose:
        if len(intersection):
            print(f"intersection: {stats['count']} images ({stats['percentage']}% of the pool) meet all three "
                  f"criteria; per class {stats['distribution']} -> {output_dir}")
        else:
            print(f"intersection: no image meets all three criteria (sets of {stats['sets']}); wrote empty "
                  f"results to {output_dir}. Lower the thresholds (threshold_percentile up, far/novelty "
                  "percentiles down) or widen the pool.")
    return intersection, stats


def run_selection(context: PoolContext, output_dir: str | os.PathLike, strategy: str, budget: int, *,
                  seed: int = 0, representation: str = "model", save_images: bool = True, plots: bool = True,
                  verbose: bool = True, learner: str = "mobilenet", settings=None):
    """The ``budget`` pool images ``strategy`` picks (any of ``AL_functions.STRATEGIES``, or "recommended",
    which picks a strategy and representation from the labeled set's size), in the order chosen.

    Writes ``selection_indices.npy`` (relative to the pool start), ``selection_run.json``, ``summary.txt``,
    the images and a grid; returns (indices, stats).
    """
    from altoolkit.file_images import concatenated_images, image_range
    from altoolkit.model import classifier_head
    from altoolkit.label_free import RepresentationSettings, label_free_features

    output_dir = Path(output_dir)
    started = time.perf_counter()
    context.compute_outputs()
    pool, labeled = context.pool, context.labeled

    def features_for(name: str) -> tuple[np.ndarray, np.ndarray]:
        x_train = context.dataset.x_train
        images = concatenated_images([image_range(x_train, context.start_idx, context.end_idx),
                                      image_range(x_train, 0, context.labeled_size)])
        features = label_free_features(name, images, seed=seed, settings=settings or RepresentationSettings(),
                                       cache_dir=context.cache.cache_dir)
        return features[:context.pool_size], features[context.pool_size:]

    selection = alf.select(strategy, alf.SelectionRound(
        pool.probabilities, pool.embeddings, labeled.embeddings, context.dataset.y_train[:context.labeled_size],
        features_for=features_for, head_for=lambda: classifier_head(context.cache.model), learner=learner),
        budget, seed=seed, representation=representation)
    requested, indices = strategy, selection.indices
    strategy, representation = selection.strategy, selection.representation
    seconds = time.perf_counter() - started
    stats = {**selection_stats(context, indices), "strategy": requested, "ran": strategy, "budget": budget,
             "representation": representation, "seed": seed, "seconds": round(seconds, 3),
             "model_warning": context.model_warning()}
    save_npy(output_dir / "selection_indices.npy", indices)
    write_json(output_dir / "selection_run.json", {**context.describe(), "stats": stats,
                                                  "absolute_indices": indices + context.start_idx})
    how = strategy if requested == strategy else f"{requested} ({strategy} for {context.labeled_size} labels)"
    lines = [f"budgeted selection: {how} over {representation} features, budget {budget}, seed {seed}",
             f"model: {context.model_path} (sha256 {context.cache.model_digest})",
             f"pool = training images {context.start_idx}..{context.end_idx - 1} ({context.pool_size}); labeled = "
             f"first {context.labeled_size}",
             f"selected: {stats['count']} images in {seconds:.2f} s (after the forward pass)",
             f"per class ({stats['distribution_source']}): {stats['distribution']}",
             "absolute indices, in the order chosen: " + ", ".join(str(i) for i in indices + context.start_idx)]
    if stats["model_warning"]:
        lines.insert(1, f"warning: {stats['model_warning']}")
    write_text(output_dir / "summary.txt", "\n".join(lines) + "\n")
    if save_images:
        save_selected_images(context, indices, output_dir / "images")
    if plots and len(indices):
        shown = indices[:40]
        plot_image_grid(context.dataset.x_train[context.start_idx + shown], image_titles(context, shown, {}),
                        np.ones(len(shown), dtype=bool), output_dir / "selection_samples.png",
                        f"{how}: the first {len(shown)} of {len(indices)} selected images")
    if verbose:
        print(f"selection: {how} picked {stats['count']} of {context.pool_size} pool images; per class "
              f"{stats['distribution']} -> {output_dir}")
    return indices, stats


def venn_regions(pool_size: int, index_sets: list[np.ndarray]) -> dict[str, int]:
    """Counts of images per membership pattern over three sets, e.g. ``"101"`` = in sets 1 and 3 only."""
    membership = np.zeros((pool_size, len(index_sets)), dtype=bool)
    for column, indices in enumerate(index_sets):
        membership[np.asarray(indices, dtype=np.int64), column] = True
    codes = membership @ (1 << np.arange(len(index_sets))[::-1])
    counts = np.bincount(codes, minlength=1 << len(index_sets))
    return {format(code, f"0{len(index_sets)}b"): int(count) for code, count in enumerate(counts)}


def _intersection_summary(context: PoolContext, intersection: np.ndarray, stats: dict,
                          scores: dict[str, dict[str, np.ndarray]]) -> str:
    names = context.dataset.class_names
    lines = ["intersection of uncertainty, diversity and novelty",
             f"data: {context.dataset.name}; pool = training images {context.start_idx}..{context.end_idx - 1} "
             f"({context.pool_size})",
             "set sizes: " + ", ".join(f"{SET_LABELS[name]} {count}" for name, count in stats["sets"].items()),
             f"in all three: {stats['count']} images ({stats['percentage']}% of the pool)",
             f"per class ({stats['distribution_source']}): {stats['distribution']}", ""]
    if not len(intersection):
        lines.append("No image met all three criteria. Lower the thresholds (a larger threshold_percentile, "
                     "smaller far/novelty percentiles) or analyse a larger pool.")
        return "\n".join(lines) + "\n"
    lines.append("absolute  relative  class        criteria")
    for index in intersection:
        lines.append(f"{context.start_idx + index:8d}  {index:8d}  {names[context.oracle_labels[index]]:<12} "
                     + _criteria_text(scores, int(index)))
    return "\n".join(lines) + "\n"


def _criteria_text(scores: dict[str, dict[str, np.ndarray]], index: int) -> str:
    parts = ["uncertain", "far", "novel"]
    uncertainty, diversity, novelty = (scores.get(name, {}) for name in ANALYSES)
    if "entropy" in uncertainty:
        parts[0] = f"uncertain (entropy {uncertainty['entropy'][index]:.3f}, margin {uncertainty['margin'][index]:.3f})"
    if "distance" in diversity:
        parts[1] = (f"far (distance {diversity['distance'][index]:.3f} to centroid of cluster "
                    f"{int(diversity['cluster'][index])})")
    if "novelty" in novelty:
        parts[2] = f"novel (k-NN distance {novelty['novelty'][index]:.3f})"
    return "; ".join(parts)


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
