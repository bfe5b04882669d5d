"""The one place datasets are loaded: CIFAR-10, Fashion-MNIST, scikit-learn digits, image folders, .npz files.

Every loader returns a :class:`Dataset` of uint8 channels-last RGB images resized to ``image_size``, integer
labels ``0..K-1`` and class names. Image order is fixed (documented per source in the README), so an index
means the same image in every module and every run; the labeled set is always the first ``labeled_size``
training images and a pool is a contiguous index range after it.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import os
import numbers
import pickle
import tarfile
import unicodedata
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from altoolkit.errors import ToolkitError
from altoolkit.validation import _shown

DATASET_NAMES = ("cifar10", "fashion_mnist", "digits", "folder", "npz")
DEFAULT_IMAGE_SIZE = 32
DEFAULT_DATA_DIR = Path("data")
FASHION_MNIST_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
DIGITS_TRAIN_SIZE = 1347
FOLDER_TEST_FRACTION = 0.2
FOLDER_ORDER_SEED = 0
UNLABELED = -1
"""Training label of an image nobody has labeled yet (allowed in .npz ``y_train``: a pool without labels)."""

MIN_IMAGE_SIZE = 8
MAX_IMAGE_SIZE = 512
"""Largest ``image_size``: over twice the 224 of ImageNet-pretrained MobileNetV3; 4096 would need 90 GB for digits."""
MAX_IMAGE_PIXELS = 8192 * 8192
"""Most pixels (width × height) an image file may have, checked on its header before it is decoded.

About 67 megapixels: above the 50 MP of today's largest phone photos and the 61 MP of high-end cameras, while a
decompression bomb (a small file claiming 30000×30000 pixels) is refused instead of filling memory; a decoded
image at the limit takes 200 MB. Raise it with the environment variable ``AL_MAX_IMAGE_PIXELS``. The same limit
applies to the height × width of images in .npz and idx files.
"""
MAX_IMAGE_PIXELS_VARIABLE = "AL_MAX_IMAGE_PIXELS"
_PIXEL_LIMIT_ADVICE = (f"(a guard against decompression bombs): shrink the image, or raise the limit with "
                       f"{MAX_IMAGE_PIXELS_VARIABLE}=<pixels>")
MAX_CLASSES = 1000
"""Most classes a dataset may have (ImageNet's 1000): more is a stray label value, not a class list.

Without ``class_names`` an .npz gets one class per label value up to the largest, so one label of 2**40 would
otherwise invent a trillion classes. Raise it with the environment variable ``AL_MAX_CLASSES``.
"""
MAX_CLASSES_VARIABLE = "AL_MAX_CLASSES"
MAX_CLASS_NAME_LENGTH = 100
"""Longest class name: names become file names and table headers."""
MEMORY_FRACTION = 0.5
"""Share of this machine's memory (or its container's limit) that loaded images may take, checked before loading
or resizing them: a header promising a huge array, or too large an image size, is an error instead of a hang."""
MAX_CIFAR10_FILE_BYTES = 64 * 2**20
"""Largest file read from a CIFAR-10 archive or folder (the official batches are 30 MB each)."""
MAX_CIFAR10_ARCHIVE_BYTES = 512 * 2**20
"""Most data unpacked from a CIFAR-10 archive before its batches are found (the official one holds 178 MB)."""

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
FASHION_MNIST_CLASSES = ("t-shirt/top", "trouser", "pullover", "dress", "coat",
                         "sandal", "shirt", "sneaker", "bag", "ankle boot")


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

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])

    @functools.cached_property
    def fingerprint(self) -> str:
        """A short SHA-256 of all images, labels and class names: two runs on the same data share it."""
        digest = hashlib.sha256()
        for array in (self.x_train, self.y_train, self.x_test, self.y_test):
            digest.update(str(array.shape).encode())
            digest.update(np.ascontiguousarray(array).tobytes())
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
        raise ToolkitError(f"unknown dataset {_shown(name)}: choose one of {', '.join(DATASET_NAMES)}")
    size = check_image_size(image_size)
    if name in ("folder", "npz") and path is None:
        raise ToolkitError(f"dataset {name!r} needs a path: pass --data-path (or path=...)")
    loaders = {"cifar10": lambda: _load_cifar10(path, data_dir), "fashion_mnist": lambda: _load_fashion_mnist(path),
               "digits": _load_digits, "folder": lambda: _load_folder(path, size), "npz": lambda: _load_npz(path)}
    raw = loaders[name]()
    raw["class_names"] = _checked_class_names(raw["class_names"], raw["source"])
    _check_labels(raw)
    dataset = Dataset(name=name, **raw)
    if classes is not None:
        dataset = select_classes(dataset, classes)
    _check_resized_fit(len(dataset.x_train) + len(dataset.x_test), size, dataset.source)
    return _as_rgb_size(dataset, size)


def check_image_size(value, name: str = "image size") -> int:
    """``value`` as an int in ``MIN_IMAGE_SIZE``..``MAX_IMAGE_SIZE`` (the side of the square images)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) \
            or not MIN_IMAGE_SIZE <= int(value) <= MAX_IMAGE_SIZE:
        raise ToolkitError(f"{name} must be an integer from {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE}, "
                           f"got {_shown(value)}")
    return int(value)


