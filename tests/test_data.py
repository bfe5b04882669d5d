"""Every data source of altoolkit.data on small generated files, and every bad input it must reject clearly."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import re
import signal
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import altoolkit.limits
import altoolkit.sources
from altoolkit.data import DATASET_NAMES, Dataset, load_dataset, parse_classes, select_classes
from altoolkit.limits import MAX_IMAGE_SIZE
from altoolkit.sources import (CIFAR10_CLASSES, DIGITS_TRAIN_SIZE, FASHION_MNIST_CLASSES, FASHION_MNIST_DEBIAN_DIR,
                               read_image)
from altoolkit.errors import ToolkitError

CIFAR_PER_BATCH = 6
CIFAR_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
CIFAR_TRAIN_SIZE = 5 * CIFAR_PER_BATCH


@pytest.fixture(autouse=True)
def no_data_env(monkeypatch):
    """Tests see none of the developer's data-location variables."""
    for name in ("AL_CIFAR10_PATH", "AL_DATA_DIR", "AL_FASHION_MNIST_DIR", "AL_MAX_IMAGE_PIXELS", "AL_MAX_CLASSES"):
        monkeypatch.delenv(name, raising=False)


def assert_one_line(excinfo) -> None:
    assert "\n" not in str(excinfo.value)


def assert_short_line(excinfo, limit: int = 400) -> None:
    assert "\n" not in str(excinfo.value) and len(str(excinfo.value)) <= limit, str(excinfo.value)[:500]


@pytest.fixture
def no_hang():
    """Fails the test (instead of hanging the suite) when what it runs blocks for 20 s, e.g. on a named pipe."""

    def timed_out(signum, frame):
        raise TimeoutError("blocked for 20 s")

    previous = signal.signal(signal.SIGALRM, timed_out)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


# ---------------------------------------------------------------- digits

@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_digits_shapes_labels_and_names(digits):
    assert digits.x_train.shape == (DIGITS_TRAIN_SIZE, 32, 32, 3) == (1347, 32, 32, 3)
    assert digits.x_test.shape == (450, 32, 32, 3)
    assert digits.x_train.dtype == digits.x_test.dtype == np.uint8
    assert digits.y_train.dtype == np.int64
    assert set(digits.y_train) == set(digits.y_test) == set(range(10))
    assert digits.class_names == tuple(str(d) for d in range(10))
    assert digits.num_classes == 10 and digits.image_shape == (32, 32, 3)


def test_digits_order_is_fixed(digits):
    assert load_dataset("digits").fingerprint == digits.fingerprint


def test_digits_grayscale_becomes_three_equal_channels(digits):
    assert np.array_equal(digits.x_train[..., 0], digits.x_train[..., 1])
    assert np.array_equal(digits.x_train[..., 0], digits.x_train[..., 2])
    assert digits.x_train.max() > 200


def test_digits_other_image_size():
    data = load_dataset("digits", image_size=40)
    assert data.x_train.shape == (1347, 40, 40, 3) and data.x_test.shape == (450, 40, 40, 3)


# ---------------------------------------------------------------- cifar10 (generated official archive)

def cifar_image(index: int) -> np.ndarray:
    """Channel-major row of 3072 bytes: red 200, green = pixel position mod 256, blue = image index."""
    red = np.full(1024, 200)
    green = np.arange(1024) % 256
    blue = np.full(1024, index)
    return np.concatenate([red, green, blue]).astype(np.uint8)


def cifar_label(index: int) -> int:
    return index % 10


