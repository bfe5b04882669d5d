"""The live queue: while a person labels, a background process refits the fast learner and reorders the batch.

``label.py serve --live`` starts :func:`run_worker` in its own process with its own database connection. After
every ``refit_every`` new labels of the round it takes one snapshot of the store's labels, refits the round's
learner (the logistic regression of a round selected without a model) on the labeled folder plus every store
label, on the round's cached label-free representation, and orders the round's not yet labeled images: the next
``refit_every`` chosen by the round's strategy (``recommended`` switches from typical to uncertain images as the
labels grow), then the rest, least certain first. The order is recorded in the store as a reorder (the last
label row it used, what it ran, its estimates) in one short transaction; the page picks it up. A label post
never waits for this process; a failed refit is printed and the previous order stays.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from altoolkit.errors import ToolkitError, quiet_tensorflow_import
from altoolkit.labeling.store import BatchItem, LabelStore
from altoolkit.stopping import (STOP_SET_SIZE, AccuracyEstimate, cohens_kappa, cross_validated_accuracy,
                                stabilizing_predictions)

DEFAULT_REFIT_EVERY = 10
"""New labels of the round between two refits (``serve --refit-every``)."""
POLL_SECONDS = 0.25
"""How often the worker looks for new labels (one small read; it never writes until a refit is done)."""


@dataclass(frozen=True)
class LiveRound:
    """What a round was selected with, which the live refits keep."""

    strategy: str
    representation: str
    learner: str
    seed: int
    image_size: int
    backbone: str | None
    backbone_weights: str | None


def live_round(store: LabelStore, round_id: int) -> LiveRound:
    """The round's selection settings; an error unless it was selected without a model (a fast learner on a
    cached label-free representation, which is what a refit needs)."""
    from altoolkit.data import DEFAULT_IMAGE_SIZE

    record = next(record for record in store.rounds() if record["round"] == round_id)
    parameters = record["parameters"]
    if parameters.get("model", "") is not None or "representation" not in parameters:
        raise ToolkitError(f"round {round_id} was not selected by `label.py select` without --model, so there is no "
                           "fast learner to refit: serve it without --live, or select a round without --model")
    return LiveRound(record["strategy"], parameters["representation"], parameters.get("learner", "linear"),
                     int(parameters.get("seed", 0)), int(parameters.get("image_size", DEFAULT_IMAGE_SIZE)),
                     parameters.get("backbone"), parameters.get("backbone_weights", "imagenet"))


@dataclass
class LiveFeatures:
    """The round's representation: every pool image's row, the labeled folder's rows and classes, the stop set."""

    pool_rows: np.ndarray
    row_of: dict[str, int]
    folder_rows: np.ndarray
    folder_classes: np.ndarray
    stop_rows: np.ndarray

    def labeled(self, labels: dict[str, str], class_names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Rows and class ids of the labeled folder plus the store's ``labels`` (pool images by id)."""
        ids = [image_id for image_id in labels if image_id in self.row_of]
        rows = np.asarray([self.row_of[image_id] for image_id in ids], dtype=np.int64)
        classes = np.asarray([class_names.index(labels[image_id]) for image_id in ids], dtype=np.int64)
        store_rows = np.asarray(self.pool_rows[rows]) if len(rows) else self.folder_rows[:0]
        return (np.concatenate([self.folder_rows, store_rows]),
                np.concatenate([self.folder_classes.astype(np.int64), classes]))


def load_live_features(store: LabelStore, settings: LiveRound, pool_root: Path) -> LiveFeatures:
    """The round's cached representation of the pool (computed again only if the cache was trimmed) and of the
    labeled folder ``select`` recorded."""
    from altoolkit.data import load_dataset
    from altoolkit.label_free import PoolRepresentation, RepresentationSettings
    from altoolkit.labeling.pool import stored_images
    from altoolkit.sampling import seeded_subsample
    from altoolkit.streaming import scan_file_pool

    labeled = store.get_meta("labeled")
    if labeled is None:
        raise ToolkitError(f"{store.path} does not know its labeled folder: select a round with `label.py select`")
    known = store.pool_file_hashes() if store.get_meta("pool") == str(Path(pool_root).resolve()) else {}
    file_pool = scan_file_pool(pool_root, settings.image_size, known)
    representation = PoolRepresentation(
        settings.representation, file_pool, seed=settings.seed, cache_dir=store.path.parent / ".cache",
        settings=RepresentationSettings(backbone=settings.backbone, backbone_weights=settings.backbone_weights))
    folder = load_dataset("folder", path=labeled, image_size=settings.image_size)
    pool_rows = representation.pool_rows()
    stop = np.sort(seeded_subsample(len(pool_rows), min(STOP_SET_SIZE, len(pool_rows)), settings.seed))
    return LiveFeatures(pool_rows, {image.image_id: row for row, image in enumerate(stored_images(file_pool))},
                        representation.rows_for(folder.x_train), np.asarray(folder.y_train), stop)


@dataclass(frozen=True)
class Refit:
    """A refit's outcome: the queue's new order (positions into it), each image's class probabilities and margin,
    which strategy ran, the cross-validated estimate and the predictions on the stop set."""

    order: np.ndarray
    selected: np.ndarray
    probabilities: np.ndarray
    margins: np.ndarray
    ran: str
    estimate: AccuracyEstimate | None
    stop_predictions: np.ndarray


def refit_order(queue_features, labeled_features, labeled_classes, num_classes: int, *, select: Callable,
                settings: LiveRound, next_count: int, stop_features) -> Refit:
    """Refit the round's learner on the labeled rows and order the queue: the ``next_count`` images ``select``
    (AL_functions.select) picks with the round's strategy first, then the rest, each part least certain first."""
    from altoolkit.learners import make_learner
    from altoolkit.selection import SelectionRound

    queue = np.asarray(queue_features)
    labeled = np.asarray(labeled_features)
    learner = make_learner(settings.learner, num_classes).fit(labeled, labeled_classes)
    probabilities = learner.predict_proba(queue)
    ordered = np.sort(probabilities, axis=1)
    margins = ordered[:, -1] - ordered[:, -2]

    def features_for(name: str) -> tuple[np.ndarray, np.ndarray]:
        if name != settings.representation:
            raise ToolkitError(f"the live queue measures on the round's {settings.representation} features, not "
                               f"{name}")
        return queue, labeled

    selection = select(settings.strategy, SelectionRound(probabilities, queue, labeled, labeled_classes,
                                                         features_for=features_for, learner=settings.learner),
                       min(next_count, len(queue)), seed=settings.seed, representation=settings.representation)
    selected = np.zeros(len(queue), dtype=bool)
    selected[np.asarray(selection.indices, dtype=np.int64)] = True
    order = np.lexsort((np.arange(len(queue)), margins, ~selected))
    estimate = cross_validated_accuracy(labeled, labeled_classes, lambda: make_learner(settings.learner, num_classes),
                                        seed=settings.seed)
    stop_predictions = np.argmax(learner.predict_proba(np.asarray(stop_features)), axis=1)
    return Refit(order, selected, probabilities, margins, selection.strategy, estimate, stop_predictions)


def class_counts(classes: np.ndarray, class_names: tuple[str, ...]) -> dict[str, int]:
    return {name: int(np.sum(classes == index)) for index, name in enumerate(class_names)}


def reorder_from_store(store: LabelStore, round_id: int, features: LiveFeatures, settings: LiveRound,
                       refit_every: int, select: Callable, history: list[dict]) -> int | None:
    """One refit on a snapshot of the store's labels, recorded as a reorder; its id (None: nothing left to order)."""
    started = time.time()
    last_row, labels = store.labels_up_to()
    queue_ids = [image_id for image_id in store.batch_image_ids(round_id) if image_id not in labels]
    if not queue_ids:
        return None
    labeled_rows, labeled_classes = features.labeled(labels, store.class_names)
    queue_rows = np.asarray(features.pool_rows[np.asarray([features.row_of[image_id] for image_id in queue_ids])])
    refit = refit_order(queue_rows, labeled_rows, labeled_classes, len(store.class_names), select=select,
                        settings=settings, next_count=refit_every,
                        stop_features=features.pool_rows[features.stop_rows])
    previous = history[-1]["details"].get("stop_predictions") if history else None
    kappa = None if previous is None else cohens_kappa(previous, refit.stop_predictions)
    kappas = [record["details"]["kappa"] for record in history if record["details"].get("kappa") is not None]
    signal = stabilizing_predictions(kappas + ([kappa] if kappa is not None else []))
    names = store.class_names
    items = [BatchItem(queue_ids[position], names[int(np.argmax(refit.probabilities[position]))],
                       {name: round(float(p), 4) for name, p in zip(names, refit.probabilities[position])},
                       {"margin": round(float(refit.margins[position]), 6),
                        "selected": float(refit.selected[position])})
             for position in refit.order]
    details = {"ran": refit.ran, "representation": settings.representation, "learner": settings.learner,
               "seed": settings.seed, "refit_every": refit_every, "labeled": len(labeled_classes),
               "folder_per_class": class_counts(features.folder_classes, names),
               "estimate": None if refit.estimate is None else refit.estimate.as_dict(), "kappa": kappa,
               "stop": signal.as_dict(), "stop_predictions": refit.stop_predictions.tolist(),
               "refit_started": started, "refit_seconds": round(time.time() - started, 3)}
    return store.record_reorder(round_id, last_row, len(labels), refit.ran, details, items)


def run_worker(project: str, round_id: int, pool_root: str, refit_every: int, select: Callable,
               parent_pid: int) -> None:
    """The worker process: refit after every ``refit_every`` new labels of the round until the server's process
    (``parent_pid``) is gone; a refit that fails is printed and the page keeps the previous order."""
    quiet_tensorflow_import()
    try:
        with LabelStore(project) as store:
            settings = live_round(store, round_id)
            features = load_live_features(store, settings, Path(pool_root))
            history = store.reorders(round_id)
            baseline = history[-1]["last_label_row"] if history else 0
            print(f"live: refitting after every {refit_every} labels ({settings.learner} on {settings.representation} "
                  f"features; worker process {os.getpid()})", file=sys.stderr, flush=True)
            while os.getppid() == parent_pid:
                if store.label_rows_after(round_id, baseline) < refit_every:
                    time.sleep(POLL_SECONDS)
                    continue
                baseline = store.labels_up_to()[0]
                print(f"live: refit started on the labels up to row {baseline}", file=sys.stderr, flush=True)
                try:
                    reorder = reorder_from_store(store, round_id, features, settings, refit_every, select, history)
                except Exception as error:  # a failed refit must not end the live queue: the old order stays
                    message = error if isinstance(error, ToolkitError) else "".join(traceback.format_exception(error))
                    print(f"live: refit failed, the page keeps the previous order: {message}", file=sys.stderr,
                          flush=True)
                    continue
                history = store.reorders(round_id)
                if reorder is not None:
                    summary = history[-1]["details"]
                    print(f"live: reorder {reorder} recorded ({summary['ran']}, {summary['labeled']} labels)",
                          file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        return
    except ToolkitError as error:
        print(f"live: the live queue stopped, the page keeps its order: {error}", file=sys.stderr, flush=True)


def start_worker(project: Path, round_id: int, pool_root: Path, refit_every: int, select: Callable):
    """Start :func:`run_worker` in a fresh process (spawned: no threads or locks of the server are copied)."""
    import multiprocessing

    process = multiprocessing.get_context("spawn").Process(
        target=run_worker, args=(str(project), round_id, str(pool_root), refit_every, select, os.getpid()),
        name="al-toolkit-live-queue", daemon=True)
    process.start()
    return process
