"""Readers of each data source's files: CIFAR-10's python batches, Fashion-MNIST's idx files, scikit-learn's digits,
folders of class sub-folders, and .npz archives.

Each ``load_*`` returns a dict of raw arrays (images, integer labels, class names, a source description) for
:func:`altoolkit.data.load_dataset`, which checks labels, keeps classes and resizes. Every reader checks sizes
against :mod:`altoolkit.limits` from headers before reading data, and never runs code from a file (pickles are
unpickled allowing plain arrays only).
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import tarfile
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np

from altoolkit.errors import ToolkitError
from altoolkit.limits import (MAX_CLASSES_VARIABLE, PIXEL_LIMIT_ADVICE, byte_size, check_fits_in_memory,
                              check_image_shape, checked_class_names, listed_names,
                              max_classes, max_image_pixels)
from altoolkit.validation import display_text, short_repr

DEFAULT_DATA_DIR = Path("data")
FASHION_MNIST_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
DIGITS_TRAIN_SIZE = 1347
FOLDER_TEST_FRACTION = 0.2
FOLDER_ORDER_SEED = 0
MAX_CIFAR10_FILE_BYTES = 64 * 2**20
"""Largest file read from a CIFAR-10 archive or folder (the official batches are 30 MB each)."""
MAX_CIFAR10_ARCHIVE_BYTES = 512 * 2**20
"""Most data unpacked from a CIFAR-10 archive before its batches are found (the official one holds 178 MB)."""
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
FASHION_MNIST_CLASSES = ("t-shirt/top", "trouser", "pullover", "dress", "coat",
                         "sandal", "shirt", "sneaker", "bag", "ankle boot")


def load_digits() -> dict:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    labels = bunch.target.astype(np.int64)
    return dict(source="scikit-learn load_digits (bundled)",
                x_train=images[:DIGITS_TRAIN_SIZE], y_train=labels[:DIGITS_TRAIN_SIZE],
                x_test=images[DIGITS_TRAIN_SIZE:], y_test=labels[DIGITS_TRAIN_SIZE:],
                class_names=tuple(str(d) for d in range(10)))


def load_cifar10(path, data_dir) -> dict:
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
    shown = display_text(location)
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
        raise ToolkitError(f"{display_text(folder)} is not a CIFAR-10 python-version folder: {name} is missing")
    try:
        if file.stat().st_size > MAX_CIFAR10_FILE_BYTES:
            raise ToolkitError(f"{display_text(file)} is larger than any CIFAR-10 batch (the limit is "
                               f"{byte_size(MAX_CIFAR10_FILE_BYTES)}): use the official files")
        return file.read_bytes()
    except OSError as error:
        raise ToolkitError(f"cannot read {display_text(file)}: {error.strerror or error}") from None


def _read_cifar10_tar(location: Path, names: list[str]) -> dict[str, bytes]:
    """The named files of a (compressed) tar, without unpacking more than ``MAX_CIFAR10_ARCHIVE_BYTES``."""
    shown = display_text(location)
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
                                       f"{byte_size(member.size)}; limits {byte_size(MAX_CIFAR10_FILE_BYTES)} a "
                                       f"batch, {byte_size(MAX_CIFAR10_ARCHIVE_BYTES)} in all): use the official "
                                       "cifar-10-python.tar.gz")
                if base in names and base not in blobs:
                    blobs[base] = archive.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise ToolkitError(f"cannot read the CIFAR-10 archive {shown}: {display_text(str(error), 200)}") from None
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
        raise ToolkitError(f"{display_text(location)}: batch {name} is not plain data (it asks for "
                           f"{display_text(str(error), 80)}, which could run code): use the official CIFAR-10 files"
                           ) from None
    except Exception as error:  # pickle can raise nearly anything on a corrupt file
        raise ToolkitError(f"{display_text(location)}: batch {name} is corrupt ({type(error).__name__})") from None


def _cifar10_batch(batch, location: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(images N×32×32×3 uint8, labels) of one unpickled batch, or an error saying what is off."""
    problem = None
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        problem = "no data and labels"
    else:
        data, labels = batch[b"data"], batch[b"labels"]
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            problem = (f"data of {data.dtype} {short_repr(data.shape)}" if isinstance(data, np.ndarray)
                       else f"data of type {type(data).__name__}")
        elif isinstance(labels, list) and labels and all(type(label) is int for label in labels) \
                and not -2**63 <= min(labels) <= max(labels) < 2**63:
            problem = f"labels up to {short_repr(max(labels), 25)}"
        else:
            try:
                labels = np.asarray(labels)
            except (ValueError, TypeError):
                labels = np.asarray([None])
            if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) or len(labels) != len(data):
                problem = f"{len(data)} images but labels of {labels.dtype} {short_repr(labels.shape)}"
    if problem:
        raise ToolkitError(f"{display_text(location)} does not hold CIFAR-10 batches in the official format ({name} "
                           f"has {problem}; expected N×3072 uint8 data and N integer labels)")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def _decoded(name):
    """A class name read from a file: bytes decoded as UTF-8 (undecodable bytes escaped), anything else as is."""
    return name.decode("utf-8", errors="backslashreplace") if isinstance(name, bytes) else name


