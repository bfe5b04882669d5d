"""train.py and altoolkit.training: a short real training run, its files, reproducibility and bad input."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import train
from altoolkit.errors import ToolkitError
from altoolkit.files import atomic_directory, atomic_path, write_json
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


def test_imagenet_weights_offline_is_one_clear_error(monkeypatch, tmp_path):
    """The weight download is replaced by the failure an offline machine gets, whatever this machine's network."""
    from altoolkit.model import build_model

    def no_network(*args, **kwargs):
        raise Exception("URL fetch failure: network unreachable")

    monkeypatch.setattr("keras.src.applications.mobilenet_v3.file_utils.get_file", no_network)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(ToolkitError, match="ImageNet weights could not be downloaded .* --weights none") as raised:
        build_model(3, weights="imagenet")
    where = f"copy weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5 into {tmp_path / 'keras' / 'models'}/"
    assert where in str(raised.value), "an air-gapped user is told which file to put where"


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


@pytest.mark.parametrize("seed", [-1, 2**32, 2**64, 1.5, "7"])
@pytest.mark.parametrize("api", ["train.train_model", "altoolkit.training.train_model"])
def test_the_python_api_refuses_a_seed_outside_0_to_2_32(api, seed, digits, tmp_path):
    from altoolkit import training

    train_model = train.train_model if api == "train.train_model" else training.train_model
    options = {"epochs": 1} if api == "train.train_model" else {"recipe": TrainingRecipe(epochs=1)}
    with pytest.raises(ToolkitError, match="seed must be an integer from 0 to 4294967295"):
        train_model(output_dir=tmp_path / "run", dataset=digits, labeled_size=40, seed=seed, verbose=0, **options)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("recipe, message", [
    (TrainingRecipe(learning_rate=float("inf")), "learning rate must be a finite number above 0"),
    (TrainingRecipe(learning_rate=float("nan")), "learning rate must be a finite number above 0"),
    (TrainingRecipe(batch_size=0), "batch size must be a positive integer"),
    (TrainingRecipe(validation_fraction=float("nan")), "validation fraction must be a number from 0 up to"),
])
def test_the_recipe_refuses_non_finite_and_non_positive_settings(recipe, message):
    with pytest.raises(ToolkitError, match=message):
        recipe.validate()


def test_a_nan_loss_in_any_batch_ends_training_with_an_error():
    from altoolkit.training import stop_on_non_finite_loss

    guard = stop_on_non_finite_loss(0.5)
    guard.on_epoch_begin(2, {})
    guard.on_train_batch_end(0, {"loss": 2.3})
    with pytest.raises(ToolkitError, match=r"training diverged \(loss nan in epoch 3, batch 2, learning rate 0.5\)"):
        guard.on_train_batch_end(1, {"loss": float("nan")})
    with pytest.raises(ToolkitError, match="validation loss inf after epoch 3"):
        guard.on_epoch_end(2, {"loss": 2.0, "val_loss": float("inf")})


@pytest.mark.slow
def test_a_diverging_run_raises_and_writes_no_model_nor_its_folders(digits, tmp_path):
    with pytest.raises(ToolkitError, match="training diverged .* lower --learning-rate"):
        train.train_model(output_dir=tmp_path / "models" / "run", dataset=digits, labeled_size=40, epochs=1,
                          learning_rate=1e30, verbose=0)
    assert list(tmp_path.iterdir()) == [], "no model, no temporary, no models/ folder"


def strict_json(path: Path):
    """Parse JSON as a strict reader does: a bare NaN or Infinity is an error."""
    def refuse(constant):
        raise ValueError(f"invalid JSON constant {constant}")

    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.mark.slow
def test_no_test_images_records_null_accuracy_and_says_so(tmp_path, capsys):
    generator = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", x_train=generator.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8),
             y_train=np.arange(40) % 2, x_test=np.zeros((0, 32, 32, 3), np.uint8), y_test=np.zeros(0, np.int64))
    status = train.main(["--dataset", "npz", "--data-path", str(tmp_path / "data.npz"), "--labeled-size", "40",
                         "--epochs", "1", "--quiet", "--output-dir", str(tmp_path / "run")])
    output = capsys.readouterr().out
    assert status == 0
    assert "no test images: accuracy not measured" in output and "nan" not in output
    metrics = strict_json(tmp_path / "run" / "metrics.json")
    assert metrics["test_accuracy"] is None and metrics["test_size"] == 0


