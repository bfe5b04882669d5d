"""The benchmark's comparisons at equal labels, its figures and its HTML report, on hand-made results."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from Evaluation.Benchmark import stats as benchmark_stats

RANDOM_LABELS = np.array([[100.0, 200.0, 300.0], [100.0, 200.0, 300.0], [100.0, 200.0, 300.0]])
RANDOM_ACCURACY = np.array([[0.5, 0.7, 0.8], [0.4, 0.6, 0.9], [0.45, 0.65, 0.85]])


def test_a_curve_is_interpolated_between_its_rounds_and_never_extrapolated():
    values = benchmark_stats.accuracy_at_labels([100, 200, 300], [0.5, 0.7, 0.8], [100, 150, 275, 300, 50, 301])
    assert values[:4] == pytest.approx([0.5, 0.6, 0.775, 0.8])
    assert np.isnan(values[4]) and np.isnan(values[5])


def test_random_is_read_at_the_strategys_own_label_counts_seed_by_seed():
    labels = np.array([[100.0, 150.0, 350.0], [100.0, 250.0, 260.0], [100.0, 120.0, 300.0]])
    reference = benchmark_stats.baseline_at_equal_labels(labels, RANDOM_LABELS, RANDOM_ACCURACY)
    assert reference[:, 0] == pytest.approx([0.5, 0.4, 0.45])
    assert reference[:, 1] == pytest.approx([0.6, 0.6 + 0.5 * 0.3, 0.45 + 0.2 * 0.2])
    assert np.isnan(reference[0, 2]) and reference[1:, 2] == pytest.approx([0.6 + 0.6 * 0.3, 0.85])


def test_paired_differences_at_equal_labels_have_a_known_answer():
    labels = np.array([[100.0, 150.0, 350.0], [100.0, 250.0, 260.0], [100.0, 120.0, 300.0]])
    accuracies = np.array([[0.5, 0.66, 0.9], [0.4, 0.77, 0.9], [0.45, 0.52, 0.9]])
    paired, spreads = benchmark_stats.paired_at_equal_labels(labels, accuracies, RANDOM_LABELS, RANDOM_ACCURACY)
    assert paired[0] == (pytest.approx(0.0), None) and spreads[0] == 0.0
    differences = [0.66 - 0.6, 0.77 - 0.75, 0.52 - 0.49]  # random at 150, 250 and 120 labels of each seed
    assert paired[1][0] == pytest.approx(np.mean(differences))
    assert paired[1][1] == pytest.approx(stats.ttest_1samp(differences, 0.0).pvalue)
    half = stats.t.ppf(0.975, 2) * np.std(differences, ddof=1) / math.sqrt(3)
    assert spreads[1] == pytest.approx(half)
    assert paired[2] == (None, None) and spreads[2] is None  # seed 0 used 350 labels: random stopped at 300


def test_equal_labels_leave_the_plain_paired_difference_unchanged():
    accuracies = RANDOM_ACCURACY + np.array([[0.0, 0.02, 0.01], [0.0, 0.04, 0.03], [0.0, 0.03, 0.02]])
    paired, _ = benchmark_stats.paired_at_equal_labels(RANDOM_LABELS, accuracies, RANDOM_LABELS, RANDOM_ACCURACY)
    for column in (1, 2):
        assert paired[column] == pytest.approx(benchmark_stats.paired_difference(accuracies[:, column],
                                                                                 RANDOM_ACCURACY[:, column]))


def hand_made_results(strategy_labels: dict[str, list[list[int]]], accuracies: dict[str, list[list[float]]]) -> dict:
    """results.json's shape for a run of two classes, whose strategies' round-0 cells are the shared base."""
    names = list(strategy_labels)
    seeds = len(next(iter(strategy_labels.values())))
    rounds = len(next(iter(strategy_labels.values()))[0]) - 1

    def cell(round_number, labels, accuracy):
        return {"round": round_number, "labels": labels, "accuracy": accuracy, "n_selected": 0,
                "per_class_accuracy": {"a": accuracy, "b": accuracy}, "selected_indices": [],
                "timings": {"forward_s": 0.0, "selection_s": 0.0, "training_s": 0.0, "evaluation_s": 0.0}}

    records = {}
    for seed in range(seeds):
        first = next(iter(names))
        records[str(seed)] = {
            "base": cell(0, strategy_labels[first][seed][0], accuracies[first][seed][0]), "initial_indices": [],
            "pool_size": 10,
            "strategies": {name: [cell(r, strategy_labels[name][seed][r], accuracies[name][seed][r])
                                  for r in range(1, rounds + 1)] for name in names}}
    return {"config": {"seeds": seeds, "rounds": rounds, "strategies": names}, "seeds": records,
            "dataset": {"class_names": ["a", "b"], "name": "hand-made"}}


def test_the_summary_compares_a_strategy_with_more_labels_at_random_s_label_counts():
    results = hand_made_results(
        {"random": RANDOM_LABELS.astype(int).tolist(), "greedy": [[100, 150, 350], [100, 250, 260], [100, 120, 300]]},
        {"random": RANDOM_ACCURACY.tolist(), "greedy": [[0.5, 0.66, 0.9], [0.4, 0.77, 0.9], [0.45, 0.52, 0.9]]})
    entry = benchmark_stats.summarise(results)["strategies"]["greedy"]
    assert entry["interpolated"] is True
    assert entry["paired"][1][0] == pytest.approx(np.mean([0.06, 0.02, 0.03]))
    assert entry["paired"][2] == (None, None)
    assert benchmark_stats.ranking(benchmark_stats.summarise(results)) == ["greedy", "random"]