def check_dataset_argument(dataset, name_option: str | None = "dataset_name=") -> None:
    """A TypeError unless ``dataset`` is None or a loaded :class:`Dataset`: a name belongs in ``name_option``.

    Called first by the Python API functions that take ``dataset=``, so a name passed there is a clear error
    instead of an AttributeError deep inside.
    """
    if dataset is not None and not isinstance(dataset, Dataset):
        remedy = f"pass a dataset's name as {name_option}" if name_option else "load it with load_dataset(name)"
        raise TypeError(f"dataset= takes a Dataset loaded by altoolkit.data.load_dataset, not the "
                        f"{type(dataset).__name__} {_shown(dataset)}: {remedy}")


def max_image_pixels() -> int:
    """The pixel limit in force: ``$AL_MAX_IMAGE_PIXELS`` if set, else ``MAX_IMAGE_PIXELS``."""
    return _limit_from_environment(MAX_IMAGE_PIXELS_VARIABLE, MAX_IMAGE_PIXELS)


def max_classes() -> int:
    """The class limit in force: ``$AL_MAX_CLASSES`` if set, else ``MAX_CLASSES``."""
    return _limit_from_environment(MAX_CLASSES_VARIABLE, MAX_CLASSES)


def _limit_from_environment(variable: str, default: int) -> int:
    """A positive integer from the environment variable, ``default`` when it is unset or empty."""
    text = os.environ.get(variable, "").strip()
    if not text:
        return default
    if not text.isdigit() or len(text) > 18 or int(text) < 1:
        raise ToolkitError(f"the environment variable {variable} must be a positive integer, got {_shown(text)}: "
                           f"fix or unset it (default {default})")
    return int(text)