@pytest.mark.parametrize("data, where", [
    ({"history": {"loss": [0.5, float("nan")]}}, "history.loss[1]"),
    ({"scores": np.array([[1.0, np.inf]])}, "scores[0][1]"),
    ([{"accuracy": np.float32("-inf")}], "[0].accuracy"),
])
def test_write_json_refuses_nan_and_infinity_and_writes_nothing(data, where, tmp_path):
    with pytest.raises(ToolkitError, match=re.escape(f"metrics.json was not written: {where} is not a finite number")):
        write_json(tmp_path / "metrics.json", data)
    assert list(tmp_path.iterdir()) == []


def test_write_json_writes_none_as_null(tmp_path):
    write_json(tmp_path / "metrics.json", {"test_accuracy": None, "values": np.array([1.5])})
    assert strict_json(tmp_path / "metrics.json") == {"test_accuracy": None, "values": [1.5]}


def test_an_atomic_run_directory_never_replaces_a_file(tmp_path):
    (tmp_path / "run").write_text("mine")
    with pytest.raises(ToolkitError, match="is a file, not a folder"):
        with atomic_directory(tmp_path / "run", overwrite=True):
            pass
    assert (tmp_path / "run").read_text() == "mine"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run"]


def test_a_write_under_a_file_is_one_error_naming_it_and_leaves_no_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ToolkitError, match=f"{tmp_path / 'notes.txt'} is not a folder"):
        write_json(tmp_path / "notes.txt" / "deeper" / "metrics.json", {})
    with pytest.raises(ToolkitError, match="boom"):
        with atomic_path(tmp_path / "new" / "deeper" / "metrics.json"):
            raise ToolkitError("boom")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes.txt"], "folders made for a failed write go"


def owner_of_a_temporary(folder: Path) -> list[str]:
    """[pid, start, host, boot] as this process writes them into its temporaries' names."""
    with atomic_path(folder / "probe") as temporary:
        owner = temporary.name[len(".probe."):].split(".")[0]
    (folder / "probe").unlink()
    return owner.split("-")


def finished_process_id() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def other_id(hex_digits: str) -> str:
    return f"{(int(hex_digits[0], 16) + 1) % 16:x}{hex_digits[1:]}"


def test_only_temporaries_of_processes_that_are_provably_gone_are_removed(tmp_path):
    from altoolkit.files import remove_abandoned_temporaries

    pid, start, host, boot = owner_of_a_temporary(tmp_path)
    leftovers = {
        "this live process": (f".run.{pid}-{start}-{host}-{boot}.abc123.tmp", True),
        "a killed process": (f".run.{finished_process_id()}-{start}-{host}-{boot}.abc123.tmp", False),
        "a reused pid": (f".run.{pid}-{int(start) + 1}-{host}-{boot}.abc123.tmp", False),
        "an earlier boot": (f".run.{pid}-{start}-{host}-{other_id(boot)}.abc123.tmp", False),
        "another host": (f".run.{finished_process_id()}-{start}-{other_id(host)}-{boot}.abc123.tmp", True),
        "an older version": (".run.x8k2j4ab.tmp", True),
        "another target": (f".run2.{finished_process_id()}-{start}-{host}-{boot}.abc123.tmp", True),
        "a retired run while the run is missing": (f".run.{finished_process_id()}-{start}-{host}-{boot}.ab1.old", True),
    }
    for name, _ in leftovers.values():
        (tmp_path / name).mkdir()
        (tmp_path / name / "best_model.keras").write_text("half")
    removed = remove_abandoned_temporaries(tmp_path / "run")
    kept = {what for what, (name, _) in leftovers.items() if (tmp_path / name).exists()}
    assert kept == {what for what, (_, keep) in leftovers.items() if keep}
    assert len(removed) == 3
    (tmp_path / "run").mkdir()
    remove_abandoned_temporaries(tmp_path / "run")
    assert not (tmp_path / leftovers["a retired run while the run is missing"][0]).exists()


