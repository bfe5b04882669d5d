"""The whole active-learning cycle: analyses → intersection → class-balance check → retraining → AL vs random.

    analyzer = ActiveLearningAnalyzer(model_path="models/500_train/best_model.keras", labeled_size=500,
                                      start_idx=501, end_idx=4000, target_per_class=50)
    analyzer.run_all(uncertainty_params={"threshold_percentile": 50}, diversity_params={"n_clusters": 20},
                     novelty_params={"k_neighbors": 5})
    intersection, stats = analyzer.find_intersection(save_images=True, create_visualization=True)
    print(analyzer.get_summary())

or, with a labeling budget instead of the intersection, ``analyzer.select(200)`` (strategy "recommended").

When every class target is met, ``find_intersection`` retrains with the labeled set plus the selected images and,
as the control, with the same number of images drawn at random from the same pool (same seed, same recipe),
then compares both with the base model on the test split; without targets nothing is retrained.
``python AL_cycle.py --help`` runs the same from the command line. The model's outputs are cached in
``<output_dir>/.cache`` unless ``cache_dir`` says otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

import AL_functions as alf
from altoolkit.balance import ClassBalance, normalise_targets, parse_targets, recommendations
from altoolkit.cli import (DEFAULT_LABELED_SIZE, DEFAULT_MODEL_PATH, DEFAULT_START_IDX, ToolkitArgumentParser,
                           add_backbone_arguments, add_dataset_arguments, add_logging_arguments, configure_logging,
                           dataset_from_args, keras_verbosity, non_negative_int, percentile_argument, positive_int,
                           seed_argument)
from altoolkit.errors import ToolkitError, cli_entry
from altoolkit.files import check_writable_directory, remove_abandoned_temporaries, write_json
from altoolkit.model import is_toolkit_classifier
from altoolkit.outputs import CACHE_DIRNAME
from altoolkit.pipelines import LEARNER_NAMES
from altoolkit.progress import logger
from altoolkit.training import (METRICS_FILENAME, MODEL_FILENAME, TrainingRecipe, architecture_description,
                                default_run_dir, evaluate_model, extended_run_dir, finished_run_metrics,
                                library_versions, recipe_for, train_model)
from Evaluation.cold_start import (FIRST, INITIAL_CHOICES, check_base_model_path, check_initial_matches,
                                  train_base_model)
from Evaluation.cycle_report import write_cycle_report
from Evaluation.Diversity.diversity import run_diversity
from Evaluation.Image_selec.image_selection import run_intersection, run_selection
from Evaluation.Novelty.novelty import run_novelty
from Evaluation.pool_context import ANALYSES, PoolContext, open_pool
from Evaluation.Uncertainty.uncertainty import run_uncertainty

CYCLE_END_IDX = 4000
"""End (exclusive) of the cycle's default pool, images 501–3999: the design's cycle example. The standalone
analyses default to a smaller pool (``altoolkit.cli.ANALYSIS_END_IDX``)."""
DEFAULT_OUTPUT_DIR = "results"
INTERSECTION_DEFAULTS = {"threshold_percentile": 50, "n_clusters": 20, "k_neighbors": 5}
"""The command line's analysis options; they tune the intersection, so they make no sense with --budget."""
NO_TARGETS_ADVICE = ("retraining needs class targets: --target-per-class N or class=N,class=N (target_per_class "
                     "in Python); 0 retrains with whatever is selected")


@dataclass(frozen=True)
class AnalysisResult:
    """One analysis of the cycle: the pool images it selected (indices relative to ``start_idx``), its per-image
    scores, its statistics (count, per-class distribution, thresholds) and the parameters it ran with."""

    indices: np.ndarray
    scores: dict[str, np.ndarray]
    stats: dict
    parameters: dict


