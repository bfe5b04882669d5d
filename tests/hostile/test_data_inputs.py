"""Hostile data files: every command-line entry point that loads data refuses each one with one short line.

Each bad input is generated here, small and fast: decompression bombs are real image headers claiming huge sizes
over a few bytes of data (the limit must fire on the header: decoding them would fail differently), .npz and idx
files claim huge arrays in their headers only. Every refusal comes before any training, and the error line must say
what is wrong with the data (a "model not found" line would not count).
"""

from __future__ import annotations

import gzip
import importlib
import io
import json
import os
import pickle
import re
import signal
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CIFAR_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
RAN_CODE: list[str] = []


def record_code_ran() -> None:
    RAN_CODE.append("a pickle ran code")


class RunsCode:
    """Pickles to a call of record_code_ran: loading it must be refused before that call."""

    def __reduce__(self):
        return record_code_ran, ()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    """No developer data variables; a fresh working folder; a pipe or bomb that blocks fails instead of hanging."""
    for name in ("AL_CIFAR10_PATH", "AL_DATA_DIR", "AL_FASHION_MNIST_DIR", "AL_MAX_IMAGE_PIXELS", "AL_MAX_CLASSES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    RAN_CODE.clear()

    def timed_out(signum, frame):
        raise TimeoutError("an entry point blocked for 60 s on a hostile input")

    previous = signal.signal(signal.SIGALRM, timed_out)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)
    assert RAN_CODE == []


# ------------------------------------------------------------------------------------------------ generators

def png_claiming(width: int, height: int) -> bytes:
    """A 1×1 PNG whose header (IHDR chunk, CRC fixed) claims width×height: a bomb of 70 bytes."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, "PNG")
    data = buffer.getvalue()
    header = b"IHDR" + struct.pack(">II", width, height) + data[24:29]
    return data[:12] + header + struct.pack(">I", zlib.crc32(header)) + data[33:]


def tiff_claiming(width: int, height: int) -> bytes:
    """A little-endian grayscale TIFF whose only IFD claims width×height over one byte of pixels."""
    tags = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, 0), (277, 3, 1),
            (278, 4, height), (279, 4, 1)]
    data_offset = 8 + 2 + 12 * len(tags) + 4
    entries = b"".join(struct.pack("<HHII", tag, kind, 1, data_offset if tag == 273 else value)
                       for tag, kind, value in tags)
    return b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(tags)) + entries + b"\x00" * 4 + b"\x00"


def gif_claiming(width: int, height: int) -> bytes:
    """A 1×1 GIF whose logical screen claims width×height."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, "GIF")
    data = buffer.getvalue()
    return data[:6] + struct.pack("<HH", width, height) + data[10:]


def image_folder(root: Path) -> Path:
    """root/cat and root/dog with two small valid PNGs each."""
    for name, value in (("cat", 40), ("dog", 200)):
        (root / name).mkdir(parents=True)
        for index in range(2):
            Image.new("RGB", (16, 16), (value + index, 0, 0)).save(root / name / f"{index}.png")
    return root


def folder_with(file_name: str, content: bytes | None = None, link_to: str | None = None, pipe: bool = False):
    """A builder of an image folder whose dog/ also holds ``file_name``: bytes, a symlink or a named pipe."""

    def build(root: Path) -> Path:
        folder = image_folder(root)
        target = folder / "dog" / file_name
        if link_to is not None:
            os.symlink(link_to, target)
        elif pipe:
            os.mkfifo(target)
        else:
            target.write_bytes(content)
        return folder

    return build


def folder_with_class(name: str):
    def build(root: Path) -> Path:
        folder = image_folder(root)
        (folder / name).mkdir()
        Image.new("RGB", (16, 16)).save(folder / name / "0.png")
        return folder

    return build


def npz_arrays(**changes) -> dict:
    rng = np.random.default_rng(0)
    arrays = dict(x_train=rng.integers(0, 256, (6, 10, 10), dtype=np.uint8), y_train=np.array([0, 1, 2, 0, 1, 2]),
                  x_test=rng.integers(0, 256, (3, 10, 10), dtype=np.uint8), y_test=np.array([2, 1, 0]),
                  class_names=np.array(["red", "green", "blue"]))
    arrays.update(changes)
    return {key: value for key, value in arrays.items() if value is not None}


def npz_with(**changes):
    def build(root: Path) -> Path:
        root.mkdir(parents=True)
        np.savez(root / "data.npz", **npz_arrays(**changes))
        return root / "data.npz"

    return build