LIVE_WRITER = """
import sys
from altoolkit.files import atomic_directory
with atomic_directory(sys.argv[1]) as temporary:
    print(temporary, flush=True)
    sys.stdin.read()
    raise SystemExit(0)
"""
"""A concurrent live run: holds a temporary of the target given as argument until its stdin closes."""


def wait_for(condition, seconds: float, process: subprocess.Popen):
    """``condition()``'s first truthy value, polled while ``process`` runs."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        assert process.poll() is None, f"the run ended early with exit code {process.returncode}"
        time.sleep(0.5)
    raise AssertionError(f"nothing after {seconds} s")


@pytest.mark.slow
def test_a_killed_run_leaves_a_half_written_model_that_the_next_run_removes_but_not_a_live_runs(tmp_path):
    target = tmp_path / "models" / "run"
    command = [sys.executable, str(REPO / "train.py"), "--dataset", "digits", "--labeled-size", "40", "--quiet",
               "--output-dir", str(target)]

    def temporaries():
        return sorted(target.parent.glob(f".{target.name}.*.tmp")) if target.parent.exists() else []

    killed = subprocess.Popen([*command, "--epochs", "500"], cwd=tmp_path, stdout=subprocess.DEVNULL)
    try:
        half_written = wait_for(lambda: [path for path in temporaries() if (path / "best_model.keras").exists()],
                                300, killed)
    finally:
        killed.send_signal(signal.SIGKILL)
        killed.wait()
    assert temporaries() == half_written, "SIGKILL leaves the temporary with its model behind"
    live = subprocess.Popen([sys.executable, "-c", LIVE_WRITER, str(target)], cwd=REPO, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        live_temporary = Path(live.stdout.readline().strip())
        assert live_temporary.is_dir()
        rerun = subprocess.run([*command, "--epochs", "1"], cwd=tmp_path, capture_output=True, text=True,
                               timeout=600)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        assert (target / "best_model.keras").is_file()
        assert temporaries() == [live_temporary], "the killed run's temporary is gone, the live one's kept"
    finally:
        live.stdin.close()
        live.wait(timeout=60)
    assert not live_temporary.exists()


@pytest.mark.slow
def test_the_cycle_retrains_a_users_own_architecture_and_says_so(digits, tmp_path):
    import keras

    from AL_cycle import ActiveLearningAnalyzer

    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    features = keras.layers.Conv2D(8, 3, activation="relu")(keras.layers.Rescaling(1 / 255)(inputs))
    outputs = keras.layers.Dense(10, activation="softmax")(keras.layers.GlobalAveragePooling2D()(features))
    own = keras.Model(inputs, outputs, name="my_own")
    own.save(tmp_path / "my_own.keras")
    analyzer = ActiveLearningAnalyzer(tmp_path / "my_own.keras", 100, 100, 400, 0, dataset=digits,
                                      output_dir=tmp_path / "results", models_dir=tmp_path / "models",
                                      cache_dir=tmp_path / "cache", training={"epochs": 1}, verbose=False)
    analyzer.select(20, save_images=False, create_visualization=False)
    comparison = analyzer.comparison
    described = "fresh copy of my_own (its layers, new initial weights)"
    assert comparison["retrained_architecture"] == described
    for kind in ("al", "random"):
        run = Path(comparison["models"][kind])
        retrained = keras.models.load_model(run / "best_model.keras", safe_mode=True)
        assert [type(layer).__name__ for layer in retrained.layers] == [type(layer).__name__ for layer in own.layers]
        assert json.loads((run / "metrics.json").read_text())["architecture"] == described
    _, start, host, boot = owner_of_a_temporary(tmp_path)
    al_run = Path(comparison["models"]["al"])
    leftover = al_run.parent / f".{al_run.name}.{finished_process_id()}-{start}-{host}-{boot}.abc123.tmp"
    leftover.mkdir()
    analyzer.retrain_and_compare()
    assert not leftover.exists(), "reusing a finished run also clears a killed rerun's temporary"


@pytest.mark.slow
@pytest.mark.parametrize("learner", ["linear", "label_spreading"])
def test_a_fast_learner_trains_in_seconds_into_a_keras_classifier_the_toolkit_loads(learner, digits, tmp_path):
    from altoolkit.model import load_classifier, probabilities_and_embeddings
    from altoolkit.training import recipe_for, train_model

    recipe = recipe_for("digits", learner=learner, representation="patches")
    result = train_model(None, tmp_path / "run", dataset=digits, labeled_size=200, recipe=recipe, seed=0, verbose=0)
    assert result.test_accuracy > 0.8
    assert result.metrics["architecture"] == f"{learner} on patches features"
    model = load_classifier(result.model_path)
    probabilities, embeddings = probabilities_and_embeddings(model, digits.x_test)
    assert embeddings.shape == (len(digits.x_test), 1600)
    assert (probabilities.argmax(axis=1) == digits.y_test).mean() == pytest.approx(result.test_accuracy)


@pytest.mark.slow
def test_the_distilled_mobilenet_trains_on_pseudo_labels_and_says_how_many(digits, tmp_path):
    from altoolkit.pipelines import PSEUDO_LABELS_PER_LABEL
    from altoolkit.training import recipe_for, train_model

    recipe = recipe_for("digits", learner="mobilenet_distilled", epochs=1)
    result = train_model(None, tmp_path / "run", dataset=digits, labeled_size=100, recipe=recipe, seed=0, verbose=0)
    pseudo = result.metrics["pseudo_labels"]
    assert pseudo["count"] == PSEUDO_LABELS_PER_LABEL * 90
    assert result.metrics["train_size"] == 90 + pseudo["count"]
    assert pseudo["agree_with_known_labels"] > 0.7


def test_the_training_shuffle_depends_on_the_runs_seed_alone(digits):
    """The benchmark builds several seeds' models in one process; each build sets TensorFlow's global seed, which
    tf.data mixes into the shuffle: a run's epochs must not depend on which model was built last."""
    import keras

    from altoolkit.training import TrainingRecipe, fit_model

    recipe = TrainingRecipe(epochs=2, batch_size=16, cosine_decay=False)
    train_idx, no_validation = np.arange(96), np.zeros(0, np.int64)

    def trained_after_global_seed(global_seed: int) -> list[np.ndarray]:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Rescaling(1 / 255),
                                  keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
        keras.utils.set_random_seed(global_seed)
        fit_model(model, digits, train_idx, no_validation, recipe, seed=0, callbacks=[])
        return model.get_weights()

    first, second = trained_after_global_seed(0), trained_after_global_seed(7)
    assert all(np.array_equal(a, b) for a, b in zip(first, second))


