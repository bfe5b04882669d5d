"""A strategy a user registers in one place works in every entry point: the analyzer, label.py select, AL_cycle.py
--budget and the benchmark."""

from __future__ import annotations

import numpy as np
import pytest

import AL_functions as al

NAME = "test_newest_first"


def newest_first(inputs: al.SelectionInputs, n: int, seed: int) -> np.ndarray:
    """The last ``n`` pool images, last first: easy to recognise in every entry point's output."""
    return np.arange(inputs.pool_size)[::-1][:n]


@pytest.fixture(autouse=True)
def registered():
    al.register_strategy(NAME, newest_first, summary="last pool images first", replace=True)
    yield
    al.STRATEGY_TABLE.pop(NAME, None)


def test_the_analyzer_selects_with_a_registered_strategy(tiny_digits_model, digits_dataset, tmp_path):
    from AL_cycle import ActiveLearningAnalyzer

    analyzer = ActiveLearningAnalyzer(tiny_digits_model.model_path, labeled_size=100, start_idx=100, end_idx=160,
                                      dataset=digits_dataset, output_dir=tmp_path / "results", verbose=False)
    indices, stats = analyzer.select(4, strategy=NAME, save_images=False, create_visualization=False)
    assert indices.tolist() == [59, 58, 57, 56]
    assert stats["ran"] == NAME


def test_al_cycle_budget_runs_a_strategy_named_by_module_and_function(tiny_digits_model, tmp_path):
    import AL_cycle

    code = AL_cycle.main(["--dataset", "digits", "--model", str(tiny_digits_model.model_path), "--labeled-size", "100",
                          "--start-idx", "100", "--end-idx", "130", "--budget", "3", "--strategy",
                          "tests.test_registered_strategy:newest_first", "--output-dir", str(tmp_path / "out"),
                          "--no-images", "--quiet"])
    assert code == 0
    assert np.load(tmp_path / "out" / "selection" / "selection_indices.npy").tolist() == [29, 28, 27]


def test_label_select_records_a_round_chosen_by_a_registered_strategy(digit_folders, tiny_digits_model, tmp_path):
    import label
    from altoolkit.labeling.store import LabelStore

    labeled, pool = digit_folders
    assert label.main(["select", "--project", str(tmp_path / "project"), "--pool", str(pool), "--labeled",
                       str(labeled), "--model", str(tiny_digits_model.model_path), "--budget", "3",
                       "--strategy", NAME]) == 0
    with LabelStore(tmp_path / "project") as store:
        paths = [store.image(item.image_id).relative_path for item in store.batch(1)]
        assert store.rounds()[0]["parameters"]["ran"] == NAME
    assert paths == ["339.png", "338.png", "337.png"]


@pytest.mark.slow
def test_a_tiny_benchmark_runs_a_registered_strategy(digits_dataset, tmp_path):
    from Evaluation.Benchmark.benchmark import run_benchmark
    from Evaluation.Benchmark.config import BenchmarkConfig, seed_order

    settings = BenchmarkConfig(dataset="digits", n0=60, budget=5, rounds=1, seeds=1, epochs=1, pool_size=200,
                               strategies=("random", NAME))
    results = run_benchmark(settings, tmp_path / "bench", dataset=digits_dataset, verbose=False)
    cell = results["seeds"]["0"]["strategies"][NAME][0]
    assert cell["selected_indices"] == seed_order(len(digits_dataset.x_train), settings, 0)[::-1][:5].tolist()
