"""The cycle's report.html, rebuilt from a hand-made output folder (manifest, picked images, score files)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from Evaluation import cycle_report

CLASSES = ["cat", "dog", "t-shirt/top"]
START = 100
PICKED = [105, 130, 117]


@pytest.fixture
def cycle_folder(tmp_path):
    """What AL_cycle.py leaves after an intersection run with retraining: one class misses its target."""
    rng = np.random.default_rng(3)
    accuracy = {model: float(np.round(rng.uniform(0.5, 0.9), 4)) for model in ("base", "al", "random")}
    per_class = {model: {name: float(np.round(rng.uniform(0.3, 1.0), 4)) for name in CLASSES}
                 for model in ("base", "al", "random")}
    manifest = {"dataset": {"name": "hand-made", "fingerprint": "0123", "class_names": CLASSES},
                "labeled_size": 100, "start_idx": START, "end_idx": 150, "seed": 42,
                "model": {"path": "models/100_train/best_model.keras"},
                "parameters": {"uncertainty": {"threshold_percentile": 50}},
                "analyses": {"uncertainty": {"count": 20}, "diversity": {"count": 20}, "novelty": {"count": 20}},
                "selection": {"by": "intersection", "count": 3, "absolute_indices": PICKED},
                "balance": {"all_met": False, "actual": {"cat": 2, "dog": 1, "t-shirt/top": 0},
                            "targets": {"cat": 1, "dog": 1, "t-shirt/top": 1},
                            "recommendations": ["t-shirt/top: 1 short of its target: lower the thresholds"]},
                "comparison": {"accuracy": accuracy, "per_class_accuracy": per_class,
                               "al_minus_random": accuracy["al"] - accuracy["random"],
                               "al_minus_random_per_class": {name: per_class["al"][name] - per_class["random"][name]
                                                             for name in CLASSES},
                               "verdict": "hand-made verdict"},
                "timings_seconds": {"total": 1.5}}
    (tmp_path / "cycle_manifest.json").write_text(json.dumps(manifest))
    images = tmp_path / "intersection" / "images"
    images.mkdir(parents=True)
    for index, label in zip(PICKED, ["cat", "dog", "cat"]):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(images / f"{index:06d}_{label}.png")
    (tmp_path / "novelty").mkdir()
    np.savez(tmp_path / "novelty" / "novelty_scores.npz", novelty=np.arange(50, dtype=np.float64) / 4)
    return tmp_path, manifest


def test_the_cycle_report_is_rebuilt_from_the_output_folder(cycle_folder, capsys):
    folder, _ = cycle_folder
    assert cycle_report.main([str(folder)]) == 0
    text = (folder / "report.html").read_text()
    assert "hand-made verdict" in text and "t-shirt/top: 1 short of its target" in text
    assert "<script" not in text and "http" not in text.replace("http-equiv", "")


def test_scores_left_by_an_earlier_run_are_not_shown_under_this_runs_picks(cycle_folder):
    folder, manifest = cycle_folder
    manifest["analyses"] = {}
    (folder / "cycle_manifest.json").write_text(json.dumps(manifest))
    text = cycle_report.render_cycle_report(folder)
    assert text.count("<figure data-index=") == 3 and "nov " not in text


def test_a_folder_without_a_manifest_is_one_line_saying_what_to_do(tmp_path, capsys):
    assert cycle_report.main([str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "cycle_manifest.json" in error and "finished AL_cycle.py run" in error


def test_the_cycle_report_in_the_browser_matches_the_manifest(cycle_folder, chromium_page):
    folder, manifest = cycle_folder
    page = chromium_page
    page.goto(cycle_report.write_cycle_report(folder).resolve().as_uri())
    assert page.console_errors == []
    assert all(url.startswith(("file:", "data:")) for url in page.requested)
    for model, accuracy in manifest["comparison"]["accuracy"].items():
        row = page.locator(f'tr[data-model="{model}"]')
        assert float(row.get_attribute("data-accuracy")) == pytest.approx(accuracy)
        assert row.locator("td").nth(1).inner_text() == f"{100 * accuracy:.1f}"
        cells = row.locator("td[data-value]").all()
        assert [float(cell.get_attribute("data-value")) for cell in cells[1:]] == pytest.approx(
            [manifest["comparison"]["per_class_accuracy"][model][name] for name in CLASSES])
    assert page.locator('tr[data-met="true"]').count() == 2
    assert page.locator('tr[data-class="t-shirt/top"]').inner_text().strip().endswith("✗")
    pictures = page.locator(".gallery figure")
    assert [int(pictures.nth(i).get_attribute("data-index")) for i in range(pictures.count())] == PICKED
    assert f"nov {(PICKED[1] - START) / 4:.1f}" in pictures.nth(1).inner_text()
    widths = page.eval_on_selector_all(".gallery img", "images => images.map(image => image.naturalWidth)")
    assert widths == [32, 32, 32]


def test_a_cycle_run_writes_its_report_beside_the_manifest(tiny_digits_model, tmp_path, capsys):
    import AL_cycle

    output = tmp_path / "out"
    assert AL_cycle.main(["--dataset", "digits", "--model", str(tiny_digits_model.model_path), "--labeled-size",
                          "100", "--start-idx", "100", "--end-idx", "400", "--budget", "10", "--strategy", "margin",
                          "--no-retrain", "--output-dir", str(output)]) == 0
    assert f"report: {output / 'report.html'}" in capsys.readouterr().out
    text = (output / "report.html").read_text()
    manifest = json.loads((output / "cycle_manifest.json").read_text())
    assert text.count('<figure data-index="') == 10
    for index in manifest["selection"]["absolute_indices"]:
        assert f'<figure data-index="{index}">' in text
