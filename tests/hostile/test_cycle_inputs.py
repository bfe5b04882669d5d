"""Hostile inputs to the cycle, the four Evaluation modules and the benchmark: numeric options out of range,
options the chosen path would ignore, output and cache folders that cannot be written, a cache path that is a
folder, and benchmark results files of the wrong shape. Each is refused by the refusal contract of conftest.py.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys

import pytest

from altoolkit.files import file_sha256

EVALUATION_MODULES = ("Evaluation.Uncertainty.uncertainty", "Evaluation.Diversity.diversity",
                      "Evaluation.Novelty.novelty")
POOL = ["--dataset", "digits", "--labeled-size", "100", "--start-idx", "100", "--end-idx", "300"]
SCRIPTS = {"AL_cycle": "AL_cycle.py", "Evaluation.Uncertainty.uncertainty": "Evaluation/Uncertainty/uncertainty.py",
           "Evaluation.Diversity.diversity": "Evaluation/Diversity/diversity.py",
           "Evaluation.Novelty.novelty": "Evaluation/Novelty/novelty.py",
           "Evaluation.Benchmark.benchmark": "Evaluation/Benchmark/benchmark.py"}


def entry_point(module: str):
    import importlib

    return importlib.import_module(module).main


@pytest.fixture(scope="module")
def flat_model(tmp_path_factory):
    """An untrained Flatten → Dense(10, softmax) .keras file for 32×32 digits: loads in a blink, never trained."""
    import keras

    path = tmp_path_factory.mktemp("flat_model") / "flat.keras"
    keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(),
                      keras.layers.Dense(10, activation="softmax")]).save(path)
    return path


# ---------------------------------------------------------------------------------------- numeric options (16)

HUGE = "9" * 4000
"""An integer Python still parses (the limit is 4,300 digits) but no count or index can be."""
BAD_NUMBERS = {
    "AL_cycle": [("--n-clusters", HUGE), ("--budget", HUGE), ("--epochs", "0"), ("--epochs", "-3"), ("--budget", "0"), ("--n-clusters", "0"),
                 ("--k-neighbors", "-1"), ("--threshold-percentile", "nan"), ("--threshold-percentile", "101"),
                 ("--threshold-percentile", "0"), ("--start-idx", "-1"), ("--end-idx", "0"),
                 ("--labeled-size", "0"), ("--labeled-size", "1e3")],
    "Evaluation.Uncertainty.uncertainty": [("--threshold-percentile", "nan"), ("--threshold-percentile", "-5"),
                                           ("--threshold-percentile", "inf"), ("--start-idx", "-1"),
                                           ("--labeled-size", "0"), ("--end-idx", HUGE)],
    "Evaluation.Diversity.diversity": [("--n-clusters", "0"), ("--n-clusters", "-4"), ("--far-percentile", "100.5"),
                                       ("--far-percentile", "nan"), ("--end-idx", "-2")],
    "Evaluation.Novelty.novelty": [("--k-neighbors", "0"), ("--k-neighbors", HUGE), ("--novelty-percentile", "-1"),
                                   ("--novelty-percentile", "NaN")],
    "Evaluation.Benchmark.benchmark": [("--workers", "0"), ("--rounds", "0"), ("--n0", "-1"), ("--budget", "0"),
                                       ("--pool-size", "0"), ("--epochs", "0"), ("--image-size", "-32"),
                                       ("--batch-size", "0"), ("--rounds", HUGE), ("--image-size", HUGE)],
}
NUMBER_CASES = [(module, option, value) for module, cases in BAD_NUMBERS.items() for option, value in cases]


@pytest.mark.parametrize("module, option, value", NUMBER_CASES,
                         ids=[f"{module.rsplit('.', 1)[-1]}{option}={value[:8]}" for module, option, value in NUMBER_CASES])
def test_a_numeric_option_out_of_range_is_refused_where_it_is_typed(module, option, value, refused, tmp_path,
                                                                    monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = refused(entry_point(module), ["--dataset", "digits", option, value], tmp_path)
    assert option in line


LONG = "q" * 10_000


@pytest.mark.parametrize("module, arguments", [
    ("AL_cycle", ["--target-per-class", LONG]),
    ("AL_cycle", ["--target-per-class", f"{LONG}=3"]),
    ("AL_cycle", ["--target-per-class", f"3={LONG}"]),
    ("Evaluation.Benchmark.benchmark", ["--strategies", f"random,{LONG}"]),
], ids=["targets", "target class", "target count", "strategies"])
def test_a_10000_character_value_is_refused_in_a_short_line(module, arguments, refused, flat_model, tmp_path,
                                                           monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = ["--model", flat_model, *POOL] if module == "AL_cycle" else []
    line = refused(entry_point(module), [*model, *arguments], tmp_path)
    assert len(line) < 600 and "qqqq…" in line


# --------------------------------------------------------------------------------- cycle option combinations (25)

@pytest.mark.parametrize("options, named", [
    (["--strategy", "margin"], "--strategy without --budget"),
    (["--representation", "pixels"], "--representation without --budget"),
    (["--budget", "5", "--n-clusters", "3"], "--n-clusters with --budget"),
    (["--budget", "5", "--threshold-percentile", "40", "--k-neighbors", "2"],
     "--threshold-percentile and --k-neighbors with --budget"),
])
def test_cycle_options_that_the_chosen_path_would_ignore_are_refused(options, named, refused, flat_model, tmp_path,
                                                                     monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = refused(entry_point("AL_cycle"), [*POOL, "--model", flat_model, *options], tmp_path)
    assert named in line


def forbid_reading_data(monkeypatch) -> None:
    """Make any dataset load fail the test (CIFAR-10 is not there offline: loading it would try a download)."""
    import altoolkit.cli
    import altoolkit.data

    def fail(*args, **kwargs):
        pytest.fail("the data was read before the model file was checked")

    monkeypatch.setattr(altoolkit.data, "load_dataset", fail)
    monkeypatch.setattr(altoolkit.cli, "load_dataset", fail)


def test_cycle_without_a_base_model_says_how_to_train_one_before_reading_data(refused, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    forbid_reading_data(monkeypatch)
    line = refused(entry_point("AL_cycle"), ["--dataset", "cifar10", "--models-dir", tmp_path / "models"], tmp_path)
    assert f"no base model at {tmp_path / 'models' / '500_train' / 'best_model.keras'}" in line
    assert "--train-base" in line


@pytest.mark.parametrize("model, named", [
    ("models/base/my_model.keras", "--model models/base/my_model.keras would never exist"),
    ("existing/best_model.keras", "but existing exists without a model"),
])
def test_train_base_refuses_a_model_path_it_cannot_create_before_training(model, named, refused, tmp_path,
                                                                          monkeypatch):
    monkeypatch.chdir(tmp_path)
    forbid_reading_data(monkeypatch)
    (tmp_path / "existing").mkdir()
    line = refused(entry_point("AL_cycle"), ["--dataset", "digits", "--train-base", "--model", model], tmp_path)
    assert named in line


@pytest.mark.parametrize("module", EVALUATION_MODULES)
def test_an_evaluation_module_without_its_model_says_so_before_reading_data(module, refused, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    forbid_reading_data(monkeypatch)
    line = refused(entry_point(module), ["--dataset", "cifar10"], tmp_path)
    assert "models/500_train/best_model.keras not found" in line and "train.py" in line


# -------------------------------------------------------------------------- output and cache folders (11)

def cycle_arguments(module: str, model) -> list:
    extra = ["--n-clusters", "4"] if module == "Evaluation.Diversity.diversity" else []
    return [*POOL, "--model", model, "--no-plots" if module != "AL_cycle" else "--no-images", *extra]


@pytest.mark.parametrize("module", ["AL_cycle", *EVALUATION_MODULES])
@pytest.mark.parametrize("option", ["--output-dir", "--cache-dir"])
def test_an_output_or_cache_folder_that_is_a_file_is_refused(module, option, refused, flat_model, tmp_path,
                                                            monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder\n")
    line = refused(entry_point(module), [*cycle_arguments(module, flat_model), option, blocker / "sub"], tmp_path)
    assert f"{option} {blocker / 'sub'} is not a folder ({blocker} is a file)" in line


def digits_cache_file(cache_dir, model, start: int, end: int):
    from altoolkit.data import load_dataset

    return cache_dir / f"{file_sha256(model)[:16]}_{load_dataset('digits').fingerprint}_{start}-{end}.npz"


@pytest.mark.parametrize("module", ["AL_cycle", *EVALUATION_MODULES, "Evaluation.Benchmark.benchmark"])
def test_an_output_folder_name_longer_than_the_file_system_allows_is_refused(module, refused, flat_model, tmp_path,
                                                                             monkeypatch):
    monkeypatch.chdir(tmp_path)
    arguments = [] if module.endswith("benchmark") else cycle_arguments(module, flat_model)
    line = refused(entry_point(module), [*arguments, "--output-dir", tmp_path / ("x" * 300) / "out"], tmp_path)
    assert "is longer than the file system allows" in line and len(line) < 400


def test_the_cycle_checks_the_model_against_the_image_size_before_reading_data(refused, flat_model, tmp_path,
                                                                               monkeypatch):
    monkeypatch.chdir(tmp_path)
    forbid_reading_data(monkeypatch)
    line = refused(entry_point("AL_cycle"), [*cycle_arguments("AL_cycle", flat_model), "--image-size", "64"],
                   tmp_path)
    assert "expects images of shape (32, 32, 3) but the data has (64, 64, 3)" in line


@pytest.mark.parametrize("module", ["AL_cycle", *EVALUATION_MODULES])
def test_a_cache_path_that_is_a_folder_is_refused_before_the_forward_pass(module, refused, flat_model, tmp_path,
                                                                          monkeypatch):
    monkeypatch.chdir(tmp_path)
    cache = tmp_path / "cache"
    digits_cache_file(cache, flat_model, 100, 300).mkdir(parents=True)
    line = refused(entry_point(module), [*cycle_arguments(module, flat_model), "--cache-dir", cache,
                                         "--output-dir", tmp_path / "out"], tmp_path)
    assert f"the cache file {digits_cache_file(cache, flat_model, 100, 300)} is a folder" in line


def drop_root_write_override() -> None:
    """In the child: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the bounding set, so root's next program
    obeys file permissions like any user (the interpreter under /root stays reachable, unlike with setuid)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder this test's child processes cannot write into, also when the tests run as root."""
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    preexec = drop_root_write_override if os.geteuid() == 0 else None
    probe = subprocess.run([sys.executable, "-c", f"open({str(folder / 'probe')!r}, 'w')"], capture_output=True,
                           preexec_fn=preexec)
    if probe.returncode == 0:
        (folder / "probe").unlink()
        folder.chmod(0o755)
        pytest.skip("this process cannot make a folder read-only for its children (root without CAP_SETPCAP?)")
    yield folder, preexec
    folder.chmod(0o755)