def npz_truncated(root: Path) -> Path:
    file = npz_with()(root)
    file.write_bytes(file.read_bytes()[:-150])
    return file


def npz_claiming_images(shape: tuple[int, ...]):
    """An .npz whose x_train header claims ``shape`` (uint8) over 100 bytes of data."""

    def npy_header(descr: str, array_shape: tuple[int, ...]) -> bytes:
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": descr, "fortran_order": False, "shape": array_shape})
        return header.getvalue()

    def build(root: Path) -> Path:
        file = npz_with()(root)
        with zipfile.ZipFile(file) as source:
            members = {name: source.read(name) for name in source.namelist()}
        members["x_train.npy"] = npy_header("|u1", shape) + bytes(100)
        members["y_train.npy"] = npy_header("<i8", shape[:1]) + bytes(100)
        with zipfile.ZipFile(file, "w") as target:
            for name, content in members.items():
                target.writestr(name, content)
        return file

    return build


def npz_pipe(root: Path) -> Path:
    root.mkdir(parents=True)
    os.mkfifo(root / "data.npz")
    return root / "data.npz"


def cifar_folder(root: Path, batch_for=None, meta=None) -> Path:
    """cifar-10-batches-py/ in the official format, six images a batch; ``batch_for(name)`` may replace a batch."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for number, name in enumerate(CIFAR_BATCHES):
        batch = {b"data": np.full((6, 3072), number, np.uint8), b"labels": [0, 1, 8, 0, 1, 8]}
        replaced = batch_for(name) if batch_for else None
        (folder / name).write_bytes(pickle.dumps(replaced if replaced is not None else batch))
    names = meta if meta is not None else [name.encode() for name in CIFAR_CLASSES]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}))
    return folder


def cifar_with_batch(batch):
    return lambda root: cifar_folder(root, lambda name: batch if name == "data_batch_2" else None)


def cifar_truncated_archive(root: Path) -> Path:
    folder = cifar_folder(root / "build")
    archive = root / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    archive.write_bytes(archive.read_bytes()[:len(archive.read_bytes()) // 2])
    return archive


def idx_claiming(images_shape: tuple[int, ...]):
    """A Fashion-MNIST folder whose train-images file claims ``images_shape`` over a 100-byte body."""

    def build(root: Path) -> Path:
        root.mkdir(parents=True)
        for prefix, count in (("train", 5), ("t10k", 3)):
            for kind, shape in (("images-idx3", (count, 28, 28)), ("labels-idx1", (count,))):
                claimed = (prefix, kind) == ("train", "images-idx3")
                shape = images_shape if claimed else shape
                body = bytes(100) if claimed else bytes(int(np.prod(shape)))
                header = bytes([0, 0, 8, len(shape)]) + b"".join(d.to_bytes(4, "big") for d in shape)
                with gzip.open(root / f"{prefix}-{kind}-ubyte.gz", "wb") as handle:
                    handle.write(header + body)
        return root

    return build


# ------------------------------------------------------------------------------------------------ the bad inputs

LIMIT = r"\(a guard against decompression bombs\)"
BAD_DATA = {
    # item 4: labels that would invent classes, and too many classes from any source
    "npz label 2**63, no class names": ("npz", npz_with(class_names=None, y_train=np.array([0, 1, 2, 0, 1, 2**63],
                                                                                          np.uint64)),
                                        r"labels up to 9223372036854775808, which would make .* more than the limit "
                                        r"of 1,000 \(AL_MAX_CLASSES\)"),
    "npz label 2**40, no class names": ("npz", npz_with(class_names=None, y_test=np.array([0, 2**40, 1])),
                                        r"labels up to 1099511627776, which would make"),
    "npz label 10**6, no class names": ("npz", npz_with(class_names=None, y_train=np.array([0, 1, 2, 0, 1, 10**6])),
                                        r"labels up to 1000000, which would make 1,000,001 classes"),
    "npz 1001 class names": ("npz", npz_with(class_names=np.array([f"c{i}" for i in range(1001)])),
                             r"class_names must be a list of at most 1,000 names"),
    "folder over AL_MAX_CLASSES": ("folder", image_folder,
                                   r"has 2 classes, more than the limit of 1 \(AL_MAX_CLASSES\)"),
    # item 5: decompression bombs and huge images, checked on the header
    "PNG claiming 30000×30000": ("folder", folder_with("bomb.png", png_claiming(30000, 30000)),
                                 rf"image .*dog/bomb\.png has more than twice the limit of 67,108,864 pixels {LIMIT}"),
    "TIFF claiming 20000×20000": ("folder", folder_with("bomb.tiff", tiff_claiming(20000, 20000)),
                                  rf"image .*dog/bomb\.tiff has more than twice the limit .* {LIMIT}"),
    "GIF claiming 65535×65535": ("folder", folder_with("bomb.gif", gif_claiming(65535, 65535)),
                                 rf"image .*dog/bomb\.gif has more than twice the limit .* {LIMIT}"),
    "PNG of 100 megapixels": ("folder", folder_with("huge.png", png_claiming(10000, 10000)),
                              rf"image .*dog/huge\.png is 10000×10000 = 100,000,000 pixels, more than the limit of "
                              rf"67,108,864 {LIMIT}: shrink the image, or raise the limit with AL_MAX_IMAGE_PIXELS"),
    "AL_MAX_IMAGE_PIXELS not a number": ("folder", image_folder,
                                         r"the environment variable AL_MAX_IMAGE_PIXELS must be a positive integer"),
    # item 12: .npz files that are cut, of the wrong kind or shape, or claim huge arrays; and huge image sizes
    "npz truncated": ("npz", npz_truncated, r"cannot read .*data\.npz as \.npz .*save plain numeric arrays"),
    "npz string images": ("npz", npz_with(x_train=np.full((6, 10, 10), "255")), r"x_train holds str\d* values"),
    "npz images 0×0": ("npz", npz_with(x_train=np.zeros((6, 0, 0), np.uint8)), r"each x_train image is 0×0 pixels"),
    "npz claiming 10**9 images": ("npz", npz_claiming_images((10**9, 8, 8)),
                                  r"data\.npz is truncated: x_train should hold 64,000,000,000 bytes"),
    "npz claiming 30000×30000 images": ("npz", npz_claiming_images((2, 30000, 30000)),
                                        r"each x_train image is 30000×30000 = 900,000,000 pixels, more than "),
    "npz object array (pickle)": ("npz", npz_with(x_test=np.array([RunsCode()] * 3, dtype=object)),
                                  r"x_test holds object values, not plain numbers"),
    "npz 5-D images": ("npz", npz_with(x_train=np.zeros((6, 10, 10, 3, 1), np.uint8)),
                       r"x_train must be N×H×W, N×H×W×1 or N×H×W×3"),
    "npz float labels": ("npz", npz_with(y_train=np.zeros(6, np.float64)), r"y_train must be 6 integer labels"),
    "npz fewer labels than images": ("npz", npz_with(y_test=np.zeros(2, np.int64)), r"y_test must be 3 integer labels"),
    "npz path is a pipe": ("npz", npz_pipe, r"\.npz file .*data\.npz is not a regular file"),
    "image size 4096": ("digits", None, r"must be an integer from 8 to 512, got 4096"),
    # item 18: values and class names that used to pass silently
    "npz NaN pixels": ("npz", npz_with(x_train=np.full((6, 10, 10), np.nan)), r"x_train holds NaN or infinite values"),
    "npz infinite pixels": ("npz", npz_with(x_test=np.full((3, 10, 10), np.inf, np.float32)),
                            r"x_test holds NaN or infinite values"),
    "npz complex pixels": ("npz", npz_with(x_train=np.ones((6, 10, 10), np.complex128)),
                           r"x_train holds complex128 values"),
    "npz duplicate class names": ("npz", npz_with(class_names=np.array(["red", "green", "red"])),
                                  r"the class name 'red' appears twice"),
    "npz empty class name": ("npz", npz_with(class_names=np.array(["red", "", "blue"])),
                             r"class name '' must be 1 to 100 characters"),
    "npz integer class names": ("npz", npz_with(class_names=np.array([0, 1, 2])),
                                r"class_names holds int64 values, not strings"),
    "npz line break in a class name": ("npz", npz_with(class_names=np.array(["red", "gr\neen", "blue"])),
                                       r"class name 'gr\\neen' must be .* without control characters"),
    # also: CIFAR-10, Fashion-MNIST and folders
    "CIFAR-10 archive truncated": ("cifar10", cifar_truncated_archive, r"CIFAR-10 archive"),
    "CIFAR-10 batch of wrong shape": ("cifar10", cifar_with_batch({b"data": np.zeros((6, 100), np.uint8),
                                                                   b"labels": [0] * 6}),
                                      r"data_batch_2 has data of uint8 \(6, 100\)"),
    "CIFAR-10 float labels": ("cifar10", cifar_with_batch({b"data": np.zeros((6, 3072), np.uint8),
                                                           b"labels": [0.5] * 6}),
                              r"data_batch_2 has 6 images but labels of float64"),
    "CIFAR-10 label 2**100": ("cifar10", cifar_with_batch({b"data": np.zeros((6, 3072), np.uint8),
                                                           b"labels": [0] * 5 + [2**100]}),
                              r"data_batch_2 has labels up to 12676506002282294014967"),
    "CIFAR-10 batch that runs code": ("cifar10", cifar_with_batch({b"data": RunsCode(), b"labels": []}),
                                      r"batch data_batch_2 is not plain data .*could run code"),
    "CIFAR-10 duplicate label names": ("cifar10", lambda root: cifar_folder(root, meta=[b"ship"] * 10),
                                       r"the class name 'ship' appears twice"),
    "idx claiming 2**32 images": ("fashion_mnist", idx_claiming((2**32 - 1, 28, 28)),
                                  r"train-images-idx3-ubyte\.gz \(shape \(4294967295, 28, 28\)\) needs 3,367\.3 GB"),
    "idx claiming 100000×100000 images": ("fashion_mnist", idx_claiming((5, 100000, 100000)),
                                          r"train-images-idx3-ubyte\.gz is 100000×100000 = 10,000,000,000 pixels"),
    "text file named .png": ("folder", folder_with("notes.png", b"these bytes are not an image"),
                             r"cannot read image .*dog/notes\.png: cannot identify image file"),
    "zero-byte .jpg": ("folder", folder_with("empty.jpg", b""), r"cannot read image .*dog/empty\.jpg"),
    "symlink loop": ("folder", folder_with("loop.png", link_to="loop.png"),
                     r"dog/loop\.png is not a regular image file \(a broken or looping link"),
    "broken symlink": ("folder", folder_with("gone.png", link_to="missing.png"),
                       r"dog/gone\.png is not a regular image file"),
    "pipe named .png": ("folder", folder_with("stream.png", pipe=True), r"dog/stream\.png is not a regular image file"),
    "class folder with a line break": ("folder", folder_with_class("bad\nname"),
                                       r"class name 'bad\\nname' must be .* without control characters"),
}
ENVIRONMENT = {"folder over AL_MAX_CLASSES": {"AL_MAX_CLASSES": "1"},
               "AL_MAX_IMAGE_PIXELS not a number": {"AL_MAX_IMAGE_PIXELS": "lots"}}
IMAGE_CONTENT_CASES = ["PNG claiming 30000×30000", "TIFF claiming 20000×20000", "GIF claiming 65535×65535",
                       "PNG of 100 megapixels", "text file named .png", "zero-byte .jpg"]
"""Bad image files that a label.py pool can hold (a pool lists regular files only)."""

ENTRY_POINTS = ["train", "AL_cycle", "Evaluation.Uncertainty.uncertainty", "Evaluation.Diversity.diversity",
                "Evaluation.Novelty.novelty", "Evaluation.Image_selec.image_selection",
                "Evaluation.Benchmark.benchmark"]


def prepare(case: str, root: Path, monkeypatch) -> tuple[str, Path | None, str]:
    """Build the bad input of ``case`` under ``root``; returns (dataset name, data path, expected error pattern)."""
    dataset, build, expected = BAD_DATA[case]
    for name, value in ENVIRONMENT.get(case, {}).items():
        monkeypatch.setenv(name, value)
    return dataset, (build(root / "data") if build else None), expected


def arguments(module: str, dataset: str, path: Path | None, work: Path, case: str, model: Path | None) -> list[str]:
    """The command line that makes ``module`` load ``dataset`` from ``path``, writing only under ``work``.

    The analyses get a real ``model``: whether they read the model or the data first, the data must be refused.
    """
    size = ["--image-size", "4096"] if case == "image size 4096" else []
    if module == "Evaluation.Image_selec.image_selection":
        write_analysis_results(work / "results", dataset, path, 4096 if size else 32, model)
        return ["--results-dir", work / "results", "--output-dir", work / "intersection", "--cache-dir", work / "cache"]
    data = ["--dataset", dataset, *(["--data-path", path] if path else []), *size,
            *(["--classes", "all"] if module != "Evaluation.Benchmark.benchmark" else [])]
    outputs = {
        "train": ["--output-dir", work / "run", "--epochs", "1"],
        "AL_cycle": ["--output-dir", work / "results", "--models-dir", work / "models", "--train-base"],
        "Evaluation.Benchmark.benchmark": ["--output-dir", work / "benchmark"],
    }
    analysis = ["--model", model, "--output-dir", work / "out", "--cache-dir", work / "cache"]
    return data + outputs.get(module, analysis)


def write_analysis_results(results: Path, dataset: str, path: Path | None, image_size: int, model: Path) -> None:
    """The three analyses' result files as the intersection reads them, recording ``dataset`` at ``path``."""
    run = {"start_idx": 100, "end_idx": 110, "labeled_size": 100, "dataset_fingerprint": "0" * 16,
           "model_sha256": "0" * 64, "model_path": str(model),
           "data_options": {"dataset_name": dataset, "classes": None, "image_size": image_size,
                            "data_path": str(path) if path else None}}
    for name in ("uncertainty", "diversity", "novelty"):
        folder = results / name
        folder.mkdir(parents=True)
        np.save(folder / f"{name}_indices.npy", np.arange(3))
        np.savez(folder / f"{name}_scores.npz", score=np.zeros(10))
        (folder / f"{name}_run.json").write_text(json.dumps(run))


