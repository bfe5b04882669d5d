"""Progress a person can follow: the ETA arithmetic, the benchmark's cell lines and --log-file, the cycle's
"training i of n" lines without Keras' epoch lines, and the forward pass's progress bar."""

from __future__ import annotations

import re

import numpy as np
import pytest

from altoolkit import progress
from altoolkit.progress import Countdown, eta_seconds, format_duration, progress_line
from Evaluation.Benchmark import config
from Evaluation.Benchmark.records import cell_counts, expected_cells

TIMESTAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO "


@pytest.fixture(autouse=True)
def no_log_file_left_open():
    """A --log-file stays attached to the toolkit's logger until the next command configures logging: close it."""
    yield
    progress.stop_log_file()


# ------------------------------------------------------------------------------------------- ETA arithmetic

@pytest.mark.parametrize("seconds, text", [(0, "0s"), (42.4, "42s"), (59.6, "1m00s"), (312, "5m12s"),
                                           (3599, "59m59s"), (3600, "1h00m"), (7505, "2h05m"), (-3, "0s")])
def test_durations_read_as_seconds_minutes_or_hours(seconds, text):
    assert format_duration(seconds) == text


def test_eta_is_the_mean_time_per_item_finished_in_this_run_times_what_is_left():
    assert eta_seconds(elapsed=312, finished_here=12, remaining=28) == pytest.approx(728.0)  # 26 s a cell
    # 12 of 40 done, 2 of them resumed from an earlier run: only the 10 finished now set the rate
    assert eta_seconds(elapsed=312, finished_here=10, remaining=28) == pytest.approx(873.6)
    assert eta_seconds(elapsed=5, finished_here=0, remaining=3) is None
    assert eta_seconds(elapsed=100, finished_here=4, remaining=0) == 0.0


def test_progress_line_has_count_what_elapsed_and_eta():
    assert (progress_line("cell", 12, 40, "random, seed 3", 312, 12)
            == "cell 12/40 done (random, seed 3) · elapsed 5m12s · ETA 12m08s")
    assert (progress_line("cell", 12, 40, "random, seed 3", 312, 10)
            == "cell 12/40 done (random, seed 3) · elapsed 5m12s · ETA 14m34s")
    assert progress_line("cell", 0, 3, "base, seed 0", 7, 0).endswith("ETA unknown")


def test_countdown_counts_resumed_items_as_done_but_not_toward_the_rate():
    now = [100.0]
    countdown = Countdown(10, clock=lambda: now[0])
    now[0] = 130.0
    assert countdown.finished(5, "base, seed 0") == "cell 5/10 done (base, seed 0) · elapsed 30s · ETA 2m30s"
    now[0] = 160.0
    assert countdown.finished(8, "margin, seed 0", count=2) == ("cell 8/10 done (margin, seed 0) · elapsed 1m00s "
                                                                "· ETA 40s")


def test_cell_counts_follow_the_config_and_the_recorded_cells():
    each = config.BenchmarkConfig(dataset="digits", n0=30, budget=20, rounds=2, seeds=2, learner="linear",
                                  representation="pixels", initial="each", strategies=("random", "margin"))
    assert (expected_cells(each, "random"), expected_cells(each, "margin")) == (2, 3)  # margin's own round 0
    results = {"seeds": {"0": {"base": {}, "strategies": {"random": [{}, {}], "margin": [{}]}}}}
    assert cell_counts(results, each) == (4, 12)
    shared = config.BenchmarkConfig(dataset="digits", n0=60, budget=20, rounds=2, seeds=3, epochs=1,
                                    strategies=("random", "entropy"))
    assert cell_counts({"seeds": {}}, shared) == (0, 15)


# ------------------------------------------------------------------------------------------- the benchmark

