"""The strategy benchmark: strategy names, statistics helpers, report structure, reproducibility and resume.

Trainings are tiny (digits, 60 initial labels, 1 epoch): they test plumbing and determinism, not accuracy.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import AL_functions as alf
from altoolkit.errors import ToolkitError
from Evaluation.Benchmark import benchmark as bm
from Evaluation.Benchmark import config, records, trainer
from Evaluation.Benchmark import stats as benchmark_stats

REPO = Path(__file__).resolve().parents[1]

TINY = config.BenchmarkConfig(dataset="digits", n0=60, budget=20, rounds=2, seeds=2, epochs=1,
                              strategies=("random", "entropy", "intersection"))
"""Two seeds × (1 base + 3 strategies × 2 rounds) = 14 trainings."""

CELLS_PER_SEED = 1 + len(TINY.strategies) * TINY.rounds


def cell_values(results: dict, seed: str = "0") -> dict:
    """(strategy, round) → (accuracy, selected indices) of one seed, round 0 under "base"."""
    record = results["seeds"][seed]
    values = {("base", 0): (record["base"]["accuracy"], [])}
    for name, cells in record["strategies"].items():
        for cell in cells:
            values[(name, cell["round"])] = (cell["accuracy"], cell["selected_indices"])
    return values


def assert_same_weights(first_dir, second_dir, names) -> None:
    """Seed 0's last model of each strategy (or the base model) is bit-identical in both runs."""
    for name in names:
        round_number = 0 if name == "base" else TINY.rounds
        first = trainer.load_weights(trainer.state_path(first_dir / config.STATE_DIRNAME, 0, name, round_number))
        second = trainer.load_weights(trainer.state_path(second_dir / config.STATE_DIRNAME, 0, name, round_number))
        assert len(first) == len(second)
        assert all(np.array_equal(a, b) for a, b in zip(first, second)), f"different weights for {name}"


def assert_same_cells(first: dict, second: dict) -> None:
    assert first.keys() == second.keys()
    for key in first:
        assert first[key][1] == second[key][1], f"different selection in {key}"
        assert first[key][0] == pytest.approx(second[key][0], abs=1e-6), f"different accuracy in {key}"


@pytest.fixture(scope="module")
def tiny_run(digits_dataset, tmp_path_factory):
    """One uninterrupted tiny benchmark (2 seeds): (output dir, results)."""
    output_dir = tmp_path_factory.mktemp("benchmark") / "tiny"
    results = bm.run_benchmark(TINY, output_dir, dataset=digits_dataset, command="pytest tiny", verbose=False)
    return output_dir, results


# ------------------------------------------------------------------------------------------------ strategy names

def test_benchmark_names_are_the_strategy_table_plus_pixel_variants_of_the_distance_strategies():
    names = config.benchmark_strategy_names()
    assert set(alf.STRATEGY_TABLE) <= set(names) and alf.RECOMMENDED in names
    for name, entry in alf.STRATEGY_TABLE.items():
        assert (f"{name}_pixels" in names) == entry.uses_features
    assert config.benchmark_strategy("typicality_pixels") == ("typicality", "pixels")
    assert config.benchmark_strategy("margin") == ("margin", "model")
    with pytest.raises(ToolkitError, match="unknown strategy 'margin_pixels'"):
        config.benchmark_strategy("margin_pixels")


COMMITTED = sorted(REPO.glob("benchmarks/results/*/results.json"))


@pytest.mark.parametrize("results_file", COMMITTED, ids=[file.parent.name for file in COMMITTED])
def test_every_committed_benchmark_resumes_or_is_refused_as_older_code_s(results_file, tmp_path):
    """A committed run of the current format keeps its config hash (so its command re-renders it without
    recomputing); a run of an older format, whose numbers this code does not reproduce, is refused by name."""
    recorded = json.loads(results_file.read_text())
    settings = dataclasses.replace(config.BenchmarkConfig(), **{
        key: tuple(value) if isinstance(value, list) else value for key, value in recorded["config"].items()})
    settings.validate()
    strategies = {name for record in recorded["seeds"].values() for name in record["strategies"]}
    assert strategies <= set(config.benchmark_strategy_names())
    if recorded["format"] == config.FORMAT_VERSION:
        assert config.config_hash(settings, recorded["dataset"]["fingerprint"]) == recorded["config_hash"]
        return
    copy = tmp_path / results_file.parent.name
    copy.mkdir()
    (copy / config.RESULTS_FILENAME).write_text(results_file.read_text())
    fake = type("Data", (), {"x_train": np.zeros(recorded["dataset"]["train_size"]), "name": "x",
                             "fingerprint": recorded["dataset"]["fingerprint"], "class_names": ("a",),
                             "x_test": np.zeros(1)})()
    with pytest.raises(ToolkitError, match=f"written by benchmark format {recorded['format']}"):
        records.open_results(copy, settings, fake, "pytest")