@pytest.mark.parametrize("module", ["AL_cycle", *EVALUATION_MODULES])
@pytest.mark.parametrize("option", ["--output-dir", "--cache-dir"])
def test_a_read_only_output_or_cache_folder_is_refused_naming_it(module, option, read_only_folder,
                                                                 refused_in_subprocess, flat_model, tmp_path):
    folder, preexec = read_only_folder
    flat_model.chmod(0o644)
    line = refused_in_subprocess([SCRIPTS[module], *cycle_arguments(module, flat_model), option, folder / "out"],
                                 tmp_path, cwd=tmp_path, preexec_fn=preexec)
    assert f"{option} {folder / 'out'} is not writable ({folder} is read-only" in line


def test_a_read_only_benchmark_output_folder_is_refused(read_only_folder, refused_in_subprocess, tmp_path):
    folder, preexec = read_only_folder
    line = refused_in_subprocess([SCRIPTS["Evaluation.Benchmark.benchmark"], "--output-dir", folder / "bench"],
                                 tmp_path, cwd=tmp_path, preexec_fn=preexec)
    assert f"--output-dir {folder / 'bench'} is not writable" in line


# ------------------------------------------------------------------------------ benchmark results files (14)

def quick_results_skeleton() -> dict:
    """A results.json as the quick preset writes it before any cell, with the right config hash."""
    from altoolkit.data import load_dataset
    from Evaluation.Benchmark import config, records

    return records.new_results(config.PRESETS["quick"], load_dataset("digits"), "benchmark.py", 1)