# ------------------------------------------------------------------------------------------------ the tests

def model_for(module: str, request) -> Path | None:
    """The tiny digits model for the entry points that read a model; None for those that train one."""
    if module in ("train", "AL_cycle", "Evaluation.Benchmark.benchmark"):
        return None
    return request.getfixturevalue("tiny_digits_model").model_path


@pytest.mark.parametrize("module", ENTRY_POINTS)
@pytest.mark.parametrize("case", list(BAD_DATA))
def test_every_entry_point_refuses_bad_data_before_training(case, module, refused, tmp_path, monkeypatch, request):
    dataset, path, expected = prepare(case, tmp_path, monkeypatch)
    argv = arguments(module, dataset, path, tmp_path / "work", case, model_for(module, request))
    line = refused(importlib.import_module(module).main, argv, tmp_path)
    assert re.search(expected, line), line


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory, digits_dataset) -> Path:
    """A labeled folder with one image of each digit: what the tiny digits model was trained on."""
    root = tmp_path_factory.mktemp("labeled")
    for label, name in enumerate(digits_dataset.class_names):
        (root / name).mkdir()
        index = int(np.flatnonzero(digits_dataset.y_train == label)[0])
        Image.fromarray(digits_dataset.x_train[index]).save(root / name / f"{index}.png")
    return root


