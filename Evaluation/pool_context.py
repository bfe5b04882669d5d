"""The pool an analysis runs on, and the files and figures every analysis writes: shared by the Evaluation modules
and the analyzer.

A :class:`PoolContext` holds a dataset, a pool range and the model's outputs for it (one forward pass, cached).
Each criterion's ``run_*`` (in its own Evaluation module) computes its selection with :mod:`AL_functions`, then
:func:`write_analysis` writes ``<name>_indices.npy`` (relative to the pool start), ``<name>_scores.npz``,
``<name>_run.json`` and ``summary.txt``, and the plot helpers here draw its grids and histograms.
"""

from __future__ import annotations

import json
import os
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import AL_functions as alf
from Evaluation.cold_start import with_recorded_initial
from altoolkit.data import Dataset, check_dataset_argument
from altoolkit.errors import ToolkitError
from altoolkit.files import check_writable_directory, load_npy, save_npy, save_npz, write_json, write_text
from altoolkit.outputs import CACHE_DIRNAME, ModelOutputCache, RangeOutputs, validate_pool_range
from altoolkit.plots import plot_image_grid, plot_score_histograms

ANALYSES = ("uncertainty", "diversity", "novelty")
SET_LABELS = {"uncertainty": "uncertain", "diversity": "far from centroid", "novelty": "novel"}
GRID_TOP = 16
GRID_BOTTOM = 8
PROJECTION_MAX_POINTS = 5000


@dataclass
class PoolContext:
    """A pool range of a dataset and the model's outputs for it and for the labeled set (each computed once)."""

    dataset: Dataset
    model_path: Path
    labeled_size: int
    start_idx: int
    end_idx: int
    cache: ModelOutputCache
    data_options: dict = field(default_factory=dict)
    _pool: RangeOutputs | None = None
    _labeled: RangeOutputs | None = None
    _model_warning: str | None = None
    _model_checked: bool = False

    @property
    def pool(self) -> RangeOutputs:
        if self._pool is None:
            self._pool = self.cache.outputs(self.start_idx, self.end_idx)
        return self._pool

    @property
    def labeled(self) -> RangeOutputs:
        if self._labeled is None:
            self._labeled = self.cache.outputs(0, self.labeled_size)
        return self._labeled

    def compute_outputs(self) -> None:
        """Pool and labeled-set outputs together: one forward pass for whatever is not cached yet."""
        if self._pool is None or self._labeled is None:
            self._pool, self._labeled = self.cache.outputs_for([(self.start_idx, self.end_idx),
                                                                (0, self.labeled_size)])

    @property
    def pool_size(self) -> int:
        return self.end_idx - self.start_idx

    @property
    def true_labels(self) -> np.ndarray:
        """The pool's labels; ``UNLABELED`` (-1) where nobody has labeled an image."""
        return self.dataset.y_train[self.start_idx:self.end_idx]

    @property
    def pool_has_labels(self) -> bool:
        """True in simulation (the dataset knows every pool label); False for a pool nobody has labeled."""
        return bool((self.true_labels >= 0).all())

    @property
    def oracle_labels(self) -> np.ndarray:
        """True labels in simulation, else the model's predicted classes (say which via ``label_source``)."""
        return self.true_labels if self.pool_has_labels else self.pool.predicted

    @property
    def label_source(self) -> str:
        return "true labels" if self.pool_has_labels else "predicted classes (the pool has no labels)"

    def model_warning(self) -> str | None:
        """Why the model looks no better than chance (then every analysis is close to a random pick), or None.

        Signs: every pool image gets the same uncertainty; every image the same predicted class; or, once the
        labeled set's outputs are computed, no more right answers on its own labeled set than always guessing
        its most common class. Computed once; printed once as a ``warning:`` line on stderr.
        """
        if not self._model_checked:
            self._model_checked = True
            self._model_warning = self._chance_sign()
            if self._model_warning is not None:
                print(f"warning: {self._model_warning}", file=sys.stderr, flush=True)
        return self._model_warning

    def _chance_sign(self) -> str | None:
        pool, names = self.pool, self.dataset.class_names
        entropy = alf.entropy_scores(pool.probabilities)
        predicted = pool.predicted if self._labeled is None else np.concatenate([pool.predicted,
                                                                                self._labeled.predicted])
        if len(entropy) > 1 and np.allclose(entropy, entropy[0], rtol=0, atol=1e-6):
            sign = "gives every pool image the same uncertainty"
        elif len(predicted) > 1 and np.all(predicted == predicted[0]):
            sign = f"predicts {names[predicted[0]]} for every image"
        else:
            sign = self._labeled_set_sign()
        if sign is None:
            return None
        return (f"{self.model_path} looks untrained: it {sign}, so its picks are close to random; "
                "train it longer or on more labels before trusting them")

    def _labeled_set_sign(self) -> str | None:
        if self._labeled is None:
            return None
        labels = self.dataset.y_train[:self.labeled_size]
        known = labels >= 0
        if not known.any():
            return None
        accuracy = float((self._labeled.predicted[known] == labels[known]).mean())
        counts = np.bincount(labels[known], minlength=self.dataset.num_classes)
        majority = counts.max() / known.sum()
        if accuracy > majority:
            return None
        return (f"is right on {accuracy:.0%} of its own {int(known.sum())} labeled images, no better than always "
                f"guessing {self.dataset.class_names[counts.argmax()]} ({majority:.0%})")

    def describe(self) -> dict:
        """What a run was computed from (written into every ``*_run.json``)."""
        return {"model_path": str(self.model_path), "model_sha256": self.cache.model_digest,
                "dataset": self.dataset.name, "dataset_fingerprint": self.dataset.fingerprint,
                "class_names": list(self.dataset.class_names), "data_options": self.data_options,
                "labeled_size": self.labeled_size, "start_idx": self.start_idx, "end_idx": self.end_idx}


