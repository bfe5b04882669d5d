"""The one place datasets are loaded: CIFAR-10, Fashion-MNIST, scikit-learn digits, image folders, .npz files.

Every loader returns a :class:`Dataset` of uint8 channels-last RGB images resized to ``image_size``, integer
labels ``0..K-1`` and class names. Image order is fixed (documented per source in the README), so an index
means the same image in every module and every run; the labeled set is always the first ``labeled_size``
training images and a pool is a contiguous index range after it.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from altoolkit.errors import ToolkitError
from altoolkit.file_images import FileImages, ImageFileList
from altoolkit.limits import check_image_size, check_resized_fit, checked_class_names, listed_names
from altoolkit.sources import load_cifar10, load_digits, load_fashion_mnist, load_folder, load_npz
from altoolkit.validation import short_repr

DATASET_NAMES = ("cifar10", "fashion_mnist", "digits", "folder", "npz")
DEFAULT_IMAGE_SIZE = 32
UNLABELED = -1
"""Training label of an image nobody has labeled yet (allowed in .npz ``y_train``: a pool without labels)."""
DEFAULT_CLASSES = {"cifar10": "airplane,automobile,ship"}
"""Classes an entry point keeps when none are given: the design's three CIFAR-10 classes; every class elsewhere."""


@dataclass(frozen=True)
class Dataset:
    """Train/test images (uint8, N×H×W×3), integer labels and class names of one data source."""

    name: str
    source: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    first_indices: tuple[int, ...] = ()
    """The original indices of the images a cold start moved to the front (:meth:`with_first`); empty if none."""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])

    def with_first(self, indices: Sequence[int], prefix: int) -> "Dataset":
        """The same data with training images ``indices`` (all below ``prefix``) moved to the front, in that
        order, and the rest of ``0..prefix-1`` after them in their order; images from ``prefix`` on keep their
        places. How a cold start makes its chosen images the labeled set (the first ``len(indices)``) without
        moving the pool."""
        chosen = np.asarray(indices, dtype=np.int64)
        if chosen.ndim != 1 or len(np.unique(chosen)) != len(chosen) or (
                len(chosen) and (chosen.min() < 0 or chosen.max() >= prefix or prefix > len(self.x_train))):
            raise ToolkitError(f"the images to put first must be distinct training indices below {prefix}, got "
                               f"{short_repr(chosen.tolist())}")
        rest = np.setdiff1d(np.arange(prefix), chosen)
        order = np.concatenate([chosen, rest, np.arange(prefix, len(self.x_train))])
        return Dataset(self.name, f"{self.source}, {len(chosen)} chosen images first", self.x_train.take(order, axis=0),
                       self.y_train[order], self.x_test, self.y_test, self.class_names,
                       tuple(int(index) for index in chosen))

    @functools.cached_property
    def fingerprint(self) -> str:
        """A short SHA-256 of all images, labels and class names: two runs on the same data share it. Images kept
        in files count by their files' content hashes, read in chunks."""
        digest = hashlib.sha256()
        for array in (self.x_train, self.y_train, self.x_test, self.y_test):
            digest.update(str(array.shape).encode())
            if isinstance(array, FileImages):
                digest.update(array.digest.encode())
                continue
            for start in range(0, len(array), 4096):
                digest.update(np.ascontiguousarray(array[start:start + 4096]).tobytes())
        digest.update("\n".join(self.class_names).encode())
        return digest.hexdigest()[:16]


