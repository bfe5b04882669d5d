"""A pool of image files as a stream: listed and hashed once, decoded in parallel batches, and turned into
per-image arrays on disk, so no step holds the decoded pool in memory.

A folder of a million 224-pixel photos would need 150 GB as one decoded array. Here a pool is a list of files
(:class:`FilePool`); its content hashes are reused from an earlier scan for every file whose size and
modification time are unchanged (as rsync and git do), and only new or changed files are read again. Images are
decoded by a thread pool a few batches ahead of the model (Pillow decodes and resizes without holding the GIL),
each batch goes through the model or a label-free representation and is discarded, and the per-image results
are appended to ``.npy`` files written atomically, then opened memory-mapped (:func:`streamed_rows`). Memory is
a few batches of pixels plus the rows a caller reads.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from altoolkit.errors import ToolkitError
from altoolkit.files import atomic_path, file_sha256
from altoolkit.sources import IMAGE_SUFFIXES, read_image
from altoolkit.validation import display_text

STREAM_BATCH = 256
"""Images decoded, scored and discarded together."""
DECODE_WORKERS = max(2, min(8, os.cpu_count() or 1))
"""Threads decoding images; each decodes whole batches, at most this many batches ahead of the consumer."""
HASH_WORKERS = 4
"""Threads hashing new or changed files (reading is the slow part)."""
HASH_CHUNK = 1024
"""Files hashed per task."""
POOL_ARRAYS_FOLDER = "pool"
"""The cache's sub-folder holding the streamed per-image arrays of file pools."""


@dataclass(frozen=True, slots=True)
class PoolFile:
    """One image file of a pool: its path relative to the pool folder, size, modification time and SHA-256."""

    relative_path: str
    size: int
    mtime_ns: int
    sha256: str


