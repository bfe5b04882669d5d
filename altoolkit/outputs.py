"""One forward pass per image range: probabilities + embeddings, cached on disk by model file and data range.

Running the uncertainty, diversity and novelty modules one after another costs one pass over the pool (and one
over the labeled set for novelty), not one per module: the second module finds the first one's cache. A cache
file is used only if its arrays have the shapes, type and values this model gives; any other file is recomputed.
"""

from __future__ import annotations

import os
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from altoolkit.arrays import check_probabilities
from altoolkit.data import Dataset
from altoolkit.errors import ToolkitError
from altoolkit.file_images import FileImages, image_range
from altoolkit.files import check_writable_directory, file_sha256, save_npz
from altoolkit.model import INFERENCE_BATCH_SIZE
from altoolkit.validation import short_repr

CACHE_DIRNAME = ".cache"
"""The cache folder's name inside (or, for the Evaluation modules, beside) the output folder."""


@dataclass(frozen=True)
class RangeOutputs:
    """The model's outputs for training images ``start..end-1`` (absolute indices)."""

    start: int
    end: int
    probabilities: np.ndarray
    embeddings: np.ndarray
    from_cache: bool
    seconds: float

    @property
    def indices(self) -> np.ndarray:
        return np.arange(self.start, self.end)

    @property
    def predicted(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)


def validate_pool_range(dataset: Dataset, labeled_size: int, start_idx: int, end_idx: int) -> None:
    """The pool ``start_idx..end_idx-1`` must be non-empty, inside the data and after the labeled set."""
    available = len(dataset.x_train)
    for name, value in (("labeled size", labeled_size), ("start index", start_idx), ("end index", end_idx)):
        if not isinstance(value, (int, np.integer)) or value < 0:
            raise ToolkitError(f"{name} must be a non-negative integer, got {short_repr(value)}")
    if end_idx > available:
        raise ToolkitError(f"end index {short_repr(end_idx)} is outside the data: {dataset.name} has {available} "
                           f"training images, use --end-idx {available} or less")
    if labeled_size > available:
        raise ToolkitError(f"labeled size {short_repr(labeled_size)} is larger than the {available} training images")
    if start_idx >= end_idx:
        raise ToolkitError(f"start index {short_repr(start_idx)} must be smaller than end index {end_idx}")
    if start_idx < labeled_size:
        raise ToolkitError(f"the pool {start_idx}..{end_idx - 1} overlaps the labeled set (the first "
                           f"{labeled_size} images): use --start-idx {labeled_size} or more")


