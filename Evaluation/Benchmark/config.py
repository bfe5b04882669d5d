"""The benchmark's settings: presets, which strategy names it runs, the config hash that makes a run resumable, and
each seed's order of the training set."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

import numpy as np

import AL_functions as alf
from altoolkit.data import Dataset, load_dataset
from altoolkit.errors import ToolkitError
from altoolkit.sampling import seeded_subsample
from altoolkit.training import TrainingRecipe
from altoolkit.validation import short_repr

RESULTS_FILENAME = "results.json"
REPORT_FILENAME = "report.md"
HTML_REPORT_FILENAME = "report.html"
CURVE_FILENAME = "learning_curve.png"
ACCURACY_PER_LABEL_FILENAME = "accuracy_per_label.png"
STATE_DIRNAME = "state"
WORKER_DIRNAME = "worker_cells"
FORMAT_VERSION = 3
"""Part of the config hash: bumped whenever the code changes the numbers (2: training drops each epoch's last,
partial batch; 3: the training shuffle depends on the cell's seed alone), so a results file from older code is
never resumed into a mixed benchmark."""
FAST_LEARNERS = ("linear", "label_spreading")
"""Learners the benchmark refits from scratch every round in seconds, on a label-free representation."""
DISTILLED = "mobilenet_distilled"
"""MobileNetV3Small retrained every round on the labels plus label spreading's surest pseudo-labels of the pool
(over :data:`PSEUDO_LABEL_REPRESENTATION`); strategies measure on its embeddings, as with ``mobilenet``."""
PSEUDO_LABEL_REPRESENTATION = "patches"
INITIAL_CHOICES = ("random", "each")
"""How each seed's first ``n0`` labels are chosen: at random (shared by every strategy), by each strategy itself
from zero labels (a cold start; random's stay random), or — any strategy name — by that strategy for all."""
BASELINE = "random"

PIXELS_SUFFIX = "_pixels"


def benchmark_strategy(name: str) -> tuple[str, str]:
    """(strategy, representation) a benchmark strategy name runs.

    Every name of the strategy table runs over the model's embeddings; ``<name>_pixels`` runs a table strategy
    that measures distances over a PCA of the pixels instead; ``recommended`` resolves per round; a
    ``package.module:function`` name is imported and registered (so worker processes find it too).
    """
    if name == alf.RECOMMENDED:
        return name, "model"
    base = name.removesuffix(PIXELS_SUFFIX)
    if name != base and base in alf.STRATEGY_TABLE and alf.STRATEGY_TABLE[base].uses_features:
        return base, "pixels"
    if name in alf.STRATEGY_TABLE or str(name).count(":") == 1:
        return alf.strategy_entry(name).name, "model"
    distance_based = ", ".join(name for name, entry in alf.STRATEGY_TABLE.items() if entry.uses_features)
    raise ToolkitError(f"unknown strategy {short_repr(name)}: choose from {', '.join(alf.STRATEGY_TABLE)}, "
                       f"{alf.RECOMMENDED}, <name>{PIXELS_SUFFIX} for {distance_based}, or package.module:function")


def benchmark_strategy_names() -> tuple[str, ...]:
    """Every name :func:`benchmark_strategy` accepts (besides ``package.module:function``), derived from the table."""
    over_pixels = (f"{name}{PIXELS_SUFFIX}" for name, entry in alf.STRATEGY_TABLE.items() if entry.uses_features)
    return (*alf.STRATEGY_TABLE, *over_pixels, alf.RECOMMENDED)


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
    learner: str = "mobilenet"
    """``mobilenet`` (trained from the seed's initial weights every round), ``mobilenet_distilled`` (the same, on
    the labels plus pseudo-labels) or a fast learner, ``linear`` or ``label_spreading``, refitted every round on
    ``representation``'s features."""
    representation: str = "model"
    """What strategies measure distances on: ``model`` (the learner's own features: MobileNet's embeddings, or the
    fast learner's representation) — and, for a fast learner, its representation (``patches`` or ``pixels``)."""
    initial: str = "random"
    """See :data:`INITIAL_CHOICES`."""
    first_seed: int = 0
    """Seeds ``first_seed`` … ``first_seed + seeds − 1``: tuning runs use seeds the README's reports do not."""
    max_candidates: int | None = None
    """Each selection (the cold start's too) chooses among a seeded random sample of this many unlabeled images,
    as ``label.py select --max-candidates`` does; None: among all of them."""

    @property
    def fast(self) -> bool:
        return self.learner in FAST_LEARNERS

    @property
    def distilled(self) -> bool:
        return self.learner == DISTILLED

    @property
    def seed_numbers(self) -> range:
        return range(self.first_seed, self.first_seed + self.seeds)

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
        for name in ("pool_size", "max_candidates"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ToolkitError(f"--{name.replace('_', '-')} must be a positive integer, got {short_repr(value)}")
        if not self.strategies:
            raise ToolkitError("--strategies is empty: name at least one strategy")
        for name in self.strategies:
            benchmark_strategy(name)
        twice = [name for name in self.strategies if self.strategies.count(name) > 1]
        if twice:
            raise ToolkitError(f"--strategies names {twice[0]} twice: name each strategy once")
        if self.learner not in ("mobilenet", DISTILLED, *FAST_LEARNERS):
            raise ToolkitError(f"--learner must be one of mobilenet, {DISTILLED}, {', '.join(FAST_LEARNERS)}, got "
                               f"{short_repr(self.learner)}")
        label_free = ("patches", "pixels")  # a backbone is measured by benchmarks/representations.py
        if self.fast and self.representation not in label_free:
            raise ToolkitError(f"--learner {self.learner} learns on a label-free --representation: choose one of "
                               f"{', '.join(label_free)}")
        if not self.fast and self.representation != "model":
            raise ToolkitError("--representation applies to the fast learners (MobileNet strategies measure on its "
                               "embeddings, or on pixels with the *_pixels strategy names)")
        if self.fast:
            with_head = [name for name in self.strategies if name != alf.RECOMMENDED
                         and "head" in alf.strategy_entry(benchmark_strategy(name)[0]).needs]
            if with_head:
                raise ToolkitError(f"{with_head[0]} reruns MobileNet's dropout layer: the {self.learner} learner "
                                   "has none; drop it from --strategies")
        if self.initial not in INITIAL_CHOICES:
            benchmark_strategy(self.initial)
        if not isinstance(self.first_seed, int) or not 0 <= self.first_seed < 2**31:
            raise ToolkitError(f"--first-seed must be a non-negative integer, got {short_repr(self.first_seed)}")
        self.recipe().validate()


DESIGN_STRATEGIES = ("random", "intersection", "intersection_filled", "entropy", "margin", "diversity", "novelty",
                     "combined")
"""The design's criteria alone and intersected, with random as the baseline."""

BUDGETED_STRATEGIES = ("least_confidence", "bald", "coreset", "coreset_pixels", "badge", "typicality",
                       "typicality_pixels", "diverse_margin", "class_balanced_margin", "class_balanced_random")
"""The low-budget literature's strategies (altoolkit.strategies), each filling the budget exactly."""

PIPELINE_STRATEGIES = ("random", alf.RECOMMENDED, "typicality", "probcover", "margin", "diverse_margin", "badge")
"""Under a fast learner: the cold-start candidates (typicality, ProbCover), the uncertainty ones that led on the
tuning seeds, and the recommended handover between them."""

STRATEGY_FAMILIES = {"uncertainty": ("entropy", "margin", "least_confidence", "uncertainty", "bald"),
                     "uncertainty with diversity": ("badge", "diverse_margin", "class_balanced_margin",
                                                    "class_balanced_random"),
                     "coverage and diversity": ("diversity", "novelty", "coreset", "probcover"),
                     "typical images": ("typicality",),
                     "the design's intersection": ("intersection", "intersection_filled", "combined")}
"""What each table strategy mainly looks for: one panel of the learning-curve figure per family."""


def strategy_family(name: str) -> str:
    """The family of a benchmark strategy name (``*_pixels`` goes with its strategy; others are "other")."""
    base = name.removesuffix(PIXELS_SUFFIX)
    return next((family for family, names in STRATEGY_FAMILIES.items() if base in names), "other")


PRESETS: dict[str, BenchmarkConfig] = {
    "quick": BenchmarkConfig(),
    "seed-experiment": BenchmarkConfig(dataset="cifar10", classes=("airplane", "automobile", "ship"), n0=500,
                                       budget=200, rounds=5, seeds=5, epochs=30, flip_augmentation=True,
                                       strategies=DESIGN_STRATEGIES + BUDGETED_STRATEGIES + (alf.RECOMMENDED,)),
    "fashion": BenchmarkConfig(dataset="fashion_mnist", classes=None, n0=500, budget=200, rounds=5, seeds=5,
                               epochs=30, pool_size=10_000, flip_augmentation=True,
                               strategies=DESIGN_STRATEGIES + BUDGETED_STRATEGIES + (alf.RECOMMENDED,)),
    "fashion-scarce": BenchmarkConfig(dataset="fashion_mnist", classes=None, n0=100, budget=100, rounds=4, seeds=5,
                                      epochs=30, pool_size=10_000, flip_augmentation=True,
                                      strategies=("random", "margin", "diverse_margin", "badge",
                                                  "class_balanced_margin", "coreset_pixels", "typicality",
                                                  "typicality_pixels", alf.RECOMMENDED)),
    "fashion-baseline": BenchmarkConfig(dataset="fashion_mnist", classes=None, n0=100, budget=100, rounds=14,
                                        seeds=5, epochs=30, pool_size=10_000, flip_augmentation=True,
                                        strategies=("random",)),
    "fashion-pipeline": BenchmarkConfig(dataset="fashion_mnist", classes=None, n0=100, budget=100, rounds=14,
                                        seeds=10, pool_size=10_000, learner="linear", representation="patches",
                                        initial="each", strategies=PIPELINE_STRATEGIES),
    "fashion-pipeline-scarce": BenchmarkConfig(dataset="fashion_mnist", classes=None, n0=10, budget=10, rounds=9,
                                               seeds=10, pool_size=10_000, learner="linear",
                                               representation="patches", initial="each",
                                               strategies=PIPELINE_STRATEGIES),
    "fashion-pipeline-spreading": BenchmarkConfig(dataset="fashion_mnist", classes=None, n0=100, budget=100,
                                                  rounds=14, seeds=10, pool_size=10_000, learner="label_spreading",
                                                  representation="patches", initial="each",
                                                  strategies=("random", alf.RECOMMENDED)),
    "fashion-pipeline-candidates": BenchmarkConfig(dataset="fashion_mnist", classes=None, n0=100, budget=100,
                                                   rounds=14, seeds=5, pool_size=10_000, learner="linear",
                                                   representation="patches", initial="each",
                                                   strategies=PIPELINE_STRATEGIES, max_candidates=2_000),
}
"""quick: bundled digits (10 classes), a few minutes. seed-experiment: the design's CIFAR-10 3-class experiment
(needs the CIFAR-10 archive). fashion: Fashion-MNIST, all 10 classes (on 3 easy classes the base model is already
near 94 %, which leaves nothing to measure), same shape, a 10,000-image pool per seed (keeps each round's forward
pass short). fashion-scarce: the regime before it, 10 to 50 labels per class (100 initial, 4 rounds of 100), where
the literature expects representative picks (typicality) to beat uncertainty. fashion-baseline: the design's
baseline, random labels and MobileNetV3Small from scratch, from 10 to 150 labels per class, the curve the
pipelines' label efficiency is measured against. fashion-pipeline: the recommended pipeline (logistic regression on
label-free patch features) and its strategies, every strategy choosing its own first 100 labels, 10 to 150 labels
per class, 10 seeds (run it with --baseline benchmarks/results/fashion-baseline). fashion-pipeline-scarce: the
same from 1 to 10 labels per class. fashion-pipeline-spreading: random and recommended with the semi-supervised
learner (label spreading over the pool, distilled into the linear model), the same seeds and label counts as
fashion-pipeline: what using the unlabeled pool adds to the labels. fashion-pipeline-candidates: fashion-pipeline
with every selection among a seeded sample of 2,000 unlabeled images (label.py select --max-candidates), on its first
five seeds: what subsampling the candidates costs (benchmarks/candidates.py compares the two runs)."""


def config_hash(config: BenchmarkConfig, dataset_fingerprint: str) -> str:
    """Short SHA-256 of the settings and the data: a resume is only allowed into a directory with the same hash.

    The strategy list and the seeds are left out: cells are independent per (seed, strategy), so a finished
    benchmark can be extended with another strategy or more seeds without rerunning the rest.
    """
    settings = {key: value for key, value in config.as_dict().items()
                if key not in ("strategies", "seeds", "first_seed") and not (key == "max_candidates" and value is None)}
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


def candidate_rows(rows: np.ndarray, config: BenchmarkConfig, seed: int, round_number: int) -> np.ndarray:
    """The rows a selection chooses among: all of ``rows``, or a seeded sample of ``config.max_candidates``."""
    if config.max_candidates is None or len(rows) <= config.max_candidates:
        return rows
    return rows[seeded_subsample(len(rows), config.max_candidates, selection_seed(seed, round_number))]


def selection_seed(seed: int, round_number: int) -> int:
    """The seed handed to a strategy at ``round_number``: same for every strategy of a seed (paired)."""
    return int(seed) * 1000 + int(round_number)
