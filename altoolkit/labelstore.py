"""The label store: one SQLite database per labeling project, every human label committed the moment it is given.

Tables (schema version in ``PRAGMA user_version``):

- ``meta``: key/value settings (the class names, the pool folder);
- ``images``: every pool image by stable id (see :mod:`altoolkit.imagepool`), with its relative path and hash;
- ``rounds``: one row per selection round (strategy, parameters as JSON, model, time);
- ``batch_items``: the images a round selected, in order, with the model's prediction and scores;
- ``labels``: an append-only history; each row gives an image a class (or ``NULL``: the label was withdrawn,
  e.g. by *undo*). The latest row per image is its current label, so re-labeling never loses the old answer.

The database runs in WAL mode with ``synchronous=FULL``: a label is on disk when :meth:`LabelStore.set_label`
returns, and a killed process or a power cut loses at most the label being given.
"""

from __future__ import annotations

import getpass
import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from altoolkit.errors import ToolkitError

STORE_FILENAME = "labels.sqlite"
SCHEMA_VERSION = 2


@dataclass(frozen=True)
class StoredImage:
    """A pool image as the store knows it."""

    image_id: str
    relative_path: str
    sha256: str


@dataclass(frozen=True)
class BatchItem:
    """One image a round selected: the model's prediction, class probabilities and per-criterion scores."""

    image_id: str
    predicted_class: str
    probabilities: dict[str, float] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)

    def top_classes(self, count: int = 3) -> list[tuple[str, float]]:
        """The ``count`` most probable classes with their probabilities, most probable first."""
        return sorted(self.probabilities.items(), key=lambda item: (-item[1], item[0]))[:count]


@dataclass(frozen=True)
class LabelEvent:
    """One row of an image's label history (``class_name`` None: the label was withdrawn)."""

    image_id: str
    class_name: str | None
    labeler: str
    labeled_at: float
    round_id: int | None
    source: str


def _create_version_1(connection: sqlite3.Connection) -> None:
    for statement in VERSION_1_TABLES.split(";"):
        if statement.strip():
            connection.execute(statement)


VERSION_1_TABLES = """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE images (
            id TEXT PRIMARY KEY, relative_path TEXT NOT NULL, sha256 TEXT NOT NULL, added_at REAL NOT NULL);
        CREATE TABLE rounds (
            id INTEGER PRIMARY KEY, strategy TEXT NOT NULL, parameters TEXT NOT NULL, created_at REAL NOT NULL);
        CREATE TABLE batch_items (
            round_id INTEGER NOT NULL REFERENCES rounds(id), position INTEGER NOT NULL,
            image_id TEXT NOT NULL REFERENCES images(id), predicted_class TEXT NOT NULL,
            probabilities TEXT NOT NULL, scores TEXT NOT NULL,
            PRIMARY KEY (round_id, position), UNIQUE (round_id, image_id));
        CREATE TABLE labels (
            id INTEGER PRIMARY KEY AUTOINCREMENT, image_id TEXT NOT NULL REFERENCES images(id),
            class_name TEXT, labeler TEXT NOT NULL, labeled_at REAL NOT NULL,
            round_id INTEGER REFERENCES rounds(id));
        CREATE INDEX labels_by_image ON labels (image_id, id);
"""


def _add_label_source(connection: sqlite3.Connection) -> None:
    """Version 2: where each label came from (the labeling page, a CSV, a Label Studio export)."""
    connection.execute("ALTER TABLE labels ADD COLUMN source TEXT NOT NULL DEFAULT 'unknown'")


MIGRATIONS = {1: _create_version_1, 2: _add_label_source}
"""Version → the step that brings a database from the previous version to it, applied in order."""