class ActiveLearningAnalyzer:
    """Runs the three analyses on one forward pass, intersects them, checks class targets, retrains and compares.

    Args:
        model_path: the base model (``.keras``), e.g. ``models/500_train/best_model.keras``; never modified.
        labeled_size: the labeled set is the first ``labeled_size`` training images.
        start_idx, end_idx: the pool is training images ``start_idx..end_idx-1`` (0-based, end exclusive).
        target_per_class: selected images wanted per class: an int for every class, ``{class_name: n}``, or None.
        dataset / dataset_name, classes, data_path, image_size: the data (see :func:`altoolkit.data.load_dataset`).
        output_dir: analyses, comparison and the run manifest go here.
        models_dir: retrained models go here (default: the folder holding the base model's run directory).
        cache_dir: the model's outputs are cached here (default: ``<output_dir>/.cache``).
        seed: seeds the k-means, the random control's draw and retraining (default: the base model's seed).
        training: recipe overrides for retraining (epochs, batch_size, learning_rate, ...); by default the
            base model's recipe from its ``metrics.json``.
        auto_retrain: retrain and compare as soon as ``find_intersection`` finds every target met.
        verbose: progress messages (logger ``al_toolkit.cycle``); 2 adds Keras' epoch lines to each retraining.
    """

    def __init__(self, model_path: str | os.PathLike = DEFAULT_MODEL_PATH, labeled_size: int = DEFAULT_LABELED_SIZE,
                 start_idx: int = DEFAULT_START_IDX, end_idx: int = CYCLE_END_IDX,
                 target_per_class: int | Mapping[str, int] | None = None, *, dataset=None,
                 dataset_name: str = "cifar10", classes=None, data_path: str | os.PathLike | None = None,
                 image_size: int = 32, output_dir: str | os.PathLike = DEFAULT_OUTPUT_DIR,
                 models_dir: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None,
                 seed: int | None = None, training: Mapping | None = None, auto_retrain: bool = True,
                 verbose: bool = True):
        self.model_path = Path(model_path)
        self.labeled_size, self.start_idx, self.end_idx = labeled_size, start_idx, end_idx
        self.output_dir = check_writable_directory(output_dir, "--output-dir")
        self.models_dir = Path(models_dir) if models_dir is not None else self.model_path.parent.parent
        self.cache_dir = Path(cache_dir) if cache_dir is not None else self.output_dir / CACHE_DIRNAME
        self.auto_retrain = auto_retrain
        self.verbose = verbose
        self.timings: dict[str, float] = {}
        started = time.perf_counter()
        self.context: PoolContext = open_pool(model_path, labeled_size, start_idx, end_idx, dataset=dataset,
                                              dataset_name=dataset_name, classes=classes, data_path=data_path,
                                              image_size=image_size, cache_dir=self.cache_dir)
        self.timings["load_data_and_model"] = time.perf_counter() - started
        self.dataset = self.context.dataset
        self.targets = normalise_targets(target_per_class, self.dataset.class_names)
        self.base_metrics = self._read_base_metrics()
        self.seed = int(seed if seed is not None else self.base_metrics.get("seed", 42))
        self.recipe = self._retraining_recipe(training or {})
        if auto_retrain and self.targets is not None:
            check_writable_directory(self.models_dir, "--models-dir")
        self.results: dict[str, AnalysisResult] = {}
        self.intersection: np.ndarray | None = None
        self.intersection_stats: dict | None = None
        self.selected: np.ndarray | None = None
        self.selected_stats: dict | None = None
        self.selected_by: str | None = None
        self.selected_file: Path | None = None
        self.balance: ClassBalance | None = None
        self.advice: list[str] = []
        self.comparison: dict | None = None
        self.model_warning: str | None = None
        self.model_sha256 = self.context.cache.model_sha256

    def run_uncertainty(self, threshold_percentile: float = 50, plots: bool = True):
        """Uncertain pool images (top ``threshold_percentile`` % by entropy or margin)."""
        return self._run("uncertainty", run_uncertainty, {"threshold_percentile": threshold_percentile}, plots)

    def run_diversity(self, n_clusters: int = 20, far_percentile: float = 75, plots: bool = True):
        """Far-from-centroid pool images after k-means on the embeddings (seeded by the analyzer's seed)."""
        params = {"n_clusters": n_clusters, "far_percentile": far_percentile, "random_state": self.seed}
        return self._run("diversity", run_diversity, params, plots)

    def run_novelty(self, k_neighbors: int = 5, novelty_percentile: float = 75, plots: bool = True):
        """Pool images far from the labeled set (mean distance to the k nearest labeled embeddings)."""
        return self._run("novelty", run_novelty, {"k_neighbors": k_neighbors,
                                                  "novelty_percentile": novelty_percentile}, plots)

    def run_all(self, uncertainty_params: Mapping | None = None, diversity_params: Mapping | None = None,
                novelty_params: Mapping | None = None, plots: bool = True) -> dict[str, AnalysisResult]:
        """The three analyses on one forward pass over the labeled set and the pool together."""
        alf.check_n_clusters((diversity_params or {}).get("n_clusters", 20), self.context.pool_size)
        alf.check_k_neighbors((novelty_params or {}).get("k_neighbors", 5), self.labeled_size)
        self._forward_pass()
        self.run_uncertainty(**dict(uncertainty_params or {}), plots=plots)
        self.run_diversity(**dict(diversity_params or {}), plots=plots)
        self.run_novelty(**dict(novelty_params or {}), plots=plots)
        return self.results

    def find_intersection(self, save_images: bool = True, create_visualization: bool = True):
        """Images meeting all three criteria; then the class-balance check and, if met, retraining.

        Returns (intersection indices relative to ``start_idx``, stats with count, percentage, distribution).
        """
        missing = [name for name in ANALYSES if name not in self.results]
        if missing:
            raise ToolkitError(f"run the analyses before find_intersection (missing: {', '.join(missing)}): "
                               "call analyzer.run_all() first")
        started = time.perf_counter()
        index_sets = {name: self.results[name].indices for name in ANALYSES}
        scores = {name: self.results[name].scores for name in ANALYSES}
        self.intersection, self.intersection_stats = run_intersection(
            self.context, index_sets, self.output_dir / "intersection", scores, save_images,
            create_visualization, self.verbose)
        self.timings["intersection"] = time.perf_counter() - started
        self._use_selection(self.intersection, self.intersection_stats, "intersection",
                            self.output_dir / "intersection" / "intersection_indices.npy")
        return self.intersection, self.intersection_stats

    def select(self, budget: int, strategy: str = alf.RECOMMENDED, representation: str = "model",
               save_images: bool = True, create_visualization: bool = True):
        """Exactly ``budget`` pool images (fewer only if the pool is smaller) chosen by ``strategy``.

        The budgeted path beside :meth:`find_intersection`: any name of ``AL_functions.STRATEGIES``, over the
        model's embeddings or a label-free representation (``"pixels"``, ``"patches"``, or ``"backbone"``: the
        network the base model's recipe names). Then the same class-balance
        check and, when every target is met, the same retraining against random. Returns (indices relative to
        ``start_idx`` in the order chosen, stats).
        """
        started = time.perf_counter()
        indices, stats = run_selection(self.context, self.output_dir / "selection", strategy, budget,
                                       seed=self.seed, representation=representation, save_images=save_images,
                                       plots=create_visualization, verbose=self.verbose,
                                       learner=self.recipe.learner, settings=self.recipe.representation_settings())
        self.timings["selection"] = time.perf_counter() - started
        self.model_warning = stats["model_warning"]
        self._use_selection(indices, stats, strategy, self.output_dir / "selection" / "selection_indices.npy")
        return indices, stats

    def _use_selection(self, indices: np.ndarray, stats: dict, selected_by: str, indices_file: Path) -> None:
        """Make ``indices`` the selection to check and retrain with; check balance; retrain when targets are met."""
        self.selected, self.selected_stats, self.selected_by = indices, stats, selected_by
        self.selected_file = indices_file
        self._check_balance()
        self.write_manifest()
        if self.balance is not None and self.balance.all_met and self.auto_retrain:
            if len(indices) == 0:
                self._say(f"retraining skipped: the {selected_by} selection is empty, there is nothing to add")
            else:
                self.retrain_and_compare()

    def retrain_and_compare(self) -> dict:
        """Train base+AL and base+random (same size, same pool, seed and recipe); compare all three on the test split.

        AL is the latest selection: ``find_intersection``'s or ``select``'s.
        """
        if self.selected is None:
            raise ToolkitError("call find_intersection() or select() before retrain_and_compare()")
        if len(self.selected) == 0:
            raise ToolkitError(f"the {self.selected_by} selection is empty: there are no images to retrain with")
        if len(self.dataset.x_test) == 0:
            raise ToolkitError("the data has no test images, so +AL and +random cannot be compared: give the "
                               "dataset a test split (e.g. a test/ folder) to retrain and compare")
        check_writable_directory(self.models_dir, "--models-dir")
        count = len(self.selected)
        al_indices = np.sort(self.selected) + self.start_idx
        random_indices = alf.random_indices(self.context.pool_size, count, seed=self.seed) + self.start_idx
        started = time.perf_counter()
        base = evaluate_model(self.context.cache.model, self.dataset)
        al_run = self._train_with("al", al_indices)
        random_run = self._train_with("random", random_indices)
        self.timings["retraining"] = time.perf_counter() - started
        self.comparison = self._compare(base, al_run, random_run, al_indices, random_indices)
        self.write_manifest()
        return self.comparison

    def get_summary(self) -> str:
        """A readable account of the cycle so far: model, data, analyses, intersection, balance, accuracies."""
        lines = ["Active-learning cycle", f"  model: {self.model_path} (sha256 {self.model_sha256[:16]})",
                 *([f"  warning: {self.model_warning}"] if self.model_warning else []),
                 f"  data: {self.dataset.name} [{', '.join(self.dataset.class_names)}], fingerprint "
                 f"{self.dataset.fingerprint}",
                 f"  labeled: {self._labeled_description()}; pool: {self.start_idx}..{self.end_idx - 1} "
                 f"({self.context.pool_size} images)"]
        for name in ANALYSES:
            if name not in self.results:
                lines.append(f"  {name}: not run")
                continue
            stats = self.results[name].stats
            scores = ", ".join(f"{key} mean {value['mean']:.3f} (min {value['min']:.3f}, max {value['max']:.3f})"
                               for key, value in stats["scores"].items() if value["mean"] is not None)
            lines.append(f"  {name}: {stats['count']} selected ({stats['percentage']}%); {scores}")
        if self.intersection_stats is not None:
            stats = self.intersection_stats
            lines.append(f"  intersection: {stats['count']} images ({stats['percentage']}% of the pool)")
            lines.append(f"  class distribution ({stats['distribution_source']}): {stats['distribution']}")
        if self.selected is not None and self.selected_by != "intersection":
            stats = self.selected_stats
            lines.append(f"  selection: {stats['count']} images by {stats['strategy']} ({stats['representation']} "
                         f"features, budget {stats['budget']})")
            lines.append(f"  class distribution ({stats['distribution_source']}): {stats['distribution']}")
        if self.balance is not None:
            lines.append("  balance: " + ("all targets met" if self.balance.all_met else "targets not met"))
            lines.extend(f"    {line}" for line in self.balance.lines())
            lines.extend(f"    -> {line}" for line in self.advice)
        elif self.selected_stats is not None:
            lines.append(f"  balance: no targets set, so no retraining; {NO_TARGETS_ADVICE}")
        if self.comparison is not None:
            accuracy = self.comparison["accuracy"]
            lines.append(f"  test accuracy: base {accuracy['base']:.3f}, +AL {accuracy['al']:.3f}, "
                         f"+random {accuracy['random']:.3f}")
            lines.append(f"  {self.comparison['verdict']}")
        return "\n".join(lines)

    def write_manifest(self) -> Path:
        """cycle_manifest.json: parameters, seeds, versions, data fingerprint, timings, selections, accuracies."""
        manifest = {
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "model": {"path": str(self.model_path), "sha256": self.model_sha256, "warning": self.model_warning},
            "cache_dir": str(self.cache_dir),
            "dataset": {"name": self.dataset.name, "source": self.dataset.source,
                        "fingerprint": self.dataset.fingerprint, "class_names": list(self.dataset.class_names),
                        "options": self.context.data_options},
            "labeled_size": self.labeled_size, "start_idx": self.start_idx, "end_idx": self.end_idx,
            "initial": self.base_metrics.get("initial"),
            "seed": self.seed,
            "parameters": {name: self.results[name].parameters for name in self.results},
            "target_per_class": self.targets,
            "retraining_recipe": self.recipe.as_dict(),
            "versions": library_versions(),
            "timings_seconds": {key: round(value, 3) for key, value in self.timings.items()},
            "analyses": {name: {"count": self.results[name].stats["count"],
                                "absolute_indices": self.results[name].indices + self.start_idx}
                         for name in self.results},
            "intersection": None if self.intersection is None else {
                "count": int(len(self.intersection)), "absolute_indices": self.intersection + self.start_idx,
                "distribution": self.intersection_stats["distribution"],
                "distribution_source": self.intersection_stats["distribution_source"]},
            "selection": None if self.selected is None else {
                "by": self.selected_by, "count": int(len(self.selected)),
                "absolute_indices": self.selected + self.start_idx,
                "distribution": self.selected_stats["distribution"],
                "parameters": {key: self.selected_stats[key] for key in ("budget", "representation", "seed")
                               if key in self.selected_stats}},
            "balance": None if self.balance is None else {
                "all_met": self.balance.all_met, "actual": self.balance.actual, "targets": self.balance.targets,
                "recommendations": self.advice},
            "comparison": self.comparison,
        }
        return write_json(self.output_dir / "cycle_manifest.json", manifest)

    def _run(self, name: str, function, params: dict, plots: bool):
        started = time.perf_counter()
        indices, scores, stats = function(self.context, self.output_dir / name, **params, plots=plots,
                                          verbose=self.verbose)
        self.timings[name] = time.perf_counter() - started
        self.results[name] = AnalysisResult(indices, scores, stats, params)
        return indices, scores, stats

    def _forward_pass(self) -> None:
        started = time.perf_counter()
        self.context.compute_outputs()
        pool, labeled = self.context.pool, self.context.labeled
        self.timings["forward_pass"] = time.perf_counter() - started
        if self.verbose:
            cached = "read from cache" if pool.from_cache and labeled.from_cache else "computed"
            self._say(f"model outputs for {self.context.pool_size} pool + {self.labeled_size} labeled images "
                      f"{cached} in {self.timings['forward_pass']:.1f} s (cache: {self.cache_dir})")
        self.model_warning = self.context.model_warning()

    def _check_balance(self) -> None:
        if self.targets is None:
            self.balance = None
            self._say(f"no class targets set, so no retraining: {NO_TARGETS_ADVICE}")
            return
        stats = self.selected_stats
        self.balance = ClassBalance(actual=stats["distribution"], targets=self.targets,
                                    source=stats["distribution_source"])
        self.advice = recommendations(self.balance, self.context.pool_size, self.start_idx, self.end_idx,
                                      len(self.dataset.x_train))
        self._say(f"class balance ({self.balance.source}):")
        for line in self.balance.lines():
            self._say(f"  {line}")
        if not self.context.pool_has_labels and self.balance.all_met:
            self._say("the pool has no labels: label the selected images before retraining "
                      f"(their indices are in {self.selected_file})")
            self.auto_retrain = False
        elif self.balance.all_met:
            self._say("every class target is met" + (": retraining" if self.auto_retrain else ""))
        else:
            self._say("targets not met, so no retraining. Recommendations:")
            for line in self.advice:
                self._say(f"  - {line}")

    def _train_with(self, kind: str, absolute_indices: np.ndarray) -> dict:
        """Train labeled set + extras, or reuse a finished run with the same data, indices, seed, recipe, architecture.

        A base model that is not the toolkit's MobileNetV3Small is retrained as a fresh copy of its own architecture,
        so +AL and +random are compared with a base model of the same kind; metrics.json records which.
        """
        base_model = self.context.cache.model
        own = is_toolkit_classifier(base_model) or self.recipe.learner != "mobilenet"
        architecture = None if own else base_model
        described = architecture_description(self.recipe, architecture)
        run_dir = extended_run_dir(self.models_dir, self.labeled_size, kind, absolute_indices, self.seed)
        metrics = finished_run_metrics(run_dir, self.dataset, self.recipe, described)
        step = f"training {1 if kind == 'al' else 2} of 2: base + {'AL' if kind == 'al' else 'random'} selection"
        if metrics is not None:
            self._say(f"{step}: reusing the finished run {run_dir}")
            remove_abandoned_temporaries(run_dir)
            return {"dir": run_dir, "metrics": metrics}
        self._say(f"{step} ({described} on {self.labeled_size} + {len(absolute_indices)} images -> {run_dir})")
        result = train_model(absolute_indices, run_dir, dataset=self.dataset, labeled_size=self.labeled_size,
                             recipe=self.recipe, seed=self.seed, overwrite=True,
                             verbose=keras_verbosity(self.verbose < 2),
                             run_info={"base_model": str(self.model_path), "selection": kind},
                             architecture=architecture)
        return {"dir": result.output_dir, "metrics": result.metrics}

    def _compare(self, base: dict, al_run: dict, random_run: dict, al_indices, random_indices) -> dict:
        from altoolkit.plots import plot_accuracy_comparison

        names = list(self.dataset.class_names)
        al_metrics, random_metrics = al_run["metrics"], random_run["metrics"]
        accuracies = {"base": {"accuracy": base["accuracy"], "per_class_accuracy": base["per_class_accuracy"]},
                      "al": {"accuracy": al_metrics["test_accuracy"],
                             "per_class_accuracy": al_metrics["per_class_accuracy"]},
                      "random": {"accuracy": random_metrics["test_accuracy"],
                                 "per_class_accuracy": random_metrics["per_class_accuracy"]}}
        difference = accuracies["al"]["accuracy"] - accuracies["random"]["accuracy"]
        if abs(difference) < 1e-9:
            verdict = "AL and random selection tied"
        else:
            winner = "AL selection" if difference > 0 else "random selection"
            verdict = f"{winner} won by {abs(difference) * 100:.1f} percentage points"
        verdict += (f" on {base['test_size']} test images (base {accuracies['base']['accuracy']:.1%}, "
                    f"+AL {accuracies['al']['accuracy']:.1%}, +random {accuracies['random']['accuracy']:.1%}). "
                    "One run is one sample: seed-to-seed spread is often larger than this; "
                    "the benchmark measures it over paired seeds.")
        comparison_dir = self.output_dir / "comparison"
        figure = plot_accuracy_comparison(
            names, {"base": accuracies["base"], "+random": accuracies["random"], "+AL": accuracies["al"]},
            comparison_dir / "al_vs_random.png",
            f"{self.dataset.name}: {self.labeled_size} labeled + {len(al_indices)} selected (seed {self.seed}, one run)",
            baseline="+random", challenger="+AL")
        comparison = {
            "extra_images": int(len(al_indices)), "seed": self.seed,
            "accuracy": {key: value["accuracy"] for key, value in accuracies.items()},
            "per_class_accuracy": {key: value["per_class_accuracy"] for key, value in accuracies.items()},
            "al_minus_random": difference,
            "al_minus_random_per_class": {
                name: (None if accuracies["al"]["per_class_accuracy"].get(name) is None
                       else accuracies["al"]["per_class_accuracy"][name] - accuracies["random"]["per_class_accuracy"][name])
                for name in names},
            "verdict": verdict,
            "models": {"base": str(self.model_path), "al": str(al_run["dir"]), "random": str(random_run["dir"])},
            "retrained_architecture": al_metrics.get("architecture", architecture_description(self.recipe)),
            "al_absolute_indices": np.asarray(al_indices), "random_absolute_indices": np.asarray(random_indices),
            "chart": str(figure),
        }
        write_json(comparison_dir / "comparison.json", comparison)
        self._say(verdict)
        self._say(f"comparison: {comparison_dir / 'comparison.json'}  chart: {figure}")
        return comparison

    def _labeled_description(self) -> str:
        initial = self.base_metrics.get("initial")
        if isinstance(initial, dict) and initial.get("indices"):
            return (f"{self.labeled_size} images chosen by a cold start ({initial.get('strategy')}) among the "
                    f"first {initial.get('prefix')}")
        return f"first {self.labeled_size} images"

    def _read_base_metrics(self) -> dict:
        metrics_file = self.model_path.parent / METRICS_FILENAME
        if not metrics_file.is_file():
            return {}
        try:
            return json.loads(metrics_file.read_text())
        except (OSError, ValueError):
            return {}

    def _retraining_recipe(self, overrides: Mapping) -> TrainingRecipe:
        known = set(TrainingRecipe.__dataclass_fields__)
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ToolkitError(f"unknown training option(s) {', '.join(unknown)}: choose from {', '.join(sorted(known))}")
        base = {key: value for key, value in self.base_metrics.get("recipe", {}).items() if key in known}
        recipe = recipe_for(self.dataset.name, **{**base, **dict(overrides)})
        recipe.validate()
        return recipe

    def _say(self, message: str) -> None:
        if self.verbose:
            logger("cycle").info(message)