def prepare_pool(model_path: str | os.PathLike, dataset: Dataset, labeled_size: int, start_idx: int,
                 end_idx: int, cache_dir: str | os.PathLike | None = None,
                 data_options: dict | None = None, model=None) -> PoolContext:
    """Check the range and the model against the data; outputs are computed on first use (cached in
    ``cache_dir``, or in memory only when it is None)."""
    validate_pool_range(dataset, labeled_size, start_idx, end_idx)
    cache = ModelOutputCache(model_path, dataset, cache_dir=cache_dir, model=model)
    return PoolContext(dataset=dataset, model_path=Path(model_path), labeled_size=labeled_size,
                       start_idx=start_idx, end_idx=end_idx, cache=cache, data_options=data_options or {})


def open_pool(model_path: str | os.PathLike, labeled_size: int, start_idx: int, end_idx: int, *,
              dataset: Dataset | None = None, dataset_name: str = "cifar10", classes=None,
              data_path: str | os.PathLike | None = None, image_size: int = 32,
              cache_dir: str | os.PathLike | None = None) -> PoolContext:
    """Load the model, then the dataset (unless given), and prepare the pool; the Evaluation modules' first step.

    A base model trained after a cold start (``AL_cycle.py --initial``) gets the data in the order it was
    trained on: its chosen labeled set first (recorded in its metrics.json).

    The model comes first: a missing or unfitting model file is refused before a large dataset is read.
    ``classes=None`` means the dataset's default classes (airplane/automobile/ship for CIFAR-10); a string is
    read like ``--classes`` (``"all"`` keeps every class, ``"0,1,8"`` or names pick some). ``cache_dir=None``
    keeps the model's outputs in memory only.
    """
    from altoolkit.data import dataset_classes, load_dataset
    from altoolkit.model import check_input_shape, load_classifier

    check_dataset_argument(dataset)
    if cache_dir is not None:
        check_writable_directory(cache_dir, "--cache-dir")
    model = load_classifier(model_path)
    if dataset is not None:
        options = {"dataset_name": dataset.name, "classes": list(dataset.class_names), "data_path": None,
                   "image_size": dataset.image_shape[0]}
    else:
        if classes is None or isinstance(classes, str):
            classes = dataset_classes(dataset_name, classes)
        options = {"dataset_name": dataset_name, "classes": list(classes) if classes is not None else None,
                   "data_path": str(data_path) if data_path is not None else None, "image_size": image_size}
        if isinstance(image_size, (int, np.integer)) and image_size > 0:
            check_input_shape(model, (image_size, image_size, 3), name=str(model_path))
        dataset = load_dataset(dataset_name, path=data_path, classes=classes, image_size=image_size)
    dataset = with_recorded_initial(dataset, model_path)
    return prepare_pool(model_path, dataset, labeled_size, start_idx, end_idx, cache_dir, options, model=model)


