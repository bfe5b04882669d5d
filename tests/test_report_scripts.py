"""The scripts that produce the README's figures: the strategy speed benchmark and the report embedding."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import embed_reports, strategy_speed

REPO = Path(__file__).resolve().parents[1]
FASHION = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


@pytest.mark.skipif(not FASHION.is_file(), reason="needs Debian's dataset-fashion-mnist (installed by .ci/run)")
def test_strategy_speed_times_every_strategy_on_a_small_pool(tiny_digits_model, tmp_path, capsys):
    output = tmp_path / "speed.md"
    assert strategy_speed.main(["--model", str(tiny_digits_model.model_path), "--pool-size", "400",
                                "--labeled-size", "60", "--budget", "20", "--repeats", "1",
                                "--output", str(output)]) == 0
    report = output.read_text()
    assert report == capsys.readouterr().out
    for name in strategy_speed.STRATEGIES:
        assert f"| `{name}` |" in report
    assert "≤ 21×" in report and report.count("≤ 1×") == len(strategy_speed.STRATEGIES) - 1


def test_strategy_speed_rejects_unknown_strategies(capsys):
    assert strategy_speed.main(["--model", "m.keras", "--strategies", "margin,oracle"]) == 2
    assert "unknown strategy 'oracle'" in capsys.readouterr().err


def test_report_block_nests_the_report_under_the_readme_section():
    report = "# Title\n\n## Command\n\nx\n\n## Setting\n\n- a\n\n### Detail\n"
    assert embed_reports.report_block(report) == "#### Command\n\nx\n\n#### Setting\n\n- a\n\n##### Detail\n"
    assert embed_reports.report_block("# Speed\n\n| a |\n") == "| a |\n"
    readme = "intro\n<!-- embed:fashion-benchmark -->\nold\n<!-- /embed:fashion-benchmark -->\nend\n"
    assert embed_reports.embed(readme, "fashion-benchmark", "new\n") == (
        "intro\n<!-- embed:fashion-benchmark -->\nnew\n<!-- /embed:fashion-benchmark -->\nend\n")


def test_the_readme_shows_the_committed_reports_unchanged():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert embed_reports.embedded_readme(readme) == readme, "run python benchmarks/embed_reports.py"


def test_one_section_of_a_report_can_be_embedded():
    report = "# T\n\n## First\n\na\n\n## Second\n\n| x |\n\n## Third\n\nc\n"
    assert embed_reports.section_body(report, "Second") == "| x |\n"
    with pytest.raises(Exception, match="no '## Fourth' section"):
        embed_reports.section_body(report, "Fourth")


def test_the_representation_benchmark_reports_probe_accuracy_and_cost(tmp_path, capsys):
    from benchmarks import representations

    output = tmp_path / "representations.md"
    assert representations.main(["--datasets", "digits", "--representations", "pixels", "--seeds", "1",
                                 "--output", str(output)]) == 0
    report = output.read_text()
    row = next(line for line in report.splitlines() if line.startswith("| digits"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1] == "pixels" and cells[2] == "50"
    assert all(50 < float(cell.rstrip(" %")) <= 100 for cell in cells[3:6])
    assert "backbone" in report


@pytest.mark.skipif(not FASHION.is_file(), reason="needs Debian's dataset-fashion-mnist (installed by .ci/run)")
def test_the_pipeline_speed_benchmark_times_a_round_against_a_forward_pass(tmp_path, capsys):
    from benchmarks import pipeline_speed

    output = tmp_path / "speed.md"
    assert pipeline_speed.main(["--pool-size", "300", "--labeled-size", "60", "--budget", "20", "--repeats", "1",
                                "--representation", "pixels", "--cache-dir", str(tmp_path / "cache"),
                                "--output", str(output)]) == 0
    report = output.read_text()
    for name in ("margin", "typicality", "recommended"):
        assert f"| `{name}` |" in report
    assert "MobileNetV3Small forward pass over the pool" in report