# -------------------------------------------------------------------------------------------------- statistics

def test_paired_difference_matches_a_hand_computed_t_test():
    difference, p = benchmark_stats.paired_difference([0.5, 0.6, 0.7], [0.4, 0.55, 0.6])
    assert difference == pytest.approx(0.25 / 3)
    # differences 0.1, 0.05, 0.1: mean 1/12, sd 0.05/√3, so t = (1/12) / (0.05/√3 / √3) = 5 with 2 df
    assert p == pytest.approx(2 * stats.t.sf(5.0, 2))
    assert benchmark_stats.paired_difference([0.5, 0.6], [0.4, 0.5]) == (pytest.approx(0.1), None)
    assert benchmark_stats.paired_difference([0.5], [0.4])[1] is None
    with pytest.raises(ToolkitError):
        benchmark_stats.paired_difference([0.5, 0.6], [0.4])


def test_label_efficiency_interpolates_on_the_baseline_curve():
    labels, accuracies = [100, 150, 200], [0.5, 0.6, 0.7]
    assert benchmark_stats.labels_to_reach(labels, accuracies, 0.65) == pytest.approx(175)
    assert benchmark_stats.label_efficiency(labels, accuracies, 0.65, 150) == pytest.approx(175 / 150)
    assert benchmark_stats.label_efficiency(labels, accuracies, 0.7, 200) == pytest.approx(1.0)
    assert benchmark_stats.label_efficiency(labels, accuracies, 0.8, 200) is None
    assert benchmark_stats.label_efficiency(labels, accuracies, 0.4, 200) is None
    assert benchmark_stats.labels_to_reach([100, 150, 200], [0.5, 0.7, 0.6], 0.65) == pytest.approx(137.5)


def test_area_under_curve_is_normalised_by_the_label_range():
    assert benchmark_stats.area_under_curve([100, 200], [0.5, 0.7]) == pytest.approx(0.6)
    assert benchmark_stats.area_under_curve([100, 150, 300], [0.5, 0.5, 0.5]) == pytest.approx(0.5)
    assert benchmark_stats.area_under_curve([100], [0.4]) == pytest.approx(0.4)


def test_mean_ci_uses_the_t_distribution():
    mean, half = benchmark_stats.mean_ci([0.4, 0.6])
    assert mean == pytest.approx(0.5)
    assert half == pytest.approx(stats.t.ppf(0.975, 1) * math.sqrt(0.02) / math.sqrt(2))
    assert benchmark_stats.mean_ci([0.3]) == (pytest.approx(0.3), 0.0)


# --------------------------------------------------------------------------------------------------- the run

@pytest.mark.slow
def test_report_structure(tiny_run):
    output_dir, results = tiny_run
    for name in (config.RESULTS_FILENAME, config.REPORT_FILENAME, config.CURVE_FILENAME):
        assert (output_dir / name).is_file()
    recorded = json.loads((output_dir / config.RESULTS_FILENAME).read_text())
    assert {"config", "config_hash", "command", "dataset", "versions", "seeds", "peak_memory_mb"} <= recorded.keys()
    assert sorted(recorded["seeds"]) == ["0", "1"]
    for record in recorded["seeds"].values():
        assert len(record["initial_indices"]) == TINY.n0
        assert record["base"]["round"] == 0 and record["base"]["labels"] == TINY.n0
        assert sorted(record["strategies"]) == sorted(TINY.strategies)
        for name, cells in record["strategies"].items():
            assert [cell["round"] for cell in cells] == list(range(1, TINY.rounds + 1))
            used = set(record["initial_indices"])
            for cell in cells:
                assert {"accuracy", "per_class_accuracy", "labels", "selected_indices", "timings"} <= cell.keys()
                assert not used & set(cell["selected_indices"])
                used |= set(cell["selected_indices"])
                assert cell["labels"] == len(used)
                if name != "intersection":
                    assert cell["n_selected"] == TINY.budget
    report = (output_dir / config.REPORT_FILENAME).read_text()
    for heading in ("## Command", "## Setting", "## What the benchmark can detect",
                    "| strategy | seeds | labels (last round) | final accuracy % (mean ± std) | AUC % |",
                    "## Paired difference vs random", "## Per-class accuracy at the last round", "## Speed",
                    "Peak memory"):
        assert heading in report
    assert "pytest tiny" in report


