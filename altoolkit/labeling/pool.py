"""Unlabeled pools from the user's own images: a folder of image files (sub-folders allowed, no labels needed).

Every image gets a stable id from its content hash and its path relative to the pool folder, so labels survive
re-runs and a pool folder that moved (the ids do not depend on where the folder is).
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Mapping

import numpy as np

from altoolkit.data import Dataset
from altoolkit.sources import FOLDER_ORDER_SEED, read_image
from altoolkit.errors import ToolkitError
from altoolkit.files import file_sha256
from altoolkit.labeling.schema import STORE_FILENAME
from altoolkit.labeling.store import LabelStore, StoredImage
from altoolkit.streaming import DECODE_WORKERS, FilePool, PoolFile, hash_pool_files, list_image_files

IMAGE_ID_LENGTH = 20
SHOWN_CHANGED_FILES = 5
"""How many changed or missing files an error or warning names before it says how many more there are."""
SKIP_CHANGED_OPTION = "--skip-changed-images"
"""The option of ``train.py --label-store`` and ``label.py select`` that leaves out labels of changed files."""


def image_id(sha256: str, relative_path: str) -> str:
    """The stable id of a pool image: 20 hex digits of SHA-256 over its content hash and relative path."""
    return hashlib.sha256(f"{sha256}\n{relative_path}".encode()).hexdigest()[:IMAGE_ID_LENGTH]


def is_image_id(text: str) -> bool:
    """True for a well-formed image id (the labeling server accepts nothing else in its image route)."""
    return len(text) == IMAGE_ID_LENGTH and all(character in "0123456789abcdef" for character in text)


def scan_pool(folder: str | Path, known: Mapping[str, tuple[int, int, str]] | None = None) -> list[StoredImage]:
    """Every image file under ``folder`` (recursively, hidden entries skipped), sorted by relative path; files
    whose size and modification time ``known`` records keep their recorded hash, the rest are hashed."""
    return [_stored(file) for file in hash_pool_files(folder, list_image_files(folder), known)]


def stored_images(pool: FilePool) -> list[StoredImage]:
    """The label store's view of a scanned file pool: each file with its stable id, in the pool's order."""
    return [_stored(file) for file in pool.files]


def _stored(file: PoolFile) -> StoredImage:
    return StoredImage(image_id(file.sha256, file.relative_path), file.relative_path, file.sha256)


def recorded_pool_hashes(project: str | Path, folder: str | Path) -> dict[str, tuple[int, int, str]]:
    """The file hashes the project's store recorded at its last scan of this same pool folder (empty for a new
    project, or a pool at another place: a moved pool is hashed again once)."""
    if not (Path(project) / STORE_FILENAME).is_file():
        return {}
    with LabelStore(project, read_only=True) as store:
        if store.get_meta("pool") != str(Path(folder).resolve()):
            return {}
        return store.pool_file_hashes()


def read_pool_images(root: str | Path, images: list[StoredImage], size: int) -> np.ndarray:
    """Decode the given pool images to uint8 RGB size×size (N×size×size×3), in order, each checked by pool_file
    (decoded by a few threads: hashing and decoding release the GIL)."""
    root = Path(root)
    if not images:
        return np.empty((0, size, size, 3), np.uint8)
    with ThreadPoolExecutor(DECODE_WORKERS) as executor:
        return np.stack(list(executor.map(lambda image: read_image(pool_file(root, image), size), images)))


def pool_file(root: str | Path, image: StoredImage) -> Path:
    """The file of ``image`` under the pool folder ``root``; an error when it is missing or was changed.

    A changed file holds other content than the image that was scored and labeled under this id: using it would
    apply the image's label, or its prediction, to another picture.
    """
    problem = pool_image_problem(root, image)
    if problem == "missing":
        raise ToolkitError(f"pool image {_shown_path(image)} is missing from {root}: pass the pool folder's "
                           "current location with --pool")
    if problem == "changed":
        raise ToolkitError(f"pool image {_shown_path(image)} changed since it was selected: restore it, or select "
                           "a new round")
    return Path(root) / image.relative_path


def pool_image_problem(root: str | Path, image: StoredImage) -> str | None:
    """"missing" (no file at the image's path), "changed" (other content than its stored hash) or None."""
    file = Path(root) / image.relative_path
    if not file.is_file():
        return "missing"
    try:
        digest = file_sha256(file)
    except OSError:
        return "missing"
    return None if digest == image.sha256 else "changed"


def changed_pool_images(root: str | Path, images: list[StoredImage]) -> list[tuple[StoredImage, str]]:
    """(image, "missing" or "changed") for every image whose file no longer holds the content it was recorded with."""
    found = ((image, pool_image_problem(root, image)) for image in images)
    return [(image, problem) for image, problem in found if problem is not None]


def describe_changed(changed: list[tuple[StoredImage, str]]) -> str:
    """``a.png (changed), b/c.png (missing)`` for the first few, then how many more: short enough for one line."""
    shown = ", ".join(f"{_shown_path(image)} ({problem})" for image, problem in changed[:SHOWN_CHANGED_FILES])
    more = len(changed) - SHOWN_CHANGED_FILES
    return shown + (f" and {more} more" if more > 0 else "")


def check_unchanged(root: str | Path, images: list[StoredImage], what: str, remedy: str) -> None:
    """An error naming every image of ``images`` whose file is missing or changed (``what`` names the images)."""
    changed = changed_pool_images(root, images)
    if changed:
        raise ToolkitError(f"{len(changed)} {what} changed or missing in {root} since they were recorded: "
                           f"{describe_changed(changed)}: {remedy}")


def _shown_path(image: StoredImage, limit: int = 80) -> str:
    """The image's relative path for a one-line message: control characters escaped, cut to ``limit``."""
    path = printable(image.relative_path)
    return path if len(path) <= limit else path[:limit] + "…"


def printable(text: str) -> str:
    """``text`` with control characters (a newline in a file name, say) written as escapes, so it stays one line."""
    return "".join(character if character.isprintable() else repr(character)[1:-1] for character in text)


def store_labeled_images(store: LabelStore, pool_root: str | Path, size: int, *,
                         skip_changed: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Every pool image with a current label in ``store``: (images N×size×size×3 uint8, class ids), by path.

    A labeled image whose file is missing or now holds other content is an error naming the files (its label
    belongs to the picture that was labeled, not to whatever sits at that path now); with ``skip_changed`` such
    images are left out and one warning line on stderr names them.
    """
    labels = store.current_labels()
    images = [image for image in store.images() if image.image_id in labels]
    changed = changed_pool_images(pool_root, images)
    if changed and not skip_changed:
        raise _changed_labeled_error(changed, pool_root)
    if changed:
        print(f"warning: left out the labels of {len(changed)} changed or missing pool images: "
              f"{describe_changed(changed)}", file=sys.stderr)
        skipped = {image.image_id for image, _ in changed}
        images = [image for image in images if image.image_id not in skipped]
    class_ids = {name: index for index, name in enumerate(store.class_names)}
    return (read_pool_images(pool_root, images, size),
            np.asarray([class_ids[labels[image.image_id]] for image in images], dtype=np.int64))


def check_labeled_pool_files(store: LabelStore, pool_root: str | Path) -> None:
    """An error naming the labeled pool images whose files are missing or changed (see
    :func:`store_labeled_images`), without decoding anything."""
    labels = store.current_labels()
    changed = changed_pool_images(pool_root, [image for image in store.images() if image.image_id in labels])
    if changed:
        raise _changed_labeled_error(changed, pool_root)


def _changed_labeled_error(changed: list[tuple[StoredImage, str]], pool_root: str | Path) -> ToolkitError:
    return ToolkitError(f"{len(changed)} labeled pool images changed or are missing in {pool_root} since they were "
                        f"labeled: {describe_changed(changed)}: restore them (or pass the pool's current location "
                        f"with --pool), or pass {SKIP_CHANGED_OPTION} to leave their labels out")


def with_store_labels(dataset: Dataset, store: LabelStore, pool_root: str | Path, *,
                      skip_changed: bool = False) -> Dataset:
    """``dataset`` (a labeled folder) with every image labeled in the store added to its training split.

    The combined training set is shuffled with a fixed seed, so the validation part carved from its end holds
    folder and store images alike; the test split is the folder's own, unchanged. Labeled images whose files
    changed are refused or, with ``skip_changed``, left out (see :func:`store_labeled_images`).
    """
    if tuple(dataset.class_names) != tuple(store.class_names):
        raise ToolkitError(f"the labeled folder's classes ({', '.join(dataset.class_names)}) differ from the label "
                           f"store's ({', '.join(store.class_names)}): use the folder the project was made with")
    images, labels = store_labeled_images(store, pool_root, dataset.image_shape[0], skip_changed=skip_changed)
    x_train = np.concatenate([dataset.x_train, images])
    y_train = np.concatenate([dataset.y_train, labels])
    order = np.random.default_rng(FOLDER_ORDER_SEED).permutation(len(x_train))
    return dataclasses.replace(dataset, x_train=x_train[order], y_train=y_train[order],
                               source=f"{dataset.source} + {len(labels)} labels from {store.path}")