def select_arguments(work: Path, pool: Path, labeled: Path, model: Path) -> list:
    return ["select", "--project", work / "project", "--pool", pool, "--labeled", labeled, "--model", model,
            "--budget", "1"]


@pytest.mark.parametrize("case", [case for case, (dataset, _, _) in BAD_DATA.items() if dataset == "folder"])
def test_label_select_refuses_a_labeled_folder_with_bad_images(case, refused, tmp_path, monkeypatch,
                                                               tiny_digits_model, digit_folder):
    import label

    _, labeled, expected = prepare(case, tmp_path, monkeypatch)
    pool = image_folder(tmp_path / "pool")
    argv = select_arguments(tmp_path / "work", pool, labeled, tiny_digits_model.model_path)
    line = refused(label.main, argv, tmp_path)
    assert re.search(expected, line), line


@pytest.mark.parametrize("case", IMAGE_CONTENT_CASES)
def test_label_select_refuses_a_pool_with_bad_images(case, refused, tmp_path, monkeypatch, tiny_digits_model,
                                                     digit_folder):
    import label

    _, pool, expected = prepare(case, tmp_path, monkeypatch)
    argv = select_arguments(tmp_path / "work", pool, digit_folder, tiny_digits_model.model_path)
    line = refused(label.main, argv, tmp_path)
    assert re.search(expected, line), line


@pytest.mark.parametrize("case, script", [("PNG claiming 30000×30000", "train.py"),
                                          ("npz label 2**63, no class names", "Evaluation/Diversity/diversity.py")])
def test_a_real_process_refuses_a_bomb_and_a_huge_label(case, script, refused_in_subprocess, tmp_path, monkeypatch,
                                                        request):
    dataset, path, expected = prepare(case, tmp_path, monkeypatch)
    module = script.removesuffix(".py").replace("/", ".")
    argv = arguments(module, dataset, path, tmp_path / "work", case, model_for(module, request))
    line = refused_in_subprocess([script, *argv], tmp_path, cwd=tmp_path)
    assert re.search(expected, line), line
