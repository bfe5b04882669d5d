"""The cycle's base model and its cold start: the labeled set chosen without labels instead of the first N.

The design's labeled set is the first ``labeled_size`` training images. A cold start lets a coverage strategy
choose those ``labeled_size`` images among the training images before the pool (``0..start_idx-1``), over a
label-free representation, and moves them to the front of the training split (:meth:`Dataset.with_first`), so
every later step — training, the analyses, retraining — still reads "the first ``labeled_size``". The base
model's ``metrics.json`` records the choice (``initial``), and :func:`with_recorded_initial` re-applies it
whenever that model is analysed again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

import AL_functions as alf
from altoolkit.data import Dataset
from altoolkit.errors import ToolkitError
from altoolkit.files import check_writable_directory
from altoolkit.training import METRICS_FILENAME, MODEL_FILENAME
from altoolkit.validation import display_text

FIRST = "first"
"""The design's labeled set: the first ``labeled_size`` training images, no selection."""
INITIAL_CHOICES = (FIRST, alf.RECOMMENDED, *alf.COLD_START_STRATEGIES)
COLD_START_REPRESENTATION = "patches"


def choose_labeled_set(dataset: Dataset, strategy: str, labeled_size: int, start_idx: int, *, seed: int = 0,
                       cache_dir: str | Path | None = None, settings=None) -> tuple[Dataset, dict]:
    """``dataset`` with ``labeled_size`` images ``strategy`` chose among training images ``0..start_idx-1`` first,
    and the record of that choice for the base model's metrics (``{"initial": ...}``). Chosen over patch
    features, or over a pretrained network's when ``settings`` (a ``RepresentationSettings``) names a backbone."""
    from altoolkit.file_images import image_range
    from altoolkit.label_free import RepresentationSettings, label_free_features

    if strategy not in INITIAL_CHOICES[1:]:
        raise ToolkitError(f"unknown cold-start strategy {str(strategy)[:40]!r}: choose one of "
                           f"{', '.join(INITIAL_CHOICES)}")
    if labeled_size > start_idx:
        raise ToolkitError(f"a cold start chooses --labeled-size {labeled_size} images among the {start_idx} "
                           "training images before --start-idx: raise --start-idx or lower --labeled-size")
    settings = settings or RepresentationSettings()
    representation = "backbone" if settings.backbone else COLD_START_REPRESENTATION
    features = label_free_features(representation, image_range(dataset.x_train, 0, start_idx), seed=seed,
                                   settings=settings, cache_dir=cache_dir)
    selection = alf.cold_start(strategy, features, labeled_size, seed=seed, representation=representation)
    chosen = [int(index) for index in selection.indices]
    record = {"strategy": strategy, "ran": selection.strategy, "representation": representation,
              "prefix": int(start_idx), "seed": int(seed), "indices": chosen}
    return dataset.with_first(chosen, start_idx), {"initial": record}


def train_base_model(dataset: Dataset, model_path: Path, labeled_size: int, start_idx: int, *, initial: str = FIRST,
                     learner: str = "mobilenet", epochs: int = 30, seed: int = 42, backbone: str | None = None,
                     backbone_weights: str | None = "imagenet", cache_dir: str | Path | None = None,
                     verbose: int = 1) -> Dataset:
    """Train the cycle's missing base model into ``model_path``'s folder on the first ``labeled_size`` images, or on
    ``labeled_size`` images a cold start (``initial``) chose; returns the data in the order it was trained on.
    With ``backbone``, the fast learners and the cold start use that pretrained network's features (recorded in
    the recipe, so retraining and ``--representation backbone`` follow it)."""
    from altoolkit.training import recipe_for, train_model

    representation = {"representation": "backbone", "backbone": backbone,
                      "backbone_weights": backbone_weights} if backbone else {}
    recipe = recipe_for(dataset.name, epochs=epochs, learner=learner, **representation)
    recipe.validate()
    run_info = None
    if initial != FIRST:
        dataset, run_info = choose_labeled_set(dataset, initial, labeled_size, start_idx, seed=seed,
                                               cache_dir=cache_dir, settings=recipe.representation_settings())
        print(f"cold start: {initial} chose the base model's {labeled_size} labeled images among training images "
              f"0..{start_idx - 1}, without labels")
    else:
        print(f"no base model at {model_path}: training it on the first {labeled_size} images")
    result = train_model(None, Path(model_path).parent, dataset=dataset, labeled_size=labeled_size, recipe=recipe,
                         seed=seed, verbose=verbose, run_info=run_info)
    accuracy = "not measured (no test images)" if result.test_accuracy is None else f"{result.test_accuracy:.3f}"
    print(f"base model: {result.model_path}, test accuracy {accuracy}")
    return dataset


