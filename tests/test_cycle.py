"""ActiveLearningAnalyzer: the whole cycle on a tiny digits model (one-epoch trainings)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import AL_cycle
import AL_functions as alf
from AL_cycle import ActiveLearningAnalyzer
from altoolkit.balance import ClassBalance, normalise_targets, parse_targets, recommendations
from altoolkit.errors import ToolkitError
from altoolkit.files import file_sha256

LABELED, START, END = 100, 100, 400
FAST = {"epochs": 1}


@pytest.fixture(scope="module")
def digits(digits_dataset):
    return digits_dataset


@pytest.fixture(scope="module")
def base_model(tiny_digits_model):
    """The session's one-epoch model on the first 100 digits (seed 0), in its own models/ folder."""
    assert tiny_digits_model.metrics["labeled_size"] == LABELED
    return tiny_digits_model.model_path


def make_analyzer(base_model, digits, tmp_path, targets, **options):
    return ActiveLearningAnalyzer(base_model, LABELED, START, END, targets, dataset=digits,
                                  output_dir=tmp_path / "results", models_dir=tmp_path / "models",
                                  cache_dir=tmp_path / "cache", training=FAST, verbose=options.pop("verbose", False),
                                  **options)


def run_cycle(analyzer):
    analyzer.run_all(diversity_params={"n_clusters": 8}, plots=False)
    return analyzer.find_intersection(save_images=False, create_visualization=False)


@pytest.fixture(scope="module")
def completed_cycle(base_model, digits, tmp_path_factory):
    """One whole cycle with targets met (target 0 per class), so it retrains AL and random once."""
    folder = tmp_path_factory.mktemp("cycle")
    before = file_sha256(base_model)
    analyzer = make_analyzer(base_model, digits, folder, targets=0)
    intersection, stats = run_cycle(analyzer)
    return analyzer, folder, intersection, stats, before


@pytest.mark.slow
def test_targets_met_retrains_al_and_random_and_leaves_the_base_model_alone(completed_cycle, base_model):
    analyzer, folder, intersection, stats, before = completed_cycle
    assert len(intersection) > 0 and stats["count"] == len(intersection)
    assert analyzer.balance.all_met
    runs = sorted(path.name for path in (folder / "models").iterdir())
    assert len(runs) == 2
    assert runs[0].startswith(f"{LABELED}+al{len(intersection)}_seed0_")
    assert runs[1].startswith(f"{LABELED}+random{len(intersection)}_seed0_")
    for run in runs:
        assert (folder / "models" / run / "best_model.keras").is_file()
    comparison = json.loads((folder / "results" / "comparison" / "comparison.json").read_text())
    assert set(comparison["accuracy"]) == {"base", "al", "random"}
    assert comparison["al_absolute_indices"] == (intersection + START).tolist()
    random_indices = np.asarray(comparison["random_absolute_indices"])
    assert len(random_indices) == len(intersection) and random_indices.min() >= START and random_indices.max() < END
    assert comparison["al_minus_random"] == pytest.approx(comparison["accuracy"]["al"] - comparison["accuracy"]["random"])
    assert "One run is one sample" in comparison["verdict"]
    assert (folder / "results" / "comparison" / "al_vs_random.png").stat().st_size > 0
    assert file_sha256(base_model) == before
    al_metrics = json.loads(next((folder / "models").glob("*+al*/metrics.json")).read_text())
    assert al_metrics["additional_indices"] == (intersection + START).tolist()
    assert al_metrics["seed"] == 0 and al_metrics["recipe"]["epochs"] == 1


@pytest.mark.slow
def test_a_rerun_reuses_finished_retraining_runs(completed_cycle, base_model, digits, capsys):
    _, folder, _, _, _ = completed_cycle
    stamps = {path: path.stat().st_mtime_ns for path in (folder / "models").glob("*/best_model.keras")}
    run_cycle(make_analyzer(base_model, digits, folder, targets=0, verbose=True))
    assert "reusing the finished run" in capsys.readouterr().out
    assert {path: path.stat().st_mtime_ns for path in stamps} == stamps