def build_parser() -> argparse.ArgumentParser:
    parser = ToolkitArgumentParser(prog="AL_cycle.py", description=(
        "Run the active-learning cycle: analyses, intersection, class-balance check, retraining and the "
        "comparison with random selection."))
    add_dataset_arguments(parser)
    pool = parser.add_argument_group("model and pool")
    pool.add_argument("--model", default=None,
                      help="base .keras model (default: <models-dir>/<labeled-size>_train/best_model.keras)")
    pool.add_argument("--train-base", action="store_true",
                      help="train the base model first when the --model file does not exist")
    pool.add_argument("--learner", default=None, choices=LEARNER_NAMES,
                      help="with --train-base: the base model's learner (default: mobilenet; linear: seconds); "
                           "retraining uses the base model's learner")
    pool.add_argument("--initial", default=None, choices=INITIAL_CHOICES,
                      help="with --train-base: the base model's labeled set: the first --labeled-size images "
                           "(default) or a strategy's cold-start choice among the images before --start-idx")
    add_backbone_arguments(pool, "with --train-base, the fast learners, the cold start and --representation "
                                 "backbone use its features", weights_default=None)
    pool.add_argument("--labeled-size", type=positive_int, default=DEFAULT_LABELED_SIZE, help="default: 500")
    pool.add_argument("--start-idx", type=non_negative_int, default=DEFAULT_START_IDX,
                      help="first pool image (default: 501)")
    pool.add_argument("--end-idx", type=positive_int, default=CYCLE_END_IDX, help="pool end, exclusive (default: 4000)")
    pool.add_argument("--target-per-class", default=None,
                      help="selected images wanted per class: N, or class=N,class=N; retraining needs targets "
                           "(default: no targets, no retraining)")
    budgeted = parser.add_argument_group("budgeted selection (instead of the intersection)")
    budgeted.add_argument("--budget", type=positive_int, default=None,
                          help="select exactly this many images with --strategy instead of intersecting the analyses")
    budgeted.add_argument("--strategy", default=None,
                          help=f"with --budget: {alf.RECOMMENDED} (default, see AL_functions.recommended_choice), "
                               f"one of {', '.join(alf.STRATEGIES)}, or package.module:function for your own")
    budgeted.add_argument("--representation", default=None, choices=alf.REPRESENTATIONS,
                          help="with --budget: features for distance-based strategies, the model's embeddings, PCA "
                               "of the pixels or the label-free patch features (default: model)")
    analyses = parser.add_argument_group("analyses (the intersection; not with --budget)")
    analyses.add_argument("--threshold-percentile", type=percentile_argument, default=None,
                          help=f"uncertainty (default: {INTERSECTION_DEFAULTS['threshold_percentile']})")
    analyses.add_argument("--n-clusters", type=positive_int, default=None,
                          help=f"diversity k-means clusters (default: {INTERSECTION_DEFAULTS['n_clusters']})")
    analyses.add_argument("--k-neighbors", type=positive_int, default=None,
                          help=f"novelty neighbours (default: {INTERSECTION_DEFAULTS['k_neighbors']})")
    training = parser.add_argument_group("training")
    training.add_argument("--epochs", type=positive_int, default=None,
                          help="default: the base model's recipe (or 30)")
    training.add_argument("--seed", type=seed_argument, default=None, help="default: the base model's seed (or 42)")
    training.add_argument("--no-retrain", action="store_true", help="stop after the balance check")
    output = parser.add_argument_group("output")
    output.add_argument("--output-dir", default=DEFAULT_OUTPUT_DIR, help="analyses and comparison (default: results)")
    output.add_argument("--cache-dir", default=None, help="model outputs kept for reuse (default: <output-dir>/.cache)")
    output.add_argument("--models-dir", default="models", help="base and retrained models (default: models)")
    output.add_argument("--no-images", action="store_true", help="do not save the selected images")
    output.add_argument("--quiet", action="store_true", help="print nothing but warnings and errors")
    output.add_argument("--verbose", action="store_true", help="also Keras' epoch lines while training")
    add_logging_arguments(output)
    return parser


