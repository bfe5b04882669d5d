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
import os
import pickle
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from altoolkit.errors import ToolkitError

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
        image_size: side of the square images returned (MobileNetV3 needs at least 32).
        data_dir: where ``cifar10`` looks for its archive when ``path`` is not given
            (default: ``$AL_DATA_DIR`` or ``./data``).
    """
    if name not in DATASET_NAMES:
        raise ToolkitError(f"unknown dataset {name!r}: choose one of {', '.join(DATASET_NAMES)}")
    if not isinstance(image_size, (int, np.integer)) or image_size < 8:
        raise ToolkitError(f"image size must be an integer of at least 8, got {image_size!r}")
    if name in ("folder", "npz") and path is None:
        raise ToolkitError(f"dataset {name!r} needs a path: pass --data-path (or path=...)")
    loaders = {"cifar10": lambda: _load_cifar10(path, data_dir), "fashion_mnist": lambda: _load_fashion_mnist(path),
               "digits": _load_digits, "folder": lambda: _load_folder(path, int(image_size)),
               "npz": lambda: _load_npz(path)}
    raw = loaders[name]()
    _check_labels(raw)
    dataset = Dataset(name=name, **raw)
    if classes is not None:
        dataset = select_classes(dataset, classes)
    return _as_rgb_size(dataset, int(image_size))


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
        raise ToolkitError(f"the class list {list(classes)} names a class twice")
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
            items.append(int(part) if part.lstrip("-").isdigit() else part)
    return items


def _class_id(dataset: Dataset, item: int | str) -> int:
    if isinstance(item, (int, np.integer)):
        if not 0 <= int(item) < dataset.num_classes:
            raise ToolkitError(f"class id {item} is out of range: {dataset.name} has classes "
                               f"0..{dataset.num_classes - 1}")
        return int(item)
    if item not in dataset.class_names:
        raise ToolkitError(f"unknown class {item!r}: {dataset.name} has {', '.join(dataset.class_names)}")
    return dataset.class_names.index(item)


def _check_labels(raw: dict) -> None:
    """One label per image, each in 0..K-1 for the K class names, or an error naming the source."""
    last = len(raw["class_names"]) - 1
    for split in ("train", "test"):
        x, y = raw[f"x_{split}"], np.asarray(raw[f"y_{split}"])
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


def _to_rgb_uint8(images: np.ndarray, size: int) -> np.ndarray:
    """Grayscale → RGB and bilinear resize to size×size, keeping uint8 (done in chunks to bound memory)."""
    if not len(images):
        return np.zeros((0, size, size, 3), dtype=np.uint8)
    if images.ndim == 3:
        images = images[..., None]
    if images.shape[1:3] != (size, size):
        import tensorflow as tf

        chunks = []
        for start in range(0, len(images), 4096):
            resized = tf.image.resize(images[start:start + 4096], (size, size), method="bilinear").numpy()
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
    """Read the official python-version batches (pickles: only give trusted files) from a .tar.gz or folder."""
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
    if location.is_dir():
        folder = location / "cifar-10-batches-py" if (location / "cifar-10-batches-py").is_dir() else location
        blobs = {}
        for name in names:
            file = folder / name
            if not file.is_file():
                raise ToolkitError(f"{folder} is not a CIFAR-10 python-version folder: {name} is missing")
            blobs[name] = file.read_bytes()
    else:
        blobs = _read_cifar10_tar(location, names)
    batches = {name: _unpickle(blobs[name], location, name) for name in names}
    try:
        def images_labels(batch_names):
            data = np.concatenate([np.asarray(batches[n][b"data"], dtype=np.uint8) for n in batch_names])
            labels = np.concatenate([np.asarray(batches[n][b"labels"], dtype=np.int64) for n in batch_names])
            return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels

        x_train, y_train = images_labels(names[:5])
        x_test, y_test = images_labels(["test_batch"])
        class_names = tuple(n.decode() if isinstance(n, bytes) else str(n)
                            for n in batches["batches.meta"][b"label_names"])
    except (KeyError, ValueError, TypeError) as error:
        raise ToolkitError(f"{location} does not hold CIFAR-10 batches in the official format ({error})") from None
    return dict(source=f"CIFAR-10 python version at {location}", x_train=x_train, y_train=y_train,
                x_test=x_test, y_test=y_test, class_names=class_names)


def _read_cifar10_tar(location: Path, names: list[str]) -> dict[str, bytes]:
    try:
        with tarfile.open(location, "r:*") as archive:
            blobs = {}
            for member in archive.getmembers():
                base = member.name.rsplit("/", 1)[-1]
                if member.isfile() and base in names:
                    blobs[base] = archive.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise ToolkitError(f"cannot read the CIFAR-10 archive {location}: {error}") from None
    missing = [name for name in names if name not in blobs]
    if missing:
        raise ToolkitError(f"{location} is not the CIFAR-10 python-version archive: {', '.join(missing)} missing")
    return blobs


def _unpickle(blob: bytes, location: Path, name: str) -> dict:
    try:
        return pickle.loads(blob, encoding="bytes")
    except Exception as error:  # pickle can raise nearly anything on a corrupt file
        raise ToolkitError(f"{location}: batch {name} is corrupt ({type(error).__name__})") from None


def _load_fashion_mnist(path) -> dict:
    """Debian's dataset-fashion-mnist files (idx format) if present, else keras.datasets.fashion_mnist."""
    if path is not None:
        folder = _existing(path, "Fashion-MNIST folder")
    else:
        folder = Path(os.environ.get("AL_FASHION_MNIST_DIR", FASHION_MNIST_DEBIAN_DIR))
    files = {key: folder / f"{key}-idx{3 if 'images' in key else 1}-ubyte.gz"
             for key in ("train-images", "train-labels", "t10k-images", "t10k-labels")}
    if all(file.is_file() for file in files.values()):
        return dict(source=f"Fashion-MNIST idx files in {folder}",
                    x_train=_read_idx(files["train-images"]), y_train=_read_idx(files["train-labels"]),
                    x_test=_read_idx(files["t10k-images"]), y_test=_read_idx(files["t10k-labels"]),
                    class_names=FASHION_MNIST_CLASSES)
    if path is not None:
        raise ToolkitError(f"{folder} lacks the Fashion-MNIST idx files (train-images-idx3-ubyte.gz, ...)")
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