def check_base_model_path(model_path: Path, train_base: bool, labeled_size: int, *, model_given: bool) -> None:
    """Before any data is read: the base model exists, or ``--train-base`` can train it into a new run folder."""
    if os.path.isfile(model_path):
        return
    shown = display_text(model_path, 120)
    if not train_base:
        raise ToolkitError(f"no base model at {shown}: add --train-base to train one on the first {labeled_size} "
                           "images, or pass --model")
    if model_path.name != MODEL_FILENAME:
        raise ToolkitError(f"--train-base writes a run folder holding {MODEL_FILENAME}, so --model {shown} would "
                           f"never exist: pass --model <folder>/{MODEL_FILENAME}, or leave --model out")
    if os.path.lexists(model_path.parent):
        raise ToolkitError(f"--train-base trains into a new folder, but {display_text(model_path.parent, 120)} "
                           "exists without a model: move it away, or choose another --model or --models-dir")
    check_writable_directory(model_path.parent, "the --model folder" if model_given else "--models-dir")


def recorded_initial(model_path: str | Path) -> dict | None:
    """The cold start recorded in the metrics.json beside ``model_path`` (None: the design's first N)."""
    try:
        metrics = json.loads((Path(model_path).parent / METRICS_FILENAME).read_text())
    except (OSError, ValueError):
        return None
    initial = metrics.get("initial") if isinstance(metrics, dict) else None
    return initial if isinstance(initial, dict) else None


def check_initial_matches(model_path: Path, initial: str | None) -> None:
    """An existing base model and an ``--initial`` other than the one it was trained with are refused."""
    if initial in (None, FIRST) or not Path(model_path).is_file():
        return
    recorded = (recorded_initial(model_path) or {}).get("strategy", FIRST)
    if recorded != initial:
        raise ToolkitError(f"{display_text(model_path, 120)} exists, trained on a labeled set chosen by {recorded}: "
                           "drop --initial, or pass --model for a new base model")


def with_recorded_initial(dataset: Dataset, model_path: str | Path) -> Dataset:
    """``dataset`` ordered as the model's cold start ordered it when it was trained (unchanged without one)."""
    initial = recorded_initial(model_path)
    if initial is None:
        return dataset
    indices, prefix = initial.get("indices"), initial.get("prefix")
    if (not isinstance(indices, list) or not isinstance(prefix, int)
            or not all(isinstance(index, int) for index in indices)):
        raise ToolkitError(f"{Path(model_path).parent / METRICS_FILENAME}: its 'initial' record is damaged: "
                           "retrain the base model")
    if dataset.first_indices == tuple(indices):
        return dataset
    if dataset.first_indices:
        raise ToolkitError(f"this data was ordered by another cold start than the one {model_path} was trained "
                           "with: load the data again")
    if prefix > len(dataset.x_train) or (indices and max(indices) >= prefix):
        raise ToolkitError(f"{model_path} was trained after a cold start on other data ({len(dataset.x_train)} "
                           "training images here): use the data it was trained on")
    return dataset.with_first(np.asarray(indices, dtype=np.int64), prefix)