class LabelStore:
    """A project's label database (thread-safe: the labeling server answers requests from several threads)."""

    def __init__(self, path: str | Path, class_names: Sequence[str] | None = None):
        """Open ``path`` (a project folder or the .sqlite file), creating it when ``class_names`` are given.

        An existing store is migrated to the current schema; ``class_names``, if given, must match its classes.
        """
        path = Path(path)
        self.path = path / STORE_FILENAME if path.suffix != ".sqlite" else path
        if not self.path.exists() and class_names is None:
            raise ToolkitError(f"no label store at {self.path}: create the project with `label.py select` first")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:
            self._connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.execute("PRAGMA synchronous=FULL")
            self._connection.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as error:
            raise ToolkitError(f"{self.path} is not a usable label store ({error}): restore it from a backup "
                               "or start a new project folder") from None
        stored = self.get_meta("class_names")
        if stored is None:
            if class_names is None:
                raise ToolkitError(f"{self.path} has no class names: recreate the project")
            self.set_meta("class_names", json.dumps(list(_checked_class_names(class_names))))
        elif class_names is not None and list(class_names) != json.loads(stored):
            raise ToolkitError(f"{self.path} labels classes {', '.join(json.loads(stored))}, not "
                               f"{', '.join(class_names)}: use the same labeled folder or a new project folder")
        self.class_names: tuple[str, ...] = tuple(json.loads(self.get_meta("class_names")))

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def __enter__(self) -> "LabelStore":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return int(self._connection.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        with self._lock:
            version = self.schema_version
            if version > SCHEMA_VERSION:
                raise ToolkitError(f"{self.path} was written by a newer al-toolkit (schema {version}, this one "
                                   f"reads up to {SCHEMA_VERSION}): upgrade al-toolkit")
            for target in range(version + 1, SCHEMA_VERSION + 1):
                with self._transaction():
                    MIGRATIONS[target](self._connection)
                    self._connection.execute(f"PRAGMA user_version = {target}")

    def _transaction(self):
        """``with store._transaction():`` runs its statements in one transaction (all or nothing)."""
        return _Transaction(self._connection, self._lock)

    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._connection.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        with self._transaction():
            self._connection.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                                     "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    def add_images(self, images: Iterable[StoredImage]) -> int:
        """Record pool images (ids already known keep their first path); returns how many were new."""
        now = time.time()
        with self._transaction():
            before = self._count("images")
            self._connection.executemany(
                "INSERT OR IGNORE INTO images (id, relative_path, sha256, added_at) VALUES (?, ?, ?, ?)",
                [(image.image_id, image.relative_path, image.sha256, now) for image in images])
            return self._count("images") - before

    def image(self, image_id: str) -> StoredImage | None:
        with self._lock:
            row = self._connection.execute("SELECT id, relative_path, sha256 FROM images WHERE id = ?",
                                           (image_id,)).fetchone()
        return None if row is None else StoredImage(*row)

    def images(self) -> list[StoredImage]:
        with self._lock:
            rows = self._connection.execute("SELECT id, relative_path, sha256 FROM images ORDER BY relative_path")
            return [StoredImage(*row) for row in rows]

    def start_round(self, strategy: str, parameters: dict, items: Sequence[BatchItem]) -> int:
        """Record a selection round and its batch (in the order given); returns the round's id."""
        unknown_classes = {item.predicted_class for item in items} - set(self.class_names)
        if unknown_classes:
            raise ToolkitError(f"predicted classes {sorted(unknown_classes)} are not the project's classes")
        with self._transaction():
            cursor = self._connection.execute(
                "INSERT INTO rounds (strategy, parameters, created_at) VALUES (?, ?, ?)",
                (strategy, json.dumps(parameters, sort_keys=True), time.time()))
            round_id = int(cursor.lastrowid)
            self._connection.executemany(
                "INSERT INTO batch_items (round_id, position, image_id, predicted_class, probabilities, scores) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(round_id, position, item.image_id, item.predicted_class, json.dumps(item.probabilities),
                  json.dumps(item.scores)) for position, item in enumerate(items)])
        return round_id

    def rounds(self) -> list[dict]:
        """Every round: id, strategy, parameters, created_at, batch size."""
        with self._lock:
            rows = self._connection.execute(
                "SELECT r.id, r.strategy, r.parameters, r.created_at, COUNT(b.image_id) FROM rounds r "
                "LEFT JOIN batch_items b ON b.round_id = r.id GROUP BY r.id ORDER BY r.id").fetchall()
        return [{"round": row[0], "strategy": row[1], "parameters": json.loads(row[2]), "created_at": row[3],
                 "batch_size": row[4]} for row in rows]

    def latest_round(self) -> int | None:
        with self._lock:
            row = self._connection.execute("SELECT MAX(id) FROM rounds").fetchone()
        return None if row[0] is None else int(row[0])

    def resolve_round(self, round_id: int | None) -> int:
        """``round_id``, or the latest round when None; a clear error when there is none."""
        latest = self.latest_round()
        if round_id is None:
            if latest is None:
                raise ToolkitError(f"{self.path} has no selection round yet: run `label.py select` first")
            return latest
        with self._lock:
            found = self._connection.execute("SELECT 1 FROM rounds WHERE id = ?", (round_id,)).fetchone()
        if not found:
            raise ToolkitError(f"round {round_id} does not exist in {self.path} (latest: {latest})")
        return int(round_id)

    def batch(self, round_id: int) -> list[BatchItem]:
        with self._lock:
            rows = self._connection.execute(
                "SELECT image_id, predicted_class, probabilities, scores FROM batch_items WHERE round_id = ? "
                "ORDER BY position", (round_id,)).fetchall()
        return [BatchItem(row[0], row[1], json.loads(row[2]), json.loads(row[3])) for row in rows]

    def set_label(self, image_id: str, class_name: str, *, labeler: str, round_id: int | None = None,
                  source: str = "page") -> None:
        """Give ``image_id`` the class ``class_name`` (committed and synced before returning)."""
        self.check_class(class_name)
        self._append_labels([(image_id, class_name)], labeler, round_id, source)

    def clear_label(self, image_id: str, *, labeler: str, round_id: int | None = None,
                    source: str = "page") -> None:
        """Withdraw ``image_id``'s current label (a history row with no class: *undo*)."""
        self._append_labels([(image_id, None)], labeler, round_id, source)

    def import_labels(self, pairs: Sequence[tuple[str, str]], *, labeler: str, round_id: int | None,
                      source: str) -> int:
        """Record many (image id, class) labels in one transaction: all of them or, on any error, none."""
        for _, class_name in pairs:
            self.check_class(class_name)
        self._append_labels(list(pairs), labeler, round_id, source)
        return len(pairs)

    def _append_labels(self, pairs: list[tuple[str, str | None]], labeler: str, round_id: int | None,
                       source: str) -> None:
        now = time.time()
        with self._transaction():
            missing = [image_id for image_id, _ in pairs if not self._connection.execute(
                "SELECT 1 FROM images WHERE id = ?", (image_id,)).fetchone()]
            if missing:
                raise ToolkitError(f"unknown image id {missing[0]}: it is not in this project's pool")
            self._connection.executemany(
                "INSERT INTO labels (image_id, class_name, labeler, labeled_at, round_id, source) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(image_id, class_name, labeler, now, round_id, source) for image_id, class_name in pairs])

    def check_class(self, class_name: str) -> None:
        if class_name not in self.class_names:
            raise ToolkitError(f"unknown class {class_name!r}: the project's classes are "
                               f"{', '.join(self.class_names)}")

    def current_labels(self) -> dict[str, str]:
        """image id → its current class, for every image whose latest label row gives one."""
        with self._lock:
            rows = self._connection.execute(
                "SELECT l.image_id, l.class_name FROM labels l JOIN "
                "(SELECT image_id, MAX(id) AS last FROM labels GROUP BY image_id) latest ON l.id = latest.last "
                "WHERE l.class_name IS NOT NULL").fetchall()
        return dict(rows)

    def history(self, image_id: str) -> list[LabelEvent]:
        with self._lock:
            rows = self._connection.execute(
                "SELECT image_id, class_name, labeler, labeled_at, round_id, source FROM labels "
                "WHERE image_id = ? ORDER BY id", (image_id,)).fetchall()
        return [LabelEvent(*row) for row in rows]

    def _count(self, table: str) -> int:
        return int(self._connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, or ROLLBACK when the block raises; holds the store's lock throughout."""

    def __init__(self, connection: sqlite3.Connection, lock: threading.RLock):
        self.connection, self.lock = connection, lock

    def __enter__(self):
        self.lock.acquire()
        self.connection.execute("BEGIN IMMEDIATE")
        return self.connection

    def __exit__(self, exc_type, exc, traceback) -> None:
        try:
            self.connection.execute("ROLLBACK" if exc_type is not None else "COMMIT")
        finally:
            self.lock.release()


def current_user() -> str:
    """Who is labeling, when nobody said: the operating system's user name."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _checked_class_names(class_names: Sequence[str]) -> tuple[str, ...]:
    names = tuple(str(name) for name in class_names)
    if len(names) < 2:
        raise ToolkitError(f"a labeling project needs at least two classes, got {list(names)}")
    if len(set(names)) != len(names) or any(not name.strip() for name in names):
        raise ToolkitError(f"class names must be distinct and non-empty, got {list(names)}")
    return names
