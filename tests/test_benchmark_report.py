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


def test_picks_are_described_as_typical_isolated_or_near_duplicate():
    from Evaluation.Benchmark import picks

    line = np.array([[float(x)] for x in range(10)] + [[100.0], [5.2]])  # evenly spaced, an outlier, a twin of 5
    percentiles = picks.typicality_percentiles(line, neighbours=1)
    assert percentiles[10] == pytest.approx(100 / 12)  # only itself is as isolated as the outlier
    # row 0 is 1 from its neighbour, like 7 other rows (6 is 0.8 from the twin) and less than the outlier: 9 of 12
    assert percentiles[0] == pytest.approx(100 * 9 / 12)
    assert percentiles[5] == percentiles[11] == pytest.approx(100.0)
    assert picks.nearest_pick_ratios(line, np.array([5, 11, 0])) == pytest.approx([0.2, 0.2, 5.0])
    described = picks.describe_picks(line, np.array([5, 11, 0, 10]), np.array(list("aabbbbbbbbcc")),
                                     typicality=percentiles)
    assert described["near_duplicates"] == 2 and described["classes_covered"] == 3
    assert described["classes"] == ["b", "c", "a", "c"]
    assert described["median_typicality"] == pytest.approx(np.median(percentiles[[5, 11, 0, 10]]))


DIGIT_STRATEGIES = ("random", "margin", "intersection")


@pytest.fixture
def digits_run(digits_dataset, tmp_path):
    """A finished benchmark folder on digits made by hand (two seeds, two rounds; the intersection picks 35 images
    a round where the others pick 20), holding only results.json: what a committed run keeps."""
    import json

    from Evaluation.Benchmark import config

    settings = config.BenchmarkConfig(dataset="digits", n0=60, budget=20, rounds=2, seeds=2, epochs=1,
                                      strategies=DIGIT_STRATEGIES)
    classes = list(digits_dataset.class_names)
    rng = np.random.default_rng(7)
    seeds = {}
    for seed in range(2):
        order = config.seed_order(len(digits_dataset.x_train), settings, seed)

        def cell(round_number, labels, picked):
            accuracy = float(np.round(rng.uniform(0.5, 0.9), 4))
            return {"round": round_number, "labels": int(labels), "accuracy": accuracy, "n_selected": len(picked),
                    "per_class_accuracy": {name: float(np.round(rng.uniform(0.3, 1.0), 3)) for name in classes},
                    "selected_indices": [int(i) for i in picked],
                    "timings": {"forward_s": 0.1, "selection_s": 0.2, "training_s": 1.0, "evaluation_s": 0.1}}

        strategies = {}
        for offset, name in enumerate(DIGIT_STRATEGIES):
            size = 35 if name == "intersection" else 20
            start = 60 + 100 * offset
            strategies[name] = [cell(1, 60 + size, order[start:start + size]),
                                cell(2, 60 + 2 * size, order[start + size:start + 2 * size])]
        seeds[str(seed)] = {"initial_indices": [int(i) for i in order[:60]], "pool_size": int(len(order) - 60),
                            "base": cell(0, 60, []), "strategies": strategies}
    results = {"format": config.FORMAT_VERSION, "config": settings.as_dict(),
               "config_hash": config.config_hash(settings, digits_dataset.fingerprint), "command": "hand-made",
               "execution": {"workers": 1, "tensorflow_threads": "default"},
               "dataset": {"name": digits_dataset.name, "fingerprint": digits_dataset.fingerprint,
                           "class_names": classes, "train_size": int(len(digits_dataset.x_train)),
                           "test_size": int(len(digits_dataset.x_test))},
               "versions": {}, "seeds": seeds, "peak_memory_mb": 100.0}
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / config.RESULTS_FILENAME).write_text(json.dumps(results))
    return folder, results


