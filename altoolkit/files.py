"""Atomic file writing: every output appears whole or not at all, even if the run is killed mid-write."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from altoolkit.errors import ToolkitError


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success rename it over ``target``, else delete it."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(handle)
    temporary = Path(temporary)
    os.chmod(temporary, 0o666 & ~_current_umask())
    try:
        yield temporary
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def save_npy(target: str | os.PathLike, array: np.ndarray) -> Path:
    """Save an array as .npy atomically (no pickled objects)."""
    with atomic_path(target) as temporary:
        with open(temporary, "wb") as handle:
            np.save(handle, np.asarray(array), allow_pickle=False)
    return Path(target)


def save_npz(target: str | os.PathLike, *arrays: np.ndarray, **named_arrays: np.ndarray) -> Path:
    """Save arrays as an uncompressed .npz atomically (no pickled objects)."""
    with atomic_path(target) as temporary:
        with open(temporary, "wb") as handle:
            np.savez(handle, *arrays, **named_arrays)
    return Path(target)


def load_npy(source: str | os.PathLike) -> np.ndarray:
    """Load a .npy written by :func:`save_npy`; never unpickles."""
    return np.load(Path(source), allow_pickle=False)


def write_text(target: str | os.PathLike, text: str) -> Path:
    with atomic_path(target) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(target)


def write_json(target: str | os.PathLike, data: Any) -> Path:
    """Write JSON atomically; numpy scalars and arrays become plain numbers and lists."""
    return write_text(target, json.dumps(data, indent=2, default=_json_default) + "\n")


def save_figure(target: str | os.PathLike, figure) -> Path:
    """Save a matplotlib Figure atomically as PNG."""
    with atomic_path(target) as temporary:
        figure.savefig(temporary, format="png", dpi=110, bbox_inches="tight")
    return Path(target)


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory beside ``target``; on success it replaces ``target`` in one rename.

    A run killed midway leaves ``target`` (and anything that was there before) untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    os.chmod(temporary, 0o777 & ~_current_umask())
    try:
        yield temporary
        if target.exists():
            if not overwrite:
                raise FileExistsError(target)
            retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            os.replace(target, retired / target.name)
            os.replace(temporary, target)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(temporary, target)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)


def check_writable_directory(folder: str | os.PathLike, option: str) -> Path:
    """Refuse, before any work, a folder that cannot be created or written (a file, read-only, a name too long).

    Creates nothing: the nearest existing ancestor must be a folder this process may write into. ``option``
    names the setting in the message (e.g. ``--output-dir``).
    """
    folder = Path(folder)
    existing = folder
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    shown = shortened_path(folder)
    if not existing.is_dir():
        where = "" if existing == folder else f" ({shortened_path(existing)} is a file)"
        raise ToolkitError(f"{option} {shown} is not a folder{where}: choose another {option}")
    name_max = _path_limit(existing, "PC_NAME_MAX", 255)
    if any(len(os.fsencode(part)) > name_max for part in folder.parts) \
            or len(os.fsencode(os.path.abspath(folder))) >= _path_limit(existing, "PC_PATH_MAX", 4096):
        raise ToolkitError(f"{option} {shown} is longer than the file system allows ({name_max} bytes a name): "
                           f"choose a shorter {option}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ToolkitError(f"{option} {shown} is not writable ({shortened_path(existing)} is read-only for this "
                           f"user): choose another {option} or make it writable")
    return folder


def shortened_path(path: str | os.PathLike, limit: int = 120) -> str:
    """``path`` for an error line: whole if short, else its start and end around an ellipsis."""
    text = str(path)
    return text if len(text) <= limit else f"{text[:limit // 2]}…{text[-(limit // 2):]}"


def _path_limit(folder: Path, name: str, default: int) -> int:
    try:
        return os.pathconf(folder, name)
    except (OSError, ValueError):
        return default


def file_sha256(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _current_umask() -> int:
    """The process umask (temporary files are created 0600; finished outputs get normal permissions)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _json_default(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