def check_option_combinations(args: argparse.Namespace) -> None:
    """Refuse options the chosen path would ignore: --strategy/--representation without --budget, the
    intersection's analysis options with it, and --learner without --train-base."""
    for option in ("learner", "initial", "backbone"):
        if getattr(args, option) is not None and not args.train_base:
            raise ToolkitError(f"--{option} chooses how --train-base trains the base model (retraining follows the "
                               f"base model's own): add --train-base, or drop --{option}")
    if args.backbone_weights is not None and args.backbone is None:
        raise ToolkitError("--backbone-weights are the weights of --backbone: add --backbone, or drop "
                           "--backbone-weights")
    if args.budget is None:
        ignored = [option for option in ("strategy", "representation") if getattr(args, option) is not None]
        if ignored:
            names = " and ".join(f"--{option}" for option in ignored)
            raise ToolkitError(f"{names} without --budget: add --budget N to select N images with "
                               f"{'it' if len(ignored) == 1 else 'them'}, or drop {names} to intersect the three "
                               "analyses")
    else:
        if args.strategy is not None:
            alf.resolve_strategy(args.strategy, "model", 0, 1)
        ignored = [option for option in INTERSECTION_DEFAULTS if getattr(args, option) is not None]
        if ignored:
            names = " and ".join(f"--{option.replace('_', '-')}" for option in ignored)
            raise ToolkitError(f"{names} with --budget: {'it tunes' if len(ignored) == 1 else 'they tune'} the "
                               f"intersection's analyses, which --budget replaces; drop {names} or --budget")