def load_fashion_mnist(path) -> dict:
    """Debian's dataset-fashion-mnist files (idx format) if present, else keras.datasets.fashion_mnist."""
    if path is not None:
        folder = _existing(path, "Fashion-MNIST folder")
    else:
        folder = Path(os.environ.get("AL_FASHION_MNIST_DIR", FASHION_MNIST_DEBIAN_DIR))
    files = {key: folder / f"{key}-idx{3 if 'images' in key else 1}-ubyte.gz"
             for key in ("train-images", "train-labels", "t10k-images", "t10k-labels")}
    if all(file.is_file() for file in files.values()):
        arrays = {key: _read_idx(file, 3 if "images" in key else 1) for key, file in files.items()}
        return dict(source=f"Fashion-MNIST idx files in {display_text(folder)}",
                    x_train=arrays["train-images"], y_train=arrays["train-labels"],
                    x_test=arrays["t10k-images"], y_test=arrays["t10k-labels"], class_names=FASHION_MNIST_CLASSES)
    if path is not None:
        raise ToolkitError(f"{display_text(folder)} lacks the Fashion-MNIST idx files (train-images-idx3-ubyte.gz, ...)")
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
    shown = display_text(file)
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
                check_image_shape(shape[1], shape[2], shown)
            count = int(np.prod(shape, dtype=object))
            check_fits_in_memory(count, f"{shown} (shape {shape})")
            body = handle.read(count + 1)
    except (OSError, EOFError, zlib.error) as error:
        raise ToolkitError(f"cannot read {shown}: {display_text(str(error), 200)}") from None
    if len(body) != count:
        state = "truncated" if len(body) < count else "longer than its header says"
        raise ToolkitError(f"{shown} is {state}: expected {count} values, found "
                           f"{len(body) if len(body) < count else 'more'}")
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


def load_folder(path) -> dict:
    """Class sub-folders; ``train/`` and ``test/`` splits if present, else a fixed 80/20 split.

    Lists the files and decodes nothing: ``x_train``/``x_test`` are lists of image files (under ``root``), which
    :func:`altoolkit.data.load_dataset` turns into :class:`~altoolkit.file_images.FileImages`, decoded in batches
    by whatever reads them (a pool is streamed).
    """
    root = _existing(path, "image folder")
    source = f"image folder {display_text(root)}"
    if not root.is_dir():
        raise ToolkitError(f"{display_text(root)} is not a folder: give a folder with one sub-folder of images per class")
    if (root / "train").is_dir() and (root / "test").is_dir():
        class_names = _class_folders(root / "train", source)
        unknown = sorted(set(_class_folders(root / "test", source)) - set(class_names))
        if unknown:
            raise ToolkitError(f"{display_text(root / 'test')} has classes missing from train/: {listed_names(unknown)}")
        train_files = _class_files(root / "train", class_names)
        test_files = _class_files(root / "test", class_names, allow_missing=True)
        order = np.random.default_rng(FOLDER_ORDER_SEED).permutation(len(train_files))
        return dict(source=source, root=root, x_train=[train_files[row][0] for row in order],
                    y_train=np.asarray([train_files[row][1] for row in order], dtype=np.int64),
                    x_test=[file for file, _ in test_files],
                    y_test=np.asarray([label for _, label in test_files], dtype=np.int64),
                    class_names=tuple(class_names))
    class_names = _class_folders(root, source)
    files = _class_files(root, class_names)
    order = np.random.default_rng(FOLDER_ORDER_SEED).permutation(len(files))
    n_test = int(round(len(files) * FOLDER_TEST_FRACTION))
    train_part, test_part = order[:len(order) - n_test], order[len(order) - n_test:]
    return dict(source=source, root=root, x_train=[files[row][0] for row in train_part],
                y_train=np.asarray([files[row][1] for row in train_part], dtype=np.int64),
                x_test=[files[row][0] for row in test_part],
                y_test=np.asarray([files[row][1] for row in test_part], dtype=np.int64), class_names=tuple(class_names))


