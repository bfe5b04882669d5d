"""The label store's file: its tables and migrations, and the checks made before SQLite is allowed to write to it.

A file that is not an SQLite database, or a database that is not a label store of this or an older schema, is
refused by reading it only; a new store is built beside its final name and moved into place whole.
"""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

from altoolkit.errors import ToolkitError
from altoolkit.files import atomic_path
from altoolkit.validation import short_repr

STORE_FILENAME = "labels.sqlite"
SCHEMA_VERSION = 4
TABLES = ("meta", "images", "rounds", "batch_items", "labels")
SQLITE_HEADER = b"SQLite format 3\x00"
SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY = 5, 6, 8
"""SQLite's primary result codes for a lock held elsewhere and a read-only database (Python 3.10 lacks names)."""


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


def _add_pool_file_hashes(connection: sqlite3.Connection) -> None:
    """Version 3: each pool file's size, modification time and SHA-256 at the last scan, so the next scan hashes
    only new or changed files (a million-file pool is read once, not on every ``select``)."""
    connection.execute("CREATE TABLE pool_files (relative_path TEXT PRIMARY KEY, size INTEGER NOT NULL, "
                       "mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL)")


def _add_live_reorders(connection: sqlite3.Connection) -> None:
    """Version 4: the live queue's reorders of a round's batch (``label.py serve --live``): which labels each refit
    used (every current label up to a label row), what it ran, its estimates, and the order it gave."""
    connection.execute("CREATE TABLE reorders (id INTEGER PRIMARY KEY, round_id INTEGER NOT NULL REFERENCES "
                       "rounds(id), created_at REAL NOT NULL, last_label_row INTEGER NOT NULL, labels_used INTEGER "
                       "NOT NULL, strategy TEXT NOT NULL, details TEXT NOT NULL)")
    connection.execute("CREATE TABLE reorder_items (reorder_id INTEGER NOT NULL REFERENCES reorders(id), "
                       "position INTEGER NOT NULL, image_id TEXT NOT NULL REFERENCES images(id), predicted_class "
                       "TEXT NOT NULL, probabilities TEXT NOT NULL, scores TEXT NOT NULL, "
                       "PRIMARY KEY (reorder_id, position))")


MIGRATIONS = {1: _create_version_1, 2: _add_label_source, 3: _add_pool_file_hashes, 4: _add_live_reorders}
"""Version → the step that brings a database from the previous version to it, applied in order."""


def error_kind(error: sqlite3.DatabaseError) -> str:
    """What an SQLite error means here: ``busy`` (another connection holds a lock), ``read-only`` or ``other``."""
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return {SQLITE_BUSY: "busy", SQLITE_LOCKED: "busy", SQLITE_READONLY: "read-only"}.get(code & 0xFF, "other")
    message = str(error)
    return "busy" if "is locked" in message else "read-only" if "readonly" in message else "other"


def class_names_problem(text) -> str | None:
    """What is wrong with the stored class names (None: nothing)."""
    if text is None:
        return "is missing: the store does not say which classes it labels"
    try:
        names = json.loads(text)
    except (TypeError, ValueError, RecursionError):
        return "is not valid JSON"
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        return "is not a JSON list of class names"
    if len(names) < 2 or len(set(names)) != len(names) or any(not name.strip() for name in names):
        return "must name at least two distinct, non-empty classes"
    return None


def json_object(text, numbers_only: bool = False) -> tuple[dict, str | None]:
    """``text`` parsed as a JSON object (of finite numbers when ``numbers_only``), or ({}, what is wrong)."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError, RecursionError):
        return {}, "is not valid JSON"
    if not isinstance(value, dict):
        return {}, "is not a JSON object"
    if numbers_only and not all(isinstance(number, (int, float)) and not isinstance(number, bool)
                                and math.isfinite(number) for number in value.values()):
        return {}, "holds something other than finite numbers"
    return value, None


def check_header(path: Path) -> None:
    """Refuse, by its first bytes alone, a file SQLite would not read as a database (nothing is written)."""
    if path.is_dir():
        raise ToolkitError(f"{path} is a folder, not a label store: pass the project folder that holds "
                           f"{STORE_FILENAME}")
    if not path.is_file():
        raise ToolkitError(f"{path} is not a regular file (a pipe or a device?), so not a label store: restore "
                           "it from a backup or use a new project folder")
    try:
        with open(path, "rb") as handle:
            header = handle.read(100)
    except OSError as error:
        raise ToolkitError(f"cannot read {path} ({error.strerror or error}): give yourself read access to "
                           "the project folder") from None
    if not header:
        raise ToolkitError(f"{path} is an empty file, not a label store: restore it from a backup, or delete it "
                           "and run `label.py select` to start the project again")
    if len(header) < 100 or not header.startswith(SQLITE_HEADER):
        raise ToolkitError(f"{path} is not an SQLite database, so not a label store: restore it from a backup "
                           "or use a new project folder")


def connect(path: Path, writable: bool, busy_timeout: float) -> sqlite3.Connection:
    """A connection that leaves nothing behind when it only reads.

    Writable: a normal connection (SQLite removes its -wal and -shm files when the last one closes). Read-only
    for this user: an existing write-ahead log is read with ``mode=ro``; without one, nobody is writing and the
    file alone is the whole database, read with ``immutable=1`` (``mode=ro`` would need to create the -shm file).
    """
    if writable:
        target, uri = str(path), False
    else:
        mode = "mode=ro" if Path(f"{path}-wal").exists() else "immutable=1"
        target, uri = f"{path.resolve().as_uri()}?{mode}", True
    try:
        return sqlite3.connect(target, uri=uri, timeout=busy_timeout, check_same_thread=False,
                               isolation_level=None)
    except sqlite3.Error as error:
        raise ToolkitError(f"cannot open {path} ({short_repr(str(error), 80)}): check that you may read the project "
                           "folder") from None


def create_store(path: Path, class_names: tuple[str, ...]) -> None:
    """Build a new, empty store beside ``path`` and move it into place whole (a failure leaves no file)."""
    try:
        with atomic_path(path) as temporary:
            connection = sqlite3.connect(temporary, isolation_level=None)
            try:
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=FULL")
                connection.execute("BEGIN IMMEDIATE")
                for version in range(1, SCHEMA_VERSION + 1):
                    MIGRATIONS[version](connection)
                connection.execute("INSERT INTO meta (key, value) VALUES ('class_names', ?)",
                                   (json.dumps(list(class_names)),))
                connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                connection.execute("COMMIT")
            finally:
                connection.close()
    except OSError as error:
        raise ToolkitError(f"cannot create {path} ({error.strerror or error}): pick a project folder you may "
                           "write to") from None


def count_rows(connection: sqlite3.Connection, table: str) -> int:
    return int(connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