@pytest.mark.slow
def test_strategies_of_a_seed_share_round_zero_and_the_initial_set(tiny_run):
    _, results = tiny_run
    first, second = results["seeds"]["0"], results["seeds"]["1"]
    assert first["initial_indices"] != second["initial_indices"]
    for name in TINY.strategies:
        labels, accuracies = benchmark_stats.curves(results, name)
        assert accuracies[:, 0].tolist() == [first["base"]["accuracy"], second["base"]["accuracy"]]


@pytest.mark.slow
def test_same_seed_gives_the_same_selections_and_accuracies(tiny_run, digits_dataset, tmp_path):
    output_dir, results = tiny_run
    again = bm.run_benchmark(dataclasses.replace(TINY, seeds=1), tmp_path / "again", dataset=digits_dataset,
                             verbose=False)
    assert_same_cells(cell_values(results), cell_values(again))
    assert_same_weights(output_dir, tmp_path / "again", ("base", *TINY.strategies))


def test_a_finished_benchmark_without_its_model_states_rerenders_without_training(tiny_run, digits_dataset, tmp_path,
                                                                                  monkeypatch):
    """Committed benchmark folders hold results.json and the report, not the model states: running the same
    command again must re-render the report, not retrain the bases."""
    import shutil

    tiny_dir, results = tiny_run
    copy = tmp_path / "finished"
    shutil.copytree(tiny_dir, copy, ignore=shutil.ignore_patterns(config.STATE_DIRNAME))
    monkeypatch.setattr(trainer.SeedTrainer, "train", lambda *args: pytest.fail("a finished benchmark retrained"))
    again = bm.run_benchmark(TINY, copy, dataset=digits_dataset, verbose=False, command=results["command"])
    assert again["seeds"] == results["seeds"]
    assert not (copy / config.STATE_DIRNAME).exists()


@pytest.mark.slow
def test_resume_skips_finished_cells_and_matches_an_uninterrupted_run(tiny_run, digits_dataset, tmp_path,
                                                                      monkeypatch):
    """Interrupted after 3 cells (base + random's two rounds), then resumed by a new process-like run.

    The resumed run's first training (entropy, round 1) is a fresh model's first training while the
    uninterrupted run's was the fourth of a restored one: bit-identical weights show that restoring the initial
    state equals building the model anew.
    """
    tiny_dir, results = tiny_run
    settings = dataclasses.replace(TINY, seeds=1)
    output_dir = tmp_path / "resumed"

    class Interrupt(Exception):
        pass

    def stop_after_three(partial):
        record = partial["seeds"]["0"]
        if sum(len(cells) for cells in record["strategies"].values()) + ("base" in record) >= 3:
            raise Interrupt

    with pytest.raises(Interrupt):
        bm.run_benchmark(settings, output_dir, dataset=digits_dataset, verbose=False, on_cell=stop_after_three)
    trainings = []
    original_train = trainer.SeedTrainer.train

    def counting_train(self, *args, **kwargs):
        trainings.append(1)
        return original_train(self, *args, **kwargs)

    monkeypatch.setattr(trainer.SeedTrainer, "train", counting_train)
    resumed = bm.run_benchmark(settings, output_dir, dataset=digits_dataset, verbose=False)
    assert len(trainings) == CELLS_PER_SEED - 3
    assert_same_cells(cell_values(results), cell_values(resumed))
    assert_same_weights(tiny_dir, output_dir, TINY.strategies)
    trainings.clear()
    bm.run_benchmark(settings, output_dir, dataset=digits_dataset, verbose=False)
    assert trainings == []