def test_the_benchmark_prints_and_logs_a_line_per_cell_with_elapsed_time_and_eta(tmp_path, capsys):
    from Evaluation.Benchmark import benchmark as bm

    log_file = tmp_path / "logs" / "benchmark.log"  # its folder is created

    def arguments(strategies: str) -> list[str]:
        return ["--dataset", "digits", "--learner", "linear", "--representation", "pixels", "--n0", "30",
                "--budget", "20", "--rounds", "2", "--seeds", "2", "--strategies", strategies, "--output-dir",
                str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache"), "--log-file", str(log_file)]

    assert bm.main(arguments("random")) == 0
    printed = capsys.readouterr().out
    cell_line = r"cell (\d+)/6 done \((base|random), seed ([01])\) · elapsed \d+s · ETA (\d+m)?\d+s"
    assert [match[:3] for match in re.findall(cell_line, printed)] == [
        ("1", "base", "0"), ("2", "random", "0"), ("3", "random", "0"),
        ("4", "base", "1"), ("5", "random", "1"), ("6", "random", "1")]
    assert re.search(r"^cell 6/6 done \(random, seed 1\) · elapsed \d+s · ETA 0s$", printed, re.MULTILINE)
    logged = log_file.read_text(encoding="utf-8").splitlines()
    assert re.fullmatch(TIMESTAMP + r"run: --dataset digits .* --log-file .*benchmark\.log", logged[0])
    assert all(re.match(TIMESTAMP, line) for line in logged)
    messages = [line.split(" INFO ", 1)[1] for line in logged[1:]]
    assert messages == printed.splitlines()  # the console's lines, no more, no less

    # a resume with a second strategy: the six cells done count, only the new ones set the rate, the log grows
    assert bm.main(arguments("random,margin")) == 0
    printed = capsys.readouterr().out
    assert "6 of 10 cells already done (recorded in results.json)" in printed
    assert re.findall(r"cell (\d+)/10 done \(margin", printed) == ["7", "8", "9", "10"]
    assert len(log_file.read_text(encoding="utf-8").splitlines()) > len(logged) + 5


@pytest.mark.parametrize("program", ["benchmark", "AL_cycle", "train", "label"])
def test_a_log_file_that_cannot_be_opened_is_one_line_and_exit_code_2(program, tmp_path, capsys):
    import importlib

    (tmp_path / "f.txt").write_text("a file, not a folder")
    unwritable = str(tmp_path / "f.txt" / "log")
    main = importlib.import_module("Evaluation.Benchmark.benchmark" if program == "benchmark" else program).main
    argv = (["--log-file", unwritable, "status", "--project", str(tmp_path / "project")] if program == "label"
            else ["--log-file", unwritable, "--output-dir", str(tmp_path / "out")])
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith(f"error: --log-file {unwritable} cannot be opened for writing (")
    assert line.endswith("choose a path in a writable folder")
    assert not (tmp_path / "out").exists() and not (tmp_path / "project").exists()


# ------------------------------------------------------------------------------------------- the cycle

def test_the_cycle_says_which_training_runs_and_keeps_keras_epoch_lines_behind_verbose(tiny_digits_model, tmp_path,
                                                                                        capsys, monkeypatch):
    """What Keras prints is decided by the ``verbose`` each retraining is given (0: nothing; 2: a line per epoch),
    so the trainings are stood in for by a recorder (test_cycle.py runs the real ones)."""
    import AL_cycle
    from altoolkit.training import TrainResult

    given = []

    def recorded_training(indices, run_dir, *, dataset, verbose, **_):
        given.append(verbose)
        metrics = {"test_accuracy": 0.5, "per_class_accuracy": {name: 0.5 for name in dataset.class_names}}
        return TrainResult(run_dir, run_dir / "best_model.keras", 0.5, metrics["per_class_accuracy"], metrics)

    monkeypatch.setattr(AL_cycle, "train_model", recorded_training)
    common = ["--dataset", "digits", "--model", str(tiny_digits_model.model_path), "--labeled-size", "100",
              "--start-idx", "100", "--end-idx", "400", "--budget", "10", "--strategy", "margin",
              "--target-per-class", "0", "--no-images", "--models-dir", str(tmp_path / "models")]
    log_file = tmp_path / "cycle.log"
    assert AL_cycle.main([*common, "--output-dir", str(tmp_path / "plain"), "--log-file", str(log_file)]) == 0
    printed = capsys.readouterr().out
    steps = re.findall(r"^training (\d) of 2: base \+ (AL|random) selection \(MobileNetV3Small.* on 100 \+ 10 "
                       r"images -> .+\)$", printed, re.MULTILINE)
    assert steps == [("1", "AL"), ("2", "random")]
    assert given == [0, 0]
    logged = log_file.read_text(encoding="utf-8")
    assert re.search(TIMESTAMP + r"training 1 of 2: base \+ AL selection \(", logged)
    assert re.search(TIMESTAMP + r"training 2 of 2: base \+ random selection \(", logged)

    given.clear()
    assert AL_cycle.main([*common, "--output-dir", str(tmp_path / "verbose"), "--verbose"]) == 0
    assert given == [2, 2]  # one line per epoch: stdout is not a terminal here
    assert re.findall(r"^training (\d) of 2", capsys.readouterr().out, re.MULTILINE) == ["1", "2"]
    assert AL_cycle.main([*common, "--output-dir", str(tmp_path / "quiet"), "--verbose", "--quiet"]) == 0
    assert given == [2, 2, 0, 0] and capsys.readouterr().out == ""


# ------------------------------------------------------------------------------------------- the forward pass

@pytest.fixture(scope="module")
def two_output_model():
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((4, 4, 3))
    embeddings = keras.layers.Dense(5)(keras.layers.Flatten()(inputs))
    return keras.Model(inputs, [keras.layers.Dense(3, activation="softmax")(embeddings), embeddings])


def test_the_forward_pass_shows_a_bar_on_stderr_only_when_asked_or_on_a_terminal(two_output_model, capsys):
    from altoolkit.model import probabilities_and_embeddings

    images = np.random.default_rng(0).integers(0, 256, (50, 4, 4, 3), dtype=np.uint8)
    quiet = probabilities_and_embeddings(two_output_model, images, batch_size=8)
    assert capsys.readouterr().err == ""  # stderr is not a terminal under pytest
    shown = probabilities_and_embeddings(two_output_model, images, batch_size=8, progress="model outputs of the pool")
    captured = capsys.readouterr()
    assert captured.out == ""
    description, bar = captured.err.splitlines()
    assert description == "model outputs of the pool"
    assert re.fullmatch(r"50/50 - \d+s - \d+(ms|us|s)/image", bar)
    assert all(np.array_equal(a, b) for a, b in zip(quiet, shown))
    probabilities_and_embeddings(two_output_model, images, batch_size=8, progress=False)
    assert capsys.readouterr().err == ""
