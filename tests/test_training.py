"""train.py and altoolkit.training: a short real training run, its files, reproducibility and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import train
from altoolkit.errors import ToolkitError
from altoolkit.training import TrainingRecipe, training_indices

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def digits(digits_dataset):
    return digits_dataset


@pytest.fixture(scope="module")
def short_run(digits, tmp_path_factory):
    """Two epochs on the first 120 digits: fast, and well above chance already."""
    output_dir = tmp_path_factory.mktemp("runs") / "120_train"
    return train.train_model(output_dir=output_dir, dataset=digits, labeled_size=120, epochs=2,
                             seed=3, verbose=0)


def test_short_training_writes_a_loadable_model_and_sane_metrics(short_run, digits):
    import keras

    files = sorted(path.name for path in short_run.output_dir.iterdir())
    assert files == ["best_model.keras", "metrics.json", "training_history.png"]
    model = keras.models.load_model(short_run.model_path, safe_mode=True)
    assert model.output_shape == (None, 10)
    metrics = json.loads((short_run.output_dir / "metrics.json").read_text())
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    assert metrics["test_accuracy"] == pytest.approx(short_run.test_accuracy)
    assert metrics["test_size"] == len(digits.x_test) == 450
    assert metrics["train_size"] == 108 and metrics["validation_indices"] == [108, 120]
    assert metrics["dataset"]["fingerprint"] == digits.fingerprint
    assert len(metrics["history"]["val_accuracy"]) == 2
    assert set(metrics["per_class_accuracy"]) == set(digits.class_names)
    recomputed = (model.predict(digits.x_test, verbose=0).argmax(1) == digits.y_test).mean()
    assert recomputed == pytest.approx(metrics["test_accuracy"])


def test_no_temporary_directories_are_left_behind(short_run):
    leftovers = [path.name for path in short_run.output_dir.parent.iterdir() if path.name.startswith(".")]
    assert leftovers == []


def test_existing_run_directory_is_not_overwritten_without_asking(short_run, digits):
    before = short_run.model_path.read_bytes()
    with pytest.raises(ToolkitError, match="already exists: pass --overwrite"):
        train.train_model(output_dir=short_run.output_dir, dataset=digits, labeled_size=120, epochs=1, verbose=0)
    assert short_run.model_path.read_bytes() == before


def test_labeled_set_is_the_first_images_and_extras_are_appended(digits):
    train_idx, validation_idx = training_indices(digits, 500, [700, 600], validation_fraction=0.1)
    assert train_idx.tolist() == list(range(450)) + [700, 600]
    assert validation_idx.tolist() == list(range(450, 500))


def test_same_seed_gives_the_same_initial_weights():
    import keras

    from altoolkit.model import build_model

    def initial_weights(seed):
        keras.utils.set_random_seed(seed)
        return build_model(3, seed=seed).get_weights()

    first, again, other = initial_weights(7), initial_weights(7), initial_weights(8)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


@pytest.mark.parametrize("kwargs, message", [
    ({"labeled_size": 5000}, "labeled size 5000 is larger than the 1347 training images"),
    ({"epochs": 0}, "epochs must be a positive integer"),
    ({"epochs": -3}, "epochs must be a positive integer"),
    ({"additional_indices": [10]}, "additional index 10 is outside the pool"),
    ({"additional_indices": [600, 600]}, "duplicates"),
    ({"validation_fraction": 1.0}, "validation fraction"),
])
def test_bad_training_input_is_one_clear_error(digits, tmp_path, kwargs, message):
    arguments = {"output_dir": tmp_path / "run", "dataset": digits, "labeled_size": 500, "epochs": 1,
                 "verbose": 0, **kwargs}
    with pytest.raises(ToolkitError, match=message):
        train.train_model(**arguments)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "digits", "--epochs", "0"], "error: epochs must be a positive integer"),
    (["--dataset", "digits", "--labeled-size", "99999"], "error: labeled size 99999 is larger"),
    (["--dataset", "digits", "--classes", "3,11"], "error: class id 11 is out of range"),
    (["--dataset", "folder", "--data-path", "/no/such/folder"], "error: image folder not found"),
])
def test_cli_reports_bad_input_in_one_line(argv, message, capsys, tmp_path):
    status = train.main(argv + ["--output-dir", str(tmp_path / "run")])
    error_output = capsys.readouterr().err.strip()
    assert status == 2
    assert error_output.startswith(message)
    assert len(error_output.splitlines()) == 1


def test_unknown_dataset_is_rejected_by_the_command_line():
    completed = subprocess.run([sys.executable, str(REPO / "train.py"), "--dataset", "mnist"],
                               capture_output=True, text=True)
    assert completed.returncode == 2
    assert "invalid choice: 'mnist'" in completed.stderr
    assert "Traceback" not in completed.stderr


@pytest.mark.parametrize("command", [["train.py"], ["-m", "train"]])
def test_train_runs_as_script_and_module(command):
    completed = subprocess.run([sys.executable, *command, "--help"], capture_output=True, text=True, cwd=REPO)
    assert completed.returncode == 0
    assert "--labeled-size" in completed.stdout


def test_recipe_validation_rejects_non_integer_epochs():
    with pytest.raises(ToolkitError, match="epochs must be a positive integer"):
        TrainingRecipe(epochs=2.5).validate()


def test_imagenet_weights_offline_is_one_clear_error(monkeypatch):
    """The weight download is replaced by the failure an offline machine gets, whatever this machine's network."""
    from altoolkit.model import build_model

    def no_network(*args, **kwargs):
        raise Exception("URL fetch failure: network unreachable")

    monkeypatch.setattr("keras.src.applications.mobilenet_v3.file_utils.get_file", no_network)
    with pytest.raises(ToolkitError, match="ImageNet weights could not be downloaded .* --weights none"):
        build_model(3, weights="imagenet")


@pytest.mark.parametrize("count, drop, sizes", [
    (1250, True, [32] * 39),
    (1250, False, [32] * 39 + [2]),
    (20, True, [20]),
])
def test_training_batches_leave_out_a_tiny_last_batch(count, drop, sizes):
    from altoolkit.training import batched

    images = np.zeros((count, 2, 2, 3), np.uint8)
    batches = batched(images, np.arange(count), 32, shuffle_seed=0, drop_partial_batch=drop)
    assert [int(labels.shape[0]) for _, labels in batches] == sizes
    if drop and count > 32 and count % 32:
        first, second = (set(np.concatenate([labels.numpy() for _, labels in batches])) for _ in range(2))
        assert first != second, "each epoch reshuffles, so a different image is left out"


def test_the_default_recipe_drops_the_partial_batch():
    assert TrainingRecipe().drop_partial_batch is True
    assert TrainingRecipe().as_dict()["drop_partial_batch"] is True