def cache_beside(output_dir: str | os.PathLike) -> Path:
    """The Evaluation modules' default cache: ``.cache`` in the folder holding their output folder
    (``results/.cache`` for ``results/uncertainty``), so the three analyses share one forward pass."""
    return Path(output_dir).parent / CACHE_DIRNAME


def open_analysis_pool(output_dir: str | os.PathLike, model_path: str | os.PathLike, labeled_size: int,
                       start_idx: int, end_idx: int, cache_dir: str | os.PathLike | None = None,
                       **data) -> PoolContext:
    """:func:`open_pool` for an analysis writing into ``output_dir``: the folder is checked first, and the cache
    defaults to :func:`cache_beside` it. ``data`` are open_pool's dataset options."""
    check_writable_directory(output_dir, "--output-dir")
    return open_pool(model_path, labeled_size, start_idx, end_idx,
                     cache_dir=cache_dir if cache_dir is not None else cache_beside(output_dir), **data)


def class_distribution(context: PoolContext, relative_indices: np.ndarray) -> dict[str, int]:
    """Selected images per class, by true labels in simulation, else by the model's predicted classes."""
    labels = context.oracle_labels[np.asarray(relative_indices, dtype=np.int64)]
    counts = np.bincount(labels, minlength=context.dataset.num_classes)
    return {name: int(count) for name, count in zip(context.dataset.class_names, counts)}


def selection_stats(context: PoolContext, relative_indices: np.ndarray) -> dict:
    """Count, percentage of the pool and per-class distribution of a selection."""
    count = int(len(relative_indices))
    return {"count": count, "pool_size": context.pool_size,
            "percentage": round(100.0 * count / context.pool_size, 2) if context.pool_size else 0.0,
            "distribution": class_distribution(context, relative_indices),
            "distribution_source": context.label_source}


def score_summary(values: np.ndarray) -> dict:
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return {"min": None, "mean": None, "max": None}
    return {"min": float(values.min()), "mean": float(values.mean()), "max": float(values.max())}


def load_analysis(directory: str | os.PathLike, name: str) -> tuple[np.ndarray, dict, dict]:
    """Read back an analysis' indices, scores and run description; a missing file is one clear error."""
    directory = Path(directory)
    files = {"indices": directory / f"{name}_indices.npy", "scores": directory / f"{name}_scores.npz",
             "run": directory / f"{name}_run.json"}
    absent = [str(path) for path in files.values() if not path.is_file()]
    if absent:
        raise ToolkitError(f"missing {', '.join(absent)}: run the {name} analysis first "
                           f"(python -m Evaluation.{name.capitalize()}.{name})")
    try:
        indices = load_npy(files["indices"])
        with np.load(files["scores"], allow_pickle=False) as archive:
            scores = {key: archive[key] for key in archive.files}
        run = json.loads(files["run"].read_text())
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise ToolkitError(f"cannot read the {name} results in {directory}: {error}; re-run the analysis") from None
    if indices.ndim != 1 or not (np.issubdtype(indices.dtype, np.integer) or indices.size == 0):
        raise ToolkitError(f"{files['indices']} must hold a 1-D array of integer pool indices, got "
                           f"{indices.dtype} with shape {indices.shape}: re-run the {name} analysis")
    return indices, scores, run


def write_analysis(name: str, context: PoolContext, output_dir: Path, indices: np.ndarray,
                    scores: dict[str, np.ndarray], stats: dict, lines: list[str], verbose: bool) -> None:
    stats["model_warning"] = context.model_warning()
    save_npy(output_dir / f"{name}_indices.npy", indices)
    save_npz(output_dir / f"{name}_scores.npz", **{key: np.asarray(value) for key, value in scores.items()})
    write_json(output_dir / f"{name}_run.json", {**context.describe(), "stats": stats,
                                                "absolute_indices": indices + context.start_idx})
    header = [f"{name} analysis",
              f"model: {context.model_path} (sha256 {context.cache.model_digest})",
              f"data: {context.dataset.name} ({context.dataset.source}); pool = training images "
              f"{context.start_idx}..{context.end_idx - 1} ({context.pool_size}); labeled = first {context.labeled_size}",
              f"selected: {stats['count']} images ({stats['percentage']}% of the pool)",
              f"per class ({stats['distribution_source']}): {stats['distribution']}"]
    score_lines = [f"{key}: min {value['min']:.4f}  mean {value['mean']:.4f}  max {value['max']:.4f}"
                   for key, value in stats["scores"].items() if value["min"] is not None]
    warning = [f"warning: {stats['model_warning']}"] if stats["model_warning"] else []
    write_text(output_dir / "summary.txt", "\n".join(header + warning + lines + score_lines) + "\n")
    if verbose:
        print(f"{name}: {stats['count']} of {context.pool_size} pool images selected "
              f"({stats['percentage']}%) -> {output_dir}")