def wrong_cells(skeleton: dict) -> dict:
    cell = {"round": "1", "labels": 150, "accuracy": "0.5", "per_class_accuracy": {}, "n_selected": 50,
            "selected_indices": [1, 2], "timings": {}}
    return {**skeleton, "seeds": {"0": {"initial_indices": [0, 1], "pool_size": 10, "strategies": {"random": [cell]}}}}


BAD_RESULTS = {
    "empty list": lambda skeleton: "[]",
    "a number": lambda skeleton: "42",
    "seeds is a string": lambda skeleton: json.dumps({**skeleton, "seeds": "all"}),
    "seed record is a list": lambda skeleton: json.dumps({**skeleton, "seeds": {"0": []}}),
    "cells of the wrong types": lambda skeleton: json.dumps(wrong_cells(skeleton)),
    "indices outside the data": lambda skeleton: json.dumps(
        {**skeleton, "seeds": {"0": {"initial_indices": [10**9], "pool_size": 1, "strategies": {}}}}),
    "workers is text": lambda skeleton: json.dumps({**skeleton, "execution": {"workers": "two"}}),
    "truncated": lambda skeleton: json.dumps(skeleton)[:57],
    "not UTF-8": lambda skeleton: b"\xff\xfe\x00garbage",
    "nested 100000 deep": lambda skeleton: "[" * 100_000 + "]" * 100_000,
}


