"""Training inside the benchmark: one model per seed, rebuilt from the seed's initial weights every round, and the
saved model states a resumed run starts from."""

from __future__ import annotations

import dataclasses
import math
import zipfile
from pathlib import Path

import numpy as np

from altoolkit.data import Dataset
from altoolkit.errors import ToolkitError
from altoolkit.files import save_npz
from altoolkit.training import TrainingRecipe, compiled_model, evaluate_model, fit_model

class SeedTrainer:
    """One compiled model per seed, reset to its initial weights before every training (traces are reused).

    Building and tracing MobileNetV3Small costs far more than a short training on a CPU, so instead of a fresh
    model per round this restores the initial weights, zeroes the optimizer's variables and resets the metrics;
    the best-validation epoch's weights are kept in memory instead of a checkpoint file.
    """

    def __init__(self, dataset: Dataset, recipe: TrainingRecipe, seed: int, keep_best_validation_epoch: bool = False):
        from altoolkit.model import probabilities_and_embeddings_model

        self.dataset = dataset
        self.recipe = recipe
        self.seed = int(seed)
        self.keep_best_validation_epoch = keep_best_validation_epoch
        self.model = compiled_model(dataset, recipe, self.seed)
        self.two_outputs = probabilities_and_embeddings_model(self.model)
        self.initial_values = [variable.numpy() for variable in self._state_variables()]

    def _state_variables(self) -> list:
        """Every variable a training changes: weights, dropout/flip seed states (not in get_weights), optimizer."""
        return [*self.model.variables, *self.model.optimizer.variables]

    def reset(self) -> None:
        """Back to the state right after building: initial weights and seed states, fresh optimizer, empty metrics.

        The optimizer's variables go back to their values after ``build`` (zero moments and iterations; the
        learning rate, also a variable, is kept).
        """
        for variable, value in zip(self._state_variables(), self.initial_values):
            variable.assign(value)
        for metric in self.model.metrics:
            metric.reset_state()

    def train(self, train_idx: np.ndarray, validation_idx: np.ndarray, labels: np.ndarray | None = None) -> dict:
        """Train from the initial weights; keep the last epoch's weights, or the best-validation epoch's. Returns
        facts (the best validation epoch is recorded either way). ``labels`` replace the training labels (the
        distilled learner's pseudo-labels) for this training only."""
        self.reset()
        keeper = _best_weights_callback("val_accuracy" if len(validation_idx) else "accuracy")
        data = self.dataset if labels is None else dataclasses.replace(self.dataset, y_train=labels)
        history = fit_model(self.model, data, train_idx, validation_idx, self.recipe, self.seed, [keeper])
        if self.keep_best_validation_epoch:
            self.model.set_weights(keeper.best_weights)
        validation = history.history.get("val_accuracy", [])
        return {"best_epoch": keeper.best_epoch + 1, "best_validation_accuracy": keeper.best,
                "last_validation_accuracy": float(validation[-1]) if validation else None,
                "epochs_run": len(history.history.get("loss", []))}

    def evaluate(self) -> dict:
        """Accuracy overall and per class on the test split."""
        return evaluate_model(self.model, self.dataset)

    def infer(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities, embeddings) of the given training rows, one forward pass."""
        from altoolkit.model import run_inference

        probabilities, embeddings = run_inference(self.two_outputs, self.dataset.x_train[rows])
        return probabilities, embeddings


def _best_weights_callback(monitor: str):
    import keras

    class BestWeights(keras.callbacks.Callback):
        """Keeps ``get_weights()`` of the epoch with the best ``monitor`` (the first on ties, like ModelCheckpoint)."""

        def __init__(self):
            super().__init__()
            self.best, self.best_epoch, self.best_weights = -math.inf, -1, None

        def on_epoch_end(self, epoch, logs=None):
            value = float((logs or {}).get(monitor, -math.inf))
            if value > self.best or self.best_weights is None:
                self.best, self.best_epoch, self.best_weights = value, epoch, self.model.get_weights()

    return BestWeights()


def state_path(state_dir: Path, seed: int, name: str, round_number: int) -> Path:
    """Where the model of (seed, strategy, round) is kept for a resume; round 0 is the shared base model.

    The round is in the name so that a run killed between saving the weights and rewriting results.json can
    never pair a cell with the next round's model.
    """
    return state_dir / (f"seed{seed}_base.npz" if round_number == 0 else f"seed{seed}_{name}_round{round_number}.npz")


def save_weights(target: Path, weights: list[np.ndarray]) -> None:
    """Weights as an .npz (atomic, no pickles): lets a resumed run continue from a finished round's model."""
    save_npz(target, *weights)


def load_weights(source: Path) -> list[np.ndarray]:
    """The weights :func:`save_weights` wrote; an unreadable file is one error that says how to recover."""
    try:
        with np.load(source, allow_pickle=False) as data:
            return [data[f"arr_{i}"] for i in range(len(data.files))]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise ToolkitError(f"{source} is not a saved model state ({type(error).__name__}): delete it, and the "
                           "rounds that need it are trained again") from None


def restore_weights(model, source: Path) -> None:
    """Load a saved state into ``model``; a state of another shape is refused, not half-applied."""
    weights = load_weights(source)
    expected = [tuple(variable.shape) for variable in model.weights]
    if [tuple(weight.shape) for weight in weights] != expected:
        raise ToolkitError(f"{source} does not hold this benchmark's model ({len(weights)} arrays, the model has "
                           f"{len(expected)} or other shapes): delete it, and the rounds that need it are trained "
                           "again")
    model.set_weights(weights)
