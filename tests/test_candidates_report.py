"""benchmarks/candidates.py: the cost of --max-candidates, paired by seed at equal labels, on hand-made runs whose
answer is known."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from altoolkit.errors import ToolkitError
from benchmarks import candidates
from Evaluation.Benchmark.config import PRESETS, candidate_rows, config_hash

CONFIG = {"dataset": "fashion_mnist", "pool_size": 1000, "n0": 100, "budget": 100, "rounds": 4, "seeds": 3,
          "first_seed": 0, "learner": "linear", "representation": "patches", "strategies": ["random", "typicality"],
          "max_candidates": None}


def cell(round_number: int, accuracy: float, seconds: float = 1.0) -> dict:
    """A cell as the benchmark records it (selected indices and per-class accuracies are not read here)."""
    return {"round": round_number, "labels": 100 + 100 * round_number, "n_selected": 100, "accuracy": accuracy,
            "per_class_accuracy": {}, "selected_indices": [],
            "timings": {"forward_s": 0.0, "selection_s": seconds, "training_s": 0.0, "evaluation_s": 0.0}}


def run(max_candidates, accuracy, seconds: float) -> dict:
    """A finished run: ``accuracy(strategy, seed, round)`` gives each cell's accuracy."""
    seeds = {str(seed): {"pool_size": 1000, "initial_indices": [], "base": cell(0, 0.5), "strategies": {
        name: [cell(r, accuracy(name, seed, r), seconds) for r in range(1, 5)] for name in CONFIG["strategies"]}}
        for seed in range(3)}
    return {"config": {**CONFIG, "max_candidates": max_candidates}, "config_hash": "0" * 16,
            "dataset": {"train_size": 1100}, "seeds": seeds}


def whole_accuracy(name, seed, round_number):
    return 0.6 + 0.05 * round_number + 0.01 * seed


def sampled_accuracy(name, seed, round_number):
    """random: exactly 1 point lower everywhere; typicality: 2, 3 and 4 points lower on seeds 0, 1, 2."""
    gap = 0.01 if name == "random" else 0.02 + 0.01 * seed
    return whole_accuracy(name, seed, round_number) - gap


def test_the_cost_is_the_paired_difference_at_each_label_count_with_its_interval():
    seeds, rows = candidates.candidate_costs(run(200, sampled_accuracy, 0.5), run(None, whole_accuracy, 2.0))
    assert seeds == ["0", "1", "2"]
    by_name = {row["strategy"]: row for row in rows}
    assert set(by_name["random"]["at"]) == {200, 500}  # the runs reach 100..500 labels
    mean, half, p = by_name["random"]["at"][500]
    assert mean == pytest.approx(-1.0) and half == pytest.approx(0.0) and p is None  # constant: no test
    mean, half, p = by_name["typicality"]["at"][200]
    # differences −2, −3, −4: mean −3, half-width t(0.975, 2) · 1 / √3 = 4.303 · 0.577
    assert mean == pytest.approx(-3.0) and half == pytest.approx(2.4842, abs=1e-3) and 0 < p < 0.05


def test_runs_that_differ_in_more_than_the_sample_are_refused():
    other = run(None, whole_accuracy, 2.0)
    other["config"]["budget"] = 50
    with pytest.raises(ToolkitError, match=r"differ in budget, max_candidates: compare runs that differ only"):
        candidates.candidate_costs(run(200, sampled_accuracy, 0.5), other)


def test_the_report_names_its_runs_and_is_refused_without_a_sampled_run(tmp_path, capsys):
    for name, max_candidates, accuracy in (("sampled", 200, sampled_accuracy), ("whole", None, whole_accuracy)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(run(max_candidates, accuracy, 1.0)))
    output = tmp_path / "costs.md"
    assert candidates.main(["--sampled", str(tmp_path / "sampled"), "--whole", str(tmp_path / "whole"),
                            "--output", str(output)]) == 0
    report = output.read_text()
    assert "| random | -1.0 ± 0.0 (p n/a) | -1.0 ± 0.0 (p n/a) |" in report
    assert "among a seeded sample of 200 unlabeled images" in report
    assert candidates.main(["--sampled", str(tmp_path / "whole"), "--whole", str(tmp_path / "sampled")]) == 2
    assert "was not run with --max-candidates" in capsys.readouterr().err
    (tmp_path / "whole" / "results.json").write_text("{}")
    assert candidates.main(["--sampled", str(tmp_path / "sampled"), "--whole", str(tmp_path / "whole")]) == 2
    assert "is not benchmark results a report can be rendered from (no config" in capsys.readouterr().err


def test_a_selection_chooses_among_a_seeded_sample_only_when_max_candidates_is_set():
    rows = np.arange(100, 1100)
    config = dataclasses.replace(PRESETS["quick"], max_candidates=50)
    chosen = candidate_rows(rows, config, seed=3, round_number=2)
    assert len(chosen) == 50 and len(set(chosen.tolist())) == 50 and set(chosen.tolist()) <= set(rows.tolist())
    assert np.array_equal(chosen, candidate_rows(rows, config, seed=3, round_number=2))
    assert not np.array_equal(chosen, candidate_rows(rows, config, seed=3, round_number=3))
    assert candidate_rows(rows, PRESETS["quick"], seed=3, round_number=2) is rows
    assert len(candidate_rows(rows[:40], config, seed=3, round_number=2)) == 40


@pytest.mark.parametrize("preset", ["fashion-pipeline", "fashion-baseline"])
def test_the_new_setting_leaves_the_committed_runs_resumable(preset):
    """max_candidates None stays out of the config hash, so the committed runs keep theirs."""
    results = json.loads((Path(__file__).resolve().parents[1] / "benchmarks" / "results" / preset /
                          "results.json").read_text())
    assert config_hash(PRESETS[preset], results["dataset"]["fingerprint"]) == results["config_hash"]
