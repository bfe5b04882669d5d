"""Per-image arrays computed once and kept on disk: a label-free representation of a pool is fitted and computed
once per pool and parameters, then every round, strategy and entry point reads it back (memory-mapped).

A cache entry is one ``.npy`` file named by a hash of everything that decides its values (what was computed,
from which images, with which parameters and library versions), written atomically; a file that does not hold
the expected rows of finite floats is recomputed, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from altoolkit.arrays import all_finite
from altoolkit.errors import ToolkitError
from altoolkit.files import remove_abandoned_temporaries, save_npy

FEATURES_FOLDER = "features"
CACHE_FORMAT = 1


def cache_key(parts: dict) -> str:
    """A 20-hex-digit key of JSON-serialisable ``parts`` (sorted keys, so order does not matter)."""
    text = json.dumps({"format": CACHE_FORMAT, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def images_fingerprint(images) -> str:
    """A 16-hex-digit SHA-256 of an image array's shape, type and bytes, read in chunks (no full copy); images
    kept in files count by their files' content hashes."""
    from altoolkit.file_images import FileImages

    if isinstance(images, FileImages):
        return images.digest
    digest = hashlib.sha256(f"{images.shape}|{images.dtype}".encode())
    for start in range(0, len(images), 4096):
        digest.update(np.ascontiguousarray(images[start:start + 4096]).tobytes())
    return digest.hexdigest()[:16]


def cached_rows(cache_dir: str | os.PathLike | None, name: str, parts: dict, rows: int,
                compute: Callable[[], np.ndarray]) -> np.ndarray:
    """``compute()`` (``rows`` × D floats), or its earlier result from ``cache_dir`` (memory-mapped, read-only).

    ``cache_dir`` None computes without caching. A cached file with another row count, a non-float type or
    non-finite values is replaced.
    """
    if cache_dir is None:
        return _checked(compute(), rows, name)
    file = Path(cache_dir) / FEATURES_FOLDER / f"{name}_{cache_key(parts)}.npy"
    cached = read_cached(file, rows)
    if cached is not None:
        return cached
    values = _checked(compute(), rows, name)
    try:
        save_npy(file, values)
    except OSError as error:
        raise ToolkitError(f"cannot write the {name} cache in {file.parent} ({error.strerror or error}): pass a "
                           "writable --cache-dir") from None
    return np.load(file, mmap_mode="r", allow_pickle=False)


def read_cached(file: Path, rows: int, *, float32_only: bool = False) -> np.ndarray | None:
    """The array cached in ``file``, memory-mapped, if it holds ``rows`` rows of finite floats (float32 ones with
    ``float32_only``); None when it is missing or unusable. A use refreshes its time for the cache's eviction."""
    if not file.is_file():
        return None
    try:
        values = np.load(file, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if not _usable(values, rows) or (float32_only and values.dtype != np.float32):
        return None
    os.utime(file)
    return values


def _usable(values: np.ndarray, rows: int) -> bool:
    if values.ndim != 2 or len(values) != rows or not np.issubdtype(values.dtype, np.floating):
        return False
    return all_finite(values)


def _checked(values: np.ndarray, rows: int, name: str) -> np.ndarray:
    values = np.asarray(values)
    if not _usable(values, rows):
        raise ToolkitError(f"the {name} features are not {rows} rows of finite numbers (got {values.dtype} "
                           f"{values.shape}): the images may be constant or corrupt")
    return values


DEFAULT_CACHE_LIMIT_BYTES = 20 * 2**30
"""How much a cache folder may hold before its least recently used arrays are deleted (``--cache-limit-gb``)."""


def pool_array_files(cache_dir: str | os.PathLike, names: Sequence[str], parts: dict, pool) -> list[Path]:
    """Where :func:`cached_pool_arrays` keeps ``names``' arrays of ``pool`` computed with ``parts``."""
    from altoolkit.streaming import POOL_ARRAYS_FOLDER

    key = cache_key({**parts, "pool": pool.digest})
    return [Path(cache_dir) / POOL_ARRAYS_FOLDER / f"{name}_{key}.npy" for name in names]


def cached_pool_arrays(cache_dir: str | os.PathLike, names: Sequence[str], parts: dict, pool,
                       compute: Callable[[np.ndarray], Sequence[np.ndarray]], *,
                       limit_bytes: int = DEFAULT_CACHE_LIMIT_BYTES, engine=None, ray_task=None) -> list[np.ndarray]:
    """Per-image arrays of a streamed file pool (:class:`~altoolkit.streaming.FilePool`), one per name:
    ``compute(batch)`` over the pool's batches, or their earlier result (memory-mapped) when this pool's content
    was seen with these ``parts`` before. With ``engine`` (a :class:`~altoolkit.ray_engine.RayEngine`), Ray
    actors run what ``ray_task()`` returns (kind, payload of :class:`~altoolkit.ray_engine.PoolScorer`) instead,
    into the same files. After a new write, the cache is trimmed to ``limit_bytes``."""
    from altoolkit.streaming import streamed_rows

    targets = pool_array_files(cache_dir, names, parts, pool)
    cached = [read_cached(target, len(pool), float32_only=True) for target in targets]
    if all(array is not None for array in cached):
        return cached
    for target in targets:  # a killed run's half-written file would otherwise sit in the cache for good
        remove_abandoned_temporaries(target)
    if engine is not None:
        batches, compute = engine.output_batches(pool, ray_task(), len(names)), (lambda outputs: outputs)
    else:
        batches = pool.batches()
    try:
        arrays = streamed_rows(batches, len(pool), compute, targets)
    except OSError as error:
        raise ToolkitError(f"cannot write the pool's arrays in {targets[0].parent} ({error.strerror or error}): "
                           "free disk space, or pass a writable cache folder") from None
    enforce_cache_limit(cache_dir, limit_bytes, keep=targets)
    return arrays


def enforce_cache_limit(cache_dir: str | os.PathLike, limit_bytes: int, keep: Sequence[Path] = ()) -> list[Path]:
    """Delete the least recently used cached arrays (``.npy``/``.npz``, oldest modification time first; a read
    refreshes it) until the folder holds at most ``limit_bytes``; ``keep`` is never deleted. Returns the deleted."""
    kept = {Path(path).resolve() for path in keep}
    entries = []
    for file in Path(cache_dir).rglob("*"):
        if file.suffix in (".npy", ".npz") and file.is_file() and not file.is_symlink():
            status = file.stat()
            entries.append((status.st_mtime_ns, status.st_size, file))
    total = sum(size for _, size, _ in entries)
    deleted = []
    for _, size, file in sorted(entries, key=lambda entry: entry[0]):
        if total <= limit_bytes:
            break
        if file.resolve() in kept:
            continue
        file.unlink(missing_ok=True)
        total -= size
        deleted.append(file)
    return deleted