def list_image_files(folder: str | Path) -> list[tuple[str, int, int]]:
    """(relative path, size, mtime_ns) of every image file under ``folder`` (recursively, hidden entries
    skipped), sorted by relative path; nothing is read but the directory entries."""
    root = Path(folder)
    if not root.is_dir():
        raise ToolkitError(f"pool folder {root} not found: give the folder holding the unlabeled images")
    found = []
    for directory, subfolders, names in os.walk(root):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        relative_directory = Path(directory).relative_to(root)
        for name in names:
            if name.startswith(".") or Path(name).suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                status = os.stat(Path(directory) / name)
            except OSError:
                continue  # vanished, or a link to nothing: not an image of this pool
            if os.path.isfile(Path(directory) / name):
                relative = (relative_directory / name).as_posix()
                try:
                    relative.encode("utf-8")
                except UnicodeEncodeError:
                    shown = relative.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                    raise ToolkitError(f"pool file name {display_text(shown, 120)} is not valid UTF-8: rename it "
                                       "(e.g. convmv -f latin1 -t utf8), or move it out of the pool") from None
                found.append((relative, status.st_size, status.st_mtime_ns))
    if not found:
        raise ToolkitError(f"pool folder {root} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return sorted(found)


def hash_pool_files(folder: str | Path, listing: Sequence[tuple[str, int, int]],
                    known: Mapping[str, tuple[int, int, str]] | None = None,
                    workers: int = HASH_WORKERS) -> list[PoolFile]:
    """The listed files with their SHA-256: reused from ``known`` (relative path → size, mtime_ns, sha256) where
    size and modification time are unchanged, read and hashed (in parallel) where not."""
    known = known or {}
    root = Path(folder)

    def hashed(entry: tuple[str, int, int]) -> PoolFile:
        relative, size, mtime_ns = entry
        previous = known.get(relative)
        if previous is not None and tuple(previous[:2]) == (size, mtime_ns):
            return PoolFile(relative, size, mtime_ns, previous[2])
        try:
            digest = file_sha256(root / relative)
        except OSError as error:
            raise ToolkitError(f"cannot read pool image {relative[:80]} ({error.strerror or error}): check the "
                               "file's permissions, or remove it from the pool") from None
        return PoolFile(relative, size, mtime_ns, digest)

    if len(listing) < 64 or workers <= 1:
        return [hashed(entry) for entry in listing]
    chunks = (listing[start:start + HASH_CHUNK] for start in range(0, len(listing), HASH_CHUNK))
    with ThreadPoolExecutor(workers) as executor:  # chunks, not one task per file: a future per file costs ~2 kB
        return [file for part in executor.map(lambda chunk: [hashed(entry) for entry in chunk], chunks)
                for file in part]


def pool_digest(files: Sequence[PoolFile]) -> str:
    """16 hex digits naming a pool's content: every file's relative path and SHA-256, in order."""
    digest = hashlib.sha256(f"{len(files)}\n".encode())
    for file in files:
        digest.update(f"{file.relative_path}\0{file.sha256}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class FilePool:
    """A pool of image files under ``root``, decoded at ``size``×``size`` only while it is streamed."""

    root: Path
    files: tuple[PoolFile, ...]
    size: int

    @functools.cached_property
    def digest(self) -> str:
        """Names the pool's content and decoding (files, hashes, image size): part of every cache key; computed
        once per pool (it hashes every file's entry, and each cached array's key asks for it)."""
        return f"{pool_digest(self.files)}-{self.size}"

    def __len__(self) -> int:
        return len(self.files)

    def batches(self, batch_size: int = STREAM_BATCH, workers: int = DECODE_WORKERS) -> Iterator[np.ndarray]:
        """The pool's images in order, as uint8 batches (≤ ``batch_size`` × size × size × 3), decoded ahead."""
        paths = [file.relative_path for file in self.files]
        return decoded_batches(self.root, paths, self.size, batch_size, workers)

    def images(self, rows: Sequence[int]) -> np.ndarray:
        """The images at ``rows`` (a sample, or a batch to show), decoded in parallel, in the order given."""
        paths = [self.files[int(row)].relative_path for row in rows]
        parts = list(decoded_batches(self.root, paths, self.size, STREAM_BATCH, DECODE_WORKERS))
        return np.concatenate(parts) if parts else np.empty((0, self.size, self.size, 3), np.uint8)


def scan_file_pool(folder: str | Path, size: int,
                   known: Mapping[str, tuple[int, int, str]] | None = None) -> FilePool:
    """List and hash a pool folder (reusing ``known`` hashes of unchanged files) as a :class:`FilePool`."""
    listing = list_image_files(folder)
    return FilePool(Path(folder), tuple(hash_pool_files(folder, listing, known)), size)


def decoded_batches(root: str | Path, relative_paths: Sequence[str], size: int, batch_size: int = STREAM_BATCH,
                    workers: int = DECODE_WORKERS) -> Iterator[np.ndarray]:
    """Decode the files in order, ``batch_size`` at a time, with ``workers`` threads at most that many batches
    ahead of the consumer; a file that cannot be decoded is a ToolkitError naming it."""
    root = Path(root)

    def decode(start: int) -> np.ndarray:
        chunk = relative_paths[start:start + batch_size]
        batch = np.empty((len(chunk), size, size, 3), np.uint8)
        for row, relative in enumerate(chunk):
            batch[row] = read_image(root / relative, size)
        return batch

    starts = range(0, len(relative_paths), batch_size)
    if workers <= 1 or len(starts) <= 1:
        yield from (decode(start) for start in starts)
        return
    with ThreadPoolExecutor(workers) as executor:
        pending: deque = deque()
        try:
            for start in starts:
                pending.append(executor.submit(decode, start))
                if len(pending) > workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def streamed_rows(batches: Iterable[np.ndarray], rows: int, compute: Callable[[np.ndarray], Sequence[np.ndarray]],
                  targets: Sequence[Path], progress: Callable[[int], None] | None = None) -> list[np.ndarray]:
    """Run ``compute`` on every batch and append its outputs (one 2-D float32 array per target, a row per image)
    to the ``.npy`` files ``targets``; returns them memory-mapped, read-only. (Batches already scored elsewhere,
    e.g. by Ray, come with ``compute`` returning them as they are.)

    Rows are written as they come (never memory-mapped for writing, so written pages do not stay in this
    process's memory); a file appears only complete (atomic rename), and a failure leaves none.
    """
    with _AtomicTargets(targets) as handles:
        written = 0
        for batch in batches:
            outputs = [np.ascontiguousarray(output, dtype=np.float32) for output in compute(batch)]
            if len(outputs) != len(handles) or any(output.ndim != 2 or len(output) != len(outputs[0])
                                                   for output in outputs):
                raise ToolkitError("a streamed step must return one 2-D array per target, a row per image")
            if written == 0:
                for handle, output in zip(handles, outputs):
                    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False,
                              "shape": (rows, output.shape[1])}
                    np.lib.format.write_array_header_1_0(handle, header)
            for handle, output in zip(handles, outputs):
                handle.write(output.tobytes())
            written += len(outputs[0])
            if progress is not None:
                progress(len(outputs[0]))
        if written != rows:
            raise ToolkitError(f"the pool yielded {written} images where {rows} were listed: a file changed while "
                               "it was read; run again")
    return [np.load(target, mmap_mode="r", allow_pickle=False) for target in targets]


class _AtomicTargets:
    """Open files beside each target that replace it only when every one was written without error."""

    def __init__(self, targets: Sequence[Path]):
        self._contexts = [atomic_path(target) for target in targets]
        self._handles: list = []

    def __enter__(self) -> list:
        for context in self._contexts:
            self._handles.append(open(context.__enter__(), "wb"))
        return self._handles

    def __exit__(self, kind, error, trace) -> bool:
        for handle in self._handles:
            handle.close()
        for context in reversed(self._contexts):
            context.__exit__(kind, error, trace)
        return False