def check_writable_outputs(args: argparse.Namespace, model_path: Path, cache_dir: Path, retraining: bool) -> None:
    """Before any data is read: the folders this run writes can be written, and the base model exists or will be
    trained."""
    check_writable_directory(args.output_dir, "--output-dir")
    check_writable_directory(cache_dir, "--cache-dir")
    check_base_model_path(model_path, args.train_base, args.labeled_size, model_given=args.model is not None)
    if retraining:
        check_writable_directory(args.models_dir, "--models-dir")


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    configure_logging(args, argv)
    check_option_combinations(args)
    targets = parse_targets(args.target_per_class)
    model_path = Path(args.model) if args.model else default_run_dir(args.labeled_size, args.models_dir) / MODEL_FILENAME
    cache_dir = Path(args.cache_dir) if args.cache_dir is not None else Path(args.output_dir) / CACHE_DIRNAME
    check_writable_outputs(args, model_path, cache_dir, retraining=targets is not None and not args.no_retrain)
    dataset = None  # read by the analyzer after its model, unless the base model is trained here first
    check_initial_matches(model_path, args.initial)
    if not os.path.isfile(model_path):
        dataset = train_base_model(dataset_from_args(args), model_path, args.labeled_size, args.start_idx,
                                   initial=args.initial or FIRST, learner=args.learner or "mobilenet",
                                   epochs=args.epochs if args.epochs is not None else 30,
                                   seed=args.seed if args.seed is not None else 42, backbone=args.backbone,
                                   backbone_weights=args.backbone_weights or "imagenet", cache_dir=cache_dir,
                                   verbose=keras_verbosity(args.quiet or not args.verbose))
    training = {"epochs": args.epochs} if args.epochs is not None else {}
    analyzer = ActiveLearningAnalyzer(
        model_path, args.labeled_size, args.start_idx, args.end_idx, targets, dataset=dataset,
        dataset_name=args.dataset, classes=args.classes, data_path=args.data_path, image_size=args.image_size,
        output_dir=args.output_dir, models_dir=args.models_dir, cache_dir=cache_dir, seed=args.seed,
        training=training, auto_retrain=not args.no_retrain, verbose=0 if args.quiet else 1 + args.verbose)
    if args.budget is not None:
        analyzer.select(args.budget, args.strategy or alf.RECOMMENDED, args.representation or "model",
                        save_images=not args.no_images)
    else:
        options = {name: default if getattr(args, name) is None else getattr(args, name)
                   for name, default in INTERSECTION_DEFAULTS.items()}
        analyzer.run_all(uncertainty_params={"threshold_percentile": options["threshold_percentile"]},
                         diversity_params={"n_clusters": options["n_clusters"]},
                         novelty_params={"k_neighbors": options["k_neighbors"]})
        analyzer.find_intersection(save_images=not args.no_images, create_visualization=True)
    analyzer.timings["total"] = time.perf_counter() - started
    manifest = analyzer.write_manifest()
    report = write_cycle_report(manifest.parent)
    if not args.quiet:
        print()
        print(analyzer.get_summary())
        print(f"\nrun manifest: {manifest}\nreport: {report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