@pytest.mark.slow
def test_a_different_config_in_the_same_directory_is_an_error(tiny_run, digits_dataset, capsys):
    output_dir, _ = tiny_run
    with pytest.raises(ToolkitError, match="different settings"):
        bm.run_benchmark(dataclasses.replace(TINY, budget=21), output_dir, dataset=digits_dataset, verbose=False)
    assert bm.main(["--n0", "61", "--output-dir", str(output_dir), "--quiet"]) == 2
    assert "different settings" in capsys.readouterr().err


def test_cli_overrides_the_preset_and_rejects_bad_values(capsys, tmp_path):
    args = bm.build_parser().parse_args(["--preset", "fashion", "--rounds", "3", "--strategies", "random,margin",
                                         "--classes", "all"])
    settings = bm.config_from_args(args)
    assert (settings.dataset, settings.rounds, settings.strategies, settings.classes, settings.n0) == (
        "fashion_mnist", 3, ("random", "margin"), None, 500)
    unused = str(tmp_path / "unused")
    assert bm.main(["--strategies", "random,oracle", "--output-dir", unused]) == 2
    assert "unknown strategy 'oracle'" in capsys.readouterr().err
    assert bm.main(["--n0", "1000", "--pool-size", "1000", "--output-dir", unused]) == 2
    assert "exceeds the 1347 training images" in capsys.readouterr().err
    assert not (tmp_path / "unused").exists()


@pytest.mark.parametrize("preset", sorted(config.PRESETS))
def test_every_preset_is_valid_and_runs_random_first(preset):
    settings = config.PRESETS[preset]
    settings.validate()
    assert settings.strategies[0] == "random"
    assert len(set(settings.strategies)) == len(settings.strategies)


@pytest.mark.slow
def test_quick_preset_through_main_with_overrides(tmp_path):
    """The quick preset from the command line, cut down by overrides (the whole preset takes minutes): the
    overrides reach the run, and the report and its figure are written."""
    assert bm.main(["--preset", "quick", "--seeds", "1", "--rounds", "1", "--epochs", "1", "--output-dir",
                    str(tmp_path), "--quiet"]) == 0
    results = json.loads((tmp_path / config.RESULTS_FILENAME).read_text())
    quick = config.PRESETS["quick"]
    assert (results["config"]["seeds"], results["config"]["rounds"], results["config"]["epochs"]) == (1, 1, 1)
    assert results["config"]["strategies"] == list(quick.strategies) and results["config"]["n0"] == quick.n0
    labels, _ = benchmark_stats.curves(results, "random")
    assert labels.shape == (1, 2) and labels[0, 1] == quick.n0 + quick.budget
    assert (tmp_path / config.REPORT_FILENAME).is_file() and (tmp_path / config.CURVE_FILENAME).is_file()


@pytest.mark.slow
def test_worker_processes_extend_a_finished_benchmark_with_another_strategy(digits_dataset, tmp_path):
    """Two one-thread worker processes; adding a strategy later trains only its cells; --workers must match."""
    settings = dataclasses.replace(TINY, seeds=1, strategies=("random",))
    output_dir = tmp_path / "workers"
    first = bm.run_benchmark(settings, output_dir, dataset=digits_dataset, verbose=False, workers=2)
    assert first["execution"] == {"workers": 2, "tensorflow_threads": 1}
    recorded = json.loads((output_dir / config.RESULTS_FILENAME).read_text())
    recorded["peak_memory_mb"] = 1e6
    (output_dir / config.RESULTS_FILENAME).write_text(json.dumps(recorded))
    extended = bm.run_benchmark(dataclasses.replace(settings, strategies=("random", "margin")), output_dir,
                                dataset=digits_dataset, verbose=False, workers=2)
    assert cell_values(extended)[("random", 2)] == cell_values(first)[("random", 2)]
    assert len(extended["seeds"]["0"]["strategies"]["margin"]) == TINY.rounds
    assert extended["peak_memory_mb"] == 1e6, "a resumed run must keep the earlier runs' peak memory"
    assert not (output_dir / config.WORKER_DIRNAME).exists()
    assert "| margin | 1 |" in (output_dir / config.REPORT_FILENAME).read_text()
    with pytest.raises(ToolkitError, match="same --workers"):
        bm.run_benchmark(settings, output_dir, dataset=digits_dataset, verbose=False, workers=1)


