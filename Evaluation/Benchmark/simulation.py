"""The simulation: one seed's rounds (score the pool with the current model, select, retrain, evaluate), and the
worker processes that run seeds and strategies side by side."""

from __future__ import annotations

import dataclasses
import resource
import time
from pathlib import Path
from typing import Callable

import numpy as np

import AL_functions as alf
from altoolkit.data import Dataset
from altoolkit.files import write_json
from altoolkit.progress import Countdown, current_log_file, logger, start_log_file
from altoolkit.strategies import pixel_pca_features
from altoolkit.training import training_indices
from Evaluation.Benchmark.config import (PSEUDO_LABEL_REPRESENTATION, STATE_DIRNAME, BenchmarkConfig,
                                         benchmark_strategy, candidate_rows, seed_order, selection_seed)
from Evaluation.Benchmark.records import cell_record, completed_rounds, seed_record, worker_cells_path
from Evaluation.Benchmark.trainer import SeedTrainer, restore_weights, save_weights, state_path

class SeedRun:
    """One seed's simulation: its order of the training set, its model (built on first use) and saved states.

    The seed's permutation gives the initial labeled set (its first ``n0`` images) and the pool (the rest).
    """

    def __init__(self, config: BenchmarkConfig, dataset: Dataset, seed: int, output_dir: Path, say,
                 pseudo_label_features: np.ndarray | None = None):
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
        self.pseudo_label_features = (None if pseudo_label_features is None else
                                      pseudo_label_features[:len(dataset.x_train)][self.order])

    @property
    def trainer(self) -> SeedTrainer:
        if self._trainer is None:
            started = time.perf_counter()
            self._trainer = SeedTrainer(self.view, self.config.recipe(), self.seed,
                                        self.config.keep_best_validation_epoch)
            self.say(f"{self.label}: model built in {time.perf_counter() - started:.1f} s")
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
        if self.config.distilled:
            facts = self.train_with_pseudo_labels(train_idx, validation_idx)
        else:
            facts = self.trainer.train(train_idx, validation_idx)
        trained = time.perf_counter()
        evaluation = self.trainer.evaluate()
        return evaluation, facts, trained - began, time.perf_counter() - trained

    def train_with_pseudo_labels(self, train_idx: np.ndarray, validation_idx: np.ndarray) -> dict:
        """The distilled learner: label spreading over the seed's images on the label-free features gives the
        unlabeled ones it is surest of a class (see :func:`altoolkit.pipelines.pseudo_labels`), and MobileNet trains
        on the labels plus those; the cell records how many and how many were right (the oracle's labels)."""
        from altoolkit.pipelines import with_pseudo_labels_on

        labels, extended, record = with_pseudo_labels_on(self.pseudo_label_features, self.view.y_train, train_idx,
                                                         validation_idx, self.view.num_classes, self.seed)
        facts = self.trainer.train(extended, validation_idx, labels)
        return {**facts, "pseudo_labels": record["count"], "pseudo_labels_right": record["agree_with_known_labels"]}

    def run_base(self, record: dict, save: Callable[[Path, list], None]) -> None:
        """Round 0, shared by every strategy: train on the initial set unless recorded with its saved model."""
        base_state = state_path(self.state_dir, self.seed, "base", 0)
        trained = "base" not in record or not base_state.exists()
        if trained:
            evaluation, facts, training_s, evaluation_s = self.train_and_evaluate(np.zeros(0, np.int64))
            record["base"] = cell_record(0, self.config.n0, evaluation, np.zeros(0, np.int64), facts,
                                   {"forward_s": 0.0, "selection_s": 0.0, "training_s": training_s,
                                    "evaluation_s": evaluation_s})
        self.say(f"{self.label} base round 0/{self.config.rounds}: accuracy {record['base']['accuracy']:.3f} "
                 f"with {self.config.n0} labels")
        if trained:
            save(base_state, self.trainer.model.get_weights())

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
            self.say(f"{self.label} {name} round {round_number}/{config.rounds}: accuracy {cell['accuracy']:.3f} "
                     f"with {cell['labels']} labels ({cell['n_selected']} selected)")
            save(state_path(self.state_dir, self.seed, name, round_number), self.trainer.model.get_weights())
            if round_number > 1:
                state_path(self.state_dir, self.seed, name, round_number - 1).unlink(missing_ok=True)


_WORKER: dict = {}
"""A worker process's settings and its SeedRun per seed (each model is built once per process)."""


def make_seed_run(config: BenchmarkConfig, dataset: Dataset, seed: int, output_dir: Path, say,
                  features: np.ndarray | None = None):
    """The seed's simulation: MobileNet's :class:`SeedRun`, or a fast learner's on the cached ``features``."""
    if config.fast:
        from Evaluation.Benchmark.fast import FastSeedRun

        return FastSeedRun(config, dataset, seed, features, say)
    return SeedRun(config, dataset, seed, output_dir, say, features)


def learner_features(config: BenchmarkConfig, dataset: Dataset, cache_dir: Path) -> np.ndarray | None:
    """The label-free features a run's learner needs (computed once, cached): a fast learner's representation,
    the distilled learner's pseudo-label representation, or None for MobileNet alone."""
    if not (config.fast or config.distilled):
        return None
    from Evaluation.Benchmark.fast import representation_rows

    return representation_rows(config, dataset, cache_dir, None if config.fast else PSEUDO_LABEL_REPRESENTATION)


def _start_worker(config: BenchmarkConfig, dataset: Dataset, output_dir: Path, config_hash_: str,
                  verbose: bool, cache_dir: Path, log_file: Path | None) -> None:
    import tensorflow as tf
    from threadpoolctl import threadpool_limits

    if log_file is not None:
        start_log_file(log_file)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    features = learner_features(config, dataset, cache_dir)
    _WORKER.update(config=config, dataset=dataset, output_dir=output_dir, config_hash=config_hash_, runs={},
                   features=features, blas_limits=threadpool_limits(limits=1),
                   say=logger("benchmark").info if verbose else (lambda message: None))


