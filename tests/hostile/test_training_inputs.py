"""Hostile training input: non-positive or non-finite settings, unusable output folders and a diverging run.

Each is refused by ``train.py`` (or ``AL_cycle.py`` for its models folder) with one ``error:`` line, exit code 2 and
no file left behind. Read-only folders are tested as the unprivileged user ``nobody`` (root ignores permissions):
the entry point runs in this process with that effective user, on a small .npz data set in a world-readable
folder outside pytest's root-only temporary tree.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

import AL_cycle
import train

NOBODY = 65534
FAST = ["--dataset", "digits", "--labeled-size", "40", "--epochs", "1", "--quiet"]


@contextlib.contextmanager
def as_unprivileged_user():
    """Run the block with effective user and group ``nobody`` when the tests run as root; as they are otherwise."""
    if os.geteuid() != 0:
        yield
        return
    import encodings.cp437  # noqa: F401  (zipfile's lazy import; the interpreter's own files may be root-only)

    try:
        os.setegid(NOBODY)
        os.seteuid(NOBODY)
    except OSError as error:
        os.setegid(0)
        pytest.skip(f"cannot act as an unprivileged user here ({error}): a read-only folder is writable by root")
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@pytest.fixture
def shared_folder():
    """A world-readable folder (with a tiny ``data.npz``) that the unprivileged user can reach; removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="altoolkit-hostile-"))
    folder.chmod(0o755)
    generator = np.random.default_rng(0)
    np.savez(folder / "data.npz", x_train=generator.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8),
             y_train=np.arange(40) % 2, x_test=generator.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8),
             y_test=np.arange(10) % 2)
    (folder / "data.npz").chmod(0o644)
    yield folder
    for path in (folder, *folder.rglob("*")):
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)
    shutil.rmtree(folder)


def read_only(folder: Path) -> Path:
    folder.mkdir()
    folder.chmod(0o555)
    return folder


@pytest.mark.parametrize("option, value", [
    ("--batch-size", "0"), ("--batch-size", "-8"),
    ("--learning-rate", "0"), ("--learning-rate", "-0.001"), ("--learning-rate", "inf"), ("--learning-rate", "nan"),
    ("--epochs", "0"), ("--epochs", "-2"),
    ("--labeled-size", "-5"), ("--labeled-size", "0"),
    ("--validation-fraction", "1"), ("--validation-fraction", "1.5"), ("--validation-fraction", "-0.1"),
    ("--validation-fraction", "nan"),
])
def test_a_training_setting_out_of_range_is_refused_not_replaced_by_a_default(option, value, refused, tmp_path,
                                                                               monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = refused(train.main, [*FAST, "--output-dir", tmp_path / "run", option, value], tmp_path)
    assert option in line


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]], ids=["plain", "overwrite"])
def test_an_output_dir_that_is_a_file_is_refused_and_the_file_kept(overwrite, refused, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    line = refused(train.main, [*FAST, "--output-dir", tmp_path / "notes.txt", *overwrite], tmp_path)
    assert f"{tmp_path / 'notes.txt'} is a file" in line


def test_an_output_dir_inside_a_file_is_refused(refused, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    line = refused(train.main, [*FAST, "--output-dir", tmp_path / "notes.txt" / "run"], tmp_path)
    assert f"{tmp_path / 'notes.txt'} is not a folder" in line


def test_a_read_only_output_folder_is_refused_naming_it(refused, shared_folder, monkeypatch):
    locked = read_only(shared_folder / "locked")
    monkeypatch.chdir(shared_folder)
    with as_unprivileged_user():
        line = refused(train.main, ["--dataset", "npz", "--data-path", shared_folder / "data.npz", "--labeled-size",
                                    "40", "--epochs", "1", "--quiet", "--output-dir", locked / "models" / "run"],
                       shared_folder)
    assert f"{locked} is read-only for this user" in line and "--output-dir" in line


def test_the_default_models_folder_on_a_read_only_path_is_refused(refused, shared_folder, monkeypatch):
    locked = read_only(shared_folder / "locked")
    monkeypatch.chdir(locked)
    with as_unprivileged_user():
        line = refused(train.main, ["--dataset", "npz", "--data-path", shared_folder / "data.npz", "--labeled-size",
                                    "40", "--epochs", "1", "--quiet"], shared_folder)
    assert "(. is read-only for this user)" in line


@pytest.mark.slow
def test_a_read_only_models_dir_is_refused_before_the_cycle_writes_anything(refused, shared_folder, digits_dataset,
                                                                            tiny_digits_model, monkeypatch):
    model, digits = shared_folder / "base.keras", shared_folder / "digits.npz"
    shutil.copyfile(tiny_digits_model.model_path, model)
    np.savez(digits, x_train=digits_dataset.x_train, y_train=digits_dataset.y_train, x_test=digits_dataset.x_test,
             y_test=digits_dataset.y_test)
    for path in (model, digits):
        path.chmod(0o644)
    locked = read_only(shared_folder / "locked")
    writable = shared_folder / "writable"
    writable.mkdir()
    writable.chmod(0o777)
    monkeypatch.chdir(writable)
    with as_unprivileged_user():
        line = refused(AL_cycle.main, ["--dataset", "npz", "--data-path", digits, "--model", model,
                                       "--labeled-size", "100", "--start-idx", "100", "--end-idx", "400",
                                       "--target-per-class", "0", "--models-dir", locked / "models",
                                       "--output-dir", writable / "results", "--quiet"], shared_folder)
    assert f"{locked} is read-only for this user" in line and "--models-dir" in line


@pytest.mark.slow
def test_a_learning_rate_that_makes_the_loss_nan_is_an_error_and_writes_no_model(refused, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = refused(train.main, [*FAST, "--learning-rate", "1e30", "--output-dir", tmp_path / "models" / "run"],
                   tmp_path)
    assert "training diverged" in line and "--learning-rate" in line