@pytest.mark.slow
def test_recommended_records_what_it_ran_and_refuses_a_resume_under_another_rule(digits_dataset, tmp_path,
                                                                                  monkeypatch):
    settings = dataclasses.replace(TINY, seeds=1, strategies=("random", "recommended"))
    output_dir = tmp_path / "recommended"
    results = bm.run_benchmark(settings, output_dir, dataset=digits_dataset, verbose=False)
    cells = results["seeds"]["0"]["strategies"]["recommended"]
    assert [cell["ran"] for cell in cells] == ["typicality over pixels"] * TINY.rounds
    report = (output_dir / config.REPORT_FILENAME).read_text()
    assert "- recommended ran: rounds 1–2: typicality over pixels" in report
    assert "## Target: recommended vs random" in report
    monkeypatch.setattr(alf, "RECOMMENDED_SCARCE_LABELS_PER_CLASS", 1)
    with pytest.raises(ToolkitError, match="'recommended' ran 'typicality over pixels' but the rule now gives "
                                           "'margin over model'"):
        bm.run_benchmark(settings, output_dir, dataset=digits_dataset, verbose=False)


def test_statistics_use_only_seeds_where_every_strategy_finished():
    def cell(round_number, accuracy):
        return {"round": round_number, "labels": 10 * (round_number + 1), "accuracy": accuracy,
                "per_class_accuracy": {"a": accuracy}, "timings": {"forward_s": 0.0}}

    results = {"config": {"seeds": 3, "rounds": 1, "strategies": ["random", "margin"]},
               "dataset": {"class_names": ["a"]},
               "seeds": {"0": {"base": cell(0, 0.5), "strategies": {"random": [cell(1, 0.6)], "margin": [cell(1, 0.7)]}},
                         "1": {"base": cell(0, 0.4), "strategies": {"random": [cell(1, 0.5)], "margin": []}},
                         "2": {"base": cell(0, 0.3), "strategies": {"random": [cell(1, 0.4)], "margin": [cell(1, 0.4)]}},
                         "3": {"base": cell(0, 0.9), "strategies": {"random": [cell(1, 0.9)], "margin": [cell(1, 0.9)]}}}}
    assert len(benchmark_stats.finished_seeds(results)) == 2
    labels, accuracies = benchmark_stats.curves(results, "margin")
    assert accuracies.tolist() == [[0.5, 0.7], [0.3, 0.4]]
    summary = benchmark_stats.summarise(results)
    assert summary["base_mean"] == pytest.approx(0.4)
    assert summary["strategies"]["margin"]["paired"][1][0] == pytest.approx(0.05)


def _summary_of_recommended(labels, paired, corrected, seeds=10):
    return {"strategies": {"random": {}, "recommended": {"labels_mean": labels, "paired": paired,
                                                         "paired_corrected": corrected, "seeds": seeds}}}