@pytest.mark.parametrize("damage", sorted(BAD_RESULTS))
def test_a_benchmark_results_file_that_cannot_be_resumed_is_refused_and_kept(damage, refused, tmp_path,
                                                                            monkeypatch):
    from Evaluation.Benchmark import simulation

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(simulation.SeedRun, "run_base", lambda *a, **k: pytest.fail("the damaged results file was resumed"))
    output = tmp_path / "bench"
    output.mkdir()
    content = BAD_RESULTS[damage](quick_results_skeleton())
    results = output / "results.json"
    results.write_bytes(content if isinstance(content, bytes) else content.encode())
    line = refused(entry_point("Evaluation.Benchmark.benchmark"), ["--output-dir", output], tmp_path)
    assert str(results) in line and "move it away or choose another --output-dir" in line


def test_a_corrupt_worker_record_is_refused_naming_it(refused, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    record = tmp_path / "bench" / "worker_cells" / "seed0_random.json"
    record.parent.mkdir(parents=True)
    record.write_text('{"config_hash": ')
    line = refused(entry_point("Evaluation.Benchmark.benchmark"), ["--output-dir", tmp_path / "bench"], tmp_path)
    assert str(record) in line and "delete it" in line


# --------------------------------------------------------------------------- saved analyses (image selection)

@pytest.fixture(scope="module")
def saved_analyses(flat_model, tmp_path_factory):
    """The three analyses of the flat model over digits 100..299, saved as the Evaluation modules save them."""
    results = tmp_path_factory.mktemp("analyses") / "results"
    for module in EVALUATION_MODULES:
        name = module.rsplit(".", 1)[-1]
        assert entry_point(module)([*map(str, cycle_arguments(module, flat_model)), "--output-dir",
                                    str(results / name), "--quiet"]) == 0
    return results


def damage_run_file(results, name: str, **changes) -> None:
    run_file = results / name / f"{name}_run.json"
    run_file.write_text(json.dumps({**json.loads(run_file.read_text()), **changes}))


def shorten_scores(results, name: str) -> None:
    import numpy as np

    from altoolkit.files import save_npz

    with np.load(results / name / f"{name}_scores.npz") as scores:
        arrays = {key: scores[key] for key in scores.files}
    save_npz(results / name / f"{name}_scores.npz", **{key: value[:10] for key, value in arrays.items()})


RESULT_DAMAGE = {
    "model path is a number": (lambda results: damage_run_file(results, "uncertainty", model_path=5),
                               "has model_path of the wrong type"),
    "data options are a list": (lambda results: damage_run_file(results, "uncertainty", data_options=["digits"]),
                                "has data_options of the wrong type"),
    "image size is text": (lambda results: damage_run_file(results, "uncertainty",
                                                           data_options={"image_size": "32"}),
                           "has data_options.image_size of the wrong type"),
    "run file is a list": (lambda results: (results / "novelty" / "novelty_run.json").write_text("[]"),
                           "is not a JSON object"),
    "scores cover 10 images": (lambda results: [shorten_scores(results, name) for name in ("uncertainty", "novelty")],
                               "do not have one value per pool image"),
}


@pytest.mark.parametrize("damage", sorted(RESULT_DAMAGE))
def test_image_selection_refuses_damaged_analyses(damage, saved_analyses, refused, tmp_path, monkeypatch):
    import shutil

    monkeypatch.chdir(tmp_path)
    results = shutil.copytree(saved_analyses, tmp_path / "results")
    change, message = RESULT_DAMAGE[damage]
    change(results)
    line = refused(entry_point("Evaluation.Image_selec.image_selection"),
                   ["--results-dir", results, "--output-dir", tmp_path / "intersection"], tmp_path)
    assert message in line and "re-run" in line