class ModelOutputCache:
    """Computes (or reads back) probabilities and embeddings of a model over index ranges of a dataset.

    The model is loaded and checked against the data once; cache files are keyed by the model file's SHA-256,
    the dataset fingerprint and the range, and written atomically. ``cache_dir=None`` keeps outputs in memory only.
    """

    def __init__(self, model_path: str | os.PathLike, dataset: Dataset, cache_dir: str | os.PathLike | None = None,
                 batch_size: int = INFERENCE_BATCH_SIZE, model=None):
        from altoolkit.model import load_classifier

        self.model_path = Path(model_path)
        self.dataset = dataset
        self.cache_dir = check_writable_directory(cache_dir, "--cache-dir") if cache_dir is not None else None
        self.batch_size = batch_size
        self._in_files = isinstance(dataset.x_train, FileImages)
        if self._in_files:  # hashed with the cache's index before the fingerprint is first asked for
            dataset.x_train.file_list.files(self.cache_dir)
        self._model = model if model is not None else load_classifier(self.model_path)
        self._check_model_fits_data(self._model)
        self.model_sha256 = file_sha256(self.model_path)
        self.model_digest = self.model_sha256[:16]
        self._two_outputs = None

    @property
    def model(self):
        return self._model

    def outputs(self, start: int, end: int) -> RangeOutputs:
        """Outputs for images ``start..end-1``, from the cache when this model and data were seen before."""
        return self.outputs_for([(start, end)])[0]

    def outputs_for(self, ranges: list[tuple[int, int]]) -> list[RangeOutputs]:
        """Outputs for several ranges; every range not in the cache is computed in ONE pass together."""
        started = time.perf_counter()
        results: dict[tuple[int, int], RangeOutputs] = {}
        for start, end in ranges:
            cached = self._read_cache(start, end)
            if cached is not None:
                results[(start, end)] = RangeOutputs(start, end, *cached, True, time.perf_counter() - started)
        missing = [(start, end) for start, end in dict.fromkeys(ranges) if (start, end) not in results]
        if missing and self._in_files:
            for start, end in missing:
                results[(start, end)] = RangeOutputs(start, end, *self._streamed(start, end),
                                                     time.perf_counter() - started)
        elif missing:
            images = np.concatenate([self.dataset.x_train[start:end] for start, end in missing])
            probabilities, embeddings = self._predict(images)
            seconds = time.perf_counter() - started
            offset = 0
            for start, end in missing:
                part = slice(offset, offset + end - start)
                offset += end - start
                self._write_cache(start, end, probabilities[part], embeddings[part])
                results[(start, end)] = RangeOutputs(start, end, probabilities[part], embeddings[part], False,
                                                     seconds)
        return [results[(start, end)] for start, end in ranges]

    def _streamed(self, start: int, end: int) -> tuple[np.ndarray, np.ndarray, bool]:
        """(probabilities, embeddings, read from the cache) for images kept in files: streamed in decoded batches,
        and with a cache folder written there as memory-mapped arrays keyed by the model and the files' content
        (:func:`streamed_model_outputs`)."""
        images = image_range(self.dataset.x_train, start, end)
        if self.cache_dir is None:
            return (*self._predict(images), False)
        pool = images.pool(self.cache_dir)
        cached = streamed_outputs_cached(self.model_sha256, pool, self.cache_dir)
        return (*streamed_model_outputs(self._two_output_model(), self.model_sha256, pool, self.cache_dir), cached)

    def _read_cache(self, start: int, end: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The cached outputs of ``start..end-1`` if a cache file holds valid ones; a bad file is deleted."""
        cache_file = self._cache_file(start, end)
        if cache_file is None or not os.path.lexists(cache_file) or self._in_files:
            return None
        if cache_file.is_dir() or not cache_file.is_file():
            raise ToolkitError(f"the cache file {cache_file} is a folder or a link to nothing: move it away or "
                               "choose another --cache-dir")
        try:
            with np.load(cache_file, allow_pickle=False) as cached:
                probabilities, embeddings = cached["probabilities"], cached["embeddings"]
            if self._valid_outputs(end - start, probabilities, embeddings):
                return probabilities, embeddings
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            pass
        cache_file.unlink(missing_ok=True)  # unreadable, or not what this model gives: recompute it
        return None

    def _valid_outputs(self, rows: int, probabilities: np.ndarray, embeddings: np.ndarray) -> bool:
        """True if the arrays are what this model gives for ``rows`` images: shapes, float32, finite probabilities."""
        classes, width = self.output_widths
        if probabilities.shape != (rows, classes) or embeddings.shape != (rows, width):
            return False
        if probabilities.dtype != np.float32 or embeddings.dtype != np.float32:
            return False
        if not np.isfinite(embeddings).all():
            return False
        try:
            check_probabilities(probabilities)
        except ToolkitError:
            return False
        return True

    @property
    def output_widths(self) -> tuple[int, int]:
        """(classes, embedding width) of this model's two outputs."""
        model = self._two_output_model()
        return int(model.outputs[0].shape[-1]), int(model.outputs[1].shape[-1])

    def _write_cache(self, start: int, end: int, probabilities: np.ndarray, embeddings: np.ndarray) -> None:
        """Write the outputs atomically; a failed write costs the next run a forward pass, so it only warns."""
        cache_file = self._cache_file(start, end)
        if cache_file is None:
            return
        try:
            save_npz(cache_file, probabilities=probabilities, embeddings=embeddings)
        except OSError as error:
            print(f"warning: could not write the cache file {cache_file} ({error.strerror or error}): the next "
                  "run computes these outputs again", file=sys.stderr, flush=True)

    def _two_output_model(self):
        from altoolkit.model import probabilities_and_embeddings_model

        if self._two_outputs is None:
            self._two_outputs = probabilities_and_embeddings_model(self._model)
        return self._two_outputs

    def _predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from altoolkit.model import probabilities_and_embeddings

        return probabilities_and_embeddings(self._two_output_model(), images, batch_size=self.batch_size)

    def _cache_file(self, start: int, end: int) -> Path | None:
        if self.cache_dir is None:
            return None
        return self.cache_dir / f"{self.model_digest}_{self.dataset.fingerprint}_{start}-{end}.npz"

    def _check_model_fits_data(self, model) -> None:
        from altoolkit.model import check_input_shape

        check_input_shape(model, self.dataset.image_shape, name=str(self.model_path))
        classes = model.outputs[0].shape[-1]
        if classes != self.dataset.num_classes:
            raise ToolkitError(f"{self.model_path} predicts {classes} classes but the data has "
                               f"{self.dataset.num_classes} ({', '.join(self.dataset.class_names)}): "
                               "pass the --dataset/--classes the model was trained on")


MODEL_OUTPUT_NAMES = ("probabilities", "embeddings")
"""The arrays a streamed pass over a file pool writes, one row per image."""


def streamed_outputs_cached(model_sha256: str, pool, cache_dir: str | os.PathLike) -> bool:
    """True if :func:`streamed_model_outputs` would read this model's outputs for ``pool`` from ``cache_dir``."""
    from altoolkit.feature_cache import pool_array_files

    return all(file.is_file() for file in
               pool_array_files(cache_dir, MODEL_OUTPUT_NAMES, model_output_parts(model_sha256), pool))


def model_output_parts(model_sha256: str) -> dict:
    """What keys a pool's streamed model outputs in the cache: the model file's content."""
    return {"outputs of model": model_sha256}


def streamed_model_outputs(model, model_sha256: str, pool, cache_dir: str | os.PathLike,
                           limit_bytes: int | None = None, *, engine=None,
                           model_path: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities N×K, embeddings N×D) of ``model`` over a streamed file pool
    (:class:`~altoolkit.streaming.FilePool`), one pass in decoded batches, cached under ``cache_dir`` by model
    file and pool content and read back memory-mapped. With ``engine`` (a
    :class:`~altoolkit.ray_engine.RayEngine`), Ray actors load ``model_path`` and run the pass."""
    from altoolkit.feature_cache import DEFAULT_CACHE_LIMIT_BYTES, cached_pool_arrays
    from altoolkit.model import check_input_shape, inference_function, probabilities_and_embeddings_model

    two_outputs = model if len(model.outputs) == 2 else probabilities_and_embeddings_model(model)
    image_shape = (pool.size, pool.size, 3)
    check_input_shape(two_outputs, image_shape)
    infer = inference_function(two_outputs, image_shape, np.uint8)
    probabilities, embeddings = cached_pool_arrays(
        cache_dir, MODEL_OUTPUT_NAMES, model_output_parts(model_sha256), pool,
        lambda batch: [output.numpy() for output in infer(batch)],
        limit_bytes=DEFAULT_CACHE_LIMIT_BYTES if limit_bytes is None else limit_bytes, engine=engine,
        ray_task=lambda: ("model", str(Path(model_path).resolve())))
    return probabilities, embeddings