def memory_budget() -> int:
    """Bytes that loaded images may take: ``MEMORY_FRACTION`` of the machine's memory or its container's limit."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows) or no such setting: nothing to go by
        return 2**63
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
    except OSError:
        limit = "max"
    if limit.isdigit():
        total = min(total, int(limit))
    return int(total * MEMORY_FRACTION)


def _check_fits_in_memory(nbytes: int, what: str) -> None:
    """An error before allocating ``nbytes`` that would not fit in :func:`memory_budget`."""
    budget = memory_budget()
    if nbytes > budget:
        raise ToolkitError(f"{what} needs {_byte_size(nbytes)} of memory, more than {_byte_size(budget)} "
                           f"({MEMORY_FRACTION:.0%} of this machine's): use a smaller file, image size or class list")


def _check_resized_fit(count: int, size: int, source: str) -> None:
    _check_fits_in_memory(count * size * size * 3, f"{source} as {count} images of {size}×{size}")


def _byte_size(nbytes: int) -> str:
    for unit, factor in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= factor:
            return f"{nbytes / factor:,.1f} {unit}"
    return f"{nbytes} bytes"


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
        raise ToolkitError(f"the class list names a class twice ({_shown(twice)}): give each class once")
    lookup = np.full(dataset.num_classes, -1, dtype=np.int64)
    lookup[ids] = np.arange(len(ids))
    unlabeled = dataset.y_train == UNLABELED
    keep_train = unlabeled | (lookup[np.where(unlabeled, 0, dataset.y_train)] >= 0)
    keep_test = lookup[dataset.y_test] >= 0
    return Dataset(name=dataset.name, source=dataset.source,
                   x_train=dataset.x_train[keep_train],
                   y_train=np.where(unlabeled[keep_train], UNLABELED, lookup[dataset.y_train[keep_train]]),
                   x_test=dataset.x_test[keep_test], y_test=lookup[dataset.y_test[keep_test]],
                   class_names=tuple(dataset.class_names[i] for i in ids))


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
        raise ToolkitError(f"class id {_shown(text)} is out of range: give ids from 0 to the number of classes - 1")
    return int(text)


def _class_id(dataset: Dataset, item: int | str) -> int:
    if isinstance(item, (int, np.integer)):
        if not 0 <= int(item) < dataset.num_classes:
            raise ToolkitError(f"class id {_shown(item)} is out of range: {dataset.name} has classes "
                               f"0..{dataset.num_classes - 1}")
        return int(item)
    if item not in dataset.class_names:
        raise ToolkitError(f"unknown class {_shown(item)}: {dataset.name} has {_listed(dataset.class_names)}")
    return dataset.class_names.index(item)


def _listed(names: Sequence[str], limit: int = 12) -> str:
    """Names for a one-line message: all of a short list, the first ``limit`` and a count of a long one."""
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown}, … ({len(names)} classes)"


def _display(path, limit: int = 240) -> str:
    """A path or name fit for a one-line message: control characters escaped, the middle of a long one elided."""
    text = str(path)
    if not text.isprintable():
        text = repr(text)[1:-1]
    return text if len(text) <= limit else f"{text[:limit // 2]}…{text[-limit // 2:]}"


def _checked_class_names(names: Sequence, source: str) -> tuple[str, ...]:
    """``names`` as a tuple of distinct, printable, non-empty strings, at most :func:`max_classes` of them."""
    limit = max_classes()
    if len(names) > limit:
        raise ToolkitError(f"{source} has {len(names):,} classes, more than the limit of {limit:,} "
                           f"({MAX_CLASSES_VARIABLE}): check the labels or class names")
    if not len(names):
        raise ToolkitError(f"{source} names no classes: give at least one class name")
    seen: set[str] = set()
    for name in names:
        if not isinstance(name, str):
            raise ToolkitError(f"{source}: class names must be strings, got {_shown(name)}")
        if not name.strip() or len(name) > MAX_CLASS_NAME_LENGTH \
                or any(unicodedata.category(character) == "Cc" for character in name):
            raise ToolkitError(f"{source}: class name {_shown(name)} must be 1 to {MAX_CLASS_NAME_LENGTH} "
                               "characters without control characters (such as line breaks): rename the class")
        if name in seen:
            raise ToolkitError(f"{source}: the class name {_shown(name)} appears twice: class names must be "
                               "distinct, one per label value")
        seen.add(name)
    return tuple(names)


def _check_labels(raw: dict) -> None:
    """One label per image, each in 0..K-1 for the K class names, or an error naming the source."""
    last = len(raw["class_names"]) - 1
    for split in ("train", "test"):
        x, y = raw[f"x_{split}"], np.asarray(raw[f"y_{split}"])
        if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or y.size == 0):
            raise ToolkitError(f"{raw['source']}: {split} labels must be a list of integers, got {y.dtype} "
                               f"values of shape {_shown(y.shape)}")
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


def _load_digits() -> dict:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    labels = bunch.target.astype(np.int64)
    return dict(source="scikit-learn load_digits (bundled)",
                x_train=images[:DIGITS_TRAIN_SIZE], y_train=labels[:DIGITS_TRAIN_SIZE],
                x_test=images[DIGITS_TRAIN_SIZE:], y_test=labels[DIGITS_TRAIN_SIZE:],
                class_names=tuple(str(d) for d in range(10)))


def _load_cifar10(path, data_dir) -> dict:
    """Local official archive/folder if any, else Keras' download cache, else one error naming both."""
    explicit = path if path is not None else os.environ.get("AL_CIFAR10_PATH")
    if explicit:
        return _read_cifar10(_existing(explicit, "CIFAR-10 archive or folder"))
    base = Path(data_dir or os.environ.get("AL_DATA_DIR") or DEFAULT_DATA_DIR)
    for candidate in (base / "cifar-10-python.tar.gz", base / "cifar-10-batches-py"):
        if candidate.exists():
            return _read_cifar10(candidate)
    try:
        from keras.datasets import cifar10

        (x_train, y_train), (x_test, y_test) = cifar10.load_data()
    except Exception as error:  # Keras raises bare Exception on a failed download
        raise ToolkitError(
            "CIFAR-10 is not available offline and the download failed "
            f"({type(error).__name__}): put the official cifar-10-python.tar.gz (or its extracted "
            f"cifar-10-batches-py/ folder) in {base}/ or pass --data-path / set AL_CIFAR10_PATH, "
            "or connect to the network so keras.datasets.cifar10 can download it") from None
    return dict(source="keras.datasets.cifar10", x_train=x_train, y_train=y_train.reshape(-1),
                x_test=x_test, y_test=y_test.reshape(-1), class_names=CIFAR10_CLASSES)


