"""Atomic file writing: every output appears whole or not at all, even if the run is killed mid-write.

A temporary sits beside its target as ``.<target name>.<owner>.<random>.tmp``, where ``<owner>`` is
``<pid>-<process start>-<host id>-<boot id>`` of the writing process. A run killed with SIGKILL cannot delete its
temporary, so the next write of the same target deletes the ones whose process provably no longer exists (same
host, and a previous boot, or no process with that pid and start time), never a live run's.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from altoolkit.errors import ToolkitError
from altoolkit.validation import display_text

TEMPORARY_SUFFIX = ".tmp"
RETIRED_SUFFIX = ".old"
"""A run directory being replaced (``overwrite``) is moved into ``.<name>.<owner>.<random>.old`` and then deleted."""
_LEFTOVER = re.compile(r"\.(?P<pid>\d+)-(?P<start>\d+)-(?P<host>[0-9a-f]{8})-(?P<boot>[0-9a-f]{8})"
                       r"\.[a-z0-9_]+(?P<suffix>\.tmp|\.old)")
"""What follows ``.<target name>`` in a temporary's name."""


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success rename it over ``target``, else delete it.

    Parent folders are created as needed and removed again if the write fails; a folder that cannot be written
    is a ToolkitError naming it.
    """
    target = Path(target)
    created = _prepare_folder(target)
    temporary = None
    succeeded = False
    try:
        try:
            handle, name = tempfile.mkstemp(prefix=_temporary_prefix(target), suffix=TEMPORARY_SUFFIX,
                                            dir=target.parent)
        except OSError as error:
            raise _write_error(target.parent, error) from None
        os.close(handle)
        temporary = Path(name)
        os.chmod(temporary, 0o666 & ~_current_umask())
        yield temporary
        _replace(temporary, target)
        succeeded = True
    finally:
        if temporary is not None:
            temporary.unlink(missing_ok=True)
        if not succeeded:
            _remove_empty_folders(created)


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
    """Write JSON atomically; numpy scalars and arrays become plain numbers and lists.

    NaN and infinity are refused, not written as the bare ``NaN``/``Infinity`` that JSON readers reject: a caller
    turns a value it knows is absent (e.g. the accuracy on no test images) into None, written as ``null``.
    """
    try:
        text = json.dumps(data, indent=2, default=_json_default, allow_nan=False)
    except ValueError:
        where = _non_finite_location(data)
        if where is None:
            raise
        raise ToolkitError(f"{Path(target).name} was not written: {where} is not a finite number, "
                           "which JSON cannot hold") from None
    return write_text(target, text + "\n")


def save_figure(target: str | os.PathLike, figure) -> Path:
    """Save a matplotlib Figure atomically as PNG."""
    with atomic_path(target) as temporary:
        figure.savefig(temporary, format="png", dpi=110, bbox_inches="tight")
    return Path(target)


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory beside ``target``; on success it replaces ``target`` in one rename.

    A run killed midway leaves ``target`` (and anything that was there before) untouched; its temporary is
    deleted by the next run that writes ``target``. ``target`` must not be a file.
    """
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise ToolkitError(f"{target} is a file, not a folder: choose another output folder")
    created = _prepare_folder(target)
    temporary = None
    succeeded = False
    try:
        try:
            temporary = Path(tempfile.mkdtemp(prefix=_temporary_prefix(target), suffix=TEMPORARY_SUFFIX,
                                              dir=target.parent))
        except OSError as error:
            raise _write_error(target.parent, error) from None
        os.chmod(temporary, 0o777 & ~_current_umask())
        yield temporary
        if target.exists() or target.is_symlink():
            if not overwrite:
                raise FileExistsError(target)
            _swap_in(temporary, target)
        else:
            _replace(temporary, target)
        succeeded = True
    finally:
        if temporary is not None and temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)
        if not succeeded:
            _remove_empty_folders(created)


def check_output_folder(target: str | os.PathLike, option: str = "--output-dir") -> None:
    """Refuse, before any work, an output folder that is a file or that could not be created or written.

    ``option`` names what the user changes to fix it.
    """
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise ToolkitError(f"{display_text(target, 120)} is a file, not a folder: choose another {option}")
    check_writable_directory(target.parent, option)


def remove_abandoned_temporaries(target: str | os.PathLike) -> list[Path]:
    """Delete the temporaries of ``target`` left by killed runs (see the module docstring); return them.

    A temporary of a process that may still run (this host and boot, pid alive with the same start time), of
    another host or of an older toolkit version (no owner in its name) is kept. A replaced run directory whose
    replacement never arrived (``target`` missing) is kept too: it is the only copy left.
    """
    target = Path(target)
    prefix = f".{target.name}"
    try:
        entries = [entry for entry in os.scandir(target.parent) if entry.name.startswith(prefix)]
    except OSError:
        return []
    removed = []
    for entry in entries:
        leftover = _LEFTOVER.fullmatch(entry.name[len(prefix):])
        if leftover is None or not _owner_is_gone(**{key: leftover[key] for key in ("pid", "start", "host", "boot")}):
            continue
        if leftover["suffix"] == RETIRED_SUFFIX and not target.exists():
            continue
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                path.unlink()
        removed.append(path)
    return removed


