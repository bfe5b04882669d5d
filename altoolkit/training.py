"""Train the base classifier on the labeled set (+ extra absolute indices) and evaluate it on the test split.

The labeled set is always the first ``labeled_size`` training images; its last ``validation_fraction`` is a
fixed validation split used to keep the best epoch (the test split is never used to choose anything).
A run is written to a temporary directory and renamed into place, so a killed run leaves no partial model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from altoolkit.data import Dataset, check_dataset_argument
from altoolkit.errors import ToolkitError
from altoolkit.files import atomic_directory, check_output_folder, write_json
from altoolkit.validation import check_fraction, check_positive_float, check_positive_int, check_seed

DEFAULT_MODELS_DIR = Path("models")
MODEL_FILENAME = "best_model.keras"
METRICS_FILENAME = "metrics.json"
HISTORY_PLOT_FILENAME = "training_history.png"
ARCHITECTURE_RECIPE = "MobileNetV3Small (toolkit recipe)"
"""What metrics.json records as the architecture of a model built by :func:`altoolkit.model.build_model`."""
FLIP_BY_DEFAULT = ("cifar10", "fashion_mnist")
"""Datasets whose images keep their meaning when mirrored (digits do not), so training flips them by default."""


@dataclass(frozen=True)
class TrainingRecipe:
    """Everything that decides how a model is trained (recorded in metrics.json)."""

    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 1e-3
    validation_fraction: float = 0.1
    weights: str | None = None
    backbone_size: int | None = None
    dropout: float = 0.3
    bn_momentum: float = 0.9
    flip_augmentation: bool = False
    cosine_decay: bool = False
    """Lower the learning rate from ``learning_rate`` towards 0 along a half cosine over the epochs. From scratch on
    a few hundred images, a constant rate leaves the last epochs jumping by 10+ points of accuracy; decayed,
    the last epoch is stable (measured on Fashion-MNIST, README benchmark section)."""
    drop_partial_batch: bool = True
    """Leave out each epoch's last, smaller training batch (reshuffled, so other images each epoch): a final batch
    of a couple of images skews BatchNormalization's moving statistics (see :func:`batched`)."""
    learner: str = "mobilenet"
    """``mobilenet`` (the design's model), ``linear`` or ``label_spreading`` (a fast learner on a label-free
    representation, seconds to train), or ``mobilenet_distilled`` (MobileNetV3Small on the labels plus
    pseudo-labels that label spreading gives the unlabeled training images); see :mod:`altoolkit.pipelines`."""
    representation: str = "patches"
    """The label-free representation the fast learners and the pseudo-labels use (``patches``, ``pixels``, or
    ``backbone``: the frozen features of the pretrained network ``backbone``)."""
    backbone: str | None = None
    """With ``representation="backbone"``: a ``.keras`` file or a ``keras.applications`` name."""
    backbone_weights: str | None = "imagenet"
    """For a ``keras.applications`` backbone: ``imagenet`` (downloaded) or a local weights file."""

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Refuse settings no training can use (a non-positive or non-finite rate, a fraction outside [0, 1))."""
        check_positive_int(self.epochs, "epochs")
        check_positive_int(self.batch_size, "batch size")
        check_positive_float(self.learning_rate, "learning rate")
        check_fraction(self.validation_fraction, "validation fraction")
        check_fraction(self.dropout, "dropout")
        check_fraction(self.bn_momentum, "BatchNormalization momentum")
        from altoolkit.label_free import LABEL_FREE_REPRESENTATIONS
        from altoolkit.pipelines import check_learner

        check_learner(self.learner)
        if self.representation not in LABEL_FREE_REPRESENTATIONS:
            raise ToolkitError(f"unknown representation {str(self.representation)[:40]!r} for the learner: choose "
                               f"one of {', '.join(LABEL_FREE_REPRESENTATIONS)}")
        if self.backbone and self.representation != "backbone":
            raise ToolkitError("a backbone is used with --representation backbone: add it, or drop --backbone")
        if self.representation == "backbone" and not self.backbone:
            raise ToolkitError("the backbone representation needs a network: pass --backbone (a .keras file or a "
                               "keras.applications name such as MobileNetV3Small)")

    def representation_settings(self):
        """The label-free representation's parameters this recipe implies (the backbone, if any)."""
        from altoolkit.label_free import RepresentationSettings

        return RepresentationSettings(backbone=self.backbone, backbone_weights=self.backbone_weights)