def test_a_linear_head_on_a_keras_backbone_trains_in_seconds_and_saves_one_classifier(digits, tiny_backbone,
                                                                                         tmp_path):
    """--representation backbone: the frozen features of a .keras network the user gives, a logistic regression on
    them, and one saved classifier (backbone inside) whose test accuracy is the one recorded."""
    from altoolkit.model import load_classifier

    backbone = tiny_backbone
    assert train.main(["--dataset", "digits", "--labeled-size", "200", "--learner", "linear", "--representation",
                       "backbone", "--backbone", str(backbone), "--output-dir", str(tmp_path / "run"),
                       "--quiet"]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert (metrics["recipe"]["representation"], metrics["recipe"]["backbone"]) == ("backbone", str(backbone))
    model = load_classifier(tmp_path / "run" / "best_model.keras")
    predicted = np.asarray(model.predict(digits.x_test, verbose=0)).argmax(axis=1)
    assert (predicted == digits.y_test).mean() == pytest.approx(metrics["test_accuracy"], abs=1e-6)
    assert metrics["test_accuracy"] > 0.5  # random convolution features of digits, far above the 10 % of chance
    assert train.main(["--dataset", "digits", "--learner", "linear", "--representation", "backbone",
                       "--output-dir", str(tmp_path / "none")]) == 2
