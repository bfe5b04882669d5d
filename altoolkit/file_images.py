"""Images that stay in their files until read: what the folder reader puts in a :class:`~altoolkit.data.Dataset`.

A folder of a million photos does not fit in memory as one decoded array. :class:`FileImages` looks like one
(``len``, ``shape``, ``dtype``, indexing) but holds only the file list: indexing decodes just the rows asked for
(in parallel), :meth:`FileImages.take` selects rows without decoding anything, and :meth:`FileImages.pool`
hands the rows to the streaming path (:mod:`altoolkit.streaming`), which scores them batch by batch into
memory-mapped arrays. Content hashes, which name the images in every cache key, are computed once per listing
and, when a cache folder is given, kept there, so a later run re-hashes only files whose size or modification
time changed.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np

from altoolkit.errors import ToolkitError
from altoolkit.files import write_json
from altoolkit.limits import check_resized_fit, max_image_pixels
from altoolkit.sources import read_image
from altoolkit.streaming import POOL_ARRAYS_FOLDER, FilePool, PoolFile, decoded_batches, hash_pool_files
from altoolkit.validation import display_text

HASH_INDEX_PREFIX = "file_hashes_"
"""Name of a folder's hash index in the cache's pool sub-folder (followed by a hash of the folder's path)."""
HEADER_WORKERS = 8
"""Threads reading image headers (waiting on the disk more than computing)."""
HEADER_CHUNK = 512
"""Headers read per task."""


class ImageFileList:
    """The image files under one folder (relative path, size, mtime_ns), listed once and hashed on first need."""

    def __init__(self, root: str | os.PathLike, listing: Sequence[tuple[str, int, int]]):
        self.root = Path(root)
        self.listing = list(listing)
        self._files: tuple[PoolFile, ...] | None = None

    @classmethod
    def of_paths(cls, root: str | os.PathLike, paths: Sequence[Path]) -> "ImageFileList":
        """The listing of ``paths`` (files under ``root``), with their sizes and modification times."""
        root = Path(root)
        listing = []
        for path in paths:
            try:
                status = path.stat()
            except OSError as error:
                raise ToolkitError(f"cannot read image {display_text(path)} ({error.strerror or error}): check its "
                                   "permissions, or remove it") from None
            listing.append((path.relative_to(root).as_posix(), status.st_size, status.st_mtime_ns))
        check_headers(paths)
        return cls(root, listing)

    def files(self, cache_dir: str | os.PathLike | None = None) -> tuple[PoolFile, ...]:
        """Every file with its SHA-256, computed once; with ``cache_dir``, hashes of files unchanged since an
        earlier run are read from its index there, and the index is brought up to date."""
        if self._files is None:
            index = None if cache_dir is None else hash_index_file(cache_dir, self.root)
            known = read_hash_index(index) if index is not None else {}
            self._files = tuple(hash_pool_files(self.root, self.listing, known))
            if index is not None and any(known.get(file.relative_path) != [file.size, file.mtime_ns, file.sha256]
                                         for file in self._files):
                write_hash_index(index, self._files)
        return self._files


def check_headers(paths: Sequence[Path], workers: int = HEADER_WORKERS) -> None:
    """Read every file's header (not its pixels), in parallel: a file that is no image, or an image over the
    pixel limit, is refused before any work starts rather than in the middle of a pass over the pool. Files are
    checked in name order, so the error names the first bad file by name."""
    max_image_pixels()  # a bad AL_MAX_IMAGE_PIXELS is refused even for an empty list
    paths = sorted(paths)
    chunks = [paths[start:start + HEADER_CHUNK] for start in range(0, len(paths), HEADER_CHUNK)]
    with ThreadPoolExecutor(workers) as executor:
        for _ in executor.map(lambda chunk: [read_image(path, 1, header_only=True) for path in chunk], chunks):
            pass


def hash_index_file(cache_dir: str | os.PathLike, root: Path) -> Path:
    """Where the content hashes of the files under ``root`` are kept in ``cache_dir``."""
    name = hashlib.sha256(str(root.resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return Path(cache_dir) / POOL_ARRAYS_FOLDER / f"{HASH_INDEX_PREFIX}{name}.json"


def read_hash_index(index: Path) -> dict[str, list]:
    """relative path → [size, mtime_ns, sha256] from an index file; an unreadable index is ignored (every file
    is then hashed again), never trusted in part."""
    try:
        entries = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(entries, dict) or not all(
            isinstance(value, list) and len(value) == 3 and isinstance(value[2], str) for value in entries.values()):
        return {}
    return entries


def write_hash_index(index: Path, files: Sequence[PoolFile]) -> None:
    """Replace the index atomically; a failed write costs the next run the hashing, so it is not an error."""
    try:
        write_json(index, {file.relative_path: [file.size, file.mtime_ns, file.sha256] for file in files})
    except OSError:
        pass


class FileImages:
    """Rows of an :class:`ImageFileList`, decoded at ``size``×``size`` RGB uint8 only when indexed.

    ``images[i]`` decodes one image, ``images[rows]`` / ``images[a:b]`` / ``np.asarray(images)`` decode those
    rows (refused, with the memory they would need, when they would not fit); ``images.take(rows)`` selects
    without decoding, like ``ndarray.take(rows, axis=0)``.
    """

    ndim = 4
    dtype = np.dtype(np.uint8)

    def __init__(self, file_list: ImageFileList, size: int, rows: np.ndarray | None = None):
        self.file_list, self.size = file_list, int(size)
        self.rows = np.arange(len(file_list.listing), dtype=np.int64) if rows is None \
            else np.asarray(rows, dtype=np.int64)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.rows), self.size, self.size, 3)

    def __len__(self) -> int:
        return len(self.rows)

    def take(self, indices, axis: int = 0) -> "FileImages":
        """The images at ``indices`` (ints, in that order), still undecoded."""
        if axis != 0:
            raise ValueError("FileImages.take selects images: axis must be 0")
        return FileImages(self.file_list, self.size, self.rows[np.asarray(indices, dtype=np.int64)])

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self._decode(self.rows[[int(key)]])[0]
        if isinstance(key, tuple):  # images[rows, y, x, channel]: decode the rows, then index within them
            rows, within = key[0], key[1:]
            images = self[rows]
            return images[within] if isinstance(rows, (int, np.integer)) else images[(slice(None), *within)]
        return self._decode(self.rows[key])

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        images = self._decode(self.rows)
        return images if dtype is None else images.astype(dtype, copy=False)

    def relative_paths(self) -> list[str]:
        return [self.file_list.listing[row][0] for row in self.rows]

    def pool(self, cache_dir: str | os.PathLike | None = None) -> FilePool:
        """These images as a streamed :class:`~altoolkit.streaming.FilePool` (hashing the listing if needed)."""
        files = self.file_list.files(cache_dir)
        return FilePool(self.file_list.root, tuple(files[row] for row in self.rows), self.size)

    @property
    def digest(self) -> str:
        """Names these images' content: files, their hashes, order and decoded size."""
        return self.pool().digest

    def _decode(self, rows: np.ndarray) -> np.ndarray:
        rows = np.atleast_1d(rows)
        check_resized_fit(len(rows), self.size, f"{len(rows)} images of {display_text(self.file_list.root)}")
        paths = [self.file_list.listing[row][0] for row in rows]
        parts = list(decoded_batches(self.file_list.root, paths, self.size))
        return np.concatenate(parts) if parts else np.empty((0, self.size, self.size, 3), np.uint8)


def image_range(images, start: int, end: int):
    """Images ``start..end-1``: a view of an array, or still-undecoded rows of :class:`FileImages`."""
    if isinstance(images, FileImages):
        return images.take(np.arange(start, end))
    return images[start:end]


def concatenated_images(parts: Sequence) -> "FileImages | np.ndarray":
    """The parts one after another: still undecoded when all are rows of the same file list, else an array."""
    if parts and all(isinstance(part, FileImages) for part in parts) and \
            len({(id(part.file_list), part.size) for part in parts}) == 1:
        return FileImages(parts[0].file_list, parts[0].size, np.concatenate([part.rows for part in parts]))
    return np.concatenate([np.asarray(part) for part in parts])