def grid_choice(scores: np.ndarray) -> np.ndarray:
    """The highest-scoring images, then the lowest-scoring ones, so the grid shows the contrast."""
    order = np.argsort(-scores, kind="stable")
    top = order[:GRID_TOP]
    bottom = [i for i in order[::-1][:GRID_BOTTOM] if i not in set(top.tolist())]
    return np.concatenate([top, np.asarray(bottom[::-1], dtype=np.int64)])


def plot_grid_and_histograms(name: str, context: PoolContext, output_dir: Path, selected_indices: np.ndarray,
                              ranking: np.ndarray, details: dict[str, np.ndarray],
                              histogram_scores: dict[str, np.ndarray], thresholds: dict[str, float]) -> None:
    shown = grid_choice(ranking)
    selected = np.zeros(context.pool_size, dtype=bool)
    selected[selected_indices] = True
    plot_image_grid(context.dataset.x_train[context.start_idx + shown], image_titles(context, shown, details),
                    selected[shown], output_dir / f"{name}_samples.png",
                    f"{name.capitalize()}: the {GRID_TOP} highest and {GRID_BOTTOM} lowest scoring pool images")
    plot_score_histograms(histogram_scores, thresholds, output_dir / f"{name}_histogram.png",
                          f"{name.capitalize()} scores over {context.pool_size} pool images "
                          f"({len(selected_indices)} selected)")


def image_titles(context: PoolContext, relative: np.ndarray, details: dict[str, np.ndarray]) -> list[str]:
    names = context.dataset.class_names
    predicted = context.pool.predicted
    titles = []
    for index in relative:
        detail = " ".join(f"{key}={short_number(values[index])}" for key, values in details.items())
        truth = context.true_labels[index]
        titles.append(f"#{context.start_idx + index} true {names[truth] if truth >= 0 else '?'}\n"
                      f"pred {names[predicted[index]]} {detail}")
    return titles


def short_number(value) -> str:
    return str(int(value)) if np.issubdtype(np.asarray(value).dtype, np.integer) else f"{float(value):.2f}"


def projection(embeddings: np.ndarray, random_state: int) -> tuple[np.ndarray, tuple[float, float], np.ndarray]:
    """2-D PCA of the embeddings, and a seeded subset of at most PROJECTION_MAX_POINTS rows to draw."""
    from sklearn.decomposition import PCA

    components = min(2, embeddings.shape[1], len(embeddings))
    pca = PCA(n_components=components, random_state=random_state)
    points = pca.fit_transform(embeddings)
    if components < 2:
        points = np.column_stack([points, np.zeros((len(points), 2 - components))])
    ratios = tuple(pca.explained_variance_ratio_.tolist() + [0.0] * (2 - components))
    shown = np.arange(len(points))
    if len(points) > PROJECTION_MAX_POINTS:
        shown = np.sort(np.random.default_rng(random_state).choice(len(points), PROJECTION_MAX_POINTS, replace=False))
    return points, ratios, shown


def save_selected_images(context: PoolContext, selected: np.ndarray, folder: Path) -> None:
    """One PNG per selected image, named by absolute index and class (replacing an earlier run's images)."""
    from PIL import Image

    from altoolkit.files import atomic_directory

    names = context.dataset.class_names
    with atomic_directory(folder, overwrite=True) as work:
        for index in selected:
            label = names[context.oracle_labels[index]].replace("/", "-").replace(" ", "_")
            Image.fromarray(context.dataset.x_train[context.start_idx + index]).save(
                work / f"{context.start_idx + index:06d}_{label}.png")


def plot_selected_grid(context: PoolContext, intersection: np.ndarray, scores: dict, target: Path) -> None:
    shown = intersection[:40]
    details = {}
    if "entropy" in scores.get("uncertainty", {}):
        details["H"] = scores["uncertainty"]["entropy"]
    if "novelty" in scores.get("novelty", {}):
        details["nov"] = scores["novelty"]["novelty"]
    plot_image_grid(context.dataset.x_train[context.start_idx + shown], image_titles(context, shown, details),
                    np.ones(len(shown), dtype=bool), target,
                    f"Intersection: {len(shown)} of {len(intersection)} selected images")