def load_dataset(name: str = "cifar10", *, path: str | os.PathLike | None = None,
                 classes: Sequence[int | str] | None = None, image_size: int = DEFAULT_IMAGE_SIZE,
                 data_dir: str | os.PathLike | None = None) -> Dataset:
    """Load a dataset by name, keep ``classes`` (remapped to 0..K-1 in the order given) and resize images.

    Args:
        name: one of ``DATASET_NAMES``.
        path: the archive, folder or file to read (required for ``folder`` and ``npz``; optional for
            ``cifar10`` and ``fashion_mnist``, which otherwise look in their documented places).
        classes: class ids or names to keep, e.g. ``[0, 1, 8]`` or ``["airplane", "automobile", "ship"]``.
        image_size: side of the square images returned, ``MIN_IMAGE_SIZE``..``MAX_IMAGE_SIZE``
            (MobileNetV3 needs at least 32).
        data_dir: where ``cifar10`` looks for its archive when ``path`` is not given
            (default: ``$AL_DATA_DIR`` or ``./data``).
    """
    if name not in DATASET_NAMES:
        raise ToolkitError(f"unknown dataset {short_repr(name)}: choose one of {', '.join(DATASET_NAMES)}")
    size = check_image_size(image_size)
    if name in ("folder", "npz") and path is None:
        raise ToolkitError(f"dataset {name!r} needs a path: pass --data-path (or path=...)")
    loaders = {"cifar10": lambda: load_cifar10(path, data_dir), "fashion_mnist": lambda: load_fashion_mnist(path),
               "digits": load_digits, "folder": lambda: folder_images(load_folder(path), size),
               "npz": lambda: load_npz(path)}
    raw = loaders[name]()
    raw["class_names"] = checked_class_names(raw["class_names"], raw["source"])
    _check_labels(raw)
    dataset = Dataset(name=name, **raw)
    if classes is not None:
        dataset = select_classes(dataset, classes)
    if isinstance(dataset.x_train, FileImages):
        return dataset  # decoded at ``size`` as RGB when read, never held whole
    check_resized_fit(len(dataset.x_train) + len(dataset.x_test), size, dataset.source)
    return _as_rgb_size(dataset, size)


def folder_images(listed: dict, size: int) -> dict:
    """The folder reader's file lists as :class:`FileImages` of one listing (each file's header read once)."""
    root, train, test = listed.pop("root"), listed["x_train"], listed["x_test"]
    images = FileImages(ImageFileList.of_paths(root, [*train, *test]), size)
    return {**listed, "x_train": images.take(np.arange(len(train))),
            "x_test": images.take(np.arange(len(train), len(train) + len(test)))}


def check_dataset_argument(dataset, name_option: str | None = "dataset_name=") -> None:
    """A TypeError unless ``dataset`` is None or a loaded :class:`Dataset`: a name belongs in ``name_option``.

    Called first by the Python API functions that take ``dataset=``, so a name passed there is a clear error
    instead of an AttributeError deep inside.
    """
    if dataset is not None and not isinstance(dataset, Dataset):
        remedy = f"pass a dataset's name as {name_option}" if name_option else "load it with load_dataset(name)"
        raise TypeError(f"dataset= takes a Dataset loaded by altoolkit.data.load_dataset, not the "
                        f"{type(dataset).__name__} {short_repr(dataset)}: {remedy}")


def select_classes(dataset: Dataset, classes: Sequence[int | str]) -> Dataset:
    """Keep only ``classes`` (ids or names), relabelled 0..K-1 in the given order, image order preserved.

    Unlabeled training images (label ``UNLABELED``) are kept: their class is unknown.
    """
    if len(classes) == 0:
        raise ToolkitError("the class list is empty: give at least one class id or name")
    ids = []
    for item in classes:
        ids.append(_class_id(dataset, item))
    if len(set(ids)) != len(ids):
        twice = next(item for index, item in enumerate(classes) if ids.index(ids[index]) != index)
        raise ToolkitError(f"the class list names a class twice ({short_repr(twice)}): give each class once")
    lookup = np.full(dataset.num_classes, -1, dtype=np.int64)
    lookup[ids] = np.arange(len(ids))
    unlabeled = dataset.y_train == UNLABELED
    keep_train = unlabeled | (lookup[np.where(unlabeled, 0, dataset.y_train)] >= 0)
    keep_test = lookup[dataset.y_test] >= 0
    return Dataset(name=dataset.name, source=dataset.source,
                   x_train=dataset.x_train.take(np.flatnonzero(keep_train), axis=0),
                   y_train=np.where(unlabeled[keep_train], UNLABELED, lookup[dataset.y_train[keep_train]]),
                   x_test=dataset.x_test.take(np.flatnonzero(keep_test), axis=0),
                   y_test=lookup[dataset.y_test[keep_test]],
                   class_names=tuple(dataset.class_names[i] for i in ids))