def _read_cifar10(location: Path) -> dict:
    """Read the official python-version batches from a .tar.gz or folder.

    The batches are pickles; they are unpickled allowing nothing but numpy arrays, lists, dicts, strings and numbers,
    so a doctored archive cannot run code.
    """
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
    shown = _display(location)
    if location.is_dir():
        folder = location / "cifar-10-batches-py" if (location / "cifar-10-batches-py").is_dir() else location
        blobs = {name: _read_cifar10_file(folder, name) for name in names}
    elif location.is_file():
        blobs = _read_cifar10_tar(location, names)
    else:
        raise ToolkitError(f"{shown} is neither a file nor a folder: give cifar-10-python.tar.gz or the extracted "
                           "cifar-10-batches-py/ folder")
    batches = {name: _unpickle(blobs[name], location, name) for name in names}
    train = [_cifar10_batch(batches[name], location, name) for name in names[:5]]
    x_train, y_train = np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train])
    x_test, y_test = _cifar10_batch(batches["test_batch"], location, "test_batch")
    meta = batches["batches.meta"]
    label_names = meta.get(b"label_names") if isinstance(meta, dict) else None
    if not isinstance(label_names, list):
        raise ToolkitError(f"{shown} does not hold CIFAR-10 batches in the official format "
                           "(batches.meta lacks its list label_names)")
    class_names = tuple(_decoded(name) for name in label_names)
    return dict(source=f"CIFAR-10 python version at {shown}", x_train=x_train, y_train=y_train,
                x_test=x_test, y_test=y_test, class_names=class_names)


def _read_cifar10_file(folder: Path, name: str) -> bytes:
    file = folder / name
    if not file.is_file():
        raise ToolkitError(f"{_display(folder)} is not a CIFAR-10 python-version folder: {name} is missing")
    try:
        if file.stat().st_size > MAX_CIFAR10_FILE_BYTES:
            raise ToolkitError(f"{_display(file)} is larger than any CIFAR-10 batch (the limit is "
                               f"{_byte_size(MAX_CIFAR10_FILE_BYTES)}): use the official files")
        return file.read_bytes()
    except OSError as error:
        raise ToolkitError(f"cannot read {_display(file)}: {error.strerror or error}") from None


def _read_cifar10_tar(location: Path, names: list[str]) -> dict[str, bytes]:
    """The named files of a (compressed) tar, without unpacking more than ``MAX_CIFAR10_ARCHIVE_BYTES``."""
    shown = _display(location)
    blobs: dict[str, bytes] = {}
    unpacked = 0
    try:
        with tarfile.open(location, "r:*") as archive:
            while len(blobs) < len(names):
                member = archive.next()
                if member is None:
                    break
                if not member.isfile():
                    continue
                unpacked += member.size
                base = member.name.rsplit("/", 1)[-1]
                if (member.size > MAX_CIFAR10_FILE_BYTES and base in names) or unpacked > MAX_CIFAR10_ARCHIVE_BYTES:
                    raise ToolkitError(f"{shown} holds more data than the CIFAR-10 archive (a file of "
                                       f"{_byte_size(member.size)}; limits {_byte_size(MAX_CIFAR10_FILE_BYTES)} a "
                                       f"batch, {_byte_size(MAX_CIFAR10_ARCHIVE_BYTES)} in all): use the official "
                                       "cifar-10-python.tar.gz")
                if base in names and base not in blobs:
                    blobs[base] = archive.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise ToolkitError(f"cannot read the CIFAR-10 archive {shown}: {_display(str(error), 200)}") from None
    missing = [name for name in names if name not in blobs]
    if missing:
        raise ToolkitError(f"{shown} is not the CIFAR-10 python-version archive: {', '.join(missing)} missing")
    return blobs


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, strings, numbers and numpy arrays; every other global (how a pickle runs code) fails."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise _ForbiddenGlobal(f"{module}.{name}")
        return super().find_class(module, name)


class _ForbiddenGlobal(pickle.UnpicklingError):
    """A pickle asked for a global that plain CIFAR-10 batches never use."""