@pytest.mark.slow
def test_targets_not_met_means_no_retraining_and_recommendations_name_the_classes(base_model, digits, tmp_path):
    analyzer = make_analyzer(base_model, digits, tmp_path, targets={"3": 500, "7": 0})
    run_cycle(analyzer)
    assert not analyzer.balance.all_met
    assert not (tmp_path / "models").exists()
    assert analyzer.comparison is None
    assert analyzer.advice[0].startswith("3 lacks ")
    assert not any(line.startswith("7 lacks") for line in analyzer.advice)
    assert analyzer.balance.lines()[0].startswith("✗ 3: ") and analyzer.balance.lines()[1].startswith("✓ 7: ")


@pytest.mark.slow
def test_a_retraining_killed_midway_leaves_no_partial_run_and_can_be_rerun(base_model, digits, tmp_path,
                                                                          monkeypatch):
    import keras

    before = file_sha256(base_model)
    original_fit = keras.Model.fit
    calls = []

    def fit_killed_on_the_second_training(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original_fit(self, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", fit_killed_on_the_second_training)
    with pytest.raises(KeyboardInterrupt):
        run_cycle(make_analyzer(base_model, digits, tmp_path, targets=0))
    runs = [path.name for path in (tmp_path / "models").iterdir()]
    assert len(runs) == 1 and f"{LABELED}+al" in runs[0], "only the finished AL run, no partial random run"
    monkeypatch.setattr(keras.Model, "fit", original_fit)
    analyzer = make_analyzer(base_model, digits, tmp_path, targets=0)
    run_cycle(analyzer)
    assert analyzer.comparison is not None
    assert len(list((tmp_path / "models").iterdir())) == 2
    assert file_sha256(base_model) == before


@pytest.mark.slow
def test_unknown_class_in_dict_targets_is_an_error(base_model, digits, tmp_path):
    with pytest.raises(ToolkitError, match=r"unknown class\(es\) in the targets: airplane"):
        make_analyzer(base_model, digits, tmp_path, targets={"airplane": 5})


@pytest.mark.parametrize("targets, message", [
    (-1, "must be a non-negative integer, got -1"),
    (2.5, "must be a non-negative integer, got 2.5"),
    ({"3": "many"}, "must be a non-negative integer, got 'many'"),
])
def test_bad_targets_are_errors(targets, message):
    with pytest.raises(ToolkitError, match=message):
        normalise_targets(targets, ("3", "7"))


def test_command_line_targets_are_parsed():
    assert parse_targets("50") == 50
    assert parse_targets("airplane=50, ship=30") == {"airplane": 50, "ship": 30}
    assert parse_targets(None) is None
    with pytest.raises(ToolkitError, match="write class=count"):
        parse_targets("airplane=,ship=3")
    with pytest.raises(ToolkitError, match="non-negative integer, got 'x'"):
        parse_targets("x")


def test_recommendations_suggest_a_larger_pool_from_the_selection_rate():
    balance = ClassBalance(actual={"a": 10, "b": 2}, targets={"a": 5, "b": 6}, source="true labels")
    advice = recommendations(balance, pool_size=100, start_idx=500, end_idx=600, data_size=5000)
    assert advice[0] == "b lacks 4 images (2/6)"
    assert "--end-idx 800" in advice[1]
    assert "--target-per-class 2" in advice[2]


@pytest.mark.slow
def test_find_intersection_before_the_analyses_is_an_error(base_model, digits, tmp_path):
    analyzer = make_analyzer(base_model, digits, tmp_path, targets=None)
    with pytest.raises(ToolkitError, match="call analyzer.run_all\\(\\) first"):
        analyzer.find_intersection()


@pytest.mark.slow
def test_pool_without_labels_uses_predicted_classes_and_does_not_retrain(base_model, digits, tmp_path):
    from altoolkit.data import Dataset

    y_train = digits.y_train[:END].copy()
    y_train[START:] = -1
    unlabeled = Dataset(name="npz", source="npz file test", x_train=digits.x_train[:END], y_train=y_train,
                        x_test=digits.x_test, y_test=digits.y_test, class_names=digits.class_names)
    analyzer = make_analyzer(base_model, unlabeled, tmp_path, targets=0)
    _, stats = run_cycle(analyzer)
    assert stats["distribution_source"] == "predicted classes (the pool has no labels)"
    predicted = analyzer.context.pool.predicted[analyzer.intersection]
    assert stats["distribution"] == {name: int((predicted == i).sum()) for i, name in enumerate(digits.class_names)}
    assert analyzer.comparison is None and not (tmp_path / "models").exists()
    assert "predicted classes (the pool has no labels)" in analyzer.get_summary()


@pytest.mark.slow
def test_summary_and_manifest_describe_the_cycle(completed_cycle, base_model, digits):
    analyzer, folder, intersection, stats, _ = completed_cycle
    summary = analyzer.get_summary()
    for expected in (str(base_model), f"labeled: first {LABELED} images", f"pool: {START}..{END - 1} (300 images)",
                     "uncertainty: ", "diversity: ", "novelty: ", f"intersection: {stats['count']} images",
                     "class distribution (true labels)", "all targets met", "test accuracy: base "):
        assert expected in summary
    manifest = json.loads((folder / "results" / "cycle_manifest.json").read_text())
    assert manifest["model"]["sha256"] == file_sha256(base_model)
    assert manifest["dataset"]["fingerprint"] == digits.fingerprint
    assert manifest["seed"] == 0 and manifest["labeled_size"] == LABELED
    assert (manifest["start_idx"], manifest["end_idx"]) == (START, END)
    assert manifest["parameters"]["diversity"]["n_clusters"] == 8
    assert manifest["intersection"]["absolute_indices"] == (intersection + START).tolist()
    assert set(manifest["timings_seconds"]) >= {"forward_pass", "uncertainty", "diversity", "novelty",
                                                "intersection", "retraining"}
    assert set(manifest["versions"]) >= {"tensorflow", "keras", "numpy", "scikit-learn"}
    assert manifest["comparison"]["accuracy"]["al"] == analyzer.comparison["accuracy"]["al"]
    assert manifest["retraining_recipe"]["epochs"] == 1


@pytest.mark.slow
def test_command_line_bad_target_is_one_line(base_model, tmp_path, capsys):
    status = AL_cycle.main(["--dataset", "digits", "--model", str(base_model), "--labeled-size", "100",
                            "--start-idx", "100", "--end-idx", "400", "--target-per-class", "ship=3",
                            "--output-dir", str(tmp_path / "r"), "--quiet"])
    error = capsys.readouterr().err.strip()
    assert status == 2
    assert error.startswith("error: unknown class(es) in the targets: ship") and len(error.splitlines()) == 1


@pytest.mark.slow
def test_impossible_cluster_count_fails_before_the_forward_pass(base_model, digits, tmp_path, monkeypatch):
    analyzer = make_analyzer(base_model, digits, tmp_path, targets=None)
    monkeypatch.setattr(analyzer.context.cache, "outputs_for",
                        lambda ranges: pytest.fail("the forward pass ran before the parameters were checked"))
    with pytest.raises(ToolkitError, match=r"n_clusters must be between 1 and the pool size \(300\), got 301"):
        analyzer.run_all(diversity_params={"n_clusters": 301})
    with pytest.raises(ToolkitError, match=r"k_neighbors must be between 1 and the number of labeled images \(100\)"):
        analyzer.run_all(novelty_params={"k_neighbors": 101})


@pytest.mark.slow
def test_select_spends_exactly_the_budget_and_reports_the_balance(base_model, digits, tmp_path):
    analyzer = make_analyzer(base_model, digits, tmp_path, targets={"3": 1000}, verbose=True)
    indices, stats = analyzer.select(40, strategy="class_balanced_margin", save_images=False,
                                     create_visualization=False)
    assert len(indices) == 40 == len(set(indices.tolist())) and indices.max() < END - START
    assert stats["count"] == 40 and sum(stats["distribution"].values()) == 40
    assert analyzer.balance is not None and not analyzer.balance.all_met and analyzer.comparison is None
    saved = np.load(tmp_path / "results" / "selection" / "selection_indices.npy")
    assert saved.tolist() == indices.tolist()
    manifest = json.loads((tmp_path / "results" / "cycle_manifest.json").read_text())
    assert manifest["selection"]["by"] == "class_balanced_margin"
    assert manifest["selection"]["absolute_indices"] == (indices + START).tolist()
    assert "selection: 40 images by class_balanced_margin" in analyzer.get_summary()


@pytest.mark.slow
def test_recommended_select_records_what_it_ran(base_model, digits, tmp_path):
    analyzer = make_analyzer(base_model, digits, tmp_path, targets=None)
    indices, stats = analyzer.select(10, strategy="recommended", save_images=False, create_visualization=False)
    assert len(set(indices.tolist())) == 10
    expected, representation = alf.recommended_choice(LABELED, digits.num_classes)
    assert (stats["strategy"], stats["ran"], stats["representation"]) == ("recommended", expected, representation)
    summary = (tmp_path / "results" / "selection" / "summary.txt").read_text()
    assert summary.startswith(f"budgeted selection: recommended ({expected} for {LABELED} labels) over "
                              f"{representation} features")


@pytest.mark.slow
def test_select_with_met_targets_retrains_against_random_of_the_same_size(base_model, digits, tmp_path):
    analyzer = make_analyzer(base_model, digits, tmp_path, targets=0)
    indices, _ = analyzer.select(12, strategy="typicality", representation="pixels", save_images=False,
                                 create_visualization=False)
    assert analyzer.comparison["extra_images"] == 12
    assert sorted(analyzer.comparison["al_absolute_indices"].tolist()) == sorted((indices + START).tolist())


@pytest.mark.slow
def test_select_rejects_an_unknown_strategy_or_representation(base_model, digits, tmp_path):
    analyzer = make_analyzer(base_model, digits, tmp_path, targets=None)
    with pytest.raises(ToolkitError, match="unknown strategy 'best'"):
        analyzer.select(5, strategy="best")
    with pytest.raises(ToolkitError, match="unknown representation 'raw'"):
        analyzer.select(5, strategy="coreset", representation="raw")
    with pytest.raises(ToolkitError, match="budget must be a non-negative integer"):
        analyzer.select(-1)


@pytest.mark.slow
def test_command_line_budgeted_selection(base_model, digits, tmp_path, capsys):
    assert AL_cycle.main(["--dataset", "digits", "--model", str(base_model), "--labeled-size", str(LABELED),
                          "--start-idx", str(START), "--end-idx", str(END), "--budget", "10", "--strategy", "badge",
                          "--no-retrain", "--no-images", "--output-dir", str(tmp_path / "out"), "--quiet"]) == 0
    assert len(np.load(tmp_path / "out" / "selection" / "selection_indices.npy")) == 10


@pytest.mark.slow
def test_without_targets_the_cycle_says_that_retraining_needs_them_and_how(base_model, digits, tmp_path, capsys):
    analyzer = make_analyzer(base_model, digits, tmp_path, targets=None, verbose=True)
    run_cycle(analyzer)
    printed = capsys.readouterr().out
    assert "no class targets set, so no retraining: retraining needs class targets: --target-per-class N" in printed
    assert ("balance: no targets set, so no retraining; retraining needs class targets: --target-per-class N"
            in analyzer.get_summary())
    assert analyzer.comparison is None and not (tmp_path / "models").exists()


@pytest.mark.slow
def test_the_cache_goes_under_the_output_directory_and_cache_dir_moves_it(base_model, tmp_path, monkeypatch,
                                                                          capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["--dataset", "digits", "--model", str(base_model), "--labeled-size", str(LABELED), "--start-idx",
            str(START), "--end-idx", str(END), "--budget", "5", "--no-images", "--quiet"]
    assert AL_cycle.main([*argv, "--output-dir", "out"]) == 0, capsys.readouterr().err
    cached = sorted(path.name for path in (tmp_path / "out" / ".cache").iterdir())
    assert len(cached) == 3 and cached[-1] == "features"  # the pool, the labeled set, the selection's features
    assert not (tmp_path / "results").exists()
    assert json.loads((tmp_path / "out" / "cycle_manifest.json").read_text())["cache_dir"] == "out/.cache"
    assert AL_cycle.main([*argv, "--output-dir", "again", "--cache-dir", "shared"]) == 0, capsys.readouterr().err
    assert sorted(path.name for path in (tmp_path / "shared").iterdir()) == cached
    assert not (tmp_path / "again" / ".cache").exists()


@pytest.mark.slow
def test_a_base_model_at_chance_is_analysed_with_one_warning(base_model, tmp_path, capsys):
    """The session's one-epoch model gives every image the same probabilities: the cycle says so once."""
    assert AL_cycle.main(["--dataset", "digits", "--model", str(base_model), "--labeled-size", str(LABELED),
                          "--start-idx", str(START), "--end-idx", str(END), "--n-clusters", "8", "--no-images",
                          "--output-dir", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")]) == 0
    captured = capsys.readouterr()
    (warning,) = captured.err.splitlines()
    assert warning.startswith(f"warning: {base_model} looks untrained: it ")
    assert f"  {warning}" in captured.out  # in the summary, under the model
    manifest = json.loads((tmp_path / "out" / "cycle_manifest.json").read_text())
    assert manifest["model"]["warning"] == warning.removeprefix("warning: ")


def test_a_cold_start_chooses_the_base_models_labeled_set_and_later_runs_keep_it(tmp_path, capsys, digits_dataset):
    """--initial: the base model's 30 labeled images are chosen without labels among the first 200 (typical images
    of 30 clusters, so nearly every digit appears), trained on, recorded, and re-applied when the model is
    analysed again; the pool (200..399) never moves."""
    common = ["--dataset", "digits", "--labeled-size", "30", "--start-idx", "200", "--end-idx", "400",
              "--no-images", "--quiet", "--budget", "10", "--strategy", "margin"]
    model = tmp_path / "models" / "cold" / "best_model.keras"
    assert AL_cycle.main([*common, "--model", str(model), "--train-base", "--learner", "linear", "--initial",
                          "recommended", "--output-dir", str(tmp_path / "first")]) == 0, capsys.readouterr().err
    initial = json.loads((model.parent / "metrics.json").read_text())["initial"]
    assert (initial["strategy"], initial["ran"], initial["prefix"]) == ("recommended", "typicality", 200)
    chosen = np.asarray(initial["indices"])
    assert len(chosen) == len(set(chosen)) == 30 and chosen.max() < 200
    assert len(set(digits_dataset.y_train[chosen])) >= 9
    first = json.loads((tmp_path / "first" / "cycle_manifest.json").read_text())
    assert first["initial"]["indices"] == initial["indices"]
    assert len(list((tmp_path / "first" / ".cache" / "features").glob("patches_*.npy"))) == 1

    assert AL_cycle.main([*common, "--model", str(model), "--output-dir", str(tmp_path / "again")]) == 0
    again = json.loads((tmp_path / "again" / "cycle_manifest.json").read_text())
    assert again["dataset"]["fingerprint"] == first["dataset"]["fingerprint"]
    assert again["selection"]["absolute_indices"] == first["selection"]["absolute_indices"]
    assert min(again["selection"]["absolute_indices"]) >= 200

    assert AL_cycle.main([*common, "--model", str(model), "--train-base", "--initial", "probcover",
                          "--output-dir", str(tmp_path / "other")]) == 2
    assert "trained on a labeled set chosen by recommended" in capsys.readouterr().err
    assert AL_cycle.main([*common, "--initial", "typicality", "--output-dir", str(tmp_path / "x")]) == 2
    assert "add --train-base" in capsys.readouterr().err


def test_a_cycle_on_a_pretrained_backbone_uses_it_to_train_to_start_cold_and_to_select(tmp_path, capsys,
                                                                                     tiny_backbone):
    """--train-base --backbone: the linear base model learns on the network's features, the cold start chooses over
    them, and --representation backbone selects over the same network, which the recipe records."""
    model = tmp_path / "models" / "bb" / "best_model.keras"
    common = ["--dataset", "digits", "--labeled-size", "30", "--start-idx", "200", "--end-idx", "400", "--no-images",
              "--quiet", "--budget", "10", "--strategy", "coreset", "--representation", "backbone"]
    assert AL_cycle.main([*common, "--model", str(model), "--train-base", "--learner", "linear", "--initial",
                          "typicality", "--backbone", str(tiny_backbone), "--output-dir", str(tmp_path / "out")]) == 0
    metrics = json.loads((model.parent / "metrics.json").read_text())
    assert (metrics["recipe"]["representation"], metrics["recipe"]["backbone"]) == ("backbone", str(tiny_backbone))
    assert metrics["initial"]["representation"] == "backbone"
    manifest = json.loads((tmp_path / "out" / "cycle_manifest.json").read_text())
    assert manifest["selection"]["parameters"]["representation"] == "backbone"
    assert len(manifest["selection"]["absolute_indices"]) == 10
    assert len(list((tmp_path / "out" / ".cache" / "features").glob("backbone_*.npy"))) == 2
    capsys.readouterr()
    assert AL_cycle.main([*common, "--backbone", str(tiny_backbone), "--output-dir", str(tmp_path / "x")]) == 2
    assert "add --train-base" in capsys.readouterr().err
    assert AL_cycle.main([*common, "--train-base", "--backbone-weights", "w.h5", "--output-dir",
                          str(tmp_path / "y")]) == 2
    assert "add --backbone" in capsys.readouterr().err


def test_a_dataset_puts_chosen_images_first_and_leaves_the_pool_in_place(digits_dataset):
    moved = digits_dataset.with_first([5, 2, 7], prefix=10)
    order = [5, 2, 7, 0, 1, 3, 4, 6, 8, 9]
    assert np.array_equal(moved.x_train[:10], digits_dataset.x_train[order])
    assert np.array_equal(moved.y_train[10:], digits_dataset.y_train[10:])
    assert moved.first_indices == (5, 2, 7) and moved.fingerprint != digits_dataset.fingerprint
    for bad in ([5, 5], [10], [-1]):
        with pytest.raises(ToolkitError, match="distinct training indices below 10"):
            digits_dataset.with_first(bad, prefix=10)


def test_cold_start_strategies_cover_separated_clusters_and_refuse_the_ones_that_need_a_model():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    points = np.concatenate([centre + rng.normal(size=(30, 2)) for centre in centres])
    for strategy in ("recommended", "typicality", "probcover", "coreset"):
        selection = alf.cold_start(strategy, points, 3, seed=1)
        assert sorted(selection.indices // 30) == [0, 1, 2], strategy
    assert alf.cold_start("recommended", points, 3).strategy == "typicality"
    with pytest.raises(ToolkitError, match="needs a model or labels"):
        alf.cold_start("margin", points, 3)
