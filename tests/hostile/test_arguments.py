"""Hostile command-line options: out-of-range seeds and malformed values are one-line errors in every entry point."""

from __future__ import annotations

import pytest

SEED_OPTIONS = {
    "train": ["--dataset", "digits", "--seed"],
    "AL_cycle": ["--dataset", "digits", "--seed"],
    "label": ["select", "--project", "p", "--pool", "pool", "--labeled", "labeled", "--model", "m.keras",
              "--budget", "5", "--seed"],
    "Evaluation.Diversity.diversity": ["--dataset", "digits", "--random-state"],
}
BAD_SEEDS = ["-1", str(2**32), str(2**64), "1e3", "seven", "9" * 5000]


def entry_point(module: str):
    import importlib

    return importlib.import_module(module).main


@pytest.mark.parametrize("module", sorted(SEED_OPTIONS))
@pytest.mark.parametrize("seed", BAD_SEEDS, ids=["negative", "2**32", "2**64", "float", "word", "5000 digits"])
def test_a_seed_outside_0_to_2_32_is_refused(module, seed, refused, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = refused(entry_point(module), [*SEED_OPTIONS[module], seed], tmp_path)
    assert "--seed" in line or "--random-state" in line


def test_benchmark_refuses_a_non_positive_number_of_seeds(refused, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = refused(entry_point("Evaluation.Benchmark.benchmark"), ["--seeds", "-1"], tmp_path)
    assert "--seeds" in line


def test_a_usage_error_is_one_line_that_points_to_help(refused, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = refused(entry_point("label"), ["launch"], tmp_path)
    assert "label.py --help" in line


def test_a_seed_at_the_limits_is_accepted():
    from altoolkit.cli import seed_argument

    assert seed_argument("0") == 0
    assert seed_argument(str(2**32 - 1)) == 2**32 - 1


def test_library_checks_say_which_setting_is_wrong():
    from altoolkit.errors import ToolkitError
    from altoolkit.validation import check_positive_float, check_positive_int, check_seed

    with pytest.raises(ToolkitError, match="seed must be an integer from 0 to 4294967295"):
        check_seed(-1)
    with pytest.raises(ToolkitError, match="batch size must be a positive integer"):
        check_positive_int(0, "batch size")
    for bad in (0.0, float("inf"), float("nan"), -1e-3):
        with pytest.raises(ToolkitError, match="learning rate must be a finite number above 0"):
            check_positive_float(bad, "learning rate")
    with pytest.raises(ToolkitError) as raised:
        check_seed(10**60000)
    assert len(str(raised.value)) < 200