def test_target_check_passes_only_when_every_criterion_holds():
    labels = [100, 200, 300, 1500, 1600]  # 10 classes: 10, 20, 30, 150 and 160 labels per class
    strong = [(0.05, 0.001), (0.03, 0.01), (0.01, 0.2), (0.0, None), (-0.02, 0.3)]
    checks = benchmark_stats.target_check(_summary_of_recommended(labels, strong, [p for _, p in strong]), 10)
    assert [met for _, _, met in checks] == [True, True, True, True, True]
    assert checks[2][1] == "never below (4 rounds)" and checks[3][1] == "2 of 4"
    weak = [(0.02, 0.001), (0.04, 0.2), (-0.01, 0.5), (0.01, 0.3)]
    checks = benchmark_stats.target_check(_summary_of_recommended([100, 200, 300, 400], weak, [0.01, 0.2, 0.5, 0.3],
                                                                  seeds=5), 10)
    assert [met for _, _, met in checks] == [False, True, False, False, False]
    assert checks[0][1] == "+2.00" and checks[2][1] == "below at 300 labels (-1.00)" and checks[3][1] == "1 of 4"
    missing = benchmark_stats.target_check(_summary_of_recommended([500, 700], [(0.0, None)] * 2, [None] * 2), 10)
    assert missing[0][1] == "not measured (no round at 100 labels)" and missing[0][2] is None
    assert benchmark_stats.verdict(missing).startswith("Target not met")  # no round up to 150 per class is below
    unmeasured = [("a", "1", True), ("b", "not measured", None)]
    assert benchmark_stats.verdict(unmeasured).startswith("Target met on the rows this run measures")
    assert benchmark_stats.check_rows(unmeasured)[1] == "| b | not measured | — |"
    assert "Target not met." in benchmark_stats.target_lines(
        _summary_of_recommended([100, 200, 300, 400], weak, [0.01, 0.2, 0.5, 0.3]), 10)
    assert benchmark_stats.target_check({"strategies": {"random": {}}}, 10) == []


def test_p_values_are_corrected_together_for_the_number_of_tests():
    from scipy import stats as scipy_stats

    summary = {"strategies": {"a": {"paired": [(0.0, None), (0.01, 0.01), (0.02, 0.04)]},
                              "b": {"paired": [(0.0, None), (0.01, 0.03)]}, "random": {}}}
    benchmark_stats.correct_p_values(summary)
    expected = scipy_stats.false_discovery_control([0.01, 0.04, 0.03])
    assert summary["strategies"]["a"]["paired_corrected"] == [None, pytest.approx(expected[0]),
                                                              pytest.approx(expected[1])]
    assert summary["strategies"]["b"]["paired_corrected"] == [None, pytest.approx(expected[2])]


# ----------------------------------------------------------------------------------------- damaged records

def valid_cell(round_number: int, selected: list[int]) -> dict:
    return {"round": round_number, "labels": 60 + 20 * round_number, "accuracy": 0.5,
            "per_class_accuracy": {"0": 0.4, "1": None}, "n_selected": len(selected), "selected_indices": selected,
            "timings": {key: 0.1 for key in records.TIMING_KEYS}, "best_epoch": 1}


def valid_results() -> dict:
    return {"format": config.FORMAT_VERSION, "config_hash": "0123456789abcdef", "execution": records.execution_settings(1),
            "peak_memory_mb": 12.5, "dataset": {"class_names": ["0", "1"]},
            "seeds": {"0": {"initial_indices": [0, 1, 2], "pool_size": 50, "base": valid_cell(0, []),
                            "strategies": {"random": [valid_cell(1, [5, 6]), valid_cell(2, [7])]}}}}


def damaged(change) -> dict:
    results = valid_results()
    change(results)
    return results


@pytest.mark.parametrize("results, problem", [
    ([], "it holds a JSON list, not an object"),
    (damaged(lambda r: r.pop("config_hash")), "config_hash must be a string"),
    (damaged(lambda r: r.update(execution={"workers": "2"})), "execution.workers must be an integer"),
    (damaged(lambda r: r.update(peak_memory_mb="a lot")), "peak_memory_mb must be a number or null"),
    (damaged(lambda r: r.update(seeds=[])), "seeds must be an object"),
    (damaged(lambda r: r["seeds"].update({"first": {}})), "seeds['first'] must be an object under a seed number"),
    (damaged(lambda r: r["seeds"]["0"].update(pool_size=None)), "seeds['0'] must hold pool_size"),
    (damaged(lambda r: r["seeds"]["0"].update(initial_indices=[0, -1])),
     "seeds['0'].initial_indices must be a list of training indices 0..99"),
    (damaged(lambda r: r["seeds"]["0"]["base"].update(accuracy=1.5)), "seeds['0'].base.accuracy must be a number"),
    (damaged(lambda r: r["seeds"]["0"]["base"].update(labels=True)),
     "seeds['0'].base.labels must be a non-negative integer"),
    (damaged(lambda r: r["seeds"]["0"]["strategies"].update(random={})),
     "seeds['0'].strategies['random'] must be a list of cells"),
    (damaged(lambda r: r["seeds"]["0"]["strategies"]["random"][1].update(round=3)),
     "seeds['0'].strategies['random'][1].round must be 2"),
    (damaged(lambda r: r["seeds"]["0"]["strategies"]["random"][0].update(selected_indices=[100])),
     "seeds['0'].strategies['random'][0].selected_indices must be a list of training indices"),
    (damaged(lambda r: r["seeds"]["0"]["strategies"]["random"][0]["timings"].pop("training_s")),
     "seeds['0'].strategies['random'][0].timings must hold the numbers"),
    (damaged(lambda r: r["seeds"]["0"]["strategies"]["random"][0].update(per_class_accuracy=[0.5])),
     "per_class_accuracy must map class names to numbers"),
    (damaged(lambda r: r["seeds"]["0"]["strategies"]["random"][0].update(ran=3)), ".ran must be a string"),
])
def test_results_problem_names_the_first_wrong_field(results, problem):
    assert records.results_problem(valid_results(), 100) is None
    found = records.results_problem(results, 100)
    assert found is not None and problem in found