def dataset_classes(name: str, classes: str | None) -> list[int | str] | None:
    """The class list an entry point uses: explicit (``"0,1,8"`` or names), ``"all"``, or the dataset's default."""
    if classes is not None and classes.strip().lower() == "all":
        return None
    return parse_classes(classes if classes is not None else DEFAULT_CLASSES.get(name))


def parse_classes(text: str | None) -> list[int | str] | None:
    """Parse a command-line class list such as ``0,1,8`` or ``airplane,automobile,ship``."""
    if text is None or not text.strip():
        return None
    items: list[int | str] = []
    for part in text.split(","):
        part = part.strip()
        if part:
            items.append(_class_number(part) if part.lstrip("-").isdigit() else part)
    return items


def _class_number(text: str) -> int:
    if len(text) > 18:
        raise ToolkitError(f"class id {short_repr(text)} is out of range: give ids from 0 to the number of classes - 1")
    return int(text)


def _class_id(dataset: Dataset, item: int | str) -> int:
    if isinstance(item, (int, np.integer)):
        if not 0 <= int(item) < dataset.num_classes:
            raise ToolkitError(f"class id {short_repr(item)} is out of range: {dataset.name} has classes "
                               f"0..{dataset.num_classes - 1}")
        return int(item)
    if item not in dataset.class_names:
        raise ToolkitError(f"unknown class {short_repr(item)}: {dataset.name} has {listed_names(dataset.class_names)}")
    return dataset.class_names.index(item)


def _check_labels(raw: dict) -> None:
    """One label per image, each in 0..K-1 for the K class names, or an error naming the source."""
    last = len(raw["class_names"]) - 1
    for split in ("train", "test"):
        x, y = raw[f"x_{split}"], np.asarray(raw[f"y_{split}"])
        if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or y.size == 0):
            raise ToolkitError(f"{raw['source']}: {split} labels must be a list of integers, got {y.dtype} "
                               f"values of shape {short_repr(y.shape)}")
        if len(x) != len(y):
            raise ToolkitError(f"{raw['source']}: {len(x)} {split} images but {len(y)} {split} labels")
        lowest = UNLABELED if (split == "train" and raw["source"].startswith("npz")) else 0
        if len(y) and (int(y.min()) < lowest or int(y.max()) > last):
            raise ToolkitError(f"{raw['source']}: {split} labels must lie in 0..{last} (one per class name), "
                               f"found {int(y.min())}..{int(y.max())}")


def _as_rgb_size(dataset: Dataset, size: int) -> Dataset:
    return Dataset(name=dataset.name, source=dataset.source,
                   x_train=_to_rgb_uint8(dataset.x_train, size), y_train=dataset.y_train.astype(np.int64),
                   x_test=_to_rgb_uint8(dataset.x_test, size), y_test=dataset.y_test.astype(np.int64),
                   class_names=dataset.class_names)


_RESIZE_CHUNK_BYTES = 256 * 2**20
"""Float32 working memory of one resize step: large images are resized a few at a time."""


def _to_rgb_uint8(images: np.ndarray, size: int) -> np.ndarray:
    """Grayscale → RGB and bilinear resize to size×size, keeping uint8 (done in chunks to bound memory)."""
    if not len(images):
        return np.zeros((0, size, size, 3), dtype=np.uint8)
    if images.ndim == 3:
        images = images[..., None]
    if images.shape[1:3] != (size, size):
        import tensorflow as tf

        pixels = max(images.shape[1] * images.shape[2], size * size) * images.shape[3]
        step = max(1, _RESIZE_CHUNK_BYTES // (pixels * 4))
        chunks = []
        for start in range(0, len(images), step):
            resized = tf.image.resize(images[start:start + step], (size, size), method="bilinear").numpy()
            chunks.append(np.clip(np.rint(resized), 0, 255).astype(np.uint8))
        images = np.concatenate(chunks)
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    return np.ascontiguousarray(images, dtype=np.uint8)
