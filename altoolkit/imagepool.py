"""Unlabeled pools from the user's own images: a folder of image files (sub-folders allowed, no labels needed).

Every image gets a stable id from its content hash and its path relative to the pool folder, so labels survive
re-runs and a pool folder that moved (the ids do not depend on where the folder is).
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np

from altoolkit.data import FOLDER_ORDER_SEED, IMAGE_SUFFIXES, Dataset, read_image
from altoolkit.errors import ToolkitError
from altoolkit.files import file_sha256
from altoolkit.labelstore import LabelStore, StoredImage

IMAGE_ID_LENGTH = 20


def image_id(sha256: str, relative_path: str) -> str:
    """The stable id of a pool image: 20 hex digits of SHA-256 over its content hash and relative path."""
    return hashlib.sha256(f"{sha256}\n{relative_path}".encode()).hexdigest()[:IMAGE_ID_LENGTH]


def is_image_id(text: str) -> bool:
    """True for a well-formed image id (the labeling server accepts nothing else in its image route)."""
    return len(text) == IMAGE_ID_LENGTH and all(character in "0123456789abcdef" for character in text)


def scan_pool(folder: str | Path) -> list[StoredImage]:
    """Every image file under ``folder`` (recursively, hidden entries skipped), sorted by relative path."""
    root = Path(folder)
    if not root.is_dir():
        raise ToolkitError(f"pool folder {root} not found: give the folder holding the unlabeled images")
    files = sorted(path for path in root.rglob("*")
                   if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES
                   and not any(part.startswith(".") for part in path.relative_to(root).parts))
    if not files:
        raise ToolkitError(f"pool folder {root} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    images = []
    for file in files:
        relative = file.relative_to(root).as_posix()
        digest = file_sha256(file)
        images.append(StoredImage(image_id(digest, relative), relative, digest))
    return images


def read_pool_images(root: str | Path, images: list[StoredImage], size: int) -> np.ndarray:
    """Decode the given pool images to uint8 RGB size×size (N×size×size×3), in order."""
    root = Path(root)
    if not images:
        return np.empty((0, size, size, 3), np.uint8)
    return np.stack([read_image(pool_file(root, image), size) for image in images])


def pool_file(root: str | Path, image: StoredImage) -> Path:
    """The file of ``image`` under the pool folder ``root``; an error when it is missing or was changed."""
    file = Path(root) / image.relative_path
    if not file.is_file():
        raise ToolkitError(f"pool image {image.relative_path} is missing from {root}: pass the pool folder's "
                           "current location with --pool")
    return file


def store_labeled_images(store: LabelStore, pool_root: str | Path, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Every pool image with a current label in ``store``: (images N×size×size×3 uint8, class ids), by path."""
    labels = store.current_labels()
    images = [image for image in store.images() if image.image_id in labels]
    class_ids = {name: index for index, name in enumerate(store.class_names)}
    return (read_pool_images(pool_root, images, size),
            np.asarray([class_ids[labels[image.image_id]] for image in images], dtype=np.int64))


def with_store_labels(dataset: Dataset, store: LabelStore, pool_root: str | Path) -> Dataset:
    """``dataset`` (a labeled folder) with every image labeled in the store added to its training split.

    The combined training set is shuffled with a fixed seed, so the validation part carved from its end holds
    folder and store images alike; the test split is the folder's own, unchanged.
    """
    if tuple(dataset.class_names) != tuple(store.class_names):
        raise ToolkitError(f"the labeled folder's classes ({', '.join(dataset.class_names)}) differ from the label "
                           f"store's ({', '.join(store.class_names)}): use the folder the project was made with")
    images, labels = store_labeled_images(store, pool_root, dataset.image_shape[0])
    x_train = np.concatenate([dataset.x_train, images])
    y_train = np.concatenate([dataset.y_train, labels])
    order = np.random.default_rng(FOLDER_ORDER_SEED).permutation(len(x_train))
    return dataclasses.replace(dataset, x_train=x_train[order], y_train=y_train[order],
                               source=f"{dataset.source} + {len(labels)} labels from {store.path}")