def recipe_for(dataset_name: str, **overrides) -> TrainingRecipe:
    """The default recipe for a dataset (horizontal flips only where they keep the meaning), with overrides."""
    return TrainingRecipe(**{"flip_augmentation": dataset_name in FLIP_BY_DEFAULT, **overrides})


@dataclass
class TrainResult:
    """Where a training run went and how well its model does on the test split."""

    output_dir: Path
    model_path: Path
    test_accuracy: float | None
    """None when the dataset has no test images (nothing to measure it on)."""
    per_class_accuracy: dict[str, float]
    metrics: dict = field(repr=False)


def training_indices(dataset: Dataset, labeled_size: int, additional_indices: Sequence[int] | None,
                     validation_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) absolute indices: the first ``labeled_size`` images (last part held out) + extras."""
    available = len(dataset.x_train)
    if not isinstance(labeled_size, (int, np.integer)) or labeled_size < 2:
        raise ToolkitError(f"labeled size must be an integer of at least 2, got {labeled_size!r}")
    if labeled_size > available:
        raise ToolkitError(f"labeled size {labeled_size} is larger than the {available} training images "
                           f"of {dataset.name}: use --labeled-size {available} or less")
    n_validation = int(round(labeled_size * validation_fraction))
    if validation_fraction > 0:
        n_validation = max(1, n_validation)
    if labeled_size - n_validation < 1:
        raise ToolkitError(f"labeled size {labeled_size} leaves no training image after the validation split")
    train = np.arange(labeled_size - n_validation)
    validation = np.arange(labeled_size - n_validation, labeled_size)
    extra = np.asarray([] if additional_indices is None else additional_indices)
    if extra.size:
        if not np.issubdtype(extra.dtype, np.integer):
            raise ToolkitError("additional indices must be integers (absolute training-set indices)")
        extra = extra.astype(np.int64).reshape(-1)
        bad = extra[(extra < labeled_size) | (extra >= available)]
        if bad.size:
            raise ToolkitError(f"additional index {int(bad[0])} is outside the pool: extra images must have "
                               f"absolute indices in {labeled_size}..{available - 1}")
        if len(np.unique(extra)) != len(extra):
            raise ToolkitError("additional indices contain duplicates: each image can be added once")
        train = np.concatenate([train, extra])
    unlabeled = np.flatnonzero(dataset.y_train[np.concatenate([train, validation])] < 0)
    if unlabeled.size:
        index = int(np.concatenate([train, validation])[unlabeled[0]])
        raise ToolkitError(f"training image {index} has no label ({unlabeled.size} of the chosen images are "
                           "unlabeled): label them before training on them")
    return train, validation


def batched(images: np.ndarray, labels: np.ndarray, batch_size: int, shuffle_seed: int | None = None,
            drop_partial_batch: bool = False):
    """A tf.data pipeline of (images, labels) batches, reshuffled each epoch when ``shuffle_seed`` is given.

    ``drop_partial_batch`` (for training) leaves out the last, smaller batch of each epoch when there is at
    least one full batch; the reshuffle puts other images there every epoch. With BatchNormalization momentum
    0.9, a final batch of a couple of images pulled the moving statistics far enough to cost 7 points of test
    accuracy (Fashion-MNIST, 1,250 training images: 71.2 %; 1,248: 78.4 %). Otherwise the batch dimension is
    unknown to TensorFlow, so Keras traces each step function once instead of once more for the last batch.
    """
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices((images, labels))
    if shuffle_seed is not None:
        data = data.shuffle(len(images), seed=shuffle_seed, reshuffle_each_iteration=True)
    return data.batch(batch_size, drop_remainder=drop_partial_batch and len(images) >= batch_size) \
        .prefetch(tf.data.AUTOTUNE)


def compiled_model(dataset: Dataset, recipe: TrainingRecipe, seed: int, architecture=None):
    """A new compiled MobileNetV3Small for ``dataset``, initial weights fixed by ``seed``, ready to fit.

    ``architecture`` (a Keras model) is trained instead, as a fresh copy: its layers, new initial weights.
    """
    import keras

    from altoolkit.model import build_model, fresh_copy

    keras.utils.set_random_seed(seed)
    if architecture is None:
        model = build_model(dataset.num_classes, input_shape=dataset.image_shape, weights=recipe.weights,
                            backbone_size=recipe.backbone_size, dropout=recipe.dropout,
                            bn_momentum=recipe.bn_momentum, flip_augmentation=recipe.flip_augmentation, seed=seed)
    else:
        model = fresh_copy(architecture)
    model.compile(optimizer=keras.optimizers.Adam(recipe.learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    build_training_state(model, dataset.x_train[:2], dataset.y_train[:2])
    return model


def fit_model(model, dataset: Dataset, train_idx: np.ndarray, validation_idx: np.ndarray, recipe: TrainingRecipe,
              seed: int, callbacks: list, verbose: int = 0):
    """``model.fit`` on the given training rows, validating on ``validation_idx`` (if any); returns the History.

    A NaN or infinite loss ends the fit with a ToolkitError (see :func:`stop_on_non_finite_loss`). TensorFlow's
    global seed is set to ``seed`` before the shuffle is built: tf.data combines it with the shuffle's own seed,
    so the epochs' order is this run's alone, not whichever model the process built last (the benchmark builds
    several seeds' models in one process).
    """
    import tensorflow as tf

    tf.random.set_seed(seed)
    x, y = dataset.x_train, dataset.y_train
    callbacks = [stop_on_non_finite_loss(recipe.learning_rate), *callbacks]
    if recipe.cosine_decay:
        callbacks = [*callbacks, cosine_schedule(recipe.learning_rate, recipe.epochs)]
    validation = batched(x[validation_idx], y[validation_idx], recipe.batch_size) if len(validation_idx) else None
    training = batched(x[train_idx], y[train_idx], recipe.batch_size, shuffle_seed=seed,
                       drop_partial_batch=recipe.drop_partial_batch)
    return model.fit(training, epochs=recipe.epochs, shuffle=False, callbacks=callbacks, verbose=verbose,
                     validation_data=validation)


def stop_on_non_finite_loss(learning_rate: float):
    """A callback raising ToolkitError as soon as the training or validation loss is NaN or infinite.

    Such a run has diverged and its weights are NaN; ``keras.callbacks.TerminateOnNaN`` would only stop it, and
    the run would still end normally and save a model.
    """
    import keras

    epoch = [0]

    def check(logs, where: str) -> None:
        for key in ("loss", "val_loss"):
            value = (logs or {}).get(key)
            if value is not None and not math.isfinite(float(value)):
                raise diverged(learning_rate, f"{'validation ' if key == 'val_loss' else ''}loss {float(value)} "
                                              f"{where}")

    return keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda index, logs: epoch.__setitem__(0, index + 1),
        on_train_batch_end=lambda batch, logs: check(logs, f"in epoch {epoch[0]}, batch {batch + 1}"),
        on_epoch_end=lambda index, logs: check(logs, f"after epoch {index + 1}"))


def diverged(learning_rate: float, what: str) -> ToolkitError:
    """The error a diverged run ends with: what went non-finite, and the setting to change."""
    return ToolkitError(f"training diverged ({what}, learning rate {learning_rate:g}): lower --learning-rate")


def check_finite_weights(model, learning_rate: float) -> None:
    """Refuse a model with a NaN or infinite weight (a diverged run), before anything is saved from it."""
    if not all(np.isfinite(weights).all() for weights in model.get_weights()):
        raise diverged(learning_rate, "the best model has non-finite weights")


def cosine_schedule(learning_rate: float, epochs: int):
    """A callback setting epoch ``e``'s learning rate to ``learning_rate · (1 + cos(π e / epochs)) / 2``."""
    import keras

    return keras.callbacks.LearningRateScheduler(
        lambda epoch: learning_rate * 0.5 * (1 + math.cos(math.pi * epoch / epochs)))


def build_training_state(model, sample_images: np.ndarray, sample_labels: np.ndarray) -> None:
    """Create the optimizer's and the metrics' variables before ``fit``.

    Otherwise they are created while TensorFlow traces the first training step, which makes it trace the
    whole step a second time: about 10 s of a short MobileNetV3 run on two CPU cores.
    """
    model.optimizer.build(model.trainable_variables)
    model.compute_metrics(sample_images, sample_labels, model(sample_images, training=False))
    for metric in model.metrics:
        metric.reset_state()


def evaluate_model(model, dataset: Dataset, batch_size: int = 512) -> dict:
    """Overall and per-class accuracy of ``model`` on the dataset's test split."""
    from altoolkit.model import check_input_shape, predict_probabilities

    check_input_shape(model, dataset.image_shape)
    probabilities = predict_probabilities(model, dataset.x_test, batch_size)
    return accuracy_report(probabilities.argmax(axis=1), dataset.y_test, dataset.class_names)


def accuracy_report(predicted: np.ndarray, truth: np.ndarray, class_names: Sequence[str]) -> dict:
    """Accuracy overall (NaN without test images) and per class (None for a class absent from ``truth``)."""
    correct = predicted == truth
    per_class = {}
    for label, name in enumerate(class_names):
        members = truth == label
        per_class[name] = float(correct[members].mean()) if members.any() else None
    return {"accuracy": float(correct.mean()) if len(truth) else float("nan"),
            "per_class_accuracy": per_class, "test_size": int(len(truth))}


def default_run_dir(labeled_size: int, models_dir: str | Path = DEFAULT_MODELS_DIR) -> Path:
    """The design's default run directory, ``models/<labeled_size>_train/``."""
    return Path(models_dir) / f"{labeled_size}_train"


def extended_run_dir(models_dir: str | Path, labeled_size: int, kind: str, absolute_indices: Sequence[int],
                     seed: int) -> Path:
    """Where a retraining on the labeled set plus ``absolute_indices`` goes: ``<labeled>+<kind><count>_seed<s>_<hash>``.

    The hash of the indices makes two selections of the same size distinct runs, and the same selection the same
    run (see :func:`finished_run_metrics`).
    """
    digest = hashlib.sha256(np.asarray(absolute_indices, dtype=np.int64).tobytes()).hexdigest()[:8]
    return Path(models_dir) / f"{labeled_size}+{kind}{len(absolute_indices)}_seed{seed}_{digest}"


def finished_run_metrics(run_dir: str | Path, dataset: Dataset, recipe: TrainingRecipe,
                         architecture: str = ARCHITECTURE_RECIPE) -> dict | None:
    """The metrics of a finished run in ``run_dir`` made from the same data, recipe and architecture, else None
    (a killed run leaves no model file there, so it is never reused)."""
    run_dir = Path(run_dir)
    if not ((run_dir / METRICS_FILENAME).is_file() and (run_dir / MODEL_FILENAME).is_file()):
        return None
    try:
        metrics = json.loads((run_dir / METRICS_FILENAME).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(metrics, dict):
        return None
    same = (metrics.get("dataset", {}).get("fingerprint") == dataset.fingerprint
            and metrics.get("recipe") == recipe.as_dict()
            and metrics.get("architecture", ARCHITECTURE_RECIPE) == architecture)
    return metrics if same else None


def train_model(additional_indices: Sequence[int] | None = None, output_dir: str | Path | None = None, *,
                dataset: Dataset, labeled_size: int = 500, recipe: TrainingRecipe = TrainingRecipe(),
                seed: int = 42, overwrite: bool = False, verbose: int = 1,
                run_info: dict | None = None, architecture=None) -> TrainResult:
    """Train MobileNetV3Small on the first ``labeled_size`` images plus ``additional_indices``.

    Writes ``best_model.keras`` (best validation accuracy), ``metrics.json`` (test accuracy, recipe, data
    fingerprint, indices used) and ``training_history.png`` into ``output_dir`` (default
    ``models/<labeled_size>_train``), atomically. Same seed → same validation split, same initial weights.
    ``architecture`` (a Keras model, e.g. a user's own base model) is trained instead of MobileNetV3Small, from
    fresh weights. A diverging run (NaN or infinite loss) is a ToolkitError and writes nothing.
    """
    seed = check_seed(seed)
    check_dataset_argument(dataset, name_option=None)
    recipe.validate()
    train_idx, validation_idx = training_indices(dataset, labeled_size, additional_indices,
                                                 recipe.validation_fraction)
    output_dir = Path(output_dir) if output_dir is not None else default_run_dir(labeled_size)
    check_output_folder(output_dir)
    if output_dir.exists() and not overwrite:
        raise ToolkitError(f"{output_dir} already exists: pass --overwrite to replace it or choose --output-dir")
    if recipe.learner in ("linear", "label_spreading"):
        return train_pipeline(dataset, np.concatenate([train_idx, validation_idx]), recipe, seed, output_dir,
                              overwrite, labeled_size, additional_indices, run_info)
    # Imported after the checks above, so that a refused input costs no TensorFlow start-up.
    import keras

    from altoolkit.plots import plot_training_history

    started = time.perf_counter()
    pseudo = {}
    if recipe.learner == "mobilenet_distilled":
        dataset, train_idx, pseudo = with_pseudo_labels(dataset, train_idx, validation_idx, recipe, seed)
    model = compiled_model(dataset, recipe, seed, architecture)
    with atomic_directory(output_dir, overwrite=overwrite) as work_dir:
        model_path = work_dir / MODEL_FILENAME
        has_validation = len(validation_idx) > 0
        checkpoint = keras.callbacks.ModelCheckpoint(
            model_path, monitor="val_accuracy" if has_validation else "accuracy", save_best_only=True,
            verbose=0)
        history = fit_model(model, dataset, train_idx, validation_idx, recipe, seed, [checkpoint], verbose)
        training_seconds = time.perf_counter() - started
        best_model = keras.models.load_model(model_path, compile=False, safe_mode=True)
        check_finite_weights(best_model, recipe.learning_rate)
        evaluation = evaluate_model(best_model, dataset)
        test_accuracy = evaluation["accuracy"] if evaluation["test_size"] else None
        history_dict = {key: [float(v) for v in values] for key, values in history.history.items()}
        monitored = history_dict["val_accuracy" if has_validation else "accuracy"]
        metrics = {
            "test_accuracy": test_accuracy,
            "per_class_accuracy": evaluation["per_class_accuracy"],
            "test_size": evaluation["test_size"],
            "best_epoch": int(np.argmax(monitored)) + 1,
            "best_validation_accuracy": float(np.max(monitored)) if has_validation else None,
            "chance_accuracy": 1.0 / dataset.num_classes,
            "dataset": {"name": dataset.name, "source": dataset.source, "fingerprint": dataset.fingerprint,
                        "class_names": list(dataset.class_names), "image_shape": list(dataset.image_shape)},
            "labeled_size": int(labeled_size),
            "additional_indices": [int(i) for i in (additional_indices if additional_indices is not None else [])],
            "train_size": int(len(train_idx)),
            "validation_indices": [int(validation_idx[0]), int(validation_idx[-1]) + 1] if has_validation else None,
            "seed": int(seed),
            "recipe": recipe.as_dict(),
            "architecture": architecture_description(recipe, architecture),
            "history": history_dict,
            **({"pseudo_labels": pseudo} if pseudo else {}),
            "training_seconds": round(training_seconds, 2),
            "versions": library_versions(),
            **(run_info or {}),
        }
        write_json(work_dir / METRICS_FILENAME, metrics)
        plot_training_history(history_dict, work_dir / HISTORY_PLOT_FILENAME,
                              title=f"{dataset.name}: {len(train_idx)} training images, seed {seed}")
    return TrainResult(output_dir=output_dir, model_path=output_dir / MODEL_FILENAME,
                       test_accuracy=test_accuracy,
                       per_class_accuracy=evaluation["per_class_accuracy"], metrics=metrics)


def with_pseudo_labels(dataset: Dataset, train_idx: np.ndarray, validation_idx: np.ndarray, recipe: TrainingRecipe,
                       seed: int) -> tuple[Dataset, np.ndarray, dict]:
    """The dataset with pseudo-labels on the unlabeled training rows label spreading is surest of, those rows added
    to ``train_idx``, and a record of them (their count, and how many agree with a known label in simulation).

    Pseudo-labels only extend this run's training set: the validation split and the test split stay real labels.
    """
    from altoolkit.pipelines import representation_features, with_pseudo_labels_on

    _, features = representation_features(dataset.x_train, recipe.representation, recipe.representation_settings(),
                                          seed)
    labels, extended, record = with_pseudo_labels_on(features, dataset.y_train, train_idx, validation_idx,
                                                     dataset.num_classes, seed)
    record = {"count": record["count"], "representation": recipe.representation,
              "agree_with_known_labels": record["agree_with_known_labels"]}
    return dataclasses.replace(dataset, y_train=labels), extended, record


def train_pipeline(dataset: Dataset, labeled_rows: np.ndarray, recipe: TrainingRecipe, seed: int, output_dir: Path,
                   overwrite: bool, labeled_size: int, additional_indices, run_info: dict | None) -> TrainResult:
    """A fast learner on a label-free representation fitted on every training image, saved as a Keras classifier
    (``best_model.keras``) with ``metrics.json``; the unlabeled training rows shape label spreading's graph."""
    from altoolkit.pipelines import fit_fast_learner, pipeline_classifier, representation_features

    started = time.perf_counter()
    unlabeled = np.setdiff1d(np.arange(len(dataset.x_train)), labeled_rows)
    representation, features = representation_features(dataset.x_train, recipe.representation,
                                                        recipe.representation_settings(), seed)
    learner = fit_fast_learner(recipe.learner, features, dataset.y_train, labeled_rows, unlabeled,
                               dataset.num_classes, seed)
    model = pipeline_classifier(representation, learner, dataset.image_shape, dataset.num_classes)
    training_seconds = time.perf_counter() - started
    evaluation = evaluate_model(model, dataset)
    test_accuracy = evaluation["accuracy"] if evaluation["test_size"] else None
    metrics = {
        "test_accuracy": test_accuracy, "per_class_accuracy": evaluation["per_class_accuracy"],
        "test_size": evaluation["test_size"], "best_epoch": None, "best_validation_accuracy": None,
        "chance_accuracy": 1.0 / dataset.num_classes,
        "dataset": {"name": dataset.name, "source": dataset.source, "fingerprint": dataset.fingerprint,
                    "class_names": list(dataset.class_names), "image_shape": list(dataset.image_shape)},
        "labeled_size": int(labeled_size),
        "additional_indices": [int(i) for i in (additional_indices if additional_indices is not None else [])],
        "train_size": int(len(labeled_rows)), "validation_indices": None, "seed": int(seed),
        "recipe": recipe.as_dict(), "architecture": architecture_description(recipe),
        "training_seconds": round(training_seconds, 2), "versions": library_versions(), **(run_info or {}),
    }
    with atomic_directory(output_dir, overwrite=overwrite) as work_dir:
        model.save(work_dir / MODEL_FILENAME)
        write_json(work_dir / METRICS_FILENAME, metrics)
    return TrainResult(output_dir=output_dir, model_path=output_dir / MODEL_FILENAME, test_accuracy=test_accuracy,
                       per_class_accuracy=evaluation["per_class_accuracy"], metrics=metrics)


def architecture_description(recipe: TrainingRecipe, architecture=None) -> str:
    """What metrics.json records as the trained architecture (and what a reusable finished run must match)."""
    if architecture is not None:
        return fresh_copy_description(architecture)
    if recipe.learner in ("linear", "label_spreading"):
        return f"{recipe.learner} on {recipe.representation} features"
    return ARCHITECTURE_RECIPE


def fresh_copy_description(architecture) -> str:
    """What metrics.json records as the architecture when a given model's architecture was retrained."""
    return f"fresh copy of {architecture.name} (its layers, new initial weights)"


def library_versions() -> dict[str, str]:
    """Versions of the libraries that decide a run's numbers (for manifests and metrics)."""
    import keras
    import matplotlib
    import sklearn
    import tensorflow as tf

    return {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "scikit-learn": sklearn.__version__, "matplotlib": matplotlib.__version__}
