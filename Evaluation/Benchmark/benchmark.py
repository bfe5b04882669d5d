"""Benchmark: paired, multi-seed simulation of what each selection strategy is worth against random.

Per seed, a seeded permutation of the training set gives the initial labeled set (its first ``n0`` images) and
the pool (the next ``pool_size``). Round 0 trains the base model once, shared by every strategy; then, for each
strategy and round, the previous round's model scores the pool (one forward pass over pool + labeled), the
strategy picks ``budget`` images (oracle: the dataset's labels), and the model is retrained from the seed's
initial weights on everything labeled so far and evaluated on the test split.

Standalone: ``python Evaluation/Benchmark/benchmark.py --preset quick --output-dir results/benchmark`` (or
``python -m Evaluation.Benchmark.benchmark ...``) writes ``results.json`` (rewritten after every finished cell,
so a restart with the same arguments resumes), ``learning_curve.png`` and ``report.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import numbers
import os
import resource
import shlex
import shutil
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from AL_functions import RECOMMENDED, recommended_choice, select_samples
from altoolkit.data import Dataset, load_dataset, parse_classes
from altoolkit.cli import ToolkitArgumentParser, positive_int
from altoolkit.errors import ToolkitError, cli_entry
from altoolkit.files import check_writable_directory, save_npz, write_json, write_text
from altoolkit.validation import short_repr
from altoolkit.strategies import ClassifierHead, pixel_pca_features
from altoolkit.training import TrainingRecipe, compiled_model, evaluate_model, fit_model, training_indices

RESULTS_FILENAME = "results.json"
REPORT_FILENAME = "report.md"
CURVE_FILENAME = "learning_curve.png"
STATE_DIRNAME = "state"
WORKER_DIRNAME = "worker_cells"
FORMAT_VERSION = 2
"""Part of the config hash: bumped whenever the code changes the numbers (2: training drops each epoch's last,
partial batch), so a results file from older code is never resumed into a mixed benchmark."""
BASELINE = "random"


# --------------------------------------------------------------------------------------------------- strategies

@dataclass(frozen=True)
class RoundExtras:
    """What some strategies need beyond probabilities and embeddings, computed only when one asks for it.

    ``head()`` is the current classifier's last layer (BALD); ``pixel_features()`` the PCA-of-pixels features
    of the same rows as the embeddings (the "_pixels" strategies).
    """

    head: Callable[[], ClassifierHead]
    pixel_features: Callable[[], np.ndarray]


def _select_samples_adapter(name: str, representation: str = "model") -> Callable[..., np.ndarray]:
    """A registry entry running ``AL_functions.select_samples(strategy=name)`` on the unlabeled rows, over the
    model's embeddings or (``representation="pixels"``) the PCA-of-pixels features."""
    strategy = name.removesuffix("_pixels")

    def query(probabilities, embeddings, labeled_embeddings, indices_unlabeled, indices_labeled, y_labeled, n,
              seed, extras: RoundExtras | None = None) -> np.ndarray:
        indices_unlabeled = np.asarray(indices_unlabeled, dtype=np.int64)
        if representation == "pixels":
            if extras is None:
                raise ToolkitError(f"strategy {name!r} needs the pixel features: pass extras")
            embeddings = extras.pixel_features()
            labeled_embeddings = embeddings[np.asarray(indices_labeled, dtype=np.int64)]
        head = extras.head() if strategy == "bald" and extras is not None else None
        chosen = select_samples(probabilities[indices_unlabeled], embeddings[indices_unlabeled], labeled_embeddings,
                                n, strategy=strategy, seed=seed, labeled_classes=y_labeled, head=head)
        return indices_unlabeled[chosen]

    query.__name__ = f"query_{name}"
    query.__doc__ = (f"AL_functions.select_samples(strategy={strategy!r}) over the unlabeled rows' "
                     f"{'pixel PCA features' if representation == 'pixels' else 'embeddings'}; returns row indices.")
    return query


def query_recommended(probabilities, embeddings, labeled_embeddings, indices_unlabeled, indices_labeled, y_labeled,
                      n, seed, extras: RoundExtras | None = None) -> np.ndarray:
    """AL_functions.recommended_choice for this round's labeled count: its strategy over its representation."""
    strategy, representation = recommended_choice(len(indices_labeled), np.asarray(probabilities).shape[1])
    query = _select_samples_adapter(f"{strategy}_pixels" if representation == "pixels" else strategy,
                                    representation)
    return query(probabilities, embeddings, labeled_embeddings, indices_unlabeled, indices_labeled, y_labeled, n,
                 seed, extras)


STRATEGY_REGISTRY: dict[str, Callable[..., np.ndarray]] = {
    **{name: _select_samples_adapter(name)
       for name in ("random", "intersection", "intersection_filled", "entropy", "margin", "least_confidence",
                    "diversity", "novelty", "combined", "bald", "coreset", "badge", "typicality",
                    "class_balanced_margin", "class_balanced_random", "diverse_margin")},
    **{f"{name}_pixels": _select_samples_adapter(f"{name}_pixels", "pixels") for name in ("coreset", "typicality")},
    RECOMMENDED: query_recommended,
}
"""name → ``query(probabilities, embeddings, labeled_embeddings, indices_unlabeled, indices_labeled, y_labeled, n,
seed, extras=None) -> row indices``. Rows index ``probabilities``/``embeddings``; ``labeled_embeddings`` are the
rows of ``indices_labeled``; ``extras`` (:class:`RoundExtras`) supplies the classifier head and pixel features to
the strategies that use them. Every entry returns at most ``n`` distinct unlabeled rows, except "intersection",
which returns the whole uncertain ∩ diverse ∩ novel set (any size). New strategies plug in by adding an entry."""


# ------------------------------------------------------------------------------------------------------ config