def _read_idx(file: Path) -> np.ndarray:
    """Parse one gzip'd idx file (big-endian header: magic, dims) of unsigned bytes."""
    try:
        with gzip.open(file, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError, zlib.error) as error:
        raise ToolkitError(f"cannot read {file}: {error}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ToolkitError(f"{file} is not an idx file of unsigned bytes")
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise ToolkitError(f"{file} is truncated: its header ends before the {ndim} dimensions")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ToolkitError(f"{file} is truncated: expected {int(np.prod(shape))} values, found {body.size}")
    return body.reshape(shape)


def _load_folder(path, size: int) -> dict:
    """Class sub-folders; ``train/`` and ``test/`` splits if present, else a fixed 80/20 split."""
    root = _existing(path, "image folder")
    if not root.is_dir():
        raise ToolkitError(f"{root} is not a folder: give a folder with one sub-folder of images per class")
    if (root / "train").is_dir() and (root / "test").is_dir():
        class_names = _class_folders(root / "train")
        x_train, y_train = _read_class_folders(root / "train", class_names, size)
        test_names = _class_folders(root / "test")
        unknown = sorted(set(test_names) - set(class_names))
        if unknown:
            raise ToolkitError(f"{root / 'test'} has classes missing from train/: {', '.join(unknown)}")
        x_test, y_test = _read_class_folders(root / "test", class_names, size, allow_missing=True)
    else:
        class_names = _class_folders(root)
        images, labels = _read_class_folders(root, class_names, size)
        order = np.random.default_rng(FOLDER_ORDER_SEED).permutation(len(images))
        n_test = int(round(len(images) * FOLDER_TEST_FRACTION))
        train_part, test_part = order[:len(order) - n_test], order[len(order) - n_test:]
        x_train, y_train, x_test, y_test = images[train_part], labels[train_part], images[test_part], labels[test_part]
        return dict(source=f"image folder {root}", x_train=x_train, y_train=y_train, x_test=x_test,
                    y_test=y_test, class_names=tuple(class_names))
    order = np.random.default_rng(FOLDER_ORDER_SEED).permutation(len(x_train))
    return dict(source=f"image folder {root}", x_train=x_train[order], y_train=y_train[order],
                x_test=x_test, y_test=y_test, class_names=tuple(class_names))


def _class_folders(root: Path) -> list[str]:
    names = sorted(entry.name for entry in root.iterdir() if entry.is_dir() and not entry.name.startswith("."))
    if not names:
        raise ToolkitError(f"{root} has no class sub-folders: put each class's images in root/<class name>/")
    return names


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name (the documented order)."""
    return sorted(file for file in folder.iterdir()
                  if file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES)


def _read_class_folders(root: Path, class_names: list[str], size: int,
                        allow_missing: bool = False) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for label, name in enumerate(class_names):
        folder = root / name
        files = list_images(folder) if folder.is_dir() else []
        if not files and not allow_missing:
            raise ToolkitError(f"class folder {folder} has no images ({', '.join(IMAGE_SUFFIXES)}): "
                               "add images or remove the folder")
        images.extend(read_image(file, size) for file in files)
        labels.extend([label] * len(files))
    if not images:
        raise ToolkitError(f"{root} holds no images")
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def read_image(file: Path, size: int) -> np.ndarray:
    """Decode one image file to uint8 RGB size×size; a corrupt file is an error that names it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as image:
            rgb = image.convert("RGB")
            if rgb.size != (size, size):
                rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(rgb, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise ToolkitError(f"cannot read image {file}: {error}; remove or replace the file") from None


def _load_npz(path) -> dict:
    """A .npz with x_train, y_train, x_test, y_test (and optional class_names); never unpickles objects."""
    file = _existing(path, ".npz file")
    try:
        with np.load(file, allow_pickle=False) as archive:
            missing = [key for key in ("x_train", "y_train", "x_test", "y_test") if key not in archive.files]
            if missing:
                raise ToolkitError(f"{file} lacks the keys {', '.join(missing)} "
                                   "(expected x_train, y_train, x_test, y_test, optional class_names)")
            arrays = {key: archive[key] for key in ("x_train", "y_train", "x_test", "y_test")}
            names = archive["class_names"] if "class_names" in archive.files else None
    except ToolkitError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zlib.error) as error:
        raise ToolkitError(f"cannot read {file} as .npz ({error}): save plain numeric arrays x_train, y_train, "
                           "x_test, y_test (and a string array class_names) with numpy.savez") from None
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[-1] not in (1, 3)):
            raise ToolkitError(f"{file}: x_{split} must be N×H×W, N×H×W×1 or N×H×W×3, got shape {x.shape}")
        if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
            raise ToolkitError(f"{file}: y_{split} must be {len(x)} integer labels, got {y.dtype} {y.shape}")
        arrays[f"x_{split}"] = _to_uint8(x)
    if names is not None:
        class_names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in np.atleast_1d(names))
    else:
        num_classes = int(max(arrays["y_train"].max(initial=0), arrays["y_test"].max(initial=0))) + 1
        class_names = tuple(f"class_{i}" for i in range(num_classes))
    return dict(source=f"npz file {file}", class_names=class_names, **arrays)


def _to_uint8(images: np.ndarray) -> np.ndarray:
    if images.dtype == np.uint8:
        return images
    values = images.astype(np.float32)
    if values.size and float(values.max()) <= 1.0:
        values = values * 255.0
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _existing(path, what: str) -> Path:
    location = Path(path).expanduser()
    if not location.exists():
        raise ToolkitError(f"{what} not found: {location} does not exist")
    return location

