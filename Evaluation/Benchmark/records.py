"""The benchmark's records: ``results.json`` (every seed, strategy and round), the worker processes' cell files, and
the checks that refuse a damaged or foreign record instead of resuming into it (a record is never overwritten by a
run it does not belong to)."""

from __future__ import annotations

import json
import math
import numbers
import os
from pathlib import Path

import numpy as np

from AL_functions import RECOMMENDED, recommended_choice
from altoolkit.data import Dataset
from altoolkit.errors import ToolkitError
from altoolkit.training import library_versions
from altoolkit.validation import short_repr
from Evaluation.Benchmark.config import (FORMAT_VERSION, RESULTS_FILENAME, WORKER_DIRNAME, BenchmarkConfig,
                                         config_hash, seed_order)

def cell_record(round_number: int, labels: int, evaluation: dict, selected: np.ndarray, facts: dict,
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


def read_results_folder(folder: Path) -> dict:
    """A benchmark folder's results.json, checked for the shape the reports read; a missing, corrupt or malformed
    file is one error naming it."""
    results = read_json_record(folder / RESULTS_FILENAME, "benchmark results",
                               "give a folder a benchmark run wrote (it holds results.json)")
    shape = isinstance(results, dict) and isinstance(results.get("config"), dict) and isinstance(
        results.get("dataset"), dict) and isinstance(results["dataset"].get("train_size"), int)
    problem = (results_problem(results, results["dataset"]["train_size"]) if shape else
               "no config, or no dataset with its train_size")
    if problem is not None:
        raise ToolkitError(f"{folder / RESULTS_FILENAME} is not benchmark results a report can be rendered from "
                           f"({problem}): give a folder a benchmark run wrote")
    return results


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


def completed_rounds(cells: list[dict]) -> int:
    """Selection rounds a strategy has done: its cells, less a leading round 0 (its own cold-start pick)."""
    return len(cells) - (1 if cells and cells[0].get("round") == 0 else 0)


def _cells_problem(cells, n_train: int, where: str) -> str | None:
    if not isinstance(cells, list):
        return f"{where} must be a list of cells"
    first = 0 if cells and isinstance(cells[0], dict) and cells[0].get("round") == 0 else 1
    for number, cell in enumerate(cells, start=first):
        problem = cell_problem(cell, n_train, f"{where}[{number - first}]")
        if problem is None and cell["round"] != number:
            problem = f"{where}[{number - first}].round must be {number}"
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
        if recorded.get("format") != FORMAT_VERSION:
            raise ToolkitError(f"{path} was written by benchmark format {short_repr(recorded.get('format'))}, whose "
                               f"numbers this code (format {FORMAT_VERSION}) does not reproduce: run into a new "
                               "--output-dir (the old results stay as they are)")
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


def expected_cells(config: BenchmarkConfig, name: str) -> int:
    """Cells strategy ``name`` records per seed: its rounds, plus a round 0 when it picks its own first labels (a
    fast learner with ``initial = "each"``; random's stay random)."""
    return config.rounds + (1 if config.fast and config.initial == "each" and name != "random" else 0)


def cell_counts(results: dict, config: BenchmarkConfig) -> tuple[int, int]:
    """(cells recorded, cells the run makes in all): per seed one base cell and every strategy's cells."""
    done = 0
    for seed in config.seed_numbers:
        record = results["seeds"].get(str(seed), {})
        strategies = record.get("strategies", {})
        done += ("base" in record) + sum(min(len(strategies.get(name, [])), expected_cells(config, name))
                                         for name in config.strategies)
    per_seed = 1 + sum(expected_cells(config, name) for name in config.strategies)
    return done, per_seed * config.seeds


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
    if part["name"] not in config.strategies:
        return f"{part['name'][:40]!r} is not one of this run's strategies"
    return _cells_problem(part.get("cells"), n_train, "cells")


def recommended_label(labeled_count: int, num_classes: int, learner: str = "mobilenet") -> str:
    """What "recommended" runs at this labeled count, as recorded in its cells (e.g. "margin over model")."""
    return " over ".join(recommended_choice(labeled_count, num_classes, learner))


def check_recommended_cells(results: dict) -> None:
    """Refuse to resume "recommended" cells made under another rule: each cell records what it ran, and the
    rule (AL_functions.recommended_choice) may have changed since."""
    num_classes = len(results["dataset"]["class_names"])
    learner = results["config"].get("learner", "mobilenet")
    for seed, record in results["seeds"].items():
        for cell in record.get("strategies", {}).get(RECOMMENDED, []):
            now = recommended_label(cell["labels"] - cell["n_selected"], num_classes, learner)
            if cell.get("ran") != now:
                raise ToolkitError(f"seed {seed} round {cell['round']} of '{RECOMMENDED}' ran {cell.get('ran')!r} "
                                   f"but the rule now gives {now!r}: rerun it into a new --output-dir, or drop "
                                   f"'{RECOMMENDED}' from --strategies")