def test_a_finished_run_is_rendered_from_its_results_alone(digits_run, capsys):
    from Evaluation.Benchmark import report

    folder, _ = digits_run
    assert report.main([str(folder)]) == 0
    for name in ("report.md", "report.html", "learning_curve.png"):
        assert (folder / name).stat().st_size > 0
    markdown = (folder / "report.md").read_text()
    intersection_row = next(line for line in markdown.splitlines() if line.startswith("| intersection | +0.0"))
    assert intersection_row.endswith("| n/a |")  # 130 labels at round 2: random stopped at 100
    assert "intersection labeled a different number of images than random" in markdown


def test_rendering_a_folder_without_results_is_one_line_saying_what_to_do(tmp_path, capsys):
    from Evaluation.Benchmark import report

    assert report.main([str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "results.json" in error and "give a folder a benchmark run wrote" in error


def test_the_html_report_renders_offline_and_shows_the_numbers_of_results_json(digits_run, chromium_page):
    from Evaluation.Benchmark import report

    folder, results = digits_run
    report.render_folders([str(folder)])
    page = chromium_page
    page.goto((folder / "report.html").as_uri())
    assert page.console_errors == []
    assert all(url == (folder / "report.html").as_uri() or url.startswith("data:") for url in page.requested)
    for name in DIGIT_STRATEGIES:
        finals = [record["strategies"][name][-1]["accuracy"] for record in results["seeds"].values()]
        row = page.locator(f'tr[data-strategy="{name}"]')
        assert float(row.get_attribute("data-final")) == pytest.approx(np.mean(finals), abs=1e-6)
        assert row.locator("td").nth(3).inner_text().startswith(f"{100 * np.mean(finals):.1f} ± ")
    margin = [np.array([r["strategies"]["margin"][1]["accuracy"], r["strategies"]["random"][1]["accuracy"]])
              for r in results["seeds"].values()]
    shown = page.locator("td[data-difference]").all()
    assert any(float(cell.get_attribute("data-difference")) == pytest.approx(np.mean([m - r for m, r in margin]))
               for cell in shown)
    first_seed = results["seeds"]["0"]["strategies"]
    assert page.locator(".gallery").count() == len(DIGIT_STRATEGIES)
    assert page.locator("#picks-intersection + p + .gallery img").count() == len(first_seed["intersection"][0][
        "selected_indices"])
    widths = page.eval_on_selector_all("img", "images => images.map(image => image.naturalWidth)")
    assert widths and all(width > 0 for width in widths)
    heat = page.locator("td[data-value]")
    assert heat.count() == len(DIGIT_STRATEGIES) * 10


def test_few_strategies_share_one_panel_and_many_get_one_per_family_with_the_references_in_each():
    from Evaluation.Benchmark import config, figures

    five = ["margin", "recommended", "random", "intersection", "coreset"]
    assert figures.panel_groups(five) == {"all strategies": five}
    twenty = ["margin", "diverse_margin", "badge", "recommended", "least_confidence", "bald", "entropy", "random",
              "typicality_pixels", "typicality", "intersection_filled", "combined", "intersection", "coreset",
              "novelty", "coreset_pixels", "diversity", "class_balanced_margin", "class_balanced_random", "probcover"]
    groups = figures.panel_groups(twenty)
    assert list(groups) == ["uncertainty", "uncertainty with diversity", "typical images", "the design's intersection",
                            "coverage and diversity"]
    assert groups["uncertainty"] == ["margin", "recommended", "least_confidence", "bald", "entropy", "random"]
    assert groups["typical images"] == ["recommended", "random", "typicality_pixels", "typicality"]
    for names in groups.values():
        assert {"random", "recommended"} <= set(names)
        assert names == [name for name in twenty if name in names]  # the ranking's order
    shown = {name for names in groups.values() for name in names}
    assert shown == set(twenty)
    assert config.strategy_family("my.module:pick") == "other"


def test_a_damaged_results_file_is_refused_in_one_line(digits_run, capsys):
    import json

    from Evaluation.Benchmark import report

    folder, results = digits_run
    del results["seeds"]["1"]["strategies"]["margin"][0]["accuracy"]
    (folder / "results.json").write_text(json.dumps(results))
    assert report.main([str(folder)]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "seeds['1'].strategies['margin'][0].accuracy must be a number" in error