def test_an_unreadable_model_state_is_one_error_naming_it(tmp_path):
    import keras

    state = tmp_path / "seed0_base.npz"
    state.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ToolkitError, match=rf"{state} is not a saved model state \(BadZipFile\): delete it"):
        trainer.load_weights(state)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    trainer.save_weights(state, [np.zeros((4, 3)), np.zeros(3)])
    before = [weight.copy() for weight in model.get_weights()]
    with pytest.raises(ToolkitError, match="does not hold this benchmark's model"):
        trainer.restore_weights(model, state)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


# ------------------------------------------------------------------------------------------- fast learners

FAST = config.BenchmarkConfig(dataset="digits", n0=30, budget=20, rounds=2, seeds=2, learner="linear",
                              representation="pixels", initial="each",
                              strategies=("random", "margin", "typicality", "recommended"))


@pytest.fixture(scope="module")
def fast_run(digits_dataset, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("fast") / "run"
    results = bm.run_benchmark(FAST, output_dir, dataset=digits_dataset, verbose=False,
                               cache_dir=tmp_path_factory.mktemp("cache"))
    return output_dir, results


def test_a_fast_learner_benchmark_lets_each_strategy_pick_its_first_labels(fast_run, digits_dataset):
    output_dir, results = fast_run
    record = results["seeds"]["0"]
    assert record["base"]["labels"] == 30 and record["base"]["selected_indices"] == record["initial_indices"]
    assert [cell["round"] for cell in record["strategies"]["random"]] == [1, 2]
    typicality = record["strategies"]["typicality"]
    assert [cell["round"] for cell in typicality] == [0, 1, 2]
    assert typicality[0]["labels"] == 30 and typicality[0]["selected_indices"] != record["initial_indices"]
    labels, _ = benchmark_stats.curves(results, "typicality")
    assert labels.tolist() == [[30, 50, 70]] * 2
    assert record["strategies"]["recommended"][0]["ran"] == " over ".join(
        alf.recommended_choice(0, 10, "linear"))
    report = (output_dir / config.REPORT_FILENAME).read_text()
    assert "picked by each strategy itself from zero labels" in report and "logistic regression" in report


def test_a_fast_learner_benchmark_resumes_from_its_cells_alone(fast_run, digits_dataset, tmp_path, monkeypatch):
    import shutil

    from Evaluation.Benchmark import fast

    output_dir, results = fast_run
    copy = tmp_path / "copy"
    shutil.copytree(output_dir, copy)
    partial = json.loads((copy / config.RESULTS_FILENAME).read_text())
    del partial["seeds"]["1"]["strategies"]["typicality"][2:]
    (copy / config.RESULTS_FILENAME).write_text(json.dumps(partial))
    rounds = []
    original = fast.FastSeedRun.run_round
    monkeypatch.setattr(fast.FastSeedRun, "run_round",
                        lambda self, name, labeled, number: rounds.append((self.seed, name, number))
                        or original(self, name, labeled, number))
    again = bm.run_benchmark(FAST, copy, dataset=digits_dataset, verbose=False, cache_dir=tmp_path / "cache")
    assert rounds == [(1, "typicality", 2)]
    def without_timings(cells):
        return [{key: value for key, value in cell.items() if key != "timings"} for cell in cells]

    assert without_timings(again["seeds"]["1"]["strategies"]["typicality"]) == without_timings(
        results["seeds"]["1"]["strategies"]["typicality"])


def test_pipeline_efficiency_against_a_baseline_curve_with_a_known_answer():
    def run(curve_by_seed: dict[str, list[tuple[int, float]]], name: str) -> dict:
        seeds = {number: {"base": {"labels": points[0][0], "accuracy": points[0][1]},
                          "strategies": {name: [{"round": r, "labels": l, "accuracy": a}
                                                for r, (l, a) in enumerate(points[1:], start=1)]}}
                 for number, points in curve_by_seed.items()}
        return {"config": {"seeds": len(curve_by_seed), "rounds": 2, "strategies": [name], "first_seed": 0},
                "dataset": {"class_names": list("abcdefghij")}, "seeds": seeds}

    baseline = run({"0": [(100, 0.5), (200, 0.6), (300, 0.7)], "1": [(100, 0.5), (200, 0.6), (300, 0.7)]}, "random")
    pipeline = run({"0": [(100, 0.55), (200, 0.65), (300, 0.75)], "1": [(100, 0.6), (200, 0.7), (300, 0.8)]},
                   "linear")
    rows = benchmark_stats.pipeline_efficiency(pipeline, baseline, "linear")
    assert rows[0]["baseline_labels"] == pytest.approx(175) and rows[0]["efficiency"] == pytest.approx(1.75)
    assert rows[1]["efficiency"] == pytest.approx(275 / 200)
    from Evaluation.Benchmark.report import efficiency_columns

    assert efficiency_columns({"linear": rows}, 10) == [10, 20, 30]
    assert efficiency_columns({"linear": rows}, 100) == [1, 2, 3]
    assert rows[2]["efficiency"] is None and rows[2]["above_baseline"] and rows[2]["seeds_beyond"] == 2
    checks = benchmark_stats.pipeline_check(pipeline, baseline, "linear", benchmark_stats.PipelineTarget(
        labels_per_class=20, baseline_labels_per_class=30, min_accuracy_labels_per_class=10, min_accuracy=0.6))
    assert [met for _, _, met in checks] == [False, False]
    assert checks[0][1] == "67.5 % vs 70.0 %" and checks[1][1] == "57.5 %"
    beyond = benchmark_stats.pipeline_check(pipeline, baseline, "linear", benchmark_stats.PipelineTarget(
        labels_per_class=50, baseline_labels_per_class=30, min_accuracy_labels_per_class=10, min_accuracy=0.5))
    assert beyond[0] == ("accuracy with 500 labels ≥ the baseline's with 300 (label efficiency ≥ 1)",
                         "not measured (no round at 500 labels)", None)
    assert beyond[1][2] is True


@pytest.mark.slow
def test_the_distilled_learner_trains_mobilenet_on_labels_plus_recorded_pseudo_labels(digits_dataset, tmp_path):
    settings = config.BenchmarkConfig(dataset="digits", n0=40, budget=20, rounds=1, seeds=1, epochs=1,
                                      learner="mobilenet_distilled", strategies=("random", "margin"))
    results = bm.run_benchmark(settings, tmp_path / "run", dataset=digits_dataset, verbose=False,
                               cache_dir=tmp_path / "cache")
    record = results["seeds"]["0"]
    base, (margin,) = record["base"], record["strategies"]["margin"]
    train_size = 40 - round(0.1 * 40)
    assert 0 < base["pseudo_labels"] <= 4 * train_size
    assert 0 < margin["pseudo_labels"] <= 4 * (train_size + 20)
    assert base["pseudo_labels_right"] > 0.5  # label spreading on digits' patch features is mostly right
    assert list((tmp_path / "cache" / "features").glob("patches_*.npy"))
    report = (tmp_path / "run" / "report.md").read_text()
    assert "- distilled: each training also takes the unlabeled seed images" in report
    with pytest.raises(ToolkitError, match="--learner must be one of mobilenet, mobilenet_distilled"):
        dataclasses.replace(settings, learner="distilled").validate()
