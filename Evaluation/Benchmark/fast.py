"""The benchmark with a fast learner: every round refits a linear model (or label spreading) on a label-free
representation of the images, computed once for the whole run and read back from the cache.

No model state carries over between rounds — the learner is refitted on everything labeled so far — so a resumed
run continues from its recorded cells alone. With ``initial = "each"`` every strategy also picks the seed's first
``n0`` images itself, from zero labels (a cold start), recorded as the strategy's round 0.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable

import numpy as np

import AL_functions as alf
from altoolkit.data import Dataset
from altoolkit.label_free import RepresentationSettings, label_free_features
from altoolkit.pipelines import fit_fast_learner
from altoolkit.strategies import pixel_pca_features
from altoolkit.training import accuracy_report
from Evaluation.Benchmark.config import (BenchmarkConfig, benchmark_strategy, candidate_rows, seed_order,
                                          selection_seed)
from Evaluation.Benchmark.records import cell_record, completed_rounds

REPRESENTATION_SEED = 0
"""The representation is fitted once per run, on every training image, with this seed: all seeds share it."""
DEFAULT_CACHE_DIR = Path("results") / ".cache"


def representation_rows(config: BenchmarkConfig, dataset: Dataset, cache_dir=DEFAULT_CACHE_DIR,
                        name: str | None = None) -> np.ndarray:
    """Features of every training image then every test image, fitted on the training images without labels
    (representation ``name``, default the config's)."""
    images = np.concatenate([dataset.x_train, dataset.x_test])
    return np.asarray(label_free_features(name or config.representation, images, fit_images=dataset.x_train,
                                          seed=REPRESENTATION_SEED, settings=RepresentationSettings(),
                                          cache_dir=cache_dir))


class FastSeedRun:
    """One seed's simulation with a fast learner (the same interface as the MobileNet ``SeedRun``)."""

    def __init__(self, config: BenchmarkConfig, dataset: Dataset, seed: int, features: np.ndarray,
                 say: Callable[..., None]):
        self.config, self.dataset, self.seed, self.say = config, dataset, int(seed), say
        self.order = seed_order(len(dataset.x_train), config, seed)
        self.features = features[:len(dataset.x_train)][self.order]
        self.test_features = features[len(dataset.x_train):]
        self.labels = dataset.y_train[self.order]
        self.label = f"seed {self.seed}"
        self._pixels: np.ndarray | None = None

    def pixel_features(self) -> np.ndarray:
        if self._pixels is None:
            self._pixels = pixel_pca_features(self.dataset.x_train[self.order], seed=self.seed)
        return self._pixels

    def run_base(self, record: dict, save: Callable[..., None]) -> None:
        """Round 0 on the seed's random initial set (the first ``n0`` of its order), or on one strategy's pick."""
        trained = "base" not in record
        if trained:
            initial = (np.arange(self.config.n0) if self.config.initial in ("random", "each")
                       else self.cold_start(self.config.initial).indices)
            record["base"] = self.evaluate_rows(0, initial, initial)
        self.say(f"{self.label} base: accuracy {record['base']['accuracy']:.3f} with {self.config.n0} labels")
        if trained:
            save(None, None)

    def run_strategy(self, name: str, cells: list[dict], save: Callable[..., None]) -> None:
        """The rounds of ``name`` not yet in ``cells`` (appended in place, saved one by one)."""
        if self.config.initial == "each" and name != "random" and not cells:
            selection = self.cold_start(name)
            cell = self.evaluate_rows(0, selection.indices, selection.indices)
            if name == alf.RECOMMENDED:
                cell["ran"] = f"{selection.strategy} over {selection.representation}"
            cells.append(cell)
            self.say(f"{self.label} {name} round 0 (its own first {self.config.n0} labels): accuracy "
                     f"{cell['accuracy']:.3f}")
            save(None, None)
        labeled = self.initial_rows(cells)
        for cell in cells:
            labeled = np.concatenate([labeled, self.positions(cell)]) if cell["round"] > 0 else labeled
        for round_number in range(completed_rounds(cells) + 1, self.config.rounds + 1):
            cell, chosen = self.run_round(name, labeled, round_number)
            labeled = np.concatenate([labeled, chosen])
            cells.append(cell)
            self.say(f"{self.label} {name} round {round_number}/{self.config.rounds}: accuracy "
                     f"{cell['accuracy']:.3f} with {cell['labels']} labels")
            save(None, None)

    def initial_rows(self, cells: list[dict]) -> np.ndarray:
        if cells and cells[0]["round"] == 0:
            return self.positions(cells[0])
        if self.config.initial in ("random", "each"):
            return np.arange(self.config.n0)
        return self.cold_start(self.config.initial).indices

    def positions(self, cell: dict) -> np.ndarray:
        """A cell's selected absolute training indices as positions in this seed's order."""
        lookup = {int(index): position for position, index in enumerate(self.order)}
        return np.asarray([lookup[int(index)] for index in cell["selected_indices"]], dtype=np.int64)

    def cold_start(self, name: str) -> alf.Selection:
        """The first ``n0`` positions ``name`` picks from the whole seed's images with no label at all."""
        strategy, representation = benchmark_strategy(name)
        candidates = candidate_rows(np.arange(len(self.order)), self.config, self.seed, 0)
        uniform = np.full((len(candidates), self.dataset.num_classes), 1.0 / self.dataset.num_classes)
        inputs = alf.SelectionRound(uniform, self.features[candidates], self.features[:0], self.labels[:0],
                                    features_for=lambda _: (self.pixel_features()[candidates],
                                                            self.pixel_features()[:0]),
                                    learner=self.config.learner)
        selection = alf.select(strategy, inputs, self.config.n0, seed=selection_seed(self.seed, 0),
                               representation=representation)
        return dataclasses.replace(selection, indices=candidates[np.asarray(selection.indices, dtype=np.int64)])

    def run_round(self, name: str, labeled: np.ndarray, round_number: int) -> tuple[dict, np.ndarray]:
        """Fit on ``labeled``, score the rest of the seed's images, pick ``budget`` of them, refit and evaluate."""
        remaining = np.setdiff1d(np.arange(len(self.order)), labeled)
        began = time.perf_counter()
        learner = fit_fast_learner(self.config.learner, self.features, self.labels, labeled, remaining,
                                   self.dataset.num_classes, self.seed)
        candidates = candidate_rows(remaining, self.config, self.seed, round_number)
        probabilities = learner.predict_proba(self.features[candidates])
        scored = time.perf_counter()
        strategy, representation = benchmark_strategy(name)

        def features_for(_: str) -> tuple[np.ndarray, np.ndarray]:
            return self.pixel_features()[candidates], self.pixel_features()[labeled]

        selection = alf.select(strategy, alf.SelectionRound(
            probabilities, self.features[candidates], self.features[labeled], self.labels[labeled],
            features_for=features_for, learner=self.config.learner), self.config.budget,
            seed=selection_seed(self.seed, round_number), representation=representation)
        chosen = candidates[selection.indices]
        selected = time.perf_counter()
        cell = self.evaluate_rows(round_number, np.concatenate([labeled, chosen]), chosen,
                                  {"forward_s": scored - began, "selection_s": selected - scored})
        if name == alf.RECOMMENDED:
            cell["ran"] = f"{selection.strategy} over {selection.representation}"
        return cell, chosen

    def evaluate_rows(self, round_number: int, labeled: np.ndarray, new: np.ndarray,
                      timings: dict | None = None) -> dict:
        """Fit the learner on ``labeled`` and evaluate it on the test split; the cell records ``new`` as selected."""
        began = time.perf_counter()
        remaining = np.setdiff1d(np.arange(len(self.order)), labeled)
        learner = fit_fast_learner(self.config.learner, self.features, self.labels, labeled, remaining,
                                   self.dataset.num_classes, self.seed)
        trained = time.perf_counter()
        predicted = learner.predict_proba(self.test_features).argmax(axis=1)
        evaluation = accuracy_report(predicted, self.dataset.y_test, self.dataset.class_names)
        spent = {"forward_s": 0.0, "selection_s": 0.0, **(timings or {}), "training_s": trained - began,
                 "evaluation_s": time.perf_counter() - trained}
        return cell_record(round_number, len(labeled), evaluation, self.order[new], {}, spent)