def _class_folders(root: Path, source: str) -> list[str]:
    names = sorted(entry.name for entry in _folder_entries(root)
                   if entry.is_dir() and not entry.name.startswith("."))
    if not names:
        raise ToolkitError(f"{display_text(root)} has no class sub-folders: put each class's images in "
                           "root/<class name>/")
    return list(checked_class_names(names, source))


def _folder_entries(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError as error:
        raise ToolkitError(f"cannot list the folder {display_text(folder)}: {error.strerror or error}; "
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
            raise ToolkitError(f"{display_text(entry)} is not a regular image file (a broken or looping link, a device "
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
            raise ToolkitError(f"class folder {display_text(folder)} has no images ({', '.join(IMAGE_SUFFIXES)}): "
                               "add images or remove the folder")
        files.extend((file, label) for file in found)
    if not files:
        raise ToolkitError(f"{display_text(root)} holds no images")
    return files


def read_image(file: Path, size: int, header_only: bool = False) -> np.ndarray | None:
    """Decode the first frame of one image file to uint8 RGB size×size; a bad file is an error that names it.

    Width × height is checked on the header, before decoding, against :func:`max_image_pixels`; Pillow's own
    decompression-bomb check is set to the same limit, so no limit of Pillow's contradicts it. ``header_only``
    stops after that check (a cheap look at every file of a pool before any work), returning None.
    """
    from PIL import Image

    limit = max_image_pixels()
    Image.MAX_IMAGE_PIXELS = limit
    shown = display_text(file)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's notes on odd but readable files would add lines to the output
            with Image.open(file) as image:
                check_image_shape(image.height, image.width, f"image {shown}")
                if header_only:
                    return None
                rgb = image.convert("RGB")
                if rgb.size != (size, size):
                    rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
                return np.asarray(rgb, dtype=np.uint8)
    except ToolkitError:
        raise
    except Image.DecompressionBombError:
        raise ToolkitError(f"image {shown} has more than twice the limit of {limit:,} pixels "
                           f"{PIXEL_LIMIT_ADVICE}") from None
    except Exception as error:  # Pillow's decoders raise many exception types on malformed files
        raise ToolkitError(f"cannot read image {shown}: {display_text(str(error) or type(error).__name__, 200)}; "
                           "remove or replace the file") from None


NPZ_ARRAYS = ("x_train", "y_train", "x_test", "y_test")
_NPZ_ADVICE = ("save plain numeric arrays x_train, y_train, x_test, y_test (and a string array class_names) "
               "with numpy.savez")


def load_npz(path) -> dict:
    """A .npz with x_train, y_train, x_test, y_test (and optional class_names); never unpickles objects.

    Every array's header (dtype, shape) is checked before its data is read, so a file that claims a huge, empty or
    non-numeric array is refused without allocating it; images holding NaN, infinity or values outside 0..255 are
    refused rather than silently clipped.
    """
    file = _existing(path, ".npz file", regular_file=True)
    shown = display_text(file)
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
        raise ToolkitError(f"cannot read {shown} as .npz ({display_text(str(error), 200)}): {_NPZ_ADVICE}") from None
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
                               f"got shape {short_repr(x_shape)}")
        check_image_shape(x_shape[1], x_shape[2], f"{shown}: each x_{split} image")
        if len(y_shape) != 1 or y_shape[0] != x_shape[0] or headers[f"y_{split}"][1].kind not in "iu":
            raise ToolkitError(f"{shown}: y_{split} must be {x_shape[0]} integer labels, got "
                               f"{headers[f'y_{split}'][1]} {short_repr(y_shape)}")
    if "class_names" in headers:
        names_shape = headers["class_names"][0]
        count = int(np.prod(names_shape, dtype=object))
        if len(names_shape) > 1 or count > max_classes():
            raise ToolkitError(f"{shown}: class_names must be a list of at most {max_classes():,} names "
                               f"({MAX_CLASSES_VARIABLE}), got shape {short_repr(names_shape)}")
    for key, (shape, dtype, available) in headers.items():
        needed = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if needed > available:
            raise ToolkitError(f"{shown} is truncated: {key} should hold {needed:,} bytes, the file has "
                               f"{max(available, 0):,}: save it again")
    converted = sum(int(np.prod(headers[key][0], dtype=object)) * max(4, headers[key][1].itemsize)
                    for key in ("x_train", "x_test"))
    check_fits_in_memory(converted, f"{shown} (its images)")


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
        raise ToolkitError(f"{what} {display_text(path)} cannot be used: {display_text(str(error), 100)}") from None
    if not exists:
        raise ToolkitError(f"{what} not found: {display_text(location)} does not exist")
    if regular_file and not location.is_file():
        raise ToolkitError(f"{what} {display_text(location)} is not a regular file: give the file itself")
    return location