@dataclass(frozen=True)
class BenchmarkConfig:
    """Everything that decides a benchmark's numbers (hashed to recognise a resumable output directory)."""

    dataset: str = "digits"
    classes: tuple[str, ...] | None = None
    data_path: str | None = None
    image_size: int = 32
    n0: int = 100
    budget: int = 50
    rounds: int = 2
    seeds: int = 2
    epochs: int = 20
    strategies: tuple[str, ...] = ("random", "intersection_filled", "entropy", "diversity")
    pool_size: int | None = None
    batch_size: int = 32
    learning_rate: float = 1e-3
    flip_augmentation: bool = False
    cosine_decay: bool = True
    keep_best_validation_epoch: bool = False
    """With the cosine decay the last epoch is both stabler and better on the test split than the epoch that
    scored best on the small validation split (which picks a lucky epoch); measured on Fashion-MNIST."""

    def recipe(self) -> TrainingRecipe:
        return TrainingRecipe(epochs=self.epochs, batch_size=self.batch_size, learning_rate=self.learning_rate,
                              flip_augmentation=self.flip_augmentation, cosine_decay=self.cosine_decay)

    def as_dict(self) -> dict:
        return {key: (list(value) if isinstance(value, tuple) else value)
                for key, value in dataclasses.asdict(self).items()}

    def validate(self) -> None:
        for name in ("n0", "budget", "rounds", "seeds"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < (2 if name == "n0" else 1):
                raise ToolkitError(f"--{name.replace('_', '-')} must be a positive integer"
                                   f"{' of at least 2' if name == 'n0' else ''}, got {value!r}")
        if self.pool_size is not None and self.pool_size < 1:
            raise ToolkitError(f"--pool-size must be a positive integer, got {self.pool_size!r}")
        if not self.strategies:
            raise ToolkitError("--strategies is empty: name at least one strategy")
        unknown = [name for name in self.strategies if name not in STRATEGY_REGISTRY]
        if unknown:
            raise ToolkitError(f"unknown strategy {short_repr(unknown[0])}: choose from {', '.join(STRATEGY_REGISTRY)}")
        twice = [name for name in self.strategies if self.strategies.count(name) > 1]
        if twice:
            raise ToolkitError(f"--strategies names {twice[0]} twice: name each strategy once")
        self.recipe().validate()


DESIGN_STRATEGIES = ("random", "intersection", "intersection_filled", "entropy", "margin", "diversity", "novelty",
                     "combined")
"""The design's criteria alone and intersected, with random as the baseline."""

BUDGETED_STRATEGIES = ("least_confidence", "bald", "coreset", "coreset_pixels", "badge", "typicality",
                       "typicality_pixels", "diverse_margin", "class_balanced_margin", "class_balanced_random")
"""The low-budget literature's strategies (altoolkit.strategies), each filling the budget exactly."""

PRESETS: dict[str, BenchmarkConfig] = {
    "quick": BenchmarkConfig(),
    "seed-experiment": BenchmarkConfig(dataset="cifar10", classes=("airplane", "automobile", "ship"), n0=500,
                                       budget=200, rounds=5, seeds=5, epochs=30, flip_augmentation=True,
                                       strategies=DESIGN_STRATEGIES + BUDGETED_STRATEGIES + (RECOMMENDED,)),
    "fashion": BenchmarkConfig(dataset="fashion_mnist", classes=None, n0=500, budget=200, rounds=5, seeds=5,
                               epochs=30, pool_size=10_000, flip_augmentation=True,
                               strategies=DESIGN_STRATEGIES + BUDGETED_STRATEGIES + (RECOMMENDED,)),
    "fashion-scarce": BenchmarkConfig(dataset="fashion_mnist", classes=None, n0=100, budget=100, rounds=4, seeds=5,
                                      epochs=30, pool_size=10_000, flip_augmentation=True,
                                      strategies=("random", "margin", "diverse_margin", "badge",
                                                  "class_balanced_margin", "coreset_pixels", "typicality",
                                                  "typicality_pixels", RECOMMENDED)),
}
"""quick: bundled digits (10 classes), a few minutes. seed-experiment: the design's CIFAR-10 3-class experiment
(needs the CIFAR-10 archive). fashion: Fashion-MNIST, all 10 classes (on 3 easy classes the base model is already
near 94 %, which leaves nothing to measure), same shape, a 10,000-image pool per seed (keeps each round's forward
pass short). fashion-scarce: the regime before it, 10 to 50 labels per class (100 initial, 4 rounds of 100), where
the literature expects representative picks (typicality) to beat uncertainty."""


def config_hash(config: BenchmarkConfig, dataset_fingerprint: str) -> str:
    """Short SHA-256 of the settings and the data: a resume is only allowed into a directory with the same hash.

    The strategy list and the number of seeds are left out: cells are independent per (seed, strategy), so a
    finished benchmark can be extended with another strategy or more seeds without rerunning the rest.
    """
    settings = {key: value for key, value in config.as_dict().items() if key not in ("strategies", "seeds")}
    text = json.dumps({"config": settings, "data": dataset_fingerprint, "format": FORMAT_VERSION}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_benchmark_dataset(config: BenchmarkConfig) -> Dataset:
    classes = None if config.classes is None else [int(c) if str(c).isdigit() else c for c in config.classes]
    return load_dataset(config.dataset, path=config.data_path, classes=classes, image_size=config.image_size)


def seed_order(n_train: int, config: BenchmarkConfig, seed: int) -> np.ndarray:
    """Absolute training indices of the seed's initial labeled set (first ``n0``) followed by its pool."""
    pool_size = n_train - config.n0 if config.pool_size is None else config.pool_size
    if config.n0 + pool_size > n_train:
        raise ToolkitError(f"n0 {config.n0} + pool size {pool_size} exceeds the {n_train} training images: "
                           "lower --n0 or --pool-size")
    if pool_size < config.rounds * config.budget:
        raise ToolkitError(f"the pool of {pool_size} images cannot supply {config.rounds} rounds × {config.budget}: "
                           "lower --rounds or --budget, or raise --pool-size")
    return np.random.default_rng(seed).permutation(n_train)[:config.n0 + pool_size].astype(np.int64)


def selection_seed(seed: int, round_number: int) -> int:
    """The seed handed to a strategy at ``round_number``: same for every strategy of a seed (paired)."""
    return int(seed) * 1000 + int(round_number)


# ----------------------------------------------------------------------------------------------------- training

class SeedTrainer:
    """One compiled model per seed, reset to its initial weights before every training (traces are reused).

    Building and tracing MobileNetV3Small costs far more than a short training on a CPU, so instead of a fresh
    model per round this restores the initial weights, zeroes the optimizer's variables and resets the metrics;
    the best-validation epoch's weights are kept in memory instead of a checkpoint file.
    """

    def __init__(self, dataset: Dataset, recipe: TrainingRecipe, seed: int, keep_best_validation_epoch: bool = False):
        from altoolkit.model import probabilities_and_embeddings_model

        self.dataset = dataset
        self.recipe = recipe
        self.seed = int(seed)
        self.keep_best_validation_epoch = keep_best_validation_epoch
        self.model = compiled_model(dataset, recipe, self.seed)
        self.two_outputs = probabilities_and_embeddings_model(self.model)
        self.initial_values = [variable.numpy() for variable in self._state_variables()]

    def _state_variables(self) -> list:
        """Every variable a training changes: weights, dropout/flip seed states (not in get_weights), optimizer."""
        return [*self.model.variables, *self.model.optimizer.variables]

    def reset(self) -> None:
        """Back to the state right after building: initial weights and seed states, fresh optimizer, empty metrics.

        The optimizer's variables go back to their values after ``build`` (zero moments and iterations; the
        learning rate, also a variable, is kept).
        """
        for variable, value in zip(self._state_variables(), self.initial_values):
            variable.assign(value)
        for metric in self.model.metrics:
            metric.reset_state()

    def train(self, train_idx: np.ndarray, validation_idx: np.ndarray) -> dict:
        """Train from the initial weights; keep the last epoch's weights, or the best-validation epoch's. Returns
        facts (the best validation epoch is recorded either way)."""
        self.reset()
        keeper = _best_weights_callback("val_accuracy" if len(validation_idx) else "accuracy")
        history = fit_model(self.model, self.dataset, train_idx, validation_idx, self.recipe, self.seed, [keeper])
        if self.keep_best_validation_epoch:
            self.model.set_weights(keeper.best_weights)
        validation = history.history.get("val_accuracy", [])
        return {"best_epoch": keeper.best_epoch + 1, "best_validation_accuracy": keeper.best,
                "last_validation_accuracy": float(validation[-1]) if validation else None,
                "epochs_run": len(history.history.get("loss", []))}

    def evaluate(self) -> dict:
        """Accuracy overall and per class on the test split."""
        return evaluate_model(self.model, self.dataset)

    def infer(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities, embeddings) of the given training rows, one forward pass."""
        from altoolkit.model import run_inference

        probabilities, embeddings = run_inference(self.two_outputs, self.dataset.x_train[rows])
        return probabilities, embeddings


def _best_weights_callback(monitor: str):
    import keras

    class BestWeights(keras.callbacks.Callback):
        """Keeps ``get_weights()`` of the epoch with the best ``monitor`` (the first on ties, like ModelCheckpoint)."""

        def __init__(self):
            super().__init__()
            self.best, self.best_epoch, self.best_weights = -math.inf, -1, None

        def on_epoch_end(self, epoch, logs=None):
            value = float((logs or {}).get(monitor, -math.inf))
            if value > self.best or self.best_weights is None:
                self.best, self.best_epoch, self.best_weights = value, epoch, self.model.get_weights()

    return BestWeights()


def state_path(state_dir: Path, seed: int, name: str, round_number: int) -> Path:
    """Where the model of (seed, strategy, round) is kept for a resume; round 0 is the shared base model.

    The round is in the name so that a run killed between saving the weights and rewriting results.json can
    never pair a cell with the next round's model.
    """
    return state_dir / (f"seed{seed}_base.npz" if round_number == 0 else f"seed{seed}_{name}_round{round_number}.npz")


def save_weights(target: Path, weights: list[np.ndarray]) -> None:
    """Weights as an .npz (atomic, no pickles): lets a resumed run continue from a finished round's model."""
    save_npz(target, *weights)


def load_weights(source: Path) -> list[np.ndarray]:
    """The weights :func:`save_weights` wrote; an unreadable file is one error that says how to recover."""
    try:
        with np.load(source, allow_pickle=False) as data:
            return [data[f"arr_{i}"] for i in range(len(data.files))]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise ToolkitError(f"{source} is not a saved model state ({type(error).__name__}): delete it, and the "
                           "rounds that need it are trained again") from None


def restore_weights(model, source: Path) -> None:
    """Load a saved state into ``model``; a state of another shape is refused, not half-applied."""
    weights = load_weights(source)
    expected = [tuple(variable.shape) for variable in model.weights]
    if [tuple(weight.shape) for weight in weights] != expected:
        raise ToolkitError(f"{source} does not hold this benchmark's model ({len(weights)} arrays, the model has "
                           f"{len(expected)} or other shapes): delete it, and the rounds that need it are trained "
                           "again")
    model.set_weights(weights)


# ------------------------------------------------------------------------------------------------- simulation

def _cell(round_number: int, labels: int, evaluation: dict, selected: np.ndarray, facts: dict,
          timings: dict) -> dict:
    return {"round": round_number, "labels": int(labels), "accuracy": evaluation["accuracy"],
            "per_class_accuracy": evaluation["per_class_accuracy"], "n_selected": int(len(selected)),
            "selected_indices": [int(i) for i in selected], **facts,
            "timings": {key: round(value, 4) for key, value in timings.items()}}


def execution_settings(workers: int) -> dict:
    """How the trainings run. Part of what must match to resume: TensorFlow's thread count changes the order of
    floating-point sums, and training amplifies that into different accuracies."""
    return {"workers": int(workers), "tensorflow_threads": "default" if workers == 1 else 1}


def new_results(config: BenchmarkConfig, dataset: Dataset, command: str, workers: int) -> dict:
    from altoolkit.training import library_versions

    return {"format": FORMAT_VERSION, "config": config.as_dict(),
            "config_hash": config_hash(config, dataset.fingerprint), "command": command,
            "execution": execution_settings(workers),
            "dataset": {"name": dataset.name, "fingerprint": dataset.fingerprint,
                        "class_names": list(dataset.class_names), "train_size": int(len(dataset.x_train)),
                        "test_size": int(len(dataset.x_test))},
            "versions": library_versions(), "seeds": {}, "peak_memory_mb": None}


TIMING_KEYS = ("forward_s", "selection_s", "training_s", "evaluation_s")


def read_json_record(path: Path, what: str, advice: str):
    """The JSON in ``path``; an unreadable or corrupt file is one error naming it (the file is left alone)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as error:  # ValueError covers bad JSON and bad UTF-8
        raise ToolkitError(f"{path} is not readable as {what} ({type(error).__name__}): {advice}") from None


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _indices_problem(values, n_train: int, where: str) -> str | None:
    if not isinstance(values, list) or not all(_is_int(i) and 0 <= i < n_train for i in values):
        return f"{where} must be a list of training indices 0..{n_train - 1}"
    return None


def cell_problem(cell, n_train: int, where: str) -> str | None:
    """What is wrong with a recorded cell (round, labels, accuracies, selected indices, timings), or None."""
    if not isinstance(cell, dict):
        return f"{where} must be an object"
    for key in ("round", "labels", "n_selected"):
        if not _is_int(cell.get(key)) or cell[key] < 0:
            return f"{where}.{key} must be a non-negative integer"
    if not _is_number(cell.get("accuracy")) or not 0 <= cell["accuracy"] <= 1:
        return f"{where}.accuracy must be a number from 0 to 1"
    per_class = cell.get("per_class_accuracy")
    if not isinstance(per_class, dict) or not all(value is None or _is_number(value) for value in per_class.values()):
        return f"{where}.per_class_accuracy must map class names to numbers"
    timings = cell.get("timings")
    if not isinstance(timings, dict) or sorted(timings) != sorted(TIMING_KEYS) \
            or not all(_is_number(value) for value in timings.values()):
        return f"{where}.timings must hold the numbers {', '.join(TIMING_KEYS)}"
    if "ran" in cell and not isinstance(cell["ran"], str):
        return f"{where}.ran must be a string"
    return _indices_problem(cell.get("selected_indices"), n_train, f"{where}.selected_indices")


def _cells_problem(cells, n_train: int, where: str) -> str | None:
    if not isinstance(cells, list):
        return f"{where} must be a list of cells"
    for number, cell in enumerate(cells, start=1):
        problem = cell_problem(cell, n_train, f"{where}[{number - 1}]")
        if problem is None and cell["round"] != number:
            problem = f"{where}[{number - 1}].round must be {number}"
        if problem is not None:
            return problem
    return None


def results_problem(recorded, n_train: int) -> str | None:
    """What keeps a parsed results.json from being resumed (its shape and field types), or None."""
    if not isinstance(recorded, dict):
        return f"it holds a JSON {type(recorded).__name__}, not an object"
    if not isinstance(recorded.get("config_hash"), str):
        return "config_hash must be a string"
    execution = recorded.get("execution", execution_settings(1))
    if not isinstance(execution, dict) or not _is_int(execution.get("workers")):
        return "execution.workers must be an integer"
    peak = recorded.get("peak_memory_mb")
    if peak is not None and not _is_number(peak):
        return "peak_memory_mb must be a number or null"
    seeds = recorded.get("seeds")
    if not isinstance(seeds, dict):
        return "seeds must be an object"
    for seed, record in seeds.items():
        where = f"seeds[{seed!r}]"
        if not seed.isdigit() or not isinstance(record, dict):
            return f"{where} must be an object under a seed number"
        if not _is_int(record.get("pool_size")) or not isinstance(record.get("strategies"), dict):
            return f"{where} must hold pool_size (an integer) and strategies (an object)"
        problem = _indices_problem(record.get("initial_indices"), n_train, f"{where}.initial_indices")
        if problem is None and "base" in record:
            problem = cell_problem(record["base"], n_train, f"{where}.base")
        for name, cells in record["strategies"].items():
            problem = problem or _cells_problem(cells, n_train, f"{where}.strategies[{name!r}]")
        if problem is not None:
            return problem
    return None


def open_results(output_dir: Path, config: BenchmarkConfig, dataset: Dataset, command: str,
                 workers: int = 1) -> dict:
    """The results to continue: the recorded ones (plus any worker's finished cells) when the config hash and
    execution settings match, new ones when there are none. The strategy list and seed count may differ: a
    resume with more strategies or seeds runs only the missing cells. A results file that cannot be resumed is
    refused with one error, and never overwritten."""
    fresh = new_results(config, dataset, command, workers)
    path = output_dir / RESULTS_FILENAME
    keep = "move it away or choose another --output-dir (it is left as it is)"
    if os.path.lexists(path):
        recorded = read_json_record(path, "benchmark results", keep)
        problem = results_problem(recorded, len(dataset.x_train))
        if problem is not None:
            raise ToolkitError(f"{path} is not benchmark results this run can resume ({problem}): {keep}")
        if recorded["config_hash"] != fresh["config_hash"]:
            raise ToolkitError(f"{output_dir} holds a benchmark with different settings or data (config hash "
                               f"{recorded['config_hash'][:16]}, now {fresh['config_hash']}): rerun with the same "
                               "arguments to resume, or choose another --output-dir")
        if recorded.get("execution", execution_settings(1)) != fresh["execution"]:
            raise ToolkitError(f"{output_dir} was run with --workers {recorded['execution']['workers']}: resume "
                               "with the same --workers (the thread count changes the numbers)")
        recorded.update(command=command, config=fresh["config"], dataset=fresh["dataset"])
        fresh = recorded
    merge_worker_cells(fresh, output_dir, config, len(dataset.x_train))
    check_recommended_cells(fresh)
    return fresh


def seed_record(results: dict, config: BenchmarkConfig, n_train: int, seed: int) -> dict:
    """The results' record of ``seed``, created with its initial labeled set when missing."""
    order = seed_order(n_train, config, seed)
    return results["seeds"].setdefault(str(seed), {"initial_indices": [int(i) for i in order[:config.n0]],
                                                   "pool_size": int(len(order) - config.n0), "strategies": {}})


def worker_cells_path(output_dir: Path, seed: int, name: str) -> Path:
    """Where a worker process records the finished cells of one (seed, strategy) or a seed's base."""
    return output_dir / WORKER_DIRNAME / f"seed{seed}_{name}.json"


def merge_worker_cells(results: dict, output_dir: Path, config: BenchmarkConfig, n_train: int) -> None:
    """Fold the cells worker processes recorded (one file per seed and strategy) into ``results``."""
    folder = output_dir / WORKER_DIRNAME
    if not folder.is_dir():
        return
    redo = "delete it, and its cells are run again"
    for path in sorted(folder.glob("seed*.json")):
        part = read_json_record(path, "a worker's cells", redo)
        if isinstance(part, dict) and part.get("config_hash") != results["config_hash"]:
            continue
        problem = worker_cells_problem(part, config, n_train)
        if problem is not None:
            raise ToolkitError(f"{path} is not a worker's cells ({problem}): {redo}")
        record = seed_record(results, config, n_train, part["seed"])
        if part["name"] == "base":
            record.setdefault("base", part["cells"][0])
        elif len(part["cells"]) > len(record["strategies"].get(part["name"], [])):
            record["strategies"][part["name"]] = part["cells"]


def worker_cells_problem(part, config: BenchmarkConfig, n_train: int) -> str | None:
    """What is wrong with a worker's record of one (seed, strategy) or a seed's base, or None."""
    if not isinstance(part, dict) or not _is_int(part.get("seed")) or not 0 <= part["seed"] < 2**32 \
            or not isinstance(part.get("name"), str):
        return "it must be an object with a seed number and a strategy name"
    if part["name"] == "base":
        cells = part.get("cells")
        if not isinstance(cells, list) or len(cells) != 1:
            return "a base record must hold one cell"
        return cell_problem(cells[0], n_train, "cells[0]")
    if part["name"] not in STRATEGY_REGISTRY:
        return f"{part['name'][:40]!r} is not a strategy"
    return _cells_problem(part.get("cells"), n_train, "cells")


def run_benchmark(config: BenchmarkConfig, output_dir: str | Path, *, dataset: Dataset | None = None,
                  command: str = "", verbose: bool = True, on_cell: Callable[[dict], None] | None = None,
                  workers: int = 1) -> dict:
    """Run (or resume) the benchmark into ``output_dir``; write results.json, learning_curve.png and report.md.

    ``workers`` > 1 runs that many processes with one TensorFlow thread each (faster on several cores than one
    process using them all; the numbers differ from a one-process run, hence a resume needs the same value).
    ``on_cell(results)`` is called after each finished cell has been written (one process only; a progress
    hook). Returns the results dictionary.
    """
    config.validate()
    if not isinstance(workers, int) or workers < 1:
        raise ToolkitError(f"--workers must be a positive integer, got {workers!r}")
    output_dir = check_writable_directory(output_dir, "--output-dir")
    dataset = dataset if dataset is not None else load_benchmark_dataset(config)
    seed_order(len(dataset.x_train), config, 0)
    results = open_results(output_dir, config, dataset, command, workers)
    write_json(output_dir / RESULTS_FILENAME, results)
    say = print if verbose else (lambda *args, **kwargs: None)
    if workers == 1:
        for seed in range(config.seeds):
            def save(state: Path, weights: list[np.ndarray]) -> None:
                save_weights(state, weights)
                write_json(output_dir / RESULTS_FILENAME, results)
                if on_cell is not None:
                    on_cell(results)

            run = SeedRun(config, dataset, seed, output_dir, say)
            run.run_base(seed_record(results, config, len(dataset.x_train), seed), save)
            for name in config.strategies:
                run.run_strategy(name, results["seeds"][str(seed)]["strategies"].setdefault(name, []), save)
    else:
        run_in_workers(config, dataset, output_dir, results, workers, verbose)
        merge_worker_cells(results, output_dir, config, len(dataset.x_train))
    results["peak_memory_mb"] = max(peak_memory_mb(), results.get("peak_memory_mb") or 0.0)
    write_json(output_dir / RESULTS_FILENAME, results)
    shutil.rmtree(output_dir / WORKER_DIRNAME, ignore_errors=True)
    write_report(results, output_dir)
    say(f"wrote {output_dir / RESULTS_FILENAME}, {output_dir / CURVE_FILENAME} and {output_dir / REPORT_FILENAME}")
    return results


class SeedRun:
    """One seed's simulation: its order of the training set, its model (built on first use) and saved states.

    The seed's permutation gives the initial labeled set (its first ``n0`` images) and the pool (the rest).
    """

    def __init__(self, config: BenchmarkConfig, dataset: Dataset, seed: int, output_dir: Path, say):
        self.config, self.seed, self.say = config, int(seed), say
        self.order = seed_order(len(dataset.x_train), config, seed)
        self.view = dataclasses.replace(dataset, x_train=dataset.x_train[self.order],
                                        y_train=dataset.y_train[self.order])
        self.position = np.full(len(dataset.x_train), -1, dtype=np.int64)
        self.position[self.order] = np.arange(len(self.order))
        self.state_dir = output_dir / STATE_DIRNAME
        self.label = f"seed {self.seed + 1}/{config.seeds}"
        self._trainer: SeedTrainer | None = None
        self._pixel_features: np.ndarray | None = None

    @property
    def trainer(self) -> SeedTrainer:
        if self._trainer is None:
            started = time.perf_counter()
            self._trainer = SeedTrainer(self.view, self.config.recipe(), self.seed,
                                        self.config.keep_best_validation_epoch)
            self.say(f"{self.label}: model built in {time.perf_counter() - started:.1f} s", flush=True)
        return self._trainer

    def pixel_features(self) -> np.ndarray:
        """PCA-of-pixels features of every image of the seed (initial set + pool), computed once per process."""
        if self._pixel_features is None:
            self._pixel_features = pixel_pca_features(self.view.x_train, seed=self.seed)
        return self._pixel_features

    def train_and_evaluate(self, extra_positions: np.ndarray) -> tuple[dict, dict, float, float]:
        train_idx, validation_idx = training_indices(self.view, self.config.n0, extra_positions,
                                                     self.config.recipe().validation_fraction)
        began = time.perf_counter()
        facts = self.trainer.train(train_idx, validation_idx)
        trained = time.perf_counter()
        evaluation = self.trainer.evaluate()
        return evaluation, facts, trained - began, time.perf_counter() - trained

    def run_base(self, record: dict, save: Callable[[Path, list], None]) -> None:
        """Round 0, shared by every strategy: train on the initial set unless recorded with its saved model."""
        base_state = state_path(self.state_dir, self.seed, "base", 0)
        if "base" not in record or not base_state.exists():
            evaluation, facts, training_s, evaluation_s = self.train_and_evaluate(np.zeros(0, np.int64))
            record["base"] = _cell(0, self.config.n0, evaluation, np.zeros(0, np.int64), facts,
                                   {"forward_s": 0.0, "selection_s": 0.0, "training_s": training_s,
                                    "evaluation_s": evaluation_s})
            save(base_state, self.trainer.model.get_weights())
        self.say(f"{self.label} base round 0/{self.config.rounds}: accuracy {record['base']['accuracy']:.3f} "
                 f"with {self.config.n0} labels", flush=True)

    def run_strategy(self, name: str, cells: list[dict], save: Callable[[Path, list], None]) -> None:
        """The rounds of ``name`` not yet in ``cells`` (appended in place), each saved as it finishes."""
        config = self.config
        if len(cells) >= config.rounds:
            return
        if not state_path(self.state_dir, self.seed, name, len(cells)).exists():
            del cells[:]
        restore_weights(self.trainer.model, state_path(self.state_dir, self.seed, name, len(cells)))
        selected = [int(self.position[i]) for cell in cells for i in cell["selected_indices"]]
        for round_number in range(len(cells) + 1, config.rounds + 1):
            cell, chosen = run_round(config, self.view, self.order, self.trainer, name, self.seed, round_number,
                                     np.asarray(selected, np.int64), self.train_and_evaluate, self.pixel_features)
            selected.extend(int(p) for p in chosen)
            cells.append(cell)
            save(state_path(self.state_dir, self.seed, name, round_number), self.trainer.model.get_weights())
            if round_number > 1:
                state_path(self.state_dir, self.seed, name, round_number - 1).unlink(missing_ok=True)
            self.say(f"{self.label} {name} round {round_number}/{config.rounds}: accuracy {cell['accuracy']:.3f} "
                     f"with {cell['labels']} labels ({cell['n_selected']} selected)", flush=True)


_WORKER: dict = {}
"""A worker process's settings and its SeedRun per seed (each model is built once per process)."""


def _start_worker(config: BenchmarkConfig, dataset: Dataset, output_dir: Path, config_hash_: str,
                  verbose: bool) -> None:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    _WORKER.update(config=config, dataset=dataset, output_dir=output_dir, config_hash=config_hash_, runs={},
                   say=print if verbose else (lambda *args, **kwargs: None))


def _worker_job(job: tuple[int, str, list[dict]]) -> float:
    """Run one seed's base (name "base") or one strategy's missing rounds; returns the process's peak memory."""
    seed, name, cells = job
    config, output_dir = _WORKER["config"], _WORKER["output_dir"]
    if seed not in _WORKER["runs"]:
        _WORKER["runs"][seed] = SeedRun(config, _WORKER["dataset"], seed, output_dir, _WORKER["say"])
    run = _WORKER["runs"][seed]
    record = {"base": cells[0]} if name == "base" and cells else {}

    def save(state: Path, weights: list[np.ndarray]) -> None:
        save_weights(state, weights)
        written = [record["base"]] if name == "base" else cells
        write_json(worker_cells_path(output_dir, seed, name), {"config_hash": _WORKER["config_hash"],
                                                               "seed": seed, "name": name, "cells": written})

    if name == "base":
        run.run_base(record, save)
    else:
        run.run_strategy(name, cells, save)
    return peak_memory_mb()


def run_in_workers(config: BenchmarkConfig, dataset: Dataset, output_dir: Path, results: dict, workers: int,
                   verbose: bool) -> None:
    """Every missing cell over ``workers`` processes: first each seed's base, then one job per (seed, strategy)."""
    import multiprocessing

    records = {seed: seed_record(results, config, len(dataset.x_train), seed) for seed in range(config.seeds)}
    bases = [(seed, "base", [record["base"]] if "base" in record else []) for seed, record in records.items()]
    jobs = [(seed, name, record["strategies"].get(name, [])) for seed, record in records.items()
            for name in config.strategies if len(record["strategies"].get(name, [])) < config.rounds]
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_start_worker,
                      initargs=(config, dataset, output_dir, results["config_hash"], verbose)) as pool:
        peaks = list(pool.imap_unordered(_worker_job, bases))
        peaks += list(pool.imap_unordered(_worker_job, jobs))
    results["peak_memory_mb"] = max([*peaks, results.get("peak_memory_mb") or 0.0])


def run_round(config: BenchmarkConfig, view: Dataset, order: np.ndarray, trainer: SeedTrainer, name: str,
              seed: int, round_number: int, selected: np.ndarray, train_and_evaluate,
              pixel_features: Callable[[], np.ndarray]) -> tuple[dict, np.ndarray]:
    """One cell: the current model scores pool + labeled, ``name`` picks, the model is retrained and evaluated.

    ``selected`` and the returned picks are positions in ``view`` (the seed's order); the cell records them as
    absolute training indices of the dataset (``order[position]``).
    """
    labeled = np.concatenate([np.arange(config.n0), selected]).astype(np.int64)
    remaining = np.setdiff1d(np.arange(config.n0, len(view.x_train)), selected)
    rows = np.concatenate([remaining, labeled])
    began = time.perf_counter()
    probabilities, embeddings = trainer.infer(rows)
    forward_s = time.perf_counter() - began
    began = time.perf_counter()
    from altoolkit.model import classifier_head

    extras = RoundExtras(head=lambda: classifier_head(trainer.model), pixel_features=lambda: pixel_features()[rows])
    chosen_rows = STRATEGY_REGISTRY[name](probabilities, embeddings, embeddings[len(remaining):],
                                         np.arange(len(remaining)), np.arange(len(remaining), len(rows)),
                                         view.y_train[labeled], config.budget, selection_seed(seed, round_number),
                                         extras=extras)
    selection_s = time.perf_counter() - began
    chosen = rows[np.asarray(chosen_rows, dtype=np.int64)]
    evaluation, facts, training_s, evaluation_s = train_and_evaluate(np.concatenate([selected, chosen]))
    timings = {"forward_s": forward_s, "selection_s": selection_s, "training_s": training_s,
               "evaluation_s": evaluation_s}
    cell = _cell(round_number, config.n0 + len(selected) + len(chosen), evaluation, order[chosen], facts, timings)
    if name == RECOMMENDED:
        cell["ran"] = recommended_label(len(labeled), view.num_classes)
    return cell, chosen


def recommended_label(labeled_count: int, num_classes: int) -> str:
    """What "recommended" runs at this labeled count, as recorded in its cells (e.g. "margin over model")."""
    return " over ".join(recommended_choice(labeled_count, num_classes))


def check_recommended_cells(results: dict) -> None:
    """Refuse to resume "recommended" cells made under another rule: each cell records what it ran, and the
    rule (AL_functions.recommended_choice) may have changed since."""
    num_classes = len(results["dataset"]["class_names"])
    for seed, record in results["seeds"].items():
        for cell in record.get("strategies", {}).get(RECOMMENDED, []):
            now = recommended_label(cell["labels"] - cell["n_selected"], num_classes)
            if cell.get("ran") != now:
                raise ToolkitError(f"seed {seed} round {cell['round']} of '{RECOMMENDED}' ran {cell.get('ran')!r} "
                                   f"but the rule now gives {now!r}: rerun it into a new --output-dir, or drop "
                                   f"'{RECOMMENDED}' from --strategies")


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far (Linux reports ru_maxrss in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# -------------------------------------------------------------------------------------------------- statistics

def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """(mean, half-width of the t confidence interval); the half-width is 0 for a single value."""
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    if len(x) < 2:
        return float(x.mean()) if len(x) else float("nan"), 0.0
    half = stats.t.ppf(0.5 + confidence / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return float(x.mean()), float(half)


def paired_difference(strategy: Sequence[float], baseline: Sequence[float]) -> tuple[float, float | None]:
    """(mean of strategy − baseline over paired seeds, two-sided paired t-test p-value; None if undefined)."""
    from scipy import stats

    a, b = np.asarray(strategy, np.float64), np.asarray(baseline, np.float64)
    if a.shape != b.shape or a.size == 0:
        raise ToolkitError(f"paired values need equal, non-empty lengths, got {a.size} and {b.size}")
    difference = float((a - b).mean())
    if a.size < 2 or np.allclose(a - b, (a - b)[0]):
        return difference, None
    return difference, float(stats.ttest_rel(a, b).pvalue)


def area_under_curve(labels: Sequence[float], accuracies: Sequence[float]) -> float:
    """Trapezoid area under accuracy-vs-labels divided by the label range (a mean accuracy in [0, 1])."""
    x, y = np.asarray(labels, np.float64), np.asarray(accuracies, np.float64)
    if len(x) == 1 or x[-1] == x[0]:
        return float(y.mean())
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2 / (x[-1] - x[0]))


def labels_to_reach(labels: Sequence[float], accuracies: Sequence[float], target: float) -> float | None:
    """Labels a curve needs to reach ``target`` accuracy (linear interpolation, first crossing); None if never."""
    x, y = np.asarray(labels, np.float64), np.asarray(accuracies, np.float64)
    if len(x) and y[0] >= target:
        return float(x[0]) if y[0] == target else None
    for i in range(len(x) - 1):
        if y[i] < target <= y[i + 1]:
            return float(x[i] + (target - y[i]) * (x[i + 1] - x[i]) / (y[i + 1] - y[i]))
    return None


def label_efficiency(baseline_labels: Sequence[float], baseline_accuracies: Sequence[float], target: float,
                     labels_used: float) -> float | None:
    """Labels the baseline needs for ``target`` accuracy ÷ labels the strategy used; None outside its range."""
    needed = labels_to_reach(baseline_labels, baseline_accuracies, target)
    return None if needed is None or labels_used <= 0 else needed / labels_used


def finished_seeds(results: dict) -> list[dict]:
    """Records of the configured seeds whose base and every configured strategy's rounds are all done.

    The statistics use only these, so every strategy is compared over the same paired seeds; a benchmark
    stopped early reports its finished seeds (the report says how many) and resumes the rest later.
    """
    config = results["config"]
    records = [results["seeds"].get(str(seed)) for seed in range(config["seeds"])]
    return [record for record in records
            if record is not None and "base" in record
            and all(len(record["strategies"].get(name, [])) >= config["rounds"] for name in config["strategies"])]


def curves(results: dict, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(labels, accuracies), each finished seed × (rounds + 1), round 0 being the shared base model."""
    labels, accuracies = [], []
    rounds = results["config"]["rounds"]
    for record in finished_seeds(results):
        row = [record["base"], *record["strategies"][name][:rounds]]
        labels.append([cell["labels"] for cell in row])
        accuracies.append([cell["accuracy"] for cell in row])
    return np.asarray(labels, np.float64), np.asarray(accuracies, np.float64)


def summarise(results: dict) -> dict:
    """Per strategy: mean ± std and CI per round, AUC, paired difference vs random with p-values, efficiency."""
    config = results["config"]
    summary = {"strategies": {}}
    base = [record["base"]["accuracy"] for record in finished_seeds(results)]
    summary["base_mean"], summary["base_std"] = (float(np.mean(base)) if base else float("nan"),
                                                 float(np.std(base, ddof=1)) if len(base) > 1 else float("nan"))
    baseline_labels, baseline_acc = curves(results, BASELINE)
    for name in config["strategies"]:
        labels, accuracies = curves(results, name)
        if not len(labels):
            continue
        entry = {"seeds": int(len(labels)), "labels_mean": labels.mean(axis=0).tolist(),
                 "accuracy_mean": accuracies.mean(axis=0).tolist(),
                 "accuracy_ci": [mean_ci(column)[1] for column in accuracies.T],
                 "final_mean": float(accuracies[:, -1].mean()),
                 "final_std": float(accuracies[:, -1].std(ddof=1)) if len(labels) > 1 else float("nan"),
                 "auc": float(np.mean([area_under_curve(x, y) for x, y in zip(labels, accuracies)]))}
        if len(baseline_labels) == len(labels) and name != BASELINE:
            entry["paired"] = [paired_difference(accuracies[:, r], baseline_acc[:, r])
                               for r in range(accuracies.shape[1])]
            entry["paired_ci"] = [mean_ci(accuracies[:, r] - baseline_acc[:, r])[1]
                                  for r in range(accuracies.shape[1])]
        if len(baseline_labels):
            entry["label_efficiency"] = label_efficiency(baseline_labels.mean(axis=0), baseline_acc.mean(axis=0),
                                                         entry["final_mean"], float(labels[:, -1].mean()))
        entry["per_class_final"] = _mean_per_class(results, name)
        summary["strategies"][name] = entry
    return summary


@dataclass(frozen=True)
class Target:
    """What the toolkit aims for with its recommended strategy against random, checked in every report that runs it."""

    first_round_gain: float = 0.03
    min_label_efficiency: float = 1.5
    significant_rounds: int = 3
    alpha: float = 0.05


def target_check(summary: dict, name: str = RECOMMENDED, target: Target = Target()) -> list[tuple[str, str, bool]]:
    """(criterion, measured value, met?) of ``name`` against the target; empty if it was not benchmarked.

    Criteria: mean paired gain over random at round 1; no round with a negative mean difference; label
    efficiency at the last round (not measurable when the final accuracy is outside random's curve, which
    does not count as met); rounds with a positive difference and paired p below ``alpha``.
    """
    entry = summary["strategies"].get(name)
    if entry is None or "paired" not in entry or len(entry["paired"]) < 2:
        return []
    rounds = entry["paired"][1:]
    first_gain = rounds[0][0]
    below = [r for r, (difference, _) in enumerate(rounds, start=1) if difference < 0]
    efficiency = entry.get("label_efficiency")
    significant = [r for r, (difference, p) in enumerate(rounds, start=1)
                   if difference > 0 and p is not None and p < target.alpha]
    return [
        (f"gain over random at round 1 ≥ +{100 * target.first_round_gain:.0f} points",
         f"{100 * first_gain:+.2f}", first_gain >= target.first_round_gain),
        ("never below random (mean paired difference ≥ 0 in every round)",
         "below in " + ", ".join(f"round {r} ({100 * rounds[r - 1][0]:+.2f})" for r in below) if below
         else "never below", not below),
        (f"label efficiency at the last round ≥ {target.min_label_efficiency}",
         _fmt(efficiency, 2) if efficiency is not None else "n/a (final accuracy outside random's curve)",
         efficiency is not None and efficiency >= target.min_label_efficiency),
        (f"ahead with paired p < {target.alpha} in ≥ {target.significant_rounds} of {len(rounds)} rounds",
         f"{len(significant)} of {len(rounds)}"
         + (f" (rounds {', '.join(map(str, significant))})" if significant else ""),
         len(significant) >= target.significant_rounds),
    ]


def target_lines(summary: dict) -> list[str]:
    """The report's section on the recommended strategy's target (empty when it was not benchmarked)."""
    checks = target_check(summary)
    if not checks:
        return []
    lines = ["## Target: recommended vs random", "",
             "The toolkit's aim for its default strategy (met only if every row holds).", "",
             "| criterion | measured | met |", "| --- | --- | --- |"]
    lines += [f"| {criterion} | {measured} | {'yes' if met else 'no'} |" for criterion, measured, met in checks]
    verdict = "met" if all(met for _, _, met in checks) else "not met"
    return [*lines, "", f"Target {verdict}."]


def _mean_per_class(results: dict, name: str) -> dict[str, float | None]:
    rounds = results["config"]["rounds"]
    rows = [record["strategies"][name][rounds - 1]["per_class_accuracy"] for record in finished_seeds(results)]
    return {cls: (float(np.mean([row[cls] for row in rows])) if rows and rows[0][cls] is not None else None)
            for cls in results["dataset"]["class_names"]}


# ------------------------------------------------------------------------------------------------------ report

def _fmt(value, digits: int = 3, percent: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{100 * value:.1f}" if percent else f"{value:.{digits}f}"


def render_report(results: dict, summary: dict) -> str:
    """The markdown report: command, setting, detectable effect, strategy tables, per-class accuracy, speed."""
    config, data = results["config"], results["dataset"]
    rounds = config["rounds"]
    lines = ["# Active-learning benchmark", "", "## Command", "", f"```\n{results['command']}\n```", "",
             "## Setting", "",
             f"- data: {data['name']} ({', '.join(data['class_names'])}), {data['train_size']} training / "
             f"{data['test_size']} test images, fingerprint {data['fingerprint']}",
             f"- per seed: {config['n0']} initial labels (last 10 % = validation for the best epoch), pool "
             f"{config['pool_size'] if config['pool_size'] is not None else 'all the rest'}, {rounds} rounds × "
             f"{config['budget']} labels; retrained from the seed's initial weights each round",
             f"- training: {config['epochs']} epochs, batch {config['batch_size']}, Adam {config['learning_rate']}, "
             f"flip augmentation {'on' if config['flip_augmentation'] else 'off'}, learning rate "
             f"{'cosine-decayed to 0' if config.get('cosine_decay') else 'constant'}, weights of the "
             f"{'best-validation' if config.get('keep_best_validation_epoch') else 'last'} epoch",
             "- features the strategies measure distances on: the current model's penultimate embeddings of pool "
             "and labeled images (one forward pass per round); strategies named `*_pixels` use a 50-component "
             "PCA of the raw pixels of pool ∪ labeled instead (no model needed)",
             *recommended_lines(results),
             f"- seeds: {config['seeds']} (finished, and used below: {len(finished_seeds(results))}); "
             f"config hash {results['config_hash']}", "",
             "## What the benchmark can detect", "",
             f"Round-0 (base model) accuracy over seeds: mean {_fmt(summary['base_mean'], percent=True)} %, "
             f"std {_fmt(summary['base_std'], percent=True)} points"
             f"{' (a spread needs two seeds)' if len(finished_seeds(results)) < 2 else ''}. Differences between "
             "strategies smaller than this spread are within seed-to-seed noise: it is the smallest effect this "
             "benchmark can detect without the paired test below.", "",
             "## Strategies", "",
             "| strategy | seeds | labels (last round) | final accuracy % (mean ± std) | AUC % | label efficiency |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name, entry in summary["strategies"].items():
        lines.append(f"| {name} | {entry['seeds']} | {entry['labels_mean'][-1]:.0f} | "
                     f"{_fmt(entry['final_mean'], percent=True)} ± {_fmt(entry['final_std'], percent=True)} | "
                     f"{_fmt(entry['auc'], percent=True)} | {_fmt(entry.get('label_efficiency'), 2)} |")
    lines += ["", "AUC: trapezoid area under accuracy vs labels, divided by the label range. Label efficiency: labels "
              "random needs to reach the strategy's mean final accuracy (linear interpolation on random's mean "
              "curve) ÷ labels the strategy used; n/a when that accuracy is outside random's range.", "",
              f"## Paired difference vs {BASELINE} (points, p-value of a paired t-test)", "",
              "Cells are paired by seed and round. A strategy that used a different number of labels than random "
              "(intersection) is compared at unequal label counts here: read its label efficiency instead.", "",
              "| strategy | " + " | ".join(f"round {r}" for r in range(rounds + 1)) + " |",
              "| --- |" + " --- |" * (rounds + 1)]
    for name, entry in summary["strategies"].items():
        if "paired" in entry:
            lines.append(f"| {name} | " + " | ".join(f"{100 * d:+.1f} (p={_fmt(p, 3)})" for d, p in entry["paired"])
                         + " |")
    target_section = target_lines(summary)
    if target_section:
        lines += ["", *target_section]
    classes = data["class_names"]
    lines += ["", "## Per-class accuracy at the last round (%)", "",
              "| strategy | " + " | ".join(classes) + " |", "| --- |" + " --- |" * len(classes)]
    for name, entry in summary["strategies"].items():
        lines.append(f"| {name} | " + " | ".join(_fmt(entry["per_class_final"][c], percent=True) for c in classes)
                     + " |")
    lines += ["", "## Speed", "", "Median seconds per cell over seeds and strategies.", "",
              "| round | forward pass | selection | training | evaluation |", "| --- | --- | --- | --- | --- |"]
    for round_number, medians in speed_table(results).items():
        lines.append(f"| {round_number} | " + " | ".join(f"{medians[k]:.2f}" for k in
                                                        ("forward_s", "selection_s", "training_s", "evaluation_s"))
                     + " |")
    lines += ["", "Per strategy (median seconds over its seeds and rounds): the forward pass over pool + labeled "
              "that feeds it, the strategy's own selection, and the retraining.", "",
              "| strategy | forward pass | selection | selection / forward pass | training |",
              "| --- | --- | --- | --- | --- |"]
    for name, medians in strategy_speed_table(results).items():
        ratio = medians["selection_s"] / medians["forward_s"] if medians["forward_s"] > 0 else float("nan")
        lines.append(f"| {name} | {medians['forward_s']:.2f} | {medians['selection_s']:.2f} | {ratio:.2f}× | "
                     f"{medians['training_s']:.1f} |")
    execution = results.get("execution", execution_settings(1))
    lines += ["", f"Peak memory (resident, largest process): {_fmt(results.get('peak_memory_mb'), 0)} MB. "
              f"Processes: {execution['workers']}, TensorFlow threads each: {execution['tensorflow_threads']}.",
              ""]
    return "\n".join(lines)


def recommended_lines(results: dict) -> list[str]:
    """The Setting line saying what "recommended" ran in each round (empty when it was not benchmarked)."""
    rounds: dict[int, set[str]] = {}
    for record in finished_seeds(results):
        for cell in record["strategies"].get(RECOMMENDED, []):
            rounds.setdefault(cell["round"], set()).add(cell["ran"])
    if not rounds:
        return []
    ran_by_round = "; ".join(f"round {r}: {' / '.join(sorted(ran))}" for r, ran in sorted(rounds.items()))
    return [f"- recommended ran: {ran_by_round} (AL_functions.recommended_choice)"]


def speed_table(results: dict) -> dict[int, dict[str, float]]:
    """round → median timing per stage over every recorded cell of that round."""
    by_round: dict[int, list[dict]] = {}
    for record in results["seeds"].values():
        cells = ([record["base"]] if "base" in record else []) + [
            cell for name_cells in record.get("strategies", {}).values() for cell in name_cells]
        for cell in cells:
            by_round.setdefault(cell["round"], []).append(cell["timings"])
    return {r: {key: float(np.median([t[key] for t in timings])) for key in timings[0]}
            for r, timings in sorted(by_round.items())}


def strategy_speed_table(results: dict) -> dict[str, dict[str, float]]:
    """strategy → median timing per stage over its cells in the finished seeds."""
    table = {}
    for name in results["config"]["strategies"]:
        timings = [cell["timings"] for record in finished_seeds(results) for cell in record["strategies"][name]]
        if timings:
            table[name] = {key: float(np.median([t[key] for t in timings])) for key in timings[0]}
    return table


def plot_learning_curves(summary: dict, target: Path, title: str) -> Path:
    """Left: accuracy vs labels per strategy, mean with a shaded 95 % CI over seeds. Right: each strategy's
    paired difference from random per round with its 95 % CI, the comparison the tables test."""
    from matplotlib import colormaps
    from matplotlib.ticker import MaxNLocator

    from altoolkit.plots import new_figure, save_figure

    figure = new_figure(14, 6)
    curves_axis, difference_axis = figure.subplots(1, 2)
    colours = colormaps["tab10"].colors
    for number, (name, entry) in enumerate(summary["strategies"].items()):
        colour, style = colours[number % len(colours)], ("-", "--", ":")[number // len(colours) % 3]
        x, y, ci = (np.asarray(entry[key]) for key in ("labels_mean", "accuracy_mean", "accuracy_ci"))
        curves_axis.plot(x, y, style, marker="o", markersize=3, label=name, color=colour)
        curves_axis.fill_between(x, y - ci, y + ci, alpha=0.12, color=colour)
        if "paired" in entry:
            rounds = np.arange(len(entry["paired"]))
            difference = 100 * np.asarray([d for d, _ in entry["paired"]])
            half = 100 * np.asarray(entry["paired_ci"])
            difference_axis.plot(rounds, difference, style, marker="o", markersize=3, color=colour)
            difference_axis.fill_between(rounds, difference - half, difference + half, alpha=0.08, color=colour)
    curves_axis.set_xlabel("labeled images")
    curves_axis.set_ylabel("test accuracy")
    curves_axis.set_title(title)
    difference_axis.axhline(0.0, color="black", linewidth=1)
    difference_axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    difference_axis.set_xlabel("round")
    difference_axis.set_ylabel(f"accuracy − {BASELINE}, points (paired by seed)")
    difference_axis.set_title(f"paired difference vs {BASELINE}, mean ± 95 % CI")
    for axis in (curves_axis, difference_axis):
        axis.grid(alpha=0.3)
    figure.legend(*curves_axis.get_legend_handles_labels(), loc="lower center", ncol=6, frameon=False)
    figure.subplots_adjust(bottom=0.25)
    return save_figure(target, figure)


def write_report(results: dict, output_dir: Path) -> None:
    summary = summarise(results)
    seeds = len(finished_seeds(results))
    plot_learning_curves(summary, output_dir / CURVE_FILENAME,
                         f"{results['dataset']['name']}: mean ± 95 % CI over {seeds} seeds")
    write_text(output_dir / REPORT_FILENAME, render_report(results, summary))


# --------------------------------------------------------------------------------------------------------- CLI

def build_parser() -> argparse.ArgumentParser:
    parser = ToolkitArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick", choices=sorted(PRESETS),
                        help="starting settings, each overridable below (default: quick)")
    parser.add_argument("--output-dir", default=None, help="where files go (default: results/benchmark/<preset>)")
    parser.add_argument("--dataset", default=None, help="data source (digits, fashion_mnist, cifar10, folder, npz)")
    parser.add_argument("--classes", default=None, help="comma-separated class ids or names, or 'all'")
    parser.add_argument("--data-path", default=None, help="archive, folder or .npz to read")
    parser.add_argument("--image-size", type=positive_int, default=None, help="square image side (default: 32)")
    parser.add_argument("--n0", type=positive_int, default=None, help="initial labeled images per seed (at least 2)")
    parser.add_argument("--budget", type=positive_int, default=None, help="images selected per round")
    parser.add_argument("--rounds", type=positive_int, default=None, help="selection rounds")
    parser.add_argument("--seeds", type=positive_int, default=None, help="number of paired seeds (0..S-1)")
    parser.add_argument("--epochs", type=positive_int, default=None, help="training epochs per round")
    parser.add_argument("--strategies", default=None, help=f"comma-separated, from {','.join(STRATEGY_REGISTRY)}")
    parser.add_argument("--pool-size", type=positive_int, default=None,
                        help="pool images per seed (default: all the rest)")
    parser.add_argument("--batch-size", type=positive_int, default=None, help="training batch size (default: 32)")
    parser.add_argument("--workers", type=positive_int, default=1,
                        help="processes training in parallel, one TensorFlow thread each (default: 1 process "
                             "with TensorFlow's default threads); use the number of CPU cores for long runs")
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")
    return parser


def config_from_args(args: argparse.Namespace) -> BenchmarkConfig:
    """The preset with every given option replacing its value."""
    changes = {key: getattr(args, key) for key in ("dataset", "data_path", "image_size", "n0", "budget", "rounds",
                                                   "seeds", "epochs", "pool_size", "batch_size")
               if getattr(args, key) is not None}
    if args.classes is not None:
        changes["classes"] = (None if args.classes.strip().lower() == "all"
                              else tuple(str(c) for c in parse_classes(args.classes)))
    if args.strategies is not None:
        changes["strategies"] = tuple(s.strip() for s in args.strategies.split(",") if s.strip())
    return dataclasses.replace(PRESETS[args.preset], **changes)


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    output_dir = Path(args.output_dir or f"results/benchmark/{args.preset}")
    command = shlex.join([Path(sys.argv[0]).name if argv is None else "benchmark.py",
                          *(sys.argv[1:] if argv is None else argv)])
    run_benchmark(config, output_dir, command=command, verbose=not args.quiet, workers=args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