def _worker_job(job: tuple[int, str, list[dict]]) -> tuple[int, str, int, float]:
    """Run one seed's base (name "base") or one strategy's missing rounds; returns (seed, name, cells finished,
    the process's peak memory)."""
    seed, name, cells = job
    finished = []
    config, output_dir = _WORKER["config"], _WORKER["output_dir"]
    if seed not in _WORKER["runs"]:
        _WORKER["runs"][seed] = make_seed_run(config, _WORKER["dataset"], seed, output_dir, _WORKER["say"],
                                              _WORKER["features"])
    run = _WORKER["runs"][seed]
    record = {"base": cells[0]} if name == "base" and cells else {}

    def save(state: Path | None, weights: list[np.ndarray] | None) -> None:
        if state is not None:
            save_weights(state, weights)
        written = [record["base"]] if name == "base" else cells
        write_json(worker_cells_path(output_dir, seed, name), {"config_hash": _WORKER["config_hash"],
                                                               "seed": seed, "name": name, "cells": written})
        finished.append(name)

    if name == "base":
        run.run_base(record, save)
    else:
        run.run_strategy(name, cells, save)
    return seed, name, len(finished), peak_memory_mb()


def seed_has_work(record: dict, config: BenchmarkConfig) -> bool:
    """True while a seed lacks its base cell or a round of one of ``config``'s strategies. A finished seed needs no
    model at all: a finished benchmark re-renders its report without training anything (its model states are
    not committed)."""
    return "base" not in record or any(completed_rounds(record["strategies"].get(name, [])) < config.rounds
                                       for name in config.strategies)


def run_in_workers(config: BenchmarkConfig, dataset: Dataset, output_dir: Path, results: dict, workers: int,
                   verbose: bool, cache_dir: Path, countdown: Countdown, done: int) -> None:
    """Every missing cell over ``workers`` processes: first each seed's base, then one job per (seed, strategy).

    As each job ends, ``countdown`` words the progress line (``done`` cells were recorded before the run).
    """
    import multiprocessing

    records = {seed: seed_record(results, config, len(dataset.x_train), seed) for seed in config.seed_numbers}
    bases = [(seed, "base", [record["base"]] if "base" in record else []) for seed, record in records.items()
             if seed_has_work(record, config)]
    jobs = [(seed, name, record["strategies"].get(name, [])) for seed, record in records.items()
            for name in config.strategies if completed_rounds(record["strategies"].get(name, [])) < config.rounds]
    if not bases and not jobs:
        return
    say = logger("benchmark").info if verbose else (lambda message: None)
    context = multiprocessing.get_context("spawn")
    peaks = []
    with context.Pool(workers, initializer=_start_worker,
                      initargs=(config, dataset, output_dir, results["config_hash"], verbose, cache_dir,
                                current_log_file())) as pool:
        for part in (bases, jobs):
            for seed, name, finished, peak in pool.imap_unordered(_worker_job, part):
                done += finished
                peaks.append(peak)
                if finished:
                    say(countdown.finished(done, f"{name}, seed {seed}", finished))
    results["peak_memory_mb"] = max([*peaks, results.get("peak_memory_mb") or 0.0])


def run_round(config: BenchmarkConfig, view: Dataset, order: np.ndarray, trainer: SeedTrainer, name: str,
              seed: int, round_number: int, selected: np.ndarray, train_and_evaluate,
              pixel_features: Callable[[], np.ndarray]) -> tuple[dict, np.ndarray]:
    """One cell: the current model scores pool + labeled, ``name`` picks, the model is retrained and evaluated.

    ``selected`` and the returned picks are positions in ``view`` (the seed's order); the cell records them as
    absolute training indices of the dataset (``order[position]``).
    """
    labeled = np.concatenate([np.arange(config.n0), selected]).astype(np.int64)
    remaining = candidate_rows(np.setdiff1d(np.arange(config.n0, len(view.x_train)), selected), config, seed,
                               round_number)
    rows = np.concatenate([remaining, labeled])
    began = time.perf_counter()
    probabilities, embeddings = trainer.infer(rows)
    forward_s = time.perf_counter() - began
    began = time.perf_counter()
    from altoolkit.model import classifier_head

    strategy, representation = benchmark_strategy(name)
    pool_rows = len(remaining)

    def features_for(_: str) -> tuple[np.ndarray, np.ndarray]:
        features = pixel_features()[rows]
        return features[:pool_rows], features[pool_rows:]

    selection = alf.select(strategy, alf.SelectionRound(
        probabilities[:pool_rows], embeddings[:pool_rows], embeddings[pool_rows:], view.y_train[labeled],
        features_for=features_for, head_for=lambda: classifier_head(trainer.model)),
        config.budget, seed=selection_seed(seed, round_number), representation=representation)
    chosen_rows = selection.indices
    selection_s = time.perf_counter() - began
    chosen = rows[np.asarray(chosen_rows, dtype=np.int64)]
    evaluation, facts, training_s, evaluation_s = train_and_evaluate(np.concatenate([selected, chosen]))
    timings = {"forward_s": forward_s, "selection_s": selection_s, "training_s": training_s,
               "evaluation_s": evaluation_s}
    cell = cell_record(round_number, config.n0 + len(selected) + len(chosen), evaluation, order[chosen], facts, timings)
    if name == alf.RECOMMENDED:
        cell["ran"] = f"{selection.strategy} over {selection.representation}"
    return cell, chosen


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far (Linux reports ru_maxrss in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