def write_cifar_folder(folder: Path, skip: tuple[str, ...] = (), labels_for=cifar_label) -> Path:
    folder.mkdir(parents=True)
    for number, name in enumerate(CIFAR_BATCHES):
        if name in skip:
            continue
        indices = range(number * CIFAR_PER_BATCH, (number + 1) * CIFAR_PER_BATCH)
        batch = {b"data": np.stack([cifar_image(i) for i in indices]), b"labels": [labels_for(i) for i in indices]}
        (folder / name).write_bytes(pickle.dumps(batch))
    meta = {b"label_names": [name.encode() for name in CIFAR10_CLASSES]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    return folder


def tar_gz(folder: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return archive


@pytest.fixture(scope="module")
def cifar_archive(tmp_path_factory) -> Path:
    """A small cifar-10-python.tar.gz alone in its folder."""
    work = tmp_path_factory.mktemp("cifar_build")
    folder = write_cifar_folder(work / "cifar-10-batches-py")
    return tar_gz(folder, tmp_path_factory.mktemp("cifar_dir") / "cifar-10-python.tar.gz")


def assert_is_generated_cifar(data) -> None:
    assert data.x_train.shape == (CIFAR_TRAIN_SIZE, 32, 32, 3)
    assert data.x_test.shape == (CIFAR_PER_BATCH, 32, 32, 3)
    assert data.class_names == CIFAR10_CLASSES
    assert list(data.y_train) == [cifar_label(i) for i in range(CIFAR_TRAIN_SIZE)]
    assert list(data.x_train[:, 0, 0, 2]) == list(range(CIFAR_TRAIN_SIZE))
    assert list(data.x_test[:, 0, 0, 2]) == list(range(CIFAR_TRAIN_SIZE, CIFAR_TRAIN_SIZE + CIFAR_PER_BATCH))


def test_cifar10_from_archive_path(cifar_archive):
    data = load_dataset("cifar10", path=cifar_archive)
    assert_is_generated_cifar(data)
    assert str(cifar_archive) in data.source


def test_cifar10_from_extracted_folder(cifar_archive, tmp_path):
    with tarfile.open(cifar_archive) as tar:
        tar.extractall(tmp_path, filter="data")
    from_batches = load_dataset("cifar10", path=tmp_path / "cifar-10-batches-py")
    from_parent = load_dataset("cifar10", path=tmp_path)
    assert_is_generated_cifar(from_batches)
    assert from_parent.fingerprint == from_batches.fingerprint == load_dataset("cifar10", path=cifar_archive).fingerprint


def test_cifar10_from_env_path(cifar_archive, monkeypatch):
    monkeypatch.setenv("AL_CIFAR10_PATH", str(cifar_archive))
    assert_is_generated_cifar(load_dataset("cifar10"))


def test_cifar10_from_data_dir_and_env_data_dir(cifar_archive, monkeypatch):
    assert_is_generated_cifar(load_dataset("cifar10", data_dir=cifar_archive.parent))
    monkeypatch.setenv("AL_DATA_DIR", str(cifar_archive.parent))
    assert_is_generated_cifar(load_dataset("cifar10"))


def test_cifar10_pixels_are_channels_last(cifar_archive):
    data = load_dataset("cifar10", path=cifar_archive, image_size=32)
    assert np.all(data.x_train[..., 0] == 200)
    expected_green = (np.arange(1024) % 256).reshape(32, 32)
    assert np.array_equal(data.x_train[3, :, :, 1], expected_green)
    assert np.all(data.x_train[7, :, :, 2] == 7)


def test_cifar10_resizes_to_image_size(cifar_archive):
    data = load_dataset("cifar10", path=cifar_archive, image_size=48)
    assert data.x_train.shape == (CIFAR_TRAIN_SIZE, 48, 48, 3)
    assert np.all(data.x_train[..., 0] == 200)


@pytest.mark.parametrize("classes", [[0, 1, 8], ["airplane", "automobile", "ship"]])
def test_cifar10_class_subset_remaps_and_keeps_order(cifar_archive, classes):
    data = load_dataset("cifar10", path=cifar_archive, classes=classes)
    kept = [i for i in range(CIFAR_TRAIN_SIZE) if cifar_label(i) in (0, 1, 8)]
    assert data.class_names == ("airplane", "automobile", "ship")
    assert list(data.x_train[:, 0, 0, 2]) == kept
    assert list(data.y_train) == [{0: 0, 1: 1, 8: 2}[cifar_label(i)] for i in kept]


def test_cifar10_class_subset_follows_given_order(cifar_archive):
    data = load_dataset("cifar10", path=cifar_archive, classes=["ship", "airplane"])
    assert data.class_names == ("ship", "airplane")
    assert list(data.y_train) == [{8: 0, 0: 1}[cifar_label(i)] for i in data.x_train[:, 0, 0, 2]]


def test_cifar10_class_id_out_of_range(cifar_archive):
    with pytest.raises(ToolkitError, match=r"class id 10 is out of range: cifar10 has classes 0\.\.9") as excinfo:
        load_dataset("cifar10", path=cifar_archive, classes=[0, 10])
    assert_one_line(excinfo)


def test_cifar10_offline_without_local_copy_names_both_remedies(tmp_path, monkeypatch):
    import keras.datasets.cifar10

    def no_network():
        raise Exception("URL fetch failure: no network")

    monkeypatch.setattr(keras.datasets.cifar10, "load_data", no_network)
    monkeypatch.setenv("AL_DATA_DIR", str(tmp_path))
    with pytest.raises(ToolkitError, match=r"not available offline.*cifar-10-python\.tar\.gz.*"
                                           rf"{re.escape(str(tmp_path))}.*AL_CIFAR10_PATH.*connect to the network") as excinfo:
        load_dataset("cifar10")
    assert_one_line(excinfo)


def test_cifar10_missing_explicit_path(tmp_path):
    with pytest.raises(ToolkitError, match=r"CIFAR-10 archive or folder not found: .*nowhere\.tar\.gz does not exist"):
        load_dataset("cifar10", path=tmp_path / "nowhere.tar.gz")


def test_cifar10_corrupt_archive(tmp_path):
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(ToolkitError, match=r"cannot read the CIFAR-10 archive .*cifar-10-python\.tar\.gz"):
        load_dataset("cifar10", path=archive)


def test_cifar10_truncated_archive(cifar_archive, tmp_path):
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(cifar_archive.read_bytes()[:cifar_archive.stat().st_size // 2])
    with pytest.raises(ToolkitError, match=r"CIFAR-10 archive|CIFAR-10 python-version archive"):
        load_dataset("cifar10", path=archive)


def test_cifar10_archive_missing_a_batch(tmp_path):
    folder = write_cifar_folder(tmp_path / "build" / "cifar-10-batches-py", skip=("data_batch_3",))
    archive = tar_gz(folder, tmp_path / "cifar-10-python.tar.gz")
    with pytest.raises(ToolkitError, match=r"not the CIFAR-10 python-version archive: data_batch_3 missing"):
        load_dataset("cifar10", path=archive)


def test_cifar10_folder_missing_a_batch(tmp_path):
    folder = write_cifar_folder(tmp_path / "cifar-10-batches-py", skip=("test_batch",))
    with pytest.raises(ToolkitError, match=r"not a CIFAR-10 python-version folder: test_batch is missing"):
        load_dataset("cifar10", path=folder)


def test_cifar10_corrupt_batch(tmp_path):
    folder = write_cifar_folder(tmp_path / "cifar-10-batches-py")
    (folder / "data_batch_2").write_bytes(b"not a pickle at all")
    with pytest.raises(ToolkitError, match=r"batch data_batch_2 is corrupt"):
        load_dataset("cifar10", path=folder)


def test_cifar10_batch_with_wrong_contents(tmp_path):
    folder = write_cifar_folder(tmp_path / "cifar-10-batches-py")
    (folder / "data_batch_4").write_bytes(pickle.dumps({b"labels": [0, 1]}))
    with pytest.raises(ToolkitError, match=r"does not hold CIFAR-10 batches in the official format"):
        load_dataset("cifar10", path=folder)


def test_cifar10_labels_out_of_range(tmp_path):
    folder = write_cifar_folder(tmp_path / "cifar-10-batches-py", labels_for=lambda i: 12 if i == 4 else 0)
    with pytest.raises(ToolkitError, match=r"train labels must lie in 0\.\.9 .*found 0\.\.12"):
        load_dataset("cifar10", path=folder)


@pytest.mark.parametrize("batch, problem", [
    ({b"data": np.zeros((6, 100), np.uint8), b"labels": [0] * 6}, r"data of uint8 \(6, 100\)"),
    ({b"data": np.zeros((6, 3072)), b"labels": [0] * 6}, r"data of float64 \(6, 3072\)"),
    ({b"data": [[0] * 3072] * 6, b"labels": [0] * 6}, r"data of type list"),
    ({b"data": np.zeros((6, 3072), np.uint8), b"labels": [0.5] * 6}, r"6 images but labels of float64"),
    ({b"data": np.zeros((6, 3072), np.uint8), b"labels": [0] * 5}, r"6 images but labels of int64 \(5,\)"),
    ({b"data": np.zeros((6, 3072), np.uint8), b"labels": [[0, 1]] * 6}, r"6 images but labels of int64 \(6, 2\)"),
    ([1, 2, 3], r"no data and labels"),
], ids=["wrong row length", "float pixels", "list pixels", "float labels", "too few labels", "2-D labels",
        "not a dict"])
def test_cifar10_batch_with_wrong_shapes_or_types(tmp_path, batch, problem):
    folder = write_cifar_folder(tmp_path / "cifar-10-batches-py")
    (folder / "data_batch_4").write_bytes(pickle.dumps(batch))
    with pytest.raises(ToolkitError, match=rf"not hold CIFAR-10 batches in the official format \(data_batch_4 has "
                                           rf"{problem}") as excinfo:
        load_dataset("cifar10", path=folder)
    assert_short_line(excinfo)


def test_cifar10_huge_label_is_one_short_error(tmp_path):
    folder = write_cifar_folder(tmp_path / "cifar-10-batches-py", labels_for=lambda i: 2**63 - 1 if i == 3 else 0)
    with pytest.raises(ToolkitError, match=r"train labels must lie in 0\.\.9 .*found 0\.\.9223372036854775807"):
        load_dataset("cifar10", path=folder)
    write_cifar_folder(tmp_path / "beyond" / "cifar-10-batches-py", labels_for=lambda i: 2**100 if i == 3 else 0)
    with pytest.raises(ToolkitError, match=r"data_batch_1 has labels up to 1267650600228229401496\d*…") as excinfo:
        load_dataset("cifar10", path=tmp_path / "beyond")
    assert_short_line(excinfo)


def test_cifar10_batch_that_would_run_code_is_refused_without_running_it(tmp_path):
    UNPICKLED.clear()
    folder = write_cifar_folder(tmp_path / "cifar-10-batches-py")
    (folder / "data_batch_1").write_bytes(pickle.dumps({b"data": Tripwire(), b"labels": [0]}))
    with pytest.raises(ToolkitError, match=r"batch data_batch_1 is not plain data \(it asks for .*record_unpickling"
                                           r".*could run code\)"):
        load_dataset("cifar10", path=folder)
    assert UNPICKLED == []


def test_cifar10_batches_pickled_with_protocol_2_still_load(tmp_path):
    """Python-2-era pickles (the official files) name numpy.core and encode bytes with _codecs."""
    folder = write_cifar_folder(tmp_path / "cifar-10-batches-py")
    for name in [*CIFAR_BATCHES, "batches.meta"]:
        (folder / name).write_bytes(pickle.dumps(pickle.loads((folder / name).read_bytes()), protocol=2))
    assert_is_generated_cifar(load_dataset("cifar10", path=folder))


@pytest.mark.parametrize("label_names, message", [
    ("airplane", r"batches\.meta lacks its list label_names"),
    ([b"cat", b"cat"] + [f"c{i}".encode() for i in range(8)], r"the class name 'cat' appears twice"),
    ([b""] + [f"c{i}".encode() for i in range(9)], r"class name '' must be 1 to 100 characters"),
    (list(range(10)), r"class names must be strings, got 0"),
])
def test_cifar10_bad_label_names(tmp_path, label_names, message):
    folder = write_cifar_folder(tmp_path / "cifar-10-batches-py")
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": label_names}))
    with pytest.raises(ToolkitError, match=message):
        load_dataset("cifar10", path=folder)


def test_cifar10_oversized_file_is_refused_before_it_is_read(tmp_path, monkeypatch):
    folder = write_cifar_folder(tmp_path / "build" / "cifar-10-batches-py")
    archive = tar_gz(folder, tmp_path / "cifar-10-python.tar.gz")
    monkeypatch.setattr(altoolkit.sources, "MAX_CIFAR10_FILE_BYTES", 1000)
    with pytest.raises(ToolkitError, match=r"data_batch_1 is larger than any CIFAR-10 batch"):
        load_dataset("cifar10", path=folder)
    with pytest.raises(ToolkitError, match=r"holds more data than the CIFAR-10 archive"):
        load_dataset("cifar10", path=archive)


def test_cifar10_archive_stops_unpacking_at_its_limit(tmp_path, monkeypatch):
    """A gzip bomb before the batches: unpacking stops at the limit instead of inflating all of it."""
    folder = write_cifar_folder(tmp_path / "build" / "cifar-10-batches-py")
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        padding = tarfile.TarInfo("cifar-10-batches-py/readme.html")
        padding.size = 10**6
        tar.addfile(padding, io.BytesIO(bytes(padding.size)))
        tar.add(folder, arcname=folder.name)
    assert_is_generated_cifar(load_dataset("cifar10", path=archive))
    monkeypatch.setattr(altoolkit.sources, "MAX_CIFAR10_ARCHIVE_BYTES", 10**5)
    with pytest.raises(ToolkitError, match=r"holds more data than the CIFAR-10 archive"):
        load_dataset("cifar10", path=archive)


def test_cifar10_path_that_is_a_pipe_is_refused_without_blocking(tmp_path, no_hang):
    pipe = tmp_path / "cifar-10-python.tar.gz"
    os.mkfifo(pipe)
    with pytest.raises(ToolkitError, match=r"is neither a file nor a folder"):
        load_dataset("cifar10", path=pipe)


# ---------------------------------------------------------------- fashion_mnist (generated idx files)

def write_idx(file: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(file, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def write_fashion_folder(folder: Path) -> Path:
    """5 train and 3 test 28×28 images, image i filled with the value 10·i, label i mod 10."""
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, start, count in (("train", 0, 5), ("t10k", 5, 3)):
        values = np.arange(start, start + count)
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", np.repeat(values * 10, 28 * 28).reshape(count, 28, 28))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", values % 10)
    return folder


def test_fashion_mnist_from_folder_is_resized_rgb(tmp_path):
    data = load_dataset("fashion_mnist", path=write_fashion_folder(tmp_path))
    assert data.x_train.shape == (5, 32, 32, 3) and data.x_test.shape == (3, 32, 32, 3)
    assert data.x_train.dtype == np.uint8
    assert list(data.y_train) == [0, 1, 2, 3, 4] and list(data.y_test) == [5, 6, 7]
    assert np.all(data.x_train[2] == 20) and np.all(data.x_test[0] == 50)
    assert data.class_names == FASHION_MNIST_CLASSES


def test_fashion_mnist_path_with_tilde(tmp_path, monkeypatch):
    write_fashion_folder(tmp_path / "fm")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert load_dataset("fashion_mnist", path="~/fm").x_train.shape == (5, 32, 32, 3)


def test_fashion_mnist_from_env_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("AL_FASHION_MNIST_DIR", str(write_fashion_folder(tmp_path)))
    assert load_dataset("fashion_mnist", image_size=28).x_train.shape == (5, 28, 28, 3)


@pytest.mark.skipif(not FASHION_MNIST_DEBIAN_DIR.is_dir(),
                    reason=f"Debian package dataset-fashion-mnist is not installed ({FASHION_MNIST_DEBIAN_DIR})")
def test_fashion_mnist_debian_package_is_the_default():
    data = load_dataset("fashion_mnist")
    assert str(FASHION_MNIST_DEBIAN_DIR) in data.source
    assert data.x_train.shape == (60000, 32, 32, 3) and data.x_test.shape == (10000, 32, 32, 3)
    assert set(data.y_train) == set(data.y_test) == set(range(10))
    assert np.array_equal(data.x_test[..., 0], data.x_test[..., 2]) and data.x_test.max() == 255


def test_fashion_mnist_truncated_idx(tmp_path):
    folder = write_fashion_folder(tmp_path)
    file = folder / "train-images-idx3-ubyte.gz"
    with gzip.open(file, "rb") as handle:
        data = handle.read()
    with gzip.open(file, "wb") as handle:
        handle.write(data[:-100])
    with pytest.raises(ToolkitError, match=r"train-images-idx3-ubyte\.gz is truncated: expected 3920 values"):
        load_dataset("fashion_mnist", path=folder)


def test_fashion_mnist_idx_header_cut_short(tmp_path):
    folder = write_fashion_folder(tmp_path)
    with gzip.open(folder / "t10k-labels-idx1-ubyte.gz", "wb") as handle:
        handle.write(bytes([0, 0, 8, 1, 0]))
    with pytest.raises(ToolkitError, match=r"t10k-labels-idx1-ubyte\.gz is truncated: its header ends"):
        load_dataset("fashion_mnist", path=folder)


def test_fashion_mnist_cut_gzip_stream(tmp_path):
    folder = write_fashion_folder(tmp_path)
    file = folder / "train-labels-idx1-ubyte.gz"
    file.write_bytes(file.read_bytes()[:15])
    with pytest.raises(ToolkitError, match=r"cannot read .*train-labels-idx1-ubyte\.gz"):
        load_dataset("fashion_mnist", path=folder)


def test_fashion_mnist_not_idx(tmp_path):
    folder = write_fashion_folder(tmp_path)
    with gzip.open(folder / "t10k-images-idx3-ubyte.gz", "wb") as handle:
        handle.write(b"hello world")
    with pytest.raises(ToolkitError, match=r"t10k-images-idx3-ubyte\.gz is not an idx file"):
        load_dataset("fashion_mnist", path=folder)


def test_fashion_mnist_image_and_label_counts_differ(tmp_path):
    folder = write_fashion_folder(tmp_path)
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.arange(4))
    with pytest.raises(ToolkitError, match=r"5 train images but 4 train labels"):
        load_dataset("fashion_mnist", path=folder)


def test_fashion_mnist_folder_without_idx_files(tmp_path):
    with pytest.raises(ToolkitError, match=r"lacks the Fashion-MNIST idx files"):
        load_dataset("fashion_mnist", path=tmp_path)


def write_idx_header(file: Path, dims: tuple[int, ...], body: bytes = b"") -> None:
    """An idx file whose header claims ``dims`` but holds only ``body``."""
    with gzip.open(file, "wb") as handle:
        handle.write(bytes([0, 0, 8, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims) + body)


def test_fashion_mnist_header_promising_a_huge_array_is_refused_before_reading(tmp_path):
    folder = write_fashion_folder(tmp_path)
    write_idx_header(folder / "train-images-idx3-ubyte.gz", (2**32 - 1, 28, 28), bytes(100))
    with pytest.raises(ToolkitError, match=r"train-images-idx3-ubyte\.gz \(shape \(4294967295, 28, 28\)\) needs "
                                           r"3,367\.3 GB of memory") as excinfo:
        load_dataset("fashion_mnist", path=folder)
    assert_short_line(excinfo)


def test_fashion_mnist_header_promising_huge_images_is_refused(tmp_path):
    folder = write_fashion_folder(tmp_path)
    write_idx_header(folder / "t10k-images-idx3-ubyte.gz", (3, 100000, 100000))
    with pytest.raises(ToolkitError, match=r"t10k-images-idx3-ubyte\.gz is 100000×100000 = 10,000,000,000 pixels, "
                                           r"more than the limit of 67,108,864"):
        load_dataset("fashion_mnist", path=folder)


def test_fashion_mnist_idx_with_the_wrong_number_of_dimensions(tmp_path):
    folder = write_fashion_folder(tmp_path)
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros((5, 2, 2)))
    with pytest.raises(ToolkitError, match=r"train-labels-idx1-ubyte\.gz has 3 dimensions, expected 1 \(N labels\)"):
        load_dataset("fashion_mnist", path=folder)


def test_fashion_mnist_idx_longer_than_its_header(tmp_path):
    folder = write_fashion_folder(tmp_path)
    write_idx_header(folder / "train-labels-idx1-ubyte.gz", (5,), bytes(6))
    with pytest.raises(ToolkitError, match=r"train-labels-idx1-ubyte\.gz is longer than its header says"):
        load_dataset("fashion_mnist", path=folder)


def test_fashion_mnist_offline_without_package(tmp_path, monkeypatch):
    import keras.datasets.fashion_mnist

    def no_network():
        raise Exception("URL fetch failure: no network")

    monkeypatch.setattr(keras.datasets.fashion_mnist, "load_data", no_network)
    monkeypatch.setenv("AL_FASHION_MNIST_DIR", str(tmp_path))
    with pytest.raises(ToolkitError, match=r"apt-get install dataset-fashion-mnist.*--data-path"):
        load_dataset("fashion_mnist")


# ---------------------------------------------------------------- folder

def save_image(file: Path, value: int, mode: str = "RGB", size: tuple[int, int] = (16, 16)) -> None:
    """A solid image whose first channel is ``value``."""
    file.parent.mkdir(parents=True, exist_ok=True)
    color = {"L": value, "RGB": (value, 0, 255 - value), "RGBA": (value, 0, 255 - value, 128)}[mode]
    Image.new(mode, size, color).save(file)


def write_flat_folder(root: Path) -> Path:
    """root/cat (values 10..50) and root/dog (values 110..150): ten PNGs."""
    for name, base in (("cat", 10), ("dog", 110)):
        for i in range(5):
            save_image(root / name / f"img_{i}.png", base + 10 * i)
    return root


def test_folder_flat_split_is_80_20_and_deterministic(tmp_path):
    root = write_flat_folder(tmp_path / "images")
    data = load_dataset("folder", path=root, image_size=16)
    assert data.class_names == ("cat", "dog")
    assert data.x_train.shape == (8, 16, 16, 3) and data.x_test.shape == (2, 16, 16, 3)
    values = np.concatenate([data.x_train[:, 0, 0, 0], data.x_test[:, 0, 0, 0]])
    labels = np.concatenate([data.y_train, data.y_test])
    assert sorted(values) == [10, 20, 30, 40, 50, 110, 120, 130, 140, 150]
    assert all(label == (value > 100) for value, label in zip(values, labels))
    assert load_dataset("folder", path=root, image_size=16).fingerprint == data.fingerprint


def test_folder_train_test_layout(tmp_path):
    for split, count in (("train", 3), ("test", 2)):
        for name, base in (("ant", 10), ("bee", 110)):
            for i in range(count):
                save_image(tmp_path / split / name / f"{i}.png", base + 10 * i)
    data = load_dataset("folder", path=tmp_path, image_size=16)
    assert data.class_names == ("ant", "bee")
    assert data.x_train.shape == (6, 16, 16, 3)
    assert list(data.x_test[:, 0, 0, 0]) == [10, 20, 110, 120] and list(data.y_test) == [0, 0, 1, 1]
    assert sorted(data.x_train[:, 0, 0, 0]) == [10, 20, 30, 110, 120, 130]
    assert load_dataset("folder", path=tmp_path, image_size=16).fingerprint == data.fingerprint


def test_folder_test_class_unknown_to_train(tmp_path):
    save_image(tmp_path / "train" / "ant" / "0.png", 1)
    save_image(tmp_path / "test" / "wasp" / "0.png", 1)
    with pytest.raises(ToolkitError, match=r"test has classes missing from train/: wasp"):
        load_dataset("folder", path=tmp_path)


def test_folder_converts_modes_and_sizes_to_rgb(tmp_path):
    save_image(tmp_path / "a" / "gray.png", 90, mode="L", size=(20, 30))
    save_image(tmp_path / "a" / "rgba.png", 60, mode="RGBA", size=(64, 64))
    save_image(tmp_path / "b" / "photo.jpg", 200, size=(50, 40))
    save_image(tmp_path / "b" / "small.png", 30, size=(8, 8))
    save_image(tmp_path / "b" / "wide.png", 70, size=(100, 10))
    data = load_dataset("folder", path=tmp_path, image_size=24)
    images = np.concatenate([data.x_train, data.x_test])
    assert images.shape == (5, 24, 24, 3) and images.dtype == np.uint8
    by_red = {int(image[0, 0, 0]): image for image in images if abs(int(image[0, 0, 0]) - 200) > 5}
    assert np.all(by_red[90] == 90)
    assert np.all(by_red[60][..., 0] == 60) and np.all(by_red[60][..., 2] == 195)
    jpeg = [image for image in images if abs(int(image[0, 0, 0]) - 200) <= 5]
    assert len(jpeg) == 1 and abs(int(jpeg[0][..., 2].mean()) - 55) <= 5


def test_folder_with_too_few_images_for_a_test_split(tmp_path):
    save_image(tmp_path / "a" / "0.png", 1)
    save_image(tmp_path / "b" / "0.png", 2)
    data = load_dataset("folder", path=tmp_path, image_size=16)
    assert data.x_train.shape == (2, 16, 16, 3) and data.x_test.shape == (0, 16, 16, 3)


def test_folder_empty_class(tmp_path):
    root = write_flat_folder(tmp_path)
    (root / "empty_class").mkdir()
    with pytest.raises(ToolkitError, match=r"class folder .*empty_class has no images") as excinfo:
        load_dataset("folder", path=root)
    assert_one_line(excinfo)


def decode_all(data) -> np.ndarray:
    """Every image of a folder dataset, decoded: the folder reader itself decodes nothing."""
    return np.concatenate([data.x_train, data.x_test])


def test_folder_images_stay_in_their_files_until_read(tmp_path):
    from altoolkit.file_images import FileImages

    """Loading reads headers only (a file whose pixels are cut off loads); reading decodes just the rows asked,
    each from its own file."""
    root = write_flat_folder(tmp_path)
    save_image(root / "cat" / "cut.png", 5, size=(200, 200))
    (root / "cat" / "cut.png").write_bytes((root / "cat" / "cut.png").read_bytes()[:60])
    data = load_dataset("folder", path=root, image_size=16)
    assert isinstance(data.x_train, FileImages) and isinstance(data.x_test, FileImages)
    paths = data.x_train.relative_paths()
    good = [row for row, path in enumerate(paths) if not path.endswith("cut.png")]
    expected = [(10 if path.startswith("cat") else 110) + 10 * int(path[-5]) for path in np.take(paths, good)]
    assert list(data.x_train[good][:, 0, 0, 0]) == expected
    assert np.array_equal(data.x_train.take(good)[2:4], data.x_train[good[2:4]])
    assert data.x_train[good[0]].shape == (16, 16, 3)
    assert data.x_train[good[0], 0, 0, 0] == expected[0] and data.x_train[good, 0, 0, 0].tolist() == expected
    with pytest.raises(ToolkitError, match=r"cannot read image .*cat/cut\.png"):
        decode_all(data)


def test_folder_corrupt_image(tmp_path):
    root = write_flat_folder(tmp_path)
    (root / "dog" / "broken.png").write_bytes(b"these bytes are not an image")
    with pytest.raises(ToolkitError, match=r"cannot read image .*dog/broken\.png.*remove or replace the file"):
        load_dataset("folder", path=root)


def test_folder_truncated_image(tmp_path):
    root = write_flat_folder(tmp_path)
    save_image(root / "cat" / "big.png", 5, size=(200, 200))
    file = root / "cat" / "big.png"
    file.write_bytes(file.read_bytes()[:60])
    with pytest.raises(ToolkitError, match=r"cannot read image .*cat/big\.png"):
        decode_all(load_dataset("folder", path=root))


def test_folder_without_class_folders(tmp_path):
    save_image(tmp_path / "loose.png", 1)
    with pytest.raises(ToolkitError, match=r"has no class sub-folders: put each class's images in root/<class name>/"):
        load_dataset("folder", path=tmp_path)


def test_folder_path_does_not_exist(tmp_path):
    with pytest.raises(ToolkitError, match=r"image folder not found: .*missing does not exist"):
        load_dataset("folder", path=tmp_path / "missing")


def test_folder_path_is_a_file(tmp_path):
    file = tmp_path / "one.png"
    save_image(file, 1)
    with pytest.raises(ToolkitError, match=r"one\.png is not a folder"):
        load_dataset("folder", path=file)


def test_folder_zero_byte_image(tmp_path):
    root = write_flat_folder(tmp_path)
    (root / "cat" / "empty.png").write_bytes(b"")
    with pytest.raises(ToolkitError, match=r"cannot read image .*cat/empty\.png.*remove or replace the file"):
        load_dataset("folder", path=root)


@pytest.mark.parametrize("target", ["loop.png", "missing.png"], ids=["symlink loop", "broken symlink"])
def test_folder_link_that_leads_nowhere_is_an_error_not_a_dropped_image(tmp_path, target):
    root = write_flat_folder(tmp_path)
    os.symlink(target, root / "dog" / "loop.png")
    with pytest.raises(ToolkitError, match=r"dog/loop\.png is not a regular image file \(a broken or looping link"):
        load_dataset("folder", path=root)


def test_folder_pipe_with_an_image_suffix_is_refused_without_blocking(tmp_path, no_hang):
    root = write_flat_folder(tmp_path)
    os.mkfifo(root / "cat" / "stream.png")
    with pytest.raises(ToolkitError, match=r"cat/stream\.png is not a regular image file"):
        load_dataset("folder", path=root)


def test_folder_unreadable_image_simulated(tmp_path, monkeypatch):
    """Tests run as root, who reads any file: the refusal Pillow meets on an unreadable file is simulated."""
    from PIL import Image

    root = write_flat_folder(tmp_path)
    opened = Image.open

    def refuse_one(file, *args, **kwargs):
        if Path(file).name == "img_3.png":
            raise PermissionError(13, "Permission denied", str(file))
        return opened(file, *args, **kwargs)

    monkeypatch.setattr(Image, "open", refuse_one)
    with pytest.raises(ToolkitError, match=r"cannot read image .*img_3\.png: .*Permission denied"):
        load_dataset("folder", path=root)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_folder_unreadable_files_and_folders(tmp_path):
    root = write_flat_folder(tmp_path)
    (root / "cat" / "img_2.png").chmod(0)
    with pytest.raises(ToolkitError, match=r"cannot read image .*img_2\.png"):
        load_dataset("folder", path=root)
    (root / "cat" / "img_2.png").chmod(0o644)
    (root / "dog").chmod(0)
    try:
        with pytest.raises(ToolkitError, match=r"cannot list the folder .*dog: Permission denied"):
            load_dataset("folder", path=root)
    finally:
        (root / "dog").chmod(0o755)


def test_folder_class_name_with_a_line_break(tmp_path):
    root = write_flat_folder(tmp_path)
    save_image(root / "bad\nname" / "0.png", 1)
    with pytest.raises(ToolkitError, match=r"class name 'bad\\nname' must be 1 to 100 characters without control "
                                           r"characters") as excinfo:
        load_dataset("folder", path=root)
    assert_one_line(excinfo)


def test_folder_with_more_class_folders_than_the_limit(tmp_path, monkeypatch):
    root = write_flat_folder(tmp_path)
    save_image(root / "eel" / "0.png", 1)
    monkeypatch.setenv("AL_MAX_CLASSES", "2")
    with pytest.raises(ToolkitError, match=r"has 3 classes, more than the limit of 2 \(AL_MAX_CLASSES\)"):
        load_dataset("folder", path=root)
    monkeypatch.setenv("AL_MAX_CLASSES", "3")
    assert load_dataset("folder", path=root, image_size=16).class_names == ("cat", "dog", "eel")


@pytest.mark.parametrize("value", ["lots", "0", "-5", "9" * 5000])
def test_a_bad_limit_variable_is_one_clear_error(tmp_path, monkeypatch, value):
    monkeypatch.setenv("AL_MAX_IMAGE_PIXELS", value)
    with pytest.raises(ToolkitError, match=r"the environment variable AL_MAX_IMAGE_PIXELS must be a positive "
                                           r"integer") as excinfo:
        load_dataset("folder", path=write_flat_folder(tmp_path))
    assert_short_line(excinfo)


def test_image_over_the_pixel_limit_names_its_size_and_the_override(tmp_path, monkeypatch, recwarn):
    root = write_flat_folder(tmp_path)
    monkeypatch.setenv("AL_MAX_IMAGE_PIXELS", "200")
    with pytest.raises(ToolkitError, match=r"image .*cat/img_0\.png is 16×16 = 256 pixels, more than the limit of 200 "
                                           r"\(a guard against decompression bombs\): shrink the image, or raise the "
                                           r"limit with AL_MAX_IMAGE_PIXELS=<pixels>"):
        load_dataset("folder", path=root)
    monkeypatch.setenv("AL_MAX_IMAGE_PIXELS", "100")
    with pytest.raises(ToolkitError, match=r"image .*img_0\.png has more than twice the limit of 100 pixels"):
        load_dataset("folder", path=root)
    assert not [warning for warning in recwarn if "decompression" in str(warning.message).lower()]
    monkeypatch.setenv("AL_MAX_IMAGE_PIXELS", "256")
    assert load_dataset("folder", path=root, image_size=16).x_train.shape == (8, 16, 16, 3)


def test_image_pixel_limit_default_fits_phone_photos_not_100_megapixels():
    assert 50_000_000 < altoolkit.limits.max_image_pixels() < 100_000_000


@pytest.mark.parametrize("suffix", [".gif", ".tiff"])
def test_only_the_first_frame_of_a_multi_frame_image_is_decoded(tmp_path, suffix):
    frames = [Image.new("RGB", (16, 16), color) for color in ((200, 0, 0), (0, 200, 0), (0, 0, 200))]
    file = tmp_path / f"animated{suffix}"
    frames[0].save(file, save_all=True, append_images=frames[1:])
    with Image.open(file) as image:
        assert image.n_frames == 3
    decoded = read_image(file, 16)
    assert tuple(decoded[8, 8]) == (200, 0, 0) or (suffix == ".gif" and decoded[8, 8, 0] > 150)


def test_folder_larger_than_memory_loads_and_is_refused_only_whole(tmp_path, monkeypatch):
    """A folder is never decoded whole by the loader (a pool may exceed memory); decoding more than fits is
    refused before any image is read, with the memory it would need."""
    root = write_flat_folder(tmp_path)
    monkeypatch.setattr(altoolkit.limits, "memory_budget", lambda: 8 * 64 * 64 * 3 - 1)
    data = load_dataset("folder", path=root, image_size=64)
    assert data.x_train.shape == (8, 64, 64, 3) and data.x_train[:7].shape == (7, 64, 64, 3)
    with pytest.raises(ToolkitError, match=r"8 images of .* as 8 images of 64×64 needs 98\.3 kB of memory, more "
                                           r"than 98\.3 kB \(50% of this machine's\)"):
        np.concatenate([data.x_train, data.x_test])


@pytest.mark.parametrize("name", ["folder", "npz"])
def test_dataset_needing_a_path(name):
    with pytest.raises(ToolkitError, match=rf"dataset '{name}' needs a path: pass --data-path"):
        load_dataset(name)


# ---------------------------------------------------------------- npz

UNPICKLED = []


def record_unpickling() -> None:
    UNPICKLED.append("unpickled")


class Tripwire:
    """Records it was unpickled: the npz loader must never get that far."""

    def __reduce__(self):
        return record_unpickling, ()


def npz_arrays(**changes) -> dict:
    rng = np.random.default_rng(0)
    arrays = dict(x_train=rng.integers(0, 256, (6, 10, 10), dtype=np.uint8), y_train=np.array([0, 1, 2, 0, 1, 2]),
                  x_test=rng.integers(0, 256, (3, 10, 10), dtype=np.uint8), y_test=np.array([2, 1, 0]),
                  class_names=np.array(["red", "green", "blue"]))
    arrays.update(changes)
    return {key: value for key, value in arrays.items() if value is not None}


def write_npz(file: Path, **changes) -> Path:
    np.savez(file, **npz_arrays(**changes))
    return file


def test_npz_grayscale_uint8(tmp_path):
    file = write_npz(tmp_path / "data.npz")
    data = load_dataset("npz", path=file, image_size=10)
    source = npz_arrays()
    assert data.x_train.shape == (6, 10, 10, 3) and data.x_test.shape == (3, 10, 10, 3)
    assert np.array_equal(data.x_train[..., 1], source["x_train"])
    assert list(data.y_train) == [0, 1, 2, 0, 1, 2] and list(data.y_test) == [2, 1, 0]
    assert data.class_names == ("red", "green", "blue")
    assert load_dataset("npz", path=file).x_train.shape == (6, 32, 32, 3)


def test_npz_float_unit_range_and_channels(tmp_path):
    file = write_npz(tmp_path / "data.npz", x_train=np.full((6, 10, 10, 3), 0.2, dtype=np.float32),
                     x_test=np.ones((3, 10, 10, 1)))
    data = load_dataset("npz", path=file, image_size=10)
    assert data.x_train.dtype == np.uint8 and np.all(data.x_train == 51)
    assert data.x_test.shape == (3, 10, 10, 3) and np.all(data.x_test == 255)


def test_npz_without_class_names(tmp_path):
    data = load_dataset("npz", path=write_npz(tmp_path / "data.npz", class_names=None))
    assert data.class_names == ("class_0", "class_1", "class_2")


def test_npz_empty_test_split_gets_the_image_size(tmp_path):
    file = write_npz(tmp_path / "data.npz", x_test=np.zeros((0, 10, 10), np.uint8), y_test=np.zeros(0, np.int64))
    data = load_dataset("npz", path=file)
    assert data.x_test.shape == (0, 32, 32, 3) and data.y_test.shape == (0,)


def test_npz_class_names_as_bytes(tmp_path):
    file = write_npz(tmp_path / "data.npz", class_names=np.array([b"red", b"green", b"blue"]))
    assert load_dataset("npz", path=file).class_names == ("red", "green", "blue")


def test_npz_missing_key(tmp_path):
    file = write_npz(tmp_path / "data.npz", y_test=None)
    with pytest.raises(ToolkitError, match=r"data\.npz lacks the keys y_test \(expected x_train, y_train"):
        load_dataset("npz", path=file)


def test_npz_labels_out_of_range(tmp_path):
    file = write_npz(tmp_path / "data.npz", y_test=np.array([0, 3, 1]))
    with pytest.raises(ToolkitError, match=r"test labels must lie in 0\.\.2 \(one per class name\), found 0\.\.3"):
        load_dataset("npz", path=file)


def test_npz_labels_below_unlabeled_marker_are_rejected(tmp_path):
    file = write_npz(tmp_path / "data.npz", class_names=None, y_train=np.array([0, -2, 2, 0, 1, 2]))
    with pytest.raises(ToolkitError, match=r"train labels must lie in 0\.\.2"):
        load_dataset("npz", path=file)


def test_npz_unlabeled_training_images_are_kept_through_class_selection(tmp_path):
    file = write_npz(tmp_path / "data.npz", class_names=None, y_train=np.array([0, -1, 2, 0, 1, -1]))
    dataset = load_dataset("npz", path=file, classes=[2, 0])
    assert dataset.y_train.tolist() == [1, -1, 0, 1, -1]


def test_npz_test_labels_must_be_known(tmp_path):
    file = write_npz(tmp_path / "data.npz", class_names=None, y_test=np.array([0, -1, 2]))
    with pytest.raises(ToolkitError, match=r"test labels must lie in 0\.\.2"):
        load_dataset("npz", path=file)


@pytest.mark.parametrize("changes, message", [
    (dict(x_train=np.zeros((6, 10, 10, 4), np.uint8)), r"x_train must be N×H×W, N×H×W×1 or N×H×W×3"),
    (dict(y_train=np.zeros(6, np.float32)), r"y_train must be 6 integer labels"),
    (dict(y_test=np.zeros(2, np.int64)), r"y_test must be 3 integer labels"),
])
def test_npz_bad_shapes_or_dtypes(tmp_path, changes, message):
    with pytest.raises(ToolkitError, match=message):
        load_dataset("npz", path=write_npz(tmp_path / "data.npz", **changes))


def test_npz_object_array_is_never_unpickled(tmp_path):
    UNPICKLED.clear()
    file = write_npz(tmp_path / "data.npz", x_train=np.array([Tripwire()] * 6, dtype=object))
    with pytest.raises(ToolkitError, match=r"cannot read .*data\.npz as \.npz .*save plain numeric arrays"):
        load_dataset("npz", path=file)
    assert UNPICKLED == []


def test_npz_not_a_zip(tmp_path):
    file = tmp_path / "data.npz"
    file.write_bytes(b"garbage" * 20)
    with pytest.raises(ToolkitError, match=r"cannot read .*data\.npz as \.npz"):
        load_dataset("npz", path=file)


def test_npz_missing_file(tmp_path):
    with pytest.raises(ToolkitError, match=r"\.npz file not found: .*absent\.npz does not exist"):
        load_dataset("npz", path=tmp_path / "absent.npz")


def npz_with_header(file: Path, key: str, shape: tuple[int, ...], descr: str = "|u1", data: bytes = b"") -> Path:
    """A valid .npz in which ``key``'s .npy header claims ``shape`` but holds only ``data`` (no big array is made)."""
    write_npz(file)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": descr, "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(file) as source:
        members = {name: source.read(name) for name in source.namelist()}
    members[f"{key}.npy"] = header.getvalue() + data
    with zipfile.ZipFile(file, "w") as target:
        for name, content in members.items():
            target.writestr(name, content)
    return file


@pytest.mark.parametrize("label", [2**63, 2**40, 10**6], ids=["2**63", "2**40", "10**6"])
def test_npz_huge_label_without_class_names_is_refused_quickly_and_briefly(tmp_path, label):
    y_train = np.array([0, 1, 2, 0, 1, label], dtype=np.uint64)
    file = write_npz(tmp_path / "data.npz", class_names=None, y_train=y_train)
    with pytest.raises(ToolkitError, match=rf"has no class_names and labels up to {label}, which would make "
                                           rf"{label + 1:,} classes, more than the limit of 1,000 \(AL_MAX_CLASSES\)"
                                           r": fix the labels or add class_names") as excinfo:
        load_dataset("npz", path=file)
    assert_short_line(excinfo)


def test_npz_class_limit_applies_to_explicit_class_names(tmp_path, monkeypatch):
    names = np.array([f"c{i}" for i in range(1001)])
    with pytest.raises(ToolkitError, match=r"class_names must be a list of at most 1,000 names \(AL_MAX_CLASSES\), "
                                           r"got shape \(1001,\)"):
        load_dataset("npz", path=write_npz(tmp_path / "data.npz", class_names=names))
    monkeypatch.setenv("AL_MAX_CLASSES", "1001")
    assert load_dataset("npz", path=tmp_path / "data.npz", image_size=10).num_classes == 1001


def test_npz_up_to_the_class_limit_is_accepted(tmp_path):
    file = write_npz(tmp_path / "data.npz", class_names=None, y_train=np.array([0, 1, 2, 0, 1, 999]))
    assert load_dataset("npz", path=file, image_size=10).num_classes == 1000


@pytest.mark.parametrize("names, message", [
    (np.array(["red", "green", "red"]), r"the class name 'red' appears twice: class names must be distinct"),
    (np.array(["red", "", "blue"]), r"class name '' must be 1 to 100 characters"),
    (np.array(["red", "   ", "blue"]), r"class name '   ' must be 1 to 100 characters"),
    (np.array(["red", "gr\neen", "blue"]), r"class name 'gr\\neen' must be 1 to 100 characters without control"),
    (np.array(["red", "g" * 101, "blue"]), r"class name 'g+… must be 1 to 100 characters"),
    (np.array([0, 1, 2]), r"cannot read .*data\.npz as \.npz \(class_names holds int64 values, not strings\)"),
    (np.array([[b"a", b"b", b"c"]]), r"class_names must be a list of at most 1,000 names .*got shape \(1, 3\)"),
    (np.array([], dtype=str), r"names no classes: give at least one class name"),
], ids=["duplicate", "empty", "blank", "line break", "too long", "integers", "2-D", "none"])
def test_npz_bad_class_names(tmp_path, names, message):
    with pytest.raises(ToolkitError, match=message) as excinfo:
        load_dataset("npz", path=write_npz(tmp_path / "data.npz", class_names=names))
    assert_short_line(excinfo)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["NaN", "inf", "-inf"])
def test_npz_images_with_nan_or_infinity_are_refused(tmp_path, value, recwarn):
    x_train = np.full((6, 10, 10), 0.5, dtype=np.float32)
    x_train[2, 3, 4] = value
    with pytest.raises(ToolkitError, match=r"data\.npz: x_train holds NaN or infinite values: replace them"):
        load_dataset("npz", path=write_npz(tmp_path / "data.npz", x_train=x_train))
    assert not recwarn.list


@pytest.mark.parametrize("x_test, message", [
    (np.ones((3, 10, 10), dtype=np.complex64), r"x_test holds complex64 values, not plain numbers"),
    (np.full((3, 10, 10), "128"), r"x_test holds str.* values, not plain numbers"),
    (np.full((3, 10, 10), b"128"), r"x_test holds bytes.* values, not plain numbers"),
    (np.full((3, 10, 10), 4000, dtype=np.uint16), r"x_test holds values from 4000 to 4000: pixel values must lie in "
                                                   r"0\.\.255 \(or 0\.\.1 for floats\)"),
    (np.full((3, 10, 10), -0.5), r"x_test holds values from -0\.5 to -0\.5: pixel values must lie in 0\.\.255"),
    (np.zeros((3, 0, 10), np.uint8), r"each x_test image is 10×0 pixels: images need at least one pixel each way"),
    (np.zeros((3, 10, 0), np.uint8), r"each x_test image is 0×10 pixels"),
    (np.zeros((3, 10, 10, 3, 1), np.uint8), r"x_test must be N×H×W, N×H×W×1 or N×H×W×3, got shape \(3, 10, 10, 3, "),
], ids=["complex", "strings", "bytes", "uint16 4000", "negative floats", "height 0", "width 0", "5 dims"])
def test_npz_images_of_the_wrong_kind_or_shape(tmp_path, x_test, message):
    with pytest.raises(ToolkitError, match=message) as excinfo:
        load_dataset("npz", path=write_npz(tmp_path / "data.npz", x_test=x_test))
    assert_short_line(excinfo)


def test_npz_truncated_file(tmp_path):
    file = write_npz(tmp_path / "data.npz")
    file.write_bytes(file.read_bytes()[:-200])
    with pytest.raises(ToolkitError, match=r"cannot read .*data\.npz as \.npz .*save plain numeric arrays"):
        load_dataset("npz", path=file)


def test_npz_header_promising_a_huge_array_is_refused_without_allocating_it(tmp_path):
    file = npz_with_header(tmp_path / "data.npz", "x_train", (6, 8000, 8000), data=bytes(1000))
    with pytest.raises(ToolkitError, match=r"data\.npz is truncated: x_train should hold 384,000,000 bytes, "
                                           r"the file has 1,000: save it again"):
        load_dataset("npz", path=file)


def test_npz_header_promising_huge_images(tmp_path):
    file = npz_with_header(tmp_path / "data.npz", "x_test", (3, 30000, 30000))
    with pytest.raises(ToolkitError, match=r"each x_test image is 30000×30000 = 900,000,000 pixels, more than "):
        load_dataset("npz", path=file)


def test_npz_too_large_for_memory_is_refused_before_reading(tmp_path, monkeypatch):
    file = write_npz(tmp_path / "data.npz")
    monkeypatch.setattr(altoolkit.limits, "memory_budget", lambda: 100)
    with pytest.raises(ToolkitError, match=r"data\.npz \(its images\) needs 3\.6 kB of memory, more than 100 bytes"):
        load_dataset("npz", path=file)


def test_npz_path_that_is_a_folder_or_a_pipe(tmp_path, no_hang):
    os.mkfifo(tmp_path / "pipe.npz")
    for path in (tmp_path, tmp_path / "pipe.npz"):
        with pytest.raises(ToolkitError, match=r"\.npz file .* is not a regular file: give the file itself"):
            load_dataset("npz", path=path)


@pytest.mark.parametrize("path, message", [("bad\0name.npz", r"\.npz file not found: bad\\x00name\.npz does not exist"),
                                           ("x" * 5000 + ".npz", r"cannot be used: .*File name too long")],
                         ids=["NUL byte", "name too long"])
def test_unusable_data_paths(path, message):
    with pytest.raises(ToolkitError, match=message) as excinfo:
        load_dataset("npz", path=path)
    assert_short_line(excinfo)


# ---------------------------------------------------------------- names, sizes, class lists

def test_unknown_dataset_lists_valid_names():
    with pytest.raises(ToolkitError, match=rf"unknown dataset 'mnist': choose one of {', '.join(DATASET_NAMES)}"):
        load_dataset("mnist")


@pytest.mark.parametrize("size", [4, 32.0, "32", True, MAX_IMAGE_SIZE + 1, 4096, 10**5000],
                         ids=["4", "float", "text", "bool", "max+1", "4096", "5000 digits"])
def test_bad_image_size(size):
    with pytest.raises(ToolkitError, match=rf"image size must be an integer from 8 to {MAX_IMAGE_SIZE}") as excinfo:
        load_dataset("digits", image_size=size)
    assert len(str(excinfo.value)) < 200


@pytest.mark.parametrize("text, expected", [
    ("0,1,8", [0, 1, 8]), (" 0, 1 ,8 ", [0, 1, 8]), ("airplane,ship", ["airplane", "ship"]),
    ("", None), (None, None),
])
def test_parse_classes(text, expected):
    assert parse_classes(text) == expected


@pytest.mark.parametrize("classes, message", [
    ([], r"the class list is empty"),
    (["3", "zebra"], r"unknown class 'zebra': digits has 0, 1, 2"),
    ([1, 1], r"names a class twice"),
    ([-1], r"class id -1 is out of range"),
])
def test_select_classes_rejects_bad_lists(digits, classes, message):
    with pytest.raises(ToolkitError, match=message):
        select_classes(digits, classes)


def test_select_classes_by_name_on_digits(digits):
    subset = select_classes(digits, ["7", 2])
    assert subset.class_names == ("7", "2")
    assert np.array_equal(subset.y_train, np.where(digits.y_train[np.isin(digits.y_train, [7, 2])] == 7, 0, 1))


def test_class_id_with_thousands_of_digits_is_one_short_error():
    with pytest.raises(ToolkitError, match=r"class id '9+… is out of range") as excinfo:
        parse_classes("1," + "9" * 5000)
    assert_short_line(excinfo)


def test_unknown_class_error_lists_a_few_names_of_many():
    names = tuple(f"class_{i}" for i in range(1000))
    empty = np.zeros((0, 8, 8, 3), np.uint8)
    dataset = Dataset("npz", "npz file x.npz", empty, np.zeros(0, np.int64), empty, np.zeros(0, np.int64), names)
    with pytest.raises(ToolkitError, match=r"unknown class 'zebra': npz has class_0, .*class_11, … \(1000 classes\)"
                       ) as excinfo:
        select_classes(dataset, ["zebra"])
    assert_short_line(excinfo)


def call_with_a_dataset_name(function_name: str):
    """Call one Python API entry point with ``dataset="digits"`` (a name where a loaded Dataset belongs)."""
    import importlib

    module_name, function = function_name.rsplit(".", 1)
    target = getattr(importlib.import_module(module_name), function)
    if function == "analyze_intersection":
        return target([], [], [], dataset="digits")
    return target(dataset="digits")


@pytest.mark.parametrize("function_name", [
    "train.train_model", "AL_cycle.ActiveLearningAnalyzer", "Evaluation.pool_context.open_pool",
    "Evaluation.Uncertainty.uncertainty.analyze_uncertainty", "Evaluation.Diversity.diversity.analyze_diversity",
    "Evaluation.Novelty.novelty.analyze_novelty", "Evaluation.Image_selec.image_selection.analyze_intersection",
])
def test_dataset_given_a_name_says_to_pass_dataset_name(function_name, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    if function_name == "Evaluation.pool_context.open_pool":
        from Evaluation.pool_context import open_pool

        with pytest.raises(TypeError, match=r"dataset= takes a Dataset .* not the str 'digits': pass a dataset's name "
                                            r"as dataset_name="):
            open_pool("model.keras", 10, 10, 20, dataset="digits")
        return
    with pytest.raises(TypeError, match=r"dataset= takes a Dataset loaded by altoolkit\.data\.load_dataset, not the "
                                        r"str 'digits': pass a dataset's name as dataset_name="):
        call_with_a_dataset_name(function_name)
    assert list(tmp_path.iterdir()) == []


def test_training_given_a_name_says_to_load_the_dataset():
    from altoolkit.training import train_model

    with pytest.raises(TypeError, match=r"dataset= takes a Dataset .* not the str 'digits': load it with "
                                        r"load_dataset\(name\)"):
        train_model(dataset="digits")