def _unpickle(blob: bytes, location: Path, name: str) -> dict:
    try:
        return _ArraysOnlyUnpickler(io.BytesIO(blob), encoding="bytes").load()
    except _ForbiddenGlobal as error:
        raise ToolkitError(f"{_display(location)}: batch {name} is not plain data (it asks for "
                           f"{_display(str(error), 80)}, which could run code): use the official CIFAR-10 files"
                           ) from None
    except Exception as error:  # pickle can raise nearly anything on a corrupt file
        raise ToolkitError(f"{_display(location)}: batch {name} is corrupt ({type(error).__name__})") from None


def _cifar10_batch(batch, location: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(images N×32×32×3 uint8, labels) of one unpickled batch, or an error saying what is off."""
    problem = None
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        problem = "no data and labels"
    else:
        data, labels = batch[b"data"], batch[b"labels"]
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            problem = (f"data of {data.dtype} {_shown(data.shape)}" if isinstance(data, np.ndarray)
                       else f"data of type {type(data).__name__}")
        elif isinstance(labels, list) and labels and all(type(label) is int for label in labels) \
                and not -2**63 <= min(labels) <= max(labels) < 2**63:
            problem = f"labels up to {_shown(max(labels), 25)}"
        else:
            try:
                labels = np.asarray(labels)
            except (ValueError, TypeError):
                labels = np.asarray([None])
            if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) or len(labels) != len(data):
                problem = f"{len(data)} images but labels of {labels.dtype} {_shown(labels.shape)}"
    if problem:
        raise ToolkitError(f"{_display(location)} does not hold CIFAR-10 batches in the official format ({name} "
                           f"has {problem}; expected N×3072 uint8 data and N integer labels)")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def _decoded(name):
    """A class name read from a file: bytes decoded as UTF-8 (undecodable bytes escaped), anything else as is."""
    return name.decode("utf-8", errors="backslashreplace") if isinstance(name, bytes) else name


def _load_fashion_mnist(path) -> dict:
    """Debian's dataset-fashion-mnist files (idx format) if present, else keras.datasets.fashion_mnist."""
    if path is not None:
        folder = _existing(path, "Fashion-MNIST folder")
    else:
        folder = Path(os.environ.get("AL_FASHION_MNIST_DIR", FASHION_MNIST_DEBIAN_DIR))
    files = {key: folder / f"{key}-idx{3 if 'images' in key else 1}-ubyte.gz"
             for key in ("train-images", "train-labels", "t10k-images", "t10k-labels")}
    if all(file.is_file() for file in files.values()):
        arrays = {key: _read_idx(file, 3 if "images" in key else 1) for key, file in files.items()}
        return dict(source=f"Fashion-MNIST idx files in {_display(folder)}",
                    x_train=arrays["train-images"], y_train=arrays["train-labels"],
                    x_test=arrays["t10k-images"], y_test=arrays["t10k-labels"], class_names=FASHION_MNIST_CLASSES)
    if path is not None:
        raise ToolkitError(f"{_display(folder)} lacks the Fashion-MNIST idx files (train-images-idx3-ubyte.gz, ...)")
    try:
        from keras.datasets import fashion_mnist

        (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    except Exception as error:  # Keras raises bare Exception on a failed download
        raise ToolkitError(
            f"Fashion-MNIST is not installed and the download failed ({type(error).__name__}): "
            "install Debian's package dataset-fashion-mnist (apt-get install dataset-fashion-mnist) "
            "or pass --data-path to a folder with its idx files") from None
    return dict(source="keras.datasets.fashion_mnist", x_train=x_train, y_train=y_train,
                x_test=x_test, y_test=y_test, class_names=FASHION_MNIST_CLASSES)


def _read_idx(file: Path, ndim: int) -> np.ndarray:
    """Parse one gzip'd idx file (big-endian header: magic, dims) of unsigned bytes with ``ndim`` dimensions.

    The header's shape is checked (pixel limit, memory) before the body is read, and only that many bytes are read.
    """
    shown = _display(file)
    try:
        with gzip.open(file, "rb") as handle:
            magic = handle.read(4)
            if len(magic) < 4 or magic[:3] != b"\x00\x00\x08":
                raise ToolkitError(f"{shown} is not an idx file of unsigned bytes")
            if magic[3] != ndim:
                raise ToolkitError(f"{shown} has {magic[3]} dimensions, expected {ndim} "
                                   f"({'N×H×W images' if ndim == 3 else 'N labels'}): use the Fashion-MNIST files")
            dims = handle.read(4 * ndim)
            if len(dims) < 4 * ndim:
                raise ToolkitError(f"{shown} is truncated: its header ends before the {ndim} dimensions")
            shape = tuple(int.from_bytes(dims[4 * i: 4 + 4 * i], "big") for i in range(ndim))
            if ndim == 3:
                _check_image_shape(shape[1], shape[2], shown)
            count = int(np.prod(shape, dtype=object))
            _check_fits_in_memory(count, f"{shown} (shape {shape})")
            body = handle.read(count + 1)
    except (OSError, EOFError, zlib.error) as error:
        raise ToolkitError(f"cannot read {shown}: {_display(str(error), 200)}") from None
    if len(body) != count:
        state = "truncated" if len(body) < count else "longer than its header says"
        raise ToolkitError(f"{shown} is {state}: expected {count} values, found "
                           f"{len(body) if len(body) < count else 'more'}")
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


def _load_folder(path, size: int) -> dict:
    """Class sub-folders; ``train/`` and ``test/`` splits if present, else a fixed 80/20 split.

    Every file is listed and checked for count and memory before the first image is decoded.
    """
    root = _existing(path, "image folder")
    source = f"image folder {_display(root)}"
    if not root.is_dir():
        raise ToolkitError(f"{_display(root)} is not a folder: give a folder with one sub-folder of images per class")
    if (root / "train").is_dir() and (root / "test").is_dir():
        class_names = _class_folders(root / "train", source)
        unknown = sorted(set(_class_folders(root / "test", source)) - set(class_names))
        if unknown:
            raise ToolkitError(f"{_display(root / 'test')} has classes missing from train/: {_listed(unknown)}")
        train_files = _class_files(root / "train", class_names)
        test_files = _class_files(root / "test", class_names, allow_missing=True)
        _check_resized_fit(len(train_files) + len(test_files), size, source)
        x_train, y_train = _decode_images(train_files, size)
        x_test, y_test = _decode_images(test_files, size)
        order = np.random.default_rng(FOLDER_ORDER_SEED).permutation(len(x_train))
        return dict(source=source, x_train=x_train[order], y_train=y_train[order],
                    x_test=x_test, y_test=y_test, class_names=tuple(class_names))
    class_names = _class_folders(root, source)
    files = _class_files(root, class_names)
    _check_resized_fit(len(files), size, source)
    images, labels = _decode_images(files, size)
    order = np.random.default_rng(FOLDER_ORDER_SEED).permutation(len(images))
    n_test = int(round(len(images) * FOLDER_TEST_FRACTION))
    train_part, test_part = order[:len(order) - n_test], order[len(order) - n_test:]
    return dict(source=source, x_train=images[train_part], y_train=labels[train_part], x_test=images[test_part],
                y_test=labels[test_part], class_names=tuple(class_names))


def _class_folders(root: Path, source: str) -> list[str]:
    names = sorted(entry.name for entry in _folder_entries(root)
                   if entry.is_dir() and not entry.name.startswith("."))
    if not names:
        raise ToolkitError(f"{_display(root)} has no class sub-folders: put each class's images in "
                           "root/<class name>/")
    return list(_checked_class_names(names, source))


def _folder_entries(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError as error:
        raise ToolkitError(f"cannot list the folder {_display(folder)}: {error.strerror or error}; "
                           "check its permissions") from None


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name (the documented order).

    An entry with an image suffix that is no regular file (a broken or looping link, a device, a pipe) is an
    error: skipping it would silently drop an image, and opening a pipe would wait forever.
    """
    files = []
    for entry in _folder_entries(folder):
        if entry.suffix.lower() not in IMAGE_SUFFIXES or entry.is_dir():
            continue
        if not entry.is_file():
            raise ToolkitError(f"{_display(entry)} is not a regular image file (a broken or looping link, a device "
                               "or a pipe): remove it or put the image itself there")
        files.append(entry)
    return files


def _class_files(root: Path, class_names: list[str], allow_missing: bool = False) -> list[tuple[Path, int]]:
    """(file, label) of every image in ``root/<class name>/``, class by class."""
    files = []
    for label, name in enumerate(class_names):
        folder = root / name
        found = list_images(folder) if folder.is_dir() else []
        if not found and not allow_missing:
            raise ToolkitError(f"class folder {_display(folder)} has no images ({', '.join(IMAGE_SUFFIXES)}): "
                               "add images or remove the folder")
        files.extend((file, label) for file in found)
    if not files:
        raise ToolkitError(f"{_display(root)} holds no images")
    return files


def _decode_images(files: list[tuple[Path, int]], size: int) -> tuple[np.ndarray, np.ndarray]:
    images = np.empty((len(files), size, size, 3), dtype=np.uint8)
    for index, (file, _) in enumerate(files):
        images[index] = read_image(file, size)
    return images, np.asarray([label for _, label in files], dtype=np.int64)


def read_image(file: Path, size: int) -> np.ndarray:
    """Decode the first frame of one image file to uint8 RGB size×size; a bad file is an error that names it.

    Width × height is checked on the header, before decoding, against :func:`max_image_pixels`; Pillow's own
    decompression-bomb check is set to the same limit, so no limit of Pillow's contradicts it.
    """
    from PIL import Image

    limit = max_image_pixels()
    Image.MAX_IMAGE_PIXELS = limit
    shown = _display(file)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's notes on odd but readable files would add lines to the output
            with Image.open(file) as image:
                _check_image_shape(image.height, image.width, f"image {shown}")
                rgb = image.convert("RGB")
                if rgb.size != (size, size):
                    rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
                return np.asarray(rgb, dtype=np.uint8)
    except ToolkitError:
        raise
    except Image.DecompressionBombError:
        raise ToolkitError(f"image {shown} has more than twice the limit of {limit:,} pixels "
                           f"{_PIXEL_LIMIT_ADVICE}") from None
    except Exception as error:  # Pillow's decoders raise many exception types on malformed files
        raise ToolkitError(f"cannot read image {shown}: {_display(str(error) or type(error).__name__, 200)}; "
                           "remove or replace the file") from None


def _check_image_shape(height: int, width: int, what: str) -> None:
    """An error unless an image of height × width has at least one pixel and at most :func:`max_image_pixels`."""
    if height < 1 or width < 1:
        raise ToolkitError(f"{what} is {width}×{height} pixels: images need at least one pixel each way")
    limit = max_image_pixels()
    if height * width > limit:
        raise ToolkitError(f"{what} is {width}×{height} = {height * width:,} pixels, more than the limit of "
                           f"{limit:,} {_PIXEL_LIMIT_ADVICE}")


NPZ_ARRAYS = ("x_train", "y_train", "x_test", "y_test")
_NPZ_ADVICE = ("save plain numeric arrays x_train, y_train, x_test, y_test (and a string array class_names) "
               "with numpy.savez")


def _load_npz(path) -> dict:
    """A .npz with x_train, y_train, x_test, y_test (and optional class_names); never unpickles objects.

    Every array's header (dtype, shape) is checked before its data is read, so a file that claims a huge, empty or
    non-numeric array is refused without allocating it; images holding NaN, infinity or values outside 0..255 are
    refused rather than silently clipped.
    """
    file = _existing(path, ".npz file", regular_file=True)
    shown = _display(file)
    try:
        with zipfile.ZipFile(file) as archive:
            members = {name[:-4] if name.endswith(".npy") else name: name for name in archive.namelist()}
            missing = [key for key in NPZ_ARRAYS if key not in members]
            if missing:
                raise ToolkitError(f"{shown} lacks the keys {', '.join(missing)} "
                                   "(expected x_train, y_train, x_test, y_test, optional class_names)")
            keys = [*NPZ_ARRAYS, *(["class_names"] if "class_names" in members else [])]
            headers = {key: _npy_header(archive, members[key]) for key in keys}
            _check_npz_headers(headers, shown)
            arrays = {}
            for key in keys:
                with archive.open(members[key]) as handle:
                    arrays[key] = np.lib.format.read_array(handle, allow_pickle=False)
    except ToolkitError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError, zlib.error, RuntimeError,
            NotImplementedError) as error:
        raise ToolkitError(f"cannot read {shown} as .npz ({_display(str(error), 200)}): {_NPZ_ADVICE}") from None
    for split in ("train", "test"):
        arrays[f"x_{split}"] = _to_uint8(arrays[f"x_{split}"], f"{shown}: x_{split}")
    names = arrays.pop("class_names", None)
    if names is not None:
        class_names = tuple(_decoded(name) if isinstance(name, bytes) else str(name) for name in np.atleast_1d(names))
    else:
        highest = int(max(arrays["y_train"].max(initial=0), arrays["y_test"].max(initial=0)))
        if highest >= max_classes():
            raise ToolkitError(f"{shown} has no class_names and labels up to {highest}, which would make "
                               f"{highest + 1:,} classes, more than the limit of {max_classes():,} "
                               f"({MAX_CLASSES_VARIABLE}): fix the labels or add class_names")
        class_names = tuple(f"class_{i}" for i in range(highest + 1))
    return dict(source=f"npz file {shown}", class_names=class_names, **arrays)


def _npy_header(archive: zipfile.ZipFile, member: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, bytes of data the member holds) from one .npy member's header, reading no data."""
    with archive.open(member) as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
        else:
            raise ValueError(f"{member} uses .npy format version {version}, which holds no plain arrays")
        header_size = handle.tell()
    return shape, dtype, archive.getinfo(member).file_size - header_size


def _check_npz_headers(headers: dict, shown: str) -> None:
    """Dtypes, shapes, sizes and memory of the .npz arrays, from their headers alone."""
    for key, (_, dtype, _) in headers.items():
        kinds = "US" if key == "class_names" else "biuf"  # strings; bool, integer or float (no complex, no objects)
        if dtype.hasobject or dtype.kind not in kinds:
            raise ToolkitError(f"cannot read {shown} as .npz ({key} holds {dtype.name} values, not "
                               f"{'strings' if key == 'class_names' else 'plain numbers'}): {_NPZ_ADVICE}")
    for split in ("train", "test"):
        x_shape, y_shape = headers[f"x_{split}"][0], headers[f"y_{split}"][0]
        if len(x_shape) not in (3, 4) or (len(x_shape) == 4 and x_shape[-1] not in (1, 3)):
            raise ToolkitError(f"{shown}: x_{split} must be N×H×W, N×H×W×1 or N×H×W×3, "
                               f"got shape {_shown(x_shape)}")
        _check_image_shape(x_shape[1], x_shape[2], f"{shown}: each x_{split} image")
        if len(y_shape) != 1 or y_shape[0] != x_shape[0] or headers[f"y_{split}"][1].kind not in "iu":
            raise ToolkitError(f"{shown}: y_{split} must be {x_shape[0]} integer labels, got "
                               f"{headers[f'y_{split}'][1]} {_shown(y_shape)}")
    if "class_names" in headers:
        names_shape = headers["class_names"][0]
        count = int(np.prod(names_shape, dtype=object))
        if len(names_shape) > 1 or count > max_classes():
            raise ToolkitError(f"{shown}: class_names must be a list of at most {max_classes():,} names "
                               f"({MAX_CLASSES_VARIABLE}), got shape {_shown(names_shape)}")
    for key, (shape, dtype, available) in headers.items():
        needed = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if needed > available:
            raise ToolkitError(f"{shown} is truncated: {key} should hold {needed:,} bytes, the file has "
                               f"{max(available, 0):,}: save it again")
    converted = sum(int(np.prod(headers[key][0], dtype=object)) * max(4, headers[key][1].itemsize)
                    for key in ("x_train", "x_test"))
    _check_fits_in_memory(converted, f"{shown} (its images)")


def _to_uint8(images: np.ndarray, what: str) -> np.ndarray:
    """Images as uint8: 0..255 kept, float 0..1 scaled to 0..255; NaN, infinity or other ranges are errors."""
    if images.dtype == np.uint8:
        return images
    if images.dtype.kind == "f" and images.size and not np.isfinite(images).all():
        raise ToolkitError(f"{what} holds NaN or infinite values: replace them with pixel values 0..255 (or 0..1)")
    if images.size:
        low, high = float(images.min()), float(images.max())
        if low < 0 or high > 255:
            raise ToolkitError(f"{what} holds values from {low:g} to {high:g}: pixel values must lie in 0..255 "
                               "(or 0..1 for floats): rescale the images")
    values = images.astype(np.float32)
    if values.size and float(values.max()) <= 1.0:
        values = values * 255.0
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _existing(path, what: str, regular_file: bool = False) -> Path:
    """``path`` as a Path that exists (and is a regular file if asked: a pipe or device could block or never end)."""
    try:
        location = Path(path).expanduser()
        exists = location.exists()
    except (OSError, ValueError) as error:  # e.g. a name too long, or a NUL byte in it
        raise ToolkitError(f"{what} {_display(path)} cannot be used: {_display(str(error), 100)}") from None
    if not exists:
        raise ToolkitError(f"{what} not found: {_display(location)} does not exist")
    if regular_file and not location.is_file():
        raise ToolkitError(f"{what} {_display(location)} is not a regular file: give the file itself")
    return location