def check_writable_directory(folder: str | os.PathLike, option: str) -> Path:
    """Refuse, before any work, a folder that cannot be created or written (a file, read-only, a name too long).

    Creates nothing: the nearest existing ancestor must be a folder this process (its effective user) may write
    into; a read-only file system counts as not writable. ``option`` names the setting in the message (e.g.
    ``--output-dir``).
    """
    folder = Path(folder)
    existing = folder
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    shown = display_text(folder, 120)
    if not existing.is_dir():
        where = "" if existing == folder else f" ({display_text(existing, 120)} is a file)"
        raise ToolkitError(f"{option} {shown} is not a folder{where}: choose another {option}")
    name_max = _path_limit(existing, "PC_NAME_MAX", 255)
    if any(len(os.fsencode(part)) > name_max for part in folder.parts) \
            or len(os.fsencode(os.path.abspath(folder))) >= _path_limit(existing, "PC_PATH_MAX", 4096):
        raise ToolkitError(f"{option} {shown} is longer than the file system allows ({name_max} bytes a name): "
                           f"choose a shorter {option}")
    effective = {"effective_ids": True} if os.access in os.supports_effective_ids else {}
    if not os.access(existing, os.W_OK | os.X_OK, **effective):
        raise ToolkitError(f"{option} {shown} is not writable ({display_text(existing, 120)} is read-only for this "
                           f"user): choose another {option} or make it writable")
    return folder


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


def _prepare_folder(target: Path) -> list[Path]:
    """Create ``target``'s missing parent folders (returned, outermost first) and clear its abandoned temporaries."""
    missing = []
    for candidate in (target.parent, *target.parent.parents):
        if candidate.is_dir():
            break
        missing.append(candidate)
    created: list[Path] = []
    for folder in reversed(missing):
        try:
            folder.mkdir()
        except FileExistsError:
            if folder.is_dir():
                continue
            _remove_empty_folders(created)
            raise ToolkitError(f"{folder} is not a folder: choose another place for {target.name}") from None
        except OSError as error:
            _remove_empty_folders(created)
            raise _write_error(folder.parent, error) from None
        created.append(folder)
    remove_abandoned_temporaries(target)
    return created


def _remove_empty_folders(folders: list[Path]) -> None:
    """Remove folders this process created (innermost first), leaving any that something else has filled."""
    for folder in reversed(folders):
        with contextlib.suppress(OSError):
            folder.rmdir()


def _write_error(folder: Path, error: OSError) -> ToolkitError:
    reason = (error.strerror or type(error).__name__).lower()
    return ToolkitError(f"cannot write in {folder} ({reason}): choose a folder you can write to")


def _replace(temporary: Path, target: Path) -> None:
    try:
        os.replace(temporary, target)
    except OSError as error:
        reason = (error.strerror or type(error).__name__).lower()
        raise ToolkitError(f"cannot write {target} ({reason}): move it away or choose another place") from None


def _swap_in(temporary: Path, target: Path) -> None:
    """Replace the existing ``target`` with ``temporary``: two renames, the old one restored if the second fails."""
    try:
        retired = Path(tempfile.mkdtemp(prefix=_temporary_prefix(target), suffix=RETIRED_SUFFIX, dir=target.parent))
    except OSError as error:
        raise _write_error(target.parent, error) from None
    _replace(target, retired / target.name)
    try:
        _replace(temporary, target)
    except BaseException:
        os.replace(retired / target.name, target)
        retired.rmdir()
        raise
    shutil.rmtree(retired, ignore_errors=True)


def _temporary_prefix(target: Path) -> str:
    """``.<target name>.<owner>.``: the owner is this process, so a later run can tell whether it still runs."""
    started = _process_start(os.getpid())
    return f".{target.name}.{os.getpid()}-{max(started or 0, 0)}-{_host_id()}-{_boot_id()}."


def _owner_is_gone(pid: str, start: str, host: str, boot: str) -> bool:
    """True only when the process that made a temporary provably no longer exists."""
    if host != _host_id():
        return False  # another machine or container: its processes are not visible from here
    if boot != _boot_id():
        return True  # made before this machine last started
    started = _process_start(int(pid))
    if started is None:
        return True
    if started < 0 or int(start) == 0:
        return False  # alive, and its start time is unknown: it may be the owner
    return started != int(start)  # a later process reusing the pid


def _process_start(pid: int) -> int | None:
    """A running process's start time in clock ticks after boot (-1 when unknown); None if there is none.

    A zombie (killed, not yet reaped by its parent) counts as none.
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return None if fields[0] in ("Z", "X") else int(fields[19])
    except (OSError, IndexError, ValueError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except (PermissionError, OverflowError):
        return -1
    return -1


@functools.lru_cache(maxsize=1)
def _host_id() -> str:
    """8 hex digits naming this host and pid namespace (pids are only comparable inside one)."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return hashlib.sha256(f"{socket.gethostname()}\0{namespace}".encode()).hexdigest()[:8]


@functools.lru_cache(maxsize=1)
def _boot_id() -> str:
    """8 hex digits naming this boot of the machine (00000000 where the system does not say)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "0" * 8
    return hashlib.sha256(boot.encode()).hexdigest()[:8]


def _non_finite_location(data: Any, where: str = "the data") -> str | None:
    """Where (e.g. ``history.loss[3]``) the first NaN or infinity in ``data`` is; None if there is none."""
    if isinstance(data, np.ndarray):
        data = data.tolist()
    if isinstance(data, np.generic):
        data = data.item()
    if isinstance(data, float):
        return None if math.isfinite(data) else where
    prefix = "" if where == "the data" else where
    if isinstance(data, dict):
        items = ((f"{prefix}.{key}" if prefix else str(key), value) for key, value in data.items())
    elif isinstance(data, (list, tuple)):
        items = ((f"{prefix}[{index}]", value) for index, value in enumerate(data))
    else:
        return None
    for location, value in items:
        found = _non_finite_location(value, location)
        if found is not None:
            return found
    return None
